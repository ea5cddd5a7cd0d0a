/*
 * test-nar.c - the NAR module against archives made by the real Nix
 * (tests/vectors/nix/trees) and the hostile corpus (tests/vectors/hostile).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cairn/buf.h"
#include "cairn/cairn.h"
#include "cairn/nar.h"
#include "../../lib/nar-internal.h"

static const char *vectors(void)
{
	const char *v = getenv("VECTORS_DIR");
	return v ? v : VECTORS_DIR;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	struct cairn_buf b = CAIRN_BUF_INIT(64u << 20);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(cairn_buf_append(&b, chunk, n), 0);
	fclose(f);
	return (uint8_t *)cairn_buf_steal(&b, len);
}

struct tree {
	char name[64];
	char nix32[64];
	uint64_t size;
};

static size_t load_trees(struct tree *t, size_t max)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/nix/trees/expected.tsv", vectors());
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[1024];
	size_t n = 0;
	while (fgets(line, sizeof(line), f) && n < max) {
		unsigned long long size;
		char hex[80], sp[256];
		if (sscanf(line, "%63s %63s %79s %llu %255s", t[n].name, t[n].nix32, hex, &size,
			   sp) == 5 &&
		    strcmp(t[n].name, "name") != 0) {
			t[n].size = size;
			n++;
		}
	}
	fclose(f);
	assert_true(n >= 8);
	return n;
}

static uint8_t *load_tree(const struct tree *t, size_t *len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/nix/trees/%s.nar", vectors(), t->name);
	return slurp(path, len);
}

/* ---- an event log, to compare parses fed in different splits ---------- */

struct evlog {
	struct cairn_buf ev;   /* one line per structural event */
	struct cairn_buf data; /* all file contents, concatenated */
	size_t data_calls;
};

static int ev(void *ctx, const char *kind, const struct cairn_nar_node *n)
{
	struct cairn_buf *b = &((struct evlog *)ctx)->ev;
	assert_int_equal(strlen(n->path), n->path_len);
	assert_int_equal(strlen(n->name), n->name_len);
	cairn_buf_printf(b, "%s [%s] d=%u name=[%s]", kind, n->path, n->depth, n->name);
	if (n->type == CAIRN_NAR_REGULAR)
		cairn_buf_printf(b, " x=%d size=%llu off=%llu", n->executable,
				 (unsigned long long)n->size, (unsigned long long)n->nar_offset);
	if (n->type == CAIRN_NAR_SYMLINK)
		cairn_buf_printf(b, " -> %s", n->target);
	cairn_buf_putc(b, '\n');
	return 0;
}

static int ev_db(void *c, const struct cairn_nar_node *n, struct cairn_error *e)
{
	(void)e;
	return ev(c, "dir", n);
}
static int ev_de(void *c, const struct cairn_nar_node *n, struct cairn_error *e)
{
	(void)e;
	return ev(c, "end", n);
}
static int ev_fb(void *c, const struct cairn_nar_node *n, struct cairn_error *e)
{
	(void)e;
	return ev(c, "file", n);
}
static int ev_fe(void *c, const struct cairn_nar_node *n, struct cairn_error *e)
{
	(void)e;
	return ev(c, "fend", n);
}
static int ev_sl(void *c, const struct cairn_nar_node *n, struct cairn_error *e)
{
	(void)e;
	return ev(c, "link", n);
}

static int ev_data(void *ctx, const void *data, size_t len, struct cairn_error *e)
{
	(void)e;
	struct evlog *l = ctx;
	assert_true(len > 0);
	l->data_calls++;
	return cairn_buf_append(&l->data, data, len);
}

static const struct cairn_nar_callbacks log_cb = {
    ev_db, ev_de, ev_fb, ev_data, ev_fe, ev_sl,
};

static void evlog_init(struct evlog *l)
{
	cairn_buf_init(&l->ev, 8u << 20);
	cairn_buf_init(&l->data, 8u << 20);
	l->data_calls = 0;
}

static void evlog_release(struct evlog *l)
{
	cairn_buf_release(&l->ev);
	cairn_buf_release(&l->data);
}

