/*
 * ipfs-gateway.c - GET/HEAD /ipfs/{cid}: the IPFS trustless gateway
 * (specs.ipfs.tech/http-gateways/trustless-gateway) over the chunk index,
 * for publish and mirror alike.
 *
 *   ?format=raw or Accept: application/vnd.ipld.raw   one block
 *   ?format=car or Accept: application/vnd.ipld.car   a CARv1 of the DAG
 *       under the CID, parents before children (order=dfs), each block
 *       once (dups=n); dag-scope=block|entity|all (a file: entity = all);
 *       entity-bytes=from:to (inclusive, "*" the end, negatives from the
 *       end) for the blocks a byte range of the file needs
 *
 * A CID no item has is 404; identity CIDs (the bafkqaaa probe) are
 * answered from themselves.  Chunk bytes are cut from the server's NAR in
 * a thread per response and checked against their CID before they leave:
 * a store item changed under the index fails the response, it never sends
 * a block that is not what its CID says.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn/codec.h"
#include "ipfs-gateway.h"
#include "ipfs-int.h"
#include "map.h"
#include "metrics.h"
#include "cairn/banned.h"

#define CT_RAW "application/vnd.ipld.raw"
#define CT_CAR "application/vnd.ipld.car; version=1; order=dfs; dups=n"
#define CC_BLOCK "public, max-age=29030400, immutable"
/* a CID not held now may be held soon (an item indexed later) */
#define CC_MISSING "public, max-age=60"
/* stops the NAR source once the last block needed is out */
#define GW_DONE CAIRN_ECANCELED

static int send_text(struct cairn_httpd_req *req, int status, const char *cc, const char *msg)
{
	cairn_httpd_add_header(req, "Cache-Control", cc);
	return cairn_httpd_send(req, status, "text/plain; charset=utf-8", msg, strlen(msg));
}

static bool is(const char *s, size_t len, const char *lit)
{
	return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

static bool parse_i64(const char *s, size_t len, int64_t *out)
{
	bool neg = len > 0 && s[0] == '-';
	size_t i = neg ? 1 : 0;
	if (i == len || len - i > 18)
		return false;
	int64_t v = 0;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = neg ? -v : v;
	return true;
}

/* Does an Accept or Accept-Encoding list hold token with a q above 0? */
static bool list_has(const char *v, size_t len, const char *token)
{
	size_t tl = strlen(token), i = 0;
	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < len && v[i] != ',' && v[i] != ';' && v[i] != ' ')
			i++;
		bool match = i - s == tl && strncmp(v + s, token, tl) == 0;
		bool zero = false;
		while (i < len && v[i] != ',') {
			/* q=0, q=0., q=0.0... : refused */
			if (v[i] == 'q' && i + 2 < len && v[i + 1] == '=' && v[i + 2] == '0') {
				size_t k = i + 3;
				if (k < len && v[k] == '.')
					for (k++; k < len && v[k] == '0'; k++)
						;
				zero = k == len || v[k] == ',' || v[k] == ' ' || v[k] == ';';
			}
			i++;
		}
		if (match && !zero)
			return true;
	}
	return false;
}

