/*
 * edge-pages.c - what the mirror says about itself: nix-cache-info (an
 * upstream's, with our Priority), /health, the / page and the line it
 * logs when it starts listening.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn/buf.h"
#include "cairn/codec.h"
#include "cairn/edge.h"
#include "cairn/hash.h"
#include "cairn/http.h"
#include "cairn/httpd.h"
#include "cairn/keys.h"
#include "cairn/sign.h"
#include "cairn/escape.h"
#include "edge-int.h"
#include "cairn/banned.h"

/*
 * The nix-cache-info served for an upstream's text: as it is, with its
 * Priority line (as Nix reads it: the name before the first ':') replaced
 * by cfg.priority when that is set, and CairnNarinfos said by the mirror
 * itself (it serves the batch route whatever its upstreams do).  A
 * malloc'ed copy in *out; CAIRN_ENOMEM when out of memory.
 */
static int info_render(const struct cairn_edge *e, const char *text, size_t len, char **out,
		       size_t *olen)
{
	size_t cap = len + 128;
	char *o = malloc(cap);
	if (!o)
		return CAIRN_ENOMEM;
	memcpy(o, text, len);
	size_t n = cairn_http_cache_info_drop(o, len, "CairnNarinfos");
	if (e->cfg.priority >= 0)
		n = cairn_http_cache_info_drop(o, n, "Priority");
	if (n && o[n - 1] != '\n')
		o[n++] = '\n';
	if (e->cfg.priority >= 0)
		n += (size_t)snprintf(o + n, cap - n, "Priority: %d\n", e->cfg.priority);
	n += (size_t)snprintf(o + n, cap - n, "CairnNarinfos: 1\n");
	*out = o;
	*olen = n;
	return 0;
}

/* Under e->mu: the upstream whose nix-cache-info is served: the first that
 * is up, else the first we have one of (from this run or an earlier one). */
static const struct upstream *info_upstream_locked(const struct cairn_edge *e)
{
	for (size_t i = 0; i < e->n_ups; i++)
		if (e->ups[i].info && e->ups[i].up_pub)
			return &e->ups[i];
	for (size_t i = 0; i < e->n_ups; i++)
		if (e->ups[i].info)
			return &e->ups[i];
	return NULL;
}

/*
 * Under e->mu: the cache info of the first upstream that is up (else the
 * last good one of any: kept in the index, it outlives a restart): 1 and a
 * copy in *out, 0 when every upstream failed and none ever answered, -2
 * while the first probes are still out.
 */
static int cache_info_locked(struct cairn_edge *e, char **out, size_t *len)
{
	const struct upstream *pick = info_upstream_locked(e);
	if (pick)
		return info_render(e, pick->info, pick->info_len, out, len) == 0;
	size_t failed = 0;
	for (size_t i = 0; i < e->n_ups; i++)
		failed += !e->ups[i].up_pub;
	return failed == e->n_ups ? 0 : -2;
}

/* Miss thread: wait for the first probes to answer. */
void edge_miss_info(struct miss *m)
{
	struct cairn_edge *e = m->e;
	struct timespec dl;
	char *info = NULL;
	size_t len = 0;
	int rc;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += e->cfg.wait_ms / 1000 + 1;
	pthread_mutex_lock(&e->mu);
	while ((rc = cache_info_locked(e, &info, &len)) == -2 && !e->stop)
		if (pthread_cond_timedwait(&e->info_cond, &e->mu, &dl) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&e->mu);
	if (rc == 1)
		cairn_httpd_stream_reply(m->s, 200, "text/x-nix-cache-info", info, len, NULL);
	else
		cairn_httpd_stream_error(m->s, 502, NULL);
	free(info);
}

