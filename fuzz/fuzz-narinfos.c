/*
 * fuzz-narinfos.c - the batch narinfo response parser (narinfos.h) on
 * untrusted bytes: what parses must frame back to the same bytes, every
 * entry inside the body, no hash twice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/buf.h"
#include "cairn/narinfos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_narinfos_entry *e = NULL;
	size_t n = 0;
	const char *body = (const char *)data;
	if (cairn_narinfos_parse(body, size, &e, &n, NULL) == 0) {
		struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFOS_RESPONSE_MAX + 4096);
		if (cairn_narinfos_begin(&b))
			abort();
		for (size_t i = 0; i < n; i++) {
			if (e[i].present && (e[i].text < body || e[i].text + e[i].len > body + size))
				abort();
			if (e[i].present ? cairn_narinfos_add(&b, e[i].hash, e[i].text, e[i].len)
					 : cairn_narinfos_add_absent(&b, e[i].hash))
				abort();
		}
		if (cairn_narinfos_end(&b, n) || b.len != size || memcmp(b.data, body, size))
			abort();
		cairn_buf_release(&b);
	}
	free(e);
	/* the server's side: a request's query */
	char hashes[CAIRN_NARINFOS_HASHES_MAX][CAIRN_STORE_HASH_LEN + 1];
	bool closure;
	(void)cairn_narinfos_parse_query(body, size, hashes, &n, &closure, NULL);
	return 0;
}
