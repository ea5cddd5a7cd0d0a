/*
 * publish-narinfo.c - publish's narinfos: made from a store item's row
 * (both dialects), signed, remembered (the memo) while the row, the baked
 * files and the methods offered stay those they were made from; the keys
 * served; and nar URLs, parsed and resolved to a store item or a baked
 * file (locks: publish.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/narinfo.h"
#include "cairn/storepath.h"
#include "narinfo-int.h"
#include "narcache.h"
#include "publish-int.h"
#include "cairn/banned.h"

/* ---- narinfo ------------------------------------------------------------ */

/* A Nix narinfo's URL of the NAR in method m into url; true when it is a
 * baked file (whose hash and size the narinfo can name). */
static bool nix_nar_url(const struct cairn_storedb_pathinfo *pi, const char *base,
			enum cairn_codec_method m, const struct cairn_publish_file *baked,
			char *url, size_t cap)
{
	if (baked && baked->has_file) {
		char fh[53];
		pub_hash32(&baked->file_hash, fh);
		snprintf(url, cap, "nar/%s.nar%s", fh, cairn_publish_nar_ext(m));
		return true;
	}
	char nh[53], hp[33];
	pub_hash32(&pi->nar_hash, nh);
	memcpy(hp, base, 32);
	hp[32] = '\0';
	snprintf(url, cap, "nar/%s.nar%s?hash=%s", nh, cairn_publish_nar_ext(m), hp);
	return false;
}

/*
 * An AltURL line (narinfo.h): one more method of a Nix narinfo, which Nix
 * skips.  FileSize and FileHash when known, so that a client can weigh the
 * methods by their real sizes (the uncompressed NAR's are the item's).
 */
static int nix_alt_url(struct cairn_narinfo *ni, const struct cairn_storedb_pathinfo *pi,
		       const char *base, enum cairn_codec_method m,
		       const struct cairn_publish_file *baked, struct cairn_error *err)
{
	char url[CAIRN_STOREDB_PATH_MAX + 128], value[CAIRN_STOREDB_PATH_MAX + 256];
	char fh[CAIRN_HASH_STR_MAX] = "";
	uint64_t size = 0;
	bool has_file = nix_nar_url(pi, base, m, baked, url, sizeof(url));
	const struct cairn_hash *h = has_file ? &baked->file_hash : &pi->nar_hash;
	if (has_file)
		size = baked->file_size;
	else if (m == CAIRN_CODEC_NONE)
		size = pi->nar_size;
	if ((size || has_file) && cairn_hash_format(h, CAIRN_HASH_NIX32, fh, sizeof(fh)) < 0)
		fh[0] = '\0';
	if (size || has_file)
		snprintf(value, sizeof(value), "%s %s %llu%s%s", url, cairn_codec_method_name(m),
			 (unsigned long long)size, fh[0] ? " " : "", fh);
	else
		snprintf(value, sizeof(value), "%s %s", url, cairn_codec_method_name(m));
	return cairn_narinfo_add_field(ni, CAIRN_NARINFO_ALT_URL, value, err);
}

int cairn_publish_make_narinfo(const struct cairn_storedb_pathinfo *pi, const char *store_dir,
			       enum cairn_publish_dialect dialect,
			       const struct cairn_codec_spec *compressions, size_t n_compressions,
			       const struct cairn_publish_file *baked, struct cairn_narinfo **out,
			       struct cairn_error *err)
{
	struct cairn_narinfo *ni = NULL;
	size_t dl = strlen(store_dir);
	char url[CAIRN_STOREDB_PATH_MAX + 128];
	int rc;

