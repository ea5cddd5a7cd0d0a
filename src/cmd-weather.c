/*
 * cmd-weather.c - `cairn weather`: how much of a list of store paths each
 * binary cache can substitute, and how fast the caches answer.
 *
 * One survey (survey.h) asks every server for every narinfo at once; the
 * callback only counts, so the rate is that of the client and the servers.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/http.h"
#include "cairn/narinfo.h"
#include "cairn/survey.h"
#include "cli.h"
#include "cairn/banned.h"

struct weather_opts {
	struct cli_list urls;
	bool closure, missing, json, held;
	double min_cov; /* < 0: not given */
	long jobs, conns;
	struct cairn_http_config http;
};

static int opt_percent(void *target, const struct cli_option *opt, const char *v)
{
	char *end;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || end == v || (*end && strcmp(end, "%")) || !(d >= 0 && d <= 100)) {
		cli_error("--%s: '%s' is not a percentage from 0 to 100", opt->long_name, v);
		return EXIT_USAGE;
	}
	*(double *)target = d;
	return EXIT_OK;
}

#define W struct weather_opts
static const struct cli_option weather_options[] = {
	OPT_LIST(0, "from", W, urls, "URL", CAIRN_SURVEY_MAX_SERVERS,
		 "a binary cache, in order (repeatable)"),
	OPT_FLAG(0, "closure", W, closure,
		 "add the references of every path, transitively, as\n"
		 "the first cache lists them"),
	OPT_FLAG(0, "missing", W, missing, "list the paths each cache lacks (and why)"),
	OPT_CALLBACK(0, "min-coverage", W, min_cov, "PCT", opt_percent, 0,
		     "exit 1 when any cache has less than PCT percent"),
	OPT_FLAG(0, "held", W, held,
		 "count only what each cache holds now: ask with\n"
		 "Cache-Control: only-if-cached (a cairn mirror answers\n"
		 "504 for what it would have to fetch; origins as usual)"),
	OPT_FLAG(0, "json", W, json, "one JSON object on stdout instead of the table"),
	OPT_INT(0, "jobs", W, jobs, "N", 1, CAIRN_SURVEY_INFLIGHT_MAX,
		"narinfo requests in flight at once (default 256)"),
	OPT_TABLE(W, http, cli_http_options),
	OPT_INT(0, "connections", W, conns, "N", 1, 1024, "connections per cache (default 8)"),
	OPT_END(),
};
#undef W

static const struct cli_spec weather_spec = {
	.usage =
    "usage: cairn weather --from URL [--from URL...] [--closure] [--json]\n"
    "                     [--min-coverage PCT] [--held] [--missing] [--jobs N]\n"
    "                     [--connections N] (STOREPATH... | -)\n"
    "\n"
    "Ask every binary cache (--from, in order) for the narinfo of every store\n"
    "path (arguments, or one a line on stdin with '-') and report per cache:\n"
    "  x% available (n of m), paths missing or unanswered, the download size\n"
    "  (the first URL of each narinfo: one compression per item) and the\n"
    "  unpacked (NAR) size, and the narinfo lookups per second achieved.\n"
    "\n",
	.options = weather_options,
	.tail =
    "\n"
    "A cache that is down or answers garbage counts its paths as unknown,\n"
    "not available.  Exit 0, or 1 when a cache is below --min-coverage.\n",
};

struct server_stats {
	uint64_t present, absent, invalid, unknown;
	uint64_t download, nar_size;
	uint64_t no_file_size; /* present, but the narinfo gives no FileSize */
	uint64_t download_est; /* NarSize counted into download for those */
};

struct weather {
	struct cairn_survey *survey;
	size_t n_servers;
	bool closure;
	bool missing;
	struct server_stats *st;
	/* outcome + 1 per (path, server), 0 when not answered yet */
	unsigned char *outcomes;
	size_t outcomes_paths;
	/* first reason per (path, server) for --missing, NULL when none */
	char **reasons;
	int add_rc;
	struct cairn_error add_err;
};

static int ensure_paths(struct weather *w, size_t n)
{
	if (n <= w->outcomes_paths)
		return 0;
	size_t cap = w->outcomes_paths ? w->outcomes_paths : 1024;
	while (cap < n)
		cap *= 2;
	unsigned char *o = realloc(w->outcomes, cap * w->n_servers);
	if (!o)
		return CAIRN_ENOMEM;
	w->outcomes = o;
	memset(o + w->outcomes_paths * w->n_servers, 0, (cap - w->outcomes_paths) * w->n_servers);
	if (w->missing) {
		char **r = realloc(w->reasons, cap * w->n_servers * sizeof(*r));
		if (!r)
			return CAIRN_ENOMEM;
		w->reasons = r;
		memset(r + w->outcomes_paths * w->n_servers, 0,
		       (cap - w->outcomes_paths) * w->n_servers * sizeof(*r));
	}
	w->outcomes_paths = cap;
	return 0;
}

