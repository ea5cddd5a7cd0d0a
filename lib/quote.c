/*
 * quote.c - untrusted strings made safe for terminals and logs (rules in
 * include/cairn/quote.h).
 */
#include <string.h>

#include "cairn/quote.h"
#include "quote-int.h"
#include "cairn/banned.h"

/* Length of the valid, displayable UTF-8 character at s, or 0. */
static size_t utf8_ok(const unsigned char *s, size_t len)
{
	unsigned c = s[0];
	size_t n;
	unsigned cp;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* shortest form, no surrogates, at most U+10FFFF */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	if (cp <= 0x9f || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) ||
	    cp == 0x2028 || cp == 0x2029)
		return 0;
	return n;
}

static const char *letter(unsigned char c)
{
	switch (c) {
	case '\a': return "\\a";
	case '\b': return "\\b";
	case '\t': return "\\t";
	case '\n': return "\\n";
	case '\v': return "\\v";
	case '\f': return "\\f";
	case '\r': return "\\r";
	case '\\': return "\\\\";
	default: return NULL;
	}
}

/*
 * The work, for both outputs: emit(ctx, bytes, n) for each piece.
 * Returns whether anything was escaped.
 */
typedef int (*emit_fn)(void *ctx, const char *p, size_t n);

static bool walk(const char *s, size_t len, unsigned flags, emit_fn emit, void *ctx)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	bool changed = false;
	for (size_t i = 0; i < len;) {
		unsigned char c = u[i];
		const char *l = letter(c);
		if (c == '"' && (flags & CAIRN_QUOTE_WRAP)) {
			if (emit && emit(ctx, "\\\"", 2))
				return changed;
			i++;
			continue;
		}
		if (c == '\\' && (flags & CAIRN_QUOTE_KEEP_BACKSLASH))
			l = NULL;
		if (l) {
			if (c != '\\')
				changed = true;
			if (emit && emit(ctx, l, 2))
				return changed;
			i++;
			continue;
		}
		if (c >= 0x20 && c < 0x7f) {
			if (emit && emit(ctx, s + i, 1))
				return changed;
			i++;
			continue;
		}
		size_t n = c >= 0x80 && !(flags & CAIRN_QUOTE_ASCII) ? utf8_ok(u + i, len - i) : 0;
		if (n) {
			if (emit && emit(ctx, s + i, n))
				return changed;
			i += n;
			continue;
		}
		char x[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
		changed = true;
		if (emit && emit(ctx, x, 4))
			return changed;
		i++;
	}
	return changed;
}

bool cairn_quote_needed(const char *s, size_t len, unsigned flags)
{
	/* A backslash is doubled: that is a change too. */
	return walk(s, len, flags, NULL, NULL) || memchr(s, '\\', len) != NULL;
}

static int to_buf(void *ctx, const char *p, size_t n)
{
	return cairn_buf_append(ctx, p, n);
}

int cairn_quote(struct cairn_buf *out, const char *s, size_t len, unsigned flags)
{
	bool wrap = (flags & CAIRN_QUOTE_WRAP) && walk(s, len, flags & ~CAIRN_QUOTE_WRAP, NULL, NULL);
	int rc = wrap ? cairn_buf_putc(out, '"') : 0;
	if (!rc) {
		size_t before = out->len;
		walk(s, len, wrap ? flags : flags & ~CAIRN_QUOTE_WRAP, to_buf, out);
		/* walk stops at the first failed append; the bound is the error */
		if (out->len - before < len && out->max && out->len >= out->max)
			rc = CAIRN_ELIMIT;
	}
	if (!rc && wrap)
		rc = cairn_buf_putc(out, '"');
	return rc;
}

struct fixed {
	char *out;
	size_t cap, o, reserve;
	bool cut;
};

static int count(void *ctx, const char *p, size_t n)
{
	(void)p;
	*(size_t *)ctx += n;
	return 0;
}

static int to_fixed(void *ctx, const char *p, size_t n)
{
	struct fixed *f = ctx;
	/* room for the NUL, and for "..." when it will not all fit */
	if (f->o + n + f->reserve > f->cap) {
		f->cut = true;
		return 1;
	}
	memcpy(f->out + f->o, p, n);
	f->o += n;
	return 0;
}

char *cairn_quote_str(char *out, size_t cap, const char *s, size_t len, unsigned flags)
{
	struct fixed f = {out, cap, 0, 1, false};
	if (!cap)
		return out;
	size_t full = 0;
	walk(s, len, flags & ~CAIRN_QUOTE_WRAP, count, &full);
	/* Too small for "...": cut plainly. */
	if (full + 1 > cap && cap >= 4)
		f.reserve = 4;
	walk(s, len, flags & ~CAIRN_QUOTE_WRAP, to_fixed, &f);
	if (f.cut && cap >= 4) {
		memcpy(out + f.o, "...", 3);
		f.o += 3;
	}
	out[f.o] = '\0';
	return out;
}