/* Parse nar in pieces of `step` bytes (0: all at once); the log and hash. */
static int parse_split(const uint8_t *nar, size_t len, size_t step,
		       const struct cairn_nar_callbacks *cb, void *ctx, struct cairn_hash *h,
		       struct cairn_error *err)
{
	struct cairn_nar_parser *p = cairn_nar_parser_new(cb, ctx, NULL);
	assert_non_null(p);
	int rc = 0;
	for (size_t off = 0; off < len && !rc;) {
		size_t n = step && step < len - off ? step : len - off;
		rc = cairn_nar_parser_feed(p, nar + off, n, err);
		off += n;
	}
	if (!rc)
		rc = cairn_nar_parser_finish(p, err);
	if (!rc && h) {
		assert_int_equal(cairn_nar_parser_hash(p, h), 0);
		assert_int_equal(cairn_nar_parser_size(p), len);
	}
	cairn_nar_parser_free(p);
	return rc;
}

static void nix32_of(const struct cairn_hash *h, char *out)
{
	char s[CAIRN_HASH_STR_MAX];
	cairn_hash_format(h, CAIRN_HASH_NIX32, s, sizeof(s));
	strcpy(out, s + strlen("sha256:"));
}

static void test_vectors_parse(void **state)
{
	(void)state;
	struct tree t[16];
	size_t n = load_trees(t, 16);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		uint8_t *nar = load_tree(&t[i], &len);
		assert_int_equal(len, t[i].size);
		struct cairn_hash h;
		struct cairn_error err;
		cairn_error_init(&err);
		assert_int_equal(cairn_nar_parse_buffer(nar, len, NULL, NULL, NULL, &h, &err), 0);
		char s[64];
		nix32_of(&h, s);
		assert_string_equal(s, t[i].nix32);

		/* whole, 1 byte at a time, and odd splits: same events, same hash */
		struct evlog whole;
		evlog_init(&whole);
		assert_int_equal(parse_split(nar, len, 0, &log_cb, &whole, &h, NULL), 0);
		assert_true(whole.ev.len > 0);
		size_t steps[] = {1, 3, 7, 8, 13, 4096};
		for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			struct evlog l;
			evlog_init(&l);
			struct cairn_hash h2;
			assert_int_equal(parse_split(nar, len, steps[k], &log_cb, &l, &h2, NULL),
					 0);
			assert_true(cairn_hash_equal(&h, &h2));
			assert_int_equal(l.ev.len, whole.ev.len);
			assert_string_equal(l.ev.data, whole.ev.data);
			assert_int_equal(l.data.len, whole.data.len);
			if (l.data.len)
				assert_memory_equal(l.data.data, whole.data.data, l.data.len);
			evlog_release(&l);
		}
		/* zero-copy: contents within one chunk arrive in one call per file
		 * (t07-large holds a 1 MiB blob and a small file) */
		if (strcmp(t[i].name, "t07-large") == 0)
			assert_int_equal(whole.data_calls, 2);
		evlog_release(&whole);
		free(nar);
	}
}

static int to_buf(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	(void)err;
	return cairn_buf_append(ctx, data, len);
}

static void test_vectors_roundtrip(void **state)
{
	(void)state;
	struct tree t[16];
	size_t n = load_trees(t, 16);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		uint8_t *nar = load_tree(&t[i], &len);
		size_t steps[] = {0, 1, 5};
		for (size_t k = 0; k < 3; k++) {
			if (steps[k] == 1 && len > 100000)
				continue;
			struct cairn_buf out = CAIRN_BUF_INIT(8u << 20);
			struct cairn_nar_writer *w = cairn_nar_writer_new(to_buf, &out);
			assert_non_null(w);
			assert_int_equal(parse_split(nar, len, steps[k],
						     &cairn_nar_writer_callbacks, w, NULL, NULL),
					 0);
			assert_int_equal(cairn_nar_writer_finish(w, NULL), 0);
			assert_int_equal(cairn_nar_writer_size(w), len);
			cairn_nar_writer_free(w);
			assert_int_equal(out.len, len);
			assert_memory_equal(out.data, nar, len);
			cairn_buf_release(&out);
		}
		free(nar);
	}
}

static char tmproot[256];

static int setup_tmp(void **state)
{
	(void)state;
	snprintf(tmproot, sizeof(tmproot), "/tmp/cairn-test-nar.XXXXXX");
	return mkdtemp(tmproot) ? 0 : -1;
}

static void rm_rf(const char *path)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", path);
}

static int teardown_tmp(void **state)
{
	(void)state;
	rm_rf(tmproot);
	return 0;
}