	if (n_compressions == 0 || strncmp(pi->path, store_dir, dl) != 0 || pi->path[dl] != '/')
		return cairn_error_set(err, CAIRN_EINVAL, "publish: '%s' is not in '%s'", pi->path,
				       store_dir);
	const char *base = pi->path + dl + 1;
	if ((rc = cairn_narinfo_new(pi->path, &pi->nar_hash, pi->nar_size, &ni, err)) < 0)
		return rc;
	for (size_t i = 0; i < pi->nrefs; i++) {
		const char *r = pi->refs[i];
		if (strncmp(r, store_dir, dl) != 0 || r[dl] != '/') {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "publish: reference '%s' is not in '%s'", r,
					     store_dir);
			goto out;
		}
		if ((rc = cairn_narinfo_add_ref(ni, r + dl + 1, err)) < 0)
			goto out;
	}

	if (dialect == CAIRN_PUBLISH_NIX) {
		enum cairn_codec_method m = compressions[0].method;
		bool has_file = nix_nar_url(pi, base, m, baked ? &baked[0] : NULL, url, sizeof(url));
		const struct cairn_hash *fh = has_file ? &baked[0].file_hash : NULL;
		int64_t fsize = has_file ? (int64_t)baked[0].file_size : -1;
		/* uncompressed, the file is the NAR: its size is known before any
		 * baking, and a client needs it to ask several servers for
		 * ranges (as Nix's own compression=none caches give it) */
		if (!has_file && m == CAIRN_CODEC_NONE) {
			fh = &pi->nar_hash;
			fsize = (int64_t)pi->nar_size;
		}
		rc = cairn_narinfo_add_url(ni, url, cairn_codec_method_name(m), fh, fsize, err);
		if (rc < 0)
			goto out;
		/* the other methods for cairn clients: Nix reads the URL above */
		for (size_t i = 1; i < n_compressions; i++)
			if ((rc = nix_alt_url(ni, pi, base, compressions[i].method,
					      baked ? &baked[i] : NULL, err)) < 0)
				goto out;
	}
	/* Guix: the URL groups follow the Signature (cairn_publish_guix_groups) */

	if (pi->deriver) {
		if (strncmp(pi->deriver, store_dir, dl) != 0 || pi->deriver[dl] != '/') {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "publish: deriver '%s' is not in '%s'", pi->deriver,
					     store_dir);
			goto out;
		}
		if ((rc = cairn_narinfo_set_deriver(ni, pi->deriver + dl + 1, err)) < 0)
			goto out;
	}
	if (dialect == CAIRN_PUBLISH_NIX) {
		for (size_t i = 0; i < pi->nsigs; i++)
			if ((rc = cairn_narinfo_add_sig(ni, pi->sigs[i], err)) < 0)
				goto out;
		if (pi->ca && (rc = cairn_narinfo_set_ca(ni, pi->ca, err)) < 0)
			goto out;
	}
	*out = ni;
	ni = NULL;
	rc = 0;
out:
	cairn_narinfo_free(ni);
	return rc;
}

int cairn_publish_guix_groups(const struct cairn_storedb_pathinfo *pi, const char *store_dir,
			      const struct cairn_codec_spec *compressions, size_t n_compressions,
			      const struct cairn_publish_file *baked, struct cairn_buf *out)
{
	size_t dl = strlen(store_dir);
	const char *base = pi->path + dl + 1;
	bool sizes = true;
	int rc = 0;
	if (strlen(pi->path) <= dl + 1)
		return CAIRN_EINVAL;
	/* every size or none: Guix pairs them with the URLs by position */
	for (size_t i = 0; i < n_compressions; i++)
		if (compressions[i].method != CAIRN_CODEC_NONE && !(baked && baked[i].has_file))
			sizes = false;
	for (size_t i = 0; rc == 0 && i < n_compressions; i++) {
		enum cairn_codec_method m = compressions[i].method;
		const char *name = cairn_codec_method_name(m);
		if (m == CAIRN_CODEC_NONE)
			rc = cairn_buf_printf(out, "URL: nar/%s\nCompression: none\n", base);
		else
			rc = cairn_buf_printf(out, "URL: nar/%s/%s\nCompression: %s\n", name, base,
					      name);
		if (rc == 0 && sizes)
			rc = cairn_buf_printf(out, "FileSize: %llu\n",
					      (unsigned long long)(m == CAIRN_CODEC_NONE
									   ? pi->nar_size
									   : baked[i].file_size));
	}
	return rc;
}

/* A remembered narinfo: valid while the row, the baked files and what is
 * offered are those it was made from. */
struct memo {
	struct cairn_hash nar_hash;
	int64_t registration_time;
	size_t nsigs;
	bool raw; /* offered uncompressed only */
	struct cairn_publish_file files[CAIRN_CODEC_LIST_MAX];
	unsigned max_age;
	uint64_t checked; /* ms */
	size_t len;
	char text[];
};

