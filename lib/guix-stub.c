/*
 * guix-stub.c - stands in for guix.c until it lands, so that libcairn links.
 * Every function reports CAIRN_EUNSUPPORTED; lib/meson.build compiles this
 * file only when guix.c does not exist.  Delete it once guix.c is in main.
 */
#include <string.h>

#include "cairn/guix.h"

static int unsupported(struct cairn_error *err)
{
	return cairn_error_set(err, CAIRN_EUNSUPPORTED, "guix: Guix keys are not built in yet");
}

int cairn_guix_pubkey_parse(const char *text, size_t len, struct cairn_guix_pubkey *out,
			    struct cairn_error *err)
{
	(void)text, (void)len, (void)out;
	return unsupported(err);
}

int cairn_guix_seckey_parse(const char *text, size_t len, struct cairn_guix_seckey *out,
			    struct cairn_error *err)
{
	(void)text, (void)len, (void)out;
	return unsupported(err);
}

int cairn_guix_key_generate(struct cairn_guix_seckey *out, struct cairn_error *err)
{
	(void)out;
	return unsupported(err);
}

void cairn_guix_seckey_public(const struct cairn_guix_seckey *sk, struct cairn_guix_pubkey *out)
{
	memcpy(out->q, sk->q, sizeof(out->q));
}

void cairn_guix_seckey_wipe(struct cairn_guix_seckey *sk)
{
	memset(sk, 0, sizeof(*sk));
}

int cairn_guix_pubkey_format(const struct cairn_guix_pubkey *pk, struct cairn_buf *out)
{
	(void)pk, (void)out;
	return CAIRN_EUNSUPPORTED;
}

int cairn_guix_seckey_format(const struct cairn_guix_seckey *sk, struct cairn_buf *out)
{
	(void)sk, (void)out;
	return CAIRN_EUNSUPPORTED;
}

int cairn_guix_acl_parse(const char *text, size_t len, struct cairn_guix_pubkey **keys,
			 size_t *n_keys, struct cairn_error *err)
{
	(void)text, (void)len, (void)keys, (void)n_keys;
	return unsupported(err);
}

int cairn_guix_acl_format(const struct cairn_guix_pubkey *keys, size_t n_keys,
			  struct cairn_buf *out)
{
	(void)keys, (void)n_keys, (void)out;
	return CAIRN_EUNSUPPORTED;
}

int cairn_guix_sign(const struct cairn_guix_seckey *sk, const void *data, size_t len,
		    struct cairn_buf *out, struct cairn_error *err)
{
	(void)sk, (void)data, (void)len, (void)out;
	return unsupported(err);
}

int cairn_guix_verify(const void *data, size_t len, const char *sig_sexp, size_t sig_len,
		      const struct cairn_guix_pubkey *trusted, size_t n_trusted, size_t *signer,
		      struct cairn_error *err)
{
	(void)data, (void)len, (void)sig_sexp, (void)sig_len, (void)trusted, (void)n_trusted,
	    (void)signer;
	return unsupported(err);
}
