/*
 * edge-trust.c - from what the mirror's upstreams answered to the narinfo
 * it serves.  See edge-trust.h; the rules are lib/trust.c's.
 */
#include <stdlib.h>
#include <string.h>

#include "cairn/error.h"
#include "cairn/narinfo.h"
#include "cairn/storepath.h"
#include "edge-trust.h"
#include "cairn/banned.h"

/* The store directory of path, for CA checks: what comes before its last '/'. */
static void store_dir_of(const char *path, char *out, size_t cap)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	if (n >= cap)
		n = 0;
	memcpy(out, path, n);
	out[n] = '\0';
}

static int decide_for(const struct edge_answer *ans, size_t n, const char *path,
		      const struct cairn_keyring *keys, unsigned k, struct cairn_trust_answer *ta,
		      struct cairn_trust_verdict *v)
{
	struct cairn_store_path sp;
	char dir[CAIRN_STORE_PATH_MAX];
	memset(&sp, 0, sizeof(sp));
	store_dir_of(path, dir, sizeof(dir));
	/* An unparsable name makes every answer for it unusable, not a
	 * failure to decide: the CA check is then the one thing skipped. */
	bool parsed = path[0] && !cairn_store_path_parse(path, strlen(path), NULL, &sp, NULL);
	for (size_t i = 0; i < n; i++) {
		memset(&ta[i], 0, sizeof(ta[i]));
		ta[i].server = ans[i].server;
		if (!ans[i].answered) {
			ta[i].state = CAIRN_TRUST_ERROR;
			ta[i].error = "no answer yet";
			continue;
		}
		ta[i].state = ans[i].state;
		ta[i].ni = ans[i].state == CAIRN_TRUST_PRESENT ? ans[i].ni : NULL;
		ta[i].error = ans[i].error;
	}
	struct cairn_trust_policy pol = {
	    .keys = keys, .require_sigs = k, .store_dir = parsed && dir[0] ? dir : NULL};
	return cairn_trust_decide(ta, n, path, &sp, &pol, v);
}

int edge_trust_decide(const struct edge_answer *ans, size_t n, const char *hash,
		      const struct cairn_keyring *keys, unsigned k,
		      struct cairn_trust_answer *ta, struct cairn_trust_verdict *v)
{
	(void)hash; /* the survey matched every PRESENT answer's hash part */
	const char *first = NULL;
	for (size_t i = 0; i < n; i++) {
		if (!ans[i].answered || ans[i].state != CAIRN_TRUST_PRESENT || !ans[i].ni)
			continue;
		const char *p = ans[i].ni->store_path;
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = ans[j].answered && ans[j].state == CAIRN_TRUST_PRESENT && ans[j].ni &&
			       !strcmp(ans[j].ni->store_path, p);
		if (seen)
			continue;
		if (!first)
			first = p;
		if (decide_for(ans, n, p, keys, k, ta, v) == 0)
			return 0;
	}
	return decide_for(ans, n, first ? first : "", keys, k, ta, v);
}

bool edge_trust_final(const struct edge_answer *ans, size_t n, unsigned k,
		      const struct cairn_trust_verdict *v)
{
	for (size_t i = 0; i < n; i++)
		if (!ans[i].answered && (k > 1 || v->status || v->chosen < 0 ||
					 i < v->groups[v->chosen].first))
			return false;
	return true;
}

static bool has_sig_line(const char *text, size_t len, const char *sig)
{
	size_t sl = strlen(sig);
	for (size_t at = 0; at < len;) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - text) : len;
		if (end - at == 5 + sl && !memcmp(text + at, "Sig: ", 5) &&
		    !memcmp(text + at + 5, sig, sl))
			return true;
		at = end + 1;
	}
	return false;
}

int edge_sigs_merge(const char *text, size_t len, const char *const *sigs, size_t n,
		    struct cairn_buf *out)
{
	/* Where the new lines go: after the last Sig line, else at the end. */
	size_t cut = len, at = 0;
	while (at < len) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t end = nl ? (size_t)(nl - text) + 1 : len;
		if (end - at >= 5 && !memcmp(text + at, "Sig: ", 5))
			cut = end;
		at = end;
	}
	int rc = cairn_buf_append(out, text, cut);
	if (!rc && cut > 0 && text[cut - 1] != '\n')
		rc = cairn_buf_putc(out, '\n');
	for (size_t i = 0; !rc && i < n; i++) {
		bool dup = has_sig_line(text, len, sigs[i]);
		for (size_t j = 0; j < i && !dup; j++)
			dup = !strcmp(sigs[j], sigs[i]);
		if (!dup)
			rc = cairn_buf_printf(out, "Sig: %s\n", sigs[i]);
	}
	if (!rc)
		rc = cairn_buf_append(out, text + cut, len - cut);
	return rc;
}

int edge_trust_served(const struct edge_answer *ans, const struct cairn_trust_answer *ta,
		      size_t n, const struct cairn_trust_verdict *v, struct cairn_buf *out)
{
	if (v->status || v->chosen < 0)
		return CAIRN_EINVAL;
	size_t first = v->groups[v->chosen].first;
	const struct edge_answer *a = &ans[first];
	if (a->ni->signature)
		return cairn_buf_append(out, a->text, a->len);
	size_t n_sigs = 0;
	for (size_t i = 0; i < n; i++)
		if (ta[i].group == v->chosen)
			n_sigs += ans[i].ni->n_sigs;
	const char **sigs = calloc(n_sigs + 1, sizeof(*sigs));
	if (!sigs)
		return CAIRN_ENOMEM;
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t s = 0; ta[i].group == v->chosen && s < ans[i].ni->n_sigs && s < 32; s++)
			if (ta[i].sigs_ok & ((uint32_t)1 << s))
				sigs[m++] = ans[i].ni->sigs[s];
	int rc = edge_sigs_merge(a->text, a->len, sigs, m, out);
	free(sigs);
	return rc;
}
