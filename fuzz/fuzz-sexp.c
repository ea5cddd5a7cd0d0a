/*
 * fuzz-sexp.c - the s-expression path for untrusted input: libgcrypt's
 * reader plus cairn's canonical indexer (lib/sexp.c), the indexer alone on
 * raw bytes, and cairn_guix_verify of the input as a narinfo signature over
 * a fixed narinfo with a fixed trusted key (the farm narinfo and key of
 * tests/vectors/guix, so a seed reaches the ECDSA check).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/cairn.h"
#include "cairn/guix.h"
#include "../lib/sexp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char narinfo[] =
	"StorePath: /gnu/store/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-sed-4.4\n"
	"URL: nar/gzip/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-sed-4.4\n"
	"Compression: gzip\n"
	"NarHash: sha256:18v7dgny1xna7f53mbkj8bk4y2f00l5rjk2k6hj166kjv964lz7r\n"
	"NarSize: 637360\n"
	"References: 3x53yv4v144c9xp02rs64z7j597kkqax-gcc-5.4.0-lib "
	"8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-sed-4.4 n6nvxlk2j8ysffjh3jphn1k5silnakh6-glibc-2.25\n"
	"FileSize: 218663\n"
	"System: x86_64-linux\n"
	"Deriver: pi8686q63rwr4md90vm3qxwhk2g2fvqa-sed-4.4.drv\n";

/* ci.guix.gnu.org, then a second key so the signer search has two rows. */
static const struct cairn_guix_pubkey trusted[2] = {
	{ { 0x8D, 0x15, 0x6F, 0x29, 0x5D, 0x24, 0xB0, 0xD9, 0xA8, 0x6F, 0xA5,
	    0x74, 0x1A, 0x84, 0x0F, 0xF2, 0xD2, 0x4F, 0x60, 0xF7, 0xB6, 0xC4,
	    0x13, 0x48, 0x14, 0xAD, 0x55, 0x62, 0x59, 0x71, 0xB3, 0x94 } },
	{ { 0x7D, 0x60, 0x29, 0x02, 0xD3, 0xA2, 0xDB, 0xB8, 0x3F, 0x8A, 0x0F,
	    0xB9, 0x86, 0x02, 0xA7, 0x54, 0xC5, 0x49, 0x3B, 0x0B, 0x77, 0x8C,
	    0x8D, 0x1D, 0xD4, 0xE0, 0xF4, 0x1D, 0xE1, 0x4D, 0xE3, 0x4F } },
};

static void walk(const struct cairn_sexp *sx)
{
	/* Visit every node through the accessors, checking the links hold. */
	size_t seen = 0;
	for (size_t i = 0; i < sx->n_nodes; i++) {
		const struct cairn_sexp_node *nd = &sx->nodes[i];
		if (nd->is_list) {
			size_t k = 0;
			for (size_t c = nd->first; c != CAIRN_SEXP_NONE; c = sx->nodes[c].next) {
				if (c <= i || c >= sx->n_nodes)
					abort();
				k++;
			}
			if (k != nd->count || (k && cairn_sexp_nth(sx, i, k - 1) == CAIRN_SEXP_NONE))
				abort();
			int dup;
			(void)cairn_sexp_find(sx, i, "q", &dup);
			seen += k;
		} else if (nd->data + nd->len > sx->canon + sx->canon_len) {
			abort();
		}
	}
	if (seen + 1 != sx->n_nodes)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		if (cairn_init() != 0)
			abort();
		ready = 1;
	}
	struct cairn_sexp sx;
	if (cairn_sexp_parse((const char *)data, size, CAIRN_GUIX_ACL_MAX, CAIRN_EFORMAT, "fuzz",
			     &sx, NULL) == 0) {
		walk(&sx);
		cairn_sexp_release(&sx);
	}

	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (cairn_sexp_index(copy, size, CAIRN_EFORMAT, "fuzz", &sx, NULL) == 0) {
		walk(&sx);
		cairn_sexp_release(&sx);
	}

	size_t signer = 99;
	int rc = cairn_guix_verify(narinfo, sizeof(narinfo) - 1, (const char *)data, size,
				   trusted, 2, &signer, NULL);
	if (rc == 0 && signer != 0)
		abort();
	if (rc != 0 && rc != CAIRN_ESIGCORRUPT && rc != CAIRN_EUNTRUSTED && rc != CAIRN_EHASH &&
	    rc != CAIRN_ESIG && rc != CAIRN_ENOMEM)
		abort();
	return 0;
}
