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
#include "cairn/cairn.h"
#include "cairn/fetch.h"
#include "cairn/keys.h"
#include "cairn/nicache.h"
#include "cairn/storedb-write.h"
#include "cairn/storepath.h"
#include "cli.h"
#include "cairn/banned.h"

const char cmd_fetch_usage[] =
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
    "options:\n"
    "  --from URL            a binary cache (http://, https:// or file:///DIR); repeatable\n"
    "  --trusted-key FILE    Nix public keys (name:base64), a Guix signing-key.pub\n"
    "                        or a Guix acl file; repeatable\n"
    "  --store ROOT          unpack under ROOT (\"\" or / for the real store)\n"
    "  --db FILE             the store's database (default ROOT/nix/var/nix/db/\n"
    "                        db.sqlite, or ROOT/var/guix/db/db.sqlite for /gnu/store)\n"
    "  --db-timeout S        seconds to wait for the database's lock (default 30)\n"
    "  --nar-dir DIR         keep the verified, uncompressed NARs instead\n"
    "  --store-dir DIR       the store directory (default /nix/store)\n"
    "  --closure             also fetch everything the paths refer to\n"
    "  --require-sigs K      distinct trusted signers needed (default 1)\n"
    "  --jobs N              parallel downloads (default 8)\n"
    "  --threads N           threads that unpack and verify (default: one per\n"
    "                        CPU; 0 does it on the network thread)\n"
    CLI_HTTP_OPTIONS_USAGE
    "  --cache-db FILE       the narinfo cache (default ~/.cache/cairn/narinfo.sqlite)\n"
    "  --no-cache            do not use the narinfo cache\n"
    "  --json                print a JSON summary on stdout\n"
    "  -q, --quiet           no progress on stderr\n"
    "\n"
    "exit status: 0 all present or fetched, 1 some failed (each is named with why),\n"
    "2 usage error.\n";

