#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "cairn/narinfo.h"
#include "vecutil.h"
#include "../../lib/narinfo-int.h"

static const char guix_vec[] = "guix/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw.narinfo";

static int parse_str(const char *s, struct cairn_narinfo **ni, struct cairn_error *e)
{
	cairn_error_init(e);
	return cairn_narinfo_parse(s, strlen(s), ni, e);
}

static void assert_roundtrip(const char *text, size_t len)
{
	struct cairn_narinfo *ni = NULL;
	struct cairn_error e;
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	cairn_error_init(&e);
	int rc = cairn_narinfo_parse(text, len, &ni, &e);
	if (rc)
		fail_msg("parse: %s", cairn_error_msg(&e));
	assert_int_equal(cairn_narinfo_print(ni, &b, NULL), 0);
	assert_int_equal(b.len, len);
	assert_memory_equal(b.data, text, len);
	cairn_buf_release(&b);
	cairn_narinfo_free(ni);
}

static void test_nix_vectors_roundtrip(void **state)
{
	(void)state;
	for (size_t c = 0; c < 4; c++)
		for (size_t p = 0; p < 3; p++) {
			char rel[256];
			size_t len = 0;
			snprintf(rel, sizeof(rel), "nix/%s/%s.narinfo", nix_caches[c],
				 nix_paths[p]);
			char *t = read_vec(rel, &len);
			assert_non_null(t);
			assert_roundtrip(t, len);
			free(t);
		}
}

static void test_nix_fields(void **state)
{
	(void)state;
	size_t len;
	char *t = read_vec("nix/cache-xz/x6b6ah9iya8w14wv5fzzwj36lf2yyghw.narinfo", &len);
	struct cairn_narinfo *ni;
	struct cairn_error e;
	assert_int_equal(parse_str(t, &ni, &e), 0);
	assert_string_equal(ni->store_path,
			    "/nix/store/x6b6ah9iya8w14wv5fzzwj36lf2yyghw-appvec-3.0");
	assert_int_equal(ni->n_urls, 1);
	assert_string_equal(ni->urls[0].compression, "xz");
	assert_true(ni->urls[0].has_file_hash);
	assert_int_equal(ni->urls[0].file_size, 288);
	assert_int_equal(ni->nar_size, 584);
	assert_int_equal(ni->nar_hash.algo, CAIRN_HASH_SHA256);
	assert_int_equal(ni->n_refs, 2);
	assert_string_equal(ni->refs[1], "pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0");
	assert_string_equal(ni->deriver, "1pkma45fwh8sv3qwm815l17cwn44jij2-appvec-3.0.drv");
	assert_int_equal(ni->n_sigs, 1);
	assert_null(ni->signature);
	char dir[CAIRN_NARINFO_STORE_DIR_MAX + 1];
	assert_int_equal(cairn_narinfo_store_dir(ni, dir, sizeof(dir)), 10);
	assert_string_equal(dir, "/nix/store");
	cairn_narinfo_free(ni);
	free(t);
}

/* The builder prints Nix's canonical order: the same bytes as Nix wrote. */
static void test_builder_matches_nix(void **state)
{
	(void)state;
	size_t len;
	char *t = read_vec("nix/cache-xz/x6b6ah9iya8w14wv5fzzwj36lf2yyghw.narinfo", &len);
	struct cairn_narinfo *p, *ni;
	struct cairn_error e;
	assert_int_equal(parse_str(t, &p, &e), 0);
	assert_int_equal(cairn_narinfo_new(p->store_path, &p->nar_hash, p->nar_size, &ni, &e), 0);
	assert_int_equal(cairn_narinfo_add_url(ni, p->urls[0].url, "xz", &p->urls[0].file_hash,
					       (int64_t)p->urls[0].file_size, &e),
			 0);
	for (size_t i = 0; i < p->n_refs; i++)
		assert_int_equal(cairn_narinfo_add_ref(ni, p->refs[i], &e), 0);
	assert_int_equal(cairn_narinfo_set_deriver(ni, p->deriver, &e), 0);
	assert_int_equal(cairn_narinfo_add_sig(ni, p->sigs[0], &e), 0);
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	assert_int_equal(cairn_narinfo_print(ni, &b, &e), 0);
	assert_string_equal(b.data, t);
	/* What would not parse back is refused. */
	assert_int_equal(cairn_narinfo_add_field(ni, "NarSize", "1", NULL), CAIRN_EINVAL);
	assert_int_equal(cairn_narinfo_add_field(ni, "X-A", "a Signature: b", NULL), CAIRN_EINVAL);
	assert_int_equal(cairn_narinfo_set_system(ni, "x\nNarSize: 1", NULL), CAIRN_EINVAL);
	assert_int_equal(cairn_narinfo_add_ref(ni, "not-a-path", NULL), CAIRN_EFORMAT);
	assert_int_equal(cairn_narinfo_add_url(ni, "", NULL, NULL, -1, NULL), CAIRN_EINVAL);
	cairn_buf_reset(&b);
	assert_int_equal(cairn_narinfo_print(ni, &b, &e), 0);
	assert_string_equal(b.data, t);
	/* Builder setters refuse to change a parsed narinfo. */
	assert_int_equal(cairn_narinfo_set_system(p, "x86_64-linux", NULL), CAIRN_EINVAL);
	cairn_buf_release(&b);
	cairn_narinfo_free(ni);
	cairn_narinfo_free(p);
	free(t);
}

