#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "cairn/hash.h"
#include "cairn/storepath.h"

#define H32 "ffgxzvwgpa92d5hfh91d5fylv05w28cy"

static int parse_err(const char *s, const char *storedir, const char *want)
{
	struct cairn_store_path p;
	struct cairn_error err;
	cairn_error_init(&err);
	memset(&p, 0x5a, sizeof(p));
	int rc = cairn_store_path_parse(s, strlen(s), storedir, &p, &err);
	if (rc == 0) {
		fprintf(stderr, "accepted: %s\n", s);
		return rc;
	}
	assert_int_equal(err.code, rc);
	if (!strstr(err.msg, want)) {
		fprintf(stderr, "'%s': message '%s' lacks '%s'\n", s, err.msg, want);
		return 0;
	}
	/* untouched on failure */
	assert_int_equal((unsigned char)p.hash[0], 0x5a);
	return rc;
}

static void test_parse_valid(void **state)
{
	(void)state;
	struct cairn_store_path p;
	const char *ok[] = {
		"/nix/store/" H32 "-t01-file",
		"/gnu/store/" H32 "-guile-3.0.9",
		"/foo/bar/" H32 "-x",
		"/" "a/" H32 "-A+Z_0?9=.-", /* every allowed class */
		"/nix/store/" H32 "-.hidden", /* a leading dot alone is fine now */
		"/nix/store/" H32 "-..x",
		"/nix/store/" H32 "-.x-y",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct cairn_error err;
		cairn_error_init(&err);
		int rc = cairn_store_path_parse(ok[i], strlen(ok[i]), NULL, &p, &err);
		if (rc)
			fprintf(stderr, "%s: %s\n", ok[i], err.msg);
		assert_int_equal(rc, 0);
		assert_string_equal(p.hash, H32);
		char out[CAIRN_STORE_PATH_MAX];
		size_t dlen = strlen(ok[i]) - cairn_store_path_base_len(&p) - 1;
		char dir[CAIRN_STORE_DIR_MAX + 1];
		memcpy(dir, ok[i], dlen);
		dir[dlen] = '\0';
		assert_int_equal(cairn_store_path_format(&p, dir, out, sizeof(out)),
				 (int)strlen(ok[i]));
		assert_string_equal(out, ok[i]);
	}
	assert_int_equal(cairn_store_path_parse(ok[0], strlen(ok[0]), "/nix/store", &p, NULL), 0);
	assert_string_equal(p.name, "t01-file");
	char base[CAIRN_STORE_BASE_MAX + 1];
	assert_int_equal(cairn_store_path_format(&p, NULL, base, sizeof(base)), 32 + 1 + 8);
	assert_string_equal(base, H32 "-t01-file");
	/* a buffer one byte short */
	assert_int_equal(cairn_store_path_format(&p, NULL, base, 32 + 1 + 8), CAIRN_ELIMIT);

	/* a basename, as in References */
	assert_int_equal(cairn_store_path_parse_base(H32 "-x", 34, &p, NULL), 0);
	assert_string_equal(p.name, "x");

	/* the longest name */
	char longp[11 + 33 + 212];
	snprintf(longp, sizeof(longp), "/nix/store/" H32 "-%0211d", 0);
	assert_int_equal(cairn_store_path_parse(longp, strlen(longp), NULL, &p, NULL), 0);
	assert_int_equal(strlen(p.name), 211);
}