struct opts {
	const char **from;
	size_t n_from;
	const char *root, *nar_dir, *store_dir, *cache_db, *db;
	bool closure, json, quiet, no_cache;
	unsigned long require_sigs, jobs, threads, db_timeout_s;
	struct cairn_http_config http;
	bool threads_set;
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

static void json_str(struct cairn_buf *b, const char *s)
{
	cairn_buf_putc(b, '"');
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			cairn_buf_printf(b, "\\%c", c);
		else if (c < 0x20)
			cairn_buf_printf(b, "\\u%04x", c);
		else
			cairn_buf_putc(b, (char)c);
	}
	cairn_buf_putc(b, '"');
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
		json_str(&b, r.path);
		cairn_buf_puts(&b, ",\"status\":");
		json_str(&b, cairn_fetch_status_name(r.status));
		cairn_buf_printf(&b, ",\"requested\":%s", r.requested ? "true" : "false");
		if (r.status == CAIRN_FETCH_FETCHED) {
			bytes += r.download_bytes;
			/* null for files registered in place: nothing was downloaded */
			cairn_buf_puts(&b, ",\"server\":");
			if (r.server)
				json_str(&b, r.server);
			else
				cairn_buf_puts(&b, "null");
			cairn_buf_puts(&b, ",\"compression\":");
			if (r.compression)
				json_str(&b, r.compression);
			else
				cairn_buf_puts(&b, "null");
			cairn_buf_printf(&b,
					 ",\"narSize\":%llu,\"downloadSize\":%llu,\"signers\":%u,"
					 "\"contentAddressed\":%s,\"seconds\":%.3f",
					 (unsigned long long)r.nar_size,
					 (unsigned long long)r.download_bytes, r.n_signers,
					 r.by_ca ? "true" : "false", r.seconds);
			char h[CAIRN_HASH_STR_MAX];
			cairn_hash_format(&r.nar_hash, CAIRN_HASH_NIX32, h, sizeof(h));
			cairn_buf_puts(&b, ",\"narHash\":");
			json_str(&b, h);
			cairn_buf_puts(&b, ",\"references\":[");
			for (size_t k = 0; k < r.n_references; k++) {
				if (k)
					cairn_buf_putc(&b, ',');
				json_str(&b, r.references[k]);
			}
			cairn_buf_puts(&b, "],\"deriver\":");
			if (r.deriver)
				json_str(&b, r.deriver);
			else
				cairn_buf_puts(&b, "null");
			cairn_buf_puts(&b, ",\"signatures\":[");
			for (size_t k = 0; k < r.n_signatures; k++) {
				if (k)
					cairn_buf_putc(&b, ',');
				json_str(&b, r.signatures[k]);
			}
			cairn_buf_puts(&b, "],\"ca\":");
			if (r.ca)
				json_str(&b, r.ca);
			else
				cairn_buf_puts(&b, "null");
			cairn_buf_printf(&b, ",\"registered\":%s,\"inPlace\":%s",
					 r.registered ? "true" : "false",
					 r.in_place ? "true" : "false");
		} else if (r.status == CAIRN_FETCH_FAILED) {
			cairn_buf_puts(&b, ",\"error\":");
			json_str(&b, cairn_strerror(r.code));
			cairn_buf_puts(&b, ",\"reason\":");
			json_str(&b, r.reason);
		}
		cairn_buf_putc(&b, '}');
	}
	cairn_buf_puts(&b, "],\"servers\":[");
	for (size_t i = 0; i < cairn_fetch_server_count(f); i++) {
		struct cairn_fetch_server_report s;
		cairn_fetch_server(f, i, &s);
		cairn_buf_puts(&b, i ? ",{\"url\":" : "{\"url\":");
		json_str(&b, s.url);
		cairn_buf_puts(&b, ",\"state\":");
		json_str(&b, s.state);
		if (s.reason) {
			cairn_buf_puts(&b, ",\"reason\":");
			json_str(&b, s.reason);
		}
		cairn_buf_printf(&b, ",\"demoted\":%s", s.demoted ? "true" : "false");
		if (s.demoted) {
			cairn_buf_puts(&b, ",\"demotedWhy\":");
			json_str(&b, s.demoted);
			cairn_buf_printf(&b, ",\"demotedNow\":%s", s.demoted_now ? "true" : "false");
		}
		cairn_buf_putc(&b, '}');
	}
	cairn_buf_printf(&b,
			 "],\"fetched\":%zu,\"present\":%zu,\"failed\":%zu,\"downloadBytes\":%llu,"
			 "\"seconds\":%.3f}\n",
			 counts[CAIRN_FETCH_FETCHED], counts[CAIRN_FETCH_PRESENT],
			 counts[CAIRN_FETCH_FAILED], (unsigned long long)bytes, secs);
	int rc = b.data ? cli_write_all(STDOUT_FILENO, b.data, b.len) : CAIRN_ENOMEM;
	cairn_buf_release(&b);
	return rc;
}

