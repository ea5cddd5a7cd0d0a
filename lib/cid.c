/*
 * cid.c - content identifiers: unsigned varints, multihash, binary CIDs
 * (v1, and v0 inside dag-pb links and CARs) and their multibase base32
 * text ('b' + RFC 4648 lower-case alphabet, no padding).
 *
 *   CIDv1  = varint(1) varint(codec) varint(mh code) varint(digest len) digest
 *   CIDv0  = 0x12 0x20 <32-byte sha2-256>   (dag-pb implied)
 *   "bafkrei…" = 'b' base32(CIDv1 raw sha2-256); "bafybei…" the dag-pb one.
 *
 * The hash is SHA-256 through lib/hash.c (libgcrypt), never written here.
 */
#include <string.h>

#include "cairn/hash.h"
#include "cairn/ipfs.h"
#include "ipfs-int.h"
#include "cairn/banned.h"

static const char b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

size_t ipfs_varint_len(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t ipfs_varint_put(uint8_t *out, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

size_t ipfs_varint_get(const uint8_t *buf, size_t len, uint64_t *v, int *bad)
{
	uint64_t x = 0;
	*bad = 0;
	for (size_t i = 0; i < len && i < IPFS_VARINT_MAX; i++) {
		uint8_t b = buf[i];
		if (i == IPFS_VARINT_MAX - 1 && b > 1) {
			*bad = 1; /* bits past 64 */
			return 0;
		}
		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			if (b == 0 && i > 0) {
				*bad = 1; /* a redundant trailing zero group: not minimal */
				return 0;
			}
			*v = x;
			return i + 1;
		}
	}
	if (len >= IPFS_VARINT_MAX)
		*bad = 1;
	return 0;
}

void cairn_cid_sha256(struct cairn_cid *cid, enum cairn_ipfs_codec codec, const void *data,
		      size_t len)
{
	memset(cid, 0, sizeof(*cid));
	cid->version = 1;
	cid->codec = (uint8_t)codec;
	cid->mh = CAIRN_IPFS_MH_SHA2_256;
	cid->len = CAIRN_SHA256_LEN;
	cairn_sha256(data, len, cid->digest);
}

bool cairn_cid_equal(const struct cairn_cid *a, const struct cairn_cid *b)
{
	return a->version == b->version && a->codec == b->codec && a->mh == b->mh &&
	       a->len == b->len && !memcmp(a->digest, b->digest, a->len);
}

int cairn_cid_verify(const struct cairn_cid *cid, const void *data, size_t len)
{
	if (cid->mh == CAIRN_IPFS_MH_IDENTITY)
		return len == cid->len && (!len || !memcmp(cid->digest, data, len)) ? 0
										     : CAIRN_EHASH;
	uint8_t d[CAIRN_SHA256_LEN];
	cairn_sha256(data, len, d);
	return cid->len == CAIRN_SHA256_LEN && !memcmp(d, cid->digest, sizeof(d)) ? 0 : CAIRN_EHASH;
}

size_t cairn_cid_to_bytes(const struct cairn_cid *cid, uint8_t out[CAIRN_CID_BIN_MAX])
{
	size_t n = 0;
	if (cid->version == 1) {
		out[n++] = 1;
		out[n++] = cid->codec;
	}
	out[n++] = cid->mh;
	out[n++] = cid->len;
	memcpy(out + n, cid->digest, cid->len);
	return n + cid->len;
}

/* The multihash at buf: its function, length and digest. */
static int mh_read(const uint8_t *buf, size_t len, struct cairn_cid *cid, size_t *used,
		   struct cairn_error *err)
{
	uint64_t code, dlen;
	int bad;
	size_t a = ipfs_varint_get(buf, len, &code, &bad);
	if (!a)
		goto varint;
	size_t b = ipfs_varint_get(buf + a, len - a, &dlen, &bad);
	if (!b)
		goto varint;
	if (code == CAIRN_IPFS_MH_SHA2_256) {
		if (dlen != CAIRN_SHA256_LEN)
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "cid: sha2-256 digest of %llu bytes, not 32",
					       (unsigned long long)dlen);
	} else if (code == CAIRN_IPFS_MH_IDENTITY) {
		if (dlen > CAIRN_CID_DIGEST_MAX)
			return cairn_error_set(err, CAIRN_EUNSUPPORTED,
					       "cid: identity multihash of %llu bytes (at most %d)",
					       (unsigned long long)dlen, CAIRN_CID_DIGEST_MAX);
	} else {
		return cairn_error_set(err, CAIRN_EUNSUPPORTED,
				       "cid: multihash function 0x%llx (only sha2-256 and identity)",
				       (unsigned long long)code);
	}
	if (len - a - b < dlen)
		return cairn_error_set(err, CAIRN_ETRUNCATED, "cid: digest cut short");
	cid->mh = (uint8_t)code;
	cid->len = (uint8_t)dlen;
	memcpy(cid->digest, buf + a + b, (size_t)dlen);
	*used = a + b + (size_t)dlen;
	return 0;
varint:
	return cairn_error_set(err, bad ? CAIRN_EFORMAT : CAIRN_ETRUNCATED,
			       "cid: %s varint in the multihash", bad ? "bad" : "truncated");
}

