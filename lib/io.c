/*
 * io.c - writing a whole buffer: every cache, replica and restore in
 * libcairn writes through this one loop, so a short write or an EINTR is
 * handled the same everywhere.
 */
#include <errno.h>
#include <unistd.h>

#include "cairn/error.h"
#include "cairn/io.h"
#include "cairn/banned.h"

int cairn_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			return CAIRN_EIO;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
