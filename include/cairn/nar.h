/*
 * nar.h - Nix ARchives: a streaming push parser with today's Nix rules, a
 * writer (from a path or from emit calls), safe restore, the `.ls` listing
 * and reading one file out of a NAR.
 *
 * Format (checked against NixOS/nix src/libutil/archive.cc, parseDump/parse
 * and SourceAccessor::dumpPath, 2025 sources).  Every "string" is
 *
 *     u64 little-endian length | bytes | zero bytes up to a multiple of 8
 *
 * and the archive is the string sequence
 *
 *     nar       = "nix-archive-1" node
 *     node      = "(" "type" body ")"
 *     body      = "regular" ["executable" ""] "contents" u64:size data pad
 *               | "symlink" "target" TARGET
 *               | "directory" { "entry" "(" "name" NAME "node" node ")" }
 *
 * The contents of a regular file are framed like a string (size, bytes,
 * zero padding).  Rules enforced here, following today's Nix and its fixes
 * for crafted archives (duplicate entries, CVE-2024-45593; unbounded
 * recursion), plus bounds of our own:
 *   - the tokens appear exactly as above; a token string is at most
 *     CAIRN_NAR_TOKEN_MAX bytes, checked on the length prefix before
 *     anything is buffered; padding bytes must be zero;
 *   - the value after "executable" must be empty;
 *   - entry names are 1..CAIRN_NAR_NAME_MAX bytes, not "." or "..", without
 *     '/' or NUL, and strictly increasing bytewise within a directory (so no
 *     duplicates);
 *   - symlink targets are 1..CAIRN_NAR_TARGET_MAX bytes without NUL;
 *   - a node has at most CAIRN_NAR_DEPTH_MAX - 1 directories above it;
 *   - a file's size is at most the configured limit;
 *   - nothing follows the root node.
 * The parser holds no recursion and a fixed amount of memory (about 20 KiB)
 * whatever the input.
 *
 * Paths handed to callbacks are relative to the root: "" for the root
 * itself, "a/b/c" below it.
 */
#ifndef CAIRN_NAR_H
#define CAIRN_NAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"
#include "cairn/hash.h"

#define CAIRN_NAR_MAGIC "nix-archive-1"
#define CAIRN_NAR_TOKEN_MAX 32	  /* longest tag string ("directory" is 9) */
#define CAIRN_NAR_NAME_MAX 255	  /* longest entry name */
#define CAIRN_NAR_TARGET_MAX 4095 /* longest symlink target */
#define CAIRN_NAR_DEPTH_MAX 64	  /* nodes have fewer directories above them */
/* Longest relative path: 63 names of 255 bytes and their separators. */
#define CAIRN_NAR_PATH_MAX ((CAIRN_NAR_DEPTH_MAX - 1) * (CAIRN_NAR_NAME_MAX + 1))
/* Default bound on one file's size: 1 TiB. */
#define CAIRN_NAR_FILE_MAX_DEFAULT ((uint64_t)1 << 40)

enum cairn_nar_type {
	CAIRN_NAR_REGULAR = 1,
	CAIRN_NAR_DIRECTORY,
	CAIRN_NAR_SYMLINK,
};

/* Bounds (and one option) for a parse; zero fields take the defaults. */
struct cairn_nar_limits {
	uint64_t max_file_size; /* default CAIRN_NAR_FILE_MAX_DEFAULT */
	uint64_t max_nar_size;	/* whole archive; default unbounded */
	unsigned max_depth;	/* at most CAIRN_NAR_DEPTH_MAX (the default) */
	/*
	 * Do not compute the SHA-256 (cairn_nar_parser_hash then fails).  For
	 * callers that never look at it, e.g. restoring a local stream:
	 * hashing is a third of a restore's CPU time.
	 */
	bool no_hash;
};

/*
 * What a callback is told about a node.  Borrowed: valid only during the
 * callback.  Strings are NUL-terminated (names and targets cannot hold NUL).
 */
struct cairn_nar_node {
	enum cairn_nar_type type;
	const char *path; /* "" for the root, "a/b" below */
	size_t path_len;
	const char *name; /* last component of path; "" for the root */
	size_t name_len;
	unsigned depth;	     /* number of components in path */
	bool executable;     /* regular files */
	uint64_t size;	     /* regular files: contents size */
	uint64_t nar_offset; /* regular files: offset of the first content byte */
	const char *target;  /* symlinks */
	size_t target_len;
};

/*
 * Callbacks see the archive as it streams: file_end comes after a file's
 * contents and padding, before its closing ")" is read, and the archive may
 * still be refused later.  Only a successful finish means it was valid, so
 * a consumer must not trust what it built before that (restore keeps
 * everything in a temporary directory until commit for this reason).
 *
 * Callbacks; any may be NULL.  A non-zero return stops the parse: a negative
 * enum cairn_err is passed on as is, anything else becomes CAIRN_ECANCELED.
 * err is the one given to feed/finish, so a callback can say what failed.
 * file_data gets pointers into the caller's buffer whenever possible.
 */
