/*
 * paths-list.h - a list of store paths, as `cairn sync --paths` and
 * `cairn monitor --paths` read it: one a line, blank lines and '#'
 * comments skipped, trailing white space dropped; xz-compressed when its
 * bytes say so (Hydra's store-paths.xz).  Where the bytes come from (a
 * file, or an HTTP body on the caller's client) is the caller's.
 */
#ifndef CAIRN_PATHS_LIST_H
#define CAIRN_PATHS_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "cairn/buf.h"
#include "cairn/error.h"

/* A line longer than this is refused (a store path is far shorter). */
#define CAIRN_PATHS_LIST_LINE_MAX 4096

/* where is an http:// or https:// URL (else a file name). */
bool cairn_paths_list_is_url(const char *where);

/* The bytes of the file into out (its limit bounds them: CAIRN_ELIMIT). */
int cairn_paths_list_file(const char *file, struct cairn_buf *out, struct cairn_error *err);

/*
 * Each store path of the list in raw[0..len) (decompressed first when xz,
 * to at most max bytes), NUL-terminated, to fn; fn returns 0 to go on or a
 * negative cairn_err to stop, which is returned.
 */
int cairn_paths_list_each(const void *raw, size_t len, size_t max,
			  int (*fn)(void *ctx, const char *path), void *ctx,
			  struct cairn_error *err);

#endif
