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
#include "cli.h"
#include "cairn/banned.h"

const char cmd_publish_usage[] =
	"usage: cairn publish [--store DIR] [--db FILE] [--binary-cache DIR] [--key FILE]...\n"
	"                     [--cache DIR] [--compression LIST] [--listen ADDR:PORT]...\n"
	"                     [--ttl T] [--negative-ttl T] [--config FILE] [options]\n"
	"\n"
	"Serve a local store as a binary cache for Nix and Guix clients: narinfos\n"
	"signed on the fly, nars compressed on the fly (and baked into --cache in the\n"
	"background), never a 404 for a valid store path.\n"
	"\n"
	"source:\n"
	"  --store DIR          the store's files (default /nix/store, or /gnu/store when\n"
	"                       only that exists).  A chroot store's DIR (ROOT/nix/store)\n"
	"                       is served as /nix/store with ROOT's database.\n"
	"  --db FILE            the store database (default: next to the store,\n"
	"                       .../nix/var/nix/db/db.sqlite or .../var/guix/db/db.sqlite)\n"
	"  --store-dir DIR      the store directory clients see (default: from --store)\n"
	"  --log-dir DIR        build logs (default: beside the database,\n"
	"                       .../var/log/nix/drvs or .../var/log/guix/drvs)\n"
	"  --binary-cache DIR   serve a `nix copy --to file://DIR` directory as it is\n"
	"                       instead of a store\n"
	"  --dialect nix|guix   narinfo dialect (default: guix for /gnu/store, else nix)\n"
	"signing and compression:\n"
	"  --key FILE           sign with this secret key (Nix or Guix; repeatable,\n"
	"                       one Guix key at most)\n"
	"  --host NAME          host named in Guix signatures (default: hostname)\n"
	"  --compression LIST   e.g. zstd:3,xz:6,none (default zstd:3); Nix narinfos\n"
	"                       name the first, Guix narinfos list each (Guix clients\n"
	"                       without guile-zstd need gzip or lzip listed too).\n"
	"                       Items that do not compress are offered uncompressed.\n"
	"  --slow-compression-rate RATE\n"
	"                       say once per method when it compresses fewer bytes of\n"
	"                       nar per CPU second than RATE (default 20M; K, M, G\n"
	"                       suffixes; 0: never)\n"
	"  --cache DIR          keep compressed nars in DIR (baked in the background)\n"
	"  --cache-max-size N   bound the cache (bytes; K, M, G, T suffixes)\n"
	"  --bake-workers N     background compression threads (default 1)\n"
	"change feed (docs/PROTOCOL.md):\n"
	"  --feed DIR           serve a signed feed of the items added and removed\n"
	"                       (/feed/events, /feed/snapshot), its log kept in\n"
	"                       DIR/feed.sqlite; signed with the --key keys (with\n"
	"                       --binary-cache too)\n"
	"  --feed-keep N        events kept for followers (default 1000000); one\n"
	"                       further behind bootstraps from the snapshot\n"
	"  --verify MODE        check nars made from the store against NarHash, once\n"
	"                       per item: background (default: after the first stream,\n"
	"                       at idle priority), strict (the first stream hashes as\n"
	"                       it goes and fails unless it matches), off (size only).\n"
	"                       A mismatch withdraws the item and is reported here.\n"
	"HTTP:\n"
	"  --listen ADDR:PORT   127.0.0.1:8080, [::1]:8080, *:8080 (default *:8080;\n"
	"                       repeatable; port 0 picks one)\n"
	"  --systemd            take the listening sockets from systemd\n"
	"  --threads N          event loops (default: one per CPU)\n"
	"  --ttl T              narinfo Cache-Control max-age (default 1h; s m h d)\n"
	"  --negative-ttl T     404 max-age (default 60s; 0: no-store)\n"
	"  --priority N         Priority in nix-cache-info (default 30)\n"
	"  --access-log FILE    Combined Log Format (\"-\": stdout)\n"
	"  --user USER          drop privileges once the keys and sockets are open\n"
	"  --port-file FILE     write the bound port to FILE once listening\n"
	"  --config FILE        read options from FILE first: one a line, the name\n"
	"                       without dashes, then the value (`listen *:8080`);\n"
	"                       '#' comments; options given here come after them\n";

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), sl = strlen(suffix);
	return n >= sl && strcmp(s + n - sl, suffix) == 0;
}

