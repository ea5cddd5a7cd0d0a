/*
 * cmd-mirror.c - `cairn mirror`: a caching edge in front of substitute
 * servers.  Option parsing and wiring only; the edge is lib/edge*.c on the
 * HTTP layer (lib/httpd*.c) and client (lib/http.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn/edge.h"
#include "cairn/httpd.h"
#include "cairn/keys.h"
#include "cli.h"
#include "cairn/banned.h"

const char cmd_mirror_usage[] =
	"usage: cairn mirror --upstream URL [--upstream URL]... --cache DIR [--max-size SIZE]\n"
	"                    [--trusted-key FILE]... [--listen ADDR:PORT]... [--config FILE]\n"
	"                    [options]\n"
	"\n"
	"A caching edge in front of Nix or Guix substitute servers: coalesces\n"
	"concurrent misses into one upstream request, caches a nar only once its\n"
	"hash matches the narinfo, fails over between upstreams.\n"
	"\n"
	"  --upstream URL       a binary cache, in order of priority (repeatable, up to 16)\n"
	"  --cache DIR          where nars and the index are kept\n"
	"  --max-size SIZE      bound the cached nars (bytes; K, M, G, T suffixes)\n"
	"  --trusted-key FILE   serve only narinfos signed by a key in FILE (repeatable)\n"
	"  --require-sigs K     serve a narinfo only when K distinct trusted keys,\n"
	"                       across the upstreams, signed the same NarHash, NarSize\n"
	"                       and References; it carries all their Sig lines\n"
	"                       (default 1; above 1 every upstream is asked)\n"
	"  --listen ADDR:PORT   127.0.0.1:8080, [::1]:8080, *:8080 (default *:8080;\n"
	"                       repeatable; port 0 picks one)\n"
	"  --systemd            take the listening sockets from systemd\n"
	"  --threads N          event loops (default: one per CPU; misses wait for\n"
	"                       their upstream on threads of their own)\n"
	"  --ttl T              how long a narinfo is kept (default 1h; ms s m h d)\n"
	"  --negative-ttl T     how long a 404 is kept (default 60s)\n"
	"  --health-interval T  between upstream health checks (default 5s)\n"
	"  --max-backoff T      longest wait before re-probing a failing upstream (60s)\n"
	"  --wait T             longest a request waits for an upstream (default 30s)\n"
	"  --connect-timeout T  per upstream connection attempt (default 2s)\n"
	"  --priority N         the Priority served in nix-cache-info (default: the\n"
	"                       upstream's; lower is asked first by Nix)\n"
	"  --log-interval T     at most one line per T for each kind of refused\n"
	"                       narinfo, the rest counted (default 10s)\n"
	"  --access-log FILE    Combined Log Format (\"-\": stdout)\n"
	"  --port-file FILE     write the bound port to FILE once listening\n"
	"  --config FILE        read options from FILE first: one a line, the name\n"
	"                       without dashes, then the value (`cache /var/cache/m`);\n"
	"                       '#' comments; options given here come after them\n";

/* The library's lines: what it does on stderr as it is, what needs looking
 * at as a warning. */
static void mirror_log(void *ctx, enum cairn_edge_log_level level, const char *msg)
{
	(void)ctx;
	if (level == CAIRN_EDGE_LOG_WARN)
		cli_warn("%s", msg);
	else
		fprintf(stderr, "%s: %s\n", cli_progname, msg);
}

