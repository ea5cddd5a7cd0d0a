/*
 * http-server.c - what the HTTP client knows of a server: its base URL
 * (http, https, or a file:// binary cache), its nix-cache-info, whether it
 * is down and why, and its health counters; plus the names and advice
 * for transfer outcomes.  The transfers themselves are in http.c.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "cairn/cairn.h"
#include "cairn/http.h"
#include "http-internal.h"
#include "cairn/banned.h"

/* ---- config and servers ---------------------------------------------- */

void cairn_http_config_init(struct cairn_http_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->connect_timeout_ms = 5000;
	/* A binary cache answers a narinfo or starts a nar within well under a
	 * second (CDNs, and servers that compress as they send); one that
	 * has said nothing for 5 s, as long as the connect timeout, is one
	 * nobody should wait on while another can answer. */
	cfg->first_byte_timeout_ms = 5000;
	cfg->stall_timeout_s = 30;
	/* 1 KiB/s (8 kbit/s): below any link a user downloads over, even split
	 * between 8 parallel downloads on a 64 kbit/s line; a server
	 * trickling a byte a second is caught 10 s after it connects. */
	cfg->min_rate = 1024;
	cfg->min_rate_window_s = 10;
	cfg->total_timeout_s = 0;
	cfg->max_host_connections = 8;
	cfg->max_total_connections = 64;
	cfg->max_redirects = 5;
	cfg->multiplex = 1;
	cfg->user_agent = NULL;
}

int cairn_http_h2c_usable(void)
{
	unsigned v = curl_version_info(CURLVERSION_NOW)->version_num;

	/* 7.88's connection-filter rewrite stacked a second HTTP/2 layer on
	 * every reused prior-knowledge connection ("Error in the HTTP2
	 * framing layer" from the second request on); fixed in 8.0.0
	 * (curl issue #10634). */
	return v < 0x075800 || v >= 0x080000;
}

int cairn_http__url_scheme_ok(const char *url)
{
	return strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0;
}

int cairn_http__is_file_url(const char *url)
{
	return strncmp(url, "file://", 7) == 0;
}

/*
 * A file:// binary cache is the user's own directory; a path under it comes
 * from its narinfos, so it must not climb out: no "." or ".." segment, and
 * no '%' (curl would decode "%2e%2e"), '?' or '#'.
 */
int cairn_http__file_path_ok(const char *path)
{
	if (strpbrk(path, "%?#"))
		return 0;
	for (const char *p = path; *p;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return 0;
		p += n;
		while (*p == '/')
			p++;
	}
	return 1;
}

int cairn_http_server_new(struct cairn_http_server **out, const char *base_url, unsigned flags,
			  struct cairn_error *err)
{
	struct cairn_http_server *s;
	size_t len;

	if (!out || !base_url)
		return cairn_error_set(err, CAIRN_EINVAL, "http: server: no url");
	len = strnlen(base_url, CAIRN_HTTP_URL_MAX + 1);
	if (len > CAIRN_HTTP_URL_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "http: server url longer than %d bytes",
				       CAIRN_HTTP_URL_MAX);
	if (!cairn_http__url_scheme_ok(base_url) &&
	    !(cairn_http__is_file_url(base_url) && base_url[7] == '/' && cairn_http__file_path_ok(base_url + 7)))
		return cairn_error_set(err, CAIRN_EINVAL,
				       "http: server '%.200s': only http://, https:// and "
				       "file:///ABSOLUTE/PATH are supported",
				       base_url);
	if ((flags & CAIRN_HTTP_SERVER_H2_PRIOR_KNOWLEDGE) && !cairn_http_h2c_usable())
		return cairn_error_set(err, CAIRN_EUNSUPPORTED,
				       "http: server '%.200s': libcurl %s cannot reuse h2c "
				       "(prior knowledge) connections; use https or plain HTTP/1.1",
				       base_url, curl_version_info(CURLVERSION_NOW)->version);
	while (len > 0 && base_url[len - 1] == '/')
		len--;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->base_url = strndup(base_url, len))) {
		free(s);
		return cairn_error_set(err, CAIRN_ENOMEM, "http: out of memory");
	}
	s->flags = flags;
	s->info.priority = CAIRN_HTTP_DEFAULT_PRIORITY;
	*out = s;
	return 0;
}

