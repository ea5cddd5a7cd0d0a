/*
 * edge-claims.c - what the file at a nar URL must be: the claims of the
 * narinfos the mirror holds for the items that name it (see "Verify before
 * commit" in docs/cairn-mirror.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn/buf.h"
#include "cairn/codec.h"
#include "cairn/edge.h"
#include "cairn/hash.h"
#include "cairn/http.h"
#include "cairn/httpd.h"
#include "cairn/narinfo.h"
#include "cairn/storepath.h"
#include "cairn/trust.h"
#include "edge-int.h"
#include "cairn/banned.h"

/* --- claims: what a nar URL must hash to ----------------------------------- */

/*
 * A narinfo's URL, Compression, FileHash and FileSize are not covered by
 * Nix signatures (nor, after the Signature line, by Guix's), so any
 * upstream can name any nar path in a validly signed narinfo of any item.
 * Hence what the bytes at a URL must be is recorded per item, from the
 * narinfo the mirror holds and serves for that item, and no other item's
 * narinfo can change or remove it (see docs/cairn-mirror.md).
 */

int edge_url_key(const char *url, char key[CAIRN_EDGE_KEY_MAX + 1])
{
	if (!url || strstr(url, "://"))
		return CAIRN_EUNSUPPORTED;
	while (*url == '/')
		url++;
	size_t n = strcspn(url, "?#");
	if (n > CAIRN_EDGE_KEY_MAX)
		return CAIRN_ELIMIT;
	memcpy(key, url, n);
	key[n] = 0;
	return 0;
}

static int claim_same(const struct nar_claim *a, const struct nar_claim *b)
{
	if (a->has_file != b->has_file || a->has_nar != b->has_nar || a->by_nar != b->by_nar ||
	    a->cacheable != b->cacheable || a->plain != b->plain)
		return 0;
	if (a->has_file && (memcmp(a->file_sha, b->file_sha, 32) || a->file_size != b->file_size))
		return 0;
	if (a->has_nar && (memcmp(a->nar_sha, b->nar_sha, 32) || a->nar_size != b->nar_size))
		return 0;
	return !a->by_nar || a->method == b->method;
}

/*
 * What narinfo ni (of item) says about the file at URL group u;
 * CAIRN_EFORMAT when nothing it says can be checked, or it contradicts itself.  With a
 * keyring, only NarHash and NarSize are signed: bytes are cacheable only
 * when they are checked against those, so a compressed file is
 * decompressed on the way even when FileHash is given.
 */
static int claim_make(const struct cairn_edge *e, const struct cairn_narinfo *ni,
		      const struct cairn_narinfo_url *u, const char *item, struct nar_claim *c)
{
	int trusted = e->cfg.trusted != NULL;
	int fh = u->has_file_hash && u->file_hash.algo == CAIRN_HASH_SHA256;
	enum cairn_codec_method m;
	int known = cairn_codec_method_parse(u->compression, strlen(u->compression), &m, NULL) == 0;
	memset(c, 0, sizeof(*c));
	memcpy(c->item, item, CAIRN_STORE_HASH_LEN);
	c->file_size = -1;
	if (ni->nar_hash.algo == CAIRN_HASH_SHA256) {
		c->has_nar = 1;
		memcpy(c->nar_sha, ni->nar_hash.digest, 32);
		c->nar_size = ni->nar_size;
	}
	if (known && m == CAIRN_CODEC_NONE && c->has_nar) {
		/* an uncompressed nar is its own NarHash */
		if ((fh && memcmp(u->file_hash.digest, c->nar_sha, 32)) ||
		    (u->has_file_size && u->file_size != ni->nar_size))
			return CAIRN_EFORMAT;
		c->has_file = 1;
		memcpy(c->file_sha, c->nar_sha, 32);
		c->file_size = (int64_t)ni->nar_size;
		c->cacheable = 1;
		c->plain = 1;
		return 0;
	}
	if (fh) {
		c->has_file = 1;
		memcpy(c->file_sha, u->file_hash.digest, 32);
		if (u->has_file_size)
			c->file_size = (int64_t)u->file_size;
		c->cacheable = !trusted;
	}
	if (known && m != CAIRN_CODEC_NONE && c->has_nar && (trusted || !fh)) {
		/* no FileHash (compressed on the fly upstream), or an unsigned
		 * one: check what it decompresses to */
		c->by_nar = 1;
		c->method = m;
		c->cacheable = 1;
	}
	return c->has_file || c->by_nar ? 0 : CAIRN_EFORMAT;
}

