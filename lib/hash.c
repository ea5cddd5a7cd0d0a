/*
 * hash.c - SHA-256 through libsodium, and the hash encodings of Nix.
 * See include/cairn/hash.h for the formats.
 */
#include <string.h>

#include <gcrypt.h>
#include <sodium.h>

#include "cairn/hash.h"
#include "cairn/banned.h"

static const char nix32_alphabet[] = "0123456789abcdfghijklmnpqrsvwxyz";

int cairn_sha256_init(struct cairn_sha256 *ctx)
{
	gcry_md_hd_t hd;
	gcry_error_t e = gcry_md_open(&hd, GCRY_MD_SHA256, 0);
	if (e) {
		ctx->hd = NULL;
		return gcry_err_code(e) == GPG_ERR_ENOMEM ? CAIRN_ENOMEM : CAIRN_ECRYPTO;
	}
	ctx->hd = hd;
	return 0;
}

void cairn_sha256_update(struct cairn_sha256 *ctx, const void *data, size_t len)
{
	gcry_md_write((gcry_md_hd_t)ctx->hd, data, len);
}

void cairn_sha256_final(struct cairn_sha256 *ctx, uint8_t out[CAIRN_SHA256_LEN])
{
	const unsigned char *d = gcry_md_read((gcry_md_hd_t)ctx->hd, GCRY_MD_SHA256);
	memcpy(out, d, CAIRN_SHA256_LEN);
	cairn_sha256_release(ctx);
}

void cairn_sha256_release(struct cairn_sha256 *ctx)
{
	if (ctx->hd)
		gcry_md_close((gcry_md_hd_t)ctx->hd);
	ctx->hd = NULL;
}

void cairn_sha256(const void *data, size_t len, uint8_t out[CAIRN_SHA256_LEN])
{
	gcry_md_hash_buffer(GCRY_MD_SHA256, out, data, len);
}

void cairn_hash_sha256(struct cairn_hash *h, const void *data, size_t len)
{
	memset(h, 0, sizeof(*h));
	h->algo = CAIRN_HASH_SHA256;
	h->len = CAIRN_SHA256_LEN;
	cairn_sha256(data, len, h->digest);
}

static const struct {
	enum cairn_hash_algo algo;
	const char *name;
	size_t len;
} algos[] = {
	{ CAIRN_HASH_MD5, "md5", 16 },
	{ CAIRN_HASH_SHA1, "sha1", 20 },
	{ CAIRN_HASH_SHA256, "sha256", 32 },
	{ CAIRN_HASH_SHA512, "sha512", 64 },
};

size_t cairn_hash_algo_len(enum cairn_hash_algo algo)
{
	for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++)
		if (algos[i].algo == algo)
			return algos[i].len;
	return 0;
}

const char *cairn_hash_algo_name(enum cairn_hash_algo algo)
{
	for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++)
		if (algos[i].algo == algo)
			return algos[i].name;
	return NULL;
}

enum cairn_hash_algo cairn_hash_algo_parse(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(algos) / sizeof(algos[0]); i++)
		if (strlen(algos[i].name) == len && memcmp(algos[i].name, name, len) == 0)
			return algos[i].algo;
	return 0;
}

size_t cairn_nix32_len(size_t nbytes)
{
	if (nbytes == 0)
		return 0;
	return (nbytes * 8 - 1) / 5 + 1;
}

void cairn_nix32_encode(const uint8_t *in, size_t n, char *out)
{
	size_t len = cairn_nix32_len(n);
	/* Character k (from the left) holds the 5-bit group number len-1-k. */
	for (size_t k = 0; k < len; k++) {
		size_t group = len - 1 - k;
		size_t bit = group * 5, i = bit / 8, j = bit % 8;
		unsigned c = in[i] >> j;
		if (i + 1 < n)
			c |= (unsigned)in[i + 1] << (8 - j);
		out[k] = nix32_alphabet[c & 0x1f];
	}
}

static int nix32_digit(char c)
{
	const char *p = c ? strchr(nix32_alphabet, c) : NULL;
	return p ? (int)(p - nix32_alphabet) : -1;
}

int cairn_nix32_decode(const char *in, size_t len, uint8_t *out, size_t outlen)
{
	if (outlen == 0 || len != cairn_nix32_len(outlen))
		return CAIRN_EFORMAT;
	uint8_t tmp[CAIRN_HASH_MAX_LEN * 2];
	if (outlen > sizeof(tmp))
		return CAIRN_ELIMIT;
	memset(tmp, 0, outlen);
	for (size_t group = 0; group < len; group++) {
		int d = nix32_digit(in[len - 1 - group]);
		if (d < 0)
			return CAIRN_EFORMAT;
		size_t bit = group * 5, i = bit / 8, j = bit % 8;
		tmp[i] |= (uint8_t)(d << j);
		unsigned carry = (unsigned)d >> (8 - j);
		if (i + 1 < outlen)
			tmp[i + 1] |= (uint8_t)carry;
		else if (carry)
			return CAIRN_EFORMAT; /* bits beyond the hash size */
	}
	memcpy(out, tmp, outlen);
	return 0;
}