int ipfs_gw_parse_req(const char *path, size_t plen, const char *q, size_t qlen, const char *accept,
		      size_t alen, const char *aenc, size_t aelen, struct ipfs_gw_req *r,
		      const char **msg)
{
	struct cairn_error err;
	memset(r, 0, sizeof(*r));
	r->to = INT64_MAX;
	size_t cl = 0;
	while (cl < plen && path[cl] != '/')
		cl++;
	/* a file has no paths under it; a trailing slash names the file */
	if (cl + 1 < plen) {
		*msg = "no such path: a NAR is a file\n";
		return 404;
	}
	cairn_error_init(&err);
	if (cl == 0 || cairn_cid_parse(path, cl, &r->cid, &err) != 0) {
		*msg = "not a CID this gateway reads (CIDv1, base32, raw or dag-pb)\n";
		return 400;
	}
	for (size_t i = 0; q && i < qlen;) {
		size_t s = i;
		while (i < qlen && q[i] != '&')
			i++;
		const char *kv = q + s, *eq = memchr(kv, '=', i - s);
		size_t kl = eq ? (size_t)(eq - kv) : i - s;
		const char *v = eq ? eq + 1 : kv + kl;
		size_t vl = (size_t)(q + i - v);
		i++;
		if (is(kv, kl, "format")) {
			if (is(v, vl, "raw"))
				r->format = GW_RAW;
			else if (is(v, vl, "car"))
				r->format = GW_CAR;
			else {
				*msg = "format: raw or car only (a trustless gateway)\n";
				return 400;
			}
		} else if (is(kv, kl, "dag-scope")) {
			if (is(v, vl, "all"))
				r->scope = GW_SCOPE_ALL;
			else if (is(v, vl, "entity"))
				r->scope = GW_SCOPE_ENTITY;
			else if (is(v, vl, "block"))
				r->scope = GW_SCOPE_BLOCK;
			else {
				*msg = "dag-scope: block, entity or all\n";
				return 400;
			}
		} else if (is(kv, kl, "entity-bytes")) {
			const char *c = memchr(v, ':', vl);
			size_t fl = c ? (size_t)(c - v) : 0;
			if (!c || !parse_i64(v, fl, &r->from) ||
			    !(is(c + 1, vl - fl - 1, "*") ||
			      parse_i64(c + 1, vl - fl - 1, &r->to))) {
				*msg = "entity-bytes: from:to, integers or * for the end\n";
				return 400;
			}
			r->ranged = true;
		}
		/* car-version, car-order, car-dups: we send 1, dfs, n whatever
		 * they ask, which the spec allows (the answer says so) */
	}
	if (r->format == GW_NONE && accept) {
		if (list_has(accept, alen, "application/vnd.ipld.raw"))
			r->format = GW_RAW;
		else if (list_has(accept, alen, "application/vnd.ipld.car"))
			r->format = GW_CAR;
	}
	if (r->format == GW_NONE) {
		*msg = "this is a trustless gateway: ask for application/vnd.ipld.raw or "
		       "application/vnd.ipld.car (or ?format=raw|car)\n";
		return 406;
	}
	r->enc = CAIRN_CODEC_NONE;
	if (r->format == GW_CAR && aenc) {
		if (list_has(aenc, aelen, "zstd"))
			r->enc = CAIRN_CODEC_ZSTD;
		else if (list_has(aenc, aelen, "gzip"))
			r->enc = CAIRN_CODEC_GZIP;
	}
	return 0;
}

/* ---- a response in production ------------------------------------------- */

struct job {
	struct ipfs_gw *g;
	struct ipfs_gw_item *it;
	struct cairn_httpd_stream *s;
	enum ipfs_gw_format format;
	enum ipfs_gw_scope scope;
	size_t lo, hi;	   /* DFS entries of the DAG asked for */
	uint64_t blo, bhi; /* file bytes asked for: [blo, bhi) */
	bool ranged;
	size_t pos;	  /* next DFS entry to consider */
	size_t first_leaf, last_leaf; /* the chunks needed (SIZE_MAX: none) */
	size_t cur;	  /* chunk being read */
	uint64_t off;	  /* NAR bytes read */
	uint8_t *buf;	  /* the chunk being read */
	struct map *sent; /* CIDs sent: each block once */
	struct cairn_codec *codec;
	bool failed;
};

static int out_raw(void *ctx, const void *data, size_t len)
{
	struct job *j = ctx;
	return cairn_httpd_stream_write(j->s, data, len);
}

static int out(struct job *j, const void *data, size_t len, struct cairn_error *err)
{
	if (j->codec)
		return cairn_codec_write(j->codec, data, len, out_raw, j, err);
	return cairn_httpd_stream_write(j->s, data, len);
}

static bool overlaps(const struct job *j, uint64_t lo, uint64_t hi)
{
	if (lo == hi) /* the empty chunk of an empty file */
		return !j->ranged || (j->blo == 0 && j->bhi >= lo);
	return lo < j->bhi && hi > j->blo;
}