static int restore_split(const uint8_t *nar, size_t len, size_t step, const char *target,
			 struct cairn_error *err)
{
	struct cairn_nar_restore *r;
	int rc = cairn_nar_restore_new(target, &r, err);
	if (rc)
		return rc;
	rc = parse_split(nar, len, step, &cairn_nar_restore_callbacks, r, NULL, err);
	if (!rc)
		rc = cairn_nar_restore_commit(r, err);
	cairn_nar_restore_free(r);
	return rc;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_vectors_restore_dump(void **state)
{
	(void)state;
	struct tree t[16];
	size_t n = load_trees(t, 16);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		uint8_t *nar = load_tree(&t[i], &len);
		char target[512];
		snprintf(target, sizeof(target), "%s/%s", tmproot, t[i].name);
		struct cairn_error err;
		cairn_error_init(&err);
		assert_int_equal(restore_split(nar, len, 4096, target, &err), 0);

		struct cairn_buf out = CAIRN_BUF_INIT(8u << 20);
		cairn_error_init(&err);
		int rc = cairn_nar_dump_path(target, to_buf, &out, &err);
		if (rc)
			fail_msg("dump %s: %s", target, err.msg);
		assert_int_equal(out.len, len);
		assert_memory_equal(out.data, nar, len);
		cairn_buf_release(&out);

		struct cairn_hash h;
		uint64_t size = 0;
		assert_int_equal(cairn_nar_hash_path(target, &h, &size, NULL), 0);
		char s[64];
		nix32_of(&h, s);
		assert_string_equal(s, t[i].nix32);
		assert_int_equal(size, t[i].size);

		/* restoring again onto the same path is refused, nothing replaced */
		cairn_error_init(&err);
		assert_int_equal(restore_split(nar, len, 0, target, &err), CAIRN_EEXIST);
		free(nar);
	}
	/* every temporary sibling is gone: one entry per tree */
	assert_int_equal(count_entries(tmproot), n);

	/* executables get x bits, as nix-store --restore gives them */
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/t02-exec", tmproot);
	assert_int_equal(lstat(p, &st), 0);
	assert_true((st.st_mode & 0111) == 0111);
	snprintf(p, sizeof(p), "%s/t01-file", tmproot);
	assert_int_equal(lstat(p, &st), 0);
	assert_true((st.st_mode & 0111) == 0);
	snprintf(p, sizeof(p), "%s/t03-symlink", tmproot);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
}

/* Every entry has the store's metadata: mtime 1, r-x or r-- only. */
static int canonical_bad;
static int check_canonical(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)type;
	(void)ftw;
	mode_t m = st->st_mode & 07777;
	if (st->st_mtime != 1 ||
	    (!S_ISLNK(st->st_mode) && m != 0444 && m != 0555) ||
	    (S_ISDIR(st->st_mode) && m != 0555)) {
		print_message("not canonical: %s mode %o mtime %lld\n", path, (unsigned)m,
			      (long long)st->st_mtime);
		canonical_bad++;
	}
	return 0;
}

/* Into a store: the same bytes, the store's metadata, and a failed restore
 * of a read-only tree still leaves nothing behind. */
static void test_restore_canonical(void **state)
{
	(void)state;
	struct tree t[16];
	size_t n = load_trees(t, 16);
	char dir[300];
	snprintf(dir, sizeof(dir), "%.256s/canonical", tmproot);
	assert_int_equal(mkdir(dir, 0755), 0);
	for (size_t i = 0; i < n; i++) {
		size_t len;
		uint8_t *nar = load_tree(&t[i], &len);
		char target[400];
		snprintf(target, sizeof(target), "%.300s/%.63s", dir, t[i].name);
		struct cairn_nar_restore *r;
		struct cairn_error err;
		cairn_error_init(&err);
		assert_int_equal(cairn_nar_restore_new(target, &r, &err), 0);
		cairn_nar_restore_set_flags(r, CAIRN_NAR_RESTORE_SYNC | CAIRN_NAR_RESTORE_CANONICAL);
		assert_int_equal(parse_split(nar, len, 4096, &cairn_nar_restore_callbacks, r, NULL,
					     &err),
				 0);
		assert_int_equal(cairn_nar_restore_commit(r, &err), 0);
		cairn_nar_restore_free(r);

		struct cairn_hash h;
		uint64_t size = 0;
		char s[64];
		assert_int_equal(cairn_nar_hash_path(target, &h, &size, NULL), 0);
		nix32_of(&h, s);
		assert_string_equal(s, t[i].nix32);
		canonical_bad = 0;
		assert_int_equal(nftw(target, check_canonical, 16, FTW_PHYS), 0);
		assert_int_equal(canonical_bad, 0);

		/* cut short after the whole tree is built: all of it goes */
		char again[420];
		snprintf(again, sizeof(again), "%.400s-again", target);
		assert_int_equal(cairn_nar_restore_new(again, &r, &err), 0);
		cairn_nar_restore_set_flags(r, CAIRN_NAR_RESTORE_CANONICAL);
		assert_int_equal(parse_split(nar, len, 0, &cairn_nar_restore_callbacks, r, NULL,
					     &err),
				 0);
		cairn_nar_restore_free(r);
		free(nar);
	}
	assert_int_equal(count_entries(dir), n);
}