/*
 * Does the URL's own name allow claim c?  When the last component of the
 * path starts with 52 nix32 characters (then '.' or its end), they are a
 * SHA-256 of the file (Nix: nar/<FileHash>.nar.xz) or of the nar (cairn
 * publish and harmonia compressing on the fly: nar/<NarHash>.nar.zst):
 * the claim must have that FileHash or NarHash.  When it starts with a
 * store path hash (then '-', '.' or its end), the URL is that item's (Guix:
 * nar/gzip/<basename>; nix-serve, attic): only that item may claim it.
 */
static int url_allows(const char *key, const struct nar_claim *c)
{
	const char *last = strrchr(key, '/');
	uint8_t h[32];
	last = last ? last + 1 : key;
	size_t n = strlen(last);
	if (n >= 52 && (n == 52 || last[52] == '.') && cairn_nix32_decode(last, 52, h, 32) == 0)
		return (c->has_file && !memcmp(h, c->file_sha, 32)) ||
		       (c->has_nar && !memcmp(h, c->nar_sha, 32));
	if (n >= CAIRN_STORE_HASH_LEN &&
	    (n == CAIRN_STORE_HASH_LEN || last[CAIRN_STORE_HASH_LEN] == '-' ||
	     last[CAIRN_STORE_HASH_LEN] == '.') &&
	    cairn_store_hash_valid(last, CAIRN_STORE_HASH_LEN))
		return !strncmp(last, c->item, CAIRN_STORE_HASH_LEN);
	return 1;
}

/*
 * Under e->mu: claim c is about to replace claim `at` of cl (SIZE_MAX: to
 * join cl) on a URL that may be cached.  The cached file was checked
 * against the claims there were; it stays when c says what another claim
 * already said or names that very file by FileHash, and goes otherwise
 * (a narinfo refreshed with other hashes, from another upstream...).
 */
static void claims_recheck_cached_locked(struct cairn_edge *e, const struct nar_claims *cl,
					 size_t at, const struct nar_claim *c, const char *key)
{
	for (size_t j = 0; j < cl->n; j++)
		if (j != at && claim_same(&cl->c[j], c))
			return;
	edge_store_nar_drop_unless(e->store, key, c->has_file ? c->file_sha : NULL);
}

/* Under e->mu: item's claim on key becomes c (NULL: it has none there). */
static void claim_set_locked(struct cairn_edge *e, const char *key, const char *item,
			     const struct nar_claim *c, int loading)
{
	struct nar_claims *cl = map_get(&e->claims, key), *ncl;
	size_t i = 0;
	void *old;
	if (cl)
		while (i < cl->n && strcmp(cl->c[i].item, item))
			i++;
	int have = cl && i < cl->n;
	if (!c) {
		if (!have)
			return;
		cl->c[i] = cl->c[--cl->n];
		e->claims_gen++;
		if (!cl->n && !cl->overflow) {
			map_take(&e->claims, key);
			free(cl);
		}
		return;
	}
	if (have && claim_same(&cl->c[i], c)) {
		cl->c[i].srcs = c->srcs;
		return;
	}
	e->claims_gen++;
	/* at start-up the cache and the narinfos were consistent already */
	if (!loading && cl && cl->n)
		claims_recheck_cached_locked(e, cl, have ? i : SIZE_MAX, c, key);
	if (have) {
		cl->c[i] = *c;
		return;
	}
	size_t n = cl ? cl->n : 0;
	if (n == EDGE_MAX_CLAIMS || !(ncl = realloc(cl, edge_claims_size(n + 1)))) {
		if (cl)
			cl->overflow = 1;
		return;
	}
	if (!cl) {
		ncl->overflow = 0;
		ncl->n = 0;
	}
	ncl->c[ncl->n++] = *c;
	if (ncl != cl && map_put(&e->claims, key, ncl, &old) < 0)
		free(ncl); /* only a new key can fail to go in: nothing refers to ncl */
}

