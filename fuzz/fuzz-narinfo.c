/*
 * fuzz-narinfo.c - the narinfo parser on untrusted bytes.  What parses must
 * print back to the same bytes, and verification and fingerprinting must
 * not crash whatever the fields hold; the servers' finder of a field in
 * unparsed text stays within it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/cairn.h"
#include "cairn/keys.h"
#include "cairn/narinfo.h"
#include "cairn/sign.h"
#include "../lib/narinfo-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int inited;
	static struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	if (!inited) {
		if (cairn_init() != 0)
			abort();
		static const char pub[] =
		    "cache.example.org-1:XzmZSyBW5fO/8u6Y9zc2/AjDOerKJUzkUNA6wadE9gg=";
		if (cairn_keyring_load(&kr, pub, strlen(pub), NULL) != 1)
			abort();
		inited = 1;
	}
	/* the servers' field finder reads texts as they come (a mirror's
	 * upstream narinfo, a directory's file), parsed or not */
	static const char *const names[] = {"IPFS", "Signature", "StorePath", ""};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *v;
		size_t vl;
		if (cairn_narinfo_text_field((const char *)data, size, names[i], &v, &vl) &&
		    (v < (const char *)data || v + vl > (const char *)data + size))
			abort();
	}
	struct cairn_narinfo *ni = NULL;
	if (cairn_narinfo_parse((const char *)data, size, &ni, NULL) != 0)
		return 0;
	struct cairn_buf b = CAIRN_BUF_INIT(2 * CAIRN_NARINFO_MAX);
	if (cairn_narinfo_print(ni, &b, NULL) != 0 || b.len != size || memcmp(b.data, data, size))
		abort(); /* round trip must be exact */
	struct cairn_verify_result res;
	cairn_narinfo_verify(ni, &kr, &res, NULL);
	cairn_buf_reset(&b);
	cairn_narinfo_fingerprint(ni, &b, NULL);
	size_t len;
	const char *st = cairn_narinfo_signed_text(ni, &len);
	if (st && len > size)
		abort();
	cairn_narinfo_add_sig(ni, "k:AAAA", NULL);
	cairn_buf_reset(&b);
	cairn_narinfo_print(ni, &b, NULL);
	cairn_buf_release(&b);
	cairn_narinfo_free(ni);
	return 0;
}
