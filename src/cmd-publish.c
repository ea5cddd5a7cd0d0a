/*
 * cmd-publish.c - `cairn publish`: serve a local Nix or Guix store (or a
 * binary-cache directory) over HTTP.  Option parsing and wiring only; the
 * server is lib/publish*.c on lib/httpd*.c.
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cairn/feed.h"
#include "cairn/httpd.h"
#include "cairn/keys.h"
#include "cairn/publish.h"
#include "cairn/storeloc.h"
#include "cli.h"
#include "cairn/banned.h"

struct publish_opts {
	const char *store, *db, *store_dir, *log_dir, *binary_cache, *host, *cache;
	const char *compression, *access_log, *user, *port_file;
	int dialect; /* 0: from the store directory */
	int verify;  /* enum cairn_publish_verify */
	struct cli_list keys, listen;
	uint64_t cache_max, slow_rate, ttl, negative_ttl;
	long bake_workers, threads, priority;
	const char *feed;
	uint64_t feed_keep;
	bool systemd, ipfs;
	const char *ipfs_chunker;
	char *config_text;
};

static const struct cli_choice dialects[] = {
	{"nix", CAIRN_PUBLISH_NIX}, {"guix", CAIRN_PUBLISH_GUIX}, {NULL, 0}};
static const struct cli_choice verify_modes[] = {
	{"background", CAIRN_PUBLISH_VERIFY_BACKGROUND},
	{"strict", CAIRN_PUBLISH_VERIFY_STRICT},
	{"off", CAIRN_PUBLISH_VERIFY_OFF},
	{NULL, 0}};

