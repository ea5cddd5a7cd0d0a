/*
 * nar-cursor.c - compressed NAR files read from where an earlier request
 * stopped (lib/nar-cursor.h).
 *
 * A compressed stream (xz, zstd as Nix writes it: one frame) can only be
 * decompressed from its start, so cutting chunk k of a cached nar costs
 * every byte before it.  A gateway asked for the chunks of a file one
 * after the other (Helia, cairn fetch) would decompress the file once per
 * chunk.  Instead, a request parks its decompression where it stopped
 * (its fd, the codec's state and the few bytes it decoded past the end)
 * and the next request that starts at or after that point continues from
 * it: N requests in order decompress the file once.  Random requests pick
 * the parked cursor nearest below them, so the more cursors an item has,
 * the less each request decompresses.
 */
#include "nar-cursor.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/banned.h"

/* Compressed bytes per read: bounds what one read decodes past the end. */
#define READ_BUF ((size_t)16 << 10)

struct cursor {
	char id[NAR_CURSOR_KEY_MAX + 1];
	int fd;
	struct cairn_codec *codec;
	uint64_t off;	    /* NAR offset of the next byte to give */
	uint8_t *spill;	    /* decoded bytes [off, off + spill_len) not given yet */
	size_t spill_len, spill_cap;
	uint64_t used;	    /* when parked: the pool's clock */
	uint64_t target;    /* in use: where it stops (the sink's want_hi) */
	struct cursor *next_busy;
};

/* A request waiting for a cursor in use to stop at or before want. */
struct waiter {
	const char *id;
	uint64_t want;
	struct waiter *next;
};

struct nar_cursors {
	pthread_mutex_t mu;
	pthread_cond_t parked_cv; /* a cursor was parked or freed */
	struct cursor *parked[NAR_CURSORS_MAX];
	size_t n;
	uint64_t clock;
	struct cursor *busy; /* in use, by a request */
	struct waiter *waiters;
};

struct nar_cursors *nar_cursors_new(void)
{
	struct nar_cursors *p = calloc(1, sizeof(*p));
	if (p) {
		pthread_mutex_init(&p->mu, NULL);
		pthread_cond_init(&p->parked_cv, NULL);
	}
	return p;
}

static void cursor_free(struct cursor *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	cairn_codec_free(c->codec);
	free(c->spill);
	free(c);
}