/* Is DFS entry pos part of the answer? */
static bool included(const struct job *j, size_t pos)
{
	if (pos < j->lo || pos > j->hi)
		return false;
	if (pos == j->lo)
		return true;
	if (j->scope == GW_SCOPE_BLOCK)
		return false;
	ipfs_gw_seq e = j->it->seq[pos];
	if (e < 0)
		return overlaps(j, j->it->nodes[-1 - e].byte_lo, j->it->nodes[-1 - e].byte_hi);
	return overlaps(j, j->it->leaf_off[e], j->it->leaf_off[e + 1]);
}

static int emit(struct job *j, ipfs_gw_seq e, const uint8_t *data, size_t len,
		struct cairn_error *err)
{
	struct cairn_cid cid;
	ipfs_gw_seq_cid(j->it, e, &cid);
	if (e >= 0 && cairn_cid_verify(&cid, data, len) != 0) {
		atomic_fetch_add_explicit(&j->g->st.cut_failures, 1, memory_order_relaxed);
		return cairn_error_set(err, CAIRN_EHASH,
				       "ipfs gateway: chunk %" PRId64 " of %s changed since it was "
				       "indexed",
				       e, j->it->key);
	}
	if (j->format != GW_RAW) {
		char s[CAIRN_CID_STR_MAX];
		if (cairn_cid_format(&cid, s) == 0) {
			if (map_get(j->sent, s))
				return 0;
			if (map_put(j->sent, s, j, NULL) < 0)
				return cairn_error_set(err, CAIRN_ENOMEM,
						       "ipfs gateway: out of memory");
		}
	}
	atomic_fetch_add_explicit(&j->g->st.blocks, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&j->g->st.block_bytes, len, memory_order_relaxed);
	if (j->format == GW_RAW)
		return out(j, data, len, err);
	uint8_t head[CAIRN_CAR_SECTION_HEAD_MAX];
	size_t hl = cairn_car_section_head(&cid, len, head);
	int rc = out(j, head, hl, err);
	return rc ? rc : out(j, data, len, err);
}

/* Send the entries up to `upto` (inclusive) that are nodes or chunk k. */
static int advance(struct job *j, size_t upto, ipfs_gw_seq k, struct cairn_error *err)
{
	for (; j->pos <= upto && j->pos < j->it->n_seq; j->pos++) {
		if (!included(j, j->pos))
			continue;
		ipfs_gw_seq e = j->it->seq[j->pos];
		int rc;
		if (e < 0)
			rc = emit(j, e, j->it->nodes[-1 - e].data, j->it->nodes[-1 - e].len, err);
		else if (e == k)
			rc = emit(j, e, j->buf,
				  (size_t)(j->it->leaf_off[k + 1] - j->it->leaf_off[k]), err);
		else
			continue;
		if (rc)
			return rc;
	}
	return 0;
}

/* Chunks of length 0 (an empty file's one) end where they start. */
static int chunks_done(struct job *j, struct cairn_error *err)
{
	const struct ipfs_gw_item *it = j->it;
	while (j->cur < it->n_leaves && it->leaf_off[j->cur + 1] == j->off) {
		int rc = advance(j, it->leaf_seq[j->cur], (ipfs_gw_seq)j->cur, err);
		if (rc)
			return rc;
		if (j->cur == j->last_leaf) {
			j->cur++;
			return GW_DONE;
		}
		j->cur++;
	}
	return 0;
}

static int on_nar(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct job *j = ctx;
	const struct ipfs_gw_item *it = j->it;
	const uint8_t *d = data;
	atomic_fetch_add_explicit(&j->g->st.nar_bytes, len, memory_order_relaxed);
	while (len) {
		if (j->cur >= it->n_leaves)
			return cairn_error_set(
			    err, CAIRN_EHASH,
			    "ipfs gateway: the NAR of %s grew since it was indexed", it->key);
		uint64_t end = it->leaf_off[j->cur + 1];
		size_t take = end - j->off < len ? (size_t)(end - j->off) : len;
		if (included(j, it->leaf_seq[j->cur]))
			memcpy(j->buf + (j->off - it->leaf_off[j->cur]), d, take);
		j->off += take;
		d += take;
		len -= take;
		int rc = chunks_done(j, err);
		if (rc)
			return rc;
	}
	return 0;
}

