/*
 * keys.c - the trusted key ring, narinfo verification and signing for
 * both ecosystems.  Rules in include/cairn/keys.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cairn/hash.h"
#include "cairn/keys.h"
#include "cairn/narinfo.h"
#include "cairn/banned.h"

_Static_assert(CAIRN_NARINFO_MAX_SIGS <= 32, "nix_sigs_ok has a bit per Sig line");

void cairn_keyring_init(struct cairn_keyring *kr)
{
	memset(kr, 0, sizeof(*kr));
}

void cairn_keyring_release(struct cairn_keyring *kr)
{
	free(kr->nix);
	free(kr->guix);
	cairn_keyring_init(kr);
}

static int ring_full(const struct cairn_keyring *kr, struct cairn_error *err)
{
	if (kr->n_nix + kr->n_guix >= CAIRN_KEYRING_MAX_KEYS)
		return cairn_error_set(err, CAIRN_ELIMIT, "keys: more than %d trusted keys",
				       CAIRN_KEYRING_MAX_KEYS);
	return 0;
}

int cairn_keyring_add_nix(struct cairn_keyring *kr, const struct cairn_nix_pubkey *pk,
			  struct cairn_error *err)
{
	for (size_t i = 0; i < kr->n_nix; i++)
		if (!strcmp(kr->nix[i].name, pk->name) && !memcmp(kr->nix[i].key, pk->key, 32))
			return 0;
	int rc = ring_full(kr, err);
	if (rc)
		return rc;
	struct cairn_nix_pubkey *p = realloc(kr->nix, (kr->n_nix + 1) * sizeof(*p));
	if (!p)
		return cairn_error_set(err, CAIRN_ENOMEM, "keys: out of memory");
	kr->nix = p;
	kr->nix[kr->n_nix++] = *pk;
	return 0;
}

int cairn_keyring_add_guix(struct cairn_keyring *kr, const struct cairn_guix_pubkey *pk,
			   struct cairn_error *err)
{
	for (size_t i = 0; i < kr->n_guix; i++)
		if (!memcmp(kr->guix[i].q, pk->q, sizeof(pk->q)))
			return 0;
	int rc = ring_full(kr, err);
	if (rc)
		return rc;
	struct cairn_guix_pubkey *p = realloc(kr->guix, (kr->n_guix + 1) * sizeof(*p));
	if (!p)
		return cairn_error_set(err, CAIRN_ENOMEM, "keys: out of memory");
	kr->guix = p;
	kr->guix[kr->n_guix++] = *pk;
	return 0;
}

static bool space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The word after the first '(' of s-expression text ("public-key", "acl"...). */
static bool sexp_head(const char *s, size_t len, const char *word)
{
	size_t i = 0, wl = strlen(word);
	while (i < len && space(s[i]))
		i++;
	if (i >= len || s[i] != '(')
		return false;
	i++;
	while (i < len && space(s[i]))
		i++;
	return len - i >= wl && !memcmp(s + i, word, wl) &&
	       (len - i == wl || space(s[i + wl]) || s[i + wl] == '(' || s[i + wl] == ')');
}

static bool is_sexp(const char *s, size_t len)
{
	size_t i = 0;
	while (i < len && space(s[i]))
		i++;
	return i < len && s[i] == '(';
}

int cairn_keyring_load(struct cairn_keyring *kr, const char *text, size_t len,
		       struct cairn_error *err)
{
	struct cairn_keyring add = CAIRN_KEYRING_INIT;
	int rc = 0;

