/*
 * cmd-challenge.c - `cairn challenge`: compare the NarHash that several
 * binary caches, and the local store, give for the same store items.  The
 * work is libcairn's (challenge.h); this file reads options and prints the
 * report.  The key names in signatures are shown as claimed, not verified.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cairn/challenge.h"
#include "cairn/hash.h"
#include "cairn/http.h"
#include "cairn/nar.h"
#include "cairn/narinfo.h"
#include "cairn/storedb.h"
#include "cairn/storepath.h"
#include "cairn/survey.h"
#include "cli.h"
#include "cairn/banned.h"

/* Options; the paths are left in argv. */
struct opts {
	struct cairn_http_config http;
	struct cli_list urls;
	bool json, diff;
	const char *root, *db_path;
	long jobs;
};

static const struct cli_option challenge_options[] = {
	OPT_LIST(0, "from", struct opts, urls, "URL", CAIRN_SURVEY_MAX_SERVERS,
		 "a binary cache (repeatable)"),
	OPT_STRING(0, "store", struct opts, root, "ROOT",
		   "the local store under ROOT: with a Nix or Guix database\n"
		   "(ROOT/nix/var/nix/db/db.sqlite, ROOT/var/guix/db/db.sqlite,\n"
		   "or --db FILE) its recorded NarHash; otherwise the NAR hash\n"
		   "of the tree at ROOT/<store path>.  '/' is the real store."),
	OPT_STRING(0, "db", struct opts, db_path, "FILE", "the local store's database"),
	OPT_FLAG(0, "diff", struct opts, diff,
		 "for items that differ, download one NAR of each version\n"
		 "(streamed, never unpacked), check it against its NarHash,\n"
		 "and list the files that differ: added, removed, content,\n"
		 "type, executable bit, symlink target"),
	OPT_FLAG(0, "json", struct opts, json, "one JSON object on stdout"),
	OPT_INT(0, "jobs", struct opts, jobs, "N", 1, CAIRN_SURVEY_INFLIGHT_MAX,
		"narinfo requests in flight at once (default 256)"),
	OPT_TABLE(struct opts, http, cli_http_options),
	OPT_END(),
};

static const struct cli_spec challenge_spec = {
	.usage =
    "usage: cairn challenge --from URL [--from URL...] [--store ROOT [--db FILE]]\n"
    "                       [--diff] [--json] [--jobs N] (STOREPATH... | -)\n"
    "\n"
    "For each store path (arguments, or one a line on stdin with '-'), show the\n"
    "NarHash every cache (--from) announces and, with --store, the hash of the\n"
    "local copy, and say whether they are identical, differ (naming which\n"
    "sources agree with which) or are inconclusive (fewer than two sources).\n"
    "Narinfos are compared whether they are signed or not.\n"
    "\n",
	.options = challenge_options,
	.tail =
    "\n"
    "Exit 0 when every item is identical, 2 when any differs, 1 when none\n"
    "differs but some are inconclusive.\n",
};

/* ---- output ------------------------------------------------------------ */

static const char *source_name(const struct cairn_challenge *c, size_t src)
{
	return cairn_challenge_source(c, src);
}


static const char *type_name(enum cairn_nar_type t)
{
	return t == CAIRN_NAR_REGULAR	  ? "regular"
	       : t == CAIRN_NAR_DIRECTORY ? "directory"
					  : "symlink";
}

/* The key names a narinfo's signatures claim, comma-separated. */
static void signers(const struct cairn_narinfo *ni, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < ni->n_sigs && len + 1 < cap; i++) {
		const char *colon = strchr(ni->sigs[i], ':');
		int n = colon ? (int)(colon - ni->sigs[i]) : (int)strlen(ni->sigs[i]);
		len += (size_t)snprintf(out + len, cap - len, "%s%.*s", len ? "," : "", n,
					ni->sigs[i]);
	}
	if (ni->signature && len + 1 < cap) {
		/* "1;host;base64" */
		const char *h = strchr(ni->signature, ';');
		const char *e = h ? strchr(h + 1, ';') : NULL;
		if (h && e)
			snprintf(out + len, cap - len, "%s%.*s", len ? "," : "", (int)(e - h - 1),
				 h + 1);
	}
}

static void json_fent(const struct cairn_nar_entry *f)
{
	printf("{\"type\":\"%s\"", type_name(f->type));
	if (f->type == CAIRN_NAR_REGULAR) {
		char hex[2 * CAIRN_SHA256_LEN + 1];
		cairn_base16_encode(f->sha, CAIRN_SHA256_LEN, hex);
		hex[2 * CAIRN_SHA256_LEN] = '\0';
		printf(",\"executable\":%s,\"size\":%llu,\"sha256\":\"%s\"",
		       f->exec ? "true" : "false", (unsigned long long)f->size, hex);
	} else if (f->type == CAIRN_NAR_SYMLINK) {
		printf(",\"target\":");
		cli_json_str(f->target);
	}
	printf("}");
}

