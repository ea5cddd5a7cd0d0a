/*
 * storeloc.h - where a Nix or Guix store keeps its parts.
 *
 * A store is named by its ROOT, as `nix --store ROOT` names one: "" (or
 * "/") is the machine's own store, any other directory a chroot store whose
 * files lie under it.  From the root and the store's kind follow the rest,
 * at the places Nix and the Guix daemon use:
 *
 *   kind   store dir    database                         build logs
 *   nix    /nix/store   ROOT/nix/var/nix/db/db.sqlite    ROOT/nix/var/log/nix/drvs
 *   guix   /gnu/store   ROOT/var/guix/db/db.sqlite       ROOT/var/log/guix/drvs
 *
 * The store directory is what store paths start with; its files are at
 * ROOT<store dir>.  Every command that reads or writes a local store
 * (publish, fetch, challenge) asks this one function, so that `--store`
 * means the same root everywhere.
 */
#ifndef CAIRN_STORELOC_H
#define CAIRN_STORELOC_H

#include <stdbool.h>

#include "cairn/error.h"
#include "cairn/storedb.h"

/* Longest root or path the locator builds. */
#define CAIRN_STORELOC_PATH_MAX 4096

struct cairn_storeloc_config {
	const char *root;	       /* NULL, "" or "/": the real store */
	enum cairn_storedb_kind kind;  /* 0: detect (below) */
	const char *store_dir;	       /* NULL: the kind's (/nix/store, /gnu/store) */
	const char *db_path;	       /* NULL: the kind's, under the root */
	const char *log_dir;	       /* NULL: beside the database */
};

void cairn_storeloc_config_init(struct cairn_storeloc_config *cfg);

/*
 * The parts of a store; every string is allocated here and freed by
 * cairn_storeloc_release.  db_path and log_dir are NULL when they cannot
 * be known: a store directory other than /nix/store and /gnu/store keeps
 * them wherever its owner chose, so they must be given.
 */
struct cairn_storeloc {
	enum cairn_storedb_kind kind;
	char *root;	      /* no trailing '/'; "" for the real store */
	char *store_dir;      /* as store paths name it: /nix/store */
	char *real_store_dir; /* where its files are: ROOT/nix/store */
	char *db_path;	      /* or NULL */
	char *log_dir;	      /* or NULL */
	bool has_store_dir;   /* real_store_dir is a directory */
	bool has_db;	      /* db_path exists */
};

/*
 * Locate the store.  Kind 0 is detected from what exists under the root,
 * the database first (it is what makes a store), then the store
 * directory: ROOT/nix/var/nix/db/db.sqlite or else ROOT/var/guix/db/
 * db.sqlite; else ROOT/nix/store or else ROOT/gnu/store; else a given
 * store_dir of /gnu/store means Guix; else Nix.  Nothing needs to exist:
 * has_store_dir and has_db say what does.  A given db_path without a
 * log_dir puts the logs beside it as Nix and Guix do (<state>/nix/db/
 * db.sqlite: <state>/log/nix/drvs; <state>/guix/db/db.sqlite:
 * <state>/log/guix/drvs).  0, or CAIRN_EINVAL (a relative store_dir),
 * CAIRN_ELIMIT (a path longer than CAIRN_STORELOC_PATH_MAX), CAIRN_ENOMEM;
 * *out is written only on success.
 */
int cairn_storeloc_locate(struct cairn_storeloc *out, const struct cairn_storeloc_config *cfg,
			  struct cairn_error *err);
void cairn_storeloc_release(struct cairn_storeloc *loc);

/* "nix" or "guix". */
const char *cairn_storeloc_kind_name(enum cairn_storedb_kind kind);

#endif