	if (len > CAIRN_KEYFILE_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "keys: key file larger than %d bytes",
				       CAIRN_KEYFILE_MAX);
	if (is_sexp(text, len)) {
		if (sexp_head(text, len, "public-key")) {
			struct cairn_guix_pubkey pk;
			if ((rc = cairn_guix_pubkey_parse(text, len, &pk, err)))
				goto out;
			rc = cairn_keyring_add_guix(&add, &pk, err);
		} else if (sexp_head(text, len, "acl")) {
			struct cairn_guix_pubkey *keys = NULL;
			size_t n = 0;
			if ((rc = cairn_guix_acl_parse(text, len, &keys, &n, err)))
				goto out;
			for (size_t i = 0; !rc && i < n; i++)
				rc = cairn_keyring_add_guix(&add, &keys[i], err);
			free(keys);
		} else if (sexp_head(text, len, "key-data") ||
			   sexp_head(text, len, "private-key")) {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "keys: this is a Guix secret key, not a public key");
		} else {
			rc = cairn_error_set(
			    err, CAIRN_EFORMAT,
			    "keys: unknown s-expression (expected public-key or acl)");
		}
		goto out;
	}
	size_t i = 0;
	while (!rc && i < len) {
		if (space(text[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < len && !space(text[j]))
			j++;
		struct cairn_nix_pubkey pk;
		rc = cairn_nix_pubkey_parse(text + i, j - i, &pk, err);
		if (!rc)
			rc = cairn_keyring_add_nix(&add, &pk, err);
		i = j;
	}
	if (!rc && add.n_nix == 0)
		rc = cairn_error_set(err, CAIRN_EFORMAT, "keys: no key in the file");
out:
	if (!rc && add.n_nix + add.n_guix == 0)
		rc = cairn_error_set(err, CAIRN_EFORMAT, "keys: no key in the file");
	for (size_t k = 0; !rc && k < add.n_nix; k++)
		rc = cairn_keyring_add_nix(kr, &add.nix[k], err);
	for (size_t k = 0; !rc && k < add.n_guix; k++)
		rc = cairn_keyring_add_guix(kr, &add.guix[k], err);
	size_t total = add.n_nix + add.n_guix;
	cairn_keyring_release(&add);
	return rc ? rc : (int)total;
}

int cairn_seckey_parse(const char *text, size_t len, struct cairn_seckey *out,
		       struct cairn_error *err)
{
	struct cairn_seckey sk;
	int rc;
	memset(&sk, 0, sizeof(sk));
	if (is_sexp(text, len)) {
		if (sexp_head(text, len, "public-key"))
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "key: this is a Guix public key, not a secret key");
		sk.kind = CAIRN_KEY_GUIX;
		rc = cairn_guix_seckey_parse(text, len, &sk.u.guix, err);
	} else {
		sk.kind = CAIRN_KEY_NIX;
		rc = cairn_nix_seckey_parse(text, len, &sk.u.nix, err);
	}
	if (!rc)
		*out = sk;
	cairn_seckey_wipe(&sk);
	return rc;
}

void cairn_seckey_wipe(struct cairn_seckey *sk)
{
	sodium_memzero(sk, sizeof(*sk));
}

void cairn_keyring_key_name(const struct cairn_keyring *kr, const struct cairn_signer *s, char *out,
			    size_t outcap)
{
	if (s->kind == CAIRN_KEY_NIX) {
		snprintf(out, outcap, "%s", kr->nix[s->index].name);
	} else {
		char hex[65];
		cairn_base16_encode(kr->guix[s->index].q, 32, hex);
		hex[64] = '\0';
		snprintf(out, outcap, "guix:%s", hex);
	}
}

