/*
 * guix.c - Guix signing keys, acl and narinfo signatures (see guix.h).
 *
 * Untrusted text is read by libgcrypt and indexed by sexp.c; we then check
 * the shape ourselves, looking only at direct children, and never hand an
 * attacker's s-expression to gcry_pk_verify: the key, data and sig-val
 * given to libgcrypt are rebuilt from the extracted bytes, so extra curve
 * parameters, flags such as eddsa, or another sig-val algorithm in the
 * input cannot change what is checked.
 */
#include <gcrypt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/guix.h"
#include "cairn/hash.h"
#include "sexp.h"
#include "guix-int.h"
#include "cairn/banned.h"

#define GUIX_CURVE "Ed25519"

static int gcry_fail(struct cairn_error *err, gcry_error_t ge, const char *what)
{
	if (gcry_err_code(ge) == GPG_ERR_ENOMEM)
		return cairn_error_set(err, CAIRN_ENOMEM, "%s: out of memory", what);
	return cairn_error_set(err, CAIRN_ECRYPTO, "%s: libgcrypt: %s", what, gcry_strerror(ge));
}

/*
 * Copy a big-endian integer atom into out[0..outlen), left-padded with
 * zeros.  libgcrypt prints some values without leading zero bytes (r and s
 * of a signature) and may print one extra 00, so both are accepted.
 */
static int atom_to_fixed(const struct cairn_sexp_node *a, uint8_t *out, size_t outlen)
{
	const uint8_t *p = a->data;
	size_t n = a->len;
	while (n > outlen && *p == 0) {
		p++;
		n--;
	}
	if (n == 0 || n > outlen)
		return CAIRN_EFORMAT;
	memset(out, 0, outlen - n);
	memcpy(out + outlen - n, p, n);
	return 0;
}

/* The single atom value of a (name value) list. */
static const struct cairn_sexp_node *param_value(const struct cairn_sexp *sx, size_t list)
{
	if (sx->nodes[list].count != 2)
		return NULL;
	size_t v = cairn_sexp_nth(sx, list, 1);
	if (sx->nodes[v].is_list)
		return NULL;
	return &sx->nodes[v];
}

/*
 * Read a key node: (public-key (ecc (curve Ed25519) [(flags ...)] (q #..#)))
 * or, with d != NULL, (private-key (ecc ... (q #..#) (d #..#))).  Errors are
 * CAIRN_EFORMAT for a malformed key and CAIRN_EUNSUPPORTED for a well-formed
 * key of another kind (rsa, another curve, an EdDSA key).
 */