static void test_guix_vector(void **state)
{
	(void)state;
	size_t len = 0;
	char *t = read_vec(guix_vec, &len);
	assert_non_null(t);
	assert_roundtrip(t, len);
	struct cairn_narinfo *ni;
	struct cairn_error e;
	assert_int_equal(parse_str(t, &ni, &e), 0);
	/* FileSize after References (old order) still belongs to the one URL group. */
	assert_int_equal(ni->n_urls, 1);
	assert_string_equal(ni->urls[0].compression, "gzip");
	assert_true(ni->urls[0].has_file_size);
	assert_int_equal(ni->urls[0].file_size, 218663);
	assert_false(ni->urls[0].has_file_hash);
	assert_string_equal(ni->system, "x86_64-linux");
	assert_non_null(ni->signature);
	assert_int_equal(strncmp(ni->signature, "1;berlin.guixsd.org;", 20), 0);
	size_t slen;
	const char *signed_text = cairn_narinfo_signed_text(ni, &slen);
	assert_non_null(signed_text);
	const char *sigline = strstr(t, "Signature: ");
	assert_int_equal(slen, (size_t)(sigline - t));
	assert_memory_equal(signed_text, t, slen);
	cairn_narinfo_free(ni);
	free(t);
}

static void test_guix_groups(void **state)
{
	(void)state;
	const char *s = "StorePath: /gnu/store/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-sed-4.4\n"
			"URL: nar/gzip/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-sed-4.4\n"
			"Compression: gzip\n"
			"FileSize: 100\n"
			"URL: nar/zstd/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-sed-4.4\n"
			"Compression: zstd\n"
			"FileSize: 90\n"
			"URL: nar/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-sed-4.4\n"
			"Compression: none\n"
			"NarHash: sha256:18v7dgny1xna7f53mbkj8bk4y2f00l5rjk2k6hj166kjv964lz7r\n"
			"NarSize: 637360\n"
			"References: \n"
			"X-Future: kept\n"
			"Signature: 1;h;AAAA\n";
	struct cairn_narinfo *ni;
	struct cairn_error e;
	assert_int_equal(parse_str(s, &ni, &e), 0);
	assert_int_equal(ni->n_urls, 3);
	assert_string_equal(ni->urls[1].compression, "zstd");
	assert_int_equal(ni->urls[1].file_size, 90);
	assert_false(ni->urls[2].has_file_size);
	assert_true(ni->has_references);
	assert_int_equal(ni->n_refs, 0);
	assert_int_equal(ni->n_unknown, 1);
	assert_string_equal(ni->unknown[0].name, "X-Future");
	cairn_narinfo_free(ni);
	assert_roundtrip(s, strlen(s));
}

/*
 * AltURL (cairn's extra methods in a Nix narinfo): each well-formed line
 * becomes a URL group after the URL line's, a malformed one is skipped
 * (Nix ignores the field; it must not make the item unreadable), a
 * Compression line after one still belongs to the URL group, and the text
 * prints back as it came.
 */
