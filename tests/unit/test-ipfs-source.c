/*
 * The IPFS byte source's jobs (lib/ipfs-source.h) without a gateway that
 * answers: at most max on their threads, the others started in order as
 * slots free; a job waiting on a gateway that never answers is called off
 * by ipfs_src_cancel and by ipfs_src_free (each returns, the test's
 * timeout bounds them); a job that fails comes back through drain with its
 * error, on the caller's thread.  Fetching for real is tested in
 * tests/integration/test-ipfs-fetch.sh, test-ipfs-async.sh and
 * test-mirror-ipfs.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "cairn/ipfs.h"
#include "../../lib/ipfs-source.h"

static const char *cid1 = "bafybeia7cclqerf5qyo3746g775mcsmdoxo3pc2lkdksgdzni6trze2mye";

struct fixture {
	int lfd;	 /* listens, never accepts: requests to it get no answer */
	char silent[64]; /* its URL */
	char dir[64];	 /* the block cache */
	int done, failed;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	fx->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fx->lfd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	assert_int_equal(bind(fx->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fx->lfd, 16), 0);
	assert_int_equal(getsockname(fx->lfd, (struct sockaddr *)&a, &al), 0);
	snprintf(fx->silent, sizeof(fx->silent), "http://127.0.0.1:%u", ntohs(a.sin_port));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/cairn-ipfs-src-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	close(fx->lfd);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static int sink_nar(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	(void)ctx, (void)data, (void)len, (void)err;
	return 0;
}

static void on_done(struct ipfs_src_job *j)
{
	struct fixture *fx = j->ctx;
	fx->done++;
	if (j->rc) {
		fx->failed++;
		assert_non_null(strstr(cairn_error_msg(&j->err), "no gateway sent it"));
	}
}

/* A job for the root cid1 asked of gateway url. */
static struct ipfs_src_job *job(struct fixture *fx, const char *url)
{
	struct ipfs_src_job *j = ipfs_src_job_new();
	assert_non_null(j);
	struct cairn_error e;
	cairn_error_init(&e);
	assert_int_equal(cairn_cid_parse(cid1, strlen(cid1), &j->root, &e), 0);
	j->cfg.gateways[0] = url;
	j->cfg.n_gateways = 1;
	j->cfg.cache_dir = fx->dir;
	cairn_http_config_init(&j->cfg.http);
	j->cfg.http.first_byte_timeout_ms = 0; /* the stall timeout only: */
	j->cfg.http.stall_timeout_s = 600;     /* only a call-off ends it */
	j->ex = (struct cairn_dl_expect){
	    .nar_size = 1000, .nar_hash = {.algo = CAIRN_HASH_SHA256, .len = CAIRN_SHA256_LEN}};
	j->sink = (struct cairn_dl_sink){.nar = sink_nar, .ctx = fx};
	j->done = on_done;
	j->ctx = fx;
	return j;
}

/* Three jobs on a gateway that never answers, two at most: the third
 * waits, and starts when one is called off. */
static void test_bound_and_cancel(void **state)
{
	struct fixture *fx = *state;
	struct ipfs_src *s;
	struct cairn_error e;
	cairn_error_init(&e);
	assert_int_equal(ipfs_src_new(&s, 2, NULL, NULL, &e), 0);
	struct ipfs_src_job *j[3];
	for (int i = 0; i < 3; i++) {
		j[i] = job(fx, fx->silent);
		ipfs_src_submit(s, j[i]);
	}
	assert_int_equal(ipfs_src_running(s), 2);
	assert_int_equal(ipfs_src_pending(s), 3);
	ipfs_src_cancel(s, j[0]);
	assert_int_equal(ipfs_src_running(s), 2); /* the third took its slot */
	assert_int_equal(ipfs_src_pending(s), 2);
	ipfs_src_cancel(s, j[2]);
	assert_int_equal(ipfs_src_running(s), 1);
	assert_int_equal(ipfs_src_drain(s), 0);
	assert_int_equal(fx->done, 0); /* cancelled jobs do not come back */
	ipfs_src_free(s);		/* calls j[1] off, without done */
	assert_int_equal(fx->done, 0);
}

/* A job whose gateway refuses connections fails, and comes back through
 * drain with why; waiting for it is bounded. */
static void test_failure_comes_back(void **state)
{
	struct fixture *fx = *state;
	struct ipfs_src *s;
	struct cairn_error e;
	cairn_error_init(&e);
	assert_int_equal(ipfs_src_new(&s, 1, NULL, NULL, &e), 0);
	/* a port that was free a moment ago: connections refused */
	int t = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	assert_int_equal(bind(t, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(t, (struct sockaddr *)&a, &al), 0);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(a.sin_port));
	close(t);
	ipfs_src_submit(s, job(fx, url));
	ipfs_src_submit(s, job(fx, url)); /* waits for the first */
	for (int i = 0; i < 6000 && fx->done < 2; i++) {
		ipfs_src_wait(s, 10);
		ipfs_src_drain(s);
	}
	assert_int_equal(fx->done, 2);
	assert_int_equal(fx->failed, 2);
	assert_int_equal(ipfs_src_pending(s), 0);
	ipfs_src_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bound_and_cancel, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failure_comes_back, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