/* The files baked for an item, in the order of the methods offered. */
void pub_baked_files(struct cairn_publish *p, const char *hashpart,
			const struct cairn_hash *nar_hash, const struct cairn_codec_spec *offered,
			size_t n_offered, struct cairn_publish_file *files)
{
	memset(files, 0, sizeof(*files) * CAIRN_CODEC_LIST_MAX);
	if (!p->nc)
		return;
	pthread_mutex_lock(&p->cache_lock);
	for (size_t i = 0; i < n_offered; i++) {
		char key[48];
		snprintf(key, sizeof(key), "%s.%s", hashpart,
			 cairn_codec_method_name(offered[i].method));
		const struct pub_baked *b = map_get(p->baked, key);
		if (b && cairn_hash_equal(&b->nar_hash, nar_hash)) {
			files[i].has_file = true;
			files[i].file_hash = b->file_hash;
			files[i].file_size = b->file_size;
		}
	}
	pthread_mutex_unlock(&p->cache_lock);
}

static bool files_equal(const struct cairn_publish_file *a, const struct cairn_publish_file *b,
			size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i].has_file != b[i].has_file)
			return false;
		if (a[i].has_file && (a[i].file_size != b[i].file_size ||
				      !cairn_hash_equal(&a[i].file_hash, &b[i].file_hash)))
			return false;
	}
	return true;
}

/* Is every compressed method the narinfo names baked (its final form)? */
static bool all_baked(const struct cairn_codec_spec *offered, size_t n_offered,
		      const struct cairn_publish_file *files)
{
	/* both dialects name every method (Nix: URL and AltURL lines) */
	for (size_t i = 0; i < n_offered; i++)
		if (!files[i].has_file && offered[i].method != CAIRN_CODEC_NONE)
			return false;
	return true;
}

/* How long a remembered narinfo is served without looking at the database. */
#define MEMO_RECHECK_MS 1000

int cairn_publish_narinfo(struct cairn_publish *p, const char *hashpart, size_t len,
			  struct cairn_buf *out, unsigned *max_age, struct cairn_error *err)
{
	char hp[33];
	struct cairn_storedb *db = NULL;
	struct cairn_storedb_pathinfo pi = {0};
	struct cairn_narinfo *ni = NULL;
	struct cairn_buf text = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	struct cairn_publish_file files[CAIRN_CODEC_LIST_MAX];
	struct cairn_codec_spec offered[CAIRN_CODEC_LIST_MAX];
	size_t n_offered;
	bool raw;
	unsigned age;
	struct memo *m;
	int rc;

	if (!cairn_store_hash_valid(hashpart, len))
		return cairn_error_set(err, CAIRN_EFORMAT, "publish: '%.*s' is not a hash part",
				       (int)(len > 40 ? 40 : len), hashpart);
	memcpy(hp, hashpart, 32);
	hp[32] = '\0';

	uint64_t now = pub_now_ms();
	pthread_mutex_lock(&p->memo_lock);
	m = map_get(p->memo, hp);
	if (m && now - m->checked < MEMO_RECHECK_MS && !pub_nar_corrupt_locked(p, hp, &m->nar_hash)) {
		rc = cairn_buf_append(out, m->text, m->len);
		if (max_age)
			*max_age = m->max_age;
		pthread_mutex_unlock(&p->memo_lock);
		atomic_fetch_add_explicit(&p->m_memo_hits, 1, memory_order_relaxed);
		return rc;
	}
	pthread_mutex_unlock(&p->memo_lock);

	if ((rc = pub_db_get(p, &db, err)) < 0)
		goto out;
	if ((rc = cairn_storedb_query_hashpart(db, hp, &pi, err)) < 0) {
		if (rc == CAIRN_ENOENT) {
			pthread_mutex_lock(&p->memo_lock);
			free(map_take(p->memo, hp));
			pthread_mutex_unlock(&p->memo_lock);
		}
		goto out;
	}
	bool recheck;
	if (pub_nar_corrupt(p, hp, &pi.nar_hash, &recheck)) {
		if (recheck)
			pub_verify_enqueue(p, hp);
		rc = cairn_error_set(err, CAIRN_ENOENT,
				     "publish: '%s' is withdrawn: its bytes do not match its NarHash",
				     pi.path);
		goto out;
	}
	n_offered = pub_offered(p, pi.path, &pi.nar_hash, offered, &raw);
	pub_baked_files(p, hp, &pi.nar_hash, offered, n_offered, files);
	/* with a cache, a narinfo that is not in its final form is temporary */
	age = p->cfg.ttl;
	if (p->nc && !all_baked(offered, n_offered, files) &&
	    age > CAIRN_PUBLISH_TEMP_TTL)
		age = CAIRN_PUBLISH_TEMP_TTL;
	if (max_age)
		*max_age = age;

