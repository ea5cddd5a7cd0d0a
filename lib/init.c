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
		 * A small secure-memory pool so libgcrypt's own copies of a
		 * Guix secret scalar are wiped when freed; without mlock
		 * rights it still works, so its warnings are noise.
		 */
		gcry_control(GCRYCTL_DISABLE_SECMEM_WARN);
		gcry_control(GCRYCTL_INIT_SECMEM, 32768, 0);
		gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
	}
	return 0;
}