void cairn_base16_encode(const uint8_t *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 0xf];
	}
}

int cairn_base16_decode(const char *in, size_t len, uint8_t *out, size_t outlen)
{
	size_t got = 0;
	const char *end = NULL;
	if (len != 2 * outlen)
		return CAIRN_EFORMAT;
	if (sodium_hex2bin(out, outlen, in, len, NULL, &got, &end) != 0 ||
	    got != outlen || end != in + len)
		return CAIRN_EFORMAT;
	return 0;
}

size_t cairn_base64_len(size_t nbytes)
{
	return (nbytes + 2) / 3 * 4;
}

void cairn_base64_encode(const uint8_t *in, size_t n, char *out)
{
	sodium_bin2base64(out, cairn_base64_len(n) + 1, in, n,
			  sodium_base64_VARIANT_ORIGINAL);
}

int cairn_base64_decode(const char *in, size_t len, uint8_t *out, size_t outcap,
			size_t *outlen)
{
	size_t got = 0;
	const char *end = NULL;
	if (len % 4 != 0)
		return CAIRN_EFORMAT;
	if (sodium_base642bin(out, outcap, in, len, NULL, &got, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != in + len)
		return CAIRN_EFORMAT;
	*outlen = got;
	return 0;
}

int cairn_hash_parse(const char *s, size_t len, enum cairn_hash_algo default_algo,
		     struct cairn_hash *out, struct cairn_error *err)
{
	struct cairn_hash h;
	const char *body = s;
	size_t blen = len;
	int sri = 0;

	memset(&h, 0, sizeof(h));
	const char *sep = memchr(s, ':', len);
	const char *dash = memchr(s, '-', len);
	if (sep) {
		h.algo = cairn_hash_algo_parse(s, (size_t)(sep - s));
	} else if (dash) {
		h.algo = cairn_hash_algo_parse(s, (size_t)(dash - s));
		sep = dash;
		sri = 1;
	} else {
		h.algo = default_algo;
	}
	if (!h.algo)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "hash '%.*s': unknown or missing algorithm",
				       (int)(len > 80 ? 80 : len), s);
	if (sep) {
		body = sep + 1;
		blen = len - (size_t)(body - s);
	}
	h.len = cairn_hash_algo_len(h.algo);

	int rc = CAIRN_EFORMAT;
	if (sri) {
		size_t got = 0;
		if (blen == cairn_base64_len(h.len) &&
		    cairn_base64_decode(body, blen, h.digest, sizeof(h.digest), &got) == 0 &&
		    got == h.len)
			rc = 0;
	} else if (blen == cairn_nix32_len(h.len)) {
		rc = cairn_nix32_decode(body, blen, h.digest, h.len);
	} else if (blen == 2 * h.len) {
		rc = cairn_base16_decode(body, blen, h.digest, h.len);
	} else if (blen == cairn_base64_len(h.len)) {
		size_t got = 0;
		if (cairn_base64_decode(body, blen, h.digest, sizeof(h.digest), &got) == 0 &&
		    got == h.len)
			rc = 0;
	}
	if (rc != 0)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "hash '%.*s': not a valid %s hash in nix32, base16, base64 or SRI form",
				       (int)(len > 80 ? 80 : len), s,
				       cairn_hash_algo_name(h.algo));
	*out = h;
	return 0;
}

int cairn_hash_format(const struct cairn_hash *h, enum cairn_hash_encoding enc,
		      char *out, size_t outcap)
{
	const char *name = cairn_hash_algo_name(h->algo);
	if (!name || h->len != cairn_hash_algo_len(h->algo))
		return CAIRN_EINVAL;
	size_t nlen = strlen(name);
	size_t blen;
	switch (enc) {
	case CAIRN_HASH_NIX32: blen = cairn_nix32_len(h->len); break;
	case CAIRN_HASH_BASE16: blen = 2 * h->len; break;
	case CAIRN_HASH_BASE64:
	case CAIRN_HASH_SRI: blen = cairn_base64_len(h->len); break;
	default: return CAIRN_EINVAL;
	}
	if (nlen + 1 + blen + 1 > outcap)
		return CAIRN_ELIMIT;
	memcpy(out, name, nlen);
	out[nlen] = enc == CAIRN_HASH_SRI ? '-' : ':';
	char *b = out + nlen + 1;
	switch (enc) {
	case CAIRN_HASH_NIX32: cairn_nix32_encode(h->digest, h->len, b); break;
	case CAIRN_HASH_BASE16: cairn_base16_encode(h->digest, h->len, b); break;
	default: cairn_base64_encode(h->digest, h->len, b); break;
	}
	b[blen] = '\0';
	return (int)(nlen + 1 + blen);
}

int cairn_hash_equal(const struct cairn_hash *a, const struct cairn_hash *b)
{
	if (a->algo != b->algo || a->len != b->len || a->len > CAIRN_HASH_MAX_LEN)
		return 0;
	return sodium_memcmp(a->digest, b->digest, a->len) == 0;
}
