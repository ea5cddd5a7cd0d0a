/*
 * trust.c - the trust decision over several servers' narinfos for one
 * item.  Rules in include/cairn/trust.h.  Pure: no I/O, no clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/hash.h"
#include "cairn/narinfo.h"
#include "cairn/trust.h"
#include "cairn/banned.h"

static int strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Same NarHash, NarSize and set of References (refs given sorted). */
static bool same_claim(const struct cairn_narinfo *x, char **xr, const struct cairn_narinfo *y,
		       char **yr)
{
	if (x->nar_size != y->nar_size || !cairn_hash_equal(&x->nar_hash, &y->nar_hash) ||
	    x->n_refs != y->n_refs)
		return false;
	for (size_t i = 0; i < x->n_refs; i++)
		if (strcmp(xr[i], yr[i]))
			return false;
	return true;
}

bool cairn_trust_same_claim(const struct cairn_narinfo *a, const struct cairn_narinfo *b)
{
	if (a->nar_size != b->nar_size || !cairn_hash_equal(&a->nar_hash, &b->nar_hash) ||
	    a->n_refs != b->n_refs)
		return false;
	/* Sets: each of a's references is one of b's (none repeats in a store). */
	for (size_t i = 0; i < a->n_refs; i++) {
		bool found = false;
		for (size_t j = 0; j < b->n_refs && !found; j++)
			found = !strcmp(a->refs[i], b->refs[j]);
		if (!found)
			return false;
	}
	return true;
}

/* The signer table is full (64 distinct keys signed one item). */
#define NO_SLOT (-1)

/* The index of signer s in the verdict's table, added when new; -1 full. */
static int signer_slot(struct cairn_trust_verdict *v, const struct cairn_signer *s)
{
	for (size_t i = 0; i < v->n_signers; i++)
		if (cairn_signer_same(&v->signers[i], s))
			return (int)i;
	if (v->n_signers >= CAIRN_VERIFY_MAX_SIGNERS)
		return NO_SLOT;
	v->signers[v->n_signers] = *s;
	return (int)v->n_signers++;
}

static size_t popcount64(uint64_t x)
{
	size_t n = 0;
	for (; x; x &= x - 1)
		n++;
	return n;
}

static bool ca_recomputes(const struct cairn_narinfo *ni, const struct cairn_store_path *sp,
			  const char *store_dir)
{
	struct cairn_ca ca;
	if (cairn_ca_parse(ni->ca, strlen(ni->ca), &ca, NULL))
		return false;
	/* The content check (cairn_ca_verify_*) supports sha256 only. */
	if (ca.hash.algo != CAIRN_HASH_SHA256 || ca.method == CAIRN_CA_GIT)
		return false;
	struct cairn_store_path *refs = calloc(ni->n_refs + 1, sizeof(*refs));
	bool ok = refs != NULL;
	for (size_t i = 0; ok && i < ni->n_refs; i++)
		ok = !cairn_store_path_parse_base(ni->refs[i], strlen(ni->refs[i]), &refs[i], NULL);
	ok = ok && !cairn_ca_check_path(&ca, sp, refs, ni->n_refs, store_dir, NULL);
	free(refs);
	return ok;
}

/* Check one answer; 0 when it can be grouped, CAIRN_EFORMAT when not. */
static int check_answer(struct cairn_trust_answer *a, const char *path,
			const struct cairn_store_path *sp, const struct cairn_trust_policy *pol,
			struct cairn_trust_verdict *v)
{
	const struct cairn_narinfo *ni = a->ni;
	if (!ni) {
		snprintf(a->why, sizeof(a->why), "no narinfo");
		return CAIRN_EFORMAT;
	}
	if (strcmp(ni->store_path, path)) {
		snprintf(a->why, sizeof(a->why), "narinfo is for %s, not the path asked for",
			 ni->store_path);
		return CAIRN_EFORMAT;
	}
	if (ni->nar_hash.algo != CAIRN_HASH_SHA256 || ni->nar_size == 0) {
		snprintf(a->why, sizeof(a->why), "NarHash is not sha256 or NarSize is 0");
		return CAIRN_EFORMAT;
	}
	if (ni->n_urls == 0) {
		snprintf(a->why, sizeof(a->why), "narinfo has no URL");
		return CAIRN_EFORMAT;
	}
	struct cairn_verify_result vr;
	int rc = cairn_narinfo_verify(ni, pol->keys, &vr, NULL);
	if (rc && rc != CAIRN_ENOSIG && rc != CAIRN_EUNTRUSTED && rc != CAIRN_ESIG &&
	    rc != CAIRN_ESIGCORRUPT && rc != CAIRN_EHASH)
		return rc; /* could not check at all */
	a->status = vr.status;
	a->sigs_ok = vr.nix_sigs_ok;
	if (vr.status)
		snprintf(a->why, sizeof(a->why), "%s",
			 vr.detail[0] ? vr.detail : cairn_strerror(vr.status));
	for (size_t i = 0; !vr.status && i < vr.n_signers; i++) {
		int slot = signer_slot(v, &vr.signers[i]);
		if (slot >= 0)
			a->signers |= (uint64_t)1 << slot;
	}
	if (ni->ca && pol->store_dir)
		a->ca_ok = ca_recomputes(ni, sp, pol->store_dir);
	return 0;
}