static int key_read(const struct cairn_sexp *sx, size_t node, const char *what, uint8_t q[32],
		    uint8_t d[32], struct cairn_error *err)
{
	const char *top = d ? "private-key" : "public-key";
	if (!cairn_sexp_list_is(sx, node, top))
		return cairn_error_set(err, CAIRN_EFORMAT, "%s: not a (%s ...)", what, top);
	if (sx->nodes[node].count != 2)
		return cairn_error_set(err, CAIRN_EFORMAT, "%s: (%s ...) must hold one key", what,
				       top);
	size_t alg = cairn_sexp_nth(sx, node, 1);
	if (!sx->nodes[alg].is_list || sx->nodes[alg].count < 1 ||
	    sx->nodes[sx->nodes[alg].first].is_list)
		return cairn_error_set(err, CAIRN_EFORMAT, "%s: no key algorithm", what);
	if (!cairn_sexp_list_is(sx, alg, "ecc")) {
		const struct cairn_sexp_node *a = &sx->nodes[sx->nodes[alg].first];
		return cairn_error_set(err, CAIRN_EUNSUPPORTED,
				       "%s: %.*s key, only ecc keys on Ed25519 are supported", what,
				       (int)(a->len > 32 ? 32 : a->len), (const char *)a->data);
	}

	int have_curve = 0, have_q = 0, have_d = 0;
	for (size_t c = cairn_sexp_nth(sx, alg, 1); c != CAIRN_SEXP_NONE; c = sx->nodes[c].next) {
		const struct cairn_sexp_node *v;
		if (cairn_sexp_list_is(sx, c, "curve") && !have_curve) {
			v = param_value(sx, c);
			if (!v)
				return cairn_error_set(err, CAIRN_EFORMAT, "%s: bad (curve ...)", what);
			if (v->len != strlen(GUIX_CURVE) || memcmp(v->data, GUIX_CURVE, v->len) != 0)
				return cairn_error_set(err, CAIRN_EUNSUPPORTED,
						       "%s: curve '%.*s', only Ed25519 is supported",
						       what, (int)(v->len > 32 ? 32 : v->len),
						       (const char *)v->data);
			have_curve = 1;
		} else if (cairn_sexp_list_is(sx, c, "flags")) {
			/* Guix asks for rfc6979; eddsa would make it a different scheme. */
			for (size_t f = cairn_sexp_nth(sx, c, 1); f != CAIRN_SEXP_NONE;
			     f = sx->nodes[f].next) {
				if (!cairn_sexp_atom_is(sx, f, "rfc6979"))
					return cairn_error_set(err, CAIRN_EUNSUPPORTED,
							       "%s: only the rfc6979 flag is "
							       "supported on a Guix key",
							       what);
			}
		} else if (cairn_sexp_list_is(sx, c, "q") && !have_q) {
			v = param_value(sx, c);
			/* 32 bytes, or 33 with libgcrypt's 0x40 "compressed" prefix. */
			if (v && v->len == 33 && v->data[0] == 0x40)
				memcpy(q, v->data + 1, 32);
			else if (v && v->len == 32)
				memcpy(q, v->data, 32);
			else
				return cairn_error_set(err, CAIRN_EFORMAT,
						       "%s: (q ...) is not a 32-byte Ed25519 point",
						       what);
			have_q = 1;
		} else if (d && cairn_sexp_list_is(sx, c, "d") && !have_d) {
			v = param_value(sx, c);
			if (!v || atom_to_fixed(v, d, 32) < 0)
				return cairn_error_set(err, CAIRN_EFORMAT,
						       "%s: (d ...) is not a 32-byte scalar", what);
			have_d = 1;
		} else {
			/* Explicit curve parameters (p a b g n h) or repeats: refuse. */
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "%s: unexpected or repeated element in (ecc ...)",
					       what);
		}
	}
	if (!have_curve)
		return cairn_error_set(err, CAIRN_EFORMAT, "%s: no (curve ...)", what);
	if (!have_q)
		return cairn_error_set(err, CAIRN_EFORMAT, "%s: no (q ...)", what);
	if (d && !have_d)
		return cairn_error_set(err, CAIRN_EFORMAT, "%s: no (d ...)", what);
	return 0;
}

static int pubkey_sexp(const uint8_t q[32], gcry_sexp_t *out, struct cairn_error *err)
{
	gcry_error_t ge = gcry_sexp_build(out, NULL, "(public-key (ecc (curve " GUIX_CURVE
					  ") (q %b)))", 32, (const char *)q);
	return ge ? gcry_fail(err, ge, "guix key") : 0;
}

/*
 * The secret key as libgcrypt wants it.  d goes in as a secure MPI: then,
 * when libgcrypt's secure memory is enabled, the s-expression it is copied
 * into is allocated there too and wiped by gcry_sexp_release.
 */
static int seckey_sexp(const struct cairn_guix_seckey *sk, gcry_sexp_t *out,
		       struct cairn_error *err)
{
	/* Callers have run seckey_check: d is not zero. */
	gcry_mpi_t d = NULL;
	gcry_error_t ge = gcry_mpi_scan(&d, GCRYMPI_FMT_USG, sk->d, 32, NULL);
	if (!ge) {
		gcry_mpi_set_flag(d, GCRYMPI_FLAG_SECURE);
		ge = gcry_sexp_build(out, NULL,
				     "(private-key (ecc (curve " GUIX_CURVE ") (q %b) (d %m)))", 32,
				     (const char *)sk->q, d);
	}
	gcry_mpi_release(d); /* libgcrypt wipes MPI limbs on release */
	return ge ? gcry_fail(err, ge, "guix secret key") : 0;
}