static void test_parse_invalid(void **state)
{
	(void)state;
	char longp[11 + 33 + 213];
	snprintf(longp, sizeof(longp), "/nix/store/" H32 "-%0212d", 0);
	struct {
		const char *path, *dir, *msg;
	} bad[] = {
		{ "/nix/store/" H32 "-", NULL, "too short" },
		{ "/nix/store/" H32, NULL, "too short" },
		{ "/nix/store/ffgxzvwgpa92d5hfh91d5fylv05w28c-xy", NULL, "at position 31" },
		{ "/nix/store/ffgxzvwgpa92d5hfh91d5fylv05w28cye-x", NULL, "no '-' after" },
		{ "/nix/store/efgxzvwgpa92d5hfh91d5fylv05w28cy-x", NULL, "outside Nix base32 at position 0" },
		{ "/nix/store/ffgxzvwgpa92d5hfh91d5fylv05w28cT-x", NULL, "outside Nix base32 at position 31" },
		{ "/nix/store/ffgxzvwgpa92d5hfh91d5fylv05w28co-x", NULL, "outside Nix base32" },
		{ "/nix/store/" H32 "-.", NULL, "'.' or '..'" },
		{ "/nix/store/" H32 "-..", NULL, "'.' or '..'" },
		{ "/nix/store/" H32 "-.-x", NULL, "'.-'" },
		{ "/nix/store/" H32 "-..-x", NULL, "'..-'" },
		{ "/nix/store/" H32 "-a b", NULL, "illegal character ' '" },
		{ "/nix/store/" H32 "-a:b", NULL, "illegal character ':'" },
		{ "/nix/store/" H32 "-a\nb", NULL, "illegal byte 0x0a" },
		{ "/nix/store/" H32 "-caf\xc3\xa9", NULL, "illegal byte 0xc3" },
		{ longp, NULL, "longer than 211" },
		{ "nix/store/" H32 "-x", NULL, "absolute" },
		{ H32 "-x", NULL, "not an absolute path" },
		{ "/" H32 "-x", NULL, "absolute" },
		{ "/nix//store/" H32 "-x", NULL, "'//'" },
		{ "/nix/store//" H32 "-x", NULL, "'/'" },
		{ "/nix/./store/" H32 "-x", NULL, "'.' or '..' components" },
		{ "/nix/../store/" H32 "-x", NULL, "'.' or '..' components" },
		{ "/nix/st\tore/" H32 "-x", NULL, "control character" },
		{ "/gnu/store/" H32 "-x", "/nix/store", "not in '/nix/store'" },
		{ "/nix/storex/" H32 "-x", "/nix/store", "not in '/nix/store'" },
		{ "/nix/store/sub/" H32 "-x", "/nix/store", "not directly in" },
		{ "/nix/store/" H32 "-x", "/nix/store/", "not in" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_not_equal(parse_err(bad[i].path, bad[i].dir, bad[i].msg), 0);

	/* the message names the whole path */
	struct cairn_store_path p;
	struct cairn_error err;
	cairn_error_init(&err);
	const char *s = "/nix/store/" H32 "-a b";
	assert_int_equal(cairn_store_path_parse(s, strlen(s), NULL, &p, &err), CAIRN_EFORMAT);
	assert_non_null(strstr(err.msg, "store path '/nix/store/" H32 "-a b'"));

	/* an embedded NUL counts as a byte, not an end */
	assert_int_equal(cairn_store_path_parse_base(H32 "-a\0b", 36, &p, NULL), CAIRN_EFORMAT);

	/* a very long directory */
	char *big = malloc(2000);
	assert_non_null(big);
	memset(big, 'a', 2000);
	big[0] = '/';
	memcpy(big + 1999 - 34, "/" H32 "-x", 35);
	cairn_error_init(&err);
	assert_int_equal(cairn_store_path_parse(big, 2000, NULL, &p, &err), CAIRN_ELIMIT);
	assert_true(strlen(err.msg) < CAIRN_ERROR_MSG_MAX);
	free(big);
}

static void test_checks(void **state)
{
	(void)state;
	assert_true(cairn_store_hash_valid(H32, 32));
	assert_false(cairn_store_hash_valid(H32, 31));
	assert_false(cairn_store_hash_valid(H32 "0", 33));
	assert_false(cairn_store_hash_valid("ffgxzvwgpa92d5hfh91d5fylv05w28cu", 32));
	assert_false(cairn_store_hash_valid("FFGXZVWGPA92D5HFH91D5FYLV05W28CY", 32));
	assert_false(cairn_store_hash_valid(NULL, 32));

	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(cairn_store_name_check("", 0, &err), CAIRN_EFORMAT);
	assert_non_null(strstr(err.msg, "must not be empty"));
	assert_int_equal(cairn_store_name_check("hello-2.12.1", 12, NULL), 0);
	assert_int_equal(cairn_store_name_check("x/y", 3, NULL), CAIRN_EFORMAT);

	assert_int_equal(cairn_store_dir_check("/nix/store", 10, NULL), 0);
	assert_int_equal(cairn_store_dir_check("/", 1, NULL), CAIRN_EFORMAT);
	cairn_error_init(&err);
	assert_int_equal(cairn_store_dir_check("/nix/store/", 11, &err), CAIRN_EFORMAT);
	assert_non_null(strstr(err.msg, "store directory '/nix/store/': "));
	assert_non_null(strstr(err.msg, "end with '/'"));
	assert_int_equal(cairn_store_dir_check("/nix/..", 7, NULL), CAIRN_EFORMAT);
	assert_int_equal(cairn_store_dir_check("/nix/.store", 11, NULL), 0);
	assert_int_equal(cairn_store_dir_check("/nix/...", 8, NULL), 0);
}

static void test_cmp_digest(void **state)
{
	(void)state;
	struct cairn_store_path a, b, c;
	assert_int_equal(cairn_store_path_parse_base(H32 "-x", 34, &a, NULL), 0);
	assert_int_equal(cairn_store_path_parse_base(H32 "-y", 34, &b, NULL), 0);
	assert_int_equal(cairn_store_path_parse_base("0fgxzvwgpa92d5hfh91d5fylv05w28cy-z", 34, &c,
						     NULL), 0);
	assert_true(cairn_store_path_cmp(&a, &b) < 0);
	assert_true(cairn_store_path_cmp(&b, &a) > 0);
	assert_true(cairn_store_path_cmp(&c, &a) < 0); /* hash part first */
	assert_int_equal(cairn_store_path_cmp(&a, &a), 0);

	/* The 20 bytes round-trip through nix32. */
	uint8_t d[CAIRN_STORE_DIGEST_LEN];
	char back[33] = { 0 };
	assert_int_equal(cairn_store_path_digest(&a, d), 0);
	cairn_nix32_encode(d, sizeof(d), back);
	assert_string_equal(back, H32);
	/* "00..01" is the digest 01 00 .. 00 (Nix reads from the end) */
	struct cairn_store_path one;
	assert_int_equal(cairn_store_path_parse_base("00000000000000000000000000000001-x", 34, &one,
						     NULL), 0);
	assert_int_equal(cairn_store_path_digest(&one, d), 0);
	assert_int_equal(d[0], 1);
	for (size_t i = 1; i < sizeof(d); i++)
		assert_int_equal(d[i], 0);
}

static unsigned char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t cap = 1 << 21, n = 0;
	unsigned char *buf = malloc(cap);
	assert_non_null(buf);
	n = fread(buf, 1, cap, f);
	assert_true(n < cap); /* the vectors are small */
	fclose(f);
	*len = n;
	return buf;
}

/* Run the CA content check over data in chunks of step bytes. */
static int verify_chunked(const struct cairn_ca *ca, const struct cairn_store_path *path,
			  const unsigned char *data, size_t len, size_t step)
{
	struct cairn_ca_verify v;
	int rc = cairn_ca_verify_init(&v, ca, path, NULL);
	if (rc)
		return rc;
	for (size_t off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step;
		rc = cairn_ca_verify_update(&v, data + off, n, NULL);
		if (rc) {
			cairn_ca_verify_release(&v);
			return rc;
		}
	}
	return cairn_ca_verify_final(&v, NULL);
}

/* Every row of tests/vectors/nix/trees/expected.tsv: the NAR hash gives the
 * path `nix store add-path` printed, both directly and through a CA field. */
static void test_expected_tsv(void **state)
{
	(void)state;
	char path[4096];
	snprintf(path, sizeof(path), "%s/nix/trees/expected.tsv", VECTORS_DIR);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[1024];
	int rows = 0;
	assert_non_null(fgets(line, sizeof(line), f)); /* header */
	while (fgets(line, sizeof(line), f)) {
		char name[256], n32[64], hex[80], size[32], sp[512];
		if (sscanf(line, "%255s %63s %79s %31s %511s", name, n32, hex, size, sp) != 5)
			continue;
		struct cairn_hash h;
		assert_int_equal(cairn_hash_parse(hex, strlen(hex), CAIRN_HASH_SHA256, &h, NULL), 0);
		struct cairn_store_path got, want;
		assert_int_equal(cairn_store_path_parse(sp, strlen(sp), "/nix/store", &want, NULL), 0);
		assert_int_equal(cairn_store_path_make("source", &h, name, "/nix/store", &got, NULL), 0);
		assert_string_equal(got.hash, want.hash);
		assert_string_equal(got.name, name);

		char cas[256];
		snprintf(cas, sizeof(cas), "fixed:r:sha256:%s", n32);
		struct cairn_ca ca;
		assert_int_equal(cairn_ca_parse(cas, strlen(cas), &ca, NULL), 0);
		assert_int_equal(ca.method, CAIRN_CA_NAR);
		char back[CAIRN_CA_STR_MAX];
		assert_int_equal(cairn_ca_format(&ca, back, sizeof(back)), (int)strlen(cas));
		assert_string_equal(back, cas);
		assert_int_equal(cairn_ca_make_path(&ca, name, NULL, "/nix/store", &got, NULL), 0);
		assert_int_equal(cairn_store_path_cmp(&got, &want), 0);
		assert_int_equal(cairn_ca_check_path(&ca, &want, NULL, 0, "/nix/store", NULL), 0);
		/* the NAR itself matches the CA hash; one flipped byte does not */
		char narpath[4096];
		snprintf(narpath, sizeof(narpath), "%s/nix/trees/%s.nar", VECTORS_DIR, name);
		size_t narlen = 0;
		unsigned char *nar = read_all(narpath, &narlen);
		assert_int_equal(verify_chunked(&ca, &want, nar, narlen, 4096), 0);
		assert_int_equal(verify_chunked(&ca, &want, nar, narlen, 7), 0);
		nar[narlen / 2] ^= 1;
		assert_int_equal(verify_chunked(&ca, &want, nar, narlen, 4096), CAIRN_EHASH);
		free(nar);

		/* another name, another store, or a changed hash: no match */
		struct cairn_error err;
		cairn_error_init(&err);
		assert_int_equal(cairn_ca_check_path(&ca, &want, NULL, 0, "/gnu/store", &err),
				 CAIRN_EHASH);
		assert_non_null(strstr(err.msg, "does not match content address"));
		ca.hash.digest[0] ^= 1;
		assert_int_equal(cairn_ca_check_path(&ca, &want, NULL, 0, "/nix/store", NULL),
				 CAIRN_EHASH);
		rows++;
	}
	fclose(f);
	assert_int_equal(rows, 8);
}

/*
 * Made with the real Nix 2.8 in throw-away stores, nothing under /nix:
 *   export NIX_CONFIG='sandbox = false / build-users-group = / substituters =
 *                      / experimental-features = nix-command'
 *   printf 'hello cairn\n' > file; mkdir dir; printf 'a\n' > dir/a; printf 'b\n' > dir/b
 *   S=/tmp/sp-nix/store
 *   nix store add-file --store $S --name x ./file
 *   nix store add-path --store $S --name srcdir ./dir
 *   nix-store --store $S --add-fixed sha1 ./file
 *   nix-store --store $S --add-fixed --recursive sha1 ./dir
 *   nix-store --store $S --add-fixed --recursive sha512 ./dir
 *   nix-store --store $S --add-fixed md5 ./file
 *   nix eval --store $S --raw --expr 'builtins.toFile "hello.txt" "hi there"'
 *   nix eval --store $S --raw --expr 'let a = builtins.toFile "a.txt" "aaa";
 *     b = builtins.toFile "b.txt" "bbb"; in builtins.toFile "refs.txt" "${b} ${a}"'
 *   nix store add-path --store 'local?store=/gnu/store&root=/tmp/sp-nix/g' --name srcdir ./dir
 *   nix store add-file --store 'local?store=/foo/bar&root=/tmp/sp-nix/f' --name x ./file
 *   nix path-info --store $S --json --all       (for the CA fields and references)
 * and a content-addressed derivation (ca-derivations, sandbox = true,
 * extra-sandbox-paths = /bin /lib /lib64 /usr) whose output refers to
 * itself and to a toFile path:
 *   derivation { name = "selfref"; builder = "/bin/sh";
 *     args = ["-c" "read x < ${dep}; echo $out ${dep} > $out"];
 *     __contentAddressed = true; outputHashMode = "recursive"; outputHashAlgo = "sha256"; ... }
 */
static const struct {
	const char *storedir, *path, *ca, *refs[3];
} nixca[] = {
	{ "/nix/store", "/nix/store/lkij9rnalwaq841nydn3xsc2m1v4gasq-x",
	  "fixed:sha256:091mcyizgnydx8zfr9dx6zs6kdjk2m2sxkcjv6y4ilxr8442k98d", { 0 } },
	{ "/nix/store", "/nix/store/i68hpjwm6qkzzha374qc7s6zhcavc4v9-srcdir",
	  "fixed:r:sha256:1acsqxaxawxn8xn9cw2n8z1l1dlj1ifhw6bghzv0ma9bfgazyxyi", { 0 } },
	{ "/nix/store", "/nix/store/vizn1r9hs1ij5w4ivmxzn8yn32xvh4xv-file",
	  "fixed:sha1:rkm8nq52dzhk7j9klgzi3gh10q7kp86l", { 0 } },
	{ "/nix/store", "/nix/store/18h61d43v7l9bl70bqgajr2sj6l5kwli-dir",
	  "fixed:r:sha1:7993958jq920ndbcpm4w83sd9s42sksn", { 0 } },
	{ "/nix/store", "/nix/store/cjpi7jjn8rhsxikfhdcrdww791s2qgld-dir",
	  "fixed:r:sha512:15x2rwcxch0n5vyqwgvvh7k0693rf1f7mn19jdwf82af65kafy3h3q7nw478qpvd10gz3lywfxfimijrgqhazgshrb70rhv17mjs737",
	  { 0 } },
	{ "/nix/store", "/nix/store/sg87nnnyngkskh5mmplgdqnlq27fwjaq-file",
	  "fixed:md5:4fk40lawfa8nzk57flcbjfsjgv", { 0 } },
	{ "/nix/store", "/nix/store/ly42mdmrr2bqiqcnycv68493jd5mqqng-hello.txt",
	  "text:sha256:195sragjc913zdk67c376rv4mmwgcs304sncc34vp32l3pza35lv", { 0 } },
	/* references listed out of order on purpose: Nix sorts them */
	{ "/nix/store", "/nix/store/ks6fvi20246xskag6a45dnybl059zxjy-refs.txt",
	  "text:sha256:143srw1lv1jjnza21n21cnsr6a327cihbfvwr7zaaj5h7zx25m1f",
	  { "35709yg676wj0h2n0nn19xr309m8jcxv-b.txt", "2qzxavkmc1a53hdc058phqdqyic53b67-a.txt" } },
	{ "/nix/store", "/nix/store/h3y97x2vf4j0lzmdgw08a3dgnk71g0x3-selfref",
	  "fixed:r:sha256:172zh0w7ins85yrwqz0cgaf6n80pifbpfm573f5fzkmdl97ihprz",
	  { "h3y97x2vf4j0lzmdgw08a3dgnk71g0x3-selfref", "fars50mlfk67nyzn0mc86b8gwbai49jr-dep.txt" } },
	{ "/gnu/store", "/gnu/store/xzx6phx2yf1ikhxfy6a8h9xjjpdqss98-srcdir",
	  "fixed:r:sha256:1acsqxaxawxn8xn9cw2n8z1l1dlj1ifhw6bghzv0ma9bfgazyxyi", { 0 } },
	{ "/foo/bar", "/foo/bar/p3zr59sr9rra192cdnsw24vsi46b9nq2-x",
	  "fixed:sha256:091mcyizgnydx8zfr9dx6zs6kdjk2m2sxkcjv6y4ilxr8442k98d", { 0 } },
};

static void test_nix_ca_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(nixca) / sizeof(nixca[0]); i++) {
		struct cairn_store_path want, got, refs[3];
		struct cairn_ca ca;
		struct cairn_error err;
		size_t n = 0;
		cairn_error_init(&err);
		assert_int_equal(cairn_store_path_parse(nixca[i].path, strlen(nixca[i].path),
							nixca[i].storedir, &want, NULL), 0);
		assert_int_equal(cairn_ca_parse(nixca[i].ca, strlen(nixca[i].ca), &ca, NULL), 0);
		char back[CAIRN_CA_STR_MAX];
		assert_int_equal(cairn_ca_format(&ca, back, sizeof(back)), (int)strlen(nixca[i].ca));
		assert_string_equal(back, nixca[i].ca);
		while (n < 3 && nixca[i].refs[n]) {
			assert_int_equal(cairn_store_path_parse_base(nixca[i].refs[n],
								     strlen(nixca[i].refs[n]),
								     &refs[n], NULL), 0);
			n++;
		}
		/* only sha256 content is checked */
		struct cairn_ca_verify v;
		int vrc = cairn_ca_verify_init(&v, &ca, &want, NULL);
		if (ca.hash.algo == CAIRN_HASH_SHA256) {
			assert_int_equal(vrc, 0);
			cairn_ca_verify_release(&v);
		} else {
			assert_int_equal(vrc, CAIRN_EUNSUPPORTED);
		}
		int rc = cairn_ca_check_path(&ca, &want, refs, n, nixca[i].storedir, &err);
		if (rc)
			fprintf(stderr, "%s: %s\n", nixca[i].path, err.msg);
		assert_int_equal(rc, 0);
		if (n == 0) {
			assert_int_equal(cairn_ca_make_path(&ca, want.name, NULL, nixca[i].storedir,
							    &got, NULL), 0);
			assert_int_equal(cairn_store_path_cmp(&got, &want), 0);
		}
		if (n > 0) {
			/* dropping a reference changes the path */
			assert_int_equal(cairn_ca_check_path(&ca, &want, refs, n - 1,
							     nixca[i].storedir, NULL), CAIRN_EHASH);
			/* listing one twice does not (a set, as in Nix) */
			struct cairn_store_path dup[4];
			memcpy(dup, refs, n * sizeof(refs[0]));
			dup[n] = refs[0];
			assert_int_equal(cairn_ca_check_path(&ca, &want, dup, n + 1,
							     nixca[i].storedir, NULL), 0);
		}
	}
}