/* A file's bytes: only the chunks needed are read from it. */
static int on_file(void *ctx, int fd, uint64_t size, struct cairn_error *err)
{
	struct job *j = ctx;
	const struct ipfs_gw_item *it = j->it;
	uint64_t at = 0;
	while (at < size) {
		if (j->cur >= it->n_leaves)
			return cairn_error_set(
			    err, CAIRN_EHASH,
			    "ipfs gateway: the NAR of %s grew since it was indexed", it->key);
		uint64_t end = it->leaf_off[j->cur + 1];
		uint64_t take = end - j->off < size - at ? end - j->off : size - at;
		if (included(j, it->leaf_seq[j->cur])) {
			atomic_fetch_add_explicit(&j->g->st.nar_bytes, take, memory_order_relaxed);
			uint8_t *dst = j->buf + (j->off - it->leaf_off[j->cur]);
			for (uint64_t got = 0; got < take;) {
				ssize_t n =
				    pread(fd, dst + got, (size_t)(take - got), (off_t)(at + got));
				if (n <= 0)
					return cairn_error_set(err, CAIRN_EIO,
							       "ipfs gateway: a file of %s shrank",
							       it->key);
				got += (uint64_t)n;
			}
		}
		j->off += take;
		at += take;
		int rc = chunks_done(j, err);
		if (rc)
			return rc;
	}
	return 0;
}

/* The source starts at off (<= the first byte needed): the chunks before
 * the one holding off were not asked for, and are never read. */
static int on_skip(void *ctx, uint64_t off, struct cairn_error *err)
{
	struct job *j = ctx;
	const struct ipfs_gw_item *it = j->it;
	if (off < j->off || j->first_leaf == SIZE_MAX || off > it->leaf_off[j->first_leaf])
		return cairn_error_set(err, CAIRN_EINVAL,
				       "ipfs gateway: a source skipped to %" PRIu64 ", past what "
				       "was asked",
				       off);
	if (off == j->off)
		return 0;
	/* the chunk holding off: leaf_off[k] <= off < leaf_off[k + 1] */
	size_t lo = j->cur, hi = j->first_leaf;
	while (lo < hi) {
		size_t mid = lo + (hi - lo + 1) / 2;
		if (it->leaf_off[mid] <= off)
			lo = mid;
		else
			hi = mid - 1;
	}
	j->cur = lo;
	j->off = off;
	return 0;
}

static void job_free(struct job *j)
{
	ipfs_gw_unref(j->g, j->it);
	map_free(j->sent);
	cairn_codec_free(j->codec);
	free(j->buf);
	free(j);
}

