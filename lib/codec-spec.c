/*
 * codec-spec.c - compression methods by name: Nix's and Guix's names,
 * the nar URL suffixes, level ranges, and "--compression" specs such as
 * "zstd:19,xz" parsed and formatted.  The streams are in codec.c.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "cairn/codec.h"
#include "codec-int.h"
#include "cairn/banned.h"

static const struct {
	const char *name, *suffix;
	int lmin, lmax, ldef;
} methods[CAIRN_CODEC_METHOD_COUNT_] = {
    [CAIRN_CODEC_NONE] = {"none", "", 0, 0, 0},	      [CAIRN_CODEC_XZ] = {"xz", ".xz", 0, 9, 6},
    [CAIRN_CODEC_ZSTD] = {"zstd", ".zst", 0, 0, 3}, /* range from libzstd */
    [CAIRN_CODEC_BZIP2] = {"bzip2", ".bz2", 1, 9, 9}, [CAIRN_CODEC_GZIP] = {"gzip", "", 1, 9, 6},
    [CAIRN_CODEC_LZIP] = {"lzip", ".lzip", 0, 9, 6},
};

/* Names Nix accepts that cairn has no library for. */
static const char *const unsupported_names[] = {
    "br", "lz4", "lzma", "lzop", "compress", "grzip", "lrzip",
};

/* `lzip -0`..`-9`: dictionary size and match length limit (lzip manual). */
static bool method_valid(enum cairn_codec_method m)
{
	return (int)m >= 0 && m < CAIRN_CODEC_METHOD_COUNT_;
}

const char *cairn_codec_method_name(enum cairn_codec_method m)
{
	return method_valid(m) ? methods[m].name : NULL;
}

const char *cairn_codec_nix_suffix(enum cairn_codec_method m)
{
	return method_valid(m) ? methods[m].suffix : NULL;
}


void cairn_codec_level_range(enum cairn_codec_method m, int *min, int *max)
{
	int lo = 0, hi = 0;
	if (m == CAIRN_CODEC_ZSTD) {
		lo = ZSTD_minCLevel();
		hi = ZSTD_maxCLevel();
	} else if (method_valid(m)) {
		lo = methods[m].lmin;
		hi = methods[m].lmax;
	}
	if (min)
		*min = lo;
	if (max)
		*max = hi;
}

int cairn_codec_method_parse(const char *name, size_t len, enum cairn_codec_method *out,
			     struct cairn_error *err)
{
	for (int m = 0; m < CAIRN_CODEC_METHOD_COUNT_; m++) {
		if (strlen(methods[m].name) == len && memcmp(methods[m].name, name, len) == 0) {
			*out = (enum cairn_codec_method)m;
			return 0;
		}
	}
	int shown = len > 32 ? 32 : (int)len;
	for (size_t i = 0; i < sizeof(unsupported_names) / sizeof(unsupported_names[0]); i++) {
		if (strlen(unsupported_names[i]) == len &&
		    memcmp(unsupported_names[i], name, len) == 0)
			return cairn_error_set(err, CAIRN_EUNSUPPORTED,
					       "codec: compression '%.*s'%s is not supported "
					       "(cairn has none, xz, zstd, bzip2, gzip, lzip)",
					       shown, name, len == 2 ? " (brotli)" : "");
	}
	return cairn_error_set(err, CAIRN_EFORMAT, "codec: unknown compression method '%.*s%s'",
			       shown, name, len > 32 ? "..." : "");
}

/* Parse a decimal int (optional leading '-'); 0 or -1. */
static int parse_int(const char *s, size_t len, int *out)
{
	size_t i = 0;
	bool neg = false;
	long v = 0;
	if (len > 0 && s[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i == len || len - i > 7)
		return CAIRN_EFORMAT;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return CAIRN_EFORMAT;
		v = v * 10 + (s[i] - '0');
	}
	*out = (int)(neg ? -v : v);
	return 0;
}

int cairn_codec_spec_parse(const char *s, size_t len, struct cairn_codec_spec *out,
			   struct cairn_error *err)
{
	const char *colon = memchr(s, ':', len);
	size_t nlen = colon ? (size_t)(colon - s) : len;
	enum cairn_codec_method m;
	int rc = cairn_codec_method_parse(s, nlen, &m, err);
	if (rc < 0)
		return rc;
	int level = CAIRN_CODEC_LEVEL_DEFAULT;
	if (colon) {
		const char *ls = colon + 1;
		size_t llen = len - nlen - 1;
		int lo, hi;
		if (parse_int(ls, llen, &level) < 0)
			return cairn_error_set(
			    err, CAIRN_EFORMAT,
			    "codec: compression level '%.*s' of %s is not a number",
			    llen > 16 ? 16 : (int)llen, ls, methods[m].name);
		if (m == CAIRN_CODEC_NONE)
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "codec: compression 'none' takes no level");
		cairn_codec_level_range(m, &lo, &hi);
		if (level < lo || level > hi)
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "codec: %s level %d is out of range (%d to %d)",
					       methods[m].name, level, lo, hi);
	}
	out->method = m;
	out->level = level;
	return 0;
}

int cairn_codec_spec_list_parse(const char *s, size_t len, struct cairn_codec_spec *out, size_t max,
				struct cairn_error *err)
{
	struct cairn_codec_spec tmp[CAIRN_CODEC_LIST_MAX];
	size_t n = 0, pos = 0;
	if (max > CAIRN_CODEC_LIST_MAX)
		max = CAIRN_CODEC_LIST_MAX;
	for (;;) {
		const char *comma = memchr(s + pos, ',', len - pos);
		size_t end = comma ? (size_t)(comma - s) : len;
		if (end == pos)
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "codec: empty entry in compression list");
		if (n == max)
			return cairn_error_set(err, CAIRN_ELIMIT,
					       "codec: compression list has more than %zu entries",
					       max);
		int rc = cairn_codec_spec_parse(s + pos, end - pos, &tmp[n], err);
		if (rc < 0)
			return rc;
		for (size_t i = 0; i < n; i++)
			if (tmp[i].method == tmp[n].method)
				return cairn_error_set(err, CAIRN_EFORMAT,
						       "codec: compression '%s' listed twice",
						       methods[tmp[n].method].name);
		n++;
		if (!comma)
			break;
		pos = end + 1;
	}
	memcpy(out, tmp, n * sizeof(tmp[0]));
	return (int)n;
}

int cairn_codec_spec_format(const struct cairn_codec_spec *spec, char *out, size_t size)
{
	if (!method_valid(spec->method))
		return CAIRN_EINVAL;
	char tmp[CAIRN_CODEC_SPEC_STR_MAX + 16];
	int n;
	if (spec->method == CAIRN_CODEC_NONE || spec->level == CAIRN_CODEC_LEVEL_DEFAULT)
		n = snprintf(tmp, sizeof(tmp), "%s", methods[spec->method].name);
	else
		n = snprintf(tmp, sizeof(tmp), "%s:%d", methods[spec->method].name, spec->level);
	if (n < 0 || (size_t)n >= size)
		return CAIRN_ELIMIT;
	memcpy(out, tmp, (size_t)n + 1);
	return n;
}

int cairn_codec__level_default(enum cairn_codec_method m)
{
	return method_valid(m) ? methods[m].ldef : 0;
}