int edge_h_cache_info(struct cairn_httpd_req *req, void *data)
{
	struct cairn_edge *e = data;
	char *info = NULL;
	size_t len = 0;
	pthread_mutex_lock(&e->mu);
	int rc = cache_info_locked(e, &info, &len);
	pthread_mutex_unlock(&e->mu);
	if (rc == LOOKUP_WOULD_WAIT) {
		struct miss *m = calloc(1, sizeof(*m));
		if (!m)
			return cairn_httpd_send_error(req, 503);
		m->kind = MISS_INFO;
		return edge_defer_miss(e, req, m);
	}
	if (rc == 0)
		return cairn_httpd_send_error(req, 502);
	rc = cairn_httpd_send(req, 200, "text/x-nix-cache-info", info, len);
	free(info);
	return rc;
}

/* --- /health and / ----------------------------------------------------------- */

struct edge_state {
	int any_up, have_info, guix;
	struct edge_store_stats st;
	struct cairn_buf ups; /* one line per upstream: "URL up|down: why|unchecked" */
};

/* What /health and / tell, gathered under e->mu. */
static void state_get(struct cairn_edge *e, struct edge_state *s)
{
	memset(s, 0, sizeof(*s));
	cairn_buf_init(&s->ups, EDGE_PAGE_MAX / 2);
	edge_store_stats(e->store, &s->st);
	pthread_mutex_lock(&e->mu);
	const struct upstream *iu = info_upstream_locked(e);
	s->have_info = iu != NULL;
	s->guix = iu && memmem(iu->info, iu->info_len, "StoreDir: /gnu/store", 20) != NULL;
	for (size_t i = 0; i < e->n_ups; i++) {
		const struct upstream *u = &e->ups[i];
		char name[512];
		edge_upstream_name(u, name, sizeof(name));
		s->any_up |= u->checked_pub && u->up_pub;
		if (!u->checked_pub)
			cairn_buf_printf(&s->ups, "%s unchecked\n", name);
		else if (u->up_pub)
			cairn_buf_printf(&s->ups, "%s up\n", name);
		else
			cairn_buf_printf(&s->ups, "%s down: %s\n", name, u->why_pub);
	}
	pthread_mutex_unlock(&e->mu);
}

/* Can clients be served without an upstream? */
static int state_can_serve(const struct edge_state *s)
{
	return s->have_info && s->st.n_nars > 0;
}

/*
 * 200 when an upstream is up or the cache can serve on its own (it holds a
 * nix-cache-info and at least one nar), else 503; the body says why, in the
 * format documented in docs/cairn-mirror.md.
 */
int edge_h_health(struct cairn_httpd_req *req, void *data)
{
	struct cairn_edge *e = data;
	struct edge_state s;
	struct cairn_buf b = CAIRN_BUF_INIT(EDGE_PAGE_MAX);
	state_get(e, &s);
	int ok = s.any_up || state_can_serve(&s);
	cairn_buf_puts(&b, ok ? "ok\n" : "unavailable\n");
	for (const char *l = s.ups.data, *nl; l && (nl = strchr(l, '\n')); l = nl + 1)
		cairn_buf_printf(&b, "upstream %.*s\n", (int)(nl + 1 - l - 1), l);
	cairn_buf_printf(&b, "cache %llu nars %llu bytes, nix-cache-info %s\n",
			 (unsigned long long)s.st.n_nars, (unsigned long long)s.st.bytes,
			 s.have_info ? "held" : "none");
	cairn_buf_release(&s.ups);
	cairn_httpd_add_header(req, "Cache-Control", "no-store");
	int rc = cairn_httpd_send(req, ok ? 200 : 503, "text/plain; charset=utf-8",
				  b.data ? b.data : "", b.len);
	cairn_buf_release(&b);
	return rc;
}

/* The mirror's URL as the client named it (Host), when it is a plain
 * host[:port]; else localhost and the port it listens on. */
static void page_base(struct cairn_edge *e, struct cairn_httpd_req *req, char *out, size_t cap)
{
	size_t al = 0;
	const char *a = cairn_httpd_req_authority(req, &al);
	int ok = a && al > 0 && al < 256;
	for (size_t i = 0; ok && i < al; i++)
		ok = (a[i] >= 'a' && a[i] <= 'z') || (a[i] >= 'A' && a[i] <= 'Z') ||
		     (a[i] >= '0' && a[i] <= '9') || strchr(".-:[]", a[i]);
	if (ok)
		snprintf(out, cap, "http://%.*s", (int)al, a);
	else
		snprintf(out, cap, "http://localhost:%d", cairn_httpd_port(e->httpd));
}

