/*
 * paths-list.c - a list of store paths (paths-list.h): the one reader of
 * `--paths` for sync and the monitor, plain or xz.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cairn/codec.h"
#include "cairn/paths-list.h"
#include "cairn/banned.h"

bool cairn_paths_list_is_url(const char *where)
{
	return !strncmp(where, "http://", 7) || !strncmp(where, "https://", 8);
}

int cairn_paths_list_file(const char *file, struct cairn_buf *out, struct cairn_error *err)
{
	FILE *f = fopen(file, "rbe");
	char b[65536];
	size_t n;
	int rc = 0;
	if (!f)
		return cairn_error_errno(err, errno, "cannot read the path list '%s'", file);
	while (rc == 0 && (n = fread(b, 1, sizeof(b), f)) > 0)
		if (cairn_buf_append(out, b, n) < 0)
			rc = cairn_error_set(err, CAIRN_ELIMIT, "the path list '%s' is too large",
					     file);
	if (rc == 0 && ferror(f))
		rc = cairn_error_errno(err, errno, "cannot read the path list '%s'", file);
	fclose(f);
	return rc;
}

static int put_buf(void *ctx, const void *data, size_t len)
{
	return cairn_buf_append(ctx, data, len) ? CAIRN_ELIMIT : 0;
}

static int each_line(const char *t, size_t len, int (*fn)(void *ctx, const char *path),
		     void *ctx, struct cairn_error *err)
{
	size_t i = 0;
	while (i < len) {
		size_t e = i;
		while (e < len && t[e] != '\n')
			e++;
		size_t l = e - i;
		while (l && (t[i + l - 1] == '\r' || t[i + l - 1] == ' ' || t[i + l - 1] == '\t'))
			l--;
		if (l && t[i] != '#') {
			char line[CAIRN_PATHS_LIST_LINE_MAX];
			if (l >= sizeof(line))
				return cairn_error_set(err, CAIRN_ELIMIT,
						       "a line of the path list is longer than %d bytes",
						       CAIRN_PATHS_LIST_LINE_MAX - 1);
			memcpy(line, t + i, l);
			line[l] = '\0';
			int rc = fn(ctx, line);
			if (rc < 0)
				return rc;
		}
		i = e + 1;
	}
	return 0;
}

int cairn_paths_list_each(const void *raw, size_t len, size_t max,
			  int (*fn)(void *ctx, const char *path), void *ctx,
			  struct cairn_error *err)
{
	static const unsigned char xz_magic[6] = {0xfd, '7', 'z', 'X', 'Z', 0};
	if (len < 6 || memcmp(raw, xz_magic, 6) != 0)
		return each_line(raw ? raw : "", len, fn, ctx, err);
	struct cairn_buf text = CAIRN_BUF_INIT(max);
	struct cairn_codec *c = NULL;
	int rc = cairn_codec_new(&c, CAIRN_CODEC_XZ, CAIRN_CODEC_DECOMPRESS,
				 CAIRN_CODEC_LEVEL_DEFAULT, max, err);
	if (rc == 0)
		rc = cairn_codec_write(c, raw, len, put_buf, &text, err);
	if (rc == 0)
		rc = cairn_codec_finish(c, put_buf, &text, err);
	cairn_codec_free(c);
	if (rc == 0)
		rc = each_line(text.data ? text.data : "", text.len, fn, ctx, err);
	cairn_buf_release(&text);
	return rc;
}