void cairn_trust_describe_group(const struct cairn_trust_answer *ans, size_t n,
				const struct cairn_trust_verdict *v, size_t g,
				const struct cairn_keyring *keys, struct cairn_buf *b)
{
	const struct cairn_trust_group *gr = &v->groups[g];
	bool first = true;
	for (size_t i = 0; i < n; i++)
		if (ans[i].group == (int)g) {
			cairn_buf_printf(b, "%s%s", first ? "" : ", ", ans[i].server);
			first = false;
		}
	cairn_buf_puts(b, " (signed by ");
	size_t shown = 0;
	for (size_t s = 0; s < v->n_signers; s++) {
		if (!(gr->signers & ((uint64_t)1 << s)))
			continue;
		char name[128];
		cairn_keyring_key_name(keys, &v->signers[s], name, sizeof(name));
		cairn_buf_printf(b, "%s%s", shown++ ? ", " : "", name);
	}
	if (!shown)
		cairn_buf_puts(b, "unsigned");
	const struct cairn_narinfo *ni = ans[gr->first].ni;
	char h[CAIRN_HASH_STR_MAX];
	cairn_hash_format(&ni->nar_hash, CAIRN_HASH_NIX32, h, sizeof(h));
	cairn_buf_printf(b, ") claim NarHash %s, NarSize %llu, %zu references", h,
			 (unsigned long long)ni->nar_size, ni->n_refs);
}

static void fail(struct cairn_trust_verdict *v, int code, const char *msg)
{
	v->status = code;
	snprintf(v->reason, sizeof(v->reason), "%s", msg);
}

int cairn_trust_decide(struct cairn_trust_answer *ans, size_t n, const char *path,
		       const struct cairn_store_path *sp, const struct cairn_trust_policy *pol,
		       struct cairn_trust_verdict *v)
{
	char **sorted[CAIRN_TRUST_MAX_ANSWERS] = {0};
	int worst = CAIRN_ENOENT;
	unsigned k = pol->require_sigs ? pol->require_sigs : 1;

	memset(v, 0, sizeof(*v));
	v->chosen = -1;
	if (n > CAIRN_TRUST_MAX_ANSWERS) {
		fail(v, CAIRN_EINVAL, "more answers than the trust decision takes");
		return v->status;
	}
	for (size_t i = 0; i < n; i++) {
		struct cairn_trust_answer *a = &ans[i];
		a->group = -1;
		a->status = CAIRN_ENOSIG;
		a->ca_ok = false;
		a->sigs_ok = 0;
		a->signers = 0;
		a->why[0] = '\0';
		if (a->state == CAIRN_TRUST_INVALID || a->state == CAIRN_TRUST_ERROR)
			snprintf(a->why, sizeof(a->why), "%s", a->error ? a->error : "error");
		if (a->state == CAIRN_TRUST_INVALID)
			a->status = CAIRN_EFORMAT;
		else if (a->state == CAIRN_TRUST_ERROR)
			a->status = CAIRN_ENET;
		else if (a->state == CAIRN_TRUST_ABSENT)
			a->status = CAIRN_ENOENT;
		if (a->state == CAIRN_TRUST_INVALID)
			worst = CAIRN_EFORMAT;
		if (a->state != CAIRN_TRUST_PRESENT)
			continue;
		int rc = check_answer(a, path, sp, pol, v);
		if (rc == CAIRN_EFORMAT) {
			a->status = rc;
			worst = CAIRN_EFORMAT;
			continue;
		}
		if (rc) {
			fail(v, rc, "cannot check the signatures");
			goto out;
		}
		if (a->status && worst != CAIRN_EFORMAT)
			worst = a->status;
		const struct cairn_narinfo *ni = a->ni;
		sorted[i] = malloc((ni->n_refs + 1) * sizeof(char *));
		if (!sorted[i]) {
			fail(v, CAIRN_ENOMEM, "out of memory");
			goto out;
		}
		if (ni->n_refs)
			memcpy(sorted[i], ni->refs, ni->n_refs * sizeof(char *));
		qsort(sorted[i], ni->n_refs, sizeof(char *), strp_cmp);
		size_t g;
		for (g = 0; g < v->n_groups; g++) {
			size_t f = v->groups[g].first;
			if (same_claim(ans[f].ni, sorted[f], ni, sorted[i]))
				break;
		}
		if (g == v->n_groups) {
			v->groups[g].first = i;
			v->n_groups++;
		}
		a->group = (int)g;
		v->groups[g].signers |= a->signers;
		v->groups[g].ca_ok |= a->ca_ok;
	}
	for (size_t g = 0; g < v->n_groups; g++)
		v->groups[g].n_signers = popcount64(v->groups[g].signers);