static void *producer(void *arg)
{
	struct job *j = arg;
	struct ipfs_gw *g = j->g;
	struct cairn_error err;
	int rc = 0;

	cairn_error_init(&err);
	if (j->format == GW_CAR) {
		struct cairn_cid root;
		uint8_t h[CAIRN_CAR_HEADER_MAX];
		ipfs_gw_seq_cid(j->it, j->it->seq[j->lo], &root);
		rc = out(j, h, cairn_car_header(&root, h), &err);
	}
	if (rc == 0 && j->last_leaf != SIZE_MAX) {
		const struct ipfs_gw_sink sink = {
		    .bytes = on_nar,
		    .file = on_file,
		    .skip = on_skip,
		    .want_lo = j->it->leaf_off[j->first_leaf],
		    .want_hi = j->it->leaf_off[j->last_leaf + 1],
		    .ctx = j};
		rc = chunks_done(j, &err);
		if (rc == 0)
			rc = g->source(g->ctx, j->it->key, &sink, &err);
		if (rc == 0 && j->cur < j->it->n_leaves)
			rc = cairn_error_set(
			    &err, CAIRN_EHASH,
			    "ipfs gateway: the NAR of %s shrank since it was indexed", j->it->key);
		if (rc == GW_DONE && j->cur > j->last_leaf)
			rc = 0;
	}
	if (rc == 0)
		rc = advance(j, j->hi, -1, &err);
	if (rc == 0 && j->codec)
		rc = cairn_codec_finish(j->codec, out_raw, j, &err);
	/* a client gone is no news; bytes that changed under the index are */
	if (rc && rc != CAIRN_ECANCELED && err.code && g->log)
		g->log(g->log_ctx, cairn_error_msg(&err));
	cairn_httpd_stream_end(j->s, rc == 0);
	job_free(j);
	pthread_mutex_lock(&g->lock);
	if (--g->running == 0)
		pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

/* ---- the handler -------------------------------------------------------- */

/* An identity CID carries its block: answered without any item. */
static int send_identity(struct cairn_httpd_req *req, const struct ipfs_gw_req *r)
{
	cairn_httpd_add_header(req, "Cache-Control", CC_BLOCK);
	if (r->format == GW_RAW)
		return cairn_httpd_send(req, 200, CT_RAW, r->cid.digest, r->cid.len);
	uint8_t car[CAIRN_CAR_HEADER_MAX + CAIRN_CAR_SECTION_HEAD_MAX + CAIRN_CID_DIGEST_MAX];
	size_t n = cairn_car_header(&r->cid, car);
	n += cairn_car_section_head(&r->cid, r->cid.len, car + n);
	memcpy(car + n, r->cid.digest, r->cid.len);
	return cairn_httpd_send(req, 200, CT_CAR, car, n + r->cid.len);
}

bool ipfs_gw_range(const struct ipfs_gw_req *r, uint64_t flo, uint64_t fhi, uint64_t *blo,
		   uint64_t *bhi)
{
	int64_t size = (int64_t)(fhi - flo);
	int64_t from = r->from < 0 ? size + r->from : r->from;
	int64_t to = r->to == INT64_MAX ? size - 1 : r->to < 0 ? size + r->to : r->to;
	if (from < 0)
		from = 0;
	if (to >= size)
		to = size - 1;
	if (from > to)
		return false;
	*blo = flo + (uint64_t)from;
	*bhi = flo + (uint64_t)to + 1;
	return true;
}

int ipfs_gw_handle(struct cairn_httpd_req *req, void *data)
{
	struct ipfs_gw *g = data;
	size_t plen, qlen = 0, alen = 0, aelen = 0;
	const char *path = cairn_httpd_req_path(req, &plen);
	const char *q = cairn_httpd_req_query(req, &qlen);
	const char *accept = cairn_httpd_req_header(req, "accept", &alen);
	const char *aenc = cairn_httpd_req_header(req, "accept-encoding", &aelen);
	const char *msg = NULL;
	struct ipfs_gw_req r;

	if (plen < 6 || memcmp(path, "/ipfs/", 6) != 0)
		return send_text(req, 404, CC_MISSING, "404 not found\n");
	int st =
	    ipfs_gw_parse_req(path + 6, plen - 6, q, qlen, accept, alen, aenc, aelen, &r, &msg);
	if (st)
		return send_text(req, st, "no-store", msg);
	cairn_httpd_add_header(req, "X-Content-Type-Options", "nosniff");
	cairn_httpd_add_header(req, "Vary", "Accept, Accept-Encoding");
	char cs[CAIRN_CID_STR_MAX], v[CAIRN_CID_STR_MAX + 96];
	if (cairn_cid_format(&r.cid, cs) != 0)
		return send_text(req, 400, "no-store", "not a CIDv1\n");
	snprintf(v, sizeof(v), "/ipfs/%s", cs);
	cairn_httpd_add_header(req, "X-Ipfs-Path", v);
	cairn_httpd_add_header(req, "X-Ipfs-Roots", cs);
	struct ipfs_gw_hit hit = {0};
	bool identity = r.cid.mh == CAIRN_IPFS_MH_IDENTITY;
	if (!identity && ipfs_gw_lookup(g, &r.cid, &hit) != 0) {
		atomic_fetch_add_explicit(&g->st.not_found, 1, memory_order_relaxed);
		return send_text(req, 404, CC_MISSING, "404: no item here has this CID\n");
	}
	struct ipfs_gw_item *it = hit.item;
	const char *encname = r.enc == CAIRN_CODEC_ZSTD ? "zstd" : r.enc ? "gzip" : "";
	if (r.format == GW_RAW)
		snprintf(v, sizeof(v), "\"%s.raw\"", cs);
	else
		snprintf(v, sizeof(v), "\"%s.car.%d.%s%" PRId64 ":%" PRId64 ".%s\"", cs,
			 (int)r.scope, r.ranged ? "r" : "", r.ranged ? r.from : 0,
			 r.ranged ? r.to : 0, encname);
	cairn_httpd_add_header(req, "Etag", v);
	size_t inml = 0;
	const char *inm = cairn_httpd_req_header(req, "if-none-match", &inml);
	if (inm && inml == strlen(v) && memcmp(inm, v, inml) == 0) {
		cairn_httpd_add_header(req, "Cache-Control", CC_BLOCK);
		if (it)
			ipfs_gw_unref(g, it);
		return cairn_httpd_send(req, 304, NULL, NULL, 0);
	}
	if (r.format == GW_CAR) {
		snprintf(v, sizeof(v), "attachment; filename=\"%s.car\"", cs);
		cairn_httpd_add_header(req, "Content-Disposition", v);
	}
	if (identity) {
		atomic_fetch_add_explicit(&g->st.probe, 1, memory_order_relaxed);
		return send_identity(req, &r);
	}
	atomic_fetch_add_explicit(r.format == GW_RAW ? &g->st.raw : &g->st.car, 1,
				  memory_order_relaxed);
	cairn_httpd_add_header(req, "Cache-Control", CC_BLOCK);
	/* a node asked for alone: from memory, on the loop */
	if (r.format == GW_RAW && hit.what < 0) {
		const struct ipfs_gw_node *n = &it->nodes[-1 - hit.what];
		atomic_fetch_add_explicit(&g->st.blocks, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&g->st.block_bytes, n->len, memory_order_relaxed);
		int rc = cairn_httpd_send(req, 200, CT_RAW, n->data, n->len);
		ipfs_gw_unref(g, it);
		return rc;
	}
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		ipfs_gw_unref(g, it);
		return cairn_httpd_send_error(req, 503);
	}
	j->g = g;
	j->it = it;
	j->format = r.format;
	j->scope = r.format == GW_RAW ? GW_SCOPE_BLOCK : r.scope;
	size_t at = hit.what < 0 ? it->nodes[-1 - hit.what].seq_lo : it->leaf_seq[hit.what];
	uint64_t flo, fhi;
	if (hit.what < 0) {
		j->hi = it->nodes[-1 - hit.what].seq_hi;
		flo = it->nodes[-1 - hit.what].byte_lo;
		fhi = it->nodes[-1 - hit.what].byte_hi;
	} else {
		j->hi = at;
		flo = it->leaf_off[hit.what];
		fhi = it->leaf_off[hit.what + 1];
	}
	j->lo = j->pos = at;
	j->blo = flo;
	j->bhi = fhi;
	if (r.ranged && r.format == GW_CAR) {
		j->ranged = true;
		if (!ipfs_gw_range(&r, flo, fhi, &j->blo, &j->bhi))
			j->blo = j->bhi = flo; /* no bytes: the root alone */
	}
	/* the last chunk needed, so the NAR is read no further */
	j->first_leaf = j->last_leaf = SIZE_MAX;
	for (size_t k = 0; k < it->n_leaves; k++)
		if (included(j, it->leaf_seq[k])) {
			if (j->first_leaf == SIZE_MAX)
				j->first_leaf = k;
			j->last_leaf = k;
		}
	int64_t length = -1;
	if (r.format == GW_RAW)
		length = (int64_t)(fhi - flo);
	int rc = 0;
	j->sent = map_new(NULL);
	j->buf = malloc(it->spec.max ? it->spec.max : 1);
	if (!j->sent || !j->buf)
		rc = CAIRN_ENOMEM;
	if (rc == 0 && r.enc != CAIRN_CODEC_NONE) {
		struct cairn_error err;
		cairn_error_init(&err);
		rc = cairn_codec_new(&j->codec, r.enc, CAIRN_CODEC_COMPRESS, 3,
				     CAIRN_CODEC_UNLIMITED, &err);
		if (rc == 0)
			cairn_httpd_add_header(req, "Content-Encoding", encname);
	}
	if (rc) {
		job_free(j);
		return cairn_httpd_send_error(req, 503);
	}
	rc =
	    cairn_httpd_stream_start(req, 200, r.format == GW_RAW ? CT_RAW : CT_CAR, length, &j->s);
	if (rc < 0) {
		job_free(j);
		return rc;
	}
	if (cairn_httpd_req_is_head(req)) {
		cairn_httpd_stream_end(j->s, 1);
		job_free(j);
		return 0;
	}
	pthread_mutex_lock(&g->lock);
	g->running++;
	pthread_mutex_unlock(&g->lock);
	pthread_attr_t attr;
	pthread_t tid;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&tid, &attr, producer, j);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		cairn_httpd_stream_end(j->s, 0);
		job_free(j);
		pthread_mutex_lock(&g->lock);
		if (--g->running == 0)
			pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&g->lock);
	}
	return 0;
}

