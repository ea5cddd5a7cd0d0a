/*
 * fuzz-drv.c - the outputs of a derivation (ATerm) as storedb-write reads
 * them from a fetched .drv before registering it.  Besides "no crash":
 * whatever parses is within the bounds, every name is a non-empty token
 * and every path a valid store path under the store directory.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/cairn.h"
#include "cairn/storedb-write.h"
#include "cairn/storepath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_storedb_drv_output *o = NULL;
	size_t n = 0;
	if (cairn_storedb_drv_parse((const char *)data, size, "/nix/store", &o, &n, NULL) != 0) {
		if (o || n)
			abort(); /* outputs are written only on success */
		return 0;
	}
	if (n > CAIRN_STOREDB_DRV_OUTPUTS_MAX)
		abort();
	for (size_t i = 0; i < n; i++) {
		struct cairn_store_path sp;
		size_t len = strlen(o[i].name);
		if (len == 0 || len > CAIRN_STOREDB_DRV_OUTPUT_NAME_MAX || strchr(o[i].name, ' '))
			abort();
		if (cairn_store_path_parse(o[i].path, strlen(o[i].path), "/nix/store", &sp, NULL))
			abort();
	}
	cairn_storedb_drv_outputs_free(o, n);
	return 0;
}