/*
 * Is q a point libgcrypt can safely use?  libsodium checks that it is a
 * canonical encoding of a point of the prime-order subgroup (so not the
 * identity or another small-order point).  Then the affine coordinates must
 * both have more than 192 bits: libgcrypt 1.10's Ed25519 field multiply
 * (ec_mulm_25519) calls log_bug(), i.e. abort(), when handed a coordinate
 * with fewer than four 64-bit limbs, so gcry_pk_verify on a crafted valid
 * key such as y = 26 kills the process.  A real key fails this test with
 * probability about 2^-62.
 */
static int point_check(const uint8_t q[32], const char *what, struct cairn_error *err)
{
	gcry_ctx_t ctx = NULL;
	gcry_mpi_t enc = NULL, x = NULL, y = NULL;
	gcry_mpi_point_t pt = NULL;
	int rc = 0;

	if (!crypto_core_ed25519_is_valid_point(q))
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "%s: (q ...) is not a point of Ed25519's prime-order group",
				       what);
	gcry_error_t ge = gcry_mpi_ec_new(&ctx, NULL, GUIX_CURVE);
	if (ge) {
		rc = gcry_fail(err, ge, what);
		goto out;
	}
	enc = gcry_mpi_set_opaque_copy(NULL, q, 256);
	pt = gcry_mpi_point_new(0);
	x = gcry_mpi_new(0);
	y = gcry_mpi_new(0);
	if (!enc || !pt || !x || !y) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "%s: out of memory", what);
		goto out;
	}
	if (gcry_mpi_ec_decode_point(pt, enc, ctx) || gcry_mpi_ec_get_affine(x, y, pt, ctx)) {
		rc = cairn_error_set(err, CAIRN_EFORMAT, "%s: (q ...) cannot be decoded", what);
		goto out;
	}
	if (gcry_mpi_get_nbits(x) <= 192 || gcry_mpi_get_nbits(y) <= 192)
		rc = cairn_error_set(err, CAIRN_EUNSUPPORTED,
				     "%s: (q ...) has a small coordinate that libgcrypt "
				     "cannot handle",
				     what);
out:
	gcry_mpi_release(x);
	gcry_mpi_release(y);
	gcry_mpi_point_release(pt);
	gcry_mpi_release(enc);
	gcry_ctx_release(ctx);
	return rc;
}

/* The order n of Ed25519's base point, big-endian. */
static const uint8_t ed25519_order[32] = {
	0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0xde, 0xf9, 0xde, 0xa2, 0xf7,
	0x9c, 0xd6, 0x58, 0x12, 0x63, 0x1a, 0x5c, 0xf5, 0xd3, 0xed,
};

/*
 * A secret key libgcrypt can use: q as above, and d not a multiple of n
 * (d G would be the identity).  libgcrypt's genkey makes d a full 256-bit
 * number, not reduced mod n, so larger values are fine.
 */
static int seckey_check(const struct cairn_guix_seckey *sk, const char *what,
			struct cairn_error *err)
{
	gcry_mpi_t d = NULL, n = NULL, rem = NULL;
	int rc = 0;
	/* Also because libgcrypt asserts when a zero MPI is made secure. */
	if (sodium_is_zero(sk->d, 32))
		return cairn_error_set(err, CAIRN_EFORMAT, "%s: (d ...) is zero", what);
	if (gcry_mpi_scan(&d, GCRYMPI_FMT_USG, sk->d, 32, NULL) ||
	    gcry_mpi_scan(&n, GCRYMPI_FMT_USG, ed25519_order, 32, NULL) ||
	    !(rem = gcry_mpi_snew(256))) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "%s: out of memory", what);
		goto out;
	}
	gcry_mpi_set_flag(d, GCRYMPI_FLAG_SECURE);
	gcry_mpi_mod(rem, d, n);
	if (gcry_mpi_cmp_ui(rem, 0) == 0)
		rc = cairn_error_set(err, CAIRN_EFORMAT, "%s: (d ...) is a multiple of the group order",
				     what);
	else
		rc = point_check(sk->q, what, err);
