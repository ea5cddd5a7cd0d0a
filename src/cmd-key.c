/* Placeholder until the key subcommand lands. */
#include "cli.h"

const char cmd_key_usage[] = "usage: cairn key ...\n";

int cmd_key(int argc, char **argv)
{
	if (cli_wants_help(argc, argv))
		return cli_usage(cmd_key_usage, true);
	cli_error("not implemented yet");
	return EXIT_FAIL;
}