struct cairn_nar_callbacks {
	int (*directory_begin)(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err);
	int (*directory_end)(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err);
	int (*file_begin)(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err);
	int (*file_data)(void *ctx, const void *data, size_t len, struct cairn_error *err);
	int (*file_end)(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err);
	int (*symlink)(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err);
};

/* ---- push parser (nar-parse.c) ---------------------------------------- */

struct cairn_nar_parser;

/*
 * A new parser, or NULL when out of memory.  cb and ctx are borrowed for the
 * parser's life; lim may be NULL (defaults).
 */
struct cairn_nar_parser *cairn_nar_parser_new(const struct cairn_nar_callbacks *cb, void *ctx,
					      const struct cairn_nar_limits *lim);
/*
 * Feed the next len bytes, split anywhere.  0, or the first error; after an
 * error every later call fails with the same code.
 */
int cairn_nar_parser_feed(struct cairn_nar_parser *p, const void *data, size_t len,
			  struct cairn_error *err);
/* End of input: fails with CAIRN_ETRUNCATED unless the root node is complete. */
int cairn_nar_parser_finish(struct cairn_nar_parser *p, struct cairn_error *err);
/* SHA-256 of the archive: 0 after a successful finish, else CAIRN_EINVAL
 * (also when no_hash was set). */
int cairn_nar_parser_hash(const struct cairn_nar_parser *p, struct cairn_hash *out);
/* Bytes consumed so far (the NAR size after finish). */
uint64_t cairn_nar_parser_size(const struct cairn_nar_parser *p);
void cairn_nar_parser_free(struct cairn_nar_parser *p);

/* Parse a whole NAR held in memory (cb may be NULL: validate and hash only). */
int cairn_nar_parse_buffer(const void *nar, size_t len, const struct cairn_nar_callbacks *cb,
			   void *ctx, const struct cairn_nar_limits *lim,
			   struct cairn_hash *hash_out, struct cairn_error *err);

/* ---- writer (nar-write.c) --------------------------------------------- */

/* Where NAR bytes go; returns 0 or a negative enum cairn_err. */
typedef int (*cairn_nar_write_fn)(void *ctx, const void *data, size_t len, struct cairn_error *err);

struct cairn_nar_writer;

/*
 * A writer sending its output to fn(ctx, ...) in large chunks; NULL when out
 * of memory.  The emit calls below must form one valid NAR: entries in
 * increasing order with valid names, file data adding up to the size
 * announced.  Misuse fails with CAIRN_EINVAL and leaves the writer failed.
 */
struct cairn_nar_writer *cairn_nar_writer_new(cairn_nar_write_fn fn, void *ctx);
/* Inside a directory: open the entry NAME; one node must follow. */
int cairn_nar_write_entry_begin(struct cairn_nar_writer *w, const char *name, size_t name_len,
				struct cairn_error *err);
int cairn_nar_write_entry_end(struct cairn_nar_writer *w, struct cairn_error *err);
int cairn_nar_write_directory_begin(struct cairn_nar_writer *w, struct cairn_error *err);
int cairn_nar_write_directory_end(struct cairn_nar_writer *w, struct cairn_error *err);
int cairn_nar_write_file_begin(struct cairn_nar_writer *w, bool executable, uint64_t size,
			       struct cairn_error *err);
int cairn_nar_write_file_data(struct cairn_nar_writer *w, const void *data, size_t len,
			      struct cairn_error *err);
int cairn_nar_write_file_end(struct cairn_nar_writer *w, struct cairn_error *err);
int cairn_nar_write_symlink(struct cairn_nar_writer *w, const char *target, size_t target_len,
			    struct cairn_error *err);
/*
 * Serialise the file, symlink or directory tree at path (not following a
 * symlink at path itself), as `nix-store --dump` does.  One path per writer.
 */
int cairn_nar_write_path(struct cairn_nar_writer *w, const char *path, struct cairn_error *err);
/*
 * Have cairn_nar_write_path hand the contents of regular files of at least
 * min_size bytes to fn, as an open fd and its size, instead of reading
 * them: fn must deliver exactly those size bytes downstream itself (0) or
 * fail.  The writer flushes its buffer first, so they follow every byte
 * written before.  For servers that send file contents without copying
 * them (cairn_httpd_stream_write_file).
 */
typedef int (*cairn_nar_file_fn)(void *ctx, int fd, uint64_t size, struct cairn_error *err);
void cairn_nar_writer_set_file_fn(struct cairn_nar_writer *w, cairn_nar_file_fn fn, void *ctx,
				  uint64_t min_size);
/* Flush buffered output; fails with CAIRN_EINVAL if the NAR is incomplete. */
int cairn_nar_writer_finish(struct cairn_nar_writer *w, struct cairn_error *err);
/* Bytes of NAR emitted so far (including what is still buffered). */
uint64_t cairn_nar_writer_size(const struct cairn_nar_writer *w);
void cairn_nar_writer_free(struct cairn_nar_writer *w);