out:
	/* libgcrypt wipes MPI limbs when it frees them. */
	gcry_mpi_release(rem);
	gcry_mpi_release(n);
	gcry_mpi_release(d);
	return rc;
}

/* Append libgcrypt's advanced printing of s (what Guix writes) to out. */
static int sexp_print(gcry_sexp_t s, struct cairn_buf *out, int secret)
{
	size_t n = gcry_sexp_sprint(s, GCRYSEXP_FMT_ADVANCED, NULL, 0);
	if (n == 0)
		return CAIRN_ECRYPTO;
	char *buf = malloc(n);
	if (!buf)
		return CAIRN_ENOMEM;
	size_t got = gcry_sexp_sprint(s, GCRYSEXP_FMT_ADVANCED, buf, n);
	int rc = (got == 0 || got > n) ? CAIRN_ECRYPTO : cairn_buf_append(out, buf, got);
	if (secret)
		sodium_memzero(buf, n);
	free(buf);
	return rc;
}

int cairn_guix_pubkey_parse(const char *text, size_t len, struct cairn_guix_pubkey *out,
			    struct cairn_error *err)
{
	struct cairn_sexp sx = { 0 };
	uint8_t q[32];
	int rc = cairn_sexp_parse(text, len, CAIRN_GUIX_SEXP_MAX, CAIRN_EFORMAT,
				  "guix public key", &sx, err);
	if (rc < 0)
		return rc;
	rc = key_read(&sx, 0, "guix public key", q, NULL, err);
	if (rc == 0)
		rc = point_check(q, "guix public key", err);
	if (rc == 0)
		memcpy(out->q, q, 32);
	cairn_sexp_release(&sx);
	return rc;
}

int cairn_guix_seckey_parse(const char *text, size_t len, struct cairn_guix_seckey *out,
			    struct cairn_error *err)
{
	const char *what = "guix secret key";
	struct cairn_sexp sx = { 0 };
	struct cairn_guix_seckey sk;
	gcry_sexp_t key = NULL;
	int rc = cairn_sexp_parse(text, len, CAIRN_GUIX_SEXP_MAX, CAIRN_EFORMAT, what, &sx, err);
	if (rc < 0)
		return rc;
	size_t node = 0;
	/* Guix writes the (private-key ...) alone; accept genkey's whole pair too. */
	if (cairn_sexp_list_is(&sx, 0, "key-data")) {
		int dup;
		node = cairn_sexp_find(&sx, 0, "private-key", &dup);
		if (node == CAIRN_SEXP_NONE || dup) {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "%s: (key-data ...) without one (private-key ...)", what);
			goto out;
		}
	}
	rc = key_read(&sx, node, what, sk.q, sk.d, err);
	if (rc < 0)
		goto out;
	rc = seckey_check(&sk, what, err);
	if (rc < 0)
		goto out;
	/* libgcrypt checks that q is d times the base point. */
	rc = seckey_sexp(&sk, &key, err);
	if (rc < 0)
		goto out;
	if (gcry_pk_testkey(key)) {
		rc = cairn_error_set(err, CAIRN_EFORMAT, "%s: (q ...) does not belong to (d ...)",
				     what);
		goto out;
	}
	*out = sk;
out:
	gcry_sexp_release(key);
	sodium_memzero(&sk, sizeof(sk));
	cairn_sexp_release(&sx);
	return rc;
}

