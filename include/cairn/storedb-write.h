/*
 * storedb-write.h - registering store paths in a local Nix or Guix store
 * database: the write side of the storedb module.  Only `cairn fetch` opens
 * a database read-write; publish and challenge keep the read-only handles
 * of storedb.h.
 *
 * What a registration writes (checked against Nix 2.8 src/libstore/
 * local-store.cc registerValidPaths/addValidPath and schema.sql, and Guix
 * nix/libstore/local-store.cc and schema.sql):
 *
 *   ValidPaths  path; hash "sha256:<64 lowercase hex>"; registrationTime
 *               (now); deriver (NULL when unknown); narSize; and, where the
 *               columns exist (Nix, not Guix): ultimate 0 (not built
 *               here), sigs space-separated (NULL when none), ca (NULL when
 *               not content-addressed)
 *   Refs        (referrer, reference) for every reference, the path itself
 *               included, both ValidPaths ids
 *   DerivationOutputs  (drv, id, path) for each output of a .drv path, as
 *               the caller read them from the file (cairn_storedb_drv_parse)
 *
 * The store database's rules, enforced here:
 *   - one call is one transaction (BEGIN IMMEDIATE ... COMMIT): all or
 *     nothing;
 *   - a path that is already valid is left untouched, references included;
 *   - every reference must be valid before the call or be registered
 *     earlier in the same call (or be the path itself); otherwise nothing
 *     is written (CAIRN_ENOENT, naming both).  So the Refs rows always have
 *     both ids, and no cycle can be registered;
 *   - the caller makes the files durable first (fsync of the files, then of
 *     their directory): a registered path always has its files, whatever
 *     crashes when.
 *
 * Creating.  With CAIRN_STOREDB_WRITER_CREATE a missing database is
 * created: its directory (0755), db.sqlite with the schema of the kind (Nix
 * 2.8: version 10, ValidPaths, Refs, DerivationOutputs, their indexes and
 * the trigger that drops a self-reference before its path; Guix: version 7,
 * the same without ultimate, sigs and ca, plus FailedPaths) in WAL mode,
 * then "schema" beside it holding the version, as Nix and Guix do.  An
 * existing database whose "schema" file names another version is refused
 * (CAIRN_EUNSUPPORTED): Nix upgrades its own schema, cairn never does.  So
 * is the variant whose Refs point at a Storables table (see storedb.h).
 *
 * Locking.  The "big-lock" file beside the database is held shared (flock)
 * while the handle is open, as every Nix and Guix process holds it, so that
 * no schema upgrade runs underneath.  SQLite's own lock is waited for at
 * most busy_timeout_ms per statement; then the call fails with CAIRN_EBUSY
 * ("locked by another process"), e.g. while a daemon holds a long write
 * transaction.  Opening tries the write lock once (and lets it go at once),
 * so a database that is locked is reported before anything is downloaded.
 *
 * A handle is for one thread.
 */
#ifndef CAIRN_STOREDB_WRITE_H
#define CAIRN_STOREDB_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"
#include "cairn/hash.h"
#include "cairn/storedb.h"

/* The schema versions written when creating (the "schema" file). */
#define CAIRN_STOREDB_NIX_SCHEMA 10
#define CAIRN_STOREDB_GUIX_SCHEMA 7
/* Paths in one registration call. */
#define CAIRN_STOREDB_BATCH_MAX 100000
/* Outputs of one derivation, and the longest output name. */
#define CAIRN_STOREDB_DRV_OUTPUTS_MAX 256
#define CAIRN_STOREDB_DRV_OUTPUT_NAME_MAX 256
/* Largest .drv file read for its outputs. */
#define CAIRN_STOREDB_DRV_MAX ((size_t)16 << 20)
/* Default wait for SQLite's write lock, milliseconds. */
#define CAIRN_STOREDB_WRITE_TIMEOUT_MS 30000

