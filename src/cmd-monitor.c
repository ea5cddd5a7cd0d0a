/*
 * cmd-monitor.c - `cairn monitor`: watch several binary caches, record
 * what each serves, and report where they disagree (lib/monitor*.c).
 * Option parsing and wiring only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/httpd.h"
#include "cairn/keys.h"
#include "cairn/monitor.h"
#include "cli.h"
#include "cairn/banned.h"

struct monitor_opts {
	struct cli_list from, listen;
	const char *db, *paths, *port_file, *access_log;
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
	OPT_STRING(0, "paths", struct monitor_opts, paths, "FILE",
		   "store paths to ask every server about, one a line\n"
		   "(for servers without a feed), re-read at each full pass"),
	OPT_TRUSTED_KEY(struct monitor_opts, keys,
			"a key feeds and narinfos may be signed by (repeatable);\n"
			"a feed is followed only when one signed it"),
	OPT_INT(0, "interval", struct monitor_opts, interval, "S", 1, 86400 * 7,
		"seconds between full passes over every known item\n(default 300)"),
	OPT_DURATION("poll", struct monitor_opts, poll, "T", 50, 600000, 0,
		     "between reads of the feeds (default 1s; ms s m)"),
	OPT_INT(0, "retention", struct monitor_opts, retention, "DAYS", 1, 36500,
		"days of history kept, and of items no server has\n(default 90)"),
	OPT_FLAG(0, "no-diff", struct monitor_opts, no_diff,
		 "do not download differing NARs to list the files\nthat differ"),
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
	"                     [--paths FILE] [--trusted-key FILE]... [--interval S]\n"
	"                     [options]\n"
	"\n"
	"Watch binary caches and record, for every store item, what each serves\n"
	"(NarHash, NarSize, References, signature state), and a verdict: agree,\n"
	"differs, invalid, only-one, unsigned or absent, with its history.  Items\n"
	"come from the caches' signed change feeds and from --paths.  On differs,\n"
	"the NARs are downloaded, checked and compared file by file.  The report\n"
	"(HTML), an Atom feed of disagreements, a JSON API (/api/v1/...) and\n"
	"/metrics are served on --listen until SIGTERM or SIGINT.\n"
	"\n",
	.options = monitor_options,
};

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
	int nargs, ret;

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
	if (o.keys.n_files)
		cli_keyring_check(&o.keys.kr);
	mc.servers = o.from.v;
	mc.n_servers = o.from.n;
	mc.db_path = o.db;
	mc.paths_file = o.paths;
	mc.kr = &o.keys.kr;
	mc.interval = (unsigned)o.interval;
	mc.feed_poll_ms = (unsigned)o.poll;
	mc.retention_days = (unsigned)o.retention;
	mc.diff = !o.no_diff;
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
	cairn_keyring_release(&o.keys.kr);
	cli_options_release(monitor_options, &o);
	return ret;
}
