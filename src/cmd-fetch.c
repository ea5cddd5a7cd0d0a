/*
 * cmd-fetch.c - `cairn fetch`: substitute store paths (and closures) from
 * binary caches, trusting only signatures.  The work is libcairn's
 * download engine (fetch.h); this file reads options and keys and shows
 * progress.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn/buf.h"
#include "cairn/escape.h"
#include "cairn/cairn.h"
#include "cairn/fetch.h"
#include "cairn/ipfs-fetch.h"
#include "cairn/keys.h"
#include "cairn/nicache.h"
#include "cairn/storedb-write.h"
#include "cairn/storeloc.h"
#include "cairn/storepath.h"
#include "cli.h"
#include "cairn/banned.h"

struct opts {
	struct cli_list from, gateways, seeds;
	const char *block_cache, *ipfs_chunker;
	struct cli_keys keys;
	const char *root, *nar_dir, *store_dir, *cache_db, *db;
	bool closure, json, quiet, no_cache;
	long require_sigs, jobs, threads, db_timeout_s, ipfs_jobs;
	uint64_t multi_min;
	long multi_per_source;
	struct cairn_http_config http;
};

static const struct cli_option fetch_options[] = {
	OPT_LIST(0, "from", struct opts, from, "URL", 0,
		 "a binary cache (http://, https:// or file:///DIR); repeatable"),
	OPT_TRUSTED_KEY(struct opts, keys,
			"Nix public keys (name:base64), a Guix signing-key.pub\n"
			"or a Guix acl file; repeatable"),
	OPT_STRING(0, "store", struct opts, root, "ROOT",
		   "unpack under ROOT (\"\" or / for the real store)"),
	OPT_STRING(0, "db", struct opts, db, "FILE",
		   "the store's database (default ROOT/nix/var/nix/db/\n"
		   "db.sqlite, or ROOT/var/guix/db/db.sqlite for /gnu/store)"),
	OPT_INT(0, "db-timeout", struct opts, db_timeout_s, "S", 1, 3600,
		"seconds to wait for the database's lock (default 30)"),
	OPT_STRING(0, "nar-dir", struct opts, nar_dir, "DIR",
		   "keep the verified, uncompressed NARs instead"),
	OPT_STRING(0, "store-dir", struct opts, store_dir, "DIR",
		   "the store directory (default /nix/store)"),
	OPT_FLAG(0, "closure", struct opts, closure, "also fetch everything the paths refer to"),
	OPT_INT(0, "require-sigs", struct opts, require_sigs, "K", 1, CAIRN_VERIFY_MAX_SIGNERS,
		"distinct trusted signers needed (default 1)"),
	OPT_INT(0, "jobs", struct opts, jobs, "N", 1, CAIRN_FETCH_MAX_JOBS,
		"parallel downloads (default 8)"),
	OPT_INT(0, "threads", struct opts, threads, "N", 0, CAIRN_FETCH_MAX_THREADS,
		"threads that unpack and verify (default: one per\n"
		"CPU; 0 does it on the network thread)"),
	OPT_SIZE("multi-min", struct opts, multi_min, "SIZE", 0,
		 "a file this big that several servers serve the same\n"
		 "way comes from all of them at once, in ranges\n"
		 "(default 4M; 0: one server at a time)"),
	OPT_INT(0, "multi-per-source", struct opts, multi_per_source, "N", 1, 4,
		"range requests in flight per server in such a\n"
		"download (default 1)"),
	OPT_TABLE(struct opts, http, cli_http_options),
	OPT_STRING(0, "cache-db", struct opts, cache_db, "FILE",
		   "the narinfo cache (default ~/.cache/cairn/narinfo.sqlite)"),
	OPT_FLAG(0, "no-cache", struct opts, no_cache, "do not use the narinfo cache"),
	OPT_LIST(0, "ipfs-gateway", struct opts, gateways, "URL", CAIRN_IPFS_MAX_GATEWAYS,
		 "an IPFS trustless gateway: an item whose narinfo names\n"
		 "its NAR's CID (IPFS:) is asked of it block by block\n"
		 "first (checked against the CIDs and the NarHash);\n"
		 "repeatable"),
	OPT_INT(0, "ipfs-jobs", struct opts, ipfs_jobs, "N", 1, CAIRN_IPFS_JOBS_MAX,
		"items asked of the gateways at once, each on a thread\n"
		"of its own (default 4); the others wait their turn"),
	OPT_STRING(0, "block-cache", struct opts, block_cache, "DIR",
		   "IPFS blocks kept (default ~/.cache/cairn/blocks)"),
	OPT_LIST(0, "seed", struct opts, seeds, "PATH", 0,
		 "chunk PATH (a tree, or a .nar file) into the block\n"
		 "cache first: its blocks are not asked for; repeatable"),
	OPT_STRING(0, "ipfs-chunker", struct opts, ipfs_chunker, "SPEC",
		   "the chunker of the CIDs (fastcdc, size-N, or auto:\n"
		   "each item's, from its DAG; --seed: fastcdc first,\n"
		   "then each item's)"),
	OPT_FLAG(0, "json", struct opts, json, "print a JSON summary on stdout"),
	OPT_FLAG('q', "quiet", struct opts, quiet, "no progress on stderr"),
	OPT_END(),
};

static const struct cli_spec fetch_spec = {
	.usage =
    "usage: cairn fetch --from URL [--from URL...] --trusted-key FILE [--trusted-key FILE...]\n"
    "                   (--store ROOT | --nar-dir DIR) [options] PATH... | -\n"
    "\n"
    "Download store paths from binary caches, check them, unpack them into\n"
    "ROOT<storedir>/<hash>-<name> and register them in the store's database\n"
    "(like `nix --store ROOT`; created when missing), or keep the verified NARs\n"
    "as DIR/<hash>-<name>.nar.  Paths already valid are skipped.  Without\n"
    "--closure, a path whose references are neither valid in the store nor\n"
    "fetched in the same run is refused.  '-' reads paths from stdin, one a line.\n"
    "\n"
    "An item is accepted when at least K distinct trusted keys signed the same\n"
    "NarHash, NarSize and References (across all servers), or when it is content-\n"
    "addressed and its path recomputes from its CA field; servers with unsigned\n"
    "narinfos that agree with an accepted one serve bytes too.\n"
    "\n"
    "options:\n",
	.options = fetch_options,
	.tail =
    "\n"
    "exit status: 0 all present or fetched, 1 some failed (each is named with why),\n"
    "2 usage error.\n",
};

struct ui {
	bool tty;
	bool quiet;
	size_t line_len; /* of the live line on stderr */
	double t0, last_draw;
	struct cairn_fetch *f;
};

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void human(uint64_t n, char *out, size_t cap)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static void clear_line(struct ui *ui)
{
	if (ui->line_len) {
		fprintf(stderr, "\r%*s\r", (int)ui->line_len, "");
		ui->line_len = 0;
	}
}