enum cairn_storedb_writer_flags {
	/* Create the database (and its directory) when it does not exist. */
	CAIRN_STOREDB_WRITER_CREATE = 1 << 0,
};

struct cairn_storedb_writer_config {
	enum cairn_storedb_kind kind; /* the schema to create */
	const char *store_dir;	      /* no trailing slash */
	const char *db_path;	      /* the db.sqlite file */
	int busy_timeout_ms;	      /* > 0 */
	unsigned flags;		      /* enum cairn_storedb_writer_flags */
};

/* Defaults of a Nix or Guix installation (static strings), no flags. */
void cairn_storedb_writer_config_init(struct cairn_storedb_writer_config *cfg,
				      enum cairn_storedb_kind kind);

struct cairn_storedb_writer;

/*
 * Open read-write (creating when asked), check the schema, take the shared
 * big-lock and try the write lock once.  Strings are copied.  CAIRN_EIO when
 * the database cannot be opened or written (permissions: the message names
 * the file), CAIRN_ENOENT when it does not exist and CREATE is not set,
 * CAIRN_EUNSUPPORTED for another schema, CAIRN_EBUSY when it stays locked.
 */
int cairn_storedb_writer_open(struct cairn_storedb_writer **out,
			      const struct cairn_storedb_writer_config *cfg,
			      struct cairn_error *err);
void cairn_storedb_writer_free(struct cairn_storedb_writer *w);

/* 1 when the database was created by this open, else 0. */
int cairn_storedb_writer_created(const struct cairn_storedb_writer *w);

/* 1 when path is valid, 0 when not, or a negative error (CAIRN_EBUSY...). */
int cairn_storedb_writer_is_valid(struct cairn_storedb_writer *w, const char *path,
				  struct cairn_error *err);

/* One output of a derivation; both strings owned by whoever made it. */
struct cairn_storedb_drv_output {
	char *name; /* "out", "dev", ... */
	char *path; /* full store path */
};

/* A path to register; everything borrowed for the call. */
struct cairn_storedb_newpath {
	const char *path;	    /* full store path */
	struct cairn_hash nar_hash; /* SHA-256 */
	uint64_t nar_size;	    /* > 0 */
	const char *deriver;	    /* full .drv path or NULL */
	const char *const *refs;    /* full paths, the path itself included when */
	size_t nrefs;		    /*   it refers to itself */
	const char *const *sigs;    /* "keyname:base64", written as given */
	size_t nsigs;
	const char *ca; /* content address or NULL */
	const struct cairn_storedb_drv_output *outputs; /* a .drv's outputs */
	size_t noutputs;
};

/*
 * Register paths[0..n) in one transaction, in that order (references
 * first: see the rules above).  Returns the number of paths newly
 * registered (those already valid are skipped), or a negative error with
 * nothing written: CAIRN_EFORMAT for a malformed field (named),
 * CAIRN_ENOENT for a reference that is not valid, CAIRN_EBUSY when the
 * database stays locked, CAIRN_EIO for other SQLite failures.
 */
int cairn_storedb_writer_register(struct cairn_storedb_writer *w,
				  const struct cairn_storedb_newpath *paths, size_t n,
				  struct cairn_error *err);

/*
 * The outputs of a derivation file (ATerm, "Derive([(name,path,algo,hash),
 * ...],..."), as Nix and Guix record them in DerivationOutputs: outputs
 * with an empty path (floating content-addressed) are left out; every path
 * must be under store_dir.  *out is an array of *n entries to free with
 * cairn_storedb_drv_outputs_free.  CAIRN_EFORMAT for anything else.
 */
int cairn_storedb_drv_parse(const char *text, size_t len, const char *store_dir,
			    struct cairn_storedb_drv_output **out, size_t *n,
			    struct cairn_error *err);
void cairn_storedb_drv_outputs_free(struct cairn_storedb_drv_output *v, size_t n);

#endif
