/*
 * publish-ipfs.c - publish's side of the IPFS gateway (--ipfs): its NAR
 * source (the store item, serialised on the fly, as /nar/ sends it) and
 * the "IPFS:" narinfo field.  The gateway itself is lib/ipfs-gateway.c.
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

/* The NAR of the store item of hash part key. */
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
		rc = cairn_error_set(err, CAIRN_ENOENT, "publish: '%s' is not in the store", pi.path);
	else {
		struct cairn_nar_writer *w = cairn_nar_writer_new(sink->bytes, sink->ctx);
		if (!w)
			rc = cairn_error_set(err, CAIRN_ENOMEM, "publish: out of memory");
		else {
			/* large files: the gateway reads only the chunks it sends */
			if (sink->file)
				cairn_nar_writer_set_file_fn(w, sink->file, sink->ctx,
							     IPFS_GW_FILE_MIN);
			rc = cairn_nar_write_path(w, real, err);
			if (rc == 0)
				rc = cairn_nar_writer_finish(w, err);
			cairn_nar_writer_free(w);
		}
	}
	cairn_storedb_pathinfo_release(&pi);
	return rc;
}

int pub_ipfs_open(struct cairn_publish *p, struct cairn_error *err)
{
	struct cairn_chunker_spec spec;
	int rc = cairn_chunker_spec_parse(PUB_IPFS_CHUNKER, &spec, err);
	if (rc)
		return rc;
	return ipfs_gw_new(&p->gw, &spec, 0, source, p, err);
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
	if (rc == 0)
		rc = cairn_cid_format(&root, s);
	if (rc == 0)
		rc = cairn_narinfo_add_field(ni, "IPFS", s, err);
	return rc;
}
