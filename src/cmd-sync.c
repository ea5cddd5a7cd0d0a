/*
 * cmd-sync.c - `cairn sync`: make a directory a replica of a head's binary
 * cache from its signed change feed (lib/sync.c).  Option parsing and
 * reporting only.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/keys.h"
#include "cairn/sync.h"
#include "cli.h"
#include "cairn/banned.h"

static const char cmd_sync_usage[] =
	"usage: cairn sync --from URL --to DIR --trusted-key FILE [--trusted-key FILE...]\n"
	"                  [--parallel N] [--follow [--status FILE] | --paths FILE|URL]\n"
	"\n"
	"Make DIR a replica of the binary cache at URL (a `cairn publish --feed`),\n"
	"in the layout `nix copy --to file://DIR` writes: nix-cache-info and the\n"
	"narinfos byte for byte as the head serves them (its signatures travel),\n"
	"each narinfo's file under nar/.  The head's snapshot must be signed by a\n"
	"trusted key; each item is copied only when its own narinfo is signed by a\n"
	"trusted key, and its file is checked (FileSize, FileHash, NarHash,\n"
	"NarSize) before it is put in place, its narinfo after it.  Run again, it\n"
	"copies what is missing only (after a kill too).  Items refused or failed\n"
	"are named on stderr and the rest goes on; the exit status is then 1.\n"
	"\n"
	"  --from URL           the head (http:// or https://)\n"
	"  --to DIR             the replica (created when missing)\n"
	"  --trusted-key FILE   a key the feed and the narinfos may be signed by\n"
	"                       (Nix name:base64, Guix signing-key.pub or acl);\n"
	"                       repeatable\n"
	"  --parallel N         items downloaded at once (default 16)\n"
	"  --follow             then keep DIR current from the feed (long-polls;\n"
	"                       each page verified before anything it says is\n"
	"                       done; removals only from such a page) until\n"
	"                       SIGTERM or SIGINT\n"
	"  --status FILE        with --follow: after each page, write the feed id,\n"
	"                       seq, head, lag (events) and time to FILE\n"
	"  --paths FILE|URL     a head without a feed (nginx, guix publish,\n"
	"                       nix-serve): replicate the closures of the store\n"
	"                       paths listed in FILE or at URL (one a line; a\n"
	"                       Hydra store-paths.xz is read as such)\n";
static const struct cli_spec sync_spec = {.usage = cmd_sync_usage};

static volatile sig_atomic_t g_stop;

static void on_stop(int sig)
{
	(void)sig;
	g_stop = 1;
}

static bool stop_asked(void *ctx)
{
	(void)ctx;
	return g_stop != 0;
}

static void sync_log(void *ctx, const char *msg)
{
	(void)ctx;
	cli_warn("%s", cli_safe(msg));
}

int cmd_sync(int argc, char **argv)
{
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	struct cairn_sync_config cfg;
	struct cairn_sync_stats st;
	struct cairn_error err;
	size_t n_keys = 0;
	int ret = EXIT_FAIL;

	if (cli_wants_help(argc, argv))
		return cli_usage(&sync_spec, true);
	memset(&cfg, 0, sizeof(cfg));
	cairn_error_init(&err);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--follow")) {
			cfg.follow = true;
			continue;
		}
		if (i + 1 >= argc) {
			cli_error("unknown or incomplete option '%s'", a);
			ret = cli_usage(&sync_spec, false);
			goto out;
		}
		const char *v = argv[++i];
		if (!strcmp(a, "--from")) {
			cfg.from = v;
		} else if (!strcmp(a, "--to")) {
			cfg.to = v;
		} else if (!strcmp(a, "--trusted-key")) {
			if (cli_load_keyring(&kr, v) != EXIT_OK)
				goto out;
			n_keys++;
		} else if (!strcmp(a, "--paths")) {
			cfg.paths_file = v;
		} else if (!strcmp(a, "--status")) {
			cfg.status_file = v;
		} else if (!strcmp(a, "--parallel")) {
			char *end;
			unsigned long n = strtoul(v, &end, 10);
			if (*end || !*v || n < 1 || n > CAIRN_SYNC_PARALLEL_MAX) {
				cli_error("--parallel takes 1..%d", CAIRN_SYNC_PARALLEL_MAX);
				ret = EXIT_USAGE;
				goto out;
			}
			cfg.parallel = (unsigned)n;
		} else {
			cli_error("unknown option '%s'", a);
			ret = cli_usage(&sync_spec, false);
			goto out;
		}
	}
	if (!cfg.from || !cfg.to || n_keys == 0) {
		cli_error("--from, --to and at least one --trusted-key are required");
		ret = cli_usage(&sync_spec, false);
		goto out;
	}
	if (cfg.paths_file && cfg.follow) {
		cli_error("--paths replicates a list once: no --follow with it");
		ret = EXIT_USAGE;
		goto out;
	}
	cli_keyring_check(&kr);
	cfg.kr = &kr;
	cfg.log = sync_log;
	cfg.stop = stop_asked;
	if (cfg.follow) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_stop;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
	}
	if (cairn_sync_run(&cfg, &st, &err) < 0) {
		cli_fail("sync", &err);
		goto out;
	}
	if (cfg.paths_file)
		printf("paths of %s: ", cli_safe(cfg.paths_file));
	else
		printf("feed %s at %" PRIu64 ": ", st.feed, st.seq);
	printf("%" PRIu64 " items, %" PRIu64 " copied, %" PRIu64
	       " already there, %" PRIu64 " refused, %" PRIu64 " failed, %" PRIu64
	       " removed, %" PRIu64 " listings and logs, %" PRIu64 " bytes received\n",
	       st.items, st.copied, st.present, st.refused, st.failed, st.removed, st.extras,
	       st.bytes);
	ret = st.refused || st.failed ? EXIT_FAIL : EXIT_OK;
out:
	cairn_keyring_release(&kr);
	return ret;
}