static int add_closure(struct weather *w, const struct cairn_narinfo *ni)
{
	char dir[CAIRN_NARINFO_STORE_DIR_MAX + 1];
	int dl = cairn_narinfo_store_dir(ni, dir, sizeof(dir));
	if (dl < 0)
		return 0;
	for (size_t i = 0; i < ni->n_refs; i++) {
		char path[CAIRN_NARINFO_STORE_DIR_MAX + 2 + CAIRN_NARINFO_VALUE_MAX];
		snprintf(path, sizeof(path), "%s/%s", dir, ni->refs[i]);
		int rc = cairn_survey_add(w->survey, path, NULL, &w->add_err);
		if (rc < 0) {
			w->add_rc = rc;
			return rc;
		}
	}
	return 0;
}

static int on_result(void *ctx, struct cairn_survey_result *r)
{
	struct weather *w = ctx;
	struct server_stats *st = &w->st[r->server_index];
	if (ensure_paths(w, r->path_index + 1))
		return CAIRN_ENOMEM;
	size_t k = r->path_index * w->n_servers + r->server_index;
	w->outcomes[k] = (unsigned char)(r->outcome + 1);
	switch (r->outcome) {
	case CAIRN_SURVEY_PRESENT: {
		st->present++;
		st->nar_size += r->narinfo->nar_size;
		if (r->narinfo->n_urls > 0 && r->narinfo->urls[0].has_file_size) {
			st->download += r->narinfo->urls[0].file_size;
		} else {
			/* Servers that compress on request (cairn publish before
			 * its bakes, guix publish) cannot know FileSize yet; the
			 * NAR's size is the honest upper bound, and is said so. */
			st->no_file_size++;
			st->download += r->narinfo->nar_size;
			st->download_est += r->narinfo->nar_size;
		}
		if (w->closure && r->server_index == 0 && add_closure(w, r->narinfo))
			return w->add_rc;
		break;
	}
	case CAIRN_SURVEY_ABSENT: st->absent++; break;
	case CAIRN_SURVEY_INVALID: st->invalid++; break;
	case CAIRN_SURVEY_UNKNOWN: st->unknown++; break;
	}
	if (w->missing && r->outcome != CAIRN_SURVEY_PRESENT && r->outcome != CAIRN_SURVEY_ABSENT) {
		w->reasons[k] = strdup(cairn_error_msg(&r->err));
		if (!w->reasons[k])
			return CAIRN_ENOMEM;
	}
	return 0;
}


static void human_size(uint64_t n, char *out, size_t cap)
{
	static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, cap, "%llu B", (unsigned long long)n);
	else
		snprintf(out, cap, "%.1f %s", v, units[u]);
}

static double percent(uint64_t n, uint64_t m)
{
	return m ? 100.0 * (double)n / (double)m : 0.0;
}


/* The survey's servers and the survey itself, empty of paths. */
static int weather_start(struct weather *w, struct weather_opts *o, struct cairn_http **h,
			 struct cairn_http_server **servers)
{
	struct cairn_error err;
	size_t n = o->urls.n;
	cairn_error_init(&err);
	o->http.max_host_connections = o->conns;
	if (o->http.max_total_connections < o->conns * (long)n)
		o->http.max_total_connections = o->conns * (long)n;
	if (cairn_http_new(h, &o->http, &err))
		return cli_fail("cannot start the HTTP client", &err);
	if (!(w->st = calloc(n, sizeof(*w->st)))) {
		cli_error("out of memory");
		return EXIT_FAIL;
	}
	for (size_t i = 0; i < n; i++) {
		if (cairn_http_server_new(&servers[i], o->urls.v[i], 0, &err)) {
			cli_error("--from '%s': %s", o->urls.v[i], cairn_error_msg(&err));
			return EXIT_USAGE;
		}
	}
	w->n_servers = n;
	struct cairn_survey_config sc;
	cairn_survey_config_init(&sc);
	sc.max_inflight = (size_t)o->jobs;
	sc.only_if_cached = o->held;
	/* --closure adds References as answers come: a server that takes
	 * batches answers the whole closure in one (not a batch per level).
	 * Weather waits for every server's answer anyway, so the References
	 * can wait for nix-cache-info to say whether batches go. */
	sc.closure = o->closure;
	sc.closure_waits = o->closure;
	if (cairn_survey_new(&w->survey, *h, servers, n, &sc, on_result, w, &err))
		return cli_fail("cannot start the survey", &err);
	return EXIT_OK;
}