static void draw(struct ui *ui, bool force)
{
	if (!ui->tty || ui->quiet)
		return;
	double t = mono();
	if (!force && t - ui->last_draw < 0.2)
		return;
	ui->last_draw = t;
	struct cairn_fetch_progress p;
	cairn_fetch_progress(ui->f, &p);
	char got[32], want[32], rate[32], line[256];
	human(p.bytes_received, got, sizeof(got));
	human(p.bytes_expected, want, sizeof(want));
	double el = t - ui->t0;
	double r = el > 0 ? (double)p.bytes_received / el : 0;
	human((uint64_t)r, rate, sizeof(rate));
	char eta[32] = "?";
	if (r > 0 && p.bytes_expected > p.bytes_received)
		snprintf(eta, sizeof(eta), "%.0f s",
			 (double)(p.bytes_expected - p.bytes_received) / r);
	int n = snprintf(
	    line, sizeof(line),
	    "[%zu/%zu items, %zu failed] %s / %s, %s/s, ETA %s, %zu downloading, %zu queries",
	    p.items_done, p.items_total, p.items_failed, got, want, rate, eta, p.downloads_active,
	    p.queries_active);
	if (n < 0)
		return;
	size_t len = strlen(line);
	fprintf(stderr, "\r%s", line);
	if (len < ui->line_len)
		fprintf(stderr, "%*s", (int)(ui->line_len - len), "");
	ui->line_len = len;
	fflush(stderr);
}

