/*
 * json.h - JSON string literals (lib/json.c).
 */
#ifndef CAIRN_JSON_H
#define CAIRN_JSON_H

#include <stddef.h>

#include "cairn/buf.h"

/* Append str[0..len) as a JSON string, quotes included.  Bytes that are not
 * UTF-8 become U+FFFD, so the output always parses.  0 or CAIRN_ENOMEM /
 * CAIRN_ELIMIT from the buffer. */
int cairn_json_str(struct cairn_buf *b, const char *str, size_t len);
/* The same for a NUL-terminated string; NULL is "". */
int cairn_json_cstr(struct cairn_buf *b, const char *s);

#endif
