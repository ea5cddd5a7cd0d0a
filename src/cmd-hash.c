/* Placeholder until the hash subcommand lands. */
#include "cli.h"

const char cmd_hash_usage[] = "usage: cairn hash ...\n";

int cmd_hash(int argc, char **argv)
{
	if (cli_wants_help(argc, argv))
		return cli_usage(cmd_hash_usage, true);
	cli_error("not implemented yet");
	return EXIT_FAIL;
}