static void test_alt_urls(void **state)
{
	(void)state;
	const char *s = "StorePath: /nix/store/x6b6ah9iya8w14wv5fzzwj36lf2yyghw-appvec-3.0\n"
			"URL: nar/a.nar.zst\n"
			"AltURL: nar/b.nar.xz xz 288 "
			"sha256:18v7dgny1xna7f53mbkj8bk4y2f00l5rjk2k6hj166kjv964lz7r\n"
			"Compression: zstd\n"
			"FileSize: 300\n"
			"NarHash: sha256:18v7dgny1xna7f53mbkj8bk4y2f00l5rjk2k6hj166kjv964lz7r\n"
			"NarSize: 584\n"
			"References: \n"
			"AltURL: nar/c.nar?hash=x6b6ah9iya8w14wv5fzzwj36lf2yyghw none\n"
			"AltURL: nar/d.nar.gz gzip many\n"
			"AltURL: nar/e.nar.gz\n"
			"AltURL: nar/f.nar.gz gzip 1 "
			"sha256:18v7dgny1xna7f53mbkj8bk4y2f00l5rjk2k6hj166kjv964lz7r extra\n"
			"AltURL: nar/g.nar.bz2 bzip2 7\n";
	struct cairn_narinfo *ni;
	struct cairn_error e;
	if (parse_str(s, &ni, &e))
		fail_msg("parse: %s", cairn_error_msg(&e));
	assert_int_equal(ni->n_urls, 4);
	assert_string_equal(ni->urls[0].url, "nar/a.nar.zst");
	assert_string_equal(ni->urls[0].compression, "zstd");
	assert_int_equal(ni->urls[0].file_size, 300);
	assert_false(ni->urls[0].alt);
	assert_string_equal(ni->urls[1].url, "nar/b.nar.xz");
	assert_string_equal(ni->urls[1].compression, "xz");
	assert_true(ni->urls[1].alt);
	assert_true(ni->urls[1].has_file_size);
	assert_int_equal(ni->urls[1].file_size, 288);
	assert_true(ni->urls[1].has_file_hash);
	assert_string_equal(ni->urls[2].url, "nar/c.nar?hash=x6b6ah9iya8w14wv5fzzwj36lf2yyghw");
	assert_string_equal(ni->urls[2].compression, "none");
	assert_false(ni->urls[2].has_file_size);
	assert_false(ni->urls[2].has_file_hash);
	assert_string_equal(ni->urls[3].url, "nar/g.nar.bz2");
	assert_int_equal(ni->urls[3].file_size, 7);
	assert_false(ni->urls[3].has_file_hash);
	assert_int_equal(ni->n_unknown, 6);
	cairn_narinfo_free(ni);
	assert_roundtrip(s, strlen(s));

	/* an AltURL is no URL: without one the narinfo is refused, as by Nix */
	const char *none = "StorePath: /nix/store/x6b6ah9iya8w14wv5fzzwj36lf2yyghw-appvec-3.0\n"
			   "AltURL: nar/b.nar.xz xz\n"
			   "NarHash: sha256:18v7dgny1xna7f53mbkj8bk4y2f00l5rjk2k6hj166kjv964lz7r\n"
			   "NarSize: 584\n";
	assert_int_equal(parse_str(none, &ni, &e), CAIRN_EFORMAT);
}

/*
 * Guix's reader takes any field in any order after the Signature line
 * (issue 11.13): cairn reads them too, but what follows the Signature is
 * not signed, so a field trust rests on is never taken from there.
 */
