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

#include "cairn/edge-follow.h"
#include "cairn/edge.h"
#include "cairn/httpd.h"
#include "cairn/keys.h"
#include "cli.h"
#include "cairn/banned.h"

/* What the command line and --config FILE give; the library's defaults until then. */
struct mirror_opts {
	struct cli_list upstreams, listen, gateways;
	const char *cache, *access_log, *port_file, *follow;
	uint64_t follow_bandwidth, follow_budget;
	long follow_rate;
	uint64_t max_size, ipfs_block_cache, ttl, negative_ttl, health_interval, max_backoff, wait, connect_timeout,
		log_interval;
	struct cli_keys keys;
	bool systemd, ipfs;
	const char *ipfs_chunker;
	long threads, priority, require_sigs, ipfs_jobs;
	char *config_text;
};

#define MS_1D 86400000LL
static const struct cli_option mirror_options[] = {
	OPT_LIST(0, "upstream", struct mirror_opts, upstreams, "URL", CAIRN_EDGE_MAX_UPSTREAMS,
		 "a binary cache, in order of priority (repeatable, up to 16)"),
	OPT_STRING(0, "cache", struct mirror_opts, cache, "DIR", "where nars and the index are kept"),
	OPT_SIZE("max-size", struct mirror_opts, max_size, "SIZE",
		 0, "bound the cached nars (bytes; K, M, G, T suffixes)"),
	OPT_TRUSTED_KEY(struct mirror_opts, keys,
			"serve only narinfos signed by a key in FILE (repeatable)"),
	OPT_LIST(0, "listen", struct mirror_opts, listen, "ADDR:PORT", CAIRN_HTTPD_MAX_LISTEN,
		 "127.0.0.1:8080, [::1]:8080, *:8080 (default *:8080;\n"
		 "repeatable; port 0 picks one)"),
	OPT_FLAG(0, "ipfs", struct mirror_opts, ipfs,
		 "serve a trustless IPFS gateway (/ipfs/CID) over the\n"
		 "nars cached, each item indexed once it is cached;\n"
		 "narinfos pass through unchanged"),
	OPT_STRING(0, "ipfs-chunker", struct mirror_opts, ipfs_chunker, "SPEC",
		   "the chunker of --ipfs: fastcdc (default) or size-N;\n"
		   "an item whose upstream named a root made with the\n"
		   "other of fastcdc and size-262144 is cut with that"),
	OPT_LIST(0, "ipfs-gateway", struct mirror_opts, gateways, "URL", CAIRN_EDGE_MAX_GATEWAYS,
		 "an IPFS trustless gateway: the nar at an uncompressed\n"
		 "nar's URL whose narinfo names its CID (IPFS:) is\n"
		 "asked of it first (checked against the CIDs and the\n"
		 "NarHash; the upstreams' file on any failure); repeatable"),
	OPT_INT(0, "ipfs-jobs", struct mirror_opts, ipfs_jobs, "N", 1, 64,
		"nars asked of the gateways at once (default 4)"),
	OPT_SIZE("ipfs-block-cache", struct mirror_opts, ipfs_block_cache, "SIZE", 0,
		 "bound the blocks kept from the gateways (default 256M;\n"
		 "the nars filled from them are in the nar cache)"),
	OPT_FLAG(0, "systemd", struct mirror_opts, systemd, "take the listening sockets from systemd"),
	OPT_INT(0, "threads", struct mirror_opts, threads, "N", 0, CAIRN_HTTPD_MAX_THREADS,
		"event loops (default: one per CPU; misses wait for\n"
		"their upstream on threads of their own)"),
	OPT_DURATION("ttl", struct mirror_opts, ttl, "T", 0, 0, 0,
		     "how long a narinfo is kept (default 1h; ms s m h d)"),
	OPT_DURATION("negative-ttl", struct mirror_opts, negative_ttl, "T", 0, 0, 0,
		     "how long a 404 is kept (default 60s)"),
	OPT_DURATION("health-interval", struct mirror_opts, health_interval, "T", 1, MS_1D, 0,
		     "between upstream health checks (default 5s)"),
	OPT_DURATION("max-backoff", struct mirror_opts, max_backoff, "T", 0, MS_1D, 0,
		     "longest wait before re-probing a failing upstream (60s)"),
	OPT_DURATION("wait", struct mirror_opts, wait, "T", 1, MS_1D, 0,
		     "longest a request waits for an upstream (default 30s)"),
	OPT_DURATION("connect-timeout", struct mirror_opts, connect_timeout, "T", 1, 600000, 0,
		     "per upstream connection attempt (default 2s)"),
	OPT_INT(0, "require-sigs", struct mirror_opts, require_sigs, "K", 1, CAIRN_VERIFY_MAX_SIGNERS,
		"serve a narinfo only when K distinct trusted keys, across the upstreams, signed the "
		"same NarHash, NarSize and References; it carries all their Sig lines (default 1; "
		"above 1 every upstream is asked)"),
	OPT_INT(0, "priority", struct mirror_opts, priority, "N", 0, CAIRN_EDGE_PRIORITY_MAX,
		"the Priority served in nix-cache-info (default: the\n"
		"upstream's; lower is asked first by Nix)"),
	OPT_DURATION("log-interval", struct mirror_opts, log_interval, "T", 1, MS_1D, 0,
		     "at most one line per T for each kind of refused\n"
		     "narinfo, the rest counted (default 10s)"),
	OPT_STRING(0, "follow", struct mirror_opts, follow, "URL",
		   "follow the signed change feed of the head at URL\n"
		   "(cairn publish --feed) and fetch each new item into\n"
		   "the cache before anyone asks; needs --trusted-key"),
	OPT_INT(0, "follow-rate", struct mirror_opts, follow_rate, "N", 0, 1000000,
		"items warmed per second at most (default 10; 0: no bound)"),
	OPT_SIZE("follow-bandwidth", struct mirror_opts, follow_bandwidth, "SIZE", 0,
		 "bytes warmed per second at most (default: no bound)"),
	OPT_SIZE("follow-budget", struct mirror_opts, follow_budget, "SIZE", 0,
		 "bytes warmed in all, then only counted (default: half\n"
		 "of --max-size; no bound without it)"),
	OPT_STRING(0, "access-log", struct mirror_opts, access_log, "FILE",
		   "Combined Log Format (\"-\": stdout)"),
	OPT_STRING(0, "port-file", struct mirror_opts, port_file, "FILE",
		   "write the bound port to FILE once listening"),
	OPT_CONFIG(struct mirror_opts, config_text,
		   "read options from FILE first: one a line, the name\n"
		   "without dashes, then the value (`cache /var/cache/m`);\n"
		   "'#' comments; options given here come after them"),
	OPT_END(),
};