/* The paths (operands; '-' reads stdin), then the survey to its end. */
static int weather_run(struct weather *w, int nargs, char **args)
{
	struct cairn_error err;
	int ret;
	cairn_error_init(&err);
	for (int i = 0; i < nargs; i++) {
		if (!strcmp(args[i], "-")) {
			if ((ret = cli_survey_add_stdin(w->survey)) != EXIT_OK)
				return ret;
		} else if (cairn_survey_add(w->survey, args[i], NULL, &err) < 0) {
			cli_error("'%s': %s", args[i], cairn_error_msg(&err));
			return EXIT_USAGE;
		}
	}
	if (cairn_survey_run(w->survey, &err))
		return cli_fail("survey failed", w->add_rc ? &w->add_err : &err);
	return EXIT_OK;
}

/* outcome + 1 of path p at server i, 0 when not answered */
static unsigned outcome_of(const struct weather *w, size_t p, size_t i)
{
	return p < w->outcomes_paths ? w->outcomes[p * w->n_servers + i] : 0;
}

static void print_missing_json(const struct weather *w, size_t i, uint64_t m)
{
	bool first = true;
	printf(",\"missing\":[");
	for (size_t p = 0; p < m; p++) {
		unsigned o = outcome_of(w, p, i);
		const char *why = o ? w->reasons[p * w->n_servers + i] : NULL;
		if (o == CAIRN_SURVEY_PRESENT + 1)
			continue;
		printf("%s{\"path\":", first ? "" : ",");
		first = false;
		cli_json_str(cairn_survey_path(w->survey, p));
		printf(",\"outcome\":\"%s\"", o ? cairn_survey_outcome_name(o - 1) : "unknown");
		if (why) {
			printf(",\"reason\":");
			cli_json_str(why);
		}
		printf("}");
	}
	printf("]");
}

static void print_json(const struct weather *w, const struct weather_opts *o,
		       struct cairn_http_server **servers, const struct cairn_survey_stats *ss)
{
	uint64_t m = cairn_survey_count(w->survey);
	double rate = ss->seconds > 0 ? (double)ss->requests / ss->seconds : 0;
	printf("{\"paths\":%llu,%s\"servers\":[", (unsigned long long)m,
	       o->held ? "\"held\":true," : "");
	for (size_t i = 0; i < w->n_servers; i++) {
		const struct server_stats *st = &w->st[i];
		printf("%s{\"url\":", i ? "," : "");
		cli_json_str(cairn_http_server_url(servers[i]));
		printf(",\"available\":%llu,\"total\":%llu,\"percent\":%.2f,"
		       "\"absent\":%llu,\"invalid\":%llu,\"unknown\":%llu,"
		       "\"download_size\":%llu,\"nar_size\":%llu,\"without_file_size\":%llu,"
		       "\"download_size_from_nar_size\":%llu",
		       (unsigned long long)st->present, (unsigned long long)m,
		       percent(st->present, m), (unsigned long long)st->absent,
		       (unsigned long long)st->invalid, (unsigned long long)st->unknown,
		       (unsigned long long)st->download, (unsigned long long)st->nar_size,
		       (unsigned long long)st->no_file_size, (unsigned long long)st->download_est);
		if (o->min_cov >= 0)
			printf(",\"below_min_coverage\":%s",
			       percent(st->present, m) < o->min_cov ? "true" : "false");
		if (w->missing)
			print_missing_json(w, i, m);
		printf("}");
	}
	printf("],\"lookups\":%llu,\"seconds\":%.6f,\"lookups_per_second\":%.1f}\n",
	       (unsigned long long)ss->requests, ss->seconds, rate);
}

