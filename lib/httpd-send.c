/*
 * httpd-send.c - request accessors and responses from memory and files.
 *
 * Files.  h2o's own h2o_file_send does not look at Range, If-None-Match or
 * the method (its file *handler* does, but that serves a fixed directory
 * tree), so cairn has its own small file generator: conditional requests
 * and a single byte range are decided here, and the body is read with
 * pread.  On HTTP/1 with a known length h2o offers a "pull" interface where
 * the final output stream asks the generator to fill its own 64 KiB write
 * buffer (one copy, headers and the first bytes in one write); elsewhere the
 * generator pushes 64 KiB pieces, each after the previous was written.
 * The fd lives in a pool-shared allocation so it is closed exactly when h2o
 * frees the request, however the response ended.
 *
 * Large files on HTTP/1 are sent from a mapping instead: h2o's HTTP/1
 * output hands our buffers to writev as they are, so the kernel copies
 * page cache to socket once, in 2 MiB pieces, where pread costs a second
 * copy (+50% throughput on a 256 MiB file here).  Mapping per request
 * costs about as much as it saves (page-table set-up and tear-down), so
 * the server keeps its last HTTPD_MAPS mappings, shared by its loops and
 * keyed by inode, size and mtime: a popular nar is mapped once.  Safety: we never touch the
 * mapping ourselves; if a file is truncated under us, writev fails with
 * EFAULT and the response ends short, as it must - no SIGBUS.  HTTP/2 is
 * not mapped, because h2o copies into its frames in user space.  A file
 * that was deleted is unmapped when its last response ends; idle
 * mappings go after MAP_IDLE_MS, so a deleted file's space comes back
 * within twice that.
 *
 * Validators: ETag is "<mtime hex>.<mtime nsec hex>-<size hex>" (strong: a
 * store file changes size or mtime when it changes, and store paths are
 * immutable anyway); Last-Modified is the mtime.  RFC 9110 13.2.2 order:
 * If-None-Match wins over If-Modified-Since; a Range is only honoured on a
 * 200 and, when If-Range is present, only if it matches the ETag.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "httpd-int.h"
#include "cairn/banned.h"

#define FILE_PIECE (64 * 1024)
#define MAP_MIN HTTPD_MAP_MIN
#define MAP_PIECE HTTPD_MAP_PIECE
#define MAP_IDLE_MS 10000
#define ETAG_MAX 64

/* --- request accessors ------------------------------------------------------- */


const char *cairn_httpd_req_path(const struct cairn_httpd_req *req, size_t *len)
{
	const h2o_req_t *r = httpd_h2o_const(req);
	*len = r->query_at != SIZE_MAX ? r->query_at : r->path.len;
	return r->path.base;
}

const char *cairn_httpd_req_query(const struct cairn_httpd_req *req, size_t *len)
{
	const h2o_req_t *r = httpd_h2o_const(req);
	if (r->query_at == SIZE_MAX)
		return NULL;
	*len = r->path.len - r->query_at - 1;
	return r->path.base + r->query_at + 1;
}

const char *cairn_httpd_req_header(const struct cairn_httpd_req *req, const char *name, size_t *len)
{
	const h2o_req_t *r = httpd_h2o_const(req);
	size_t nl = strlen(name);
	/* h2o lower-cases request header names on both protocols */
	for (size_t i = 0; i < r->headers.size; i++) {
		const h2o_header_t *hd = &r->headers.entries[i];
		if (hd->name->len == nl && h2o_lcstris(hd->name->base, nl, name, nl)) {
			*len = hd->value.len;
			return hd->value.base;
		}
	}
	return NULL;
}

int cairn_httpd_req_is_head(const struct cairn_httpd_req *req)
{
	return httpd_is_head(httpd_h2o_const(req));
}

const char *cairn_httpd_req_authority(const struct cairn_httpd_req *req, size_t *len)
{
	const h2o_req_t *r = httpd_h2o_const(req);
	*len = r->authority.len;
	return r->authority.base;
}