static void on_item(void *ctx, const struct cairn_fetch_report *r)
{
	struct ui *ui = ctx;
	if (r->status == CAIRN_FETCH_FAILED) {
		clear_line(ui);
		cli_error("%s: %s", r->path, r->reason);
		draw(ui, true);
		return;
	}
	if (ui->quiet)
		return;
	clear_line(ui);
	if (r->status == CAIRN_FETCH_FETCHED && r->in_place) {
		fprintf(stderr, "registered %s (its files were there; they match the signed NarHash)\n",
			r->path);
	} else if (r->status == CAIRN_FETCH_FETCHED) {
		char sz[32];
		human(r->download_bytes, sz, sizeof(sz));
		fprintf(stderr, "fetched %s (%s %s from %s, %.2f s%s)\n", r->path, sz,
			r->compression, r->server, r->seconds,
			r->by_ca ? ", content-addressed" : "");
	} else {
		fprintf(stderr, "present %s\n", r->path);
	}
	draw(ui, true);
}

/* With --ipfs-gateway: what the gateways cost, in the JSON summary. */
static const struct cairn_ipfs_fetch_stats *ipfs_json;

/* Why this compression, when there was a choice: each option's estimate,
 * the network rate used and where it came from. */
static void print_json_choice(struct cairn_buf *b, const struct cairn_fetch_report *r)
{
	if (!r->n_choices)
		return;
	cairn_buf_printf(b, ",\"compressionChoice\":{\"netRate\":%.0f,\"netRateFrom\":",
			 r->choice_net_rate);
	cairn_json_cstr(b, r->choice_rate_from ? r->choice_rate_from : "");
	cairn_buf_printf(b, ",\"unpackMeasured\":%s,\"options\":[",
			 r->choice_unpack_measured ? "true" : "false");
	for (size_t k = 0; k < r->n_choices; k++) {
		const struct cairn_fetch_choice *c = &r->choices[k];
		cairn_buf_puts(b, k ? ",{\"compression\":" : "{\"compression\":");
		cairn_json_cstr(b, c->compression ? c->compression : "");
		if (c->readable)
			cairn_buf_printf(b,
					 ",\"fileSize\":%llu,\"unpackRate\":%.0f,"
					 "\"seconds\":%.3f}",
					 (unsigned long long)c->file_size, c->unpack_rate, c->seconds);
		else
			cairn_buf_puts(b, ",\"readable\":false}");
	}
	cairn_buf_puts(b, "]}");
}

