/*
 * escape.c - text from servers and file names made safe to print or serve:
 * JSON strings and HTML text, one writer each, on one UTF-8 check.
 *
 * JSON: one writer, so that every output parses whatever bytes a server or
 * a file name put in it.  The escaping is nlohmann::json's with ensure_ascii
 * off (what Nix's `.ls` listings are made with, checked against
 * NixOS/nix src/libstore/nar-accessor.cc): '"' and '\\' escaped, \b \f \n
 * \r \t short forms, other bytes below 0x20 as \u00xx (lowercase hex),
 * everything else verbatim.  nlohmann throws on invalid UTF-8; we write
 * U+FFFD for each maximal invalid subsequence (its "replace" handler).
 */
#include <stdbool.h>
#include <string.h>

#include "cairn/buf.h"
#include "cairn/escape.h"
#include "cairn/banned.h"

/* Length of the valid UTF-8 prefix of a sequence starting at s (1..4), or
 * 0 with *bad set to the length of the maximal invalid subpart. */
static size_t utf8_seq(const unsigned char *s, size_t left, size_t *bad)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		*bad = 1;
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if (i >= left || s[i] < lo || s[i] > hi) {
			*bad = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return n;
}

static int json_str(struct cairn_buf *b, const char *str, size_t len, bool html_safe)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	int rc = cairn_buf_putc(b, '"');
	size_t i = 0, run = 0; /* run: bytes from i - run to i copied verbatim later */
	while (!rc && i < len) {
		unsigned char c = s[i];
		char esc[7];
		size_t elen = 0;
		bool special = c == '"' || c == '\\' || (html_safe && (c == '<' || c == '>' || c == '&'));
		if (c >= 0x20 && !special && c < 0x80) {
			i++;
			run++;
			continue;
		}
		if (c >= 0x80) {
			size_t bad = 0, n = utf8_seq(s + i, len - i, &bad);
			if (n) {
				i += n;
				run += n;
				continue;
			}
			rc = cairn_buf_append(b, s + i - run, run);
			run = 0;
			if (!rc)
				rc = cairn_buf_append(b, "\xef\xbf\xbd", 3);
			i += bad;
			continue;
		}
		const char *shortform = c == '"'    ? "\\\""
					: c == '\\' ? "\\\\"
					: c == '\b' ? "\\b"
					: c == '\f' ? "\\f"
					: c == '\n' ? "\\n"
					: c == '\r' ? "\\r"
					: c == '\t' ? "\\t"
						    : NULL;
		if (shortform) {
			memcpy(esc, shortform, 2);
			elen = 2;
		} else {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			elen = 6;
		}
		rc = cairn_buf_append(b, s + i - run, run);
		run = 0;
		if (!rc)
			rc = cairn_buf_append(b, esc, elen);
		i++;
	}
	if (!rc)
		rc = cairn_buf_append(b, s + i - run, run);
	if (!rc)
		rc = cairn_buf_putc(b, '"');
	return rc;
}

int cairn_json_str(struct cairn_buf *b, const char *str, size_t len)
{
	return json_str(b, str, len, false);
}

int cairn_json_str_html_safe(struct cairn_buf *b, const char *str, size_t len)
{
	return json_str(b, str, len, true);
}

int cairn_json_cstr(struct cairn_buf *b, const char *s)
{
	return cairn_json_str(b, s ? s : "", s ? strlen(s) : 0);
}

int cairn_html_str(struct cairn_buf *b, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < len;) {
		unsigned char c = s[i];
		const char *ent = c == '&'    ? "&amp;"
				  : c == '<'  ? "&lt;"
				  : c == '>'  ? "&gt;"
				  : c == '"'  ? "&quot;"
				  : c == '\'' ? "&#39;"
					      : NULL;
		if (ent) {
			rc = cairn_buf_puts(b, ent);
			i++;
			continue;
		}
		size_t bad = 0, n = c < 0x80 ? 1 : utf8_seq(s + i, len - i, &bad);
		if (n) {
			rc = cairn_buf_append(b, s + i, n);
			i += n;
		} else {
			rc = cairn_buf_puts(b, "&#xfffd;");
			i += bad;
		}
	}
	return rc;
}

int cairn_html_cstr(struct cairn_buf *b, const char *s)
{
	return cairn_html_str(b, s ? s : "", s ? strlen(s) : 0);
}