int cairn_httpd_req_peer(const struct cairn_httpd_req *req, char *buf, size_t bufsize)
{
	const h2o_req_t *r = httpd_h2o_const(req);
	struct sockaddr_storage ss;
	char tmp[NI_MAXHOST];
	socklen_t sl = r->conn->callbacks->get_peername(r->conn, (struct sockaddr *)&ss);
	if (sl == 0)
		return CAIRN_EIO;
	size_t n = h2o_socket_getnumerichost((struct sockaddr *)&ss, sl, tmp);
	if (n == SIZE_MAX || n >= bufsize)
		return CAIRN_EIO;
	memcpy(buf, tmp, n);
	buf[n] = '\0';
	return 0;
}

int cairn_httpd_req_is_http2(const struct cairn_httpd_req *req)
{
	return httpd_h2o_const(req)->version >= 0x200;
}

int cairn_httpd_query_get(const struct cairn_httpd_req *req, const char *key, char *out,
			  size_t outsize)
{
	size_t ql, kl = strlen(key);
	const char *q = cairn_httpd_req_query(req, &ql);

	while (q && ql > 0) {
		const char *amp = memchr(q, '&', ql);
		size_t fl = amp ? (size_t)(amp - q) : ql;
		if (fl > kl && memcmp(q, key, kl) == 0 && q[kl] == '=') {
			size_t vl = fl - kl - 1;
			if (vl >= outsize)
				return CAIRN_ELIMIT;
			memcpy(out, q + kl + 1, vl);
			out[vl] = '\0';
			return 0;
		}
		if (!amp)
			break;
		ql -= fl + 1;
		q = amp + 1;
	}
	return CAIRN_ENOENT;
}

void cairn_httpd_add_header(struct cairn_httpd_req *req, const char *name, const char *value)
{
	h2o_req_t *r = httpd_h2o(req);
	size_t nl = strlen(name), vl = strlen(value);
	/* h2o wants lower-case names (HTTP/2 requires them) */
	char *lname = h2o_mem_alloc_pool(&r->pool, nl + 1);
	for (size_t i = 0; i <= nl; i++)
		lname[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
	h2o_iovec_t v = h2o_strdup(&r->pool, value, vl);
	h2o_add_header_by_str(&r->pool, &r->res.headers, lname, nl, 1, NULL, v.base, v.len);
}

/* --- memory responses --------------------------------------------------------- */

static h2o_generator_t oneshot_generator = {NULL, NULL};

static int send_mem(h2o_req_t *req, int status, const char *content_type, const void *body,
		    size_t len, int copy)
{
	h2o_iovec_t buf = {(char *)(uintptr_t)body, len};

	req->res.status = status;
	req->res.reason = httpd_reason(status);
	req->res.content_length = len;
	if (content_type)
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
			       content_type, strlen(content_type));
	h2o_start_response(req, &oneshot_generator);
	if (httpd_is_head(req) || len == 0) {
		h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
		return 0;
	}
	if (copy) {
		buf.base = h2o_mem_alloc_pool(&req->pool, len);
		memcpy(buf.base, body, len);
	}
	h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
	return 0;
}

int cairn_httpd_send(struct cairn_httpd_req *req, int status, const char *content_type,
		     const void *body, size_t len)
{
	if (!req || status < 100 || status > 999 || (len && !body))
		return CAIRN_EINVAL;
	return send_mem(httpd_h2o(req), status, content_type, body, len, 1);
}

int cairn_httpd_send_static(struct cairn_httpd_req *req, int status, const char *content_type,
			    const void *body, size_t len)
{
	if (!req || status < 100 || status > 999 || (len && !body))
		return CAIRN_EINVAL;
	return send_mem(httpd_h2o(req), status, content_type, body, len, 0);
}

