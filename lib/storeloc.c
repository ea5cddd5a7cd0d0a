/*
 * storeloc.c - a store's directory, database and logs from its root and
 * kind (storeloc.h).  Only path building and stat(): opening is storedb's.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cairn/storeloc.h"
#include "cairn/banned.h"

/* Where each kind keeps its parts, relative to the root. */
struct layout {
	const char *store_dir, *db, *logs;
};
static const struct layout nix_layout = {"/nix/store", "/nix/var/nix/db/db.sqlite",
					 "/nix/var/log/nix/drvs"};
static const struct layout guix_layout = {"/gnu/store", "/var/guix/db/db.sqlite",
					  "/var/log/guix/drvs"};

static const struct layout *layout_of(enum cairn_storedb_kind kind)
{
	return kind == CAIRN_STOREDB_GUIX ? &guix_layout : &nix_layout;
}

void cairn_storeloc_config_init(struct cairn_storeloc_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
}

const char *cairn_storeloc_kind_name(enum cairn_storedb_kind kind)
{
	return kind == CAIRN_STOREDB_GUIX ? "guix" : "nix";
}

static bool exists(const char *path, bool dir)
{
	struct stat sb;
	return stat(path, &sb) == 0 && (!dir || S_ISDIR(sb.st_mode));
}

/* a + b (b may be NULL: a alone), bounded; NULL with *rc set on failure */
static char *join(const char *a, size_t a_len, const char *b, int *rc)
{
	size_t n = a_len + (b ? strlen(b) : 0);
	if (n >= CAIRN_STORELOC_PATH_MAX) {
		*rc = CAIRN_ELIMIT;
		return NULL;
	}
	char *s = malloc(n + 1);
	if (!s) {
		*rc = CAIRN_ENOMEM;
		return NULL;
	}
	memcpy(s, a, a_len);
	s[a_len] = '\0';
	if (b)
		memcpy(s + a_len, b, strlen(b) + 1);
	return s;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);
	return n >= t && !strcmp(s + n - t, tail);
}

/* The kind that the files under root say, or 0. */
static enum cairn_storedb_kind detect(const char *root, size_t root_len, int *rc)
{
	static const struct {
		enum cairn_storedb_kind kind;
		const char *tail;
		bool dir;
	} probes[] = {
		{CAIRN_STOREDB_NIX, "/nix/var/nix/db/db.sqlite", false},
		{CAIRN_STOREDB_GUIX, "/var/guix/db/db.sqlite", false},
		{CAIRN_STOREDB_NIX, "/nix/store", true},
		{CAIRN_STOREDB_GUIX, "/gnu/store", true},
	};
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		char *p = join(root, root_len, probes[i].tail, rc);
		if (!p)
			return 0;
		bool found = exists(p, probes[i].dir);
		free(p);
		if (found)
			return probes[i].kind;
	}
	return 0;
}

/* The logs beside a database at db, or NULL (not a layout we know). */
static char *logs_beside(const char *db, int *rc)
{
	static const char *const tails[][2] = {{"/nix/db/db.sqlite", "/log/nix/drvs"},
					       {"/guix/db/db.sqlite", "/log/guix/drvs"}};
	for (size_t t = 0; t < 2; t++)
		if (ends_with(db, tails[t][0]))
			return join(db, strlen(db) - strlen(tails[t][0]), tails[t][1], rc);
	return NULL;
}

int cairn_storeloc_locate(struct cairn_storeloc *out, const struct cairn_storeloc_config *cfg,
			  struct cairn_error *err)
{
	struct cairn_storeloc l;
	const char *root = cfg->root ? cfg->root : "";
	size_t rl = strlen(root);
	int rc = 0;

	memset(&l, 0, sizeof(l));
	while (rl > 0 && root[rl - 1] == '/')
		rl--;
	if (cfg->store_dir && cfg->store_dir[0] != '/')
		return cairn_error_set(err, CAIRN_EINVAL,
				       "store directory '%s' is not an absolute path",
				       cfg->store_dir);
	l.kind = cfg->kind;
	if (!l.kind)
		l.kind = detect(root, rl, &rc);
	if (rc)
		goto fail;
	if (!l.kind)
		l.kind = cfg->store_dir && !strcmp(cfg->store_dir, "/gnu/store")
			     ? CAIRN_STOREDB_GUIX
			     : CAIRN_STOREDB_NIX;
	const struct layout *lay = layout_of(l.kind);
	const char *sd = cfg->store_dir ? cfg->store_dir : lay->store_dir;
	size_t sdl = strlen(sd);
	while (sdl > 1 && sd[sdl - 1] == '/')
		sdl--;
	/* A store directory of its own has no default places for the rest. */
	bool standard = !strncmp(sd, lay->store_dir, sdl) && !lay->store_dir[sdl];

	if (!(l.root = join(root, rl, NULL, &rc)) || !(l.store_dir = join(sd, sdl, NULL, &rc)) ||
	    !(l.real_store_dir = join(root, rl, l.store_dir, &rc)))
		goto fail;
	if (cfg->db_path)
		l.db_path = join(cfg->db_path, strlen(cfg->db_path), NULL, &rc);
	else if (standard)
		l.db_path = join(root, rl, lay->db, &rc);
	if (rc)
		goto fail;
	if (cfg->log_dir)
		l.log_dir = join(cfg->log_dir, strlen(cfg->log_dir), NULL, &rc);
	else if (cfg->db_path)
		l.log_dir = logs_beside(cfg->db_path, &rc);
	else if (standard)
		l.log_dir = join(root, rl, lay->logs, &rc);
	if (rc)
		goto fail;
	l.has_store_dir = exists(l.real_store_dir, true);
	l.has_db = l.db_path && exists(l.db_path, false);
	*out = l;
	return 0;
fail:
	cairn_storeloc_release(&l);
	if (rc == CAIRN_ELIMIT)
		return cairn_error_set(err, rc, "store root '%.*s': a path longer than %d bytes",
				       (int)(rl > 256 ? 256 : rl), root, CAIRN_STORELOC_PATH_MAX);
	return cairn_error_set(err, rc, "out of memory");
}

void cairn_storeloc_release(struct cairn_storeloc *loc)
{
	free(loc->root);
	free(loc->store_dir);
	free(loc->real_store_dir);
	free(loc->db_path);
	free(loc->log_dir);
	memset(loc, 0, sizeof(*loc));
}
