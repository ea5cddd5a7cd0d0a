/*
 * storedb-dump - print what libcairn's storedb reads from a store database,
 * for tests/integration/test-storedb.sh to compare with `nix path-info`.
 *
 *   storedb-dump [-f] STOREDIR DBPATH COMMAND...
 *
 * -f allows the immutable fallback.  The commands run in order on one
 * handle (so a test can keep a reader open while Nix writes):
 *   mode              "mode normal" or "mode immutable"
 *   count             "count N"
 *   list              every valid path, one a line
 *   info PATH         one JSON object, the fields of `nix path-info --json`
 *   hash HASHPART     the same, looked up by hash part
 *   closure PATH      a JSON array of info objects, like `path-info --json -r`
 *   poll-until FILE   query count and closure of the first listed path in a
 *                     loop until FILE exists (at most 300 s); "polls N"
 *   touch FILE        create FILE (to tell the script we are ready)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn/cairn.h"
#include "cairn/hash.h"
#include "cairn/storedb.h"

static int fail(const char *what, const struct cairn_error *err)
{
	fprintf(stderr, "storedb-dump: %s: %s\n", what, cairn_error_msg(err));
	return 1;
}

/* Store paths, signatures and ca are printable ASCII (storedb checks). */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
	putchar('"');
}

static void print_info(const struct cairn_storedb_pathinfo *pi)
{
	char sri[CAIRN_HASH_STR_MAX];
	cairn_hash_format(&pi->nar_hash, CAIRN_HASH_SRI, sri, sizeof(sri));
	printf("{\"path\":");
	json_str(pi->path);
	printf(",\"narHash\":\"%s\",\"narSize\":%llu,\"references\":[", sri,
	       (unsigned long long)pi->nar_size);
	for (size_t i = 0; i < pi->nrefs; i++) {
		if (i)
			putchar(',');
		json_str(pi->refs[i]);
	}
	printf("],\"deriver\":");
	if (pi->deriver)
		json_str(pi->deriver);
	else
		printf("null");
	printf(",\"registrationTime\":%lld,\"ultimate\":%s,\"signatures\":[",
	       (long long)pi->registration_time, pi->ultimate ? "true" : "false");
	for (size_t i = 0; i < pi->nsigs; i++) {
		if (i)
			putchar(',');
		json_str(pi->sigs[i]);
	}
	printf("],\"ca\":");
	if (pi->ca)
		json_str(pi->ca);
	else
		printf("null");
	putchar('}');
}

static int print_list(void *ctx, const char *path)
{
	(void)ctx;
	return puts(path) < 0;
}

static int first_path(void *ctx, const char *path)
{
	char **out = ctx;
	*out = strdup(path);
	return 1;
}

int main(int argc, char **argv)
{
	struct cairn_storedb_config cfg;
	struct cairn_storedb *db;
	struct cairn_error err;
	int i = 1;

	cairn_storedb_config_init(&cfg, CAIRN_STOREDB_NIX);
	if (argc > 1 && strcmp(argv[1], "-f") == 0) {
		cfg.flags |= CAIRN_STOREDB_IMMUTABLE_FALLBACK;
		i++;
	}
	if (argc - i < 2) {
		fprintf(stderr, "usage: storedb-dump [-f] STOREDIR DBPATH COMMAND...\n");
		return 2;
	}
	if (cairn_init() != 0)
		return 1;
	cfg.store_dir = argv[i++];
	cfg.db_path = argv[i++];
	cairn_error_init(&err);
	if (cairn_storedb_open(&db, &cfg, &err))
		return fail("open", &err);

	int rc = 0;
	for (; i < argc && rc == 0; i++) {
		const char *cmd = argv[i], *arg = i + 1 < argc ? argv[i + 1] : NULL;
		struct cairn_storedb_pathinfo pi;
		cairn_error_init(&err);
		if (strcmp(cmd, "mode") == 0) {
			printf("mode %s\n",
			       cairn_storedb_is_immutable(db) ? "immutable" : "normal");
		} else if (strcmp(cmd, "count") == 0) {
			uint64_t n;
			if (cairn_storedb_count(db, &n, &err))
				rc = fail("count", &err);
			else
				printf("count %llu\n", (unsigned long long)n);
		} else if (strcmp(cmd, "list") == 0) {
			if (cairn_storedb_foreach(db, print_list, NULL, &err))
				rc = fail("list", &err);
		} else if ((strcmp(cmd, "info") == 0 || strcmp(cmd, "hash") == 0) && arg) {
			int r = cmd[0] == 'i' ? cairn_storedb_query_path(db, arg, &pi, &err)
					      : cairn_storedb_query_hashpart(db, arg, &pi, &err);
			if (r) {
				rc = fail(arg, &err);
			} else {
				print_info(&pi);
				putchar('\n');
				cairn_storedb_pathinfo_release(&pi);
			}
			i++;
		} else if (strcmp(cmd, "closure") == 0 && arg) {
			struct cairn_storedb_paths cl;
			i++;
			if (cairn_storedb_closure(db, arg, 0, &cl, &err)) {
				rc = fail(arg, &err);
				continue;
			}
			putchar('[');
			for (size_t k = 0; k < cl.n && rc == 0; k++) {
				if (cairn_storedb_query_path(db, cl.v[k], &pi, &err)) {
					rc = fail(cl.v[k], &err);
					break;
				}
				if (k)
					putchar(',');
				print_info(&pi);
				cairn_storedb_pathinfo_release(&pi);
			}
			printf("]\n");
			cairn_storedb_paths_release(&cl);
		} else if (strcmp(cmd, "poll-until") == 0 && arg) {
			char *first = NULL;
			unsigned long polls = 0;
			time_t end = time(NULL) + 300;
			i++;
			cairn_storedb_foreach(db, first_path, &first, NULL);
			while (access(arg, F_OK) != 0 && rc == 0) {
				struct cairn_storedb_paths cl;
				uint64_t n;
				if (time(NULL) > end) {
					fprintf(stderr, "storedb-dump: %s never appeared\n", arg);
					rc = 1;
				} else if (cairn_storedb_count(db, &n, &err)) {
					rc = fail("count while polling", &err);
				} else if (first &&
					   cairn_storedb_closure(db, first, 0, &cl, &err)) {
					rc = fail("closure while polling", &err);
				} else {
					if (first)
						cairn_storedb_paths_release(&cl);
					polls++;
					usleep(2000);
				}
			}
			free(first);
			printf("polls %lu\n", polls);
		} else if (strcmp(cmd, "touch") == 0 && arg) {
			FILE *f = fopen(arg, "w");
			i++;
			if (!f || fclose(f) != 0) {
				perror(arg);
				rc = 1;
			}
		} else {
			fprintf(stderr, "storedb-dump: bad command '%s'\n", cmd);
			rc = 2;
		}
		fflush(stdout);
	}
	cairn_storedb_free(db);
	return rc;
}