	/* the same row and files as last time: the signed text still holds */
	pthread_mutex_lock(&p->memo_lock);
	m = map_get(p->memo, hp);
	if (m && cairn_hash_equal(&m->nar_hash, &pi.nar_hash) &&
	    m->registration_time == pi.registration_time && m->nsigs == pi.nsigs &&
	    m->raw == raw && files_equal(m->files, files, CAIRN_CODEC_LIST_MAX)) {
		m->checked = now;
		m->max_age = age;
		rc = cairn_buf_append(out, m->text, m->len);
		pthread_mutex_unlock(&p->memo_lock);
		atomic_fetch_add_explicit(&p->m_memo_hits, 1, memory_order_relaxed);
		goto queue;
	}
	pthread_mutex_unlock(&p->memo_lock);
	atomic_fetch_add_explicit(&p->m_memo_misses, 1, memory_order_relaxed);

	if ((rc = cairn_publish_make_narinfo(&pi, p->store_dir, p->cfg.dialect, offered,
					     n_offered, files, &ni, err)) < 0 ||
	    (rc = pub_ipfs_field(p, &pi, ni, err)) < 0)
		goto out;
	/* Nix keys first: a Sig added after Guix's Signature would change the
	 * text that Signature covers */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < p->cfg.n_keys; i++) {
			const struct cairn_seckey *k = p->cfg.keys[i];
			if ((pass == 0) != (k->kind == CAIRN_KEY_NIX))
				continue;
			if ((rc = cairn_narinfo_sign(ni, k, p->host, err)) < 0)
				goto out;
			atomic_fetch_add_explicit(&p->m_signed, 1, memory_order_relaxed);
		}
	if ((rc = cairn_narinfo_print(ni, &text, err)) < 0)
		goto out;
	if (p->cfg.dialect == CAIRN_PUBLISH_GUIX &&
	    (rc = cairn_publish_guix_groups(&pi, p->store_dir, offered, n_offered, files,
					    &text)) < 0) {
		cairn_error_set(err, rc, "publish: narinfo too large");
		goto out;
	}
	if ((rc = cairn_buf_append(out, text.data, text.len)) < 0)
		goto out;

	m = malloc(sizeof(*m) + text.len + 1);
	if (m) {
		m->nar_hash = pi.nar_hash;
		m->registration_time = pi.registration_time;
		m->nsigs = pi.nsigs;
		m->raw = raw;
		memcpy(m->files, files, sizeof(files));
		m->max_age = age;
		m->checked = now;
		m->len = text.len;
		memcpy(m->text, text.data, text.len + 1);
		char nh[53];
		pub_hash32(&pi.nar_hash, nh);
		char *hpcopy = strdup(hp);
		pthread_mutex_lock(&p->memo_lock);
		if (p->memo->n >= CAIRN_PUBLISH_MEMO_MAX) {
			map_release(p->memo);
			map_release(p->by_narhash);
		}
		if (map_put(p->memo, hp, m, NULL) < 0)
			free(m);
		if (!hpcopy || map_put(p->by_narhash, nh, hpcopy, NULL) < 0)
			free(hpcopy);
		pthread_mutex_unlock(&p->memo_lock);
	}
queue:
	if (p->nc && !all_baked(offered, n_offered, files))
		pub_bake_enqueue(p, hp);
	rc = 0;
out:
	cairn_narinfo_free(ni);
	cairn_buf_release(&text);
	cairn_storedb_pathinfo_release(&pi);
	pub_db_put(p, db);
	return rc;
}

int cairn_publish_cache_info(struct cairn_publish *p, struct cairn_buf *out)
{
	/* CairnNarinfos: the batch route (narinfos.h); Nix and Guix skip
	 * fields they do not know */
	return cairn_buf_printf(out,
				"StoreDir: %s\nWantMassQuery: 1\nPriority: %d\nCairnNarinfos: 1\n",
				p->store_dir, p->cfg.priority);
}

