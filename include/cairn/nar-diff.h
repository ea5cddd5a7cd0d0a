/*
 * nar-diff.h - the files of a NAR as a list, and what differs between two
 * lists: which entries were added or removed, and for those in both a
 * change of type, of the executable bit, of content (size or SHA-256) or
 * of a symlink's target.
 *
 * A list is filled by the NAR parser (cairn_nar_list_callbacks, with the
 * list as ctx): from a download (the engine's sink), or from a tree on
 * disk through cairn_nar_dump_path.  Nothing is unpacked.  Entries are
 * bounded by CAIRN_NAR_LIST_MAX (names and targets by the parser's own
 * limits).
 */
#ifndef CAIRN_NAR_DIFF_H
#define CAIRN_NAR_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/hash.h"
#include "cairn/nar.h"

#define CAIRN_NAR_LIST_MAX 1000000u /* entries of one NAR */

struct cairn_nar_entry {
	char *path; /* "" for the root, else relative ("bin/hello") */
	enum cairn_nar_type type;
	bool exec;
	uint64_t size;
	uint8_t sha[CAIRN_SHA256_LEN]; /* a regular file's contents */
	char *target;		       /* a symlink's */
};

struct cairn_nar_list {
	struct cairn_nar_entry *v;
	size_t n, cap;
	/* while a file streams */
	struct cairn_sha256 sha;
	bool sha_live;
};

/* The parser callbacks that fill a list (ctx: the list). */
extern const struct cairn_nar_callbacks cairn_nar_list_callbacks;

/* Empty it, keeping nothing; safe on a zeroed list and twice. */
void cairn_nar_list_release(struct cairn_nar_list *l);
/* Sort by path, for cairn_nar_diff. */
void cairn_nar_list_sort(struct cairn_nar_list *l);

struct cairn_nar_change {
	const struct cairn_nar_entry *a, *b; /* a NULL a: added; a NULL b: removed */
	const char *kind; /* "added", "removed", "type", "executable", "content", "target" */
};

/*
 * What changed from a to b (both sorted), into *out (free() it; NULL when
 * nothing did), *n_out entries.  0 or CAIRN_ENOMEM.
 */
int cairn_nar_diff(const struct cairn_nar_list *a, const struct cairn_nar_list *b,
		   struct cairn_nar_change **out, size_t *n_out);

#endif