static void test_self_reference(void **state)
{
	(void)state;
	/* selfref through the explicit refs struct: self flag + the other one */
	struct cairn_ca ca;
	const char *cas = "fixed:r:sha256:172zh0w7ins85yrwqz0cgaf6n80pifbpfm573f5fzkmdl97ihprz";
	assert_int_equal(cairn_ca_parse(cas, strlen(cas), &ca, NULL), 0);
	struct cairn_store_path dep, got;
	assert_int_equal(cairn_store_path_parse_base("fars50mlfk67nyzn0mc86b8gwbai49jr-dep.txt", 40,
						     &dep, NULL), 0);
	struct cairn_store_refs refs = { &dep, 1, true };
	assert_int_equal(cairn_ca_make_path(&ca, "selfref", &refs, "/nix/store", &got, NULL), 0);
	assert_string_equal(got.hash, "h3y97x2vf4j0lzmdgw08a3dgnk71g0x3");
	refs.self = false;
	assert_int_equal(cairn_ca_make_path(&ca, "selfref", &refs, "/nix/store", &got, NULL), 0);
	assert_string_not_equal(got.hash, "h3y97x2vf4j0lzmdgw08a3dgnk71g0x3");

	/* a text path cannot refer to itself */
	const char *tca = "text:sha256:195sragjc913zdk67c376rv4mmwgcs304sncc34vp32l3pza35lv";
	assert_int_equal(cairn_ca_parse(tca, strlen(tca), &ca, NULL), 0);
	struct cairn_store_path p;
	assert_int_equal(cairn_store_path_parse_base("ly42mdmrr2bqiqcnycv68493jd5mqqng-hello.txt",
						     42, &p, NULL), 0);
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(cairn_ca_check_path(&ca, &p, &p, 1, "/nix/store", &err), CAIRN_EFORMAT);
	assert_non_null(strstr(err.msg, "cannot refer to itself"));

	/* a flat fixed-output path cannot have references at all */
	const char *fca = "fixed:sha256:091mcyizgnydx8zfr9dx6zs6kdjk2m2sxkcjv6y4ilxr8442k98d";
	assert_int_equal(cairn_ca_parse(fca, strlen(fca), &ca, NULL), 0);
	assert_int_equal(cairn_store_path_parse_base("lkij9rnalwaq841nydn3xsc2m1v4gasq-x", 34, &p,
						     NULL), 0);
	assert_int_equal(cairn_ca_check_path(&ca, &p, NULL, 0, "/nix/store", NULL), 0);
	cairn_error_init(&err);
	assert_int_equal(cairn_ca_check_path(&ca, &p, &dep, 1, "/nix/store", &err), CAIRN_EFORMAT);
	assert_non_null(strstr(err.msg, "cannot have references"));
	assert_int_equal(cairn_ca_check_path(&ca, &p, &p, 1, "/nix/store", NULL), CAIRN_EFORMAT);
}

