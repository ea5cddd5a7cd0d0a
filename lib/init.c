#include <gcrypt.h>
#include <sodium.h>

#include "cairn/cairn.h"
#include "cairn/error.h"

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