static const struct cli_spec mirror_spec = {
	.usage =
	"usage: cairn mirror --upstream URL [--upstream URL]... --cache DIR [--max-size SIZE]\n"
	"                    [--trusted-key FILE]... [--listen ADDR:PORT]... [--config FILE]\n"
	"                    [options]\n"
	"\n"
	"A caching edge in front of Nix or Guix substitute servers: coalesces\n"
	"concurrent misses into one upstream request, caches a nar only once its\n"
	"hash matches the narinfo, fails over between upstreams.\n"
	"\n",
	.options = mirror_options,
};

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

/* The edge's and the server's configurations from the options. */
static void mirror_configure(const struct mirror_opts *o, struct cairn_edge_config *ec,
			     struct cairn_httpd_config *hc)
{
	for (size_t i = 0; i < o->upstreams.n; i++)
		ec->upstreams[ec->n_upstreams++] = o->upstreams.v[i];
	ec->cache_dir = o->cache;
	ec->max_size = o->max_size;
	ec->positive_ttl = (int64_t)(o->ttl / 1000);
	ec->negative_ttl = (int64_t)(o->negative_ttl / 1000);
	ec->health_interval_ms = (unsigned)o->health_interval;
	ec->max_backoff_ms = (unsigned)o->max_backoff;
	ec->wait_ms = (unsigned)o->wait;
	ec->connect_timeout_ms = (long)o->connect_timeout;
	ec->log_interval_ms = (unsigned)o->log_interval;
	ec->priority = (int)o->priority;
	ec->ipfs = o->ipfs;
	ec->ipfs_chunker = o->ipfs_chunker;
	for (size_t i = 0; i < o->gateways.n; i++)
		ec->ipfs_gateways[ec->n_ipfs_gateways++] = o->gateways.v[i];
	ec->ipfs_jobs = (unsigned)o->ipfs_jobs;
	ec->ipfs_block_cache_max = o->ipfs_block_cache;
	ec->require_sigs = (unsigned)o->require_sigs;
	for (size_t i = 0; i < o->listen.n; i++)
		hc->listen[hc->n_listen++] = o->listen.v[i];
	hc->systemd = o->systemd;
	hc->threads = (unsigned)o->threads;
	hc->access_log = o->access_log;
	hc->port_file = o->port_file;
	if (!hc->n_listen && !hc->systemd)
		hc->listen[hc->n_listen++] = "*:8080";
	if (o->keys.n_files) {
		cli_keyring_check(&o->keys.kr);
		ec->trusted = &o->keys.kr;
	}
}

static void mirror_forget(void *ctx, const char *hashpart)
{
	cairn_edge_forget_narinfo(ctx, hashpart);
}