static void test_fields_after_guix_signature(void **state)
{
	(void)state;
	const char *s = "StorePath: /gnu/store/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-sed-4.4\n"
			"NarHash: sha256:18v7dgny1xna7f53mbkj8bk4y2f00l5rjk2k6hj166kjv964lz7r\n"
			"NarSize: 637360\n"
			"References: \n"
			"Signature: 1;h;AAAA\n"
			"URL: nar/gzip/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-sed-4.4\n"
			"Compression: gzip\n"
			"FileHash: sha256:18v7dgny1xna7f53mbkj8bk4y2f00l5rjk2k6hj166kjv964lz7r\n"
			"FileSize: 100\n"
			"System: x86_64-linux\n"
			"X-Mirror: somewhere\n"
			"StorePath: /gnu/store/ss2grr2irapi9j8gk732wjw7g9a59mwx-evil-1\n"
			"NarHash: sha256:0yjj2midsychhj9rk22w8gh826lnbybv4iyj1dm9m8wlzyx1rs4p\n"
			"References: ss2grr2irapi9j8gk732wjw7g9a59mwx-evil-1\n"
			"Signature: 1;evil;BBBB\n";
	struct cairn_narinfo *ni;
	struct cairn_error e;
	assert_int_equal(parse_str(s, &ni, &e), 0);
	assert_int_equal(ni->n_urls, 1);
	assert_true(ni->urls[0].has_file_hash);
	assert_int_equal(ni->urls[0].file_size, 100);
	/* Guix uses the first of a repeated field: the signed one. */
	assert_string_equal(ni->store_path, "/gnu/store/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-sed-4.4");
	assert_int_equal(ni->n_refs, 0);
	assert_string_equal(ni->signature, "1;h;AAAA");
	assert_null(ni->system); /* unsigned there: unused */
	assert_int_equal(ni->n_unknown, 1);
	assert_string_equal(ni->unknown[0].name, "X-Mirror");
	size_t n;
	const char *signed_text = cairn_narinfo_signed_text(ni, &n);
	assert_non_null(signed_text);
	assert_int_equal(n, (size_t)(strstr(s, "Signature:") - s));
	cairn_narinfo_free(ni);
	assert_roundtrip(s, strlen(s));
}

static const char minimal[] =
    "StorePath: /nix/store/pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0\n"
    "URL: nar/x.nar\n"
    "NarHash: sha256:1rx7qicg1ra44gl6xffciigi4z8liqqg0f33d82s2mqwvpiwxjqb\n"
    "NarSize: 464\n";

static void test_defaults_and_hash_forms(void **state)
{
	(void)state;
	struct cairn_narinfo *ni, *ni2;
	struct cairn_error e;
	assert_int_equal(parse_str(minimal, &ni, &e), 0);
	assert_string_equal(ni->urls[0].compression, "bzip2"); /* Nix's default */
	assert_false(ni->urls[0].has_compression);
	assert_false(ni->has_references);
	assert_null(ni->deriver);
	/* The same hash in base16 and SRI reads the same. */
	char *hex =
	    replace(minimal, "sha256:1rx7qicg1ra44gl6xffciigi4z8liqqg0f33d82s2mqwvpiwxjqb",
		    "sha256:b4b1d1e7d1d3b2dc6ddb2b3f6f9f4e6e6b0e2b46d0f9a4b2b3b6b0c5e4f4b8e1");
	assert_int_equal(parse_str(hex, &ni2, &e), 0);
	assert_int_equal(ni2->nar_hash.len, 32);
	cairn_narinfo_free(ni2);
	free(hex);
	char *unk = replace(minimal, "NarSize: 464\n", "NarSize: 464\nDeriver: unknown-deriver\n");
	assert_int_equal(parse_str(unk, &ni2, &e), 0);
	assert_null(ni2->deriver);
	cairn_narinfo_free(ni2);
	free(unk);
	cairn_narinfo_free(ni);
}

static void expect_fail(const char *s, int code, const char *needle)
{
	struct cairn_narinfo *ni = (struct cairn_narinfo *)0x1;
	struct cairn_error e;
	int rc = parse_str(s, &ni, &e);
	if (rc != code)
		fail_msg("expected %d, got %d (%s) for:\n%s", code, rc, cairn_error_msg(&e), s);
	assert_ptr_equal(ni, (void *)0x1); /* output untouched on failure */
	if (!strstr(e.msg, needle))
		fail_msg("message '%s' lacks '%s'", e.msg, needle);
}

static void expect_edit_fails(const char *from, const char *to, int code, const char *needle)
{
	char *s = replace(minimal, from, to);
	assert_non_null(s);
	expect_fail(s, code, needle);
	free(s);
}