int cairn_guix_key_generate(struct cairn_guix_seckey *out, struct cairn_error *err)
{
	gcry_sexp_t params = NULL, pair = NULL;
	uint8_t *canon = NULL;
	struct cairn_sexp sx = { 0 };
	struct cairn_guix_seckey sk;
	int rc = 0;

	/* The parameters of `guix archive --generate-key`. */
	gcry_error_t ge =
		gcry_sexp_new(&params, "(genkey (ecdsa (curve Ed25519) (flags rfc6979)))", 0, 1);
	if (!ge)
		ge = gcry_pk_genkey(&pair, params);
	if (ge) {
		rc = gcry_fail(err, ge, "guix key generation");
		goto out;
	}
	size_t n = gcry_sexp_sprint(pair, GCRYSEXP_FMT_CANON, NULL, 0);
	canon = n ? malloc(n) : NULL;
	if (!canon) {
		rc = cairn_error_set(err, n ? CAIRN_ENOMEM : CAIRN_ECRYPTO,
				     "guix key generation: cannot print key");
		goto out;
	}
	size_t got = gcry_sexp_sprint(pair, GCRYSEXP_FMT_CANON, (char *)canon, n);
	if (got == 0 || got > n) {
		sodium_memzero(canon, n);
		free(canon);
		rc = cairn_error_set(err, CAIRN_ECRYPTO, "guix key generation: cannot print key");
		goto out;
	}
	/* Read back through the same checks as a key file (index takes canon). */
	rc = cairn_sexp_index(canon, got, CAIRN_ECRYPTO, "guix key generation", &sx, err);
	if (rc < 0)
		goto out;
	int dup;
	size_t node = cairn_sexp_find(&sx, 0, "private-key", &dup);
	if (node == CAIRN_SEXP_NONE) {
		rc = cairn_error_set(err, CAIRN_ECRYPTO, "guix key generation: no private key");
		goto out;
	}
	rc = key_read(&sx, node, "guix key generation", sk.q, sk.d, err);
	if (rc < 0) {
		rc = CAIRN_ECRYPTO;
		goto out;
	}
	*out = sk;
out:
	sodium_memzero(&sk, sizeof(sk));
	cairn_sexp_release(&sx);
	gcry_sexp_release(pair);
	gcry_sexp_release(params);
	return rc;
}

void cairn_guix_seckey_public(const struct cairn_guix_seckey *sk, struct cairn_guix_pubkey *out)
{
	memcpy(out->q, sk->q, 32);
}

void cairn_guix_seckey_wipe(struct cairn_guix_seckey *sk)
{
	sodium_memzero(sk, sizeof(*sk));
}

int cairn_guix_pubkey_format(const struct cairn_guix_pubkey *pk, struct cairn_buf *out)
{
	gcry_sexp_t s = NULL;
	int rc = pubkey_sexp(pk->q, &s, NULL);
	if (rc == 0)
		rc = sexp_print(s, out, 0);
	gcry_sexp_release(s);
	return rc;
}

int cairn_guix_seckey_format(const struct cairn_guix_seckey *sk, struct cairn_buf *out)
{
	gcry_sexp_t s = NULL;
	/* d as 32 bytes (%b), as libgcrypt's genkey prints it. */
	gcry_error_t ge = gcry_sexp_build(&s, NULL,
					  "(private-key (ecc (curve " GUIX_CURVE
					  ") (q %b) (d %b)))",
					  32, (const char *)sk->q, 32, (const char *)sk->d);
	int rc = ge ? gcry_fail(NULL, ge, "") : sexp_print(s, out, 1);
	gcry_sexp_release(s);
	return rc;
}