static const char t04_ls[] =
    "{\"root\":{\"entries\":{"
    "\"a.txt\":{\"narOffset\":232,\"size\":2,\"type\":\"regular\"},"
    "\"empty\":{\"narOffset\":424,\"size\":0,\"type\":\"regular\"},"
    "\"emptydir\":{\"entries\":{},\"type\":\"directory\"},"
    "\"sub\":{\"entries\":{"
    "\"deeper\":{\"entries\":{\"x\":{\"narOffset\":1048,\"size\":1,\"type\":\"regular\"}},\"type\":"
    "\"directory\"},"
    "\"link\":{\"target\":\"../a.txt\",\"type\":\"symlink\"},"
    "\"run\":{\"executable\":true,\"narOffset\":1496,\"size\":10,\"type\":\"regular\"}},"
    "\"type\":\"directory\"}},\"type\":\"directory\"},\"version\":1}";

static uint8_t *load_named(const char *name, size_t *len)
{
	struct tree t;
	snprintf(t.name, sizeof(t.name), "%s", name);
	return load_tree(&t, len);
}

static void test_ls(void **state)
{
	(void)state;
	size_t len, jlen;
	uint8_t *nar = load_named("t04-dir", &len);
	char *json;
	/* narOffsets as `nix nar ls --json -R` prints them for this archive */
	assert_int_equal(cairn_nar_ls_buffer(nar, len, 0, &json, &jlen, NULL), 0);
	assert_string_equal(json, t04_ls);
	assert_int_equal(jlen, strlen(t04_ls));
	free(json);
	/* a bound that the listing exceeds */
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(cairn_nar_ls_buffer(nar, len, 100, &json, &jlen, &err), CAIRN_ELIMIT);
	assert_non_null(strstr(err.msg, "listing is larger than 100 bytes"));
	free(nar);

	nar = load_named("t01-file", &len);
	assert_int_equal(cairn_nar_ls_buffer(nar, len, 0, &json, &jlen, NULL), 0);
	assert_string_equal(
	    json, "{\"root\":{\"narOffset\":96,\"size\":6,\"type\":\"regular\"},\"version\":1}");
	free(json);
	free(nar);
	nar = load_named("t03-symlink", &len);
	assert_int_equal(cairn_nar_ls_buffer(nar, len, 0, &json, &jlen, NULL), 0);
	assert_string_equal(json, "{\"root\":{\"target\":\"/nix/store/does-not-matter/"
				  "target\",\"type\":\"symlink\"},\"version\":1}");
	free(json);
	free(nar);
}

static void test_ls_escaping(void **state)
{
	(void)state;
	struct cairn_buf out = CAIRN_BUF_INIT(1u << 20);
	struct cairn_nar_writer *w = cairn_nar_writer_new(to_buf, &out);
	assert_int_equal(cairn_nar_write_directory_begin(w, NULL), 0);
	/* names in bytewise order */
	const char *names[] = {"\x01\x1f", "\t\n\r\b\f", "a\"b",     "c\\d",
			       "e\x7f/",   "\xc3\xa9",	 "\xe2\x82", "\xff"};
	const char *sorted[8];
	memcpy(sorted, names, sizeof(names));
	for (size_t i = 0; i < 8; i++) {
		const char *nm = names[i];
		size_t nl = strlen(nm);
		if (i == 4)
			nl = 2; /* "e\x7f": '/' is not allowed, leave it out */
		assert_int_equal(cairn_nar_write_entry_begin(w, nm, nl, NULL), 0);
		assert_int_equal(cairn_nar_write_symlink(w, "t\"\x02", 3, NULL), 0);
		assert_int_equal(cairn_nar_write_entry_end(w, NULL), 0);
	}
	(void)sorted;
	assert_int_equal(cairn_nar_write_directory_end(w, NULL), 0);
	assert_int_equal(cairn_nar_writer_finish(w, NULL), 0);
	cairn_nar_writer_free(w);
	char *json;
	size_t jlen;
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(cairn_nar_ls_buffer(out.data, out.len, 0, &json, &jlen, &err), 0);
	const char *t = "{\"target\":\"t\\\"\\u0002\",\"type\":\"symlink\"}";
	char want[2048];
	snprintf(want, sizeof(want),
		 "{\"root\":{\"entries\":{"
		 "\"\\u0001\\u001f\":%s,"
		 "\"\\t\\n\\r\\b\\f\":%s,"
		 "\"a\\\"b\":%s,"
		 "\"c\\\\d\":%s,"
		 "\"e\x7f\":%s,"
		 "\"\xc3\xa9\":%s,"
		 "\"\xef\xbf\xbd\":%s,"
		 "\"\xef\xbf\xbd\":%s"
		 "},\"type\":\"directory\"},\"version\":1}",
		 t, t, t, t, t, t, t, t);
	assert_string_equal(json, want);
	free(json);
	cairn_buf_release(&out);
}

