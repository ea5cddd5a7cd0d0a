/*
 * storedb-sql.h - the SQL storedb.c and storedb-scan.c run (internal; the
 * unit test includes it to check with EXPLAIN QUERY PLAN that lookups use
 * the path index).
 *
 * STOREDB_SQL_INFO_FMT takes the three optional columns (or NULL) in order
 * ultimate, sigs, ca, and a WHERE clause.
 */
#ifndef CAIRN_STOREDB_SQL_H
#define CAIRN_STOREDB_SQL_H

#define STOREDB_SQL_INFO_FMT                                                                       \
	"SELECT id, path, hash, registrationTime, deriver, narSize, %s, %s, %s "                   \
	"FROM ValidPaths WHERE %s"

/* Hash-part lookup: ?1 = "<dir>/<hashpart>-", ?2 = "<dir>/<hashpart>.", the
 * smallest string after every "<dir>/<hashpart>-<name>"; a range on the
 * unique index of path, as Nix's queryPathFromHashPart does with ">=". */
#define STOREDB_SQL_WHERE_RANGE "path >= ?1 AND path < ?2 ORDER BY path LIMIT 1"
#define STOREDB_SQL_WHERE_PATH "path = ?1"

#define STOREDB_SQL_REFS                                                                           \
	"SELECT v.path FROM Refs r JOIN ValidPaths v ON v.id = r.reference "                       \
	"WHERE r.referrer = ?1 ORDER BY v.path"

#define STOREDB_SQL_COUNT "SELECT count(*) FROM ValidPaths"

#define STOREDB_SQL_PAGE "SELECT id, path FROM ValidPaths WHERE id > ?1 ORDER BY id LIMIT ?2"

/* The newest ?1 paths, newest first: a walk down the primary key. */
#define STOREDB_SQL_RECENT "SELECT id, path FROM ValidPaths ORDER BY id DESC LIMIT ?1"

/* The LIMIT inside the recursive part stops the walk once ?2 distinct paths
 * were found, so a huge closure costs at most ?2 rows of work. */
#define STOREDB_SQL_CLOSURE                                                                        \
	"WITH RECURSIVE c(id) AS ("                                                                \
	"SELECT id FROM ValidPaths WHERE path = ?1 "                                               \
	"UNION SELECT r.reference FROM Refs r JOIN c ON r.referrer = c.id LIMIT ?2) "              \
	"SELECT v.path FROM c JOIN ValidPaths v ON v.id = c.id ORDER BY v.path"

#endif