/* The warm edge (--follow): its configuration, metrics registered on h. */
static int mirror_follow_new(const struct mirror_opts *o, struct cairn_edge *edge,
			     struct cairn_edge_follow **out, struct cairn_httpd *h,
			     struct cairn_error *err)
{
	struct cairn_edge_follow_config fc;
	char state[4200];
	cairn_edge_follow_config_init(&fc);
	fc.feed_url = o->follow;
	fc.trusted = &o->keys.kr;
	snprintf(state, sizeof(state), "%s/follow-state", o->cache);
	fc.state_file = state;
	fc.rate_items = (unsigned)o->follow_rate;
	fc.rate_bytes = o->follow_bandwidth;
	/* by default warming may take half the cache, never push out all that
	 * clients asked for */
	fc.budget = o->follow_budget ? o->follow_budget : o->max_size / 2;
	fc.connect_timeout_ms = (long)o->connect_timeout;
	fc.log = mirror_log;
	fc.forget = mirror_forget;
	fc.forget_ctx = edge;
	return cairn_edge_follow_new(out, &fc, h, err);
}

/* Start it against the first listener; a wildcard address is reached on
 * loopback. */
static int mirror_follow_start(struct cairn_edge_follow *f, struct cairn_httpd *h,
			       struct cairn_error *err)
{
	char addr[256], url[300];
	if (cairn_httpd_listen_addr(h, 0, addr, sizeof(addr)) < 0 || !strncmp(addr, "unix:", 5))
		return cairn_error_set(err, CAIRN_EINVAL,
				       "--follow needs a TCP listener to warm the cache through");
	if (!strncmp(addr, "0.0.0.0:", 8))
		snprintf(url, sizeof(url), "http://127.0.0.1:%s", addr + 8);
	else if (!strncmp(addr, "[::]:", 5))
		snprintf(url, sizeof(url), "http://[::1]:%s", addr + 5);
	else
		snprintf(url, sizeof(url), "http://%s", addr);
	return cairn_edge_follow_start(f, url, err);
}

int cmd_mirror(int argc, char **argv)
{
	struct cairn_edge_config ec;
	struct cairn_httpd_config hc;
	struct mirror_opts o;
	struct cairn_edge *edge = NULL;
	struct cairn_edge_follow *fol = NULL;
	struct cairn_httpd *h = NULL;
	struct cairn_error err;
	int nargs, ret;

	cairn_error_init(&err);
	cairn_edge_config_init(&ec);
	ec.log = mirror_log;
	cairn_httpd_config_init(&hc);
	hc.server_name = "cairn";
	memset(&o, 0, sizeof(o));
	o.keys.kr = (struct cairn_keyring)CAIRN_KEYRING_INIT;
	o.ttl = (uint64_t)ec.positive_ttl * 1000;
	o.negative_ttl = (uint64_t)ec.negative_ttl * 1000;
	o.health_interval = ec.health_interval_ms;
	o.max_backoff = ec.max_backoff_ms;
	o.wait = ec.wait_ms;
	o.connect_timeout = (uint64_t)ec.connect_timeout_ms;
	o.log_interval = ec.log_interval_ms;
	o.priority = ec.priority;
	o.require_sigs = ec.require_sigs;
	o.threads = hc.threads;
	o.follow_rate = CAIRN_EDGE_FOLLOW_RATE_DEFAULT;
	ret = cli_parse_options(&mirror_spec, mirror_options, &o, argc, argv, &nargs);
	if (ret != CLI_GO_ON)
		goto out;
	ret = EXIT_USAGE;
	if (nargs) {
		cli_error("unexpected argument '%s'", argv[0]);
		goto out;
	}
	if (!o.upstreams.n || !o.cache) {
		cli_error("--upstream and --cache are required");
		ret = cli_usage(&mirror_spec, false);
		goto out;
	}
	if (o.follow && !o.keys.n_files) {
		cli_error("--follow needs --trusted-key: the feed's pages are verified with them");
		goto out;
	}
	if (o.require_sigs > 1 && !o.keys.n_files) {
		cli_error("--require-sigs %ld needs --trusted-key", o.require_sigs);
		goto out;
	}
	mirror_configure(&o, &ec, &hc);

	ret = EXIT_FAIL;
	if (cairn_edge_new(&edge, &ec, &err) < 0 || cairn_httpd_new(&h, &hc, &err) < 0 ||
	    cairn_edge_attach(edge, h, &err) < 0 ||
	    (o.follow && mirror_follow_new(&o, edge, &fol, h, &err) < 0)) {
		cli_fail("mirror", &err);
		goto out;
	}
	cli_serve_signals(h);
	if (cairn_httpd_start(h, &err) < 0 || cairn_edge_start(edge, &err) < 0 ||
	    (fol && mirror_follow_start(fol, h, &err) < 0)) {
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
	cairn_edge_follow_free(fol);
	cairn_edge_stop(edge);
	cairn_httpd_free(h);
	cairn_edge_free(edge);
	cairn_keyring_release(&o.keys.kr);
	cli_options_release(mirror_options, &o);
	return ret;
}