/* ---- /metrics ----------------------------------------------------------- */

static int collect_requests(void *ctx, struct metrics_out *o)
{
	const struct ipfs_gw_stats *st = ctx;
	const struct {
		const char *kind;
		const atomic_uint_fast64_t *v;
	} ks[] = {{"raw", &st->raw}, {"car", &st->car}, {"probe", &st->probe}};
	for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++) {
		const struct metric_label l = {"kind", ks[i].kind};
		int rc = metrics_emit(o, &l, 1, atomic_load_explicit(ks[i].v, memory_order_relaxed));
		if (rc)
			return rc;
	}
	return 0;
}

int ipfs_gw_metrics(struct ipfs_gw *g, struct metrics *reg, const char *role,
		    struct cairn_error *err)
{
	const struct {
		const char *what, *help;
		const atomic_uint_fast64_t *v;
	} cs[] = {
	    {"blocks", "IPFS blocks sent (raw, or in CARs)", &g->st.blocks},
	    {"block_bytes", "bytes of the IPFS blocks sent, before any Content-Encoding",
	     &g->st.block_bytes},
	    {"not_found", "/ipfs/ requests for a CID no item here has (404)", &g->st.not_found},
	    {"index_builds", "items whose chunk index was cut from their NAR", &g->st.index_builds},
	    {"cut_failures", "chunks that no longer hashed to their CID when cut (the NAR changed)",
	     &g->st.cut_failures},
	    {"nar_read_bytes", "NAR bytes read (serialised, decompressed or read) to cut the "
			       "chunks sent",
	     &g->st.nar_bytes},
	};
	char name[METRICS_NAME_MAX + 1];
	snprintf(name, sizeof(name), "cairn_%s_ipfs_requests_total", role);
	int rc = metrics_collector(reg, name, METRIC_COUNTER,
				   "/ipfs/ requests answered, by kind (raw block, CAR, identity probe)",
				   collect_requests, &g->st, err);
	for (size_t i = 0; rc == 0 && i < sizeof(cs) / sizeof(cs[0]); i++) {
		snprintf(name, sizeof(name), "cairn_%s_ipfs_%s_total", role, cs[i].what);
		rc = metrics_counter_at(reg, name, cs[i].help, cs[i].v, err);
	}
	return rc < 0 ? rc : 0;
}