static void test_rejects(void **state)
{
	(void)state;
	expect_fail("", CAIRN_EFORMAT, "empty");
	expect_edit_fails("NarSize: 464\n", "NarSize: 464", CAIRN_EFORMAT, "newline");
	expect_edit_fails("StorePath: /nix/store/pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0\n", "",
			  CAIRN_EFORMAT, "StorePath missing");
	expect_edit_fails("NarSize: 464\n", "", CAIRN_EFORMAT, "NarSize");
	expect_edit_fails("NarSize: 464", "NarSize: 0", CAIRN_EFORMAT, "NarSize");
	expect_edit_fails("NarSize: 464", "NarSize: -1", CAIRN_EFORMAT, "NarSize");
	expect_edit_fails("NarSize: 464", "NarSize: 99999999999999999999", CAIRN_EFORMAT,
			  "NarSize");
	expect_edit_fails("URL: nar/x.nar\n", "", CAIRN_EFORMAT, "URL missing");
	expect_edit_fails("URL: nar/x.nar\n", "Compression: xz\n", CAIRN_EFORMAT, "without URL");
}

static void test_rejects_more(void **state)
{
	(void)state;
	/* 'e' is not in nix32 */
	expect_edit_fails("pp25ahmcbii9zkwhkaxdr3ihh9439x9p", "pp25ahmcbii9zkwhkaxdr3ihh9439x9e",
			  CAIRN_EFORMAT, "base32");
	expect_edit_fails("/nix/store/pp25", "nix/store/pp25", CAIRN_EFORMAT, "absolute");
	expect_edit_fails("-libvec-1.0", "-.-libvec", CAIRN_EFORMAT, "must not start with");
	expect_edit_fails("-libvec-1.0", "-..", CAIRN_EFORMAT, "'..'");
	{
		/* Other names starting with '.' are fine for Nix. */
		struct cairn_narinfo *ni;
		struct cairn_error e;
		char *s = replace(minimal, "-libvec-1.0", "-.libvec");
		assert_int_equal(parse_str(s, &ni, &e), 0);
		cairn_narinfo_free(ni);
		free(s);
	}
	expect_edit_fails("-libvec-1.0", "-lib/vec", CAIRN_EFORMAT, "");
	expect_edit_fails(
	    "NarSize: 464\n",
	    "NarSize: 464\nNarHash: sha256:1rx7qicg1ra44gl6xffciigi4z8liqqg0f33d82s2mqwvpiwxjqb\n",
	    CAIRN_EFORMAT, "duplicate NarHash");
	expect_edit_fails("NarSize: 464\n", "NarSize: 464\nReferences: \nReferences: \n",
			  CAIRN_EFORMAT, "duplicate References");
	/* "unknown-deriver" leaves no deriver, but it is a Deriver field all the same */
	expect_edit_fails("NarSize: 464\n",
			  "NarSize: 464\nDeriver: unknown-deriver\n"
			  "Deriver: 0lxd1f6k6cgaiv2cm6hnfvzsb4b1xryf-libvec-1.0.drv\n",
			  CAIRN_EFORMAT, "duplicate Deriver");
	expect_edit_fails("NarSize: 464\n",
			  "NarSize: 464\nDeriver: unknown-deriver\nDeriver: unknown-deriver\n",
			  CAIRN_EFORMAT, "duplicate Deriver");
	expect_edit_fails("NarHash: sha256:1rx7", "NarHash: sha256:xrx7", CAIRN_EFORMAT,
			  "bad NarHash");
	expect_edit_fails("URL: nar/x.nar\n", "URL:nar/x.nar\n", CAIRN_EFORMAT, "Name: value");
	expect_edit_fails("URL: nar/x.nar\n", "URL: nar/x\x01.nar\n", CAIRN_EFORMAT, "control");
	expect_edit_fails("URL: nar/x.nar\n", "URL: nar/x.nar\r\n", CAIRN_EFORMAT, "control");
	expect_edit_fails("URL: nar/x.nar\n", "URL: nar/x.nar\n\n", CAIRN_EFORMAT, "Name: value");
	expect_edit_fails("URL: nar/x.nar\n", "B@d: x\n", CAIRN_EFORMAT, "field name");
	/* A field trust rests on, found only after the Signature, is unsigned. */
	expect_edit_fails("NarSize: 464\n", "Signature: 1;h;AAAA\nNarSize: 464\n",
			  CAIRN_EFORMAT, "NarSize only after Signature");
	expect_edit_fails("StorePath: /nix/store/pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0\n",
			  "Signature: 1;h;AAAA\nStorePath: /nix/store/pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0\n",
			  CAIRN_EFORMAT, "StorePath only after Signature");
	expect_edit_fails("URL: nar/x.nar", "URL: nar/Signature: x", CAIRN_EFORMAT,
			  "inside a field value");
	expect_edit_fails("NarSize: 464\n", "NarSize: 464\nReferences: notapath\n", CAIRN_EFORMAT,
			  "<32-char hash>-<name>");
}

