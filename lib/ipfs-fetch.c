/*
 * ipfs-fetch.c - a NAR's blocks from the block cache and IPFS trustless
 * gateways (see ipfs-fetch.h).  Synchronous, on a private HTTP client: a
 * fetch asks for few things (the nodes, then one CAR per run of missing
 * leaves), and its caller's check of the whole NAR comes after it anyway.
 * Callers that must not wait run it on a thread of their own
 * (ipfs-source.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn/buf.h"
#include "cairn/nar.h"
#include "cairn/narinfo.h"
#include "cairn/ipfs-fetch.h"
#include "cairn/banned.h"

/* Leaves of one file: 1 Mi of 256 KiB chunks is a 256 GiB NAR. */
#define IPFS_FETCH_LEAVES_MAX (1 << 20)
/* Leaf bytes asked for in one CAR (held in memory while it is read). */
#define IPFS_FETCH_CAR_MAX ((uint64_t)64 << 20)

bool cairn_ipfs_narinfo_cid(const struct cairn_narinfo *ni, struct cairn_cid *out)
{
	struct cairn_error e;
	cairn_error_init(&e);
	for (size_t i = 0; ni && i < ni->n_unknown; i++)
		if (!strcmp(ni->unknown[i].name, "IPFS"))
			return cairn_cid_parse(ni->unknown[i].value, strlen(ni->unknown[i].value),
					       out, &e) == 0 &&
			       out->mh == CAIRN_IPFS_MH_SHA2_256;
	return false;
}

/* ---- the block cache ------------------------------------------------------ */

static int cache_path(const struct cairn_ipfs_fetch_config *cfg, const struct cairn_cid *cid,
		      char *out, size_t cap)
{
	char s[CAIRN_CID_STR_MAX];
	if (cairn_cid_format(cid, s))
		return CAIRN_EUNSUPPORTED;
	if ((size_t)snprintf(out, cap, "%s/%s", cfg->cache_dir, s) >= cap)
		return CAIRN_ELIMIT;
	return 0;
}

/* The block from the cache, checked again (a disk can lie too); *data is
 * the caller's.  CAIRN_ENOENT when absent or no longer right. */
