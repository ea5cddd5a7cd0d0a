/*
 * fuzz-nar.c - the NAR parser on arbitrary bytes, fed in pseudo-random
 * splits, with the listing, a writer and a restore behind it.  Properties
 * checked (abort on failure, so libFuzzer reports them):
 *   - a split feed gives the same verdict as a whole feed;
 *   - an accepted archive re-written through the writer is byte-identical;
 *   - a restore into a scratch directory leaves nothing behind when it is
 *     not committed, whatever the input.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn/buf.h"
#include "cairn/cairn.h"
#include "cairn/nar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char scratch[64];

static int to_buf(void *ctx, const void *d, size_t len, struct cairn_error *err)
{
	(void)err;
	return cairn_buf_append(ctx, d, len);
}

static int feed_split(struct cairn_nar_parser *p, const uint8_t *data, size_t size)
{
	uint32_t x = 2166136261u ^ (uint32_t)size;
	size_t off = 0;
	int rc = 0;
	while (off < size && !rc) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		size_t n = 1 + x % 67;
		if (n > size - off)
			n = size - off;
		rc = cairn_nar_parser_feed(p, data + off, n, NULL);
		off += n;
	}
	return rc ? rc : cairn_nar_parser_finish(p, NULL);
}

static bool scratch_empty(void)
{
	DIR *d = opendir(scratch);
	if (!d)
		return false;
	struct dirent *de;
	bool empty = true;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = false;
	closedir(d);
	return empty;
}

static void scratch_remove(void)
{
	rmdir(scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!scratch[0]) {
		if (cairn_init() != 0)
			abort();
		snprintf(scratch, sizeof(scratch), "/tmp/cairn-fuzz-nar.XXXXXX");
		if (!mkdtemp(scratch))
			abort();
		atexit(scratch_remove);
	}
	struct cairn_nar_limits lim = {.max_file_size = 1u << 24};

	/* whole feed, with the listing */
	struct cairn_nar_ls *ls = cairn_nar_ls_new(1u << 22);
	struct cairn_error err;
	cairn_error_init(&err);
	int whole =
	    cairn_nar_parse_buffer(data, size, &cairn_nar_ls_callbacks, ls, &lim, NULL, &err);
	if (whole != 0 && (err.code != whole || !err.msg[0]))
		abort(); /* every failure explains itself */
	if (whole == 0) {
		char *json;
		if (cairn_nar_ls_take(ls, &json, NULL, NULL) == 0)
			free(json);
	}
	cairn_nar_ls_free(ls);

	/* split feed through a writer: same verdict, identical bytes */
	struct cairn_buf out = CAIRN_BUF_INIT(1u << 26);
	struct cairn_nar_writer *w = cairn_nar_writer_new(to_buf, &out);
	struct cairn_nar_parser *p = cairn_nar_parser_new(&cairn_nar_writer_callbacks, w, &lim);
	if (!w || !p)
		abort();
	int split = feed_split(p, data, size);
	if (split == CAIRN_ELIMIT || whole == CAIRN_ELIMIT) {
		/* the listing's bound may trip where the writer's does not */
	} else if ((split == 0) != (whole == 0)) {
		abort();
	}
	if (split == 0) {
		if (cairn_nar_writer_finish(w, NULL) != 0 || out.len != size ||
		    memcmp(out.data, data, size) != 0)
			abort();
	}
	cairn_nar_parser_free(p);
	cairn_nar_writer_free(w);
	cairn_buf_release(&out);

	/* restore, never committed: nothing may remain */
	char target[96];
	snprintf(target, sizeof(target), "%s/t", scratch);
	struct cairn_nar_restore *r;
	if (cairn_nar_restore_new(target, &r, NULL) == 0) {
		p = cairn_nar_parser_new(&cairn_nar_restore_callbacks, r, &lim);
		if (!p)
			abort();
		feed_split(p, data, size);
		cairn_nar_parser_free(p);
		cairn_nar_restore_free(r);
	}
	if (!scratch_empty())
		abort();
	return 0;
}
