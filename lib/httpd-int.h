/*
 * httpd-int.h - what lib/httpd*.c share; not installed, never included by
 * src/.  The only file outside lib/ that knows about h2o is none.
 */
#ifndef CAIRN_HTTPD_INT_H
#define CAIRN_HTTPD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>

#include <h2o.h>

#include "cairn/httpd.h"
#include "metrics.h"

/* status codes counted one by one; everything else lands in "other" */
#define HTTPD_STATUS_SLOTS 16

struct httpd_route {
	enum cairn_httpd_match match;
	char *pattern;
	size_t plen;
	char *name;
	cairn_httpd_handler_fn fn;
	void *data;
};

/*
 * The server's mapped large files (httpd-send.c): the same file served
 * again, on any loop, is not mapped again.  Shared by the loops, under
 * cairn_httpd.maps_mu; each loop sweeps idle ones with its own timer.
 */
#define HTTPD_MAPS 16
struct httpd_map {
	char *base; /* NULL: free slot */
	size_t len;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
	unsigned refs;	     /* responses sending from it */
	uint64_t idle_since; /* loop ms, once refs fell to 0 */
};

struct httpd_worker {
	struct cairn_httpd *h;
	unsigned idx;
	pthread_t tid;
	int started;
	h2o_evloop_t *loop;
	h2o_context_t ctx;
	h2o_accept_ctx_t accept_ctx;
	h2o_socket_t *listeners[CAIRN_HTTPD_MAX_LISTEN];
	size_t n_listeners;
	h2o_multithread_receiver_t stream_rx;
	h2o_multithread_receiver_t stop_rx;
	h2o_multithread_message_t stop_msg;
	h2o_linklist_t streams; /* live streams, loop side */
	h2o_req_t *deferred;	/* the handler running now deferred its answer */
	h2o_timeout_t send_timeout;
	h2o_timeout_t accept_pause; /* out of descriptors: listeners unwatched */
	h2o_timeout_entry_t accept_resume;
	uint64_t accept_fd_exhausted; /* pauses, for the metrics (atomic) */
	h2o_timeout_t map_timeout;
	h2o_timeout_entry_t map_sweep;
	uint64_t inflight; /* requests between on_req and dispose */
	int stopping;
	uint64_t stop_deadline;
	/* [route][slot]; route n_routes is "none" (refused before routing) */
	uint64_t (*counts)[HTTPD_STATUS_SLOTS];
	uint64_t *bytes;
};

struct cairn_httpd {
	struct cairn_httpd_config cfg;
	char *cfg_strings[CAIRN_HTTPD_MAX_LISTEN + 4];
	h2o_globalconf_t gconf;
	h2o_logconf_t *logconf;
	int log_fd;
	int own_log_fd;
	struct httpd_route routes[CAIRN_HTTPD_MAX_ROUTES];
	size_t n_routes;
	struct metrics *metrics; /* cairn_http_* and what servers add */
	size_t n_counters;	 /* added by cairn_httpd_counter_new */
	/* listening fds: [listen][thread] with reuseport, else [listen][0] */
	int fds[CAIRN_HTTPD_MAX_LISTEN][CAIRN_HTTPD_MAX_THREADS];
	size_t n_fds;
	int port;
	unsigned threads;
	struct httpd_worker *workers;
	int stop_pipe[2];
	atomic_int stop_asked; /* cairn_httpd_stopping */
	int started;
	/* workers count themselves in once their loop can take messages */
	pthread_mutex_t ready_mu;
	pthread_cond_t ready_cond;
	unsigned ready;
	pthread_mutex_t maps_mu;
	struct httpd_map maps[HTTPD_MAPS];
};

extern const int httpd_status_codes[HTTPD_STATUS_SLOTS];
extern _Thread_local struct httpd_worker *httpd_tls_worker;

static inline h2o_req_t *httpd_h2o(struct cairn_httpd_req *r)
{
	return (h2o_req_t *)(void *)r;
}

static inline const h2o_req_t *httpd_h2o_const(const struct cairn_httpd_req *r)
{
	return (const h2o_req_t *)(const void *)r;
}

/*
 * A response's send watchdog: armed while h2o waits for the client to take
 * bytes, it shuts the socket down when the client takes nothing for
 * send_timeout_ms; h2o then sees a write error and closes the connection
 * through its own path.  Zero-initialise; disarm before the request is freed.
 */
struct httpd_watchdog {
	h2o_timeout_entry_t entry;
	h2o_req_t *req;
};
void httpd_watchdog_arm(struct httpd_watchdog *wd, h2o_req_t *req);
void httpd_watchdog_disarm(struct httpd_watchdog *wd);

/* Files at least this large are sent from the server's mappings (HTTP/1),
 * in pieces of MAP_PIECE. */
#define HTTPD_MAP_MIN (1024 * 1024)
#define HTTPD_MAP_PIECE (2 * 1024 * 1024)
/* Loop thread: the server's mapping of fd (which st describes), made if need
 * be; NULL: read it instead.  Give it back with httpd_map_put (fd: the same
 * file, still open, to notice a deletion). */
struct httpd_map *httpd_map_get(struct httpd_worker *w, int fd, const struct stat *st);
void httpd_map_put(struct httpd_worker *w, struct httpd_map *m, int fd);
void httpd_maps_init(struct httpd_worker *w);
void httpd_maps_dispose(struct httpd_worker *w);
/* At cairn_httpd_free: unmap what no response holds any more. */
void httpd_maps_free(struct cairn_httpd *h);
const char *httpd_reason(int status);

/* httpd-listen.c: sockets, port file and privileges, at cairn_httpd_start */
int httpd_bind_all(struct cairn_httpd *h, struct cairn_error *err);
int httpd_adopt_systemd(struct cairn_httpd *h, struct cairn_error *err);
int httpd_write_port_file(const char *path, int port, struct cairn_error *err);
int httpd_drop_privileges(const char *user, struct cairn_error *err);

/* httpd-hook.c: the interposed request parser marks a refused head with
 * one of these field names (a space: no client can send them) */
#define TOO_MANY_FIELDS "cairn too-many-fields"
#define BAD_FRAMING "cairn bad-framing"
/* Found once, when a server is made: without it no server starts. */
int httpd_find_real_parser(struct cairn_error *err);
/* "404 not found\n": the body of every error response; returns its length */
size_t httpd_error_body(int status, char *body, size_t size);
int httpd_is_head(const h2o_req_t *req);
void httpd_stream_rx_cb(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages);
/* Loop side, at the shutdown deadline: cancel every live stream's producer. */
void httpd_streams_cancel_all(struct httpd_worker *w);

/* Used by tests only, not part of the public API. */
/*
 * Find `key` in the query string and copy its value (not decoded) into
 * out[outsize]; CAIRN_ENOENT when absent, CAIRN_ELIMIT when too long.
 */
int cairn_httpd_query_get(const struct cairn_httpd_req *req, const char *key, char *out,
			  size_t outsize);
/* The client's address as text ("127.0.0.1", "::1") into buf; 0 or CAIRN_EIO. */
int cairn_httpd_req_peer(const struct cairn_httpd_req *req, char *buf, size_t bufsize);
/* A redirect (301, 302, 307, 308) to `location` (copied), with a short body. */
int cairn_httpd_send_redirect(struct cairn_httpd_req *req, int status, const char *location);

#endif
