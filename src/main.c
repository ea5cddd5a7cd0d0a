/*
 * main.c - the cairn program: global options and the command table.
 * Adding a subcommand is one file (src/cmd-NAME.c exporting cmd_NAME, its
 * help and options in a table, cli-options.h), one row below, one page in
 * docs/, and tests.
 */
#include <stdio.h>
#include <string.h>

#include "cairn/cairn.h"
#include "cli.h"
#include "cairn/banned.h"

static const struct cmd commands[] = {
	{ "nar", cmd_nar, "write, read, hash, list and restore NAR archives" },
	{ "hash", cmd_hash, "convert hashes between Nix's textual forms" },
	{ "key", cmd_key, "generate signing keys (Nix or Guix) and derive public keys" },
	{ "narinfo", cmd_narinfo, "sign and verify narinfo files" },
	{ "publish", cmd_publish, "serve a Nix or Guix store as a signed binary cache" },
	{ "weather", cmd_weather, "report how much of a set of store paths each cache has" },
	{ "challenge", cmd_challenge, "compare what caches and the local store say about store items" },
	{ "fetch", cmd_fetch, "download and verify store paths and closures from binary caches" },
	{ "mirror", cmd_mirror, "a verifying, coalescing cache in front of binary caches" },
	{ "feed", cmd_feed, "verify pages and snapshots of a cache's signed change feed" },
	{ "sync", cmd_sync, "make a directory a verified replica of a cache, from its change feed" },
	{ "ipfs", cmd_ipfs, "a file or NAR as an IPFS UnixFS DAG: its root CID and a CAR" },
	{ "monitor", cmd_monitor, "watch caches, record where they disagree, serve a report" },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct cmd *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int unknown_command(const char *typed)
{
	const char *names[N_COMMANDS];
	for (size_t i = 0; i < N_COMMANDS; i++)
		names[i] = commands[i].name;
	const char *s = cli_suggest(typed, names, N_COMMANDS);
	if (s)
		cli_error("unknown command '%s'; did you mean '%s'?", typed, s);
	else
		cli_error("unknown command '%s' (see 'cairn --help')", typed);
	return EXIT_USAGE;
}

static int main_usage(FILE *out)
{
	fprintf(out,
		"usage: cairn [--version] [--help] COMMAND [ARGS...]\n"
		"\n"
		"cairn distributes Nix and Guix substitutes: it serves, mirrors, fetches\n"
		"and cross-checks store items, trusting only signatures and content hashes.\n"
		"\n"
		"commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\nRun 'cairn help COMMAND' or 'cairn COMMAND -h' for a command's options.\n");
	return out == stdout ? EXIT_OK : EXIT_USAGE;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return main_usage(stderr);
	const char *arg = argv[1];
	if (!strcmp(arg, "--help") || !strcmp(arg, "-h"))
		return main_usage(stdout);
	if (!strcmp(arg, "--version") || !strcmp(arg, "-V")) {
		printf("cairn %s\n", CAIRN_VERSION);
		return EXIT_OK;
	}
	if (!strcmp(arg, "help")) {
		if (argc < 3)
			return main_usage(stdout);
		const struct cmd *c = find_command(argv[2]);
		if (!c)
			return unknown_command(argv[2]);
		/* the help comes from the command's option table */
		char help[] = "--help";
		char *args[] = {argv[2], help, NULL};
		return c->fn(2, args);
	}
	const struct cmd *c = find_command(arg);
	if (!c)
		return unknown_command(arg);
	if (cairn_init() != 0) {
		cli_error("cannot initialise the crypto libraries");
		return EXIT_FAIL;
	}
	static char progname[64];
	snprintf(progname, sizeof(progname), "cairn %s", c->name);
	cli_progname = progname;
	return c->fn(argc - 1, argv + 1);
}
