#include <errno.h>
#include <gcrypt.h>
#include <sodium.h>
#include <sys/resource.h>

#include "cairn/cairn.h"
#include "cairn/error.h"
#include "cairn/banned.h"

int cairn_init(void)
{
	if (sodium_init() < 0)
		return CAIRN_ECRYPTO;
	if (!gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P)) {
		/* Guix's signatures need libgcrypt 1.6 or later (Ed25519 ECDSA). */
		if (!gcry_check_version("1.6.0"))
			return CAIRN_ECRYPTO;
		/*
		 * No secure-memory pool: libgcrypt allocates it lazily and never
		 * frees it, which LeakSanitizer reports in every test.  guix.c
		 * wipes its own copies of secret scalars.
		 */
		gcry_control(GCRYCTL_DISABLE_SECMEM, 0);
		gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
	}
	return 0;
}

/* Linux's default fs.nr_open: no soft limit may exceed it, even under an
 * unlimited hard limit. */
#define NR_OPEN_DEFAULT 1048576

int cairn_fd_limit_raise(struct cairn_error *err)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return cairn_error_errno(err, errno, "cannot read the open-file limit");
	if (rl.rlim_cur == rl.rlim_max)
		return 0;
	rlim_t want = rl.rlim_max;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		return 0;
	if (want == RLIM_INFINITY && NR_OPEN_DEFAULT > rl.rlim_cur) {
		rl.rlim_cur = NR_OPEN_DEFAULT;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			return 0;
	}
	return cairn_error_errno(err, errno, "cannot raise the open-file limit to %llu",
				 (unsigned long long)want);
}