static void test_cat(void **state)
{
	(void)state;
	size_t len;
	uint8_t *nar = load_named("t04-dir", &len);
	struct cairn_buf out = CAIRN_BUF_INIT(1u << 20);
	struct cairn_nar_cat c;
	cairn_nar_cat_init(&c, "sub/run", to_buf, &out);
	assert_int_equal(
	    cairn_nar_parse_buffer(nar, len, &cairn_nar_cat_callbacks, &c, NULL, NULL, NULL), 0);
	assert_int_equal(cairn_nar_cat_done(&c, NULL), 0);
	/* compare with the file restore made */
	char p[512];
	snprintf(p, sizeof(p), "%s/t04-dir/sub/run", tmproot);
	size_t flen;
	uint8_t *file = slurp(p, &flen);
	assert_int_equal(out.len, flen);
	assert_int_equal(flen, 10);
	assert_memory_equal(out.data, file, flen);
	free(file);
	cairn_buf_release(&out);

	struct cairn_error err;
	cairn_error_init(&err);
	cairn_nar_cat_init(&c, "sub/nope", to_buf, &out);
	assert_int_equal(
	    cairn_nar_parse_buffer(nar, len, &cairn_nar_cat_callbacks, &c, NULL, NULL, NULL), 0);
	assert_int_equal(cairn_nar_cat_done(&c, &err), CAIRN_ENOENT);
	assert_non_null(strstr(err.msg, "'sub/nope' is not in the archive"));
	cairn_error_init(&err);
	cairn_nar_cat_init(&c, "sub", to_buf, &out);
	assert_int_equal(
	    cairn_nar_parse_buffer(nar, len, &cairn_nar_cat_callbacks, &c, NULL, NULL, NULL), 0);
	assert_int_equal(cairn_nar_cat_done(&c, &err), CAIRN_EFORMAT);
	assert_non_null(strstr(err.msg, "is a directory"));
	assert_int_equal(out.len, 0);
	cairn_buf_release(&out);
	free(nar);

	/* a NAR that is one file: path "" */
	nar = load_named("t01-file", &len);
	cairn_nar_cat_init(&c, "", to_buf, &out);
	assert_int_equal(
	    cairn_nar_parse_buffer(nar, len, &cairn_nar_cat_callbacks, &c, NULL, NULL, NULL), 0);
	assert_int_equal(cairn_nar_cat_done(&c, NULL), 0);
	assert_int_equal(out.len, 6);
	cairn_buf_release(&out);
	free(nar);
}

static int code_of(const char *s)
{
	static const struct {
		const char *n;
		int c;
	} codes[] = {
	    {"EFORMAT", CAIRN_EFORMAT},
	    {"ELIMIT", CAIRN_ELIMIT},
	    {"ETRUNCATED", CAIRN_ETRUNCATED},
	};
	for (size_t i = 0; i < 3; i++)
		if (!strcmp(s, codes[i].n))
			return codes[i].c;
	fail_msg("unknown code %s", s);
	return 0;
}

static void test_hostile(void **state)
{
	(void)state;
	char path[4096];
	snprintf(path, sizeof(path), "%s/hostile/expected.tsv", vectors());
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[1024];
	size_t cases = 0;
	char parent[512];
	snprintf(parent, sizeof(parent), "%s/hostile", tmproot);
	assert_int_equal(mkdir(parent, 0700), 0);
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '#')
			continue;
		line[strcspn(line, "\n")] = '\0';
		char *name = strtok(line, "\t"), *code = strtok(NULL, "\t"),
		     *msg = strtok(NULL, "\t");
		assert_non_null(msg);
		snprintf(path, sizeof(path), "%s/hostile/%s.nar", vectors(), name);
		size_t len;
		uint8_t *nar = slurp(path, &len);
		int want = code_of(code);
		/* parse whole and byte by byte: same code, same message */
		for (size_t step = 0; step < 2; step++) {
			struct cairn_error err;
			cairn_error_init(&err);
			int rc = parse_split(nar, len, step, NULL, NULL, NULL, &err);
			if (rc != want || !strstr(err.msg, msg))
				fail_msg("%s (step %zu): got %d '%s', want %d '%s'", name, step, rc,
					 err.msg, want, msg);
		}
		/* restore: refused with the same message, nothing left in parent */
		char target[600];
		snprintf(target, sizeof(target), "%s/out", parent);
		struct cairn_error err;
		cairn_error_init(&err);
		int rc = restore_split(nar, len, 64, target, &err);
		if (rc != want || !strstr(err.msg, msg))
			fail_msg("%s restore: got %d '%s'", name, rc, err.msg);
		assert_int_equal(count_entries(parent), 0);
		free(nar);
		cases++;
	}
	fclose(f);
	assert_true(cases >= 20);
	assert_int_equal(access("/tmp/cairn-pwned", F_OK), -1);
}