/*
 * The NAR of the self-referencing CA derivation output above
 * (nix-store --dump of /nix/store/h3y97x2vf4j0lzmdgw08a3dgnk71g0x3-selfref):
 * its own hash part is at offset 107, so the CA hash is not the NAR hash
 * (narHash sha256-LR5O2gPJa77w99GqMDBf5+PRWFrfk0ELwhleyavB3cs=).
 */
static const char selfref_nar_hex[] =
	"0d000000000000006e69782d617263686976652d310000000100000000000000"
	"2800000000000000040000000000000074797065000000000700000000000000"
	"726567756c6172000800000000000000636f6e74656e74736800000000000000"
	"2f6e69782f73746f72652f683379393778327666346a306c7a6d646777303861"
	"3364676e6b3731673078332d73656c66726566202f6e69782f73746f72652f66"
	"61727335306d6c666b36376e797a6e306d6338366238677762616934396a722d"
	"6465702e7478740a01000000000000002900000000000000";

static void test_ca_verify_content(void **state)
{
	(void)state;
	unsigned char nar[216];
	assert_int_equal(strlen(selfref_nar_hex), 2 * sizeof(nar));
	assert_int_equal(cairn_base16_decode(selfref_nar_hex, 2 * sizeof(nar), nar, sizeof(nar)), 0);
	struct cairn_ca ca;
	struct cairn_store_path p, other;
	const char *cas = "fixed:r:sha256:172zh0w7ins85yrwqz0cgaf6n80pifbpfm573f5fzkmdl97ihprz";
	assert_int_equal(cairn_ca_parse(cas, strlen(cas), &ca, NULL), 0);
	assert_int_equal(cairn_store_path_parse_base("h3y97x2vf4j0lzmdgw08a3dgnk71g0x3-selfref", 40,
						     &p, NULL), 0);
	/* every chunk size, so the occurrence straddles every boundary */
	for (size_t step = 1; step <= sizeof(nar); step++)
		assert_int_equal(verify_chunked(&ca, &p, nar, sizeof(nar), step), 0);
	/* the NAR hash is not the CA hash here */
	uint8_t plain[32];
	cairn_sha256(nar, sizeof(nar), plain);
	assert_memory_not_equal(plain, ca.hash.digest, 32);
	/* modulo another path's hash part it does not match */
	assert_int_equal(cairn_store_path_parse_base("fars50mlfk67nyzn0mc86b8gwbai49jr-selfref", 40,
						     &other, NULL), 0);
	assert_int_equal(verify_chunked(&ca, &other, nar, sizeof(nar), 64), CAIRN_EHASH);
	/* an already-zeroed copy is told apart by the recorded offsets */
	unsigned char zeroed[216];
	memcpy(zeroed, nar, sizeof(nar));
	memset(zeroed + 107, 0, 32);
	struct cairn_error err;
	cairn_error_init(&err);
	struct cairn_ca_verify v;
	assert_int_equal(cairn_ca_verify_init(&v, &ca, &p, NULL), 0);
	assert_int_equal(cairn_ca_verify_update(&v, zeroed, sizeof(zeroed), NULL), 0);
	assert_int_equal(cairn_ca_verify_final(&v, &err), CAIRN_EHASH);
	assert_non_null(strstr(err.msg, "does not match the content"));

	/* flat and text: the file's bytes */
	const char *fca = "fixed:sha256:091mcyizgnydx8zfr9dx6zs6kdjk2m2sxkcjv6y4ilxr8442k98d";
	assert_int_equal(cairn_ca_parse(fca, strlen(fca), &ca, NULL), 0);
	assert_int_equal(cairn_store_path_parse_base("lkij9rnalwaq841nydn3xsc2m1v4gasq-x", 34, &p,
						     NULL), 0);
	assert_int_equal(verify_chunked(&ca, &p, (const unsigned char *)"hello cairn\n", 12, 5), 0);
	assert_int_equal(verify_chunked(&ca, &p, (const unsigned char *)"hello cairn!", 12, 5),
			 CAIRN_EHASH);
	const char *tca = "text:sha256:195sragjc913zdk67c376rv4mmwgcs304sncc34vp32l3pza35lv";
	assert_int_equal(cairn_ca_parse(tca, strlen(tca), &ca, NULL), 0);
	assert_int_equal(cairn_store_path_parse_base("ly42mdmrr2bqiqcnycv68493jd5mqqng-hello.txt",
						     42, &p, NULL), 0);
	assert_int_equal(verify_chunked(&ca, &p, (const unsigned char *)"hi there", 8, 8), 0);
	/* git and non-sha256 are not checked here */
	const char *git = "fixed:git:sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709";
	assert_int_equal(cairn_ca_parse(git, strlen(git), &ca, NULL), 0);
	assert_int_equal(cairn_ca_verify_init(&v, &ca, &p, NULL), CAIRN_EUNSUPPORTED);
}

