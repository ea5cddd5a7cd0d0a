/*
 * test-torture.c - allocation-failure ("torture") tests, after curl's
 * torture mode: malloc, calloc, realloc, strdup and strndup are wrapped at
 * link time (-Wl,--wrap, see meson.build), and each operation is run again
 * with its 1st, 2nd, ... allocation failing until it runs through without
 * reaching the failure.  Every run must end in a clean error or success,
 * leave its outputs untouched on failure, and leak nothing (LeakSanitizer in
 * the sanitizer build).  Allocations inside shared libraries (libgcrypt,
 * libsodium, SQLite) are not wrapped.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "cairn/guix.h"
#include "cairn/ipfs.h"
#include "cairn/keys.h"
#include "cairn/nar.h"
#include "cairn/narinfo.h"
#include "cairn/sign.h"
#include "vecutil.h"
#include "../../lib/nar-internal.h"

static long fail_at = -1; /* the allocation to fail, counting from 1; -1: none */
static long counter;
static int injected;

void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static int should_fail(void)
{
	if (fail_at < 0 || ++counter != fail_at)
		return 0;
	injected = 1;
	return 1;
}

void *__wrap_malloc(size_t n)
{
	return should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t a, size_t b)
{
	return should_fail() ? NULL : __real_calloc(a, b);
}

void *__wrap_realloc(void *p, size_t n)
{
	return should_fail() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	return should_fail() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return should_fail() ? NULL : __real_strndup(s, n);
}

/* Arm the failure at allocation n. */
static void arm(long n)
{
	fail_at = n;
	counter = 0;
	injected = 0;
}

static void disarm(void)
{
	fail_at = -1;
}

static char *vec(const char *rel, size_t *len)
{
	char *s = read_vec(rel, len);
	if (!s)
		fail_msg("cannot read vector %s", rel);
	return s;
}

/* The narinfo as printed, with its signed text, for before/after comparisons. */
static char *snapshot(const struct cairn_narinfo *ni)
{
	struct cairn_buf b = CAIRN_BUF_INIT(1 << 22);
	size_t slen = 0;
	const char *st = cairn_narinfo_signed_text(ni, &slen);
	assert_int_equal(cairn_narinfo_print(ni, &b, NULL), 0);
	assert_int_equal(cairn_buf_printf(&b, "--- %zu sigs, signed text:\n", ni->n_sigs), 0);
	if (st)
		assert_int_equal(cairn_buf_append(&b, st, slen), 0);
	char *s = cairn_buf_steal(&b, NULL);
	assert_non_null(s);
	return s;
}

static const char *const narinfo_vecs[] = {
    "nix/cache-xz/6rpbsa1ix05i5cmar0xh7fw9cyms2476.narinfo",
    "nix/cache-xz/x6b6ah9iya8w14wv5fzzwj36lf2yyghw.narinfo",
    "guix/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw.narinfo",
};

static void test_narinfo_parse(void **state)
{
	(void)state;
	for (size_t v = 0; v < sizeof(narinfo_vecs) / sizeof(narinfo_vecs[0]); v++) {
		size_t len = 0;
		char *text = vec(narinfo_vecs[v], &len);
		for (long n = 1;; n++) {
			struct cairn_narinfo *ni = (struct cairn_narinfo *)0x1;
			struct cairn_error e;
			cairn_error_init(&e);
			arm(n);
			int rc = cairn_narinfo_parse(text, len, &ni, &e);
			disarm();
			if (!injected) {
				assert_int_equal(rc, 0);
				cairn_narinfo_free(ni);
				break;
			}
			if (rc == 0) {
				cairn_narinfo_free(ni);
				continue;
			}
			assert_int_equal(rc, CAIRN_ENOMEM);
			assert_ptr_equal(ni, (void *)0x1);
		}
		free(text);
	}
}

/*
 * An edit of a parsed narinfo that fails for lack of memory leaves it as it
 * was: same lines, same Sig fields, same text under the Guix signature.
 */
static void torture_edit(const char *rel, int (*edit)(struct cairn_narinfo *))
{
	size_t len;
	char *text = vec(rel, &len);
	for (long n = 1;; n++) {
		struct cairn_narinfo *ni;
		assert_int_equal(cairn_narinfo_parse(text, len, &ni, NULL), 0);
		char *before = snapshot(ni);
		arm(n);
		int rc = edit(ni);
		disarm();
		if (rc != 0) {
			assert_int_equal(rc, CAIRN_ENOMEM);
			char *after = snapshot(ni);
			if (strcmp(before, after) != 0)
				fail_msg("%s: a failed edit (allocation %ld) changed the narinfo:\n%s\n"
					 "=== became ===\n%s",
					 rel, n, before, after);
			free(after);
		}
		free(before);
		cairn_narinfo_free(ni);
		if (!injected) {
			assert_int_equal(rc, 0);
			break;
		}
	}
	free(text);
}