/* Every proper prefix of a valid NAR is truncated, and restores nothing. */
static void test_truncation(void **state)
{
	(void)state;
	const char *names[] = {"t04-dir", "t08-deep", "t03-symlink"};
	char parent[512];
	snprintf(parent, sizeof(parent), "%s/trunc", tmproot);
	assert_int_equal(mkdir(parent, 0700), 0);
	for (size_t k = 0; k < 3; k++) {
		size_t len;
		uint8_t *nar = load_named(names[k], &len);
		for (size_t cut = 0; cut < len; cut++) {
			struct cairn_error err;
			cairn_error_init(&err);
			int rc = parse_split(nar, cut, 0, NULL, NULL, NULL, &err);
			if (rc != CAIRN_ETRUNCATED)
				fail_msg("%s cut at %zu: %d %s", names[k], cut, rc, err.msg);
			/* restore at every token boundary (every 8th for the deep tree,
			 * whose ~900 boundaries add nothing but disk time) */
			if (cut % (k == 1 ? 64 : 8) == 0) {
				char target[600];
				snprintf(target, sizeof(target), "%s/out", parent);
				cairn_error_init(&err);
				assert_int_equal(restore_split(nar, cut, 0, target, &err),
						 CAIRN_ETRUNCATED);
				assert_int_equal(count_entries(parent), 0);
			}
		}
		free(nar);
	}
}

static int cb_cancel(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	(void)n;
	(void)err;
	return *(int *)ctx;
}

static void test_callback_stop(void **state)
{
	(void)state;
	size_t len;
	uint8_t *nar = load_named("t04-dir", &len);
	struct cairn_nar_callbacks cb = {.symlink = cb_cancel};
	int ret = 1;
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(cairn_nar_parse_buffer(nar, len, &cb, &ret, NULL, NULL, &err),
			 CAIRN_ECANCELED);
	assert_non_null(strstr(err.msg, "'sub/link'"));
	ret = CAIRN_EIO;
	assert_int_equal(cairn_nar_parse_buffer(nar, len, &cb, &ret, NULL, NULL, NULL), CAIRN_EIO);

	/* after an error the parser keeps failing */
	struct cairn_nar_parser *p = cairn_nar_parser_new(&cb, &ret, NULL);
	assert_int_equal(cairn_nar_parser_feed(p, nar, len, NULL), CAIRN_EIO);
	assert_int_equal(cairn_nar_parser_feed(p, "", 0, NULL), CAIRN_EIO);
	assert_int_equal(cairn_nar_parser_finish(p, NULL), CAIRN_EIO);
	struct cairn_hash h;
	assert_int_equal(cairn_nar_parser_hash(p, &h), CAIRN_EINVAL);
	cairn_nar_parser_free(p);
	free(nar);
}