int cairn_guix_acl_parse(const char *text, size_t len, struct cairn_guix_pubkey **keys,
			 size_t *n_keys, struct cairn_error *err)
{
	struct cairn_sexp sx = { 0 };
	struct cairn_guix_pubkey *arr = NULL;
	int rc = cairn_sexp_parse(text, len, CAIRN_GUIX_ACL_MAX, CAIRN_EFORMAT, "guix acl", &sx,
				  err);
	if (rc < 0)
		return rc;
	if (!cairn_sexp_list_is(&sx, 0, "acl")) {
		rc = cairn_error_set(err, CAIRN_EFORMAT, "guix acl: not an (acl ...)");
		goto out;
	}
	size_t n = sx.nodes[0].count - 1;
	if (n > CAIRN_GUIX_ACL_MAX_KEYS) {
		rc = cairn_error_set(err, CAIRN_ELIMIT, "guix acl: %zu entries, more than %d", n,
				     CAIRN_GUIX_ACL_MAX_KEYS);
		goto out;
	}
	arr = calloc(n ? n : 1, sizeof(*arr));
	if (!arr) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "guix acl: out of memory");
		goto out;
	}
	size_t i = 0;
	for (size_t e = cairn_sexp_nth(&sx, 0, 1); e != CAIRN_SEXP_NONE; e = sx.nodes[e].next, i++) {
		char what[48];
		snprintf(what, sizeof(what), "guix acl: entry %zu", i + 1);
		/*
		 * Guix (acl->public-keys in guix/pki.scm) accepts only entries
		 * of exactly this shape and rejects the whole acl otherwise.
		 */
		size_t tag = cairn_sexp_nth(&sx, e, 2);
		if (!cairn_sexp_list_is(&sx, e, "entry") || sx.nodes[e].count != 3 ||
		    !cairn_sexp_list_is(&sx, tag, "tag") || sx.nodes[tag].count != 2) {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "%s: not (entry (public-key ...) (tag ...))", what);
			goto out;
		}
		size_t gi = cairn_sexp_nth(&sx, tag, 1);
		if (!cairn_sexp_list_is(&sx, gi, "guix") || sx.nodes[gi].count != 2 ||
		    !cairn_sexp_atom_is(&sx, cairn_sexp_nth(&sx, gi, 1), "import")) {
			rc = cairn_error_set(err, CAIRN_EFORMAT, "%s: tag is not (guix import)",
					     what);
			goto out;
		}
		rc = key_read(&sx, cairn_sexp_nth(&sx, e, 1), what, arr[i].q, NULL, err);
		if (rc < 0)
			goto out;
		rc = point_check(arr[i].q, what, err);
		if (rc < 0)
			goto out;
	}
	*keys = arr;
	*n_keys = n;
	arr = NULL;
out:
	free(arr);
	cairn_sexp_release(&sx);
	return rc;
}

int cairn_guix_acl_format(const struct cairn_guix_pubkey *keys, size_t n_keys,
			  struct cairn_buf *out)
{
	struct cairn_buf text = CAIRN_BUF_INIT(CAIRN_GUIX_ACL_MAX);
	gcry_sexp_t s = NULL;
	int rc = cairn_buf_puts(&text, "(acl");
	for (size_t i = 0; rc == 0 && i < n_keys; i++) {
		char hex[65];
		cairn_base16_encode(keys[i].q, 32, hex);
		hex[64] = '\0';
		rc = cairn_buf_printf(&text,
				      " (entry (public-key (ecc (curve " GUIX_CURVE
				      ") (q #%s#))) (tag (guix import)))",
				      hex);
	}
	if (rc == 0)
		rc = cairn_buf_putc(&text, ')');
	/* Let libgcrypt lay it out, as Guix's canonical-sexp->string does. */
	if (rc == 0 && gcry_sexp_sscan(&s, NULL, text.data, text.len))
		rc = CAIRN_ECRYPTO;
	if (rc == 0)
		rc = sexp_print(s, out, 0);
	gcry_sexp_release(s);
	cairn_buf_release(&text);
	return rc;
}

int cairn_guix_sign(const struct cairn_guix_seckey *sk, const void *data, size_t len,
		    struct cairn_buf *out, struct cairn_error *err)
{
	gcry_sexp_t hash = NULL, skey = NULL, pkey = NULL, sigval = NULL, sig = NULL;
	uint8_t digest[CAIRN_SHA256_LEN];
	int rc;

