/*
 * nar-diff.c - a NAR's files as a list, and the differences between two
 * lists (include/cairn/nar-diff.h).
 */
#include <stdlib.h>
#include <string.h>

#include "cairn/nar-diff.h"
#include "cairn/banned.h"

static int list_add(struct cairn_nar_list *l, const struct cairn_nar_node *n,
		    struct cairn_error *err)
{
	if (l->n >= CAIRN_NAR_LIST_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "diff: more than %u files in one nar",
				       CAIRN_NAR_LIST_MAX);
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct cairn_nar_entry *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return cairn_error_set(err, CAIRN_ENOMEM, "diff: out of memory");
		l->v = v;
		l->cap = cap;
	}
	struct cairn_nar_entry *f = &l->v[l->n];
	memset(f, 0, sizeof(*f));
	f->path = strdup(n->path);
	if (!f->path)
		return cairn_error_set(err, CAIRN_ENOMEM, "diff: out of memory");
	f->type = n->type;
	f->exec = n->executable;
	f->size = n->size;
	if (n->type == CAIRN_NAR_SYMLINK && !(f->target = strdup(n->target))) {
		free(f->path);
		return cairn_error_set(err, CAIRN_ENOMEM, "diff: out of memory");
	}
	l->n++;
	return 0;
}

static int cb_entry(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	return list_add(ctx, n, err);
}

static int cb_file_begin(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_nar_list *l = ctx;
	int rc = list_add(l, n, err);
	if (rc)
		return rc;
	if (cairn_sha256_init(&l->sha))
		return cairn_error_set(err, CAIRN_ECRYPTO, "diff: cannot start sha-256");
	l->sha_live = true;
	return 0;
}

static int cb_file_data(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct cairn_nar_list *l = ctx;
	(void)err;
	cairn_sha256_update(&l->sha, data, len);
	return 0;
}

static int cb_file_end(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_nar_list *l = ctx;
	(void)n;
	(void)err;
	cairn_sha256_final(&l->sha, l->v[l->n - 1].sha);
	l->sha_live = false;
	return 0;
}

const struct cairn_nar_callbacks cairn_nar_list_callbacks = {
    .directory_begin = cb_entry,
    .file_begin = cb_file_begin,
    .file_data = cb_file_data,
    .file_end = cb_file_end,
    .symlink = cb_entry,
};

void cairn_nar_list_release(struct cairn_nar_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].path);
		free(l->v[i].target);
	}
	free(l->v);
	if (l->sha_live)
		cairn_sha256_release(&l->sha);
	memset(l, 0, sizeof(*l));
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cairn_nar_entry *)a)->path,
		      ((const struct cairn_nar_entry *)b)->path);
}

void cairn_nar_list_sort(struct cairn_nar_list *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), entry_cmp);
}

static int add_change(struct cairn_nar_change **v, size_t *n, size_t *cap,
		      const struct cairn_nar_entry *a, const struct cairn_nar_entry *b,
		      const char *kind)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct cairn_nar_change *p = realloc(*v, nc * sizeof(*p));
		if (!p)
			return CAIRN_ENOMEM;
		*v = p;
		*cap = nc;
	}
	(*v)[(*n)++] = (struct cairn_nar_change){a, b, kind};
	return 0;
}

int cairn_nar_diff(const struct cairn_nar_list *a, const struct cairn_nar_list *b,
		   struct cairn_nar_change **out, size_t *n_out)
{
	struct cairn_nar_change *v = NULL;
	size_t n = 0, cap = 0, i = 0, j = 0;
	int rc = 0;
	while (rc == 0 && (i < a->n || j < b->n)) {
		int cmp = i >= a->n ? 1 : j >= b->n ? -1 : strcmp(a->v[i].path, b->v[j].path);
		if (cmp < 0) {
			rc = add_change(&v, &n, &cap, &a->v[i++], NULL, "removed");
			continue;
		}
		if (cmp > 0) {
			rc = add_change(&v, &n, &cap, NULL, &b->v[j++], "added");
			continue;
		}
		const struct cairn_nar_entry *x = &a->v[i++], *y = &b->v[j++];
		if (x->type != y->type) {
			rc = add_change(&v, &n, &cap, x, y, "type");
		} else if (x->type == CAIRN_NAR_REGULAR) {
			if (x->exec != y->exec)
				rc = add_change(&v, &n, &cap, x, y, "executable");
			if (rc == 0 && (x->size != y->size || memcmp(x->sha, y->sha, sizeof(x->sha))))
				rc = add_change(&v, &n, &cap, x, y, "content");
		} else if (x->type == CAIRN_NAR_SYMLINK && strcmp(x->target, y->target)) {
			rc = add_change(&v, &n, &cap, x, y, "target");
		}
	}
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n_out = n;
	return 0;
}
