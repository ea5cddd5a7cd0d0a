/*
 * nar-internal.h - helpers shared by the nar-*.c files of libcairn; not
 * part of the public API.
 */
#ifndef CAIRN_NAR_INTERNAL_H
#define CAIRN_NAR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"

/* Room for a quoted subject in a message ("'...'" plus escapes, cut short). */
#define NAR_QUOTE_MAX 100

/*
 * Write s[0..len) into out as a single-quoted, printable string: bytes
 * outside printable ASCII (and the quote and backslash) become \xNN, and a
 * long string is cut with "...".  Paths in messages come from untrusted
 * archives, so they must not smuggle control characters into a terminal.
 * Returns out.
 */
const char *nar_quote(char out[NAR_QUOTE_MAX], const char *s, size_t len);

/* "the root" or "'a/b'" for a relative path, into out. */
const char *nar_where(char out[NAR_QUOTE_MAX], const char *path, size_t len);

/* "the root directory" or "directory 'a/b'", into out. */
const char *nar_dir(char out[NAR_QUOTE_MAX], const char *path, size_t len);

static inline size_t nar_pad(uint64_t len)
{
	return (size_t)((8 - (len & 7)) & 7);
}

static inline uint64_t nar_le64(const uint8_t *b)
{
	return (uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 | (uint64_t)b[3] << 24 |
	       (uint64_t)b[4] << 32 | (uint64_t)b[5] << 40 | (uint64_t)b[6] << 48 |
	       (uint64_t)b[7] << 56;
}

static inline void nar_put_le64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

/* Map a callback's non-zero return to the error code the parser reports. */
static inline int nar_cb_code(int rc)
{
	return rc < 0 && rc > CAIRN_ERR_MIN_ ? rc : CAIRN_ECANCELED;
}

/* Used by tests only, not part of the public API. */
/* Listing of a NAR in memory. */
int cairn_nar_ls_buffer(const void *nar, size_t len, size_t max_json, char **json, size_t *json_len,
			struct cairn_error *err);

#endif