size_t httpd_error_body(int status, char *body, size_t size)
{
	int n = snprintf(body, size, "%d %s\n", status, httpd_reason(status));
	for (int i = 4; i < n; i++)
		if (body[i] >= 'A' && body[i] <= 'Z')
			body[i] = (char)(body[i] + 32);
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

int cairn_httpd_send_error(struct cairn_httpd_req *req, int status)
{
	char body[96];

	if (!req || status < 400 || status > 599)
		return CAIRN_EINVAL;
	size_t n = httpd_error_body(status, body, sizeof(body));
	h2o_req_t *r = httpd_h2o(req);
	/* errors are not cached, unless the handler said otherwise (a 404 with max-age) */
	if (h2o_find_header(&r->res.headers, H2O_TOKEN_CACHE_CONTROL, -1) == -1)
		h2o_add_header(&r->pool, &r->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
			       H2O_STRLIT("no-store"));
	return send_mem(r, status, "text/plain; charset=utf-8", body, n, 1);
}

int cairn_httpd_send_error_why(struct cairn_httpd_req *req, int status, const char *why)
{
	char body[320];

	if (!req || status < 400 || status > 599 || !why)
		return CAIRN_EINVAL;
	int n = snprintf(body, sizeof(body), "%d %s\n", status, why);
	size_t len = n < 0 ? 0 : (size_t)n >= sizeof(body) ? sizeof(body) - 1 : (size_t)n;
	h2o_req_t *r = httpd_h2o(req);
	if (h2o_find_header(&r->res.headers, H2O_TOKEN_CACHE_CONTROL, -1) == -1)
		h2o_add_header(&r->pool, &r->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
			       H2O_STRLIT("no-store"));
	return send_mem(r, status, "text/plain; charset=utf-8", body, len, 1);
}

int cairn_httpd_send_redirect(struct cairn_httpd_req *req, int status, const char *location)
{
	if (!req || !location ||
	    !(status == 301 || status == 302 || status == 307 || status == 308))
		return CAIRN_EINVAL;
	for (const char *p = location; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return CAIRN_EINVAL; /* no header injection */
	cairn_httpd_add_header(req, "location", location);
	return send_mem(httpd_h2o(req), status, "text/plain; charset=utf-8", "redirect\n", 9, 0);
}

/* --- files ------------------------------------------------------------------------ */

struct file_gen {
	h2o_generator_t super;
	int fd;
	off_t off;
	size_t left;
	char *buf;
	struct httpd_map *map; /* sending from the server's mapping */
	struct httpd_watchdog wd;
};

/* --- the server's mappings ----------------------------------------------------- */

/* munmap outside maps_mu: a large populated mapping takes a while to tear down */
struct unmap {
	char *base;
	size_t len;
};

static void map_take(struct httpd_map *m, struct unmap *u)
{
	u->base = m->base;
	u->len = m->len;
	memset(m, 0, sizeof(*m));
}

static void unmap_all(struct unmap *u, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (u[i].base)
			munmap(u[i].base, u[i].len);
}

static void map_sweep_cb(h2o_timeout_entry_t *entry)
{
	struct httpd_worker *w = H2O_STRUCT_FROM_MEMBER(struct httpd_worker, map_sweep, entry);
	struct cairn_httpd *h = w->h;
	struct unmap gone[HTTPD_MAPS] = {{0}};
	uint64_t now = h2o_now(w->loop);
	int idle = 0;
	pthread_mutex_lock(&h->maps_mu);
	for (size_t i = 0; i < HTTPD_MAPS; i++) {
		struct httpd_map *m = &h->maps[i];
		if (!m->base || m->refs)
			continue;
		if (now - m->idle_since >= MAP_IDLE_MS)
			map_take(m, &gone[i]);
		else
			idle = 1;
	}
	pthread_mutex_unlock(&h->maps_mu);
	unmap_all(gone, HTTPD_MAPS);
	/* another loop's timer may be the one that gets to them; either is fine */
	if (idle)
		h2o_timeout_link(w->loop, &w->map_timeout, &w->map_sweep);
}

void httpd_maps_init(struct httpd_worker *w)
{
	h2o_timeout_init(w->loop, &w->map_timeout, MAP_IDLE_MS);
	memset(&w->map_sweep, 0, sizeof(w->map_sweep));
	w->map_sweep.cb = map_sweep_cb;
}

void httpd_maps_dispose(struct httpd_worker *w)
{
	if (h2o_timeout_is_linked(&w->map_sweep))
		h2o_timeout_unlink(&w->map_sweep);
	h2o_timeout_dispose(w->loop, &w->map_timeout);
}

void httpd_maps_free(struct cairn_httpd *h)
{
	struct unmap gone[HTTPD_MAPS] = {{0}};
	pthread_mutex_lock(&h->maps_mu);
	/* one still held belongs to a loop left undisposed at exit: leave it */
	for (size_t i = 0; i < HTTPD_MAPS; i++)
		if (h->maps[i].base && !h->maps[i].refs)
			map_take(&h->maps[i], &gone[i]);
	pthread_mutex_unlock(&h->maps_mu);
	unmap_all(gone, HTTPD_MAPS);
}

/* The server's mapping of fd (which st describes), made if need be; NULL: use pread. */
struct httpd_map *httpd_map_get(struct httpd_worker *w, int fd, const struct stat *st)
{
	struct cairn_httpd *h = w->h;
	struct httpd_map *m, *victim = NULL, *found = NULL;
	struct unmap old = {0};
	pthread_mutex_lock(&h->maps_mu);
	for (size_t i = 0; i < HTTPD_MAPS && !found; i++) {
		m = &h->maps[i];
		if (m->base && m->dev == st->st_dev && m->ino == st->st_ino &&
		    m->len == (size_t)st->st_size && m->mtime.tv_sec == st->st_mtim.tv_sec &&
		    m->mtime.tv_nsec == st->st_mtim.tv_nsec) {
			m->refs++;
			found = m;
		} else if (!m->base) {
			victim = victim && !victim->base ? victim : m;
		} else if (!m->refs && (!victim || (victim->base && m->idle_since < victim->idle_since))) {
			victim = m;
		}
	}
	if (!found && victim) {
		/* mmap itself only sets up the range: cheap under the lock */
		void *base = mmap(NULL, (size_t)st->st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (base != MAP_FAILED) {
			if (victim->base)
				map_take(victim, &old);
			victim->base = base;
			victim->len = (size_t)st->st_size;
			victim->dev = st->st_dev;
			victim->ino = st->st_ino;
			victim->mtime = st->st_mtim;
			victim->refs = 1;
			found = victim;
		}
	}
	pthread_mutex_unlock(&h->maps_mu);
	unmap_all(&old, 1);
	return found; /* NULL: every slot is sending, or mmap failed: this one reads */
}

void httpd_map_put(struct httpd_worker *w, struct httpd_map *m, int fd)
{
	struct cairn_httpd *h = w->h;
	struct unmap gone = {0};
	struct stat st;
	/* deleted (a nar evicted, a store path collected): give the space back now */
	bool deleted = fd >= 0 && fstat(fd, &st) == 0 && st.st_nlink == 0;
	pthread_mutex_lock(&h->maps_mu);
	if (--m->refs == 0) {
		if (deleted)
			map_take(m, &gone);
		else
			m->idle_since = h2o_now(w->loop);
	}
	bool idle = m->base && m->refs == 0;
	pthread_mutex_unlock(&h->maps_mu);
	unmap_all(&gone, 1);
	if (idle && !h2o_timeout_is_linked(&w->map_sweep))
		h2o_timeout_link(w->loop, &w->map_timeout, &w->map_sweep);
}

static void map_proceed(h2o_generator_t *self, h2o_req_t *req)
{
	struct file_gen *g = (struct file_gen *)self;
	size_t n = g->left < MAP_PIECE ? g->left : MAP_PIECE;
	h2o_iovec_t v = {g->map->base + g->off, n};

	g->off += (off_t)n;
	g->left -= n;
	httpd_watchdog_arm(&g->wd, req);
	h2o_send(req, &v, 1, g->left == 0 ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

/* pool-shared dispose: h2o is done with the request */
static void file_gen_dispose(void *p)
{
	struct file_gen *g = p;
	httpd_watchdog_disarm(&g->wd);
	/* requests are freed on their loop, so this is the loop that mapped it */
	if (g->map && httpd_tls_worker)
		httpd_map_put(httpd_tls_worker, g->map, g->fd);
	g->map = NULL;
	if (g->fd >= 0)
		close(g->fd);
	g->fd = -1;
}

static ssize_t pread_full(int fd, char *buf, size_t len, off_t off)
{
	ssize_t r;
	while ((r = pread(fd, buf, len, off)) < 0 && errno == EINTR)
		;
	return r;
}

static void file_proceed(h2o_generator_t *self, h2o_req_t *req)
{
	struct file_gen *g = (struct file_gen *)self;
	size_t want = g->left < FILE_PIECE ? g->left : FILE_PIECE;
	ssize_t r = pread_full(g->fd, g->buf, want, g->off);

	/* a file that shrank under us must not look like a complete body */
	if (r <= 0) {
		h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
		return;
	}
	g->off += r;
	g->left -= (size_t)r;
	httpd_watchdog_arm(&g->wd, req);
	h2o_iovec_t v = {g->buf, (size_t)r};
	h2o_send(req, &v, 1, g->left == 0 ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static h2o_send_state_t file_pull(h2o_generator_t *self, h2o_req_t *req, h2o_iovec_t *buf)
{
	struct file_gen *g = (struct file_gen *)self;
	size_t want = g->left < buf->len ? g->left : buf->len;
	ssize_t r = pread_full(g->fd, buf->base, want, g->off);

	if (r <= 0) {
		buf->len = 0;
		return H2O_SEND_STATE_ERROR;
	}
	buf->len = (size_t)r;
	g->off += r;
	g->left -= (size_t)r;
	httpd_watchdog_arm(&g->wd, req);
	return g->left == 0 ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS;
}

static void file_stop(h2o_generator_t *self, h2o_req_t *req)
{
	(void)self;
	(void)req;
}

/* Does the If-None-Match list contain our ETag (weak comparison, RFC 9110 8.8.3.2)? */
static int etag_listed(const char *list, size_t len, const char *etag, size_t elen)
{
	size_t i = 0;
	while (i < len) {
		while (i < len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
			i++;
		if (i < len && list[i] == '*')
			return 1;
		if (i + 2 <= len && list[i] == 'W' && list[i + 1] == '/')
			i += 2;
		size_t s = i;
		while (i < len && list[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (list[e - 1] == ' ' || list[e - 1] == '\t'))
			e--;
		if (e - s == elen && memcmp(list + s, etag, elen) == 0)
			return 1;
	}
	return 0;
}

static int parse_http_date(const char *s, size_t len, time_t *out)
{
	char tmp[64];
	struct tm tm;
	if (len >= sizeof(tmp))
		return CAIRN_EFORMAT;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(tmp, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end)
		return CAIRN_EFORMAT;
	*out = timegm(&tm);
	return 0;
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > 19)
		return CAIRN_EFORMAT;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return CAIRN_EFORMAT;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

#define RANGE_NONE CAIRN_HTTPD_RANGE_NONE
#define RANGE_OK CAIRN_HTTPD_RANGE_OK
#define RANGE_UNSATISFIABLE CAIRN_HTTPD_RANGE_UNSATISFIABLE

/* "bytes=A-B", "bytes=A-", "bytes=-N"; anything else (several ranges too) is ignored */
enum cairn_httpd_range cairn_httpd_parse_range(const char *s, size_t len, uint64_t size,
					       uint64_t *start, uint64_t *count)
{
	uint64_t a, b;

	if (len < 7 || memcmp(s, "bytes=", 6) != 0 || memchr(s, ',', len))
		return RANGE_NONE;
	s += 6;
	len -= 6;
	const char *dash = memchr(s, '-', len);
	if (!dash)
		return RANGE_NONE;
	size_t al = (size_t)(dash - s), bl = len - al - 1;
	if (al == 0) {
		if (parse_u64(dash + 1, bl, &b) < 0)
			return RANGE_NONE;
		if (b == 0 || size == 0)
			return RANGE_UNSATISFIABLE;
		if (b > size)
			b = size;
		*start = size - b;
		*count = b;
		return RANGE_OK;
	}
	if (parse_u64(s, al, &a) < 0)
		return RANGE_NONE;
	if (bl == 0) {
		b = size ? size - 1 : 0;
	} else if (parse_u64(dash + 1, bl, &b) < 0 || b < a) {
		return RANGE_NONE;
	}
	if (a >= size)
		return RANGE_UNSATISFIABLE;
	if (b >= size)
		b = size - 1;
	*start = a;
	*count = b - a + 1;
	return RANGE_OK;
}

int cairn_httpd_send_take_fd(struct cairn_httpd_req *creq, int fd, const char *content_type)
{
	h2o_req_t *req = httpd_h2o(creq);
	struct stat st;
	char etag[ETAG_MAX];
	char *lastmod;
	size_t vl;
	const char *v;
	int status = 200;
	uint64_t start = 0, count;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return CAIRN_EINVAL;
	}
	struct file_gen *g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), file_gen_dispose);
	memset(g, 0, sizeof(*g));
	g->fd = fd;
	count = (uint64_t)st.st_size;

	int elen =
	    snprintf(etag, sizeof(etag), "\"%llx.%lx-%llx\"", (unsigned long long)st.st_mtim.tv_sec,
		     (unsigned long)st.st_mtim.tv_nsec, (unsigned long long)st.st_size);
	lastmod = h2o_mem_alloc_pool(&req->pool, H2O_TIMESTR_RFC1123_LEN + 1);
	struct tm gm;
	gmtime_r(&st.st_mtim.tv_sec, &gm);
	h2o_time2str_rfc1123(lastmod, &gm);

	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ETAG, NULL,
		       h2o_strdup(&req->pool, etag, (size_t)elen).base, (size_t)elen);
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LAST_MODIFIED, NULL, lastmod,
		       H2O_TIMESTR_RFC1123_LEN);

	/* conditional GET/HEAD */
	int not_modified = 0;
	if ((v = cairn_httpd_req_header(creq, "if-none-match", &vl)) != NULL) {
		not_modified = etag_listed(v, vl, etag, (size_t)elen);
	} else if ((v = cairn_httpd_req_header(creq, "if-modified-since", &vl)) != NULL) {
		time_t t;
		if (parse_http_date(v, vl, &t) == 0 && st.st_mtim.tv_sec <= t)
			not_modified = 1;
	}
	if (not_modified) {
		req->res.status = 304;
		req->res.reason = httpd_reason(304);
		h2o_start_response(req, &oneshot_generator);
		h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
		return 0;
	}

	if (content_type)
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
			       content_type, strlen(content_type));
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCEPT_RANGES, NULL,
		       H2O_STRLIT("bytes"));

	if ((v = cairn_httpd_req_header(creq, "range", &vl)) != NULL) {
		size_t il;
		const char *ir = cairn_httpd_req_header(creq, "if-range", &il);
		enum cairn_httpd_range rr = RANGE_NONE;
		if (!ir || (il == (size_t)elen && memcmp(ir, etag, il) == 0))
			rr = cairn_httpd_parse_range(v, vl, (uint64_t)st.st_size, &start, &count);
		if (rr == RANGE_UNSATISFIABLE) {
			char cr[48];
			int n = snprintf(cr, sizeof(cr), "bytes */%llu",
					 (unsigned long long)st.st_size);
			h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_RANGE, NULL,
				       h2o_strdup(&req->pool, cr, (size_t)n).base, (size_t)n);
			return send_mem(req, 416, NULL, NULL, 0, 0);
		}
		if (rr == RANGE_OK) {
			char cr[80];
			int n = snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu",
					 (unsigned long long)start,
					 (unsigned long long)(start + count - 1),
					 (unsigned long long)st.st_size);
			h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_RANGE, NULL,
				       h2o_strdup(&req->pool, cr, (size_t)n).base, (size_t)n);
			status = 206;
		}
	}

	req->res.status = status;
	req->res.reason = httpd_reason(status);
	req->res.content_length = (size_t)count;
	g->off = (off_t)start;
	g->left = (size_t)count;
	g->super.proceed = file_proceed;
	g->super.stop = file_stop;

	if (httpd_is_head(req) || count == 0) {
		h2o_start_response(req, &oneshot_generator);
		h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
		return 0;
	}
	if (req->version < 0x200 && count >= MAP_MIN && httpd_tls_worker &&
	    (g->map = httpd_map_get(httpd_tls_worker, fd, &st)) != NULL) {
		g->super.proceed = map_proceed;
		h2o_start_response(req, &g->super);
		map_proceed(&g->super, req);
		return 0;
	}
	h2o_start_response(req, &g->super);
	/* the same private hook h2o's file handler uses: HTTP/1, known length */
	if (req->_ostr_top->start_pull != NULL) {
		req->_ostr_top->start_pull(req->_ostr_top, file_pull);
		return 0;
	}
	g->buf = h2o_mem_alloc_pool(&req->pool, count < FILE_PIECE ? (size_t)count : FILE_PIECE);
	file_proceed(&g->super, req);
	return 0;
}

int cairn_httpd_send_file_at(struct cairn_httpd_req *req, int dirfd, const char *relpath,
			     const char *content_type)
{
	struct stat st;
	int fd = openat(dirfd, relpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return CAIRN_ENOENT;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return CAIRN_ENOENT;
	}
	return cairn_httpd_send_take_fd(req, fd, content_type);
}