static void test_limits(void **state)
{
	(void)state;
	size_t len;
	uint8_t *nar = load_named("t07-large", &len);
	struct cairn_nar_limits lim = {.max_file_size = 1000};
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(cairn_nar_parse_buffer(nar, len, NULL, NULL, &lim, NULL, &err),
			 CAIRN_ELIMIT);
	assert_non_null(strstr(err.msg, "more than the limit of 1000"));
	lim = (struct cairn_nar_limits){.max_nar_size = len - 1};
	assert_int_equal(cairn_nar_parse_buffer(nar, len, NULL, NULL, &lim, NULL, NULL),
			 CAIRN_ELIMIT);
	lim = (struct cairn_nar_limits){.max_nar_size = len};
	assert_int_equal(cairn_nar_parse_buffer(nar, len, NULL, NULL, &lim, NULL, NULL), 0);
	/* no_hash: parses the same, but there is no hash to give */
	lim = (struct cairn_nar_limits){.no_hash = true};
	struct cairn_nar_parser *p = cairn_nar_parser_new(NULL, NULL, &lim);
	assert_int_equal(cairn_nar_parser_feed(p, nar, len, NULL), 0);
	assert_int_equal(cairn_nar_parser_finish(p, NULL), 0);
	struct cairn_hash h;
	assert_int_equal(cairn_nar_parser_hash(p, &h), CAIRN_EINVAL);
	assert_int_equal(cairn_nar_parser_size(p), len);
	cairn_nar_parser_free(p);
	free(nar);
	nar = load_named("t08-deep", &len);
	lim = (struct cairn_nar_limits){.max_depth = 10};
	cairn_error_init(&err);
	assert_int_equal(cairn_nar_parse_buffer(nar, len, NULL, NULL, &lim, NULL, &err),
			 CAIRN_ELIMIT);
	assert_non_null(strstr(err.msg, "nested deeper than 9 directories"));
	free(nar);
}

static int sink_null(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	(void)ctx;
	(void)data;
	(void)len;
	(void)err;
	return 0;
}

static void test_writer_misuse(void **state)
{
	(void)state;
	struct cairn_error err;
	struct cairn_nar_writer *w = cairn_nar_writer_new(sink_null, NULL);
	assert_int_equal(cairn_nar_write_directory_begin(w, NULL), 0);
	assert_int_equal(cairn_nar_write_entry_begin(w, "b", 1, NULL), 0);
	assert_int_equal(cairn_nar_write_symlink(w, "x", 1, NULL), 0);
	assert_int_equal(cairn_nar_write_entry_end(w, NULL), 0);
	cairn_error_init(&err);
	assert_int_equal(cairn_nar_write_entry_begin(w, "a", 1, &err), CAIRN_EINVAL);
	assert_non_null(strstr(err.msg, "'a' is not after"));
	cairn_nar_writer_free(w);

	w = cairn_nar_writer_new(sink_null, NULL);
	assert_int_equal(cairn_nar_write_file_begin(w, false, 3, NULL), 0);
	assert_int_equal(cairn_nar_write_file_data(w, "ab", 2, NULL), 0);
	assert_int_equal(cairn_nar_write_file_end(w, NULL), CAIRN_EINVAL);
	cairn_nar_writer_free(w);

	w = cairn_nar_writer_new(sink_null, NULL);
	assert_int_equal(cairn_nar_write_directory_begin(w, NULL), 0);
	assert_int_equal(cairn_nar_writer_finish(w, NULL), CAIRN_EINVAL);
	cairn_nar_writer_free(w);

	w = cairn_nar_writer_new(sink_null, NULL);
	assert_int_equal(cairn_nar_write_directory_begin(w, NULL), 0);
	assert_int_equal(cairn_nar_write_entry_begin(w, "..", 2, NULL), CAIRN_EINVAL);
	cairn_nar_writer_free(w);
}

static void test_dump_rules(void **state)
{
	(void)state;
	char d[512], p[600];
	snprintf(d, sizeof(d), "%s/dumprules", tmproot);
	assert_int_equal(mkdir(d, 0755), 0);
	/* owner x bit decides "executable", as in Nix */
	snprintf(p, sizeof(p), "%s/ownerx", d);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0744);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hi", 2), 2);
	close(fd);
	assert_int_equal(chmod(p, 0744), 0);
	snprintf(p, sizeof(p), "%s/groupx", d);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0654);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(p, 0655), 0);
	struct cairn_buf out = CAIRN_BUF_INIT(1u << 20);
	assert_int_equal(cairn_nar_dump_path(d, to_buf, &out, NULL), 0);
	char *json;
	assert_int_equal(cairn_nar_ls_buffer(out.data, out.len, 0, &json, NULL, NULL), 0);
	assert_non_null(strstr(json, "\"groupx\":{\"narOffset\""));
	assert_non_null(strstr(json, "\"ownerx\":{\"executable\":true"));
	free(json);
	cairn_buf_release(&out);

	/* a socket cannot go into a NAR: the error names it */
	snprintf(p, sizeof(p), "%s/sock", d);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	assert_true(strlen(p) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, p, strlen(p) + 1);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(cairn_nar_dump_path(d, to_buf, &out, &err), CAIRN_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "/dumprules/sock' is a socket"));
	close(s);
	unlink(p);
	cairn_buf_release(&out);
	/* a fifo too, and dump must not block opening it */
	snprintf(p, sizeof(p), "%s/fifo", d);
	assert_int_equal(mkfifo(p, 0644), 0);
	cairn_error_init(&err);
	assert_int_equal(cairn_nar_dump_path(d, to_buf, &out, &err), CAIRN_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "fifo' is a fifo"));
	unlink(p);
	cairn_buf_release(&out);
	/* a missing path */
	cairn_error_init(&err);
	snprintf(p, sizeof(p), "%s/missing", d);
	assert_int_equal(cairn_nar_dump_path(p, to_buf, &out, &err), CAIRN_EIO);
	assert_non_null(strstr(err.msg, "missing"));
	cairn_buf_release(&out);
}