	rc = seckey_check(sk, "guix sign", err);
	if (rc < 0)
		return rc;
	cairn_sha256(data, len, digest);
	/* guix/pki.scm signature-sexp over bytevector->hash-data. */
	gcry_error_t ge = gcry_sexp_build(&hash, NULL, "(data (flags rfc6979) (hash sha256 %b))",
					  (int)sizeof(digest), (const char *)digest);
	if (ge) {
		rc = gcry_fail(err, ge, "guix sign");
		goto out;
	}
	rc = seckey_sexp(sk, &skey, err);
	if (rc < 0)
		goto out;
	rc = pubkey_sexp(sk->q, &pkey, err);
	if (rc < 0)
		goto out;
	ge = gcry_pk_sign(&sigval, hash, skey);
	if (!ge)
		ge = gcry_sexp_build(&sig, NULL, "(signature %S %S %S)", hash, sigval, pkey);
	if (ge) {
		rc = gcry_fail(err, ge, "guix sign");
		goto out;
	}
	rc = sexp_print(sig, out, 0);
	if (rc < 0)
		cairn_error_set(err, rc, "guix sign: cannot print the signature");
out:
	gcry_sexp_release(sig);
	gcry_sexp_release(sigval);
	gcry_sexp_release(pkey);
	gcry_sexp_release(skey);
	gcry_sexp_release(hash);
	return rc;
}

int cairn_guix_verify(const void *data, size_t len, const char *sig_sexp, size_t sig_len,
		      const struct cairn_guix_pubkey *trusted, size_t n_trusted, size_t *signer,
		      struct cairn_error *err)
{
	const char *what = "guix signature";
	struct cairn_sexp sx = { 0 };
	gcry_sexp_t s_data = NULL, s_sig = NULL, s_key = NULL;
	uint8_t q[32], r[32], s[32], digest[CAIRN_SHA256_LEN];
	int dup1 = 0, dup2 = 0, dup3 = 0;
	struct cairn_error perr;
	cairn_error_init(&perr);
	int rc = cairn_sexp_parse(sig_sexp, sig_len, CAIRN_GUIX_SEXP_MAX, CAIRN_ESIGCORRUPT, what,
				  &sx, &perr);
	if (rc < 0) {
		/* Too long or too deep is as unreadable as malformed, to the caller. */
		return cairn_error_set(err, rc == CAIRN_ENOMEM ? rc : CAIRN_ESIGCORRUPT, "%s",
				       perr.msg);
	}

	/* 1. Shape: (signature (data ...) (sig-val ...) (public-key ...)). */
	size_t n_data = cairn_sexp_find(&sx, 0, "data", &dup1);
	size_t n_sv = cairn_sexp_find(&sx, 0, "sig-val", &dup2);
	size_t n_pk = cairn_sexp_find(&sx, 0, "public-key", &dup3);
	if (!cairn_sexp_list_is(&sx, 0, "signature") || n_data == CAIRN_SEXP_NONE ||
	    n_sv == CAIRN_SEXP_NONE || n_pk == CAIRN_SEXP_NONE || dup1 || dup2 || dup3) {
		rc = cairn_error_set(err, CAIRN_ESIGCORRUPT,
				     "%s: not (signature (data ...) (sig-val ...) (public-key ...))",
				     what);
		goto out;
	}
	size_t n_hash = cairn_sexp_find(&sx, n_data, "hash", &dup1);
	if (n_hash == CAIRN_SEXP_NONE || dup1 || sx.nodes[n_hash].count != 3 ||
	    sx.nodes[cairn_sexp_nth(&sx, n_hash, 1)].is_list ||
	    sx.nodes[cairn_sexp_nth(&sx, n_hash, 2)].is_list) {
		rc = cairn_error_set(err, CAIRN_ESIGCORRUPT, "%s: no (hash <algo> <value>) in data",
				     what);
		goto out;
	}
	size_t n_alg = cairn_sexp_nth(&sx, n_sv, 1);
	if (sx.nodes[n_sv].count != 2 || !cairn_sexp_list_is(&sx, n_alg, "ecdsa")) {
		rc = cairn_error_set(err, CAIRN_ESIGCORRUPT, "%s: sig-val is not (ecdsa ...)",
				     what);
		goto out;
	}
	size_t n_r = cairn_sexp_find(&sx, n_alg, "r", &dup1);
	size_t n_s = cairn_sexp_find(&sx, n_alg, "s", &dup2);
	const struct cairn_sexp_node *vr = n_r ? param_value(&sx, n_r) : NULL;
	const struct cairn_sexp_node *vs = n_s ? param_value(&sx, n_s) : NULL;
	if (sx.nodes[n_alg].count != 3 || dup1 || dup2 || !vr || !vs ||
	    atom_to_fixed(vr, r, 32) < 0 || atom_to_fixed(vs, s, 32) < 0) {
		rc = cairn_error_set(err, CAIRN_ESIGCORRUPT,
				     "%s: sig-val is not (ecdsa (r <=32 bytes) (s <=32 bytes))",
				     what);
		goto out;
	}
	struct cairn_error kerr;
	cairn_error_init(&kerr);
	rc = key_read(&sx, n_pk, what, q, NULL, &kerr);
	if (rc < 0) {
		/* A well-formed key of another kind cannot be among the trusted ones. */
		rc = cairn_error_set(err, rc == CAIRN_EUNSUPPORTED ? CAIRN_EUNTRUSTED
								   : CAIRN_ESIGCORRUPT,
				     "%s", kerr.msg);
		goto out;
	}