void cairn_http_server_free(struct cairn_http_server *s)
{
	if (!s)
		return;
	free(s->base_url);
	free(s);
}

const char *cairn_http_server_url(const struct cairn_http_server *s)
{
	return s->base_url;
}

void cairn_http_server_set_info(struct cairn_http_server *s,
				const struct cairn_http_cache_info *info)
{
	s->info = *info;
}

const struct cairn_http_cache_info *cairn_http_server_info(const struct cairn_http_server *s)
{
	return &s->info;
}

void cairn_http__server_set_down(struct cairn_http_server *s, enum cairn_http_server_state st,
				  const char *reason)
{
	s->state = st;
	s->health.down_since = (int64_t)time(NULL);
	snprintf(s->down_reason, sizeof(s->down_reason), "%s", reason ? reason : "marked down");
}

void cairn_http_server_mark_down(struct cairn_http_server *s, const char *reason)
{
	cairn_http__server_set_down(s, CAIRN_HTTP_SERVER_DOWN, reason);
}

void cairn_http_server_mark_up(struct cairn_http_server *s)
{
	s->state = CAIRN_HTTP_SERVER_UP;
	s->health.down_since = 0;
	s->down_reason[0] = '\0';
}

const char *cairn_http_server_down(const struct cairn_http_server *s)
{
	return s->state != CAIRN_HTTP_SERVER_UP ? s->down_reason : NULL;
}

const char *cairn_http_server_state_name(enum cairn_http_server_state st)
{
	switch (st) {
	case CAIRN_HTTP_SERVER_UP: return "up";
	case CAIRN_HTTP_SERVER_DOWN: return "down";
	case CAIRN_HTTP_SERVER_UNREACHABLE: return "unreachable";
	case CAIRN_HTTP_SERVER_SILENT: return "silent";
	case CAIRN_HTTP_SERVER_SLOW: return "slow";
	}
	return "unknown";
}

void cairn_http_server_health(const struct cairn_http_server *s,
			      struct cairn_http_server_health *out)
{
	*out = s->health;
	out->state = s->state;
	out->down_reason = cairn_http_server_down(s);
}

uint64_t cairn_http_server_slow(const struct cairn_http_server *s)
{
	return s->health.slow;
}

/* ---- nix-cache-info ---------------------------------------------------- */

/* A decimal int, optional sign, nothing else; 0 when it parses. */
static int parse_int(const char *s, size_t len, int *out)
{
	long long v = 0;
	int neg = 0;
	size_t i = 0;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		neg = s[i++] == '-';
	if (i == len)
		return CAIRN_EFORMAT;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return CAIRN_EFORMAT;
		v = v * 10 + (s[i] - '0');
		if (v > (long long)INT32_MAX + 1)
			return CAIRN_EFORMAT;
	}
	if (neg)
		v = -v;
	if (v > INT32_MAX || v < INT32_MIN)
		return CAIRN_EFORMAT;
	*out = (int)v;
	return 0;
}

int cairn_http_cache_info_parse(const char *text, size_t len, struct cairn_http_cache_info *out,
				struct cairn_error *err)
{
	struct cairn_http_cache_info ci;
	size_t pos = 0;

	if (!text || !out)
		return cairn_error_set(err, CAIRN_EINVAL, "nix-cache-info: no input");
	if (len > CAIRN_HTTP_CACHE_INFO_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "nix-cache-info: longer than %u bytes",
				       CAIRN_HTTP_CACHE_INFO_MAX);
	if (memchr(text, '\0', len))
		return cairn_error_set(err, CAIRN_EFORMAT, "nix-cache-info: contains a NUL byte");
	memset(&ci, 0, sizeof(ci));
	ci.priority = CAIRN_HTTP_DEFAULT_PRIORITY;

	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos;
		const char *colon = memchr(line, ':', llen);
		const char *v, *vend;
		size_t nlen;