static int edit_add_sig(struct cairn_narinfo *ni)
{
	return cairn_narinfo_add_sig(
	    ni,
	    "k:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
	    NULL);
}

static int edit_set_signature(struct cairn_narinfo *ni)
{
	return cairn_narinfo_set_signature(ni, "1;example.org;AAAA", NULL);
}

static struct cairn_seckey guix_sk, nix_sk;

static int edit_sign_guix(struct cairn_narinfo *ni)
{
	return cairn_narinfo_sign(ni, &guix_sk, "example.org", NULL);
}

static int edit_sign_nix(struct cairn_narinfo *ni)
{
	return cairn_narinfo_sign(ni, &nix_sk, NULL, NULL);
}

static void test_narinfo_edits(void **state)
{
	(void)state;
	size_t len;
	char *sec = vec("nix/keys/cache.example.org-1.sec", &len);
	assert_int_equal(cairn_seckey_parse(sec, len, &nix_sk, NULL), 0);
	free(sec);
	guix_sk.kind = CAIRN_KEY_GUIX;
	assert_int_equal(cairn_guix_key_generate(&guix_sk.u.guix, NULL), 0);
	for (size_t v = 0; v < sizeof(narinfo_vecs) / sizeof(narinfo_vecs[0]); v++) {
		torture_edit(narinfo_vecs[v], edit_add_sig);
		torture_edit(narinfo_vecs[v], edit_set_signature);
		torture_edit(narinfo_vecs[v], edit_sign_nix);
		torture_edit(narinfo_vecs[v], edit_sign_guix);
	}
	cairn_seckey_wipe(&nix_sk);
	cairn_seckey_wipe(&guix_sk);
}

static void test_narinfo_verify(void **state)
{
	(void)state;
	size_t klen = 0, len = 0;
	char *key = vec("nix/keys/cache.example.org-1.pub", &klen);
	char *gkey = vec("guix/bordeaux.guix.gnu.org.pub", NULL);
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	assert_int_equal(cairn_keyring_load(&kr, key, klen, NULL), 1);
	assert_int_equal(cairn_keyring_load(&kr, gkey, strlen(gkey), NULL), 1);
	for (size_t v = 0; v < sizeof(narinfo_vecs) / sizeof(narinfo_vecs[0]); v++) {
		char *text = vec(narinfo_vecs[v], &len);
		struct cairn_narinfo *ni;
		assert_int_equal(cairn_narinfo_parse(text, len, &ni, NULL), 0);
		struct cairn_verify_result res;
		int base = cairn_narinfo_verify(ni, &kr, &res, NULL);
		for (long n = 1;; n++) {
			arm(n);
			int rc = cairn_narinfo_verify(ni, &kr, &res, NULL);
			disarm();
			if (!injected) {
				assert_int_equal(rc, base);
				break;
			}
			/* never more trusting for lack of memory */
			if (base != 0)
				assert_int_not_equal(rc, 0);
		}
		cairn_narinfo_free(ni);
		free(text);
	}
	/* key files: ring loads are all or nothing */
	for (long n = 1;; n++) {
		struct cairn_keyring k2 = CAIRN_KEYRING_INIT;
		arm(n);
		int rc = cairn_keyring_load(&k2, gkey, strlen(gkey), NULL);
		disarm();
		if (rc < 0)
			assert_int_equal(k2.n_nix + k2.n_guix, 0);
		cairn_keyring_release(&k2);
		if (!injected) {
			assert_int_equal(rc, 1);
			break;
		}
	}
	cairn_keyring_release(&kr);
	free(key);
	free(gkey);
}

/* A tiny NAR: a directory with a file and a symlink. */
static size_t tiny_nar(uint8_t *out)
{
	static const char *const toks[] = {
	    "nix-archive-1", "(", "type", "directory", "entry", "(", "name", "a", "node", "(",
	    "type", "regular", "contents", NULL, ")", ")", "entry", "(", "name", "b", "node",
	    "(", "type", "symlink", "target", "a", ")", ")", ")"};
	size_t o = 0;
	for (size_t i = 0; i < sizeof(toks) / sizeof(toks[0]); i++) {
		const char *t = toks[i] ? toks[i] : "hello";
		size_t n = strlen(t);
		memset(out + o, 0, 8);
		out[o] = (uint8_t)n;
		o += 8;
		memcpy(out + o, t, n);
		o += n;
		while (o % 8)
			out[o++] = 0;
	}
	return o;
}