size_t cairn_keyring_aliases(const struct cairn_keyring *kr, struct cairn_buf *out)
{
	size_t n = 0;
	/* Quadratic, but the ring is bounded and this runs once at start-up. */
	for (size_t i = 0; i < kr->n_nix + kr->n_guix; i++) {
		const uint8_t *ki = i < kr->n_nix ? kr->nix[i].key : kr->guix[i - kr->n_nix].q;
		bool first = true, other = false;
		for (size_t j = 0; j < i && first; j++) {
			const uint8_t *kj = j < kr->n_nix ? kr->nix[j].key : kr->guix[j - kr->n_nix].q;
			if (!memcmp(ki, kj, 32))
				first = false;
		}
		if (!first)
			continue;
		for (size_t j = i + 1; j < kr->n_nix + kr->n_guix && !other; j++) {
			const uint8_t *kj = j < kr->n_nix ? kr->nix[j].key : kr->guix[j - kr->n_nix].q;
			other = !memcmp(ki, kj, 32);
		}
		if (!other)
			continue;
		n++;
		cairn_buf_puts(out, "one key is trusted under the names");
		for (size_t j = i; j < kr->n_nix + kr->n_guix; j++) {
			const uint8_t *kj = j < kr->n_nix ? kr->nix[j].key : kr->guix[j - kr->n_nix].q;
			if (memcmp(ki, kj, 32))
				continue;
			char name[128];
			struct cairn_signer s = {.kind = j < kr->n_nix ? CAIRN_KEY_NIX : CAIRN_KEY_GUIX,
						 .index = j < kr->n_nix ? j : j - kr->n_nix};
			cairn_keyring_key_name(kr, &s, name, sizeof(name));
			cairn_buf_printf(out, " '%s'", name);
		}
		cairn_buf_puts(out, "; it counts as one signer\n");
	}
	return n;
}

/* ---- verification ---- */

static int rank(int status)
{
	switch (status) {
	case 0: return 100;
	case CAIRN_ENOSIG: return 1;
	case CAIRN_EUNTRUSTED: return 2;
	case CAIRN_ESIGCORRUPT: return 3;
	case CAIRN_ESIG: return 4;
	case CAIRN_EHASH: return 5;
	default: return 6; /* could not check at all (unsupported, out of memory) */
	}
}

/* Keep the most telling failure seen so far, with its detail. */
static void note_failure(struct cairn_verify_result *res, int *worst, int code,
			 const struct cairn_error *e)
{
	if (rank(code) > rank(*worst) || *worst == CAIRN_ENOSIG) {
		*worst = code;
		snprintf(res->detail, sizeof(res->detail), "%s", cairn_error_msg(e));
	}
}

bool cairn_signer_same(const struct cairn_signer *a, const struct cairn_signer *b)
{
	return !memcmp(a->key, b->key, sizeof(a->key));
}

static void add_signer(struct cairn_verify_result *res, const struct cairn_keyring *kr,
		       enum cairn_key_kind kind, size_t index)
{
	struct cairn_signer s = {.kind = kind, .index = index};
	memcpy(s.key, kind == CAIRN_KEY_NIX ? kr->nix[index].key : kr->guix[index].q,
	       sizeof(s.key));
	for (size_t i = 0; i < res->n_signers; i++)
		if (cairn_signer_same(&res->signers[i], &s))
			return;
	if (res->n_signers < CAIRN_VERIFY_MAX_SIGNERS)
		res->signers[res->n_signers++] = s;
}

static int verify_nix(const struct cairn_narinfo *ni, const struct cairn_keyring *kr,
		      struct cairn_verify_result *res, int *worst)
{
	struct cairn_buf fp = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX * 2);
	struct cairn_error e;
	int rc = 0;

	cairn_error_init(&e);
	if ((rc = cairn_narinfo_fingerprint(ni, &fp, &e))) {
		note_failure(res, worst, rc == CAIRN_EINVAL ? CAIRN_ESIG : rc, &e);
		rc = 0;
		goto out;
	}
	for (size_t s = 0; s < ni->n_sigs; s++) {
		const char *sig = ni->sigs[s];
		size_t slen = strlen(sig), nlen;
		uint8_t raw[CAIRN_NIX_SIG_LEN];
		cairn_error_init(&e);
		int r = cairn_nix_sig_decode(sig, slen, &nlen, raw, &e);
		if (r) {
			note_failure(res, worst, r, &e);
			continue;
		}
		bool named = false, ok = false;
		for (size_t k = 0; k < kr->n_nix; k++) {
			if (strlen(kr->nix[k].name) != nlen || memcmp(kr->nix[k].name, sig, nlen))
				continue;
			named = true;
			cairn_error_init(&e);
			if (cairn_nix_verify(&kr->nix[k], fp.data, fp.len, sig, slen, &e) == 0) {
				add_signer(res, kr, CAIRN_KEY_NIX, k);
				res->nix_sigs_ok |= (uint32_t)1 << s;
				ok = true;
			}
		}
		if (!named) {
			cairn_error_init(&e);
			cairn_error_set(&e, CAIRN_EUNTRUSTED, "signed by untrusted key '%.*s'",
					(int)(nlen > 64 ? 64 : nlen), sig);
			note_failure(res, worst, CAIRN_EUNTRUSTED, &e);
		} else if (!ok) {
			cairn_error_init(&e);
			cairn_error_set(&e, CAIRN_ESIG,
					"signature by '%.*s' does not match the narinfo "
					"(StorePath, NarHash, NarSize or References changed?)",
					(int)(nlen > 64 ? 64 : nlen), sig);
			note_failure(res, worst, CAIRN_ESIG, &e);
		}
	}