/* Does narinfo ni name the URL key? */
static int names_key(const struct cairn_narinfo *ni, const char *key)
{
	char k[CAIRN_EDGE_KEY_MAX + 1];
	for (size_t i = 0; ni && i < ni->n_urls; i++)
		if (edge_url_key(ni->urls[i].url, k) == 0 && !strcmp(k, key))
			return 1;
	return 0;
}

/* --- alternates: other files of the same nar ------------------------------- */

static void alts_free(struct nar_alts *al)
{
	for (size_t i = 0; al && i < al->n; i++)
		free(al->a[i].url);
	free(al);
}

/*
 * Under e->mu: upstream u's narinfo other (which claims what `served`, the
 * narinfo served for item hash, claims) names files the served one does
 * not: each is another file of the nar.  Only with a keyring: it is the
 * signed NarHash that makes the bytes of another file the same nar.
 */
static void alts_add_locked(struct cairn_edge *e, const char *hash,
			    const struct cairn_narinfo *served, size_t u,
			    const struct cairn_narinfo *other)
{
	char key[CAIRN_EDGE_KEY_MAX + 1];
	if (!e->cfg.trusted || !served || !other || served->nar_hash.algo != CAIRN_HASH_SHA256 ||
	    strcmp(served->store_path, other->store_path) ||
	    !cairn_trust_same_claim(served, other))
		return;
	for (size_t i = 0; i < other->n_urls; i++) {
		const struct cairn_narinfo_url *ou = &other->urls[i];
		enum cairn_codec_method m;
		if (edge_url_key(ou->url, key) < 0 || names_key(served, key) ||
		    cairn_codec_method_parse(ou->compression, strlen(ou->compression), &m, NULL) < 0)
			continue;
		struct nar_alts *al = map_get(&e->alts, hash);
		void *old;
		if (!al) {
			if (!(al = calloc(1, sizeof(*al))))
				return;
			memcpy(al->nar_sha, served->nar_hash.digest, 32);
			al->nar_size = served->nar_size;
			if (map_put(&e->alts, hash, al, &old) < 0) {
				free(al);
				return;
			}
		}
		const char *url = ou->url;
		while (*url == '/')
			url++;
		size_t k = 0;
		while (k < al->n && (al->a[k].up != u || strcmp(al->a[k].url, url)))
			k++;
		if (k < al->n || al->n == EDGE_MAX_ALTS)
			continue;
		struct nar_alt *a = &al->a[al->n];
		if (!(a->url = strdup(url)))
			return;
		a->up = u;
		a->method = m;
		a->has_file = ou->has_file_hash && ou->file_hash.algo == CAIRN_HASH_SHA256;
		if (a->has_file)
			memcpy(a->file_sha, ou->file_hash.digest, 32);
		a->file_size = ou->has_file_size ? (int64_t)ou->file_size : -1;
		al->n++;
	}
}

/* Under e->mu: item hash's served narinfo becomes ni (NULL: none). */
static void alts_set_locked(struct cairn_edge *e, const char *hash,
			    const struct cairn_narinfo *ni,
			    const struct cairn_narinfo *const *srcs)
{
	alts_free(map_take(&e->alts, hash));
	for (size_t u = 0; ni && srcs && u < e->n_ups; u++)
		alts_add_locked(e, hash, ni, u, srcs[u]);
}

void edge_alts_late_locked(struct cairn_edge *e, const char *hash, size_t u,
			   const struct cairn_narinfo *ni)
{
	const struct ni_ent *cur = map_get(&e->narinfos, hash);
	struct cairn_narinfo *served = NULL;
	if (!e->cfg.trusted || !ni || !cur || !cur->text ||
	    cairn_narinfo_parse(cur->text, cur->len, &served, NULL) < 0)
		return;
	alts_add_locked(e, hash, served, u, ni);
	cairn_narinfo_free(served);
}

