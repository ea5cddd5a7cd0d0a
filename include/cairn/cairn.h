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

#endif