	/* 2. Trust: the embedded key must be one of ours (pki.scm authorized-key?). */
	size_t who = 0;
	while (who < n_trusted && memcmp(trusted[who].q, q, 32) != 0)
		who++;
	if (who == n_trusted) {
		char hex[65];
		cairn_base16_encode(q, 32, hex);
		hex[64] = '\0';
		rc = cairn_error_set(err, CAIRN_EUNTRUSTED, "%s: key %s is not trusted", what, hex);
		goto out;
	}

	/* 3. The signed hash must be SHA-256 of the data. */
	cairn_sha256(data, len, digest);
	const struct cairn_sexp_node *algo = &sx.nodes[cairn_sexp_nth(&sx, n_hash, 1)];
	const struct cairn_sexp_node *hv = &sx.nodes[cairn_sexp_nth(&sx, n_hash, 2)];
	if (!cairn_sexp_atom_is(&sx, cairn_sexp_nth(&sx, n_hash, 1), "sha256")) {
		rc = cairn_error_set(err, CAIRN_EHASH, "%s: signed hash is %.*s, not sha256", what,
				     (int)(algo->len > 16 ? 16 : algo->len),
				     (const char *)algo->data);
		goto out;
	}
	if (hv->len != sizeof(digest) || memcmp(hv->data, digest, sizeof(digest)) != 0) {
		rc = cairn_error_set(err, CAIRN_EHASH,
				     "%s: signed hash is not the SHA-256 of the data", what);
		goto out;
	}

	/* 4. ECDSA, on values rebuilt from what we checked. */
	if (point_check(trusted[who].q, "", NULL) < 0) {
		rc = cairn_error_set(err, CAIRN_EINVAL,
				     "%s: trusted key %zu is not a usable Ed25519 point", what, who);
		goto out;
	}
	rc = pubkey_sexp(trusted[who].q, &s_key, err);
	if (rc < 0)
		goto out;
	gcry_error_t ge = gcry_sexp_build(&s_data, NULL, "(data (flags rfc6979) (hash sha256 %b))",
					  (int)sizeof(digest), (const char *)digest);
	if (!ge)
		ge = gcry_sexp_build(&s_sig, NULL, "(sig-val (ecdsa (r %b) (s %b)))", 32,
				     (const char *)r, 32, (const char *)s);
	if (ge) {
		rc = gcry_fail(err, ge, what);
		goto out;
	}
	ge = gcry_pk_verify(s_sig, s_data, s_key);
	if (ge) {
		if (gcry_err_code(ge) == GPG_ERR_ENOMEM)
			rc = gcry_fail(err, ge, what);
		else
			rc = cairn_error_set(err, CAIRN_ESIG, "%s: ECDSA check failed: %s", what,
					     gcry_strerror(ge));
		goto out;
	}
	if (signer)
		*signer = who;
	rc = 0;
out:
	gcry_sexp_release(s_data);
	gcry_sexp_release(s_sig);
	gcry_sexp_release(s_key);
	cairn_sexp_release(&sx);
	return rc;
}
