/*
 * http-client-test - drive lib/http.c for tests/integration/test-http-client.sh.
 *
 *   http-client-test [OPTIONS] URL...
 *
 *   -n COUNT   fetch every URL COUNT times, all queued at once
 *   -q COUNT   fetch every URL COUNT times one after another, each next
 *              request added from the previous one's on_done
 *   -s SEC     stall timeout           -c MS   connect timeout
 *   -T SEC     total timeout           -m N    max body bytes
 *   -F MS      first-byte timeout (client)  -f MS  the same, per request
 *   -L RATE    minimum rate, bytes/s (0: off)   -W SEC  its window
 *   -Z         a slow transfer marks its server down (slow_marks_down)
 *   -d MS      delay_ms of the requests given on the command line
 *   -D MS      delay_ms of the requests added from on_done (-q, -R)
 *   -k N       max connections per host
 *   -r OFF     start at byte OFF (Range)
 *   -R         resume: when the advice is "retry-range", ask again from the
 *              bytes received so far (at most 5 tries) and hash the whole
 *   -H         HEAD instead of GET
 *   -S         the first URL is a server base; the others are paths under it
 *   -2         with -S: HTTP/2 prior knowledge
 *   -A FILE    CA bundle for https
 *   -I         parse each body as nix-cache-info
 *   -v         print the parsed headers of each response
 *
 * One line per finished request:
 *   result outcome=ok status=200 bytes=N advice=done sha256=HEX ms=N url=U msg=M
 * and at the end
 *   summary requests=N ok=N new_connections=N down=0|1 elapsed_ms=N
 * and with -S the server's health:
 *   health state=up requests=N ok=N unreachable=N silent=N slow=N stalls=N
 * Exit 0 when the client ran (whatever the outcomes), 1 on a usage or
 * library error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn/cairn.h"
#include "cairn/hash.h"
#include "cairn/http.h"
#include "../../lib/http-internal.h"

#define MAX_TRIES 5

struct job {
	struct cairn_http *h;
	struct cairn_http_request req;
	char url[CAIRN_HTTP_URL_MAX + 1];
	struct cairn_sha256 sha;
	uint64_t got; /* bytes over all tries */
	int tries;
	int chain_left; /* -q: requests still to add after this one */
	double t0;
	char info[CAIRN_HTTP_CACHE_INFO_MAX + 1];
};

static int opt_resume, opt_verbose, opt_info;
static long opt_later_delay;
static uint64_t n_ok;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int on_headers(void *ctx, const struct cairn_http_response *r)
{
	struct job *j = ctx;

	if (opt_verbose)
		printf("headers status=%ld version=%d length=%lld range=%lld-%lld/%lld "
		       "max_age=%lld no_store=%d accept_ranges=%d type=%s encoding=%s\n",
		       r->status, r->http_version, (long long)r->content_length,
		       (long long)r->range_first, (long long)r->range_last,
		       (long long)r->range_total, (long long)r->max_age, r->no_store,
		       r->accept_ranges, r->content_type, r->content_encoding);
	/* A resumed request must continue exactly where the body stopped. */
	if (j->req.range_start > 0 && r->status >= 200 && r->status < 300 &&
	    (r->status != 206 || (uint64_t)r->range_first != j->req.range_start))
		return 1;
	return 0;
}

static int on_data(void *ctx, const void *data, size_t len)
{
	struct job *j = ctx;

	if (opt_info && j->got + len <= CAIRN_HTTP_CACHE_INFO_MAX)
		memcpy(j->info + j->got, data, len);
	cairn_sha256_update(&j->sha, data, len);
	j->got += len;
	return 0;
}

static const char *advice_name(enum cairn_http_advice a)
{
	switch (a) {
	case CAIRN_HTTP_DONE: return "done";
	case CAIRN_HTTP_RETRY_RANGE: return "retry-range";
	case CAIRN_HTTP_NEXT_SERVER: return "next-server";
	case CAIRN_HTTP_GIVE_UP: return "give-up";
	}
	return "?";
}