/* file_fn for test_file_fn: appends the file's bytes itself, reading the fd */
struct ffn {
	struct cairn_buf *out;
	unsigned calls;
	uint64_t last_size;
	int fail;
};

static int file_to_buf(void *ctx, int fd, uint64_t size, struct cairn_error *err)
{
	struct ffn *f = ctx;
	char b[4096];
	f->calls++;
	f->last_size = size;
	if (f->fail)
		return cairn_error_set(err, CAIRN_ECANCELED, "test: refused");
	for (uint64_t off = 0; off < size;) {
		ssize_t r = pread(fd, b, size - off < sizeof(b) ? (size_t)(size - off) : sizeof(b),
				  (off_t)off);
		if (r <= 0)
			return cairn_error_set(err, CAIRN_EIO, "test: short");
		if (cairn_buf_append(f->out, b, (size_t)r) < 0)
			return CAIRN_ENOMEM;
		off += (uint64_t)r;
	}
	return 0;
}

static void test_file_fn(void **state)
{
	(void)state;
	char d[512], p[600];
	snprintf(d, sizeof(d), "%s/filefn", tmproot);
	assert_int_equal(mkdir(d, 0755), 0);
	/* one file above the threshold, between two below it */
	static const struct {
		const char *name;
		size_t size;
	} files[] = {{"a", 10}, {"b", 300000}, {"c", 7}};
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", d, files[i].name);
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
		assert_true(fd >= 0);
		for (size_t k = 0; k < files[i].size; k++) {
			unsigned char c = (unsigned char)(k * 31 + i);
			assert_int_equal(write(fd, &c, 1), 1);
		}
		close(fd);
	}
	struct cairn_buf plain = CAIRN_BUF_INIT(1u << 22), viafn = CAIRN_BUF_INIT(1u << 22);
	assert_int_equal(cairn_nar_dump_path(d, to_buf, &plain, NULL), 0);

	struct ffn f = {.out = &viafn};
	struct cairn_nar_writer *w = cairn_nar_writer_new(to_buf, &viafn);
	assert_non_null(w);
	cairn_nar_writer_set_file_fn(w, file_to_buf, &f, 1000);
	assert_int_equal(cairn_nar_write_path(w, d, NULL), 0);
	assert_int_equal(cairn_nar_writer_finish(w, NULL), 0);
	/* the same archive, and the writer counted the bytes it did not see */
	assert_int_equal(f.calls, 1);
	assert_int_equal(f.last_size, 300000);
	assert_int_equal(viafn.len, plain.len);
	assert_memory_equal(viafn.data, plain.data, plain.len);
	assert_int_equal(cairn_nar_writer_size(w), plain.len);
	cairn_nar_writer_free(w);

	/* a file_fn that fails fails the dump, with its error */
	struct cairn_error err;
	cairn_error_init(&err);
	cairn_buf_release(&viafn);
	f = (struct ffn){.out = &viafn, .fail = 1};
	w = cairn_nar_writer_new(to_buf, &viafn);
	cairn_nar_writer_set_file_fn(w, file_to_buf, &f, 1000);
	assert_int_equal(cairn_nar_write_path(w, d, &err), CAIRN_ECANCELED);
	assert_non_null(strstr(err.msg, "refused"));
	cairn_nar_writer_free(w);
	cairn_buf_release(&plain);
	cairn_buf_release(&viafn);
}

int main(void)
{
	if (cairn_init() != 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors_parse),
	    cmocka_unit_test(test_vectors_roundtrip),
	    cmocka_unit_test(test_vectors_restore_dump),
	    cmocka_unit_test(test_restore_canonical),
	    cmocka_unit_test(test_ls),
	    cmocka_unit_test(test_ls_escaping),
	    cmocka_unit_test(test_cat),
	    cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_truncation),
	    cmocka_unit_test(test_callback_stop),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_writer_misuse),
	    cmocka_unit_test(test_dump_rules),
	    cmocka_unit_test(test_file_fn),
	};
	return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