/* PREFIX + tail, where PREFIX is s without its `strip` suffix; malloc'd */
static char *replace_tail(const char *s, const char *strip, const char *tail)
{
	size_t keep = strlen(s) - strlen(strip);
	size_t n = keep + strlen(tail) + 1;
	char *r = malloc(n);
	if (r)
		snprintf(r, n, "%.*s%s", (int)keep, s, tail);
	return r;
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

int cmd_publish(int argc, char **argv)
{
	const char *store = NULL, *db = NULL, *store_dir = NULL, *log_dir = NULL;
	const char *binary_cache = NULL, *dialect = NULL, *host = NULL, *cache = NULL;
	const char *compression = NULL, *port_file = NULL, *feed_dir = NULL;
	uint64_t feed_keep = 0;
	struct cairn_feed_server *feed = NULL;
	const char *key_files[CAIRN_PUBLISH_MAX_KEYS];
	size_t n_key_files = 0;
	struct cairn_seckey keys[CAIRN_PUBLISH_MAX_KEYS];
	struct cairn_httpd_config hc;
	struct cairn_publish_config pc;
	struct cairn_publish *pub = NULL;
	struct cairn_publish_static *st = NULL;
	struct cairn_error err;
	struct cairn_httpd *h = NULL;
	unsigned ttl = 3600, negative_ttl = 60, bake_workers = 1;
	uint64_t cache_max = 0, slow_rate = CAIRN_PUBLISH_SLOW_RATE;
	int priority = 30;
	enum cairn_publish_verify verify = CAIRN_PUBLISH_VERIFY_BACKGROUND;
	char *alloc[4] = {NULL, NULL, NULL, NULL};
	int ret = EXIT_FAIL;

	if (cli_wants_help(argc, argv))
		return cli_usage(cmd_publish_usage, true);
	memset(&pc, 0, sizeof(pc));
	cairn_error_init(&err);
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
			return cli_usage(cmd_publish_usage, false);
		}
		const char *v = argv[++i];
		unsigned long n;
		char *end;
		if (!strcmp(a, "--store")) {
			store = v;
		} else if (!strcmp(a, "--db")) {
			db = v;
		} else if (!strcmp(a, "--store-dir")) {
			store_dir = v;
		} else if (!strcmp(a, "--log-dir")) {
			log_dir = v;
		} else if (!strcmp(a, "--binary-cache")) {
			binary_cache = v;
		} else if (!strcmp(a, "--dialect")) {
			if (strcmp(v, "nix") && strcmp(v, "guix")) {
				cli_error("--dialect takes nix or guix, not '%s'", v);
				return EXIT_USAGE;
			}
			dialect = v;
		} else if (!strcmp(a, "--key")) {
			if (n_key_files == CAIRN_PUBLISH_MAX_KEYS) {
				cli_error("at most %d keys", CAIRN_PUBLISH_MAX_KEYS);
				return EXIT_USAGE;
			}
			key_files[n_key_files++] = v;
		} else if (!strcmp(a, "--host")) {
			host = v;
		} else if (!strcmp(a, "--compression")) {
			compression = v;
		} else if (!strcmp(a, "--cache")) {
			cache = v;
		} else if (!strcmp(a, "--cache-max-size")) {
			if (cli_parse_size(v, &cache_max) < 0) {
				cli_error("--cache-max-size: '%s' is not a size", v);
				return EXIT_USAGE;
			}
		} else if (!strcmp(a, "--slow-compression-rate")) {
			if (cli_parse_size(v, &slow_rate) < 0) {
				cli_error("--slow-compression-rate: '%s' is not a rate (bytes per "
					  "second, K, M, G suffixes)",
					  v);
				return EXIT_USAGE;
			}
		} else if (!strcmp(a, "--bake-workers")) {
			n = strtoul(v, &end, 10);
			if (*end || !*v || n < 1 || n > 64) {
				cli_error("--bake-workers takes 1..64");
				return EXIT_USAGE;
			}
			bake_workers = (unsigned)n;
		} else if (!strcmp(a, "--verify")) {
			if (!strcmp(v, "background")) {
				verify = CAIRN_PUBLISH_VERIFY_BACKGROUND;
			} else if (!strcmp(v, "strict")) {
				verify = CAIRN_PUBLISH_VERIFY_STRICT;
			} else if (!strcmp(v, "off")) {
				verify = CAIRN_PUBLISH_VERIFY_OFF;
			} else {
				cli_error("--verify takes background, strict or off, not '%s'", v);
				return EXIT_USAGE;
			}
		} else if (!strcmp(a, "--listen")) {
			if (hc.n_listen == CAIRN_HTTPD_MAX_LISTEN) {
				cli_error("at most %d --listen", CAIRN_HTTPD_MAX_LISTEN);
				return EXIT_USAGE;
			}
			hc.listen[hc.n_listen++] = v;
		} else if (!strcmp(a, "--threads")) {
			n = strtoul(v, &end, 10);
			if (*end || !*v || n > CAIRN_HTTPD_MAX_THREADS) {
				cli_error("--threads takes 0..%d", CAIRN_HTTPD_MAX_THREADS);
				return EXIT_USAGE;
			}
			hc.threads = (unsigned)n;
		} else if (!strcmp(a, "--ttl")) {
			if (cli_parse_seconds(v, &ttl) < 0) {
				cli_error("--ttl: '%s' is not a duration", v);
				return EXIT_USAGE;
			}
		} else if (!strcmp(a, "--negative-ttl")) {
			if (cli_parse_seconds(v, &negative_ttl) < 0) {
				cli_error("--negative-ttl: '%s' is not a duration", v);
				return EXIT_USAGE;
			}
		} else if (!strcmp(a, "--priority")) {
			long pr = strtol(v, &end, 10);
			if (*end || !*v || pr < 0 || pr > 1000000) {
				cli_error("--priority: '%s' is not a priority", v);
				return EXIT_USAGE;
			}
			priority = (int)pr;
		} else if (!strcmp(a, "--access-log")) {
			hc.access_log = v;
		} else if (!strcmp(a, "--user")) {
			hc.user = v;
		} else if (!strcmp(a, "--port-file")) {
			port_file = v;
		} else if (!strcmp(a, "--feed")) {
			feed_dir = v;
		} else if (!strcmp(a, "--feed-keep")) {
			n = strtoul(v, &end, 10);
			if (*end || !*v || n < 1) {
				cli_error("--feed-keep takes a number of events (1 or more)");
				return EXIT_USAGE;
			}
			feed_keep = n;
		} else {
			cli_error("unknown option '%s'", a);
			return cli_usage(cmd_publish_usage, false);
		}
	}
	hc.port_file = port_file;
	if (binary_cache && (store || db || cache || (n_key_files && !feed_dir))) {
		cli_error("--binary-cache serves a directory as it is: no --store, --db, --cache "
			  "or --key with it (--key signs its --feed)");
		return EXIT_USAGE;
	}
	if (hc.n_listen == 0 && !hc.systemd)
		hc.listen[hc.n_listen++] = "*:8080";

	if (binary_cache) {
		if (need_dir("binary-cache directory", binary_cache) < 0)
			goto out;
		for (size_t i = 0; i < n_key_files; i++) {
			if (load_key(key_files[i], &keys[i]) != 0)
				goto out;
			pc.keys[pc.n_keys++] = &keys[i];
		}
		if (cairn_httpd_new(&h, &hc, &err) < 0 ||
		    (feed_dir &&
		     start_feed(&feed, h, feed_dir, feed_keep, &pc, binary_cache, dialect, NULL) < 0) ||
		    cairn_publish_static_routes(h, binary_cache, ttl, negative_ttl, &st, &err) < 0) {
			cli_fail("cannot set up the server", &err);
			goto out;
		}
	} else {
		struct stat sb;
		/* a store that is not there would be served as an empty one:
		 * 404s for every client, which looks like a cache miss */
		if (!store) {
			if (stat("/nix/store", &sb) == 0)
				store = "/nix/store";
			else if (stat("/gnu/store", &sb) == 0)
				store = "/gnu/store";
			else {
				cli_error("no store to serve: neither /nix/store nor /gnu/store "
					  "exists here; give --store DIR (a store directory), or "
					  "--binary-cache DIR (a `nix copy --to file://DIR` directory)");
				goto out;
			}
		}
		if (need_dir("store directory", store) < 0)
			goto out;
		bool guixish = ends_with(store, "/gnu/store") ||
			       (store_dir && ends_with(store_dir, "/gnu/store"));
		if (!store_dir) {
			if (ends_with(store, "/nix/store"))
				store_dir = "/nix/store";
			else if (ends_with(store, "/gnu/store"))
				store_dir = "/gnu/store";
			else
				store_dir = store;
		}
		cairn_publish_config_init(&pc, guixish ? CAIRN_STOREDB_GUIX : CAIRN_STOREDB_NIX);
		if (!db) {
			if (ends_with(store, "/nix/store"))
				db = alloc[0] = replace_tail(store, "/nix/store",
							     "/nix/var/nix/db/db.sqlite");
			else if (ends_with(store, "/gnu/store"))
				db = alloc[0] = replace_tail(store, "/gnu/store",
							     "/var/guix/db/db.sqlite");
			if (!db) {
				cli_error("--db FILE is needed for a store at '%s'", store);
				ret = EXIT_USAGE;
				goto out;
			}
		}
		if (!log_dir && db) {
			/* logs live beside the database: <state>/nix/db/db.sqlite
			 * has <state>/log/nix/drvs (Guix: var/guix, var/log/guix) */
			const char *tails[][2] = {{"/nix/db/db.sqlite", "/log/nix/drvs"},
						  {"/guix/db/db.sqlite", "/log/guix/drvs"}};
			for (size_t t = 0; t < 2 && !log_dir; t++)
				if (ends_with(db, tails[t][0]))
					log_dir = alloc[1] =
						replace_tail(db, tails[t][0], tails[t][1]);
		}
		if (!log_dir) {
			if (ends_with(store, "/nix/store"))
				log_dir = alloc[1] = replace_tail(store, "/nix/store",
								  "/nix/var/log/nix/drvs");
			else if (ends_with(store, "/gnu/store"))
				log_dir = alloc[1] = replace_tail(store, "/gnu/store",
								  "/var/log/guix/drvs");
		}
		if (stat(db, &sb) < 0 && errno == ENOENT) {
			cli_error("store database '%s' does not exist (give --db FILE)", db);
			goto out;
		}
		pc.store_dir = store_dir;
		pc.real_store_dir = store;
		pc.db_path = db;
		pc.log_dir = log_dir;
		if (dialect)
			pc.dialect = !strcmp(dialect, "guix") ? CAIRN_PUBLISH_GUIX : CAIRN_PUBLISH_NIX;
		else
			pc.dialect = ends_with(store_dir, "/gnu/store") ? CAIRN_PUBLISH_GUIX
									: CAIRN_PUBLISH_NIX;
		if (compression) {
			int n = cairn_codec_spec_list_parse(compression, strlen(compression),
							    pc.compressions, CAIRN_CODEC_LIST_MAX,
							    &err);
			if (n < 0) {
				cli_fail("--compression", &err);
				ret = EXIT_USAGE;
				goto out;
			}
			pc.n_compressions = (size_t)n;
		}
		for (size_t i = 0; i < n_key_files; i++) {
			if (load_key(key_files[i], &keys[i]) != 0)
				goto out;
			pc.keys[pc.n_keys++] = &keys[i];
		}
		pc.host = host;
		pc.cache_dir = cache;
		pc.cache_max_size = cache_max;
		pc.bake_workers = bake_workers;
		pc.ttl = ttl;
		pc.negative_ttl = negative_ttl;
		pc.priority = priority;
		pc.verify = verify;
		pc.slow_compression_rate = slow_rate;
		pc.log = publish_log;
		if (cairn_publish_new(&pub, &pc, &err) < 0) {
			cli_fail("cannot serve the store", &err);
			goto out;
		}
		if (n_key_files == 0)
			cli_warn("no --key: narinfos are not signed");
		if (cache && hc.user && geteuid() == 0 && chown_cache(cache, hc.user) < 0)
			goto out;
		if (cairn_httpd_new(&h, &hc, &err) < 0 ||
		    (feed_dir && start_feed(&feed, h, feed_dir, feed_keep, &pc, NULL, NULL, pub) < 0) ||
		    cairn_publish_routes(pub, h, &err) < 0) {
			cli_fail("cannot set up the server", &err);
			goto out;
		}
	}
	if (geteuid() == 0 && !hc.user)
		cli_warn("running as root; consider --user");

	cli_serve_signals(h);

	if (cairn_httpd_start(h, &err) < 0) {
		cli_fail("cannot start the server", &err);
		goto out;
	}
	int port = cairn_httpd_port(h);
	fprintf(stderr, "%s: serving %s on port %d\n", cli_progname,
		binary_cache ? binary_cache : pc.store_dir, port);
	if (cairn_httpd_wait(h, &err) < 0) {
		cli_fail("server", &err);
		goto out;
	}
	ret = EXIT_OK;
out:
	cli_serve_signals(NULL);
	/* producers may still be ending their streams: wait for them (they
	 * see CAIRN_ECANCELED once the server stopped) before the server goes */
	cairn_feed_server_free(feed);
	cairn_publish_free(pub);
	cairn_httpd_free(h);
	cairn_publish_static_free(st);
	for (size_t i = 0; i < pc.n_keys; i++)
		cairn_seckey_wipe(&keys[i]);
	sodium_memzero(keys, sizeof(keys));
	for (size_t i = 0; i < 4; i++)
		free(alloc[i]);
	return ret;
}