static void on_done(void *ctx, const struct cairn_http_result *res)
{
	struct job *j = ctx;
	enum cairn_http_advice adv = cairn_http_advice(res);
	struct cairn_error err;
	uint8_t d[CAIRN_SHA256_LEN];
	char hex[2 * CAIRN_SHA256_LEN + 1];

	if (opt_resume && adv == CAIRN_HTTP_RETRY_RANGE && ++j->tries < MAX_TRIES) {
		printf("retry outcome=%s bytes=%llu from=%llu msg=%s\n",
		       cairn_http_outcome_name(res->outcome), (unsigned long long)res->body_bytes,
		       (unsigned long long)j->got, cairn_error_msg(&res->err));
		j->req.range_start = j->got;
		j->req.delay_ms = opt_later_delay;
		cairn_error_init(&err);
		if (cairn_http_add(j->h, &j->req, &err) == 0)
			return;
		fprintf(stderr, "http-client-test: %s\n", cairn_error_msg(&err));
	}
	cairn_sha256_final(&j->sha, d);
	cairn_base16_encode(d, sizeof(d), hex);
	hex[2 * CAIRN_SHA256_LEN] = '\0';
	if (res->outcome == CAIRN_HTTP_OK)
		n_ok++;
	printf(
	    "result outcome=%s status=%ld bytes=%llu advice=%s sha256=%s ms=%.0f url=%s msg=%s\n",
	    cairn_http_outcome_name(res->outcome), res->status, (unsigned long long)j->got,
	    advice_name(adv), hex, now_ms() - j->t0, res->url,
	    res->outcome == CAIRN_HTTP_OK ? "" : cairn_error_msg(&res->err));
	if (opt_info && res->outcome == CAIRN_HTTP_OK) {
		struct cairn_http_cache_info ci;
		cairn_error_init(&err);
		if (cairn_http_cache_info_parse(j->info, j->got, &ci, &err) == 0) {
			printf("info store_dir=%s want_mass_query=%d priority=%d\n", ci.store_dir,
			       ci.want_mass_query, ci.priority);
			if (j->req.server)
				cairn_http_server_set_info(j->req.server, &ci);
		} else
			printf("info error=%s\n", cairn_error_msg(&err));
	}
	if (j->chain_left > 0) {
		j->chain_left--;
		j->got = 0;
		j->tries = 0;
		j->req.range_start = 0;
		j->req.delay_ms = opt_later_delay;
		j->t0 = now_ms();
		cairn_sha256_release(&j->sha);
		cairn_sha256_init(&j->sha);
		cairn_error_init(&err);
		if (cairn_http_add(j->h, &j->req, &err) == 0)
			return;
		fprintf(stderr, "http-client-test: %s\n", cairn_error_msg(&err));
	}
	cairn_sha256_release(&j->sha);
}

static void usage(void)
{
	fprintf(stderr, "usage: http-client-test [-n N] [-q N] [-s S] [-c MS] [-T S] [-m N] "
			"[-F MS] [-f MS] [-L RATE] [-W S] [-Z] [-d MS] [-D MS] "
			"[-k N] [-r OFF] [-A CA] [-R] [-H] [-S] [-2] [-I] [-v] URL...\n");
	exit(1);
}

