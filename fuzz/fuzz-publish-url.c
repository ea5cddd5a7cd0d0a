/*
 * fuzz-publish-url.c - the part of a /nar/ URL after the prefix, as a client
 * sends it, through cairn_publish_parse_nar_url.  Besides "no crash":
 * whatever parses names a known method, a nix32 hash or a valid basename,
 * and a ?hash= hint is taken only when it is 32 nix32 characters.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/publish.h"
#include "cairn/storepath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_publish_nar_url u;
	if (size > 4096)
		return 0;
	if (cairn_publish_parse_nar_url((const char *)data, size, &u, NULL) != 0)
		return 0;
	if (!cairn_codec_method_name(u.method) || !cairn_publish_nar_ext(u.method))
		abort();
	if (u.hashpart[0] && !cairn_store_hash_valid(u.hashpart, strlen(u.hashpart)))
		abort();
	if (u.by_hash) {
		if (strlen(u.hash) != 52)
			abort();
	} else {
		struct cairn_store_path sp;
		if (cairn_store_path_parse_base(u.basename, strlen(u.basename), &sp, NULL) != 0 ||
		    strncmp(sp.hash, u.hashpart, 32) != 0)
			abort();
	}
	return 0;
}
