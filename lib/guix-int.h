/*
 * guix-int.h - what lib/guix.c offers beyond its public header,
 * for the unit tests and fuzz targets; not part of the public API.
 */
#ifndef CAIRN_GUIX_INT_H
#define CAIRN_GUIX_INT_H

#include "cairn/guix.h"

int cairn_guix_acl_format(const struct cairn_guix_pubkey *keys, size_t n_keys,
			  struct cairn_buf *out);

#endif
