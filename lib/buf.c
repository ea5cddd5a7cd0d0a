#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/buf.h"
#include "cairn/banned.h"

void cairn_buf_init(struct cairn_buf *b, size_t max)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max;
}

void cairn_buf_release(struct cairn_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void cairn_buf_reset(struct cairn_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

static int buf_reserve(struct cairn_buf *b, size_t extra)
{
	if (extra > b->max || b->len > b->max - extra)
		return CAIRN_ELIMIT;
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = realloc(b->data, cap);
	if (!p)
		return CAIRN_ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int cairn_buf_append(struct cairn_buf *b, const void *data, size_t len)
{
	int rc = buf_reserve(b, len);
	if (rc)
		return rc;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int cairn_buf_putc(struct cairn_buf *b, char c)
{
	return cairn_buf_append(b, &c, 1);
}

int cairn_buf_puts(struct cairn_buf *b, const char *s)
{
	return cairn_buf_append(b, s, strlen(s));
}

int cairn_buf_vprintf(struct cairn_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return CAIRN_EINVAL;
	int rc = buf_reserve(b, (size_t)n);
	if (rc)
		return rc;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int cairn_buf_printf(struct cairn_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = cairn_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

char *cairn_buf_steal(struct cairn_buf *b, size_t *len)
{
	char *p = b->data;
	if (!p)
		p = calloc(1, 1);
	if (len)
		*len = p ? b->len : 0;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
