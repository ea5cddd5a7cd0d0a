/*
 * cairn.h - library-wide set-up.  Include the module headers you use
 * (cairn/hash.h, cairn/nar.h, ...) directly; this one only has what
 * concerns the library as a whole.
 */
#ifndef CAIRN_CAIRN_H
#define CAIRN_CAIRN_H

#define CAIRN_VERSION "0.1.0"

/*
 * Initialise the crypto libraries (libsodium, libgcrypt).  Call once before
 * any other libcairn function; safe to call again.  Returns 0 or
 * CAIRN_ECRYPTO.
 */
int cairn_init(void);

struct cairn_error;

/*
 * Raise the soft limit on open files (RLIMIT_NOFILE) to the hard limit:
 * the soft limit of 1024 that systemd and most shells give is there for
 * programs using select(), and cairn uses only poll and epoll.  A server
 * holds a descriptor per connection and a fetch one per item in flight, so
 * they would otherwise hit a limit the administrator did not choose.
 * cairn_httpd_start does it; `cairn fetch` calls it.  Returns 0, or
 * CAIRN_EIO when the limit could not be read or raised (it stays as it
 * was).
 */
int cairn_fd_limit_raise(struct cairn_error *err);

#endif