static int print_json(struct cairn_fetch *f, double secs)
{
	struct cairn_buf b = CAIRN_BUF_INIT((size_t)1 << 30);
	size_t n = cairn_fetch_item_count(f);
	size_t counts[4] = {0};
	uint64_t bytes = 0;
	cairn_buf_puts(&b, "{\"items\":[");
	for (size_t i = 0; i < n; i++) {
		struct cairn_fetch_report r;
		cairn_fetch_item(f, i, &r);
		counts[r.status < 4 ? r.status : 0]++;
		cairn_buf_puts(&b, i ? ",{\"path\":" : "{\"path\":");
		cairn_json_cstr(&b, r.path);
		cairn_buf_puts(&b, ",\"status\":");
		cairn_json_cstr(&b, cairn_fetch_status_name(r.status));
		cairn_buf_printf(&b, ",\"requested\":%s", r.requested ? "true" : "false");
		if (r.status == CAIRN_FETCH_FETCHED) {
			bytes += r.download_bytes;
			/* null for files registered in place: nothing was downloaded */
			cairn_buf_puts(&b, ",\"server\":");
			if (r.server)
				cairn_json_cstr(&b, r.server);
			else
				cairn_buf_puts(&b, "null");
			cairn_buf_puts(&b, ",\"compression\":");
			if (r.compression)
				cairn_json_cstr(&b, r.compression);
			else
				cairn_buf_puts(&b, "null");
			cairn_buf_printf(&b,
					 ",\"narSize\":%llu,\"downloadSize\":%llu,\"signers\":%u,"
					 "\"contentAddressed\":%s,\"seconds\":%.3f",
					 (unsigned long long)r.nar_size,
					 (unsigned long long)r.download_bytes, r.n_signers,
					 r.by_ca ? "true" : "false", r.seconds);
			print_json_choice(&b, &r);
			char h[CAIRN_HASH_STR_MAX];
			cairn_hash_format(&r.nar_hash, CAIRN_HASH_NIX32, h, sizeof(h));
			cairn_buf_puts(&b, ",\"narHash\":");
			cairn_json_cstr(&b, h);
			cairn_buf_puts(&b, ",\"references\":[");
			for (size_t k = 0; k < r.n_references; k++) {
				if (k)
					cairn_buf_putc(&b, ',');
				cairn_json_cstr(&b, r.references[k]);
			}
			cairn_buf_puts(&b, "],\"deriver\":");
			if (r.deriver)
				cairn_json_cstr(&b, r.deriver);
			else
				cairn_buf_puts(&b, "null");
			cairn_buf_puts(&b, ",\"signatures\":[");
			for (size_t k = 0; k < r.n_signatures; k++) {
				if (k)
					cairn_buf_putc(&b, ',');
				cairn_json_cstr(&b, r.signatures[k]);
			}
			cairn_buf_puts(&b, "],\"ca\":");
			if (r.ca)
				cairn_json_cstr(&b, r.ca);
			else
				cairn_buf_puts(&b, "null");
			cairn_buf_printf(&b, ",\"registered\":%s,\"inPlace\":%s",
					 r.registered ? "true" : "false",
					 r.in_place ? "true" : "false");
		} else if (r.status == CAIRN_FETCH_FAILED) {
			cairn_buf_puts(&b, ",\"error\":");
			cairn_json_cstr(&b, cairn_strerror(r.code));
			cairn_buf_puts(&b, ",\"reason\":");
			cairn_json_cstr(&b, r.reason);
		}
		cairn_buf_putc(&b, '}');
	}
	cairn_buf_puts(&b, "],\"servers\":[");
	for (size_t i = 0; i < cairn_fetch_server_count(f); i++) {
		struct cairn_fetch_server_report s;
		cairn_fetch_server(f, i, &s);
		cairn_buf_puts(&b, i ? ",{\"url\":" : "{\"url\":");
		cairn_json_cstr(&b, s.url);
		cairn_buf_puts(&b, ",\"state\":");
		cairn_json_cstr(&b, s.state);
		if (s.reason) {
			cairn_buf_puts(&b, ",\"reason\":");
			cairn_json_cstr(&b, s.reason);
		}
		cairn_buf_printf(&b, ",\"demoted\":%s", s.demoted ? "true" : "false");
		if (s.demoted) {
			cairn_buf_puts(&b, ",\"demotedWhy\":");
			cairn_json_cstr(&b, s.demoted);
			cairn_buf_printf(&b, ",\"demotedNow\":%s", s.demoted_now ? "true" : "false");
		}
		cairn_buf_putc(&b, '}');
	}
	cairn_buf_putc(&b, ']');
	if (ipfs_json)
		cairn_buf_printf(&b,
				 ",\"ipfs\":{\"requests\":%llu,\"bytes\":%llu,\"blocksCached\":%llu,"
				 "\"blocksFetched\":%llu,\"gatewaysFailed\":%llu,\"seeded\":%llu}",
				 (unsigned long long)ipfs_json->requests,
				 (unsigned long long)ipfs_json->bytes,
				 (unsigned long long)ipfs_json->blocks_cached,
				 (unsigned long long)ipfs_json->blocks_fetched,
				 (unsigned long long)ipfs_json->gateways_failed,
				 (unsigned long long)ipfs_json->seeded);
	cairn_buf_printf(&b,
			 ",\"fetched\":%zu,\"present\":%zu,\"failed\":%zu,\"downloadBytes\":%llu,"
			 "\"seconds\":%.3f}\n",
			 counts[CAIRN_FETCH_FETCHED], counts[CAIRN_FETCH_PRESENT],
			 counts[CAIRN_FETCH_FAILED], (unsigned long long)bytes, secs);
	int rc = b.data ? cli_write_all(STDOUT_FILENO, b.data, b.len) : CAIRN_ENOMEM;
	cairn_buf_release(&b);
	return rc;
}

