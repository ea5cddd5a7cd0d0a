/*
 * io.h - the one loop that writes a whole buffer to a file descriptor
 * (lib/io.c).
 */
#ifndef CAIRN_IO_H
#define CAIRN_IO_H

#include <stddef.h>

/*
 * Write all of data[0..len) to fd, again after EINTR and short writes.
 * 0, or CAIRN_EIO with errno saying why (ENOSPC when write() made no
 * progress without saying why), for the caller's cairn_error_errno.
 */
int cairn_write_all(int fd, const void *data, size_t len);

#endif
