/* Placeholder until the narinfo subcommand lands. */
#include "cli.h"

const char cmd_narinfo_usage[] = "usage: cairn narinfo ...\n";

int cmd_narinfo(int argc, char **argv)
{
	if (cli_wants_help(argc, argv))
		return cli_usage(cmd_narinfo_usage, true);
	cli_error("not implemented yet");
	return EXIT_FAIL;
}