static int cache_get(const struct cairn_ipfs_fetch_config *cfg, const struct cairn_cid *cid,
		     uint8_t **data, size_t *len)
{
	char p[4096];
	if (cache_path(cfg, cid, p, sizeof(p)))
		return CAIRN_ENOENT;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return CAIRN_ENOENT;
	struct stat sb;
	uint8_t *b = NULL;
	int rc = CAIRN_ENOENT;
	if (fstat(fd, &sb) == 0 && sb.st_size >= 0 && (uint64_t)sb.st_size <= CAIRN_IPFS_BLOCK_MAX &&
	    (b = malloc((size_t)sb.st_size + 1))) {
		size_t got = 0;
		while (got < (size_t)sb.st_size) {
			ssize_t r = read(fd, b + got, (size_t)sb.st_size - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got == (size_t)sb.st_size && cairn_cid_verify(cid, b, got) == 0) {
			*data = b;
			*len = got;
			b = NULL;
			rc = 0;
		} else {
			unlink(p);
		}
	}
	free(b);
	close(fd);
	return rc;
}

static bool cache_has(const struct cairn_ipfs_fetch_config *cfg, const struct cairn_cid *cid)
{
	char p[4096];
	return cache_path(cfg, cid, p, sizeof(p)) == 0 && access(p, F_OK) == 0;
}

/* Keep a block already checked against cid: a temporary name, then rename. */
static int cache_put(const struct cairn_ipfs_fetch_config *cfg, const struct cairn_cid *cid,
		     const uint8_t *data, size_t len, struct cairn_error *err)
{
	char p[4096], tmp[4096];
	if (cache_path(cfg, cid, p, sizeof(p)) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.tmp-XXXXXX", cfg->cache_dir) >= sizeof(tmp))
		return cairn_error_set(err, CAIRN_ELIMIT, "block cache path too long");
	int fd = mkstemp(tmp);
	if (fd < 0)
		return cairn_error_errno(err, errno, "cannot write in the block cache '%s'",
					 cfg->cache_dir);
	size_t done = 0;
	while (done < len) {
		ssize_t w = write(fd, data + done, len - done);
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	int rc = 0;
	if (close(fd) != 0 || done != len || rename(tmp, p) != 0) {
		rc = cairn_error_errno(err, errno ? errno : EIO, "cannot keep a block in '%s'",
				       cfg->cache_dir);
		unlink(tmp);
	}
	return rc;
}

static int cache_open(const struct cairn_ipfs_fetch_config *cfg, struct cairn_error *err)
{
	if (!cfg->cache_dir)
		return cairn_error_set(err, CAIRN_EINVAL, "ipfs: no block cache");
	if (mkdir(cfg->cache_dir, 0755) != 0 && errno != EEXIST)
		return cairn_error_errno(err, errno, "cannot make the block cache '%s'",
					 cfg->cache_dir);
	return 0;
}

/* Bound the cache: drop blocks (in directory order) until it fits. */
static void cache_trim(const struct cairn_ipfs_fetch_config *cfg)
{
	uint64_t max = cfg->cache_max ? cfg->cache_max : CAIRN_IPFS_CACHE_MAX_DEFAULT;
	for (int pass = 0; pass < 2; pass++) {
		DIR *dir = opendir(cfg->cache_dir);
		if (!dir)
			return;
		uint64_t total = 0;
		struct dirent *de;
		char p[4096];
		while ((de = readdir(dir))) {
			struct stat sb;
			if (de->d_name[0] == '.' ||
			    (size_t)snprintf(p, sizeof(p), "%s/%s", cfg->cache_dir, de->d_name) >=
				sizeof(p) ||
			    stat(p, &sb) != 0)
				continue;
			total += (uint64_t)sb.st_size;
			if (pass == 1 && total > max && unlink(p) == 0)
				total -= (uint64_t)sb.st_size;
		}
		closedir(dir);
		if (total <= max)
			return;
	}
}

/* ---- one request ---------------------------------------------------------- */

struct get {
	struct cairn_buf body;
	struct cairn_error err;
};

struct fx {
	const struct cairn_ipfs_fetch_config *cfg;
	struct cairn_http *http;
	struct cairn_ipfs_fetch_stats *st;
	bool dead[CAIRN_IPFS_MAX_GATEWAYS];
	size_t used; /* the gateway that sent the last block */
	bool any_used;
	struct cairn_buf reasons;
	/* the DAG */
	struct leaf {
		struct cairn_cid cid;
		uint64_t off, len;
		bool inline_data; /* the bytes are a dag-pb node's Data */
		bool have;
	} *leaves;
	size_t n_leaves, cap_leaves;
	struct cairn_cid *nodes;
	size_t n_nodes, cap_nodes;
	uint64_t size, max_size;
	/* a CAR being read */
	size_t run_first, run_end;
	uint64_t extra;
	struct cairn_error *err;
};

static bool fx_stop(void *ctx)
{
	const struct fx *x = ctx;
	return x->cfg->stop && x->cfg->stop(x->cfg->stop_ctx);
}

/*
 * GET url into g (at most max bytes of body); 0 or g->err's code.  Called
 * off: CAIRN_ECANCELED, set in x->err too (the item's end, not the
 * gateway's fault), and x->http is not to be stepped again.
 */
static int http_get(struct fx *x, const char *url, uint64_t max, bool compressed,
		    struct get *g)
{
	cairn_buf_init(&g->body, (size_t)max);
	cairn_error_init(&g->err);
	struct cairn_http_request rq = {.url = url, .max_body = max,
					.accept_compressed = compressed};
	struct cairn_http_one one = {0};
	x->st->requests++;
	int rc = cairn_http_wait_one(x->http, &rq, &g->body, fx_stop, x, &one, &g->err);
	x->st->bytes += one.wire_bytes;
	if (rc == CAIRN_ECANCELED)
		cairn_error_set(x->err, rc, "ipfs: called off");
	return rc;
}

static void gateway_drop(struct fx *x, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void gateway_drop(struct fx *x, size_t i, const char *fmt, ...)
{
	va_list ap;
	x->dead[i] = true;
	x->st->gateways_failed++;
	if (x->reasons.len)
		cairn_buf_puts(&x->reasons, "; ");
	cairn_buf_printf(&x->reasons, "%s: ", x->cfg->gateways[i]);
	va_start(ap, fmt);
	cairn_buf_vprintf(&x->reasons, fmt, ap);
	va_end(ap);
}

static int gw_url(const struct fx *x, size_t i, const struct cairn_cid *cid, const char *query,
		  char *out, size_t cap)
{
	char s[CAIRN_CID_STR_MAX];
	const char *base = x->cfg->gateways[i];
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	if (cairn_cid_format(cid, s))
		return CAIRN_EUNSUPPORTED;
	if ((size_t)snprintf(out, cap, "%.*s/ipfs/%s?%s", (int)bl, base, s, query) >= cap)
		return CAIRN_ELIMIT;
	return 0;
}

/* One block: the cache, else each live gateway's raw block, checked and
 * kept.  *data is the caller's. */
static int get_block(struct fx *x, const struct cairn_cid *cid, uint8_t **data, size_t *len)
{
	if (cid->mh == CAIRN_IPFS_MH_IDENTITY) {
		if (!(*data = malloc(cid->len + 1u)))
			return cairn_error_set(x->err, CAIRN_ENOMEM, "out of memory");
		memcpy(*data, cid->digest, cid->len);
		*len = cid->len;
		return 0;
	}
	if (cache_get(x->cfg, cid, data, len) == 0)
		return 0;
	char url[4096], s[CAIRN_CID_STR_MAX] = "?";
	cairn_cid_format(cid, s);
	for (size_t i = 0; i < x->cfg->n_gateways; i++) {
		if (x->dead[i] || gw_url(x, i, cid, "format=raw", url, sizeof(url)))
			continue;
		struct get g;
		int rc = http_get(x, url, CAIRN_IPFS_BLOCK_MAX, false, &g);
		if (rc == CAIRN_ECANCELED) {
			cairn_buf_release(&g.body);
			return rc;
		}
		if (rc)
			gateway_drop(x, i, "%s", cairn_error_msg(&g.err));
		else if (cairn_cid_verify(cid, g.body.data, g.body.len))
			gateway_drop(x, i, "block %s: the bytes sent are not that block", s);
		else if ((rc = cache_put(x->cfg, cid, (const uint8_t *)g.body.data, g.body.len,
					 x->err))) {
			cairn_buf_release(&g.body);
			return rc;
		} else {
			x->st->blocks_fetched++;
			x->used = i;
			x->any_used = true;
			*len = g.body.len;
			*data = (uint8_t *)cairn_buf_steal(&g.body, len);
			if (!*data)
				return cairn_error_set(x->err, CAIRN_ENOMEM, "out of memory");
			return 0;
		}
		cairn_buf_release(&g.body);
	}
	return cairn_error_set(x->err, CAIRN_ENOENT, "block %s: no gateway sent it", s);
}

static int push_leaf(struct fx *x, const struct cairn_cid *cid, uint64_t len, bool inl)
{
	if (x->n_leaves >= IPFS_FETCH_LEAVES_MAX)
		return cairn_error_set(x->err, CAIRN_ELIMIT, "the DAG has more than %d leaves",
				       IPFS_FETCH_LEAVES_MAX);
	if (len > x->max_size - x->size)
		return cairn_error_set(x->err, CAIRN_ELIMIT,
				       "the DAG holds more than the %llu bytes expected",
				       (unsigned long long)x->max_size);
	if (x->n_leaves == x->cap_leaves) {
		size_t nc = x->cap_leaves ? x->cap_leaves * 2 : 64;
		struct leaf *nl = realloc(x->leaves, nc * sizeof(*nl));
		if (!nl)
			return cairn_error_set(x->err, CAIRN_ENOMEM, "out of memory");
		x->leaves = nl;
		x->cap_leaves = nc;
	}
	struct leaf *l = &x->leaves[x->n_leaves++];
	l->cid = *cid;
	l->off = x->size;
	l->len = len;
	l->inline_data = inl;
	l->have = inl || cid->mh == CAIRN_IPFS_MH_IDENTITY || cache_has(x->cfg, cid);
	if (l->have && !inl)
		x->st->blocks_cached++;
	x->size += len;
	return 0;
}

/*
 * Read the DAG under cid (a file of `size` bytes, or unknown at the root):
 * the nodes now, the leaves as a list.  Strict: a node is a UnixFS File
 * (or Raw) whose blocksizes match its links and add up to its filesize.
 */
static int walk(struct fx *x, const struct cairn_cid *cid, bool has_size, uint64_t size,
		unsigned depth)
{
	char s[CAIRN_CID_STR_MAX] = "?";
	cairn_cid_format(cid, s);
	if (depth > CAIRN_IPFS_FETCH_DEPTH_MAX)
		return cairn_error_set(x->err, CAIRN_ELIMIT, "the DAG is deeper than %d",
				       CAIRN_IPFS_FETCH_DEPTH_MAX);
	if (cid->codec == CAIRN_IPFS_RAW) {
		if (has_size)
			return push_leaf(x, cid, size, false);
		/* a file of one block: the root itself */
		bool cached = cache_has(x->cfg, cid);
		uint8_t *b;
		size_t len;
		int rc = get_block(x, cid, &b, &len);
		free(b);
		if (!rc && !(rc = push_leaf(x, cid, len, false)) && !cached)
			x->st->blocks_cached--; /* fetched just now, not found */
		return rc;
	}
	if (cid->codec != CAIRN_IPFS_DAG_PB)
		return cairn_error_set(x->err, CAIRN_EUNSUPPORTED, "%s: not a UnixFS file", s);
	if (x->n_nodes == x->cap_nodes) {
		size_t nc = x->cap_nodes ? x->cap_nodes * 2 : 16;
		struct cairn_cid *nn = realloc(x->nodes, nc * sizeof(*nn));
		if (!nn)
			return cairn_error_set(x->err, CAIRN_ENOMEM, "out of memory");
		x->nodes = nn;
		x->cap_nodes = nc;
	}
	x->nodes[x->n_nodes++] = *cid;
	uint8_t *b;
	size_t len;
	int rc = get_block(x, cid, &b, &len);
	if (rc)
		return rc;
	struct cairn_pbnode pb = {0};
	struct cairn_unixfs u = {0};
	struct cairn_error e;
	cairn_error_init(&e);
	rc = cairn_pbnode_decode(b, len, &pb, &e);
	if (!rc && !pb.data)
		rc = cairn_error_set(&e, CAIRN_EFORMAT, "no UnixFS data");
	if (!rc)
		rc = cairn_unixfs_decode(pb.data, pb.data_len, &u, &e);
	uint64_t sum = u.data_len;
	if (!rc && u.type != CAIRN_UNIXFS_FILE && u.type != CAIRN_UNIXFS_RAW)
		rc = cairn_error_set(&e, CAIRN_EFORMAT, "UnixFS type %u, not a file", u.type);
	if (!rc && u.n_blocksizes != pb.n_links)
		rc = cairn_error_set(&e, CAIRN_EFORMAT, "%zu links but %zu blocksizes",
				     pb.n_links, u.n_blocksizes);
	for (size_t i = 0; !rc && i < u.n_blocksizes; i++) {
		/* no importer links to no bytes; allowing it would let a DAG
		 * of any size stand for a file of none */
		if (!u.blocksizes[i])
			rc = cairn_error_set(&e, CAIRN_EFORMAT, "a link to no bytes");
		else if (u.blocksizes[i] > x->max_size - (sum < x->max_size ? sum : x->max_size))
			rc = cairn_error_set(&e, CAIRN_ELIMIT, "blocksizes exceed the NAR's size");
		sum += u.blocksizes[i];
	}
	if (!rc && ((u.has_filesize && u.filesize != sum) || (has_size && sum != size)))
		rc = cairn_error_set(&e, CAIRN_EFORMAT, "sizes do not add up");
	if (rc) {
		rc = cairn_error_set(x->err, rc, "node %s: %s", s, cairn_error_msg(&e));
	} else {
		if (u.data_len)
			rc = push_leaf(x, cid, u.data_len, true);
		for (size_t i = 0; !rc && i < pb.n_links; i++)
			rc = walk(x, &pb.links[i].cid, true, u.blocksizes[i], depth + 1);
	}
	cairn_unixfs_release(&u);
	cairn_pbnode_release(&pb);
	free(b);
	return rc;
}

/* A block of the CAR being read: it belongs to the DAG, or it is extra. */
static int car_block(const struct cairn_cid *cid, const uint8_t *data, size_t len, void *user)
{
	struct fx *x = user;
	for (size_t i = x->run_first; i < x->run_end; i++)
		if (cairn_cid_equal(&x->leaves[i].cid, cid)) {
			if (len != x->leaves[i].len)
				return cairn_error_set(x->err, CAIRN_EFORMAT,
						       "a leaf of %zu bytes where %llu belong",
						       len, (unsigned long long)x->leaves[i].len);
			if (!x->leaves[i].have) {
				int rc = cache_put(x->cfg, cid, data, len, x->err);
				if (rc)
					return rc;
				x->leaves[i].have = true;
				x->st->blocks_fetched++;
			}
			return 0;
		}
	for (size_t i = 0; i < x->n_nodes; i++)
		if (cairn_cid_equal(&x->nodes[i], cid))
			return 0; /* the path down to the range: expected */
	for (size_t i = 0; i < x->n_leaves; i++)
		if (cairn_cid_equal(&x->leaves[i].cid, cid))
			return 0;
	x->extra++;
	return 0;
}

/*
 * Leaves [first, end) from gateway i in one CAR: an entity-bytes range of
 * the file, or one leaf alone (dag-scope=block: no nodes above it).  A CAR
 * rather than raw blocks, so that a gateway may compress it on the wire
 * (a raw block is sent as it is hashed).
 */
static int get_run(struct fx *x, size_t i, size_t first, size_t end)
{
	char url[4096], q[128];
	const struct leaf *a = &x->leaves[first], *z = &x->leaves[end - 1];
	const struct cairn_cid *at = &x->nodes[0];
	if (end - first == 1) {
		snprintf(q, sizeof(q), "format=car&dag-scope=block");
		at = &a->cid;
	} else {
		snprintf(q, sizeof(q), "format=car&dag-scope=entity&entity-bytes=%llu:%llu",
			 (unsigned long long)a->off, (unsigned long long)(z->off + z->len - 1));
	}
	if (gw_url(x, i, at, q, url, sizeof(url)))
		return CAIRN_ELIMIT;
	/* the range's bytes, the nodes above them, and a head per block */
	uint64_t max = z->off + z->len - a->off + (uint64_t)(end - first + x->n_nodes) * 64 +
		       (uint64_t)x->n_nodes * CAIRN_IPFS_BLOCK_MAX / 64 + 65536;
	struct get g;
	int rc = http_get(x, url, max, true, &g);
	if (rc == CAIRN_ECANCELED) {
		cairn_buf_release(&g.body);
		return rc;
	}
	if (rc) {
		/* No CARs here (a gateway of raw blocks only, or no entity-bytes):
		 * not a lie; its raw blocks are asked for instead. */
		cairn_buf_release(&g.body);
		return CAIRN_EUNSUPPORTED;
	}
	struct cairn_cid roots[CAIRN_CAR_ROOTS_MAX];
	size_t n_roots = 0;
	struct cairn_error e;
	cairn_error_init(&e);
	x->run_first = first;
	x->run_end = end;
	x->extra = 0;
	rc = cairn_car_read((const uint8_t *)g.body.data, g.body.len, roots, &n_roots, car_block, x,
			    &e);
	cairn_buf_release(&g.body);
	/* car_block's own failures (the cache, a DAG at odds with itself)
	 * are the item's, not the gateway's */
	if (x->err->code)
		return x->err->code;
	size_t missing = 0;
	for (size_t k = first; k < end; k++)
		missing += !x->leaves[k].have;
	if (rc)
		gateway_drop(x, i, "CAR: %s", cairn_error_msg(&e));
	else if (x->extra)
		gateway_drop(x, i, "CAR carries %llu blocks outside the DAG",
			     (unsigned long long)x->extra);
	else if (missing)
		gateway_drop(x, i, "CAR lacks %zu of the %zu blocks asked for", missing,
			     end - first);
	else {
		x->used = i;
		x->any_used = true;
		return 0;
	}
	return CAIRN_ENET;
}

/* Every missing leaf from the gateways: as CARs (a run, or one leaf alone),
 * raw blocks from a gateway that sends no CARs. */
static int fill(struct fx *x)
{
	size_t k = 0;
	while (k < x->n_leaves) {
		if (x->leaves[k].have) {
			k++;
			continue;
		}
		/* a CAR is held in memory while it is checked: runs are cut */
		size_t end = k;
		uint64_t run = 0;
		while (end < x->n_leaves && !x->leaves[end].have && !x->leaves[end].inline_data &&
		       (end == k || run + x->leaves[end].len <= IPFS_FETCH_CAR_MAX)) {
			run += x->leaves[end].len;
			end++;
		}
		size_t i = 0;
		bool raw = false;
		for (; i < x->cfg->n_gateways; i++) {
			if (x->dead[i])
				continue;
			int rc = get_run(x, i, k, end);
			if (!rc || x->err->code)
				break;
			raw |= rc == CAIRN_EUNSUPPORTED;
		}
		if (x->err->code)
			return x->err->code;
		if (i < x->cfg->n_gateways) {
			k = end;
			continue;
		}
		if (!raw)
			return cairn_error_set(x->err, CAIRN_ENOENT,
					       "no gateway sent the blocks of bytes %llu-%llu",
					       (unsigned long long)x->leaves[k].off,
					       (unsigned long long)(x->leaves[end - 1].off +
								    x->leaves[end - 1].len));
		/* a gateway without CARs: the run block by block */
		for (; k < end; k++) {
			uint8_t *b;
			size_t len;
			int rc = get_block(x, &x->leaves[k].cid, &b, &len);
			if (rc)
				return rc;
			free(b);
			x->leaves[k].have = true;
		}
	}
	return 0;
}

/* The file's bytes, in order, out of the cache. */
static int stream(struct fx *x, cairn_ipfs_write_fn write, void *wctx)
{
	for (size_t k = 0; k < x->n_leaves; k++) {
		const struct leaf *l = &x->leaves[k];
		uint8_t *b;
		size_t len;
		/* the cache first; a block another fetch's trim took meanwhile
		 * (the cache is bounded, the jobs share it) is asked again */
		int rc = get_block(x, &l->cid, &b, &len);
		if (rc)
			return rc;
		const uint8_t *p = b;
		size_t n = len;
		struct cairn_pbnode pb = {0};
		struct cairn_unixfs u = {0};
		if (l->inline_data) {
			struct cairn_error e;
			cairn_error_init(&e);
			/* decoded once already by walk(): cannot fail now */
			if (cairn_pbnode_decode(b, len, &pb, &e) ||
			    cairn_unixfs_decode(pb.data, pb.data_len, &u, &e))
				rc = cairn_error_set(x->err, CAIRN_EFORMAT, "%s",
						     cairn_error_msg(&e));
			p = u.data;
			n = u.data_len;
		}
		if (!rc && n != l->len)
			rc = cairn_error_set(x->err, CAIRN_EFORMAT,
					     "a leaf of %zu bytes where %llu belong", n,
					     (unsigned long long)l->len);
		if (!rc && n && (rc = write(wctx, p, n)) != 0 && !x->err->code)
			cairn_error_set(x->err, rc, "the NAR was refused");
		cairn_unixfs_release(&u);
		cairn_pbnode_release(&pb);
		free(b);
		if (rc)
			return rc;
	}
	return 0;
}

/* The chunker the DAG was cut with, as far as its leaves tell. */
static void dag_chunker(const struct fx *x, struct cairn_chunker_spec *spec)
{
	uint64_t n = 0;
	bool fixed = true;
	for (size_t k = 0; k < x->n_leaves && fixed; k++) {
		const struct leaf *l = &x->leaves[k];
		if (l->inline_data)
			fixed = false;
		else if (!n)
			n = l->len;
		else if (k + 1 < x->n_leaves ? l->len != n : l->len > n)
			fixed = false;
	}
	if (fixed && n && n <= CAIRN_CHUNK_MAX)
		*spec = (struct cairn_chunker_spec){
		    .kind = CAIRN_CHUNKER_FIXED, .min = (uint32_t)n, .avg = (uint32_t)n,
		    .max = (uint32_t)n};
	else
		cairn_chunker_spec_default(spec);
}

/* Seed with the item's chunker, then look again for the leaves. */
static void seed_item(struct fx *x)
{
	struct cairn_chunker_spec spec = x->cfg->chunker;
	if (x->cfg->chunker_auto)
		dag_chunker(x, &spec);
	x->cfg->seed(x->cfg->seed_ctx, &spec);
	for (size_t k = 0; k < x->n_leaves; k++) {
		struct leaf *l = &x->leaves[k];
		if (!l->have && cache_has(x->cfg, &l->cid)) {
			l->have = true;
			x->st->blocks_cached++;
		}
	}
}

int cairn_ipfs_fetch_file(const struct cairn_ipfs_fetch_config *cfg,
			  const struct cairn_cid *root, uint64_t max_size,
			  cairn_ipfs_write_fn write, void *wctx, const char **gateway,
			  struct cairn_ipfs_fetch_stats *st, struct cairn_error *err)
{
	struct cairn_ipfs_fetch_stats dummy = {0};
	struct fx x = {.cfg = cfg, .st = st ? st : &dummy, .max_size = max_size, .err = err};
	int rc = cache_open(cfg, err);
	if (rc)
		return rc;
	if (!cfg->n_gateways || cfg->n_gateways > CAIRN_IPFS_MAX_GATEWAYS)
		return cairn_error_set(err, CAIRN_EINVAL, "ipfs: 1 to %d gateways",
				       CAIRN_IPFS_MAX_GATEWAYS);
	if ((rc = cairn_http_new(&x.http, &cfg->http, err)))
		return rc;
	cairn_buf_init(&x.reasons, 1024);
	rc = walk(&x, root, false, 0, 0);
	if (!rc && cfg->seed && x.n_leaves > 1)
		seed_item(&x);
	if (!rc)
		rc = fill(&x);
	if (!rc)
		rc = stream(&x, write, wctx);
	if (rc && x.reasons.len) {
		char what[CAIRN_ERROR_MSG_MAX];
		snprintf(what, sizeof(what), "%s", cairn_error_msg(err));
		cairn_error_init(err); /* the first error sticks otherwise */
		cairn_error_set(err, rc, "%s (%.*s)", what, (int)x.reasons.len, x.reasons.data);
	}
	if (gateway)
		*gateway = x.any_used ? cfg->gateways[x.used] : "cache";
	cairn_buf_release(&x.reasons);
	cairn_http_free(x.http);
	free(x.leaves);
	free(x.nodes);
	cache_trim(cfg);
	return rc;
}

/* ---- seeding -------------------------------------------------------------- */

struct seed {
	const struct cairn_ipfs_fetch_config *cfg;
	struct cairn_ipfs_add *add;
	struct cairn_error *err;
	uint64_t n;
	/* hash rewriting: bytes held back until no hash can straddle them */
	const char (*from)[CAIRN_IPFS_HASH_LEN];
	const char (*to)[CAIRN_IPFS_HASH_LEN];
	size_t n_rw;
	uint8_t *hold;
	size_t held;
};

#define SEED_PIECE ((size_t)1 << 16)

static int seed_block(const struct cairn_cid *cid, const uint8_t *data, size_t len, void *user)
{
	struct seed *s = user;
	if (cid->codec != CAIRN_IPFS_RAW || cache_has(s->cfg, cid))
		return 0;
	s->n++;
	return cache_put(s->cfg, cid, data, len, s->err);
}

/* Rewrite the held bytes, pass on all but the last HASH_LEN - 1 (or all at
 * the end). */
static int seed_flush(struct seed *s, bool end, struct cairn_error *err)
{
	for (size_t k = 0; k < s->n_rw; k++) {
		uint8_t *p = s->hold, *e = s->hold + s->held;
		while ((p = memmem(p, (size_t)(e - p), s->from[k], CAIRN_IPFS_HASH_LEN))) {
			memcpy(p, s->to[k], CAIRN_IPFS_HASH_LEN);
			p += CAIRN_IPFS_HASH_LEN;
		}
	}
	size_t keep = end ? 0 : s->held < CAIRN_IPFS_HASH_LEN - 1 ? s->held
							  : CAIRN_IPFS_HASH_LEN - 1;
	int rc = cairn_ipfs_add_write(s->add, s->hold, s->held - keep, err);
	memmove(s->hold, s->hold + s->held - keep, keep);
	s->held = keep;
	return rc;
}

static int seed_bytes(struct seed *s, const uint8_t *data, size_t len, struct cairn_error *err)
{
	if (!s->n_rw)
		return cairn_ipfs_add_write(s->add, data, len, err);
	while (len) {
		size_t room = SEED_PIECE + CAIRN_IPFS_HASH_LEN - s->held;
		size_t n = len < room ? len : room;
		memcpy(s->hold + s->held, data, n);
		s->held += n;
		data += n;
		len -= n;
		if (s->held == SEED_PIECE + CAIRN_IPFS_HASH_LEN) {
			int rc = seed_flush(s, false, err);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static int seed_write(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	return seed_bytes(ctx, data, len, err);
}

int cairn_ipfs_seed_rewritten(const struct cairn_ipfs_fetch_config *cfg, const char *path,
			      const char (*from)[CAIRN_IPFS_HASH_LEN],
			      const char (*to)[CAIRN_IPFS_HASH_LEN], size_t n_rewrites,
			      uint64_t *n, struct cairn_error *err)
{
	int rc = cache_open(cfg, err);
	if (rc)
		return rc;
	if (n_rewrites > CAIRN_IPFS_REWRITE_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "more than %d rewrites",
				       CAIRN_IPFS_REWRITE_MAX);
	struct seed s = {.cfg = cfg, .err = err, .from = from, .to = to, .n_rw = n_rewrites};
	if (n_rewrites && !(s.hold = malloc(SEED_PIECE + CAIRN_IPFS_HASH_LEN)))
		return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
	if ((rc = cairn_ipfs_add_new(&cfg->chunker, seed_block, &s, &s.add, err))) {
		free(s.hold);
		return rc;
	}
	size_t pl = strlen(path);
	if (pl > 4 && !strcmp(path + pl - 4, ".nar")) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			rc = cairn_error_errno(err, errno, "cannot read '%s'", path);
		uint8_t *buf = malloc(SEED_PIECE);
		if (!rc && !buf)
			rc = cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
		ssize_t r;
		while (!rc && (r = read(fd, buf, SEED_PIECE)) > 0)
			rc = seed_bytes(&s, buf, (size_t)r, err);
		free(buf);
		if (fd >= 0)
			close(fd);
	} else {
		rc = cairn_nar_dump_path(path, seed_write, &s, err);
	}
	if (!rc && s.n_rw)
		rc = seed_flush(&s, true, err);
	struct cairn_cid root;
	uint64_t size;
	if (!rc)
		rc = cairn_ipfs_add_finish(s.add, &root, &size, err);
	cairn_ipfs_add_free(s.add);
	free(s.hold);
	if (n)
		*n = s.n;
	return rc;
}

int cairn_ipfs_seed(const struct cairn_ipfs_fetch_config *cfg, const char *path, uint64_t *n,
		    struct cairn_error *err)
{
	return cairn_ipfs_seed_rewritten(cfg, path, NULL, NULL, 0, n, err);
}