/* Paths from stdin, one a line (blank lines skipped). */
static int add_stdin(struct cairn_fetch *f)
{
	char *text = NULL;
	size_t len = 0;
	struct cairn_error err;
	cairn_error_init(&err);
	if (cli_read_file("-", (size_t)64 << 20, &text, &len, &err))
		return cli_fail("cannot read paths from stdin", &err);
	int ret = EXIT_OK;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		size_t l = strlen(line);
		while (l && (line[l - 1] == ' ' || line[l - 1] == '\t' || line[l - 1] == '\r'))
			line[--l] = '\0';
		if (!l)
			continue;
		if (cairn_fetch_add_path(f, line, &err)) {
			cli_error("%s", cairn_error_msg(&err));
			ret = EXIT_USAGE;
			break;
		}
	}
	free(text);
	return ret;
}

/* What to do when the store's database stays locked. */
static void locked_hint(void)
{
	fprintf(stderr,
		"hint: another process (a nix-daemon or guix-daemon, or another Nix command)\n"
		"      holds the store database's write lock.  Retry when it is idle (or with a\n"
		"      longer --db-timeout), stop the daemon, or fetch into a store of your own\n"
		"      (--store DIR) and copy from it: nix copy --from 'local?root=DIR' PATH\n");
}

/*
 * The store under --store ROOT (storeloc.h) and its database, created
 * when missing: --db, else where Nix or Guix keeps it.
 */