		pos += llen + (nl ? 1 : 0);
		if (!colon)
			continue;
		nlen = (size_t)(colon - line);
		v = colon + 1;
		vend = line + llen;
		while (v < vend && cairn_http__is_space(*v))
			v++;
		while (vend > v && cairn_http__is_space(vend[-1]))
			vend--;
		if (nlen == 8 && memcmp(line, "StoreDir", 8) == 0) {
			size_t vlen = (size_t)(vend - v);
			if (vlen > CAIRN_HTTP_STORE_DIR_MAX)
				return cairn_error_set(
				    err, CAIRN_ELIMIT,
				    "nix-cache-info: StoreDir longer than %d bytes",
				    CAIRN_HTTP_STORE_DIR_MAX);
			memcpy(ci.store_dir, v, vlen);
			ci.store_dir[vlen] = '\0';
		} else if (nlen == 13 && memcmp(line, "WantMassQuery", 13) == 0) {
			ci.want_mass_query = (vend - v == 1 && *v == '1');
		} else if (nlen == 13 && memcmp(line, "CairnNarinfos", 13) == 0) {
			ci.narinfos = (vend - v == 1 && *v == '1');
		} else if (nlen == 8 && memcmp(line, "Priority", 8) == 0) {
			int p;
			/* Nix keeps the previous value when it does not parse. */
			if (parse_int(v, (size_t)(vend - v), &p) == 0)
				ci.priority = p;
		}
	}
	*out = ci;
	return 0;
}

size_t cairn_http_cache_info_drop(char *text, size_t len, const char *key)
{
	size_t kl = strlen(key), o = 0;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl + 1 - (text + i)) : len - i;
		if (!(n > kl && memcmp(text + i, key, kl) == 0 && text[i + kl] == ':')) {
			memmove(text + o, text + i, n);
			o += n;
		}
		i += n;
	}
	return o;
}

/* ---- outcomes ------------------------------------------------------------ */

const char *cairn_http_outcome_name(enum cairn_http_outcome o)
{
	switch (o) {
	case CAIRN_HTTP_OK: return "ok";
	case CAIRN_HTTP_STATUS: return "status";
	case CAIRN_HTTP_NETWORK: return "network";
	case CAIRN_HTTP_SHORT: return "short";
	case CAIRN_HTTP_STALL: return "stall";
	case CAIRN_HTTP_CONNECT: return "connect";
	case CAIRN_HTTP_TIMEOUT: return "timeout";
	case CAIRN_HTTP_TOO_LARGE: return "too-large";
	case CAIRN_HTTP_ABORTED: return "aborted";
	case CAIRN_HTTP_SILENT: return "silent";
	case CAIRN_HTTP_SLOW: return "slow";
	}
	return "unknown";
}

enum cairn_http_advice cairn_http_advice(const struct cairn_http_result *r)
{
	switch (r->outcome) {
	case CAIRN_HTTP_OK: return CAIRN_HTTP_DONE;
	case CAIRN_HTTP_NETWORK:
	case CAIRN_HTTP_SHORT:
	case CAIRN_HTTP_STALL: return CAIRN_HTTP_RETRY_RANGE;
	case CAIRN_HTTP_STATUS:
		if (r->status >= 500 || r->status == 408 || r->status == 429)
			return CAIRN_HTTP_RETRY_RANGE;
		return CAIRN_HTTP_NEXT_SERVER;
	case CAIRN_HTTP_CONNECT:
	case CAIRN_HTTP_SILENT:
	case CAIRN_HTTP_SLOW:
	case CAIRN_HTTP_TIMEOUT:
	case CAIRN_HTTP_TOO_LARGE: return CAIRN_HTTP_NEXT_SERVER;
	case CAIRN_HTTP_ABORTED: return CAIRN_HTTP_GIVE_UP;
	}
	return CAIRN_HTTP_GIVE_UP;
}