/* Under e->mu: copy into f the other files of claim c's nar it lacks. */
static int alts_take_claim_locked(struct cairn_edge *e, struct fetch *f,
				  const struct nar_claim *c)
{
	const struct nar_alts *al = map_get(&e->alts, c->item);
	if (!c->plain || !al || memcmp(al->nar_sha, c->nar_sha, 32) || al->nar_size != c->nar_size)
		return 0;
	for (size_t k = 0; k < al->n && f->n_alt < EDGE_MAX_ALTS; k++) {
		size_t j = 0;
		while (j < f->n_alt && (f->alt[j].up != al->a[k].up || strcmp(f->alt[j].url, al->a[k].url)))
			j++;
		if (j < f->n_alt)
			continue;
		struct nar_alt *a = &f->alt[f->n_alt];
		*a = al->a[k];
		if (!(a->url = strdup(al->a[k].url)))
			return CAIRN_ENOMEM;
		f->n_alt++;
	}
	return 0;
}

int edge_alts_take_locked(struct cairn_edge *e, struct fetch *f, const char *item)
{
	/* a compressed URL's clients want that very file: another cannot be
	 * spliced into their bytes, so only an uncompressed one has others
	 * (not when a claim says it is compressed: which one is true is for
	 * the URL's own bytes to tell) */
	if (!item && f->cand) {
		int plain = 0, packed = 0;
		for (size_t i = 0; i < f->cand->n; i++) {
			plain |= f->cand->c[i].plain;
			packed |= f->cand->c[i].by_nar;
		}
		f->serve_nar = plain && !packed;
	}
	for (size_t i = 0; f->serve_nar && i < f->cand->n; i++) {
		const struct nar_claim *c = &f->cand->c[i];
		int rc;
		if ((!item || !strcmp(c->item, item)) && (rc = alts_take_claim_locked(e, f, c)) < 0)
			return rc;
	}
	return 0;
}

void edge_alts_release(struct fetch *f)
{
	for (size_t i = 0; i < f->n_alt; i++)
		free(f->alt[i].url);
	f->n_alt = 0;
}

void edge_alts_free_all(struct cairn_edge *e)
{
	struct map_iter it;
	for (struct map_ent *x = map_iter_first(&it, &e->alts); x; x = map_iter_next(&it))
		alts_free(x->val);
	map_release(&e->alts);
}

/*
 * Under e->mu, before ni (NULL: a 404) becomes the narinfo held for item
 * `hash`: its claims replace those of the narinfo held until now.  srcs
 * (NULL: not known) holds, by upstream, the narinfos ni was accepted from:
 * an upstream whose narinfo names a URL of ni is where that nar is asked
 * for first.
 */
void edge_claims_item_set_locked(struct cairn_edge *e, const char *hash,
				 const struct cairn_narinfo *ni, int loading,
				 const struct cairn_narinfo *const *srcs)
{
	const struct ni_ent *cur = map_get(&e->narinfos, hash);
	struct cairn_narinfo *old = NULL;
	char key[CAIRN_EDGE_KEY_MAX + 1];
	if (cur && cur->text && cairn_narinfo_parse(cur->text, cur->len, &old, NULL) == 0)
		for (size_t i = 0; i < old->n_urls; i++)
			if (edge_url_key(old->urls[i].url, key) == 0 && !names_key(ni, key))
				claim_set_locked(e, key, hash, NULL, loading);
	cairn_narinfo_free(old);
	for (size_t i = 0; ni && i < ni->n_urls; i++) {
		struct nar_claim c;
		if (edge_url_key(ni->urls[i].url, key) < 0)
			continue;
		int ok = claim_make(e, ni, &ni->urls[i], hash, &c) == 0 && url_allows(key, &c);
		for (size_t u = 0; ok && srcs && u < e->n_ups; u++)
			if (names_key(srcs[u], key))
				c.srcs |= (uint32_t)1 << u;
		claim_set_locked(e, key, hash, ok ? &c : NULL, loading);
	}
	alts_set_locked(e, hash, ni, srcs);
}
