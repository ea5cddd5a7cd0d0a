/*
 * buf.h - a growable byte buffer with a hard maximum size.
 *
 * Every buffer that holds bytes from the network or a file is created with
 * the largest size it may reach; appending past it fails with CAIRN_ELIMIT
 * instead of growing without bound.  The data is always NUL-terminated (the
 * NUL is not counted in len) so text can be used directly.
 */
#ifndef CAIRN_BUF_H
#define CAIRN_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "cairn/error.h"

struct cairn_buf {
	char *data;   /* NULL until the first append */
	size_t len;
	size_t cap;
	size_t max;   /* appends that would make len exceed max fail */
};

#define CAIRN_BUF_INIT(maxsize) { NULL, 0, 0, (maxsize) }

void cairn_buf_init(struct cairn_buf *b, size_t max);
/* Free the contents; the buffer is left empty and usable (same max). */
void cairn_buf_release(struct cairn_buf *b);
/* Forget the contents but keep the allocation. */
void cairn_buf_reset(struct cairn_buf *b);
int cairn_buf_append(struct cairn_buf *b, const void *data, size_t len);
int cairn_buf_putc(struct cairn_buf *b, char c);
int cairn_buf_puts(struct cairn_buf *b, const char *s);
int cairn_buf_printf(struct cairn_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int cairn_buf_vprintf(struct cairn_buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/*
 * Hand the contents to the caller (free() it); *len gets the length when
 * len is not NULL.  Returns an empty allocated string for an empty buffer,
 * NULL only when that allocation fails.  The buffer is left empty.
 */
char *cairn_buf_steal(struct cairn_buf *b, size_t *len);

#endif