void nar_cursors_free(struct nar_cursors *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		cursor_free(p->parked[i]);
	pthread_cond_destroy(&p->parked_cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* The parked cursor of id furthest on but not past off (SIZE_MAX: none). */
static size_t best_parked(const struct nar_cursors *p, const char *id, uint64_t off)
{
	size_t best = SIZE_MAX;
	for (size_t i = 0; i < p->n; i++) {
		const struct cursor *c = p->parked[i];
		if (strcmp(c->id, id) == 0 && c->off <= off &&
		    (best == SIZE_MAX || c->off > p->parked[best]->off))
			best = i;
	}
	return best;
}

/* Is a cursor of id in use that will stop at or before off? */
static bool busy_before(const struct nar_cursors *p, const char *id, uint64_t off)
{
	for (const struct cursor *c = p->busy; c; c = c->next_busy)
		if (strcmp(c->id, id) == 0 && c->target <= off)
			return true;
	return false;
}

/* Does another waiter want what lies between from and off (a cursor at
 * from is its, not ours: it is nearer)? */
static bool nearer_waiter(const struct nar_cursors *p, const struct waiter *me, uint64_t from)
{
	for (const struct waiter *w = p->waiters; w; w = w->next)
		if (w != me && strcmp(w->id, me->id) == 0 && w->want >= from && w->want < me->want)
			return true;
	return false;
}

/*
 * Take the parked cursor of id nearest below off.  When none is parked
 * but one in use will stop before off (requests for consecutive chunks
 * arrive together: Helia asks for several at once), wait for it, bounded
 * by NAR_CURSOR_WAIT_S, rather than decompress from the start; a cursor
 * parked is left to the waiter it is nearest, so that a run of requests
 * chains through one cursor.  Else a new cursor, at 0.  Either is marked
 * in use until target (NULL: out of memory).
 */
static struct cursor *take(struct nar_cursors *p, const char *id, uint64_t off, uint64_t target)
{
	struct waiter me = {.id = id, .want = off};
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += NAR_CURSOR_WAIT_S;
	bool waiting = false, timed_out = false;
	struct cursor *c = NULL;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		size_t best = best_parked(p, id, off);
		if (best != SIZE_MAX &&
		    (timed_out || !nearer_waiter(p, &me, p->parked[best]->off))) {
			c = p->parked[best];
			p->parked[best] = p->parked[--p->n];
			break;
		}
		if (timed_out || !(busy_before(p, id, off) || (best != SIZE_MAX)))
			break;
		if (!waiting) {
			me.next = p->waiters;
			p->waiters = &me;
			waiting = true;
		}
		timed_out = pthread_cond_timedwait(&p->parked_cv, &p->mu, &dl) != 0;
	}
	if (waiting) {
		struct waiter **w = &p->waiters;
		while (*w != &me)
			w = &(*w)->next;
		*w = me.next;
		/* one further on may have been leaving a cursor to us */
		pthread_cond_broadcast(&p->parked_cv);
	}
	if (!c && (c = calloc(1, sizeof(*c))) != NULL) {
		memcpy(c->id, id, strlen(id) + 1);
		c->fd = -1;
	}
	if (c) {
		/* in use before the lock is let go: who comes next waits for it */
		c->target = target;
		c->next_busy = p->busy;
		p->busy = c;
	}
	pthread_mutex_unlock(&p->mu);
	return c;
}

static void unbusy_locked(struct nar_cursors *p, struct cursor *c)
{
	struct cursor **b = &p->busy;
	while (*b && *b != c)
		b = &(*b)->next_busy;
	if (*b)
		*b = c->next_busy;
	pthread_cond_broadcast(&p->parked_cv);
}

/* Done with c without parking it. */
static void drop(struct nar_cursors *p, struct cursor *c)
{
	pthread_mutex_lock(&p->mu);
	unbusy_locked(p, c);
	pthread_mutex_unlock(&p->mu);
	cursor_free(c);
}

/* Park c, making room by dropping its file's least recently used cursor when it
 * has its share, else the pool's. */
static void park(struct nar_cursors *p, struct cursor *c)
{
	struct cursor *drop = NULL;
	pthread_mutex_lock(&p->mu);
	unbusy_locked(p, c);
	c->used = ++p->clock;
	size_t mine = 0, lru_mine = SIZE_MAX, lru = SIZE_MAX;
	for (size_t i = 0; i < p->n; i++) {
		const struct cursor *x = p->parked[i];
		if (strcmp(x->id, c->id) == 0) {
			mine++;
			if (lru_mine == SIZE_MAX || x->used < p->parked[lru_mine]->used)
				lru_mine = i;
		}
		if (lru == SIZE_MAX || x->used < p->parked[lru]->used)
			lru = i;
	}
	size_t victim = mine >= NAR_CURSORS_PER_ITEM ? lru_mine
			: p->n >= NAR_CURSORS_MAX    ? lru
						     : SIZE_MAX;
	if (victim != SIZE_MAX) {
		drop = p->parked[victim];
		p->parked[victim] = c;
	} else {
		p->parked[p->n++] = c;
	}
	pthread_mutex_unlock(&p->mu);
	cursor_free(drop);
}

struct run {
	struct cursor *c;
	const struct ipfs_gw_sink *sink;
	struct cairn_error *err;
	int rc;	   /* the sink's: CAIRN_ECANCELED once it has all it asked for */
	bool over; /* decoded past what the cursor may keep */
};

static int spill(struct run *r, const uint8_t *d, size_t len)
{
	struct cursor *c = r->c;
	if (len > NAR_CURSOR_SPILL_MAX - c->spill_len) {
		r->over = true;
		return 0;
	}
	if (c->spill_len + len > c->spill_cap) {
		size_t cap = c->spill_cap ? c->spill_cap : READ_BUF;
		while (cap < c->spill_len + len)
			cap *= 2;
		uint8_t *s = realloc(c->spill, cap);
		if (!s) {
			r->over = true;
			return 0;
		}
		c->spill = s;
		c->spill_cap = cap;
	}
	memcpy(c->spill + c->spill_len, d, len);
	c->spill_len += len;
	return 0;
}

/* Decoded bytes at c->off: to the sink up to want_hi, the rest kept. */
static int give(void *ctx, const void *data, size_t len)
{
	struct run *r = ctx;
	struct cursor *c = r->c;
	const uint8_t *d = data;
	if (r->rc == CAIRN_ECANCELED)
		return r->over ? 0 : spill(r, d, len);
	size_t n = len;
	/* past want_hi the sink has stopped us, or the NAR grew: its to say */
	if (c->off < r->sink->want_hi && r->sink->want_hi - c->off < n)
		n = (size_t)(r->sink->want_hi - c->off);
	int rc = r->sink->bytes(r->sink->ctx, d, n, r->err);
	c->off += n;
	if (rc != 0 && rc != CAIRN_ECANCELED)
		return r->rc = rc;
	r->rc = rc;
	if (n < len) {
		if (rc == 0)
			return give(ctx, d + n, len - n);
		return spill(r, d + n, len - n);
	}
	return 0;
}

/* A nar file to read: a regular file, never a link, a pipe or a device (a
 * directory served as it is may hold anything under a nar's name). */
static int open_nar(int dirfd, const char *name)
{
	struct stat sb;
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd >= 0 && (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int nar_cursors_read(struct nar_cursors *p, const char *id, int dirfd, const char *name,
		     enum cairn_codec_method method, uint64_t nar_size,
		     const struct ipfs_gw_sink *sink, struct cairn_error *err)
{
	if (strlen(id) > NAR_CURSOR_KEY_MAX)
		return cairn_error_set(err, CAIRN_EINVAL, "nar cursor: id too long");
	/* a sink that needs every byte gets a cursor of its own, never parked */
	struct cursor *c = sink->skip ? take(p, id, sink->want_lo, sink->want_hi)
				      : calloc(1, sizeof(*c));
	if (!c)
		return cairn_error_set(err, CAIRN_ENOMEM, "nar cursor: out of memory");
	int rc = 0;
	if (!c->codec) {
		c->fd = open_nar(dirfd, name);
		if (c->fd < 0)
			rc = cairn_error_set(err, CAIRN_ENOENT,
					     "nar cursor: the nar %s is gone or not a file", name);
		else
			rc = cairn_codec_new(&c->codec, method, CAIRN_CODEC_DECOMPRESS,
					     CAIRN_CODEC_LEVEL_DEFAULT, nar_size, err);
	} else if (c->off > 0) {
		rc = sink->skip(sink->ctx, c->off, err);
	}
	if (rc) {
		drop(p, c);
		return rc;
	}
	struct run r = {.c = c, .sink = sink, .err = err};
	if (c->spill_len) {
		/* what the last request decoded past its end comes first */
		uint8_t *s = c->spill;
		size_t sl = c->spill_len;
		c->spill = NULL;
		c->spill_len = c->spill_cap = 0;
		rc = give(&r, s, sl);
		free(s);
		if (rc == 0)
			rc = r.rc;
	}
	uint8_t *buf = rc ? NULL : malloc(READ_BUF);
	if (rc == 0 && !buf)
		rc = cairn_error_set(err, CAIRN_ENOMEM, "nar cursor: out of memory");
	bool eof = false;
	while (rc == 0) {
		ssize_t n = read(c->fd, buf, READ_BUF);
		if (n < 0) {
			rc = cairn_error_set(err, CAIRN_EIO, "nar cursor: reading the nar %s", name);
			break;
		}
		if (n == 0) {
			eof = true;
			rc = cairn_codec_finish(c->codec, give, &r, err);
			break;
		}
		rc = cairn_codec_write(c->codec, buf, (size_t)n, give, &r, err);
		if (rc == 0 && r.rc == CAIRN_ECANCELED)
			rc = CAIRN_ECANCELED;
	}
	free(buf);
	if (rc == 0)
		rc = r.rc;
	/* stopped by the sink with its state whole: the next request may go on */
	if (rc == CAIRN_ECANCELED && r.rc == CAIRN_ECANCELED && !eof && !r.over && sink->skip)
		park(p, c);
	else
		drop(p, c);
	return rc;
}

int nar_cursors_source(struct nar_cursors *p, const char *id, int dirfd, const char *name,
		       enum cairn_codec_method method, uint64_t file_size, uint64_t nar_size,
		       const struct ipfs_gw_sink *sink, struct cairn_error *err)
{
	if (method != CAIRN_CODEC_NONE || !sink->file || file_size < IPFS_GW_FILE_MIN)
		return nar_cursors_read(p, id, dirfd, name, method, nar_size, sink, err);
	int fd = open_nar(dirfd, name);
	if (fd < 0)
		return cairn_error_set(err, CAIRN_ENOENT, "the nar %s is gone or not a file", name);
	int rc = sink->file(sink->ctx, fd, file_size, err);
	close(fd);
	return rc;
}