int cairn_publish_public_keys(struct cairn_publish *p, int kind, struct cairn_buf *out)
{
	if (kind == 0)
		kind = p->cfg.dialect == CAIRN_PUBLISH_GUIX ? CAIRN_KEY_GUIX : CAIRN_KEY_NIX;
	if (kind == CAIRN_KEY_GUIX)
		return p->guix_key_len ? cairn_buf_append(out, p->guix_key, p->guix_key_len) : 0;
	return p->nix_keys_len ? cairn_buf_append(out, p->nix_keys, p->nix_keys_len) : 0;
}

/*
 * The served forms of the public keys.  They are kept apart because no
 * client reads a mixed file: `guix archive --authorize` takes one
 * s-expression and fails on a Nix line before it, and Nix reads
 * name:base64 only.  At most one Guix key: a narinfo has one Signature.
 */
int pub_make_pubkeys(struct cairn_publish *p, struct cairn_error *err)
{
	struct cairn_buf nix = CAIRN_BUF_INIT(1 << 20);
	struct cairn_buf guix = CAIRN_BUF_INIT(CAIRN_GUIX_SEXP_MAX);
	size_t n_guix = 0;
	int rc = 0;
	for (size_t i = 0; i < p->cfg.n_keys && rc == 0; i++) {
		const struct cairn_seckey *k = p->cfg.keys[i];
		if (k->kind == CAIRN_KEY_NIX) {
			struct cairn_nix_pubkey pk;
			cairn_nix_seckey_public(&k->u.nix, &pk);
			rc = cairn_nix_pubkey_format(&pk, &nix);
			if (rc == 0)
				rc = cairn_buf_putc(&nix, '\n');
		} else if (k->kind == CAIRN_KEY_GUIX && n_guix++ == 0) {
			struct cairn_guix_pubkey pk;
			cairn_guix_seckey_public(&k->u.guix, &pk);
			rc = cairn_guix_pubkey_format(&pk, &guix);
		}
	}
	if (rc == 0 && n_guix > 1)
		rc = cairn_error_set(err, CAIRN_EINVAL,
				     "publish: %zu Guix keys given, but a Guix narinfo carries one "
				     "Signature: give one",
				     n_guix);
	else if (rc < 0)
		rc = cairn_error_set(err, rc, "publish: cannot format the public keys");
	if (rc == 0) {
		p->nix_keys = cairn_buf_steal(&nix, &p->nix_keys_len);
		p->guix_key = cairn_buf_steal(&guix, &p->guix_key_len);
		if (!p->nix_keys || !p->guix_key)
			rc = cairn_error_set(err, CAIRN_ENOMEM, "publish: out of memory");
	}
	cairn_buf_release(&nix);
	cairn_buf_release(&guix);
	return rc;
}

/* ---- nar URLs ----------------------------------------------------------- */

bool pub_nix32_ok(const char *s, size_t n)
{
	static const char alpha[] = "0123456789abcdfghijklmnpqrsvwxyz";
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !memchr(alpha, s[i], sizeof(alpha) - 1))
			return false;
	return true;
}

int cairn_publish_parse_nar_url(const char *s, size_t len, struct cairn_publish_nar_url *out,
				struct cairn_error *err)
{
	struct cairn_publish_nar_url u;
	const char *q = memchr(s, '?', len);
	size_t plen = q ? (size_t)(q - s) : len;