static void test_ca_parse(void **state)
{
	(void)state;
	struct cairn_ca ca;
	/* base16 and base64 bodies are accepted too (parseNonSRIUnprefixed) */
	const char *hex = "fixed:r:sha256:1c37d01af40be2e80691de3cc3df44377a699afbb17c68f080964b2fd071fc13";
	const char *b64 = "fixed:r:sha256:HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=";
	const char *n32 = "fixed:r:sha256:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw";
	char out[CAIRN_CA_STR_MAX];
	assert_int_equal(cairn_ca_parse(hex, strlen(hex), &ca, NULL), 0);
	assert_int_equal(cairn_ca_format(&ca, out, sizeof(out)), (int)strlen(n32));
	assert_string_equal(out, n32);
	assert_int_equal(cairn_ca_parse(b64, strlen(b64), &ca, NULL), 0);
	cairn_ca_format(&ca, out, sizeof(out));
	assert_string_equal(out, n32);
	assert_int_equal(cairn_ca_format(&ca, out, 10), CAIRN_ELIMIT);

	const char *git = "fixed:git:sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709";
	assert_int_equal(cairn_ca_parse(git, strlen(git), &ca, NULL), 0);
	assert_int_equal(ca.method, CAIRN_CA_GIT);
	assert_int_equal(ca.hash.algo, CAIRN_HASH_SHA1);
	struct cairn_store_path p;
	assert_int_equal(cairn_ca_make_path(&ca, "g", NULL, "/nix/store", &p, NULL), 0);

	const char *bad[] = {
		"", "fixed", "fixed:", "fixed:r:", "fixed:sha256", "source:sha256:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw",
		"fixed:r:sha257:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw",
		"fixed:r:sha256:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dq",
		"fixed:r:sha256:sha256:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw",
		"fixed:r:sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=",
		"fixed:r:sha256:sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM=",
		"text:sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709",
		"fixed:R:sha256:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw",
		"fixed:r:sha256:04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw ",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cairn_error err;
		cairn_error_init(&err);
		ca.method = 0;
		int rc = cairn_ca_parse(bad[i], strlen(bad[i]), &ca, &err);
		if (rc == 0)
			fprintf(stderr, "accepted CA '%s'\n", bad[i]);
		assert_int_equal(rc, CAIRN_EFORMAT);
		assert_non_null(strstr(err.msg, "content address '"));
		assert_int_equal(ca.method, 0);
	}

	/* git with md5 parses (Nix parses it too) but cannot make a path */
	const char *gitmd5 = "fixed:git:md5:d41d8cd98f00b204e9800998ecf8427e";
	assert_int_equal(cairn_ca_parse(gitmd5, strlen(gitmd5), &ca, NULL), 0);
	assert_int_equal(cairn_ca_make_path(&ca, "g", NULL, "/nix/store", &p, NULL), CAIRN_EFORMAT);
}

