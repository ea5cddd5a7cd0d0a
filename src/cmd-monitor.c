/*
 * cmd-monitor.c - `cairn monitor`: watch several binary caches, record
 * what each serves, and report where they disagree (lib/monitor*.c).
 * Option parsing and wiring only.
 */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/httpd.h"
#include "cairn/keys.h"
#include "cairn/hash.h"
#include "cairn/monitor.h"
#include "cli.h"
#include "cairn/banned.h"

struct monitor_opts {
	struct cli_list from, listen, peers;
	const char *db, *paths, *port_file, *access_log, *key, *store, *store_db, *diffoscope;
	struct cli_keys keys;
	long interval, retention, threads;
	uint64_t poll;
	bool no_diff;
};

static const struct cli_option monitor_options[] = {
	OPT_LIST(0, "from", struct monitor_opts, from, "URL", CAIRN_MONITOR_MAX_SERVERS,
		 "a binary cache to watch (repeatable); its change feed\n"
		 "is followed when it has one"),
	OPT_STRING(0, "db", struct monitor_opts, db, "FILE",
		   "the monitor's database (SQLite; created when missing)"),
	OPT_LIST(0, "listen", struct monitor_opts, listen, "ADDR:PORT", CAIRN_HTTPD_MAX_LISTEN,
		 "where the report and the API are served\n"
		 "(default 127.0.0.1:8080; repeatable; port 0 picks one)"),
	OPT_STRING(0, "paths", struct monitor_opts, paths, "FILE|URL",
		   "store paths to ask every server about (for servers without a feed):\n"
		   "a file, one a line, or the URL of a Hydra-style store-paths.xz;\n"
		   "re-read at each full pass"),
	OPT_STRING(0, "store", struct monitor_opts, store, "ROOT",
		   "compare the local store under ROOT too ('/' is the real\n"
		   "store): its NarHash, NarSize and References, from its database"),
	OPT_STRING(0, "store-db", struct monitor_opts, store_db, "FILE",
		   "the --store's database (default: the kind's, under ROOT)"),
	OPT_TRUSTED_KEY(struct monitor_opts, keys,
			"a key feeds and narinfos may be signed by (repeatable);\n"
			"a feed is followed only when one signed it"),
	OPT_INT(0, "interval", struct monitor_opts, interval, "S", 1, 86400 * 7,
		"seconds between full passes over every known item\n(default 300)"),
	OPT_DURATION("poll", struct monitor_opts, poll, "T", 50, 600000, 0,
		     "between reads of the feeds (default 1s; ms s m)"),
	OPT_INT(0, "retention", struct monitor_opts, retention, "DAYS", 1, 36500,
		"days of history kept, and of items no server has\n(default 90)"),
	OPT_STRING(0, "key", struct monitor_opts, key, "FILE",
		   "keep a log of what the monitor saw, signed with this\n"
		   "Nix secret key, served at /api/v1/log"),
	OPT_LIST(0, "peer", struct monitor_opts, peers, "URL", CAIRN_MONITOR_MAX_SERVERS,
		 "another monitor whose signed log (verified with the\n"
		 "--trusted-key keys) is shown beside this one's\n"
		 "observations (repeatable)"),
	OPT_FLAG(0, "no-diff", struct monitor_opts, no_diff,
		 "do not download differing NARs to list the files\nthat differ"),
	OPT_STRING(0, "diffoscope", struct monitor_opts, diffoscope, "PROG",
		   "the diffoscope run on differing NARs (default\n"
		   "'diffoscope' when installed; '' never)"),
	OPT_INT(0, "threads", struct monitor_opts, threads, "N", 0, CAIRN_HTTPD_MAX_THREADS,
		"event loops serving the report (default 1)"),
	OPT_STRING(0, "access-log", struct monitor_opts, access_log, "FILE",
		   "Combined Log Format (\"-\": stdout)"),
	OPT_STRING(0, "port-file", struct monitor_opts, port_file, "FILE",
		   "write the bound port to FILE once listening"),
	OPT_END(),
};

