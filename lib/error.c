#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/error.h"
#include "cairn/banned.h"

const char *cairn_strerror(int code)
{
	switch (code) {
	case CAIRN_OK: return "success";
	case CAIRN_ENOMEM: return "out of memory";
	case CAIRN_EINVAL: return "invalid argument";
	case CAIRN_EIO: return "input/output error";
	case CAIRN_EFORMAT: return "malformed input";
	case CAIRN_ELIMIT: return "limit exceeded";
	case CAIRN_ETRUNCATED: return "input truncated";
	case CAIRN_EHASH: return "hash mismatch";
	case CAIRN_ESIG: return "invalid signature";
	case CAIRN_ENOSIG: return "no signature";
	case CAIRN_EUNTRUSTED: return "signed by an untrusted key";
	case CAIRN_ESIGCORRUPT: return "corrupt signature";
	case CAIRN_EUNSUPPORTED: return "not supported";
	case CAIRN_EEXIST: return "already exists";
	case CAIRN_ENOENT: return "not found";
	case CAIRN_EUNSAFE: return "unsafe path";
	case CAIRN_ENET: return "network error";
	case CAIRN_ECRYPTO: return "cryptography library error";
	case CAIRN_ECANCELED: return "canceled";
	case CAIRN_EBUSY: return "locked by another process";
	default: return "unknown error";
	}
}

void cairn_error_init(struct cairn_error *err)
{
	if (!err)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}

__attribute__((format(printf, 4, 0)))
static int error_vset(struct cairn_error *err, int code, int errnum,
		      const char *fmt, va_list ap)
{
	if (!err || err->code != 0)
		return code;
	err->code = code;
	int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	if (n < 0)
		err->msg[0] = '\0';
	if (errnum) {
		size_t used = strlen(err->msg);
		snprintf(err->msg + used, sizeof(err->msg) - used, ": %s",
			 strerror(errnum));
	}
	return code;
}

int cairn_error_set(struct cairn_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_vset(err, code, 0, fmt, ap);
	va_end(ap);
	return code;
}

int cairn_error_errno(struct cairn_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	int code = errnum == ENOMEM ? CAIRN_ENOMEM : CAIRN_EIO;
	va_start(ap, fmt);
	error_vset(err, code, errnum, fmt, ap);
	va_end(ap);
	return code;
}

const char *cairn_error_msg(const struct cairn_error *err)
{
	if (!err)
		return "";
	if (err->msg[0])
		return err->msg;
	return cairn_strerror(err->code);
}

void cairn_bug(const char *file, int line, const char *fmt, ...)
{
	/* The one place the library prints and stops: its own code is wrong,
	 * and going on could do worse than stopping. */
	va_list ap;
	fprintf(stderr, "BUG: %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}