static void print_item_json(const struct cairn_challenge *c, const struct cairn_challenge_item *it,
			    bool first)
{
	char hs[CAIRN_HASH_STR_MAX], sg[512];
	printf("%s{\"path\":", first ? "" : ",");
	cli_json_str(it->path);
	printf(",\"verdict\":\"%s\",\"sources\":[", cairn_challenge_verdict_name(it->verdict));
	for (size_t s = 0; s < cairn_challenge_n_servers(c); s++) {
		const struct cairn_challenge_answer *a = &it->ans[s];
		printf("%s{\"source\":", s ? "," : "");
		cli_json_str(source_name(c, s));
		printf(",\"outcome\":\"%s\"",
		       a->outcome < 0 ? "unknown" : cairn_survey_outcome_name(a->outcome));
		if (a->ni) {
			cairn_hash_format(&a->ni->nar_hash, CAIRN_HASH_NIX32, hs, sizeof(hs));
			signers(a->ni, sg, sizeof(sg));
			printf(",\"nar_hash\":\"%s\",\"nar_size\":%llu,\"group\":%d,\"signers\":",
			       hs, (unsigned long long)a->ni->nar_size, it->group[s]);
			cli_json_str(sg);
		}
		if (a->reason) {
			printf(",\"reason\":");
			cli_json_str(a->reason);
		}
		printf("}");
	}
	if (it->local_present || it->local_err) {
		printf(",{\"source\":\"local\"");
		if (it->local_present) {
			cairn_hash_format(&it->local_hash, CAIRN_HASH_NIX32, hs, sizeof(hs));
			printf(",\"outcome\":\"present\",\"nar_hash\":\"%s\",\"group\":%d", hs,
			       it->group[cairn_challenge_n_servers(c)]);
		} else {
			printf(",\"outcome\":\"unknown\",\"reason\":");
			cli_json_str(it->local_err);
		}
		printf("}");
	}
	printf("]");
	if (it->sides) {
		printf(",\"diffs\":[");
		for (int g = 1; g < it->n_groups; g++) {
			const struct cairn_challenge_side *a = &it->sides[0], *b = &it->sides[g];
			printf("%s{\"a\":", g > 1 ? "," : "");
			cli_json_str(source_name(c, a->src));
			printf(",\"b\":");
			cli_json_str(source_name(c, b->src));
			if (a->n_notes + b->n_notes) {
				printf(",\"notes\":[");
				for (size_t k = 0; k < a->n_notes + b->n_notes; k++) {
					printf("%s", k ? "," : "");
					cli_json_str(k < a->n_notes ? a->notes[k]
								: b->notes[k - a->n_notes]);
				}
				printf("]");
			}
			if (!a->ok || !b->ok) {
				printf(",\"error\":");
				cli_json_str(cairn_error_msg(!a->ok ? &a->err : &b->err));
			} else {
				printf(",\"files\":[");
				for (size_t k = 0; k < it->n_changes[g]; k++) {
					const struct cairn_nar_change *ch = &it->changes[g][k];
					printf("%s{\"path\":", k ? "," : "");
					cli_json_str(ch->a ? ch->a->path : ch->b->path);
					printf(",\"change\":\"%s\"", ch->kind);
					if (ch->a) {
						printf(",\"a\":");
						json_fent(ch->a);
					}
					if (ch->b) {
						printf(",\"b\":");
						json_fent(ch->b);
					}
					printf("}");
				}
				printf("]");
			}
			printf("}");
		}
		printf("]");
	}
	printf("}");
}

static void print_fent(const struct cairn_nar_entry *f)
{
	if (f->type == CAIRN_NAR_REGULAR) {
		char hex[17];
		cairn_base16_encode(f->sha, 8, hex);
		hex[16] = '\0';
		printf("%s%s, %llu bytes, sha256 %s...", type_name(f->type),
		       f->exec ? " executable" : "", (unsigned long long)f->size, hex);
	} else if (f->type == CAIRN_NAR_SYMLINK) {
		printf("symlink -> %s", cli_safe_name(f->target, strlen(f->target)));
	} else {
		printf("directory");
	}
}