static const struct cli_spec monitor_spec = {
	.usage =
	"usage: cairn monitor --from URL [--from URL]... --db FILE [--listen ADDR:PORT]\n"
	"                     [--paths FILE|URL] [--store ROOT] [--trusted-key FILE]...\n"
	"                     [--interval S]\n"
	"                     [options]\n"
	"\n"
	"Watch binary caches and record, for every store item, what each serves\n"
	"(NarHash, NarSize, References, signature state), and a verdict: agree,\n"
	"differs, invalid, only-one, unsigned or absent, with its history.  Items\n"
	"come from the caches' signed change feeds and from --paths.  On differs,\n"
	"the NARs are downloaded, checked and compared file by file.  The report\n"
	"(HTML), an Atom feed of disagreements, a JSON API (/api/v1/...) and\n"
	"/metrics are served on --listen until SIGTERM or SIGINT.\n"
	"\n"
	"       cairn monitor verify LOG --trusted-key FILE [--trusted-key FILE]...\n"
	"\n"
	"Check a monitor's observation log (GET /api/v1/log of a monitor run with\n"
	"--key): its layout, its hash and a signature by a trusted key.\n"
	"\n",
	.options = monitor_options,
};

struct verify_opts {
	struct cli_keys keys;
};

static const struct cli_option verify_options[] = {
	OPT_TRUSTED_KEY(struct verify_opts, keys, "a key the log may be signed by (repeatable)"),
	OPT_END(),
};

static const struct cli_spec verify_spec = {
	.usage = "usage: cairn monitor verify LOG --trusted-key FILE [--trusted-key FILE]...\n"
		 "\n"
		 "Check a monitor's observation log ('-': stdin): its layout, its hash\n"
		 "and a signature by a trusted key.  Exit 0 when it verifies.\n"
		 "\n",
	.options = verify_options,
};

static int monitor_verify(int argc, char **argv)
{
	struct verify_opts o;
	struct cairn_error err;
	char *text = NULL;
	size_t len = 0;
	struct cairn_monitor_log_head head;
	int nargs, ret;

	memset(&o, 0, sizeof(o));
	o.keys.kr = (struct cairn_keyring)CAIRN_KEYRING_INIT;
	cairn_error_init(&err);
	ret = cli_parse_options(&verify_spec, verify_options, &o, argc, argv, &nargs);
	if (ret != CLI_GO_ON)
		goto out;
	ret = EXIT_USAGE;
	if (nargs != 1 || !o.keys.n_files) {
		cli_error("one LOG and at least one --trusted-key are required");
		goto out;
	}
	ret = EXIT_FAIL;
	if (cli_read_file(argv[0], CAIRN_MONITOR_LOG_MAX, &text, &len, &err) < 0 ||
	    cairn_monitor_log_verify(text, len, &o.keys.kr, &head, NULL, NULL, &err) < 0) {
		cli_fail(argv[0], &err);
		goto out;
	}
	printf("monitor %s: %" PRIu64 " observations, signed by a trusted key\n", head.monitor,
	       head.count);
	if (head.base) {
		char chain[65];
		cairn_base16_encode(head.base_chain, sizeof(head.base_chain), chain);
		chain[64] = '\0';
		printf("the first %" PRIu64 " were pruned; their chained digest: %s\n", head.base,
		       chain);
	}
	ret = EXIT_OK;
out:
	free(text);
	cairn_keyring_release(&o.keys.kr);
	cli_options_release(verify_options, &o);
	return ret;
}

/* --key: a Nix secret key (the log is signed Ed25519, as narinfos are). */
static int load_key(const char *path, struct cairn_nix_seckey *out)
{
	struct cairn_error err;
	struct cairn_seckey sk;
	char *text = NULL;
	size_t len = 0;
	int rc;
	cairn_error_init(&err);
	if (cli_read_file(path, 8192, &text, &len, &err) < 0)
		return cli_fail(path, &err);
	rc = cairn_seckey_parse(text, len, &sk, &err);
	sodium_memzero(text, len);
	free(text);
	if (rc < 0)
		return cli_fail(path, &err);
	if (sk.kind != CAIRN_KEY_NIX) {
		cairn_seckey_wipe(&sk);
		cli_error("%s: the log is signed with a Nix key (cairn key generate --format nix)",
			  cli_safe(path));
		return EXIT_USAGE;
	}
	*out = sk.u.nix;
	cairn_seckey_wipe(&sk);
	return 0;
}