static void print_server_human(const struct weather *w, const struct weather_opts *opts,
			       size_t i, const char *url, uint64_t m)
{
	const struct server_stats *st = &w->st[i];
	char dl[32], ns[32];
	human_size(st->download, dl, sizeof(dl));
	human_size(st->nar_size, ns, sizeof(ns));
	printf("%s\n", url);
	printf("  %.1f%% %s (%llu of %llu)\n", percent(st->present, m),
	       opts->held ? "held" : "available", (unsigned long long)st->present,
	       (unsigned long long)m);
	if (opts->min_cov >= 0)
		printf("  %s --min-coverage %.1f%%\n",
		       percent(st->present, m) < opts->min_cov ? "below" : "meets", opts->min_cov);
	printf("  %llu absent, %llu invalid, %llu unknown\n", (unsigned long long)st->absent,
	       (unsigned long long)st->invalid, (unsigned long long)st->unknown);
	if (st->no_file_size == st->present && st->present) {
		printf("  at most %s to download (no narinfo gives FileSize: "
		       "NarSize counted), %s unpacked\n",
		       dl, ns);
	} else if (st->no_file_size) {
		char est[32];
		human_size(st->download_est, est, sizeof(est));
		printf("  %s to download, of which %s is NarSize for %llu narinfos "
		       "without FileSize; %s unpacked\n",
		       dl, est, (unsigned long long)st->no_file_size, ns);
	} else {
		printf("  %s to download, %s unpacked\n", dl, ns);
	}
	for (size_t p = 0; w->missing && p < m; p++) {
		unsigned o = outcome_of(w, p, i);
		const char *why = o ? w->reasons[p * w->n_servers + i] : NULL;
		if (o == CAIRN_SURVEY_PRESENT + 1)
			continue;
		printf("    %-7s %s", o ? cairn_survey_outcome_name(o - 1) : "unknown",
		       cairn_survey_path(w->survey, p));
		if (why)
			printf(" (%s)", cli_safe(why));
		printf("\n");
	}
}

/* The report; the exit status. */
static int report(const struct weather *w, const struct weather_opts *o,
		  struct cairn_http_server **servers)
{
	struct cairn_survey_stats ss;
	cairn_survey_stats(w->survey, &ss);
	uint64_t m = cairn_survey_count(w->survey);
	bool below = false;
	for (size_t i = 0; i < w->n_servers; i++)
		if (o->min_cov >= 0 && percent(w->st[i].present, m) < o->min_cov)
			below = true;
	if (o->json) {
		print_json(w, o, servers, &ss);
	} else {
		for (size_t i = 0; i < w->n_servers; i++)
			print_server_human(w, o, i, cairn_http_server_url(servers[i]), m);
		printf("%llu store paths, %zu servers: %llu narinfo lookups in %.3f s, "
		       "%.0f lookups/s\n",
		       (unsigned long long)m, w->n_servers, (unsigned long long)ss.requests,
		       ss.seconds, ss.seconds > 0 ? (double)ss.requests / ss.seconds : 0);
		if (below)
			printf("coverage below %.1f%%\n", o->min_cov);
	}
	if (fflush(stdout) != 0) {
		cli_error("cannot write the report");
		return EXIT_FAIL;
	}
	return below ? EXIT_FAIL : EXIT_OK;
}

int cmd_weather(int argc, char **argv)
{
	struct weather_opts o = {.min_cov = -1, .jobs = CAIRN_SURVEY_INFLIGHT_DEFAULT, .conns = 8};
	struct weather w;
	struct cairn_http *h = NULL;
	struct cairn_http_server **servers = NULL;
	int nargs, ret;

	memset(&w, 0, sizeof(w));
	cairn_error_init(&w.add_err);
	cairn_http_config_init(&o.http);
	/* A server slower than the minimum rate: its items are unknown, at once. */
	o.http.slow_marks_down = 1;
	ret = cli_parse_options(&weather_spec, weather_options, &o, argc, argv, &nargs);
	if (ret != CLI_GO_ON)
		goto out;
	w.closure = o.closure;
	w.missing = o.missing;
	ret = EXIT_USAGE;
	if (o.urls.n == 0) {
		cli_error("at least one --from URL is required");
		goto out;
	}
	if (nargs == 0) {
		cli_error("no store paths given (use '-' to read them from stdin)");
		goto out;
	}
	ret = EXIT_FAIL;
	if (!(servers = calloc(o.urls.n, sizeof(*servers)))) {
		cli_error("out of memory");
		goto out;
	}
	if ((ret = weather_start(&w, &o, &h, servers)) != EXIT_OK ||
	    (ret = weather_run(&w, nargs, argv)) != EXIT_OK)
		goto out;
	ret = report(&w, &o, servers);
out:
	if (w.reasons)
		for (size_t i = 0; i < w.outcomes_paths * w.n_servers; i++)
			free(w.reasons[i]);
	free(w.reasons);
	free(w.outcomes);
	free(w.st);
	cairn_survey_free(w.survey);
	cairn_http_free(h); /* before the servers its transfers borrow */
	if (servers)
		for (size_t i = 0; i < o.urls.n; i++)
			cairn_http_server_free(servers[i]);
	free(servers);
	cli_options_release(weather_options, &o);
	return ret;
}