static void print_item_human(const struct cairn_challenge *c,
			     const struct cairn_challenge_item *it)
{
	char hs[CAIRN_HASH_STR_MAX], sg[512];
	int w = (int)strlen(CAIRN_CHALLENGE_LOCAL);
	for (size_t s = 0; s < cairn_challenge_n_servers(c); s++)
		if ((int)strlen(source_name(c, s)) > w)
			w = (int)strlen(source_name(c, s));
	printf("%s\n", it->path);
	for (size_t s = 0; s < cairn_challenge_n_servers(c); s++) {
		const struct cairn_challenge_answer *a = &it->ans[s];
		printf("  %-*s  ", w, source_name(c, s));
		if (a->ni) {
			cairn_hash_format(&a->ni->nar_hash, CAIRN_HASH_NIX32, hs, sizeof(hs));
			signers(a->ni, sg, sizeof(sg));
			printf("%s  %s%s\n", hs, sg[0] ? "signed by " : "unsigned", cli_safe(sg));
		} else if (a->outcome == CAIRN_SURVEY_ABSENT) {
			printf("absent\n");
		} else {
			printf("%s: %s\n",
			       a->outcome < 0 ? "unknown" : cairn_survey_outcome_name(a->outcome),
			       a->reason ? cli_safe(a->reason) : "no answer");
		}
	}
	if (it->local_present) {
		cairn_hash_format(&it->local_hash, CAIRN_HASH_NIX32, hs, sizeof(hs));
		printf("  %-*s  %s\n", w, CAIRN_CHALLENGE_LOCAL, hs);
	} else if (it->local_err) {
		printf("  %-*s  unknown: %s\n", w, CAIRN_CHALLENGE_LOCAL, cli_safe(it->local_err));
	}
	printf("  %s", cairn_challenge_verdict_name(it->verdict));
	if (it->verdict == CAIRN_CHALLENGE_DIFFERS) {
		printf(":");
		for (int g = 0; g < it->n_groups; g++) {
			printf("%s {", g ? " vs" : "");
			bool first = true;
			for (size_t s = 0; s <= cairn_challenge_n_servers(c); s++) {
				if (it->group[s] != g)
					continue;
				printf("%s%s", first ? "" : ", ", source_name(c, s));
				first = false;
			}
			printf("}");
		}
	}
	printf("\n");
	if (!it->sides)
		return;
	for (int g = 1; g < it->n_groups; g++) {
		const struct cairn_challenge_side *a = &it->sides[0], *b = &it->sides[g];
		for (size_t k = 0; g == 1 && k < a->n_notes; k++)
			printf("  note: %s\n", cli_safe(a->notes[k]));
		for (size_t k = 0; k < b->n_notes; k++)
			printf("  note: %s\n", cli_safe(b->notes[k]));
		printf("  diff %s -> %s:", source_name(c, a->src), source_name(c, b->src));
		if (!a->ok || !b->ok) {
			printf(" cannot compare: %s\n",
			       cli_safe(cairn_error_msg(!a->ok ? &a->err : &b->err)));
			continue;
		}
		printf(" %zu change%s\n", it->n_changes[g], it->n_changes[g] == 1 ? "" : "s");
		for (size_t k = 0; k < it->n_changes[g]; k++) {
			const struct cairn_nar_change *ch = &it->changes[g][k];
			const char *p = ch->a ? ch->a->path : ch->b->path;
			char slashed[CAIRN_NAR_PATH_MAX + 2];
			int sl = snprintf(slashed, sizeof(slashed), "/%s", p);
			printf("    %-10s %s  (", ch->kind,
			       cli_safe_name(slashed, sl < 0 ? 0 : strlen(slashed)));
			if (ch->a)
				print_fent(ch->a);
			if (ch->a && ch->b)
				printf(" => ");
			if (ch->b)
				print_fent(ch->b);
			printf(")\n");
		}
	}
}

/* ---- the command ------------------------------------------------------- */


static int parse_opts(int argc, char **argv, struct opts *o, int *nargs)
{
	int ret = cli_parse_options(&challenge_spec, challenge_options, o, argc, argv, nargs);
	if (ret != CLI_GO_ON)
		return ret;
	if (o->urls.n == 0 && !o->root) {
		cli_error("at least one --from URL (or --store) is required");
		return EXIT_USAGE;
	}
	if (o->db_path && !o->root) {
		cli_error("--db needs --store");
		return EXIT_USAGE;
	}
	if (*nargs == 0) {
		cli_error("no store paths given (use '-' to read them from stdin)");
		return EXIT_USAGE;
	}
	return CLI_GO_ON;
}

