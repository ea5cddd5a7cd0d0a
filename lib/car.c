/*
 * car.c - CARv1 (ipld/specs transport/car/carv1): the writer's pieces and a
 * strict reader.
 *
 *   CAR     = varint(len(header)) header section*
 *   header  = dag-cbor {"roots": [CID...], "version": 1}, canonical: a map
 *             of 2 (0xa2), text "roots" (0x65 …), an array (0x80 | n) of
 *             CIDs, each tag 42 (0xd8 0x2a) on a byte string holding 0x00
 *             (the multibase identity prefix) + the binary CID, then text
 *             "version" (0x67 …) and 1 (0x01)
 *   section = varint(len(cid) + len(data)) cid data
 *
 * The reader takes only that canonical header, as @ipld/car and go-car
 * write it, and verifies every block against its CID before it is handed
 * on: a CAR from a gateway is untrusted bytes.
 */
#include <string.h>

#include "cairn/ipfs.h"
#include "ipfs-int.h"
#include "cairn/banned.h"

static const uint8_t k_roots[] = {0x65, 'r', 'o', 'o', 't', 's'};
static const uint8_t k_version[] = {0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x01};

/* A dag-cbor byte string holding 0x00 + the CID: at most 1 + 36 < 256 bytes. */
static size_t put_cid_tag(uint8_t *out, const struct cairn_cid *cid)
{
	uint8_t bin[CAIRN_CID_BIN_MAX];
	size_t n = cairn_cid_to_bytes(cid, bin);
	size_t o = 0;
	out[o++] = 0xd8;
	out[o++] = 42;
	if (n + 1 < 24) {
		out[o++] = (uint8_t)(0x40 | (n + 1));
	} else {
		out[o++] = 0x58;
		out[o++] = (uint8_t)(n + 1);
	}
	out[o++] = 0x00;
	memcpy(out + o, bin, n);
	return o + n;
}

size_t cairn_car_header(const struct cairn_cid *root, uint8_t out[CAIRN_CAR_HEADER_MAX])
{
	uint8_t h[CAIRN_CAR_HEADER_MAX];
	size_t n = 0;
	h[n++] = 0xa2;
	memcpy(h + n, k_roots, sizeof(k_roots));
	n += sizeof(k_roots);
	h[n++] = 0x81;
	n += put_cid_tag(h + n, root);
	memcpy(h + n, k_version, sizeof(k_version));
	n += sizeof(k_version);
	size_t o = ipfs_varint_put(out, n);
	memcpy(out + o, h, n);
	return o + n;
}

size_t cairn_car_section_head(const struct cairn_cid *cid, size_t data_len,
			      uint8_t out[CAIRN_CAR_SECTION_HEAD_MAX])
{
	uint8_t bin[CAIRN_CID_BIN_MAX];
	size_t n = cairn_cid_to_bytes(cid, bin);
	size_t o = ipfs_varint_put(out, n + data_len);
	memcpy(out + o, bin, n);
	return o + n;
}

