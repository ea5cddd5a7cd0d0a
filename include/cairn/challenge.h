/*
 * challenge.h - compare what several binary caches, and the local store,
 * say about the same store items (`cairn challenge`, and the monitor).
 *
 * Phase 1 asks every server for every item at once (survey.h).  Phase 2
 * reads the local store's hashes: its database (Nix or Guix) when there is
 * one, else the NAR hash of the unpacked tree.  Phase 3 groups the sources
 * of each item by NarHash: identical (one group, two sources or more),
 * differs, or inconclusive (fewer than two sources).  With diff, phase 4
 * fetches one NAR of each group of each differing item through the
 * download engine (every server of the group in turn, checked against the
 * group's NarHash, resumed and failed over like any download; the local
 * tree when no server delivers), lists its files without unpacking them
 * (nar-diff.h), and compares the lists.
 *
 * Narinfos are compared whether or not they are signed: the point is to
 * catch servers that disagree, signed or not.
 */
#ifndef CAIRN_CHALLENGE_H
#define CAIRN_CHALLENGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"
#include "cairn/hash.h"
#include "cairn/http.h"
#include "cairn/nar-diff.h"
#include "cairn/nar.h"
#include "cairn/narinfo.h"

struct cairn_survey;

/* NARs fetched at once for diffs: each holds a decoder (an xz one may take
 * up to CAIRN_CODEC_XZ_MEMLIMIT), so the count is kept small. */
#define CAIRN_CHALLENGE_DOWNLOADS_MAX 8
#define CAIRN_CHALLENGE_LOCAL "local"

enum cairn_challenge_verdict {
	CAIRN_CHALLENGE_IDENTICAL = 0,
	CAIRN_CHALLENGE_DIFFERS,
	CAIRN_CHALLENGE_INCONCLUSIVE,
};

/* "identical", "differs", "inconclusive"; static. */
const char *cairn_challenge_verdict_name(enum cairn_challenge_verdict v);

/* What one server said about one item. */
struct cairn_challenge_answer {
	int outcome; /* enum cairn_survey_outcome, -1 when not answered */
	struct cairn_narinfo *ni;
	char *reason;
};

/* One NAR of a group, fetched for a diff. */
struct cairn_challenge_side {
	int group;
	size_t src;   /* the source that delivered (or failed last) */
	char **notes; /* sources of the group whose NAR failed, and why */
	size_t n_notes;
	bool ok;
	struct cairn_error err; /* !ok: why */
	struct cairn_nar_list files;
	/* with unpack_dir: the NAR unpacked there, once ok (malloc'd), or NULL */
	char *tree;
	struct cairn_nar_restore *restore; /* while it streams */
};

struct cairn_challenge_item {
	const char *path;
	struct cairn_challenge_answer *ans; /* per server */
	bool local_present;
	struct cairn_hash local_hash;
	uint64_t local_size;
	char *local_err;
	enum cairn_challenge_verdict verdict;
	int *group; /* per source (servers, then local): group number, -1 none */
	int n_groups;
	struct cairn_challenge_side *sides; /* n_groups, when diffed */
	/* per group k >= 1: the changes from group 0 to group k */
	struct cairn_nar_change **changes;
	size_t *n_changes;
};

struct cairn_challenge_config {
	struct cairn_http *http;		  /* borrowed */
	struct cairn_http_server *const *servers; /* borrowed; may be none */
	size_t n_servers;
	const char *root;    /* the local store under ROOT ("/": the real one), or NULL */
	const char *db_path; /* its database; NULL: ROOT's Nix or Guix one, else the tree */
	bool diff;
	size_t max_inflight; /* narinfo requests at once; 0 for the survey's default */
	/* With diff: also unpack each side's NAR (nar.h restore) into
	 * unpack_dir/<item>.<group>, when its NarSize is at most unpack_max
	 * (0: no bound), for a tool that compares trees (diffoscope).  The
	 * caller owns the directory and removes it. */
	const char *unpack_dir;
	uint64_t unpack_max;
};

struct cairn_challenge;

int cairn_challenge_new(struct cairn_challenge **out, const struct cairn_challenge_config *cfg,
			struct cairn_error *err);
void cairn_challenge_free(struct cairn_challenge *c);
/* Add a store path; CAIRN_EFORMAT for one that is not. */
int cairn_challenge_add(struct cairn_challenge *c, const char *path, struct cairn_error *err);
/* The survey paths may be added to (NULL without servers). */
struct cairn_survey *cairn_challenge_survey(struct cairn_challenge *c);
/* All phases.  Sources that fail are results, not errors. */
int cairn_challenge_run(struct cairn_challenge *c, struct cairn_error *err);

size_t cairn_challenge_count(const struct cairn_challenge *c);
const struct cairn_challenge_item *cairn_challenge_item(const struct cairn_challenge *c, size_t i);
/* A source's name: a server's URL, or CAIRN_CHALLENGE_LOCAL (src == n_servers). */
const char *cairn_challenge_source(const struct cairn_challenge *c, size_t src);
size_t cairn_challenge_n_servers(const struct cairn_challenge *c);

#endif
