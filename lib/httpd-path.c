/*
 * httpd-path.c - URL path to relative file name, refusing anything that
 * could leave the served directory.
 *
 * The check runs on the decoded name, segment by segment, so "..",
 * "%2e%2e", ".%2E" and "%2E." all fail the same way; an encoded '/' or '\'
 * is refused outright rather than decoded into a separator, because
 * "a%2f..%2fb" means one odd segment to some servers and a traversal to
 * others.  No I/O here: the caller opens the result beneath a directory fd.
 */
#include <string.h>

#include "cairn/httpd.h"
#include "cairn/banned.h"

#define NOT_HEX (-1)

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return NOT_HEX;
}

int cairn_httpd_safe_path(const char *urlpath, size_t len, char *out, size_t outsize,
			  struct cairn_error *err)
{
	size_t o = 0, seg = 0;

	if (!urlpath || !out || outsize == 0)
		return cairn_error_set(err, CAIRN_EINVAL, "httpd: bad arguments to safe_path");
	if (len == 0)
		return cairn_error_set(err, CAIRN_EUNSAFE, "httpd: empty file name");
	if (urlpath[0] == '/')
		return cairn_error_set(err, CAIRN_EUNSAFE, "httpd: absolute file name");
	for (size_t i = 0; i <= len; i++) {
		int c;
		if (i == len) {
			c = '/'; /* closes the last segment */
		} else if (urlpath[i] == '%') {
			if (i + 2 >= len)
				return cairn_error_set(err, CAIRN_EFORMAT,
						       "httpd: truncated percent escape in path");
			int hi = hexval(urlpath[i + 1]), lo = hexval(urlpath[i + 2]);
			if (hi < 0 || lo < 0)
				return cairn_error_set(err, CAIRN_EFORMAT,
						       "httpd: bad percent escape in path");
			c = hi * 16 + lo;
			i += 2;
			if (c == '/' || c == '\\')
				return cairn_error_set(err, CAIRN_EUNSAFE,
						       "httpd: encoded separator in path");
			if (c == 0)
				return cairn_error_set(err, CAIRN_EUNSAFE, "httpd: NUL in path");
		} else {
			c = (unsigned char)urlpath[i];
			if (c == 0)
				return cairn_error_set(err, CAIRN_EUNSAFE, "httpd: NUL in path");
			if (c == '\\')
				return cairn_error_set(err, CAIRN_EUNSAFE,
						       "httpd: backslash in path");
		}
		if (c < 0x20 || c == 0x7f)
			return cairn_error_set(err, CAIRN_EUNSAFE,
					       "httpd: control character in path");
		if (c == '/') {
			size_t sl = o - seg;
			if (sl == 0)
				return cairn_error_set(err, CAIRN_EUNSAFE,
						       "httpd: empty path segment");
			if ((sl == 1 && out[seg] == '.') ||
			    (sl == 2 && out[seg] == '.' && out[seg + 1] == '.'))
				return cairn_error_set(err, CAIRN_EUNSAFE,
						       "httpd: '.' or '..' in path");
			if (i == len)
				break;
		}
		if (o + 1 >= outsize)
			return cairn_error_set(err, CAIRN_ELIMIT,
					       "httpd: path longer than %zu bytes", outsize - 1);
		out[o++] = (char)c;
		if (c == '/')
			seg = o;
	}
	out[o] = '\0';
	return 0;
}