int cairn_cid_from_bytes(const uint8_t *buf, size_t len, struct cairn_cid *cid, size_t *used,
			 struct cairn_error *err)
{
	struct cairn_cid c;
	memset(&c, 0, sizeof(c));
	size_t n;
	int rc;
	if (len >= 2 && buf[0] == CAIRN_IPFS_MH_SHA2_256 && buf[1] == CAIRN_SHA256_LEN) {
		/* CIDv0: a bare sha2-256 multihash, dag-pb implied */
		rc = mh_read(buf, len, &c, &n, err);
		if (rc)
			return rc;
		c.version = 0;
		c.codec = CAIRN_IPFS_DAG_PB;
		*cid = c;
		*used = n;
		return 0;
	}
	uint64_t version, codec;
	int bad;
	size_t a = ipfs_varint_get(buf, len, &version, &bad);
	if (!a)
		return cairn_error_set(err, bad ? CAIRN_EFORMAT : CAIRN_ETRUNCATED,
				       "cid: %s version varint", bad ? "bad" : "truncated");
	if (version != 1)
		return cairn_error_set(err, CAIRN_EFORMAT, "cid: version %llu (only 0 and 1)",
				       (unsigned long long)version);
	size_t b = ipfs_varint_get(buf + a, len - a, &codec, &bad);
	if (!b)
		return cairn_error_set(err, bad ? CAIRN_EFORMAT : CAIRN_ETRUNCATED,
				       "cid: %s codec varint", bad ? "bad" : "truncated");
	if (codec != CAIRN_IPFS_RAW && codec != CAIRN_IPFS_DAG_PB)
		return cairn_error_set(err, CAIRN_EUNSUPPORTED,
				       "cid: codec 0x%llx (only raw and dag-pb)",
				       (unsigned long long)codec);
	rc = mh_read(buf + a + b, len - a - b, &c, &n, err);
	if (rc)
		return rc;
	c.version = 1;
	c.codec = (uint8_t)codec;
	*cid = c;
	*used = a + b + n;
	return 0;
}

int cairn_cid_format(const struct cairn_cid *cid, char out[CAIRN_CID_STR_MAX])
{
	if (cid->version != 1)
		return CAIRN_EUNSUPPORTED;
	uint8_t bin[CAIRN_CID_BIN_MAX];
	size_t n = cairn_cid_to_bytes(cid, bin);
	size_t o = 0;
	out[o++] = 'b';
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | bin[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[o++] = b32_alphabet[(acc >> bits) & 31];
		}
	}
	if (bits > 0)
		out[o++] = b32_alphabet[(acc << (5 - bits)) & 31];
	out[o] = '\0';
	return 0;
}

int cairn_cid_parse(const char *s, size_t len, struct cairn_cid *cid, struct cairn_error *err)
{
	if (len == 0 || s[0] != 'b') {
		if (len == 46 && s[0] == 'Q' && s[1] == 'm')
			return cairn_error_set(err, CAIRN_EUNSUPPORTED,
					       "cid: CIDv0 (Qm…) text is not read, give the CIDv1");
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "cid: not multibase base32 (it must start with 'b')");
	}
	/* the longest CID cairn names, in base32 */
	if (len - 1 > (CAIRN_CID_BIN_MAX * 8 + 4) / 5)
		return cairn_error_set(err, CAIRN_EFORMAT, "cid: %zu characters is too long", len);
	uint8_t bin[CAIRN_CID_BIN_MAX];
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 1; i < len; i++) {
		const char *p = memchr(b32_alphabet, s[i], 32);
		if (!p || !s[i])
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "cid: character %zu is not base32 lower", i);
		acc = (acc << 5) | (uint32_t)(p - b32_alphabet);
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			bin[n++] = (uint8_t)(acc >> bits);
		}
	}
	/* canonical: the leftover bits are padding, fewer than 5 and zero */
	if (bits >= 5 || (acc & ((1u << bits) - 1)))
		return cairn_error_set(err, CAIRN_EFORMAT, "cid: base32 has stray trailing bits");
	struct cairn_cid c;
	size_t used;
	int rc = cairn_cid_from_bytes(bin, n, &c, &used, err);
	if (rc)
		return rc;
	if (c.version != 1)
		return cairn_error_set(err, CAIRN_EFORMAT, "cid: base32 text of a CIDv0");
	if (used != n)
		return cairn_error_set(err, CAIRN_EFORMAT, "cid: %zu bytes after the CID", n - used);
	*cid = c;
	return 0;
}