int main(int argc, char **argv)
{
	struct cairn_http_config cfg;
	struct cairn_http *h = NULL;
	struct cairn_http_server *srv = NULL;
	struct cairn_http_stats st;
	struct cairn_error err;
	struct job *jobs;
	long count = 1, chain = 0;
	uint64_t max_body = 0, range = 0;
	long first_byte = 0, delay = 0;
	int head = 0, use_server = 0, h2 = 0, opt, first;
	size_t njobs, k = 0;
	double t0;

	cairn_http_config_init(&cfg);
	while ((opt = getopt(argc, argv, "n:q:s:c:T:m:F:f:L:W:Zd:D:k:r:A:RHS2Iv")) != -1) {
		switch (opt) {
		case 'n': count = atol(optarg); break;
		case 'q': chain = atol(optarg); break;
		case 's': cfg.stall_timeout_s = atol(optarg); break;
		case 'c': cfg.connect_timeout_ms = atol(optarg); break;
		case 'T': cfg.total_timeout_s = atol(optarg); break;
		case 'm': max_body = strtoull(optarg, NULL, 10); break;
		case 'F': cfg.first_byte_timeout_ms = atol(optarg); break;
		case 'f': first_byte = atol(optarg); break;
		case 'L': cfg.min_rate = atol(optarg); break;
		case 'W': cfg.min_rate_window_s = atol(optarg); break;
		case 'Z': cfg.slow_marks_down = 1; break;
		case 'd': delay = atol(optarg); break;
		case 'D': opt_later_delay = atol(optarg); break;
		case 'k': cfg.max_host_connections = atol(optarg); break;
		case 'r': range = strtoull(optarg, NULL, 10); break;
		case 'A': cfg.ca_file = optarg; break;
		case 'R': opt_resume = 1; break;
		case 'H': head = 1; break;
		case 'S': use_server = 1; break;
		case '2': h2 = 1; break;
		case 'I': opt_info = 1; break;
		case 'v': opt_verbose = 1; break;
		default: usage();
		}
	}
	if (optind >= argc || count < 1 || count > 100000 || chain < 0)
		usage();
	if (cairn_init() < 0)
		return 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	cairn_error_init(&err);
	if (cairn_http_new(&h, &cfg, &err) < 0)
		goto fail;
	first = optind;
	if (use_server) {
		if (cairn_http_server_new(&srv, argv[optind],
					  h2 ? CAIRN_HTTP_SERVER_H2_PRIOR_KNOWLEDGE : 0, &err) < 0)
			goto fail;
		first++;
	}
	njobs = (size_t)(argc - first) * (size_t)count;
	jobs = calloc(njobs ? njobs : 1, sizeof(*jobs));
	if (!jobs)
		return 1;
	t0 = now_ms();
	for (int i = first; i < argc; i++) {
		for (long c = 0; c < count; c++, k++) {
			struct job *j = &jobs[k];
			j->h = h;
			snprintf(j->url, sizeof(j->url), "%s", argv[i]);
			j->req.method = head ? CAIRN_HTTP_HEAD : CAIRN_HTTP_GET;
			j->req.server = srv;
			j->req.url = j->url;
			j->req.range_start = range;
			j->req.max_body = max_body;
			j->req.first_byte_timeout_ms = first_byte;
			j->req.delay_ms = delay;
			j->req.on_headers = on_headers;
			j->req.on_data = on_data;
			j->req.on_done = on_done;
			j->req.ctx = j;
			j->chain_left = (int)(chain > 0 ? chain - 1 : 0);
			j->got = 0;
			j->t0 = now_ms();
			cairn_sha256_init(&j->sha);
			if (cairn_http_add(h, &j->req, &err) < 0) {
				printf("add-failed msg=%s\n", cairn_error_msg(&err));
				cairn_sha256_release(&j->sha);
				cairn_error_init(&err);
			}
		}
	}
	if (cairn_http_run(h, &err) < 0)
		goto fail;
	cairn_http_stats(h, &st);
	printf("summary requests=%llu ok=%llu new_connections=%llu down=%d elapsed_ms=%.0f\n",
	       (unsigned long long)st.requests, (unsigned long long)n_ok,
	       (unsigned long long)st.new_connections, srv && cairn_http_server_down(srv) ? 1 : 0,
	       now_ms() - t0);
	if (srv && cairn_http_server_down(srv))
		printf("down-reason %s\n", cairn_http_server_down(srv));
	if (srv) {
		struct cairn_http_server_health hl;
		cairn_http_server_health(srv, &hl);
		printf(
		    "health state=%s requests=%llu ok=%llu unreachable=%llu silent=%llu slow=%llu "
		    "stalls=%llu slow_fn=%llu down_since=%lld\n",
		    cairn_http_server_state_name(hl.state), (unsigned long long)hl.requests,
		    (unsigned long long)hl.ok, (unsigned long long)hl.unreachable,
		    (unsigned long long)hl.silent, (unsigned long long)hl.slow,
		    (unsigned long long)hl.stalls, (unsigned long long)cairn_http_server_slow(srv),
		    (long long)hl.down_since);
	}
	free(jobs);
	cairn_http_server_free(srv);
	cairn_http_free(h);
	return 0;
fail:
	fprintf(stderr, "http-client-test: %s\n", cairn_error_msg(&err));
	cairn_http_free(h);
	return 1;
}