out:
	cairn_buf_release(&fp);
	return rc;
}

static void verify_guix(const struct cairn_narinfo *ni, const struct cairn_keyring *kr,
			struct cairn_verify_result *res, int *worst)
{
	struct cairn_error e;
	cairn_error_init(&e);
	const char *v = ni->signature;
	size_t vlen = strlen(v);
	const char *s1 = memchr(v, ';', vlen);
	const char *s2 = s1 ? memchr(s1 + 1, ';', vlen - (size_t)(s1 + 1 - v)) : NULL;
	if (!s1 || !s2 || s1 - v != 1 || v[0] != '1' || s2 == s1 + 1) {
		cairn_error_set(&e, CAIRN_ESIGCORRUPT, "Signature is not '1;<host>;<base64>'");
		note_failure(res, worst, CAIRN_ESIGCORRUPT, &e);
		return;
	}
	if (!ni->store_path || !ni->nar_hash.algo || !ni->has_references) {
		cairn_error_set(&e, CAIRN_ENOSIG,
				"Signature does not cover StorePath, NarHash and References, "
				"so the narinfo counts as unsigned");
		note_failure(res, worst, CAIRN_ENOSIG, &e);
		return;
	}
	const char *b64 = s2 + 1;
	size_t blen = vlen - (size_t)(b64 - v), got = 0;
	uint8_t *sexp = NULL;
	if (blen > cairn_base64_len(CAIRN_GUIX_SEXP_MAX)) {
		cairn_error_set(&e, CAIRN_ESIGCORRUPT, "Signature longer than %d bytes",
				CAIRN_GUIX_SEXP_MAX);
		note_failure(res, worst, CAIRN_ESIGCORRUPT, &e);
		return;
	}
	sexp = malloc(CAIRN_GUIX_SEXP_MAX + 3);
	if (!sexp) {
		cairn_error_set(&e, CAIRN_ENOMEM, "out of memory");
		note_failure(res, worst, CAIRN_ENOMEM, &e);
		return;
	}
	if (cairn_base64_decode(b64, blen, sexp, CAIRN_GUIX_SEXP_MAX + 3, &got) != 0 ||
	    got > CAIRN_GUIX_SEXP_MAX) {
		cairn_error_set(&e, CAIRN_ESIGCORRUPT, "Signature is not valid base64");
		note_failure(res, worst, CAIRN_ESIGCORRUPT, &e);
		goto out;
	}
	size_t dlen = 0, signer = 0;
	const char *data = cairn_narinfo_signed_text(ni, &dlen);
	if (!data) {
		cairn_error_set(&e, CAIRN_ESIG, "no signed text for the Signature");
		note_failure(res, worst, CAIRN_ESIG, &e);
		goto out;
	}
	int r = cairn_guix_verify(data, dlen, (const char *)sexp, got, kr->guix, kr->n_guix,
				  &signer, &e);
	if (r == 0 && signer < kr->n_guix)
		add_signer(res, kr, CAIRN_KEY_GUIX, signer);
	else
		note_failure(res, worst, r ? r : CAIRN_ESIG, &e);
out:
	free(sexp);
}