/* /: what this is, how its upstreams and cache are, how to use it. */
int edge_h_index(struct cairn_httpd_req *req, void *data)
{
	struct cairn_edge *e = data;
	struct edge_state s;
	struct cairn_buf b = CAIRN_BUF_INIT(EDGE_PAGE_MAX), u = CAIRN_BUF_INIT(EDGE_PAGE_MAX);
	char base[300], size[32], max[32];
	state_get(e, &s);
	page_base(e, req, base, sizeof(base));
	edge_fmt_size(size, sizeof(size), s.st.bytes);
	edge_fmt_size(max, sizeof(max), e->cfg.max_size);
	cairn_buf_puts(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
			   "<title>cairn mirror</title></head><body>\n<h1>cairn mirror</h1>\n"
			   "<p>A caching mirror of the binary caches below (cairn mirror). It "
			   "passes their narinfos on as they are signed");
	if (e->keys)
		cairn_buf_puts(&b, ", only those signed by a trusted key below");
	cairn_buf_puts(&b, "; it keeps a nar only once its bytes match its narinfo, and serves "
			   "what it holds while its upstreams are down.</p>\n<h2>Upstreams</h2>\n"
			   "<pre>\n");
	cairn_html_cstr(&b, s.ups.data ? s.ups.data : "");
	cairn_buf_puts(&b, "</pre>\n<h2>Cache</h2>\n<p>");
	cairn_buf_printf(&b, "%llu nars, %s", (unsigned long long)s.st.n_nars, size);
	if (e->cfg.max_size)
		cairn_buf_printf(&b, " of %s", max);
	cairn_buf_printf(&b, "; %s.</p>\n<h2>Trusted keys</h2>\n",
			 state_can_serve(&s) ? "it can serve without its upstreams"
					     : "it cannot serve without its upstreams yet");
	if (e->keys) {
		cairn_buf_puts(&b, "<pre>\n");
		cairn_html_cstr(&b, e->keys);
		cairn_buf_puts(&b, "</pre>\n");
	} else {
		cairn_buf_puts(&b, "<p>None: narinfos are not checked here (clients check their "
				   "signatures).</p>\n");
	}
	cairn_buf_puts(&b, "<h2>How to use it</h2>\n<pre>\n");
	if (s.guix) {
		cairn_buf_printf(&u, "guix build --substitute-urls=%s PACKAGE\n", base);
	} else {
		/* Nix 2.8 (Debian's) has `nix copy` behind an experimental feature */
		cairn_buf_printf(&u, "nix --extra-experimental-features nix-command copy --from %s",
				 base);
		if (e->nix_keys)
			cairn_buf_printf(&u, " --option trusted-public-keys '%s'", e->nix_keys);
		cairn_buf_printf(
		    &u, " /nix/store/...\n\n# or in nix.conf:\nextra-substituters = %s\n", base);
		if (e->nix_keys)
			cairn_buf_printf(&u, "extra-trusted-public-keys = %s\n", e->nix_keys);
	}
	cairn_html_cstr(&b, u.data ? u.data : "");
	cairn_buf_puts(&b, "</pre>\n<p><a href=\"/nix-cache-info\">nix-cache-info</a> · "
			   "<a href=\"/health\">health</a> · <a href=\"/metrics\">metrics</a></p>\n"
			   "</body></html>\n");
	cairn_buf_release(&u);
	cairn_buf_release(&s.ups);
	cairn_httpd_add_header(req, "Cache-Control", "no-store");
	int rc =
	    cairn_httpd_send(req, 200, "text/html; charset=utf-8", b.data ? b.data : "", b.len);
	cairn_buf_release(&b);
	return rc;
}

