/*
 * quote-int.h - what lib/quote.c offers beyond its public header,
 * for the unit tests and fuzz targets; not part of the public API.
 */
#ifndef CAIRN_QUOTE_INT_H
#define CAIRN_QUOTE_INT_H

#include "cairn/quote.h"

/* Would s[0..len) change? */
bool cairn_quote_needed(const char *s, size_t len, unsigned flags);

#endif