	size_t n_signed = 0;
	for (size_t g = 0; g < v->n_groups; g++)
		n_signed += v->groups[g].n_signers > 0;
	if (k > 1 && n_signed > 1) {
		struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_TRUST_REASON_MAX - 1);
		cairn_buf_puts(&b, "servers disagree: ");
		size_t shown = 0;
		for (size_t g = 0; g < v->n_groups; g++) {
			if (!v->groups[g].n_signers)
				continue;
			if (shown++)
				cairn_buf_puts(&b, "; but ");
			cairn_trust_describe_group(ans, n, v, g, pol->keys, &b);
		}
		fail(v, CAIRN_EHASH, b.data ? b.data : "servers disagree");
		cairn_buf_release(&b);
		goto out;
	}
	/* Groups are numbered in answer order: the first acceptable one is
	 * the preferred server's. */
	for (size_t g = 0; g < v->n_groups && v->chosen < 0; g++)
		if (v->groups[g].n_signers >= k || v->groups[g].ca_ok)
			v->chosen = (int)g;
	if (v->chosen < 0) {
		bool any_present = false, any_absent = false;
		size_t best = 0, best_g = 0;
		for (size_t i = 0; i < n; i++) {
			any_present |= ans[i].state == CAIRN_TRUST_PRESENT;
			any_absent |= ans[i].state == CAIRN_TRUST_ABSENT;
		}
		for (size_t g = 0; g < v->n_groups; g++)
			if (v->groups[g].n_signers > best) {
				best = v->groups[g].n_signers;
				best_g = g;
			}
		if (!any_present) {
			fail(v, any_absent ? CAIRN_ENOENT : CAIRN_ENET,
			     any_absent ? "no server has it" : "no server could be asked");
		} else if (best > 0) {
			struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_TRUST_REASON_MAX - 1);
			cairn_buf_printf(&b, "not enough signatures: %zu of %u required (", best, k);
			cairn_trust_describe_group(ans, n, v, best_g, pol->keys, &b);
			cairn_buf_puts(&b, ")");
			fail(v, CAIRN_EUNTRUSTED, b.data ? b.data : "not enough signatures");
			cairn_buf_release(&b);
		} else if (v->n_groups == 0) {
			fail(v, CAIRN_EFORMAT, "no usable narinfo");
		} else {
			fail(v,
			     worst == CAIRN_EFORMAT || worst == CAIRN_ENOENT ? CAIRN_ENOSIG : worst,
			     "no trusted signature");
		}
		goto out;
	}
	const struct cairn_trust_group *gr = &v->groups[v->chosen];
	v->ni = ans[gr->first].ni;
	if (gr->n_signers < k) {
		v->by_ca = true;
		for (size_t i = 0; i < n; i++)
			if (ans[i].group == v->chosen && ans[i].ca_ok) {
				cairn_ca_parse(ans[i].ni->ca, strlen(ans[i].ni->ca), &v->ca, NULL);
				break;
			}
	}
out:
	for (size_t i = 0; i < n; i++)
		free(sorted[i]);
	return v->status;
}