/* e->keys and e->nix_keys from the keyring, for the / page. */
int edge_keys_describe(struct cairn_edge *e, struct cairn_error *err)
{
	const struct cairn_keyring *kr = e->cfg.trusted;
	struct cairn_buf all = CAIRN_BUF_INIT(EDGE_PAGE_MAX / 4),
			 nix = CAIRN_BUF_INIT(EDGE_PAGE_MAX / 4);
	int rc = 0;
	if (!kr)
		return 0;
	e->n_keys = kr->n_nix + kr->n_guix;
	for (size_t i = 0; i < kr->n_nix && rc == 0; i++) {
		if (i)
			rc = cairn_buf_putc(&nix, ' ');
		if (rc == 0)
			rc = cairn_nix_pubkey_format(&kr->nix[i], &nix);
	}
	if (rc == 0 && nix.len)
		rc = cairn_buf_printf(&all, "%.*s\n", (int)nix.len, nix.data);
	for (size_t i = 0; i < kr->n_guix && rc == 0; i++) {
		struct cairn_signer sg = {.kind = CAIRN_KEY_GUIX, .index = i};
		char name[128];
		cairn_keyring_key_name(kr, &sg, name, sizeof(name));
		rc = cairn_buf_printf(&all, "%s\n", name);
	}
	if (rc == 0 && all.len) {
		size_t nix_len = nix.len;
		/* each Nix key on a line of its own */
		for (size_t i = 0; i < nix_len; i++)
			if (all.data[i] == ' ')
				all.data[i] = '\n';
		e->keys = cairn_buf_steal(&all, NULL);
		e->nix_keys = nix_len ? cairn_buf_steal(&nix, NULL) : NULL;
		if (!e->keys || (nix_len && !e->nix_keys))
			rc = -1;
	}
	cairn_buf_release(&all);
	cairn_buf_release(&nix);
	return rc < 0 ? cairn_error_set(err, CAIRN_ENOMEM, "mirror: out of memory") : 0;
}

/* The line that says the mirror is up: where, in front of what, with
 * what cache and trust. */
void edge_say_listening(struct cairn_edge *e)
{
	struct cairn_buf b = CAIRN_BUF_INIT(2 * EDGE_LOG_LINE_MAX);
	struct edge_store_stats st;
	char a[300], size[32], max[32];
	size_t i;
	cairn_buf_puts(&b, "listening on ");
	for (i = 0; e->httpd && cairn_httpd_listen_addr(e->httpd, i, a, sizeof(a)) == 0; i++)
		cairn_buf_printf(&b, "%s%s", i ? ", " : "", a);
	if (!i)
		cairn_buf_puts(&b, "(no socket)");
	cairn_buf_puts(&b, e->n_ups > 1 ? "; upstreams " : "; upstream ");
	for (i = 0; i < e->n_ups; i++) {
		edge_upstream_name(&e->ups[i], a, sizeof(a));
		cairn_buf_printf(&b, "%s%s", i ? ", " : "", a);
	}
	edge_store_stats(e->store, &st);
	edge_fmt_size(size, sizeof(size), st.bytes);
	edge_fmt_size(max, sizeof(max), e->cfg.max_size);
	edge_tell(a, sizeof(a), e->cache_dir);
	cairn_buf_printf(&b, "; cache %s: %llu nars, %s", a, (unsigned long long)st.n_nars, size);
	if (e->cfg.max_size)
		cairn_buf_printf(&b, " (at most %s)", max);
	else
		cairn_buf_puts(&b, " (no --max-size)");
	if (e->n_keys)
		cairn_buf_printf(&b, "; %zu trusted key%s", e->n_keys, e->n_keys > 1 ? "s" : "");
	else
		cairn_buf_puts(&b, "; no trusted keys (narinfos are not checked)");
	edge_say(e, CAIRN_EDGE_LOG_INFO, "%s", b.data ? b.data : "listening");
	cairn_buf_release(&b);
}
