/*
 * publish-ipfs.c - publish's side of the IPFS gateway (--ipfs): its NAR
 * source (the store item, serialised on the fly, as /nar/ sends it) and
 * the "IPFS:" narinfo field, whose first computation (a pass over the NAR)
 * runs in a thread of its own rather than on an event loop
 * (pub_defer_narinfo, pub_defer_narinfos).  The gateway
 * itself is lib/ipfs-gateway.c.
 */
#include <stdio.h>
#include <string.h>

#include "cairn/nar.h"
#include "cairn/narinfo.h"
#include "cairn/storepath.h"
#include "ipfs-gateway.h"
#include "narinfo-int.h"
#include "publish-int.h"
#include "cairn/banned.h"

/* The store item at real path pctx, serialised into sink. */
static int store_nar(const struct ipfs_gw_sink *sink, void *pctx, struct cairn_error *err)
{
	struct cairn_nar_writer *w = cairn_nar_writer_new(sink->bytes, sink->ctx);
	if (!w)
		return cairn_error_set(err, CAIRN_ENOMEM, "publish: out of memory");
	/* large files: the gateway reads only the chunks it sends */
	if (sink->file)
		cairn_nar_writer_set_file_fn(w, sink->file, sink->ctx, IPFS_GW_FILE_MIN);
	int rc = cairn_nar_write_path(w, pctx, err);
	if (rc == 0)
		rc = cairn_nar_writer_finish(w, err);
	cairn_nar_writer_free(w);
	return rc;
}

/* The NAR of the store item of hash part key; when indexed, checked
 * against the database's NarHash (a store item changed on disk is not
 * given a root). */
static int source(void *ctx, const char *key, const struct ipfs_gw_sink *sink,
		  struct cairn_error *err)
{
	struct cairn_publish *p = ctx;
	struct cairn_storedb *db = NULL;
	struct cairn_storedb_pathinfo pi = {0};
	char real[CAIRN_STOREDB_PATH_MAX + CAIRN_STOREDB_DIR_MAX + 8];
	int rc = pub_db_get(p, &db, err);
	if (rc < 0)
		return rc;
	rc = cairn_storedb_query_hashpart(db, key, &pi, err);
	pub_db_put(p, db);
	if (rc < 0)
		return rc;
	if (pub_real_path(p, pi.path, real, sizeof(real)) < 0)
		rc = cairn_error_set(err, CAIRN_ENOENT, "publish: '%s' is not in the store",
				     pi.path);
	else
		rc = ipfs_gw_source_checked(sink, key, &pi.nar_hash, store_nar, real, err);
	/* as a bake or a stream that finds it: withdrawn until it matches */
	if (rc == CAIRN_EHASH && sink->indexing)
		pub_nar_mark_corrupt(p, key, &pi.nar_hash, pi.path,
				     "its NAR, cut for the IPFS index, has another SHA-256");
	cairn_storedb_pathinfo_release(&pi);
	return rc;
}

int pub_ipfs_open(struct cairn_publish *p, struct cairn_error *err)
{
	struct cairn_chunker_spec spec;
	int rc = cairn_chunker_spec_parse(
	    p->cfg.ipfs_chunker ? p->cfg.ipfs_chunker : CAIRN_IPFS_CHUNKER_SERVED, &spec, err);
	if (rc)
		return rc;
	rc = ipfs_gw_new(&p->gw, &spec, 0, source, p, err);
	if (rc == 0 && p->cfg.log)
		ipfs_gw_set_log(p->gw, p->cfg.log, p->cfg.log_ctx);
	/* with a cache, the index outlives a restart: CACHE/ipfs */
	if (rc == 0 && p->cache_dir) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/ipfs", p->cache_dir);
		rc = ipfs_gw_set_dir(p->gw, dir, err);
	}
	return rc;
}

int pub_ipfs_field(struct cairn_publish *p, const struct cairn_storedb_pathinfo *pi,
		   struct cairn_narinfo *ni, struct cairn_error *err)
{
	const char *base = strrchr(pi->path, '/');
	if (!p->gw || !base || strlen(base + 1) < CAIRN_STORE_HASH_LEN)
		return 0;
	char key[CAIRN_STORE_HASH_LEN + 1];
	memcpy(key, base + 1, CAIRN_STORE_HASH_LEN);
	key[CAIRN_STORE_HASH_LEN] = '\0';
	struct cairn_cid root;
	char s[CAIRN_CID_STR_MAX];
	int rc = ipfs_gw_index(p->gw, key, pi->nar_size, &root, err);
	if (rc == CAIRN_EHASH) /* the store item is not its NarHash's: as withdrawn */
		return cairn_error_set(err, CAIRN_ENOENT,
				       "publish: '%s' is withdrawn: its bytes do not match its NarHash",
				       pi->path);
	if (rc == 0)
		rc = cairn_cid_format(&root, s);
	if (rc == 0)
		rc = cairn_narinfo_add_field(ni, "IPFS", s, err);
	return rc;
}

/* ---- a narinfo with its item indexed first ----------------------------- */

int pub_ipfs_narinfo(void *ctx, const char *hp, struct cairn_buf *out, unsigned *max_age)
{
	struct cairn_publish *p = ctx;
	struct cairn_storedb *db = NULL;
	struct cairn_storedb_pathinfo pi = {0};
	struct cairn_cid root;
	/* indexed first: a narinfo the memo remembers would not index it
	 * again, and the gateway may have forgotten the item since */
	if (ipfs_gw_root(p->gw, hp, &root) != 0 && pub_db_get(p, &db, NULL) == 0) {
		int rc = cairn_storedb_query_hashpart(db, hp, &pi, NULL);
		pub_db_put(p, db);
		if (rc == 0)
			(void)ipfs_gw_index(p->gw, hp, pi.nar_size, &root, NULL);
		cairn_storedb_pathinfo_release(&pi);
	}
	return cairn_publish_narinfo(p, hp, CAIRN_STORE_HASH_LEN, out, max_age, NULL);
}