static int open_store_db(const struct opts *o, struct cairn_storeloc *loc,
			 struct cairn_storedb_writer **out)
{
	struct cairn_storeloc_config lc;
	struct cairn_storedb_writer_config wc;
	struct cairn_error err;
	cairn_error_init(&err);
	cairn_storeloc_config_init(&lc);
	lc.root = o->root;
	lc.store_dir = o->store_dir;
	lc.db_path = o->db;
	lc.kind = o->store_dir && !strcmp(o->store_dir, "/gnu/store") ? CAIRN_STOREDB_GUIX
								       : CAIRN_STOREDB_NIX;
	if (cairn_storeloc_locate(loc, &lc, &err))
		return cli_fail("--store", &err);
	if (!loc->db_path) {
		cli_error("--db FILE is needed for the store directory '%s'", loc->store_dir);
		return EXIT_USAGE;
	}
	cairn_storedb_writer_config_init(&wc, loc->kind);
	wc.store_dir = loc->store_dir;
	wc.db_path = loc->db_path;
	wc.busy_timeout_ms = (int)o->db_timeout_s * 1000;
	wc.flags = CAIRN_STOREDB_WRITER_CREATE;
	int rc = cairn_storedb_writer_open(out, &wc, &err);
	if (rc) {
		cli_error("cannot register paths in the store: %s", cairn_error_msg(&err));
		if (rc == CAIRN_EBUSY)
			locked_hint();
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* The narinfo cache, or NULL (with a warning) when the default one cannot
 * be opened; EXIT_FAIL when the one named by --cache-db cannot. */
static int open_cache(const struct opts *o, struct cairn_nicache **cache)
{
	struct cairn_nicache_config cc;
	struct cairn_error err;
	char *def = NULL;
	int rc = 0;
	*cache = NULL;
	if (o->no_cache)
		return EXIT_OK;
	cairn_error_init(&err);
	cairn_nicache_config_init(&cc);
	cc.path = o->cache_db;
	if (!cc.path)
		rc = cairn_nicache_default_path(&def, &err);
	if (!rc) {
		if (def)
			cc.path = def;
		rc = cairn_nicache_open(cache, &cc, (int64_t)time(NULL), &err);
	}
	free(def);
	if (rc) {
		*cache = NULL;
		if (o->cache_db)
			return cli_fail("cannot open the narinfo cache", &err);
		cli_warn("no narinfo cache: %s", cairn_error_msg(&err));
	}
	return EXIT_OK;
}

/* The servers and the paths (operands; '-' reads stdin). */
static int add_work(struct cairn_fetch *f, const struct opts *o, int nargs, char **args)
{
	struct cairn_error err;
	cairn_error_init(&err);
	for (size_t i = 0; i < o->from.n; i++) {
		if (cairn_fetch_add_server(f, o->from.v[i], &err)) {
			cli_error("--from '%s': %s", o->from.v[i], cairn_error_msg(&err));
			return EXIT_USAGE;
		}
	}
	bool from_stdin = false;
	for (int i = 0; i < nargs; i++) {
		if (!strcmp(args[i], "-")) {
			from_stdin = true;
		} else if (cairn_fetch_add_path(f, args[i], &err)) {
			cli_error("%s", cairn_error_msg(&err));
			return EXIT_USAGE;
		}
	}
	return from_stdin ? add_stdin(f) : EXIT_OK;
}

/* Run f to its end, drawing progress; then what went wrong. */
static int fetch_run(struct cairn_fetch *f, struct ui *ui, bool json)
{
	struct cairn_error err;
	cairn_error_init(&err);
	/* a run may hold a temporary tree open per verified item: room for
	 * many; if the limit stays, the run is only narrower */
	cairn_fd_limit_raise(NULL);
	int rc = cairn_fetch_start(f, &err);
	if (rc == 0)
		while ((rc = cairn_fetch_step(f, 200, &err)) > 0)
			draw(ui, false);
	clear_line(ui);
	if (rc < 0) {
		cli_error("%s", cairn_error_msg(&err)); /* already "fetch: ..." */
		if (rc == CAIRN_EBUSY)
			locked_hint();
		return EXIT_FAIL;
	}
	for (size_t i = 0; i < cairn_fetch_server_count(f); i++) {
		struct cairn_fetch_server_report s;
		cairn_fetch_server(f, i, &s);
		if (s.demoted_now)
			cli_warn("%s: %s; it is asked last until a day has passed", s.url,
				 s.demoted);
	}
	size_t failed = cairn_fetch_failed(f);
	if (json && print_json(f, mono() - ui->t0)) {
		cli_error("cannot write the summary");
		return EXIT_FAIL;
	}
	if (failed) {
		cli_error("%zu of %zu item%s failed", failed, cairn_fetch_item_count(f),
			  cairn_fetch_item_count(f) == 1 ? "" : "s");
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

static void fetch_configure(struct opts *o, struct cairn_fetch_config *cfg)
{
	cairn_fetch_config_init(cfg);
	cfg->store_dir = o->store_dir;
	cfg->nar_dir = o->nar_dir;
	cfg->keys = &o->keys.kr;
	cfg->require_sigs = (unsigned)o->require_sigs;
	cfg->jobs = (unsigned)o->jobs;
	cfg->multi_min = o->multi_min;
	cfg->multi_per_source = (unsigned)o->multi_per_source;
	cfg->closure = o->closure;
	if (o->threads < 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		o->threads = n < 1 ? 1 : n > 16 ? 16 : n;
	}
	cfg->threads = (unsigned)o->threads;
	cfg->http = o->http;
}

/* The gateways, the block cache and what seeds it (--seed). */
static int ipfs_configure(struct opts *o, struct cairn_ipfs_fetch_config *ic, char **dir,
			  struct cairn_ipfs_fetch_stats *st)
{
	struct cairn_error err;
	cairn_error_init(&err);
	for (size_t i = 0; i < o->gateways.n; i++) {
		const char *g = o->gateways.v[i];
		if (strncmp(g, "http://", 7) && strncmp(g, "https://", 8)) {
			cli_error("--ipfs-gateway '%s': an http:// or https:// URL", g);
			return EXIT_USAGE;
		}
		ic->gateways[ic->n_gateways++] = g;
	}
	if (o->ipfs_chunker && strcmp(o->ipfs_chunker, "auto")) {
		if (cairn_chunker_spec_parse(o->ipfs_chunker, &ic->chunker, &err)) {
			cli_error("--ipfs-chunker: %s", cairn_error_msg(&err));
			return EXIT_USAGE;
		}
	} else {
		/* --seed paths: what publish serves by default (docs/FORMATS.md) */
		ic->chunker_auto = true;
		if (cairn_chunker_spec_parse(CAIRN_IPFS_CHUNKER_SERVED, &ic->chunker, &err))
			return cli_fail("--ipfs-chunker", &err);
	}
	ic->http = o->http;
	ic->jobs = (unsigned)o->ipfs_jobs;
	ic->cache_dir = o->block_cache;
	if (!ic->cache_dir) {
		/* beside the narinfo cache: ~/.cache/cairn/blocks */
		char *ni = NULL;
		if (cairn_nicache_default_path(&ni, &err))
			return cli_fail("no block cache (give --block-cache)", &err);
		char *slash = strrchr(ni, '/');
		if (slash)
			*slash = '\0';
		size_t n = strlen(ni) + sizeof("/blocks");
		if (!(*dir = malloc(n))) {
			free(ni);
			return cli_fail("out of memory", &err);
		}
		snprintf(*dir, n, "%s/blocks", ni);
		free(ni);
		ic->cache_dir = *dir;
	}
	/* under auto, items whose DAG says another chunker cut them again */
	ic->seeds = (const char *const *)o->seeds.v;
	ic->n_seeds = o->seeds.n;
	for (size_t i = 0; i < o->seeds.n; i++) {
		uint64_t k = 0;
		if (cairn_ipfs_seed(ic, o->seeds.v[i], &k, &err)) {
			cli_error("--seed '%s': %s", o->seeds.v[i], cairn_error_msg(&err));
			return EXIT_FAIL;
		}
		st->seeded += k;
	}
	return EXIT_OK;
}

int cmd_fetch(int argc, char **argv)
{
	struct opts o = {.require_sigs = 1, .jobs = 8, .db_timeout_s = 30, .threads = -1,
			 .multi_min = CAIRN_FETCH_MULTI_MIN};
	struct cairn_storeloc loc;
	struct cairn_nicache *cache = NULL;
	struct cairn_storedb_writer *db = NULL;
	struct cairn_fetch *f = NULL;
	struct cairn_fetch_config cfg;
	struct cairn_error err;
	int nargs, ret;
	struct cairn_ipfs_fetch_config ipfs = {0};
	static struct cairn_ipfs_fetch_stats ipfs_stats;
	char *block_dir = NULL;

	memset(&loc, 0, sizeof(loc));
	cairn_error_init(&err);
	cairn_http_config_init(&o.http);
	/* A server slower than the minimum rate is no use to this run. */
	o.http.slow_marks_down = 1;
	if ((ret = cli_parse_options(&fetch_spec, fetch_options, &o, argc, argv, &nargs)) !=
	    CLI_GO_ON)
		goto out;
	ret = EXIT_USAGE;
	if (!o.from.n || !o.keys.n_files || (!o.root == !o.nar_dir) || !nargs) {
		cli_error("need --from, --trusted-key, one of --store and --nar-dir, and paths");
		ret = cli_usage(&fetch_spec, false);
		goto out;
	}
	if (o.db && !o.root) {
		cli_error("--db needs --store");
		goto out;
	}
	cli_keyring_check(&o.keys.kr);
	fetch_configure(&o, &cfg);
	if (o.root) {
		if ((ret = open_store_db(&o, &loc, &db)) != EXIT_OK)
			goto out;
		cfg.root = loc.root;
		cfg.store_dir = loc.store_dir;
		cfg.db = db;
	}
	if ((ret = open_cache(&o, &cache)) != EXIT_OK)
		goto out;
	cfg.cache = cache;

	if (o.gateways.n && (ret = ipfs_configure(&o, &ipfs, &block_dir, &ipfs_stats)) != EXIT_OK)
		goto out;
	if (o.gateways.n) {
		cfg.ipfs = &ipfs;
		cfg.ipfs_stats = &ipfs_stats;
		ipfs_json = &ipfs_stats;
	}

	struct ui ui = {.tty = isatty(STDERR_FILENO) == 1, .quiet = o.quiet, .t0 = mono()};
	cfg.on_item = on_item;
	cfg.ctx = &ui;
	if (cairn_fetch_new(&f, &cfg, &err)) {
		ret = cli_fail("cannot start", &err);
		goto out;
	}
	ui.f = f;
	if ((ret = add_work(f, &o, nargs, argv)) != EXIT_OK)
		goto out;
	ret = fetch_run(f, &ui, o.json);
out:
	cairn_fetch_free(f);
	free(block_dir);
	cairn_storedb_writer_free(db);
	cairn_nicache_free(cache);
	cairn_keyring_release(&o.keys.kr);
	cairn_storeloc_release(&loc);
	cli_options_release(fetch_options, &o);
	return ret;
}