/* The report; the exit status. */
static int report(const struct cairn_challenge *c, bool json)
{
	size_t counts[3] = {0, 0, 0}, n_items = cairn_challenge_count(c);
	for (size_t i = 0; i < n_items; i++)
		counts[cairn_challenge_item(c, i)->verdict]++;
	double n = n_items ? (double)n_items : 1;
	if (json) {
		printf("{\"items\":[");
		for (size_t i = 0; i < n_items; i++)
			print_item_json(c, cairn_challenge_item(c, i), i == 0);
		printf("],\"summary\":{\"items\":%zu,\"identical\":%zu,\"differ\":%zu,"
		       "\"inconclusive\":%zu}}\n",
		       n_items, counts[CAIRN_CHALLENGE_IDENTICAL], counts[CAIRN_CHALLENGE_DIFFERS],
		       counts[CAIRN_CHALLENGE_INCONCLUSIVE]);
	} else {
		for (size_t i = 0; i < n_items; i++)
			print_item_human(c, cairn_challenge_item(c, i));
		printf("%zu store items analysed: %zu (%.1f%%) identical, %zu (%.1f%%) differ, "
		       "%zu (%.1f%%) inconclusive\n",
		       n_items, counts[CAIRN_CHALLENGE_IDENTICAL],
		       100.0 * (double)counts[CAIRN_CHALLENGE_IDENTICAL] / n,
		       counts[CAIRN_CHALLENGE_DIFFERS],
		       100.0 * (double)counts[CAIRN_CHALLENGE_DIFFERS] / n,
		       counts[CAIRN_CHALLENGE_INCONCLUSIVE],
		       100.0 * (double)counts[CAIRN_CHALLENGE_INCONCLUSIVE] / n);
	}
	if (fflush(stdout) != 0) {
		cli_error("cannot write the report");
		return EXIT_FAIL;
	}
	return counts[CAIRN_CHALLENGE_DIFFERS]		? 2
	       : counts[CAIRN_CHALLENGE_INCONCLUSIVE] ? EXIT_FAIL
							: EXIT_OK;
}

int cmd_challenge(int argc, char **argv)
{
	struct opts o = {.jobs = CAIRN_SURVEY_INFLIGHT_DEFAULT};
	struct cairn_http_server **servers = NULL;
	size_t n_servers = 0;
	struct cairn_http *h = NULL;
	struct cairn_challenge *c = NULL;
	struct cairn_error err;
	int ret = EXIT_FAIL;

	int nargs;
	cairn_error_init(&err);
	cairn_http_config_init(&o.http);
	/* A server slower than the minimum rate: its items are unknown, at
	 * once, rather than each waiting out a trickle. */
	o.http.slow_marks_down = 1;
	if ((ret = parse_opts(argc, argv, &o, &nargs)) != CLI_GO_ON)
		goto out;
	ret = EXIT_FAIL;
	if (!(servers = calloc(o.urls.n + 1, sizeof(*servers)))) {
		cli_error("out of memory");
		goto out;
	}
	if (cairn_http_new(&h, &o.http, &err)) {
		ret = cli_fail("cannot start the HTTP client", &err);
		goto out;
	}
	for (size_t i = 0; i < o.urls.n; i++, n_servers++)
		if (cairn_http_server_new(&servers[i], o.urls.v[i], 0, &err)) {
			cli_error("--from '%s': %s", o.urls.v[i], cairn_error_msg(&err));
			ret = EXIT_USAGE;
			goto out;
		}
	struct cairn_challenge_config cc = {.http = h,
					    .servers = servers,
					    .n_servers = n_servers,
					    .root = o.root,
					    .db_path = o.db_path,
					    .diff = o.diff,
					    .max_inflight = (size_t)o.jobs};
	if (cairn_challenge_new(&c, &cc, &err)) {
		ret = cli_fail("cannot start", &err);
		goto out;
	}
	for (int i = 0; i < nargs; i++) {
		if (!strcmp(argv[i], "-") && cairn_challenge_survey(c)) {
			if ((ret = cli_survey_add_stdin(cairn_challenge_survey(c))) != EXIT_OK)
				goto out;
			ret = EXIT_FAIL;
		} else if (cairn_challenge_add(c, argv[i], &err)) {
			cli_error("'%s': %s", argv[i], cairn_error_msg(&err));
			ret = EXIT_USAGE;
			goto out;
		}
	}
	if (cairn_challenge_run(c, &err)) {
		ret = cli_fail("challenge failed", &err);
		goto out;
	}
	ret = report(c, o.json);
out:
	cairn_challenge_free(c);
	cairn_http_free(h); /* before the servers its transfers borrow */
	for (size_t i = 0; i < n_servers; i++)
		cairn_http_server_free(servers[i]);
	free(servers);
	cli_options_release(challenge_options, &o);
	return ret;
}