static void test_limits(void **state)
{
	(void)state;
	/* One reference too many. */
	struct cairn_buf b = CAIRN_BUF_INIT(4u << 20);
	assert_int_equal(cairn_buf_puts(&b, minimal), 0);
	assert_int_equal(cairn_buf_puts(&b, "References:"), 0);
	for (int i = 0; i <= CAIRN_NARINFO_MAX_REFS; i++)
		assert_int_equal(cairn_buf_printf(&b, " pp25ahmcbii9zkwhkaxdr3ihh9439x9p-r%d", i),
				 0);
	assert_int_equal(cairn_buf_putc(&b, '\n'), 0);
	expect_fail(b.data, CAIRN_ELIMIT, "references");
	/* Too long overall. */
	cairn_buf_reset(&b);
	assert_int_equal(cairn_buf_puts(&b, minimal), 0);
	while (b.len <= CAIRN_NARINFO_MAX)
		assert_int_equal(cairn_buf_puts(&b, "X-Pad: 0123456789abcdef0123456789abcdef\n"),
				 0);
	expect_fail(b.data, CAIRN_ELIMIT, "larger than");
	/* Too many lines. */
	cairn_buf_reset(&b);
	assert_int_equal(cairn_buf_puts(&b, minimal), 0);
	for (int i = 0; i < CAIRN_NARINFO_MAX_LINES; i++)
		assert_int_equal(cairn_buf_puts(&b, "X-Pad: 1\n"), 0);
	expect_fail(b.data, CAIRN_ELIMIT, "lines");
	/* Too many signatures. */
	cairn_buf_reset(&b);
	assert_int_equal(cairn_buf_puts(&b, minimal), 0);
	for (int i = 0; i <= CAIRN_NARINFO_MAX_SIGS; i++)
		assert_int_equal(cairn_buf_printf(&b, "Sig: k%d:AAAA\n", i), 0);
	expect_fail(b.data, CAIRN_ELIMIT, "Sig");
	/* Too many URL groups. */
	cairn_buf_reset(&b);
	assert_int_equal(cairn_buf_puts(&b, minimal), 0);
	for (int i = 0; i < CAIRN_NARINFO_MAX_URLS; i++)
		assert_int_equal(cairn_buf_printf(&b, "URL: nar/%d\n", i), 0);
	expect_fail(b.data, CAIRN_ELIMIT, "URL groups");
	/* A long value. */
	cairn_buf_reset(&b);
	assert_int_equal(cairn_buf_puts(&b, minimal), 0);
	assert_int_equal(cairn_buf_puts(&b, "System: "), 0);
	for (int i = 0; i <= CAIRN_NARINFO_VALUE_MAX; i++)
		assert_int_equal(cairn_buf_putc(&b, 'x'), 0);
	assert_int_equal(cairn_buf_putc(&b, '\n'), 0);
	expect_fail(b.data, CAIRN_ELIMIT, "longer than");
	cairn_buf_release(&b);
}

/* Signatures added to a parsed narinfo go after the last Sig, before CA. */
static void test_add_sig_order(void **state)
{
	(void)state;
	const char *s = "StorePath: /nix/store/pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0\n"
			"URL: nar/x.nar\n"
			"NarHash: sha256:1rx7qicg1ra44gl6xffciigi4z8liqqg0f33d82s2mqwvpiwxjqb\n"
			"NarSize: 464\n"
			"CA: fixed:r:sha256:1rx7qicg1ra44gl6xffciigi4z8liqqg0f33d82s2mqwvpiwxjqb\n"
			"X-After: 1\n";
	struct cairn_narinfo *ni;
	struct cairn_error e;
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	assert_int_equal(parse_str(s, &ni, &e), 0);
	assert_int_equal(cairn_narinfo_add_sig(ni, "a:AAAA", &e), 0);
	assert_int_equal(cairn_narinfo_add_sig(ni, "b:BBBB", &e), 0);
	assert_int_equal(cairn_narinfo_add_sig(ni, "a:AAAA", &e), 0); /* duplicate ignored */
	assert_int_equal(ni->n_sigs, 2);
	assert_int_equal(cairn_narinfo_print(ni, &b, &e), 0);
	char *want = replace(s, "CA:", "Sig: a:AAAA\nSig: b:BBBB\nCA:");
	assert_string_equal(b.data, want);
	free(want);
	cairn_narinfo_clear_sigs(ni);
	cairn_buf_reset(&b);
	assert_int_equal(cairn_narinfo_print(ni, &b, &e), 0);
	assert_string_equal(b.data, s);
	cairn_buf_release(&b);
	cairn_narinfo_free(ni);
}