static void test_make_errors(void **state)
{
	(void)state;
	struct cairn_hash h;
	struct cairn_store_path p;
	struct cairn_error err;
	cairn_hash_sha256(&h, "", 0);
	cairn_error_init(&err);
	assert_int_equal(cairn_store_path_make("source", &h, "a b", "/nix/store", &p, &err),
			 CAIRN_EFORMAT);
	assert_non_null(strstr(err.msg, "illegal character ' '"));
	cairn_error_init(&err);
	assert_int_equal(cairn_store_path_make("source", &h, "x", "/nix/store/", &p, &err),
			 CAIRN_EFORMAT);
	assert_non_null(strstr(err.msg, "store directory"));
	assert_int_equal(cairn_store_path_make("source", &h, "x", "relative", &p, NULL),
			 CAIRN_EFORMAT);
	assert_int_equal(cairn_store_path_make(NULL, &h, "x", "/nix/store", &p, NULL), CAIRN_EINVAL);
	struct cairn_hash bogus = h;
	bogus.algo = 99;
	assert_int_equal(cairn_store_path_make("source", &bogus, "x", "/nix/store", &p, NULL),
			 CAIRN_EINVAL);
	/* a reference struct that was never parsed */
	struct cairn_ca ca = { CAIRN_CA_NAR, h };
	struct cairn_store_path junk;
	memset(&junk, 'e', sizeof(junk));
	junk.hash[32] = '\0';
	junk.name[0] = '\0';
	struct cairn_store_refs refs = { &junk, 1, false };
	assert_int_equal(cairn_ca_make_path(&ca, "x", &refs, "/nix/store", &p, NULL), CAIRN_EINVAL);
	refs.n = CAIRN_STORE_REFS_MAX + 1;
	assert_int_equal(cairn_ca_make_path(&ca, "x", &refs, "/nix/store", &p, NULL), CAIRN_ELIMIT);
}

int main(void)
{
	cairn_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_checks),
		cmocka_unit_test(test_cmp_digest),
		cmocka_unit_test(test_expected_tsv),
		cmocka_unit_test(test_nix_ca_vectors),
		cmocka_unit_test(test_self_reference),
		cmocka_unit_test(test_ca_verify_content),
		cmocka_unit_test(test_ca_parse),
		cmocka_unit_test(test_make_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