int cairn_narinfo_verify(const struct cairn_narinfo *ni, const struct cairn_keyring *kr,
			 struct cairn_verify_result *res, struct cairn_error *err)
{
	int worst = CAIRN_ENOSIG;
	memset(res, 0, sizeof(*res));
	snprintf(res->detail, sizeof(res->detail), "narinfo has no signature");

	if (ni->n_sigs) {
		int rc = verify_nix(ni, kr, res, &worst);
		if (rc) {
			res->status = rc;
			return cairn_error_set(err, rc, "%s", res->detail);
		}
	}
	if (ni->signature)
		verify_guix(ni, kr, res, &worst);
	if (res->n_signers) {
		res->status = 0;
		res->detail[0] = '\0';
		return 0;
	}
	res->status = worst;
	return cairn_error_set(err, worst, "%s", res->detail);
}

/* ---- signing ---- */

static int sign_guix(struct cairn_narinfo *ni, const struct cairn_guix_seckey *sk, const char *host,
		     struct cairn_error *err)
{
	struct cairn_buf sexp = CAIRN_BUF_INIT(CAIRN_GUIX_SEXP_MAX);
	struct cairn_buf val = CAIRN_BUF_INIT(CAIRN_NARINFO_VALUE_MAX);
	char *old = NULL;
	char *b64 = NULL;
	int rc = 0;

	if (!host || !*host || strlen(host) > 255 || strpbrk(host, ";: \t\n\r"))
		return cairn_error_set(err, CAIRN_EINVAL,
				       "sign: a Guix signature needs a host name (no ';', ':' or "
				       "spaces)");
	if (!ni->has_references) {
		if (ni->parsed_)
			return cairn_error_set(err, CAIRN_EINVAL,
					       "sign: Guix would count a narinfo without a "
					       "References line as unsigned");
		cairn_narinfo_set_has_refs(ni);
	}
	if (ni->signature && !(old = strdup(ni->signature)))
		return cairn_error_set(err, CAIRN_ENOMEM, "sign: out of memory");
	/* A placeholder makes the narinfo compute the text before the Signature line. */
	if ((rc = cairn_narinfo_set_signature(ni, "1;pending;", err)))
		goto out;
	size_t dlen = 0;
	const char *data = cairn_narinfo_signed_text(ni, &dlen);
	if ((rc = cairn_guix_sign(sk, data, dlen, &sexp, err)))
		goto out;
	b64 = malloc(cairn_base64_len(sexp.len) + 1);
	if (!b64) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "sign: out of memory");
		goto out;
	}
	cairn_base64_encode((const uint8_t *)sexp.data, sexp.len, b64);
	if ((rc = cairn_buf_printf(&val, "1;%s;%s", host, b64))) {
		rc = cairn_error_set(err, rc, "sign: signature too long");
		goto out;
	}
	rc = cairn_narinfo_set_signature(ni, val.data, err);
out:
	if (rc) {
		if (old)
			cairn_narinfo_set_signature(ni, old, NULL);
		else
			cairn_narinfo_clear_signature(ni);
	}
	free(old);
	free(b64);
	cairn_buf_release(&sexp);
	cairn_buf_release(&val);
	return rc;
}

int cairn_narinfo_sign(struct cairn_narinfo *ni, const struct cairn_seckey *sk, const char *host,
		       struct cairn_error *err)
{
	if (sk->kind == CAIRN_KEY_GUIX)
		return sign_guix(ni, &sk->u.guix, host, err);
	if (sk->kind != CAIRN_KEY_NIX)
		return cairn_error_set(err, CAIRN_EINVAL, "sign: unknown key kind");
	struct cairn_buf fp = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX * 2);
	struct cairn_buf sig = CAIRN_BUF_INIT(CAIRN_NIX_KEYFILE_MAX);
	int rc = cairn_narinfo_fingerprint(ni, &fp, err);
	if (!rc)
		rc = cairn_nix_sign(&sk->u.nix, fp.data, fp.len, &sig, err);
	if (!rc)
		rc = cairn_narinfo_add_sig(ni, sig.data, err);
	cairn_buf_release(&fp);
	cairn_buf_release(&sig);
	return rc;
}