/* A fresh narinfo prints in canonical order and parses back to the same bytes. */
static void test_builder_canonical(void **state)
{
	(void)state;
	struct cairn_narinfo *ni;
	struct cairn_hash h;
	struct cairn_error e;
	cairn_error_init(&e);
	assert_int_equal(
	    cairn_hash_parse("sha256:1rx7qicg1ra44gl6xffciigi4z8liqqg0f33d82s2mqwvpiwxjqb", 59, 0,
			     &h, &e),
	    0);
	assert_int_equal(cairn_narinfo_new("/gnu/store/pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0",
					   &h, 464, &ni, &e),
			 0);
	assert_int_equal(cairn_narinfo_add_field(ni, "X-Extra", "1", &e), 0);
	assert_int_equal(
	    cairn_narinfo_set_ca(
		ni, "fixed:r:sha256:1rx7qicg1ra44gl6xffciigi4z8liqqg0f33d82s2mqwvpiwxjqb", &e),
	    0);
	assert_int_equal(cairn_narinfo_add_sig(ni, "b:BBBB", &e), 0);
	assert_int_equal(cairn_narinfo_set_system(ni, "x86_64-linux", &e), 0);
	assert_int_equal(cairn_narinfo_add_url(ni, "nar/zstd/x", "zstd", NULL, 10, &e), 0);
	assert_int_equal(cairn_narinfo_add_url(ni, "nar/x", "none", NULL, 464, &e), 0);
	cairn_narinfo_set_has_refs(ni);
	assert_int_equal(cairn_narinfo_set_signature(ni, "1;h;AAAA", &e), 0);
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	assert_int_equal(cairn_narinfo_print(ni, &b, &e), 0);
	const char *want =
	    "StorePath: /gnu/store/pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0\n"
	    "URL: nar/zstd/x\nCompression: zstd\nFileSize: 10\n"
	    "URL: nar/x\nCompression: none\nFileSize: 464\n"
	    "NarHash: sha256:1rx7qicg1ra44gl6xffciigi4z8liqqg0f33d82s2mqwvpiwxjqb\n"
	    "NarSize: 464\nReferences: \nSystem: x86_64-linux\nSig: b:BBBB\n"
	    "CA: fixed:r:sha256:1rx7qicg1ra44gl6xffciigi4z8liqqg0f33d82s2mqwvpiwxjqb\n"
	    "X-Extra: 1\nSignature: 1;h;AAAA\n";
	assert_string_equal(b.data, want);
	size_t slen;
	const char *st = cairn_narinfo_signed_text(ni, &slen);
	assert_non_null(st);
	assert_int_equal(slen, strlen(want) - strlen("Signature: 1;h;AAAA\n"));
	assert_memory_equal(st, want, slen);
	cairn_narinfo_clear_signature(ni);
	assert_null(cairn_narinfo_signed_text(ni, &slen));
	cairn_buf_release(&b);
	cairn_narinfo_free(ni);
	assert_roundtrip(want, strlen(want));
}

int main(void)
{
	if (cairn_init() != 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nix_vectors_roundtrip),
	    cmocka_unit_test(test_nix_fields),
	    cmocka_unit_test(test_builder_matches_nix),
	    cmocka_unit_test(test_guix_vector),
	    cmocka_unit_test(test_guix_groups),
	    cmocka_unit_test(test_alt_urls),
	    cmocka_unit_test(test_fields_after_guix_signature),
	    cmocka_unit_test(test_defaults_and_hash_forms),
	    cmocka_unit_test(test_rejects),
	    cmocka_unit_test(test_rejects_more),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_add_sig_order),
	    cmocka_unit_test(test_builder_canonical),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