static void test_nar(void **state)
{
	(void)state;
	uint8_t nar[1024];
	size_t len = tiny_nar(nar);
	char dir[] = "/tmp/cairn-torture-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char target[64];
	snprintf(target, sizeof(target), "%s/out", dir);
	for (long n = 1;; n++) {
		char *json = (char *)0x1;
		arm(n);
		int rc = cairn_nar_ls_buffer(nar, len, 0, &json, NULL, NULL);
		disarm();
		if (rc == 0)
			free(json);
		else
			assert_ptr_equal(json, (void *)0x1);
		if (!injected) {
			assert_int_equal(rc, 0);
			break;
		}
	}
	for (long n = 1;; n++) {
		struct cairn_nar_restore *r = NULL;
		arm(n);
		int rc = cairn_nar_restore_new(target, &r, NULL);
		if (rc == 0) {
			rc = cairn_nar_parse_buffer(nar, len, &cairn_nar_restore_callbacks, r, NULL,
						    NULL, NULL);
			if (rc == 0)
				rc = cairn_nar_restore_commit(r, NULL);
			cairn_nar_restore_free(r);
		}
		disarm();
		/* a failed restore leaves nothing; a good one exactly the target */
		DIR *d = opendir(dir);
		assert_non_null(d);
		int entries = 0;
		struct dirent *de;
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				entries++;
		closedir(d);
		assert_int_equal(entries, rc == 0 ? 1 : 0);
		if (rc == 0) {
			char p[96];
			snprintf(p, sizeof(p), "%s/b", target);
			unlink(p);
			snprintf(p, sizeof(p), "%s/a", target);
			unlink(p);
			assert_int_equal(rmdir(target), 0);
		}
		if (!injected) {
			assert_int_equal(rc, 0);
			break;
		}
	}
	rmdir(dir);
}

/* The IPFS builder and the dag-pb decoder: ENOMEM, never a wrong root. */
static void test_ipfs(void **state)
{
	(void)state;
	uint8_t data[3000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + (i >> 8));
	struct cairn_chunker_spec spec;
	assert_int_equal(cairn_chunker_spec_parse("size-1000", &spec, NULL), 0);
	struct cairn_cid want;
	int have_want = 0;
	for (long n = 1;; n++) {
		struct cairn_ipfs_add *a = NULL;
		struct cairn_cid root;
		arm(n);
		int rc = cairn_ipfs_add_new(&spec, NULL, NULL, &a, NULL);
		if (rc == 0) {
			rc = cairn_ipfs_add_write(a, data, sizeof(data), NULL);
			if (rc == 0)
				rc = cairn_ipfs_add_finish(a, &root, NULL, NULL);
			cairn_ipfs_add_free(a);
		}
		disarm();
		if (rc != 0) {
			assert_int_equal(rc, CAIRN_ENOMEM);
		} else if (have_want) {
			assert_true(cairn_cid_equal(&root, &want));
		} else {
			want = root;
			have_want = 1;
		}
		if (!injected) {
			assert_int_equal(rc, 0);
			break;
		}
	}
	/* a node of 20 links (the realloc of the link array grows once) */
	uint8_t node[20 * 38];
	for (size_t i = 0; i < 20; i++) {
		uint8_t *l = node + i * 38;
		l[0] = 0x12, l[1] = 36, l[2] = 0x0a, l[3] = 34, l[4] = 0x12, l[5] = 0x20;
		memset(l + 6, (int)i, 32);
	}
	for (long n = 1;; n++) {
		struct cairn_pbnode pn;
		arm(n);
		int rc = cairn_pbnode_decode(node, sizeof(node), &pn, NULL);
		disarm();
		if (rc == 0) {
			assert_int_equal(pn.n_links, 20);
			cairn_pbnode_release(&pn);
		} else {
			assert_int_equal(rc, CAIRN_ENOMEM);
		}
		if (!injected) {
			assert_int_equal(rc, 0);
			break;
		}
	}
}

int main(void)
{
	(void)replace; /* vecutil.h's, unused here */
	if (cairn_init() != 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_narinfo_parse),
	    cmocka_unit_test(test_narinfo_edits),
	    cmocka_unit_test(test_narinfo_verify),
	    cmocka_unit_test(test_nar),
	    cmocka_unit_test(test_ipfs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