/*
 * Callbacks that re-emit a parsed NAR through a writer (ctx is the writer):
 * parse -> write is byte-identical.
 */
extern const struct cairn_nar_callbacks cairn_nar_writer_callbacks;

/* Dump path to fn(ctx, ...) in one call. */
int cairn_nar_dump_path(const char *path, cairn_nar_write_fn fn, void *ctx,
			struct cairn_error *err);
/* SHA-256 and size of the NAR of path, without materialising the NAR. */
int cairn_nar_hash_path(const char *path, struct cairn_hash *hash, uint64_t *size,
			struct cairn_error *err);

/* ---- restore (nar-restore.c) ------------------------------------------ */

/*
 * Materialise a NAR at target (which must not exist).  Everything is built
 * in a fresh sibling "<target>.tmp-XXXXXX" through directory descriptors,
 * never following a symlink, and renamed into place by commit.  Freeing a
 * restore that was not committed removes everything it created.
 * Permissions as `nix-store --restore`: files 0666 and directories 0777
 * less the umask; executables get all three x bits added.
 */
struct cairn_nar_restore;

int cairn_nar_restore_new(const char *target, struct cairn_nar_restore **out,
			  struct cairn_error *err);
/* The callbacks to give the parser, with the restore as ctx. */
extern const struct cairn_nar_callbacks cairn_nar_restore_callbacks;

enum cairn_nar_restore_flags {
	/* fsync each file when it is complete and each directory after its
	 * entries, and the parent after the rename: once commit returns, the
	 * tree and its name are on disk (files first, then their directory). */
	CAIRN_NAR_RESTORE_SYNC = 1 << 0,
	/* A store's metadata, as Nix's canonicalisePathMetaData leaves it:
	 * files 0444 (0555 when executable), directories 0555, and every
	 * entry's mtime (symlinks' too) 1, one second into the epoch. */
	CAIRN_NAR_RESTORE_CANONICAL = 1 << 1,
};
/* Set flags (enum cairn_nar_restore_flags) before the first callback. */
void cairn_nar_restore_set_flags(struct cairn_nar_restore *r, unsigned flags);
/* After a successful parser finish: rename into place (CAIRN_EEXIST if taken). */
int cairn_nar_restore_commit(struct cairn_nar_restore *r, struct cairn_error *err);
void cairn_nar_restore_free(struct cairn_nar_restore *r);

/* ---- listing (nar-ls.c) ----------------------------------------------- */

/*
 * The `.ls` JSON listing Nix's binary caches serve, as today's Nix prints
 * it (nlohmann::json: keys sorted, no spaces):
 *   {"root":NODE,"version":1}
 *   directory: {"entries":{"NAME":NODE,...},"type":"directory"}
 *   regular:   {["executable":true,]"narOffset":N,"size":N,"type":"regular"}
 *   symlink:   {"target":"...","type":"symlink"}
 * narOffset is the offset of the file's first content byte in the NAR.
 * Strings are escaped as nlohmann::json does ("\"", "\\", \b \f \n \r \t,
 * other control bytes as \u00xx, the rest verbatim); bytes that are not
 * valid UTF-8 (where Nix would throw) become U+FFFD.
 */
#define CAIRN_NAR_LS_MAX_DEFAULT ((size_t)64 << 20)

struct cairn_nar_ls;

/* max_json: bound on the listing's size (0 = CAIRN_NAR_LS_MAX_DEFAULT). */
struct cairn_nar_ls *cairn_nar_ls_new(size_t max_json);
extern const struct cairn_nar_callbacks cairn_nar_ls_callbacks;
/*
 * After a successful parser finish: hand over the JSON (NUL-terminated,
 * free() it).  0 or CAIRN_EINVAL / CAIRN_ENOMEM.
 */
int cairn_nar_ls_take(struct cairn_nar_ls *ls, char **json, size_t *len, struct cairn_error *err);
void cairn_nar_ls_free(struct cairn_nar_ls *ls);

/* ---- reading one file (nar-ls.c) -------------------------------------- */

/*
 * Callbacks that pass the contents of the regular file at a relative path
 * ("bin/hello"; "" for a NAR that is a single file) to out(octx, ...),
 * skipping everything else.  After the parser finishes, cairn_nar_cat_done
 * says whether it was found (CAIRN_ENOENT, or CAIRN_EFORMAT naming its type
 * when the path is a directory or symlink).
 */
struct cairn_nar_cat {
	const char *path; /* borrowed */
	size_t path_len;
	cairn_nar_write_fn out;
	void *octx;
	bool found;
	bool active;
	enum cairn_nar_type type;
};

void cairn_nar_cat_init(struct cairn_nar_cat *c, const char *path, cairn_nar_write_fn out,
			void *octx);
extern const struct cairn_nar_callbacks cairn_nar_cat_callbacks;
int cairn_nar_cat_done(const struct cairn_nar_cat *c, struct cairn_error *err);

#endif
