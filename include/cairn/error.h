/*
 * error.h - the one error convention of libcairn.
 *
 * Every fallible function returns 0 (or a non-negative count) on success and
 * a negative `enum cairn_err` on failure.  Functions that can say more take an
 * optional `struct cairn_error *` as their last argument (NULL is allowed) and
 * fill it with the code and a one-line, lowercase detail message that names
 * what failed and why ("nar: entry name '..' is not allowed").  Output
 * parameters are written only on success.  The library never prints and never
 * exits; turning errors into messages and exit codes is the program's job.
 */
#ifndef CAIRN_ERROR_H
#define CAIRN_ERROR_H

#include <stddef.h>

enum cairn_err {
	CAIRN_OK = 0,
	CAIRN_ENOMEM = -1,      /* out of memory */
	CAIRN_EINVAL = -2,      /* invalid argument (API misuse) */
	CAIRN_EIO = -3,         /* operating-system I/O error; detail has errno text */
	CAIRN_EFORMAT = -4,     /* malformed input */
	CAIRN_ELIMIT = -5,      /* a size, count or depth bound was exceeded */
	CAIRN_ETRUNCATED = -6,  /* input ended early */
	CAIRN_EHASH = -7,       /* content hash or size does not match */
	CAIRN_ESIG = -8,        /* signature present but invalid */
	CAIRN_ENOSIG = -9,      /* no signature where one is required */
	CAIRN_EUNTRUSTED = -10, /* signed, but not by a trusted key */
	CAIRN_ESIGCORRUPT = -11,/* signature cannot be decoded */
	CAIRN_EUNSUPPORTED = -12,/* valid but not supported (algorithm, compression) */
	CAIRN_EEXIST = -13,     /* target already exists */
	CAIRN_ENOENT = -14,     /* no such item */
	CAIRN_EUNSAFE = -15,    /* would write outside the target or through a link */
	CAIRN_ENET = -16,       /* network or protocol error */
	CAIRN_ECRYPTO = -17,    /* crypto library failure */
	CAIRN_ECANCELED = -18,  /* a callback asked to stop */
	CAIRN_EBUSY = -19,      /* locked by another process beyond the wait allowed */
	CAIRN_ERR_MIN_ = -20
};

#define CAIRN_ERROR_MSG_MAX 256

struct cairn_error {
	int code;                       /* 0 or a negative enum cairn_err */
	char msg[CAIRN_ERROR_MSG_MAX];  /* detail; "" when none */
};

/* A short, static description of an error code ("malformed input"). */
const char *cairn_strerror(int code);

/*
 * Record an error in *err (when err is not NULL) and return code, so that
 * `return cairn_error_set(err, CAIRN_EFORMAT, "nar: bad magic");` is the
 * usual way to fail.  The first error recorded wins: a later call on an err
 * that already holds an error keeps the original detail, because the first
 * failure is the cause and later ones are consequences.
 */
int cairn_error_set(struct cairn_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like cairn_error_set, but with strerror(errnum) appended after ": ". */
int cairn_error_errno(struct cairn_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Reset to "no error". */
void cairn_error_init(struct cairn_error *err);

/* The detail message, or cairn_strerror(code) when there is none. */
const char *cairn_error_msg(const struct cairn_error *err);

/*
 * Callbacks (the NAR parser's, the HTTP client's, the survey's, a codec's
 * output): return 0 to go on, or a negative enum cairn_err to stop; the
 * caller stops and reports that code (CAIRN_ECANCELED to stop without a
 * failure of one's own).
 */

/*
 * A broken invariant of cairn's own code, never of its input: say where
 * and stop the program.  Bad input is an error code, never a BUG().
 */
#define BUG(...) cairn_bug(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void cairn_bug(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
