/* Placeholder until the nar subcommand lands. */
#include "cli.h"

const char cmd_nar_usage[] = "usage: cairn nar ...\n";

int cmd_nar(int argc, char **argv)
{
	if (cli_wants_help(argc, argv))
		return cli_usage(cmd_nar_usage, true);
	cli_error("not implemented yet");
	return EXIT_FAIL;
}