	memset(&u, 0, sizeof(u));
	if (q) {
		/* the only query cairn writes: hash=<hashpart> */
		const char *qs = q + 1;
		size_t ql = len - plen - 1;
		if (ql == 5 + 32 && memcmp(qs, "hash=", 5) == 0 && pub_nix32_ok(qs + 5, 32)) {
			memcpy(u.hashpart, qs + 5, 32);
		}
	}
	if (plen > 56 && memcmp(s + 52, ".nar", 4) == 0 && pub_nix32_ok(s, 52)) {
		/* <hash>.nar<ext> */
		const char *ext = s + 56;
		size_t el = plen - 56;
		static const struct {
			const char *ext;
			enum cairn_codec_method m;
		} exts[] = {
			{"", CAIRN_CODEC_NONE},	      {".xz", CAIRN_CODEC_XZ},
			{".zst", CAIRN_CODEC_ZSTD},   {".bz2", CAIRN_CODEC_BZIP2},
			{".gz", CAIRN_CODEC_GZIP},    {".lzip", CAIRN_CODEC_LZIP},
			{".lz", CAIRN_CODEC_LZIP},
		};
		for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
			if (strlen(exts[i].ext) == el && memcmp(exts[i].ext, ext, el) == 0) {
				u.method = exts[i].m;
				u.by_hash = true;
				memcpy(u.hash, s, 52);
				*out = u;
				return 0;
			}
		return cairn_error_set(err, CAIRN_EUNSUPPORTED, "publish: unknown nar suffix");
	}
	if (plen == 56 && memcmp(s + 52, ".nar", 4) == 0 && pub_nix32_ok(s, 52)) {
		u.method = CAIRN_CODEC_NONE;
		u.by_hash = true;
		memcpy(u.hash, s, 52);
		*out = u;
		return 0;
	}
	/* Guix: [<method>/]<basename> */
	const char *slash = memchr(s, '/', plen);
	const char *base = s;
	size_t blen = plen;
	u.method = CAIRN_CODEC_NONE;
	if (slash) {
		int rc = cairn_codec_method_parse(s, (size_t)(slash - s), &u.method, err);
		if (rc < 0)
			return rc;
		u.method_named = true;
		base = slash + 1;
		blen = plen - (size_t)(base - s);
	}
	struct cairn_store_path sp;
	if (blen >= sizeof(u.basename) || cairn_store_path_parse_base(base, blen, &sp, err) < 0)
		return cairn_error_set(err, CAIRN_EFORMAT, "publish: not a nar url");
	memcpy(u.basename, base, blen);
	u.basename[blen] = '\0';
	memcpy(u.hashpart, sp.hash, 32);
	u.hashpart[32] = '\0';
	*out = u;
	return 0;
}

int pub_resolve_nar(struct cairn_publish *p, const struct cairn_publish_nar_url *u,
		    struct cairn_storedb_pathinfo *pi, struct pub_baked *baked_out, bool *is_baked,
		    struct cairn_error *err)
{
	struct cairn_storedb *db = NULL;
	char hp[33] = "";
	struct cairn_hash ghost_nh;
	bool ghost = false;
	int rc;

	*is_baked = false;
	if (u->by_hash && p->nc) {
		pthread_mutex_lock(&p->cache_lock);
		struct pub_baked *b = map_get(p->by_file, u->hash);
		if (b && b->method == u->method && !b->ghost && pub_baked_pin_locked(p, b)) {
			*baked_out = *b;
			*is_baked = true;
		} else if (b && b->method == u->method) {
			/* a ghost (or a file gone under it): the item itself */
			memcpy(hp, b->hashpart, 33);
			ghost_nh = b->nar_hash;
			ghost = true;
		}
		pthread_mutex_unlock(&p->cache_lock);
		if (*is_baked)
			return 0;
	}
	if (ghost) {
		/* hp from the ghost */
	} else if (u->hashpart[0]) {
		memcpy(hp, u->hashpart, 33);
	} else if (u->by_hash) {
		pthread_mutex_lock(&p->memo_lock);
		const char *h = map_get(p->by_narhash, u->hash);
		if (h)
			memcpy(hp, h, 33);
		pthread_mutex_unlock(&p->memo_lock);
		if (!hp[0])
			return cairn_error_set(err, CAIRN_ENOENT, "publish: unknown nar hash");
	}
	if ((rc = pub_db_get(p, &db, err)) < 0)
		return rc;
	rc = cairn_storedb_query_hashpart(db, hp, pi, err);
	pub_db_put(p, db);
	if (rc < 0)
		return rc;
	if (ghost) {
		/* an evicted file's URL: the same item, unchanged since */
		if (!cairn_hash_equal(&pi->nar_hash, &ghost_nh)) {
			cairn_storedb_pathinfo_release(pi);
			return cairn_error_set(err, CAIRN_ENOENT,
					       "publish: '%s' changed since that file", hp);
		}
	} else if (u->by_hash) {
		char nh[53];
		pub_hash32(&pi->nar_hash, nh);
		if (strcmp(nh, u->hash) != 0) {
			cairn_storedb_pathinfo_release(pi);
			return cairn_error_set(err, CAIRN_ENOENT,
					       "publish: the nar hash is not that of '%s'", hp);
		}
	} else {
		const char *base = pi->path + p->store_dir_len + 1;
		if (strcmp(base, u->basename) != 0) {
			cairn_storedb_pathinfo_release(pi);
			return cairn_error_set(err, CAIRN_ENOENT, "publish: no item '%s'",
					       u->basename);
		}
	}
	return 0;
}