static bool parse_num(const char *opt, const char *v, unsigned long min, unsigned long max,
		      unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(v, &end, 10);
	if (!*v || *end || *v == '-' || errno || n < min || n > max) {
		cli_error("%s takes a number from %lu to %lu", opt, min, max);
		return false;
	}
	*out = n;
	return true;
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
 * The database of the store at root (root "" is the real one): --db, else
 * beside the store as Nix and Guix keep it.  Created when missing.
 */
static int open_store_db(const struct opts *o, const char *root, struct cairn_storedb_writer **out)
{
	const char *sd = o->store_dir ? o->store_dir : "/nix/store";
	enum cairn_storedb_kind kind =
	    !strcmp(sd, "/gnu/store") ? CAIRN_STOREDB_GUIX : CAIRN_STOREDB_NIX;
	struct cairn_storedb_writer_config wc;
	struct cairn_error err;
	char *def = NULL;
	int ret = EXIT_OK;
	cairn_storedb_writer_config_init(&wc, kind);
	wc.store_dir = sd;
	wc.busy_timeout_ms = (int)o->db_timeout_s * 1000;
	wc.flags = CAIRN_STOREDB_WRITER_CREATE;
	if (o->db) {
		wc.db_path = o->db;
	} else if (strcmp(sd, "/nix/store") && strcmp(sd, "/gnu/store")) {
		cli_error("--db FILE is needed for the store directory '%s'", sd);
		return EXIT_USAGE;
	} else {
		size_t n = strlen(root) + strlen(wc.db_path) + 1;
		if (!(def = malloc(n))) {
			cli_error("out of memory");
			return EXIT_FAIL;
		}
		snprintf(def, n, "%s%s", root, wc.db_path);
		wc.db_path = def;
	}
	cairn_error_init(&err);
	int rc = cairn_storedb_writer_open(out, &wc, &err);
	if (rc) {
		cli_error("cannot register paths in the store: %s", cairn_error_msg(&err));
		if (rc == CAIRN_EBUSY)
			locked_hint();
		ret = EXIT_FAIL;
	}
	free(def);
	return ret;
}

int cmd_fetch(int argc, char **argv)
{
	if (cli_wants_help(argc, argv))
		return cli_usage(cmd_fetch_usage, true);
	struct opts o = {
	    .require_sigs = 1, .jobs = 8, .db_timeout_s = 30};
	cairn_http_config_init(&o.http);
	/* A server slower than the minimum rate is no use to this run. */
	o.http.slow_marks_down = 1;
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	struct cairn_nicache *cache = NULL;
	struct cairn_storedb_writer *db = NULL;
	struct cairn_fetch *f = NULL;
	struct cairn_error err;
	const char **paths = NULL;
	size_t n_paths = 0, n_keys = 0;
	bool from_stdin = false;
	int ret = EXIT_USAGE;
	char *root_norm = NULL;

	o.from = calloc((size_t)argc, sizeof(char *));
	paths = calloc((size_t)argc, sizeof(char *));
	if (!o.from || !paths) {
		cli_error("out of memory");
		ret = EXIT_FAIL;
		goto out;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has = i + 1 < argc;
		int h = cli_http_option(argc, argv, &i, &o.http);
		if (h == EXIT_USAGE) {
			ret = EXIT_USAGE;
			goto out;
		}
		if (h == 1)
			continue;
		if (!strcmp(a, "--from") && has) {
			o.from[o.n_from++] = argv[++i];
		} else if (!strcmp(a, "--trusted-key") && has) {
			if (cli_load_keyring(&kr, argv[++i]) != EXIT_OK) {
				ret = EXIT_FAIL;
				goto out;
			}
			n_keys++;
		} else if (!strcmp(a, "--store") && has) {
			o.root = argv[++i];
		} else if (!strcmp(a, "--nar-dir") && has) {
			o.nar_dir = argv[++i];
		} else if (!strcmp(a, "--db") && has) {
			o.db = argv[++i];
		} else if (!strcmp(a, "--db-timeout") && has) {
			if (!parse_num(a, argv[++i], 1, 3600, &o.db_timeout_s))
				goto out;
		} else if (!strcmp(a, "--store-dir") && has) {
			o.store_dir = argv[++i];
		} else if (!strcmp(a, "--cache-db") && has) {
			o.cache_db = argv[++i];
		} else if (!strcmp(a, "--no-cache")) {
			o.no_cache = true;
		} else if (!strcmp(a, "--closure")) {
			o.closure = true;
		} else if (!strcmp(a, "--json")) {
			o.json = true;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			o.quiet = true;
		} else if (!strcmp(a, "--require-sigs") && has) {
			if (!parse_num(a, argv[++i], 1, CAIRN_VERIFY_MAX_SIGNERS, &o.require_sigs))
				goto out;
		} else if (!strcmp(a, "--jobs") && has) {
			if (!parse_num(a, argv[++i], 1, CAIRN_FETCH_MAX_JOBS, &o.jobs))
				goto out;
		} else if (!strcmp(a, "--threads") && has) {
			if (!parse_num(a, argv[++i], 0, CAIRN_FETCH_MAX_THREADS, &o.threads))
				goto out;
			o.threads_set = true;
		} else if (!strcmp(a, "-")) {
			from_stdin = true;
		} else if (a[0] == '-' && a[1]) {
			cli_error("unknown option '%s'", a);
			ret = cli_usage(cmd_fetch_usage, false);
			goto out;
		} else {
			paths[n_paths++] = a;
		}
	}
	if (!o.n_from || !n_keys || (!o.root == !o.nar_dir) || (!n_paths && !from_stdin)) {
		cli_error("need --from, --trusted-key, one of --store and --nar-dir, and paths");
		ret = cli_usage(cmd_fetch_usage, false);
		goto out;
	}
	if (o.db && !o.root) {
		cli_error("--db needs --store");
		goto out;
	}

	cli_keyring_check(&kr);
	struct cairn_fetch_config cfg;
	cairn_fetch_config_init(&cfg);
	cfg.store_dir = o.store_dir;
	if (o.root) {
		/* "/" and "" both mean the real store directory. */
		root_norm = strdup(o.root);
		if (!root_norm) {
			ret = EXIT_FAIL;
			goto out;
		}
		size_t l = strlen(root_norm);
		while (l && root_norm[l - 1] == '/')
			root_norm[--l] = '\0';
		cfg.root = root_norm;
		if ((ret = open_store_db(&o, root_norm, &db)) != EXIT_OK)
			goto out;
		ret = EXIT_USAGE;
	}
	cfg.db = db;
	cfg.nar_dir = o.nar_dir;
	cfg.keys = &kr;
	cfg.require_sigs = (unsigned)o.require_sigs;
	cfg.jobs = (unsigned)o.jobs;
	cfg.closure = o.closure;
	if (!o.threads_set) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		o.threads = n < 1 ? 1 : n > 16 ? 16 : (unsigned long)n;
	}
	cfg.threads = (unsigned)o.threads;
	cfg.http = o.http;

	cairn_error_init(&err);
	if (!o.no_cache) {
		struct cairn_nicache_config cc;
		cairn_nicache_config_init(&cc);
		cc.path = o.cache_db;
		char *def = NULL;
		int rc = 0;
		if (!cc.path)
			rc = cairn_nicache_default_path(&def, &err);
		if (!rc) {
			if (def)
				cc.path = def;
			rc = cairn_nicache_open(&cache, &cc, (int64_t)time(NULL), &err);
		}
		if (rc) {
			if (o.cache_db) {
				ret = cli_fail("cannot open the narinfo cache", &err);
				free(def);
				goto out;
			}
			cli_warn("no narinfo cache: %s", cairn_error_msg(&err));
			cache = NULL;
		}
		free(def);
	}
	cfg.cache = cache;

	struct ui ui = {.tty = isatty(STDERR_FILENO) == 1, .quiet = o.quiet, .t0 = mono()};
	cfg.on_item = on_item;
	cfg.ctx = &ui;
	cairn_error_init(&err);
	if (cairn_fetch_new(&f, &cfg, &err)) {
		ret = cli_fail("cannot start", &err);
		goto out;
	}
	ui.f = f;
	for (size_t i = 0; i < o.n_from; i++) {
		if (cairn_fetch_add_server(f, o.from[i], &err)) {
			cli_error("--from '%s': %s", o.from[i], cairn_error_msg(&err));
			goto out;
		}
	}
	for (size_t i = 0; i < n_paths; i++) {
		if (cairn_fetch_add_path(f, paths[i], &err)) {
			cli_error("%s", cairn_error_msg(&err));
			goto out;
		}
	}
	if (from_stdin && (ret = add_stdin(f)) != EXIT_OK)
		goto out;
	/* a run may hold a temporary tree open per verified item: room for
	 * many; if the limit stays, the run is only narrower */
	cairn_fd_limit_raise(NULL);

	ret = EXIT_FAIL;
	int rc = cairn_fetch_start(f, &err);
	if (rc == 0)
		while ((rc = cairn_fetch_step(f, 200, &err)) > 0)
			draw(&ui, false);
	clear_line(&ui);
	if (rc < 0) {
		cli_error("%s", cairn_error_msg(&err)); /* already "fetch: ..." */
		if (rc == CAIRN_EBUSY)
			locked_hint();
		goto out;
	}
	for (size_t i = 0; i < cairn_fetch_server_count(f); i++) {
		struct cairn_fetch_server_report s;
		cairn_fetch_server(f, i, &s);
		if (s.demoted_now)
			cli_warn("%s: %s; it is asked last until a day has passed", s.url,
				 s.demoted);
	}
	size_t failed = cairn_fetch_failed(f);
	if (o.json && print_json(f, mono() - ui.t0)) {
		cli_error("cannot write the summary");
		goto out;
	}
	if (failed) {
		cli_error("%zu of %zu item%s failed", failed, cairn_fetch_item_count(f),
			  cairn_fetch_item_count(f) == 1 ? "" : "s");
		goto out;
	}
	ret = EXIT_OK;
out:
	cairn_fetch_free(f);
	cairn_storedb_writer_free(db);
	cairn_nicache_free(cache);
	cairn_keyring_release(&kr);
	free(o.from);
	free(paths);
	free(root_norm);
	return ret;
}
