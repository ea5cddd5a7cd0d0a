/*
 * monitor-store.c - `cairn monitor --store ROOT`: the local store as one
 * more source of claims.  For every item a pass asks the servers about,
 * what the store's database says (NarHash, NarSize, References) is
 * recorded as an observation of the server row "local:<store>", so a
 * build of this machine that differs from the caches' shows as differs
 * like any other disagreement.  The store has no narinfo signature: its
 * claims count as unsigned.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/storedb.h"
#include "cairn/storeloc.h"
#include "monitor-int.h"
#include "cairn/banned.h"

int mon_store_open(struct cairn_monitor *m, struct cairn_error *err)
{
	struct cairn_storeloc_config lc;
	struct cairn_storeloc loc;
	struct cairn_storedb_config cfg;
	struct cairn_error e;
	char url[CAIRN_STORELOC_PATH_MAX + 8];
	int rc;
	cairn_error_init(&e);
	cairn_storeloc_config_init(&lc);
	lc.root = m->cfg.store_root;
	lc.db_path = m->cfg.store_db;
	if ((rc = cairn_storeloc_locate(&loc, &lc, err)) < 0)
		return rc;
	if (!loc.db_path) {
		rc = cairn_error_set(err, CAIRN_EINVAL,
				     "monitor: --store: no database known for '%s' (give --store-db)",
				     loc.store_dir);
		goto out;
	}
	cairn_storedb_config_init(&cfg, loc.kind);
	cfg.db_path = loc.db_path;
	cfg.store_dir = loc.store_dir;
	cfg.flags |= CAIRN_STOREDB_IMMUTABLE_FALLBACK;
	if ((rc = cairn_storedb_open(&m->store, &cfg, &e)) < 0) {
		cairn_error_set(err, rc, "monitor: cannot open the store database '%s': %s",
				loc.db_path, cairn_error_msg(&e));
		goto out;
	}
	/* the real store is local:/nix/store; a chroot store names its root */
	snprintf(url, sizeof(url), "local:%s%s", loc.root, loc.store_dir);
	rc = mon_db_server(m->w, url, &m->store_id, err);
out:
	cairn_storeloc_release(&loc);
	return rc;
}

int mon_store_observe(struct cairn_monitor *m, int64_t item, const char *hash, int64_t now,
		      struct cairn_error *err)
{
	struct cairn_storedb_pathinfo pi = {0};
	struct cairn_error e;
	struct mon_obs_in obs = {.state = CAIRN_MONITOR_GONE, .sig = CAIRN_MONITOR_SIG_UNSIGNED};
	struct cairn_buf refs = CAIRN_BUF_INIT(CAIRN_STOREDB_REFS_MAX * 256);
	char hs[CAIRN_HASH_STR_MAX];
	int rc;
	cairn_error_init(&e);
	rc = cairn_storedb_query_hashpart(m->store, hash, &pi, &e);
	if (rc < 0 && rc != CAIRN_ENOENT) {
		/* a store being written may fail a read: what it said stands */
		mon_say(m, "local store: %s: %s", hash, cairn_error_msg(&e));
		return 0;
	}
	if (rc == 0) {
		const char *dir = cairn_storedb_store_dir(m->store);
		size_t dl = strlen(dir);
		cairn_hash_format(&pi.nar_hash, CAIRN_HASH_NIX32, hs, sizeof(hs));
		/* References as a narinfo has them: base names, sorted (full
		 * paths in one store directory sort as their base names do) */
		for (size_t i = 0; i < pi.nrefs && rc == 0; i++) {
			const char *r = pi.refs[i];
			if (!strncmp(r, dir, dl) && r[dl] == '/')
				r += dl + 1;
			rc = cairn_buf_printf(&refs, "%s%s", i ? " " : "", r) ? CAIRN_ELIMIT : 0;
		}
		obs = (struct mon_obs_in){.state = CAIRN_MONITOR_PRESENT,
					  .sig = CAIRN_MONITOR_SIG_UNSIGNED,
					  .nar_hash = hs,
					  .nar_size = pi.nar_size,
					  .refs = refs.data ? refs.data : ""};
	}
	if (rc == 0 || rc == CAIRN_ENOENT)
		rc = mon_db_observe(m->w, item, m->store_id, &obs, now, err);
	else
		rc = cairn_error_set(err, rc, "monitor: local store: %s: too many references",
				     hash);
	cairn_buf_release(&refs);
	cairn_storedb_pathinfo_release(&pi);
	return rc;
}