/* --slow-compression-rate says what a rate is when it is not one */
static int opt_rate(void *target, const struct cli_option *opt, const char *v)
{
	if (cli_parse_size(v, target) < 0) {
		cli_error("--%s: '%s' is not a rate (bytes per second, K, M, G suffixes)",
			  opt->long_name, v);
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

#define P struct publish_opts
static const struct cli_option publish_options[] = {
	OPT_GROUP("source:"),
	OPT_STRING(0, "store", P, store, "ROOT",
		   "serve the store under ROOT, as `nix --store ROOT`:\n"
		   "ROOT/nix/store (or ROOT/gnu/store) served as /nix/store\n"
		   "with ROOT's database (default: the real store, /nix/store\n"
		   "or /gnu/store when only that exists).  The old form, the\n"
		   "store directory itself (.../nix/store), still works and\n"
		   "is deprecated."),
	OPT_STRING(0, "db", P, db, "FILE",
		   "the store database (default: ROOT/nix/var/nix/db/db.sqlite\n"
		   "or ROOT/var/guix/db/db.sqlite)"),
	OPT_STRING(0, "store-dir", P, store_dir, "DIR",
		   "the store directory (default /nix/store or /gnu/store);\n"
		   "its files are at ROOT/DIR"),
	OPT_STRING(0, "log-dir", P, log_dir, "DIR",
		   "build logs (default: beside the database,\n"
		   ".../var/log/nix/drvs or .../var/log/guix/drvs)"),
	OPT_STRING(0, "binary-cache", P, binary_cache, "DIR",
		   "serve a `nix copy --to file://DIR` directory as it is\n"
		   "instead of a store (and many of its narinfos a request:\n"
		   "GET /narinfos; with --ipfs, blocks cut from its nars)"),
	OPT_CHOICE("dialect", P, dialect, "nix|guix",
		   dialects, "narinfo dialect (default: guix for /gnu/store, else nix)"),
	OPT_GROUP("signing and compression:"),
	OPT_LIST(0, "key", P, keys, "FILE", CAIRN_PUBLISH_MAX_KEYS,
		 "sign with this secret key (Nix or Guix; repeatable,\n"
		 "one Guix key at most)"),
	OPT_STRING(0, "host", P, host, "NAME", "host named in Guix signatures (default: hostname)"),
	OPT_STRING(0, "compression", P, compression, "LIST",
		   "e.g. zstd:3,xz:6,none (default zstd:3); Nix narinfos\n"
		   "name the first, Guix narinfos list each (Guix clients\n"
		   "without guile-zstd need gzip or lzip listed too).\n"
		   "Items that do not compress are offered uncompressed."),
	OPT_CALLBACK(0, "slow-compression-rate", P, slow_rate, "RATE", opt_rate, 0,
		     "say once per method when it compresses fewer bytes of\n"
		     "nar per CPU second than RATE (default 20M; K, M, G\n"
		     "suffixes; 0: never)"),
	OPT_STRING(0, "cache", P, cache, "DIR",
		   "keep compressed nars in DIR (baked in the background);\n"
		   "with --binary-cache, only --ipfs's chunk indexes"),
	OPT_STRING(0, "feed", P, feed, "DIR",
		   "serve a signed feed of the items added and removed (/feed/events, "
		   "/feed/snapshot), its log kept in DIR/feed.sqlite; signed with the --key keys "
		   "(with --binary-cache too; docs/PROTOCOL.md)"),
	OPT_SIZE("feed-keep", P, feed_keep, "N", 0,
		 "events kept for followers (default 1000000); one further behind bootstraps "
		 "from the snapshot"),
	OPT_SIZE("cache-max-size", P, cache_max, "N", 0,
		 "bound the cache (bytes; K, M, G, T suffixes)"),
	OPT_INT(0, "bake-workers", P, bake_workers, "N", 1, 64,
		"background compression threads (default 1)"),
	OPT_FLAG(0, "ipfs", P, ipfs,
		 "serve a trustless IPFS gateway (/ipfs/CID: raw blocks and\n"
		 "CARs cut from the nars) and name each item's root CID in\n"
		 "its narinfo (IPFS: field; indexed once per item)"),
	OPT_STRING(0, "ipfs-chunker", P, ipfs_chunker, "SPEC",
		   "the chunker of --ipfs: fastcdc (default: versions\n"
		   "share blocks) or size-N (the CIDs of ipfs add)"),
	OPT_CHOICE("verify", P, verify, "MODE", verify_modes,
		   "check nars made from the store against NarHash, once\n"
		   "per item: background (default: after the first stream,\n"
		   "at idle priority), strict (the first stream hashes as\n"
		   "it goes and fails unless it matches), off (size only).\n"
		   "A mismatch withdraws the item and is reported here."),
	OPT_GROUP("HTTP:"),
	OPT_LIST(0, "listen", P, listen, "ADDR:PORT", CAIRN_HTTPD_MAX_LISTEN,
		 "127.0.0.1:8080, [::1]:8080, *:8080 (default *:8080;\n"
		 "repeatable; port 0 picks one)"),
	OPT_FLAG(0, "systemd", P, systemd, "take the listening sockets from systemd"),
	OPT_INT(0, "threads", P, threads, "N", 0, CAIRN_HTTPD_MAX_THREADS,
		"event loops (default: one per CPU)"),
	OPT_DURATION("ttl", P, ttl, "T", 0, 0, CLI_OPT_SECONDS,
		     "narinfo Cache-Control max-age (default 1h; s m h d)"),
	OPT_DURATION("negative-ttl", P, negative_ttl, "T", 0, 0, CLI_OPT_SECONDS,
		     "404 max-age (default 60s; 0: no-store)"),
	OPT_INT(0, "priority", P, priority, "N", 0, 1000000, "Priority in nix-cache-info (default 30)"),
	OPT_STRING(0, "access-log", P, access_log, "FILE", "Combined Log Format (\"-\": stdout)"),
	OPT_STRING(0, "user", P, user, "USER", "drop privileges once the keys and sockets are open"),
	OPT_STRING(0, "port-file", P, port_file, "FILE", "write the bound port to FILE once listening"),
	OPT_CONFIG(P, config_text,
		   "read options from FILE first: one a line, the name\n"
		   "without dashes, then the value (`listen *:8080`);\n"
		   "'#' comments; options given here come after them"),
	OPT_END(),
};
#undef P

static const struct cli_spec publish_spec = {
	.usage =
	"usage: cairn publish [--store ROOT] [--db FILE] [--binary-cache DIR] [--key FILE]...\n"
	"                     [--cache DIR] [--compression LIST] [--listen ADDR:PORT]...\n"
	"                     [--ttl T] [--negative-ttl T] [--config FILE] [options]\n"
	"\n"
	"Serve a local store as a binary cache for Nix and Guix clients: narinfos\n"
	"signed on the fly, nars compressed on the fly (and baked into --cache in the\n"
	"background), never a 404 for a valid store path.\n"
	"\n",
	.options = publish_options,
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), sl = strlen(suffix);
	return n >= sl && strcmp(s + n - sl, suffix) == 0;
}

/* The cache is created before privileges are dropped: hand it (and the
 * directories the server writes into) to the user the server becomes. */
static int chown_cache(const char *cache, const char *user)
{
	struct passwd *pw = getpwnam(user);
	static const char *const sub[] = {"", "/nar", "/info", "/tmp"};
	char path[4096];
	if (!pw) {
		cli_error("--user: no user '%s'", user);
		return -1;
	}
	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", cache, sub[i]);
		if (chown(path, pw->pw_uid, pw->pw_gid) < 0) {
			cli_error("cannot hand '%s' to '%s': %s", path, user, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* A directory the server needs: 0, or -1 with a message saying what is wrong. */
static int need_dir(const char *what, const char *dir)
{
	struct stat sb;
	if (stat(dir, &sb) < 0) {
		if (errno == ENOENT)
			cli_error("%s '%s' does not exist", what, dir);
		else
			cli_error("cannot use %s '%s': %s", what, dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode)) {
		cli_error("%s '%s' is not a directory", what, dir);
		return -1;
	}
	return 0;
}

/* What the server tells the operator while it keeps serving. */
static void publish_log(void *ctx, const char *msg)
{
	(void)ctx;
	cli_warn("%s", msg);
}

static int load_key(const char *path, struct cairn_seckey *sk)
{
	struct cairn_error err;
	char *text = NULL;
	size_t len = 0;
	cairn_error_init(&err);
	if (cli_read_file(path, CAIRN_KEYFILE_MAX, &text, &len, &err) < 0)
		return cli_fail(path, &err);
	int rc = cairn_seckey_parse(text, len, sk, &err);
	sodium_memzero(text, len);
	free(text);
	if (rc < 0)
		return cli_fail(path, &err);
	return 0;
}


/*
 * --store: a root, as in fetch and challenge.  The old form named the
 * store directory itself: .../nix/store or .../gnu/store (its root is
 * what comes before), or, with --db, a directory of its own served under
 * its own name.  Both still work, with a warning saying what to write.
 */
static int publish_locate(const struct publish_opts *o, struct cairn_storeloc *loc)
{
	struct cairn_storeloc_config lc;
	struct cairn_error err;
	char *s = o->store ? strdup(o->store) : NULL;
	if (o->store && !s) {
		cli_error("out of memory");
		return EXIT_FAIL;
	}
	for (size_t n = s ? strlen(s) : 0; n > 1 && s[n - 1] == '/';)
		s[--n] = '\0';
	cairn_storeloc_config_init(&lc);
	lc.root = s;
	lc.store_dir = o->store_dir;
	lc.db_path = o->db;
	lc.log_dir = o->log_dir;
	cairn_error_init(&err);
	if (o->store_dir && ends_with(o->store_dir, "/gnu/store"))
		lc.kind = CAIRN_STOREDB_GUIX;
	if (s && (ends_with(s, "/nix/store") || ends_with(s, "/gnu/store"))) {
		lc.kind = ends_with(s, "/gnu/store") ? CAIRN_STOREDB_GUIX : CAIRN_STOREDB_NIX;
		s[strlen(s) - strlen("/nix/store")] = '\0';
		cli_warn("--store '%s': a store directory is deprecated here; give its root, "
			 "as fetch and challenge take it: --store '%s'",
			 o->store, s[0] ? s : "/");
	} else if (s && o->db && !o->store_dir) {
		struct stat sb;
		char probe[4096];
		snprintf(probe, sizeof(probe), "%s/nix/store", s);
		bool nix = stat(probe, &sb) == 0;
		snprintf(probe, sizeof(probe), "%s/gnu/store", s);
		if (!nix && stat(probe, &sb) != 0 && stat(s, &sb) == 0) {
			cli_warn("--store '%s' --db FILE: a store directory of its own is "
				 "deprecated here; give it as --store-dir '%s'",
				 s, s);
			lc.root = NULL;
			lc.store_dir = s;
		}
	}
	int rc = cairn_storeloc_locate(loc, &lc, &err);
	free(s);
	if (rc)
		return cli_fail("--store", &err);
	return EXIT_OK;
}

/* The store to serve, its database and logs: EXIT_OK or why not. */
static int publish_find_store(const struct publish_opts *o, struct cairn_storeloc *loc)
{
	struct stat sb;
	int ret = publish_locate(o, loc);
	if (ret != EXIT_OK)
		return ret;
	/* a store that is not there would be served as an empty one: 404s
	 * for every client, which looks like a cache miss */
	if (!o->store && !o->store_dir && !loc->has_store_dir) {
		cli_error("no store to serve: neither /nix/store nor /gnu/store exists here; give "
			  "--store ROOT (a store under ROOT, as ROOT/nix/store), --store-dir DIR "
			  "with --db FILE, or --binary-cache DIR (a `nix copy --to file://DIR` "
			  "directory)");
		return EXIT_FAIL;
	}
	if (loc->root[0] && need_dir("store root", loc->root) < 0)
		return EXIT_FAIL;
	if (need_dir("store directory", loc->real_store_dir) < 0)
		return EXIT_FAIL;
	if (!loc->db_path) {
		cli_error("--db FILE is needed for the store directory '%s'", loc->store_dir);
		return EXIT_USAGE;
	}
	if (stat(loc->db_path, &sb) < 0 && errno == ENOENT) {
		cli_error("store database '%s' does not exist (give --db FILE)", loc->db_path);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* pc from the options and the store; the keys are loaded into keys. */
static int publish_configure(const struct publish_opts *o, const struct cairn_storeloc *loc,
			     struct cairn_publish_config *pc, struct cairn_seckey *keys)
{
	struct cairn_error err;
	cairn_error_init(&err);
	cairn_publish_config_init(pc, loc->kind);
	pc->store_dir = loc->store_dir;
	pc->real_store_dir = loc->real_store_dir;
	pc->db_path = loc->db_path;
	pc->log_dir = loc->log_dir;
	if (o->dialect)
		pc->dialect = (enum cairn_publish_dialect)o->dialect;
	else
		pc->dialect = ends_with(loc->store_dir, "/gnu/store") ? CAIRN_PUBLISH_GUIX
								      : CAIRN_PUBLISH_NIX;
	if (o->compression) {
		int n = cairn_codec_spec_list_parse(o->compression, strlen(o->compression),
						    pc->compressions, CAIRN_CODEC_LIST_MAX, &err);
		if (n < 0) {
			cli_fail("--compression", &err);
			return EXIT_USAGE;
		}
		pc->n_compressions = (size_t)n;
	}
	for (size_t i = 0; i < o->keys.n; i++) {
		if (load_key(o->keys.v[i], &keys[i]) != 0)
			return EXIT_FAIL;
		pc->keys[pc->n_keys++] = &keys[i];
	}
	pc->host = o->host;
	pc->cache_dir = o->cache;
	pc->cache_max_size = o->cache_max;
	pc->bake_workers = (unsigned)o->bake_workers;
	pc->ttl = (unsigned)(o->ttl / 1000);
	pc->negative_ttl = (unsigned)(o->negative_ttl / 1000);
	pc->priority = (int)o->priority;
	pc->verify = (enum cairn_publish_verify)o->verify;
	pc->ipfs = o->ipfs;
	pc->ipfs_chunker = o->ipfs_chunker;
	pc->slow_compression_rate = o->slow_rate;
	pc->log = publish_log;
	return EXIT_OK;
}

/* The feed's source for a store: the narinfo as served. */
static int feed_narinfo(void *ctx, const char *hashpart, struct cairn_buf *out,
			struct cairn_error *err)
{
	return cairn_publish_narinfo(ctx, hashpart, 32, out, NULL, err);
}

/*
 * Start the change feed and register its routes (before the server's own,
 * which take every path): over the store pub serves, or over binary_cache,
 * whose narinfos are of `dialect` (NULL: nix).
 */
static int start_feed(struct cairn_feed_server **out, struct cairn_httpd *h, const char *dir,
		      uint64_t keep, const struct cairn_publish_config *pc, const char *binary_cache,
		      const char *dialect, struct cairn_publish *pub)
{
	struct cairn_feed_server_config fc;
	struct cairn_storedb_config dbc;
	struct cairn_error err;
	char path[4096];
	cairn_error_init(&err);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		cli_error("cannot create the feed directory '%s': %s", dir, strerror(errno));
		return -1;
	}
	if (need_dir("feed directory", dir) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/feed.sqlite", dir);
	memset(&fc, 0, sizeof(fc));
	fc.path = path;
	fc.keep = keep;
	fc.signer.keys = pc->keys;
	fc.signer.n_keys = pc->n_keys;
	fc.log = publish_log;
	if (binary_cache) {
		fc.binary_cache = binary_cache;
		fc.signer.dialect = dialect ? dialect : "nix";
	} else {
		cairn_storedb_config_init(&dbc, pc->dialect == CAIRN_PUBLISH_GUIX
							? CAIRN_STOREDB_GUIX
							: CAIRN_STOREDB_NIX);
		dbc.store_dir = pc->store_dir;
		dbc.db_path = pc->db_path;
		dbc.flags |= CAIRN_STOREDB_IMMUTABLE_FALLBACK;
		fc.store_db = &dbc;
		fc.narinfo = feed_narinfo;
		fc.narinfo_ctx = pub;
		fc.signer.dialect = pc->dialect == CAIRN_PUBLISH_GUIX ? "guix" : "nix";
	}
	if (pc->n_keys == 0)
		cli_warn("no --key: the feed's pages are not signed (followers refuse them)");
	if (cairn_feed_server_new(out, &fc, &err) < 0 ||
	    cairn_feed_server_routes(*out, h, &err) < 0)
		return cli_fail("cannot serve the feed", &err);
	return 0;
}

/* Run the server h until it is stopped; what it serves is named. */
static int publish_run(struct cairn_httpd *h, const char *what)
{
	struct cairn_error err;
	cairn_error_init(&err);
	cli_serve_signals(h);
	if (cairn_httpd_start(h, &err) < 0)
		return cli_fail("cannot start the server", &err);
	fprintf(stderr, "%s: serving %s on port %d\n", cli_progname, what, cairn_httpd_port(h));
	if (cairn_httpd_wait(h, &err) < 0)
		return cli_fail("server", &err);
	return EXIT_OK;
}

static void publish_httpd_config(const struct publish_opts *o, struct cairn_httpd_config *hc)
{
	cairn_httpd_config_init(hc);
	hc->server_name = "cairn";
	for (size_t i = 0; i < o->listen.n; i++)
		hc->listen[hc->n_listen++] = o->listen.v[i];
	if (hc->n_listen == 0 && !o->systemd)
		hc->listen[hc->n_listen++] = "*:8080";
	hc->systemd = o->systemd;
	hc->threads = (unsigned)o->threads;
	hc->access_log = o->access_log;
	hc->user = o->user;
	hc->port_file = o->port_file;
}

int cmd_publish(int argc, char **argv)
{
	struct publish_opts o = {.ttl = 3600000, .negative_ttl = 60000, .bake_workers = 1,
				 .priority = 30, .slow_rate = CAIRN_PUBLISH_SLOW_RATE,
				 .verify = CAIRN_PUBLISH_VERIFY_BACKGROUND};
	struct cairn_seckey keys[CAIRN_PUBLISH_MAX_KEYS];
	struct cairn_httpd_config hc;
	struct cairn_publish_config pc;
	struct cairn_storeloc loc;
	struct cairn_publish *pub = NULL;
	struct cairn_publish_static *st = NULL;
	struct cairn_feed_server *feed = NULL;
	struct cairn_httpd *h = NULL;
	struct cairn_error err;
	int nargs, ret;

	memset(&pc, 0, sizeof(pc));
	memset(&loc, 0, sizeof(loc));
	cairn_error_init(&err);
	ret = cli_parse_options(&publish_spec, publish_options, &o, argc, argv, &nargs);
	if (ret != CLI_GO_ON)
		goto out;
	ret = EXIT_USAGE;
	if (nargs) {
		cli_error("unexpected argument '%s'", argv[0]);
		goto out;
	}
	if (o.binary_cache && (o.store || o.db || (o.cache && !o.ipfs) || (o.keys.n && !o.feed))) {
		cli_error("--binary-cache serves a directory as it is: no --store, --db, --cache "
			  "or --key with it (--key signs its --feed; --cache keeps --ipfs's "
			  "indexes)");
		goto out;
	}
	publish_httpd_config(&o, &hc);
	ret = EXIT_FAIL;
	if (o.binary_cache) {
		if (need_dir("binary-cache directory", o.binary_cache) < 0 ||
		    (o.cache && need_dir("cache directory", o.cache) < 0))
			goto out;
		struct cairn_publish_static_config sc = {
			.dir = o.binary_cache,
			.ttl = (unsigned)(o.ttl / 1000),
			.negative_ttl = (unsigned)(o.negative_ttl / 1000),
			.ipfs = o.ipfs,
			.ipfs_chunker = o.ipfs_chunker,
			.index_dir = o.cache,
			.log = publish_log,
		};
		for (size_t i = 0; i < o.keys.n; i++) {
			if (load_key(o.keys.v[i], &keys[i]) != 0)
				goto out;
			pc.keys[pc.n_keys++] = &keys[i];
		}
		if (cairn_httpd_new(&h, &hc, &err) < 0 ||
		    (o.feed && start_feed(&feed, h, o.feed, o.feed_keep, &pc, o.binary_cache,
					  o.dialect == CAIRN_PUBLISH_GUIX ? "guix" : NULL, NULL) < 0) ||
		    cairn_publish_static_routes(h, &sc, &st, &err) < 0) {
			cli_fail("cannot set up the server", &err);
			goto out;
		}
	} else {
		if ((ret = publish_find_store(&o, &loc)) != EXIT_OK ||
		    (ret = publish_configure(&o, &loc, &pc, keys)) != EXIT_OK)
			goto out;
		ret = EXIT_FAIL;
		if (cairn_publish_new(&pub, &pc, &err) < 0) {
			cli_fail("cannot serve the store", &err);
			goto out;
		}
		if (o.keys.n == 0)
			cli_warn("no --key: narinfos are not signed");
		if (o.cache && o.user && geteuid() == 0 && chown_cache(o.cache, o.user) < 0)
			goto out;
		if (cairn_httpd_new(&h, &hc, &err) < 0 ||
		    (o.feed && start_feed(&feed, h, o.feed, o.feed_keep, &pc, NULL, NULL, pub) < 0) ||
		    cairn_publish_routes(pub, h, &err) < 0) {
			cli_fail("cannot set up the server", &err);
			goto out;
		}
	}
	if (geteuid() == 0 && !o.user)
		cli_warn("running as root; consider --user");
	ret = publish_run(h, o.binary_cache ? o.binary_cache : pc.store_dir);
out:
	cli_serve_signals(NULL);
	/* producers may still be ending their streams: wait for them (they
	 * see CAIRN_ECANCELED once the server stopped) before the server goes */
	cairn_feed_server_free(feed);
	cairn_publish_free(pub);
	cairn_publish_static_free(st);
	cairn_httpd_free(h);
	for (size_t i = 0; i < pc.n_keys; i++)
		cairn_seckey_wipe(&keys[i]);
	sodium_memzero(keys, sizeof(keys));
	cairn_storeloc_release(&loc);
	cli_options_release(publish_options, &o);
	return ret;
}