int cmd_mirror(int argc, char **argv)
{
	struct cairn_edge_config ec;
	struct cairn_httpd_config hc;
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	struct cairn_edge *edge = NULL;
	struct cairn_httpd *h = NULL;
	struct cairn_error err;
	const char *port_file = NULL;
	int have_keys = 0, ret = EXIT_FAIL;

	if (cli_wants_help(argc, argv))
		return cli_usage(cmd_mirror_usage, true);
	cairn_error_init(&err);
	cairn_edge_config_init(&ec);
	ec.log = mirror_log;
	cairn_httpd_config_init(&hc);
	hc.server_name = "cairn";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--systemd")) {
			hc.systemd = 1;
			continue;
		}
		if (a[0] != '-' || i + 1 >= argc) {
			cli_error("unknown or incomplete option '%s'", a);
			ret = cli_usage(cmd_mirror_usage, false);
			goto out;
		}
		const char *v = argv[++i];
		uint64_t n;
		char *end;
		if (!strcmp(a, "--upstream")) {
			if (ec.n_upstreams == CAIRN_EDGE_MAX_UPSTREAMS) {
				cli_error("at most %d --upstream", CAIRN_EDGE_MAX_UPSTREAMS);
				ret = EXIT_USAGE;
				goto out;
			}
			ec.upstreams[ec.n_upstreams++] = v;
		} else if (!strcmp(a, "--cache")) {
			ec.cache_dir = v;
		} else if (!strcmp(a, "--max-size")) {
			if (cli_parse_size(v, &ec.max_size) < 0) {
				cli_error("--max-size: '%s' is not a size", v);
				ret = EXIT_USAGE;
				goto out;
			}
		} else if (!strcmp(a, "--trusted-key")) {
			if (cli_load_keyring(&kr, v) != EXIT_OK)
				goto out;
			have_keys = 1;
		} else if (!strcmp(a, "--listen")) {
			if (hc.n_listen == CAIRN_HTTPD_MAX_LISTEN) {
				cli_error("at most %d --listen", CAIRN_HTTPD_MAX_LISTEN);
				ret = EXIT_USAGE;
				goto out;
			}
			hc.listen[hc.n_listen++] = v;
		} else if (!strcmp(a, "--threads")) {
			unsigned long t = strtoul(v, &end, 10);
			if (*end || !*v || t > CAIRN_HTTPD_MAX_THREADS) {
				cli_error("--threads takes 0..%d", CAIRN_HTTPD_MAX_THREADS);
				ret = EXIT_USAGE;
				goto out;
			}
			hc.threads = (unsigned)t;
		} else if (!strcmp(a, "--access-log")) {
			hc.access_log = v;
		} else if (!strcmp(a, "--port-file")) {
			port_file = v;
		} else if (!strcmp(a, "--require-sigs")) {
			unsigned long k = strtoul(v, &end, 10);
			if (*end || !*v || *v == '-' || k < 1 || k > CAIRN_VERIFY_MAX_SIGNERS) {
				cli_error("--require-sigs takes 1..%d", CAIRN_VERIFY_MAX_SIGNERS);
				ret = EXIT_USAGE;
				goto out;
			}
			ec.require_sigs = (unsigned)k;
		} else if (!strcmp(a, "--priority")) {
			unsigned long p = strtoul(v, &end, 10);
			if (*end || !*v || *v == '-' || p > CAIRN_EDGE_PRIORITY_MAX) {
				cli_error("--priority takes 0..%d", CAIRN_EDGE_PRIORITY_MAX);
				ret = EXIT_USAGE;
				goto out;
			}
			ec.priority = (int)p;
		} else {
			if (cli_parse_ms(v, &n) < 0) {
				cli_error("%s: '%s' is not a duration", a, v);
				ret = EXIT_USAGE;
				goto out;
			}
			if (!strcmp(a, "--ttl")) {
				ec.positive_ttl = (int64_t)(n / 1000);
			} else if (!strcmp(a, "--negative-ttl")) {
				ec.negative_ttl = (int64_t)(n / 1000);
			} else if (!strcmp(a, "--health-interval") && n > 0 && n <= 86400000) {
				ec.health_interval_ms = (unsigned)n;
			} else if (!strcmp(a, "--max-backoff") && n <= 86400000) {
				ec.max_backoff_ms = (unsigned)n;
			} else if (!strcmp(a, "--wait") && n > 0 && n <= 86400000) {
				ec.wait_ms = (unsigned)n;
			} else if (!strcmp(a, "--connect-timeout") && n > 0 && n <= 600000) {
				ec.connect_timeout_ms = (long)n;
			} else if (!strcmp(a, "--log-interval") && n > 0 && n <= 86400000) {
				ec.log_interval_ms = (unsigned)n;
			} else {
				cli_error("unknown option or bad value '%s %s'", a, v);
				ret = cli_usage(cmd_mirror_usage, false);
				goto out;
			}
		}
	}
	if (!ec.n_upstreams || !ec.cache_dir) {
		cli_error("--upstream and --cache are required");
		ret = cli_usage(cmd_mirror_usage, false);
		goto out;
	}
	if (!hc.n_listen && !hc.systemd)
		hc.listen[hc.n_listen++] = "*:8080";
	if (ec.require_sigs > 1 && !have_keys) {
		cli_error("--require-sigs %u needs --trusted-key", ec.require_sigs);
		ret = EXIT_USAGE;
		goto out;
	}
	if (have_keys) {
		cli_keyring_check(&kr);
		ec.trusted = &kr;
	}

	hc.port_file = port_file;
	if (cairn_edge_new(&edge, &ec, &err) < 0 || cairn_httpd_new(&h, &hc, &err) < 0 ||
	    cairn_edge_attach(edge, h, &err) < 0) {
		cli_fail("mirror", &err);
		goto out;
	}
	cli_serve_signals(h);
	if (cairn_httpd_start(h, &err) < 0 || cairn_edge_start(edge, &err) < 0) {
		cli_fail("mirror", &err);
		goto out;
	}
	if (cairn_httpd_wait(h, &err) < 0) {
		cli_fail("mirror", &err);
		goto out;
	}
	ret = EXIT_OK;
out:
	cli_serve_signals(NULL);
	cairn_edge_stop(edge);
	cairn_httpd_free(h);
	cairn_edge_free(edge);
	cairn_keyring_release(&kr);
	return ret;
}
