/*
 * nar.c - what the NAR modules share: quoting untrusted names for messages
 * and parsing a NAR held in memory.
 */
#include <stdio.h>
#include <string.h>

#include "cairn/nar.h"
#include "nar-internal.h"
#include "cairn/banned.h"

static const char *quote_n(char *out, size_t cap, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	out[o++] = '\'';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		/* keep room for one escape, "...'" and the NUL */
		if (o + 4 + 5 > cap) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
			out[o++] = (char)c;
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o++] = '\'';
	out[o] = '\0';
	return out;
}

const char *nar_quote(char out[NAR_QUOTE_MAX], const char *s, size_t len)
{
	return quote_n(out, NAR_QUOTE_MAX, s, len);
}

const char *nar_where(char out[NAR_QUOTE_MAX], const char *path, size_t len)
{
	if (len == 0) {
		snprintf(out, NAR_QUOTE_MAX, "the root");
		return out;
	}
	return nar_quote(out, path, len);
}

const char *nar_dir(char out[NAR_QUOTE_MAX], const char *path, size_t len)
{
	if (len == 0) {
		snprintf(out, NAR_QUOTE_MAX, "the root directory");
		return out;
	}
	char q[NAR_QUOTE_MAX];
	snprintf(out, NAR_QUOTE_MAX, "directory %s",
		 quote_n(q, NAR_QUOTE_MAX - sizeof("directory ") + 1, path, len));
	return out;
}

int cairn_nar_parse_buffer(const void *nar, size_t len, const struct cairn_nar_callbacks *cb,
			   void *ctx, const struct cairn_nar_limits *lim,
			   struct cairn_hash *hash_out, struct cairn_error *err)
{
	static const struct cairn_nar_callbacks none;
	struct cairn_nar_parser *p = cairn_nar_parser_new(cb ? cb : &none, ctx, lim);
	if (!p)
		return cairn_error_set(err, CAIRN_ENOMEM, "nar: out of memory");
	int rc = cairn_nar_parser_feed(p, nar, len, err);
	if (!rc)
		rc = cairn_nar_parser_finish(p, err);
	if (!rc && hash_out)
		rc = cairn_nar_parser_hash(p, hash_out);
	cairn_nar_parser_free(p);
	return rc;
}