static int header_read(const uint8_t *h, size_t len, struct cairn_cid *roots, size_t *n_roots,
		       struct cairn_error *err)
{
	size_t o = 0;
	if (len < 1 + sizeof(k_roots) + 1 || h[0] != 0xa2 ||
	    memcmp(h + 1, k_roots, sizeof(k_roots)) != 0)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "car: header is not {\"roots\", \"version\"} in dag-cbor");
	o = 1 + sizeof(k_roots);
	uint8_t arr = h[o++];
	if (arr < 0x81 || arr > 0x80 + CAIRN_CAR_ROOTS_MAX)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "car: roots must be an array of 1 to %d CIDs",
				       CAIRN_CAR_ROOTS_MAX);
	size_t n = arr - 0x80u;
	for (size_t i = 0; i < n; i++) {
		if (len - o < 3 || h[o] != 0xd8 || h[o + 1] != 42)
			return cairn_error_set(err, CAIRN_EFORMAT, "car: root %zu is not a CID", i);
		o += 2;
		size_t bl;
		if (h[o] >= 0x40 && h[o] < 0x58) {
			bl = h[o] - 0x40u;
			o++;
		} else if (h[o] == 0x58 && len - o >= 2 && h[o + 1] >= 24) {
			bl = h[o + 1];
			o += 2;
		} else {
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "car: root %zu is not a canonical byte string", i);
		}
		if (bl > len - o || bl < 1 || h[o] != 0x00)
			return cairn_error_set(err, CAIRN_EFORMAT, "car: root %zu is malformed", i);
		size_t used;
		int rc = cairn_cid_from_bytes(h + o + 1, bl - 1, &roots[i], &used, err);
		if (rc)
			return rc;
		if (used != bl - 1)
			return cairn_error_set(err, CAIRN_EFORMAT, "car: bytes after root %zu", i);
		o += bl;
	}
	if (len - o != sizeof(k_version) || memcmp(h + o, k_version, sizeof(k_version)) != 0)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "car: header does not end with \"version\": 1");
	*n_roots = n;
	return 0;
}

int cairn_car_read(const uint8_t *buf, size_t len, struct cairn_cid roots[CAIRN_CAR_ROOTS_MAX],
		   size_t *n_roots, cairn_ipfs_block_cb cb, void *user, struct cairn_error *err)
{
	uint64_t hl;
	int bad;
	size_t o = ipfs_varint_get(buf, len, &hl, &bad);
	if (!o)
		return cairn_error_set(err, bad ? CAIRN_EFORMAT : CAIRN_ETRUNCATED,
				       "car: %s header length", bad ? "bad" : "truncated");
	if (hl > CAIRN_CAR_HEADER_READ_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "car: header of %llu bytes (at most %d)",
				       (unsigned long long)hl, CAIRN_CAR_HEADER_READ_MAX);
	if (hl > len - o)
		return cairn_error_set(err, CAIRN_ETRUNCATED, "car: header cut short");
	size_t nr = 0;
	struct cairn_cid r[CAIRN_CAR_ROOTS_MAX];
	int rc = header_read(buf + o, (size_t)hl, r, &nr, err);
	if (rc)
		return rc;
	o += (size_t)hl;
	while (o < len) {
		uint64_t sl;
		size_t k = ipfs_varint_get(buf + o, len - o, &sl, &bad);
		if (!k)
			return cairn_error_set(err, bad ? CAIRN_EFORMAT : CAIRN_ETRUNCATED,
					       "car: %s section length at byte %zu",
					       bad ? "bad" : "truncated", o);
		o += k;
		if (sl > CAIRN_CID_BIN_MAX + CAIRN_IPFS_BLOCK_MAX)
			return cairn_error_set(err, CAIRN_ELIMIT,
					       "car: section of %llu bytes (blocks are at most %zu)",
					       (unsigned long long)sl, CAIRN_IPFS_BLOCK_MAX);
		if (sl > len - o)
			return cairn_error_set(err, CAIRN_ETRUNCATED,
					       "car: section at byte %zu cut short", o);
		struct cairn_cid cid;
		size_t used;
		rc = cairn_cid_from_bytes(buf + o, (size_t)sl, &cid, &used, err);
		if (rc)
			return rc;
		const uint8_t *data = buf + o + used;
		size_t dl = (size_t)sl - used;
		if (cairn_cid_verify(&cid, data, dl) != 0) {
			char s[CAIRN_CID_STR_MAX] = "(CIDv0)";
			(void)cairn_cid_format(&cid, s);
			return cairn_error_set(err, CAIRN_EHASH,
					       "car: block at byte %zu does not hash to %s", o, s);
		}
		o += (size_t)sl;
		if (cb) {
			rc = cb(&cid, data, dl, user);
			if (rc)
				return rc;
		}
	}
	memcpy(roots, r, nr * sizeof(r[0]));
	*n_roots = nr;
	return 0;
}