static void monitor_log(void *ctx, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "%s: %s\n", cli_progname, cli_safe(msg));
}

int cmd_monitor(int argc, char **argv)
{
	struct cairn_monitor_config mc;
	struct cairn_httpd_config hc;
	struct monitor_opts o;
	struct cairn_monitor *m = NULL;
	struct cairn_httpd *h = NULL;
	struct cairn_error err;
	struct cairn_nix_seckey key;
	bool have_key = false;
	int nargs, ret;

	if (argc > 1 && strcmp(argv[1], "verify") == 0)
		return monitor_verify(argc - 1, argv + 1);
	cairn_error_init(&err);
	cairn_monitor_config_init(&mc);
	cairn_httpd_config_init(&hc);
	hc.server_name = "cairn";
	memset(&o, 0, sizeof(o));
	o.keys.kr = (struct cairn_keyring)CAIRN_KEYRING_INIT;
	o.interval = mc.interval;
	o.retention = mc.retention_days;
	o.poll = mc.feed_poll_ms;
	o.threads = 1;
	ret = cli_parse_options(&monitor_spec, monitor_options, &o, argc, argv, &nargs);
	if (ret != CLI_GO_ON)
		goto out;
	ret = EXIT_USAGE;
	if (nargs) {
		cli_error("unexpected argument '%s'", argv[0]);
		goto out;
	}
	if (!o.from.n || !o.db) {
		cli_error("--from and --db are required");
		ret = cli_usage(&monitor_spec, false);
		goto out;
	}
	if (o.store_db && !o.store) {
		cli_error("--store-db needs --store");
		goto out;
	}
	if (o.keys.n_files)
		cli_keyring_check(&o.keys.kr);
	if (o.peers.n && !o.keys.n_files) {
		cli_error("--peer needs --trusted-key: a peer's log is used only once verified");
		goto out;
	}
	if (o.key) {
		if ((ret = load_key(o.key, &key)) != 0)
			goto out;
		have_key = true;
		mc.key = &key;
	}
	mc.peers = o.peers.v;
	mc.n_peers = o.peers.n;
	mc.servers = o.from.v;
	mc.n_servers = o.from.n;
	mc.db_path = o.db;
	mc.paths_file = o.paths;
	mc.store_root = o.store;
	mc.store_db = o.store_db;
	mc.kr = &o.keys.kr;
	mc.interval = (unsigned)o.interval;
	mc.feed_poll_ms = (unsigned)o.poll;
	mc.retention_days = (unsigned)o.retention;
	mc.diff = !o.no_diff;
	mc.diffoscope = o.diffoscope;
	mc.log = monitor_log;
	for (size_t i = 0; i < o.listen.n; i++)
		hc.listen[hc.n_listen++] = o.listen.v[i];
	if (!hc.n_listen)
		hc.listen[hc.n_listen++] = "127.0.0.1:8080";
	hc.threads = (unsigned)o.threads;
	hc.port_file = o.port_file;
	hc.access_log = o.access_log;

	ret = EXIT_FAIL;
	if (cairn_monitor_new(&m, &mc, &err) < 0 || cairn_httpd_new(&h, &hc, &err) < 0 ||
	    cairn_monitor_routes(m, h, &err) < 0) {
		cli_fail("monitor", &err);
		goto out;
	}
	cli_serve_signals(h);
	if (cairn_httpd_start(h, &err) < 0 || cairn_monitor_start(m, &err) < 0 ||
	    cairn_httpd_wait(h, &err) < 0) {
		cli_fail("monitor", &err);
		goto out;
	}
	ret = EXIT_OK;
out:
	cli_serve_signals(NULL);
	/* the observer first: the pages no longer run once wait returned */
	cairn_monitor_free(m);
	cairn_httpd_free(h);
	if (have_key)
		cairn_nix_seckey_wipe(&key);
	cairn_keyring_release(&o.keys.kr);
	cli_options_release(monitor_options, &o);
	return ret;
}
