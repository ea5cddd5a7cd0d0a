/*
 * escape.h - text from servers and file names made safe to print or serve
 * (lib/escape.c).  Bytes that are not UTF-8 become U+FFFD in both forms.
 * All return 0 or CAIRN_ENOMEM / CAIRN_ELIMIT from the buffer.
 */
#ifndef CAIRN_ESCAPE_H
#define CAIRN_ESCAPE_H

#include <stddef.h>

#include "cairn/buf.h"

/* str[0..len) as a JSON string, quotes included (nlohmann's escaping). */
int cairn_json_str(struct cairn_buf *b, const char *str, size_t len);
/* The same, with < > & also as \u escapes: inert if the JSON ends up in
 * an HTML page. */
int cairn_json_str_html_safe(struct cairn_buf *b, const char *str, size_t len);
/* A NUL-terminated string as a JSON string; NULL is "". */
int cairn_json_cstr(struct cairn_buf *b, const char *s);
/* str[0..len) as HTML text, safe in element content and in quoted
 * attribute values (& < > " ' as entities). */
int cairn_html_str(struct cairn_buf *b, const char *str, size_t len);
int cairn_html_cstr(struct cairn_buf *b, const char *s);

#endif
