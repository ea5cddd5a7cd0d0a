/*
 * httpd-hook.c - libh2o's HTTP/1 request parser, interposed: heads with
 * too many fields or ambiguous framing are marked for the dispatcher
 * (httpd.c's head_refused) before h2o acts on them.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cairn/cairn.h"
#include "httpd-int.h"
#include "cairn/banned.h"

/*
 * The HTTP/1 request parser, interposed.  libh2o calls phr_parse_request
 * (picohttpparser) through its PLT, and a definition in the executable comes
 * first in symbol lookup (the same mechanism as a malloc replacement), so
 * cairn sees every HTTP/1 head before h2o does.  Two things h2o 2.2.5 gets
 * wrong are caught here; the dispatcher answers them and closes the
 * connection.  publish-badinput.py fails if a future libh2o stops calling
 * through the PLT.
 *
 * 431 for too many header fields.  h2o parses a head into an array of
 * H2O_MAX_HEADERS (100) entries and closes with 400 past that, before any
 * handler runs; RFC 6585 asks for 431.  When the real parser gives up with
 * its array full, we check that the head is complete and hand h2o its first
 * fields plus a marker field.
 *
 * 400 for ambiguous message framing (request smuggling).  h2o's
 * init_headers and fixup_request (lib/http1.c) take the first Content-Length
 * and ignore any other, let a later Transfer-Encoding override an earlier one
 * and any Content-Length, read a chunked body from an HTTP/1.0 request, and
 * keep the connection alive in all these cases; the framing fields never
 * reach the handler.  A proxy in front that reads the head the other way
 * sees a different request boundary, so a request hidden in what it took
 * for a body would be served.  RFC 9112 6.1 and 6.3 ask for 400 and a
 * closed connection; so does any Content-Length that is not exactly one
 * field of digits (lists, even "5, 5", included), and any obsolete line
 * folding (5.2 lets a server refuse it; h2o would keep it as a nameless
 * field).  A single "Transfer-Encoding: chunked" on HTTP/1.1 is left to
 * h2o.
 *
 * Either way the framing fields are taken out before h2o sees the head, so
 * it reads no body and dispatches at once; the marker names cannot come from
 * a client (a space is not a token character).
 */
struct phr_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
		      const char **path, size_t *path_len, int *minor_version,
		      struct phr_header *headers, size_t *num_headers, size_t last_len);

typedef int (*phr_parse_request_fn)(const char *, size_t, const char **, size_t *,
				    const char **, size_t *, int *, struct phr_header *,
				    size_t *, size_t);

/* h2o lower-cases names in place, so the markers must be writable; one per
 * thread keeps that race-free */
static _Thread_local char too_many_fields[] = TOO_MANY_FIELDS;
static _Thread_local char bad_framing[] = BAD_FRAMING;

static int field_is(const struct phr_header *f, const char *name)
{
	size_t n = strlen(name);
	return f->name != NULL && f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

/* Content-Length, Transfer-Encoding, or the continuation of a folded line. */
static int is_framing_field(const struct phr_header *f)
{
	return f->name == NULL || field_is(f, "content-length") || field_is(f, "transfer-encoding");
}

static int framing_is_faulty(const struct phr_header *fields, size_t n, int minor_version)
{
	const struct phr_header *cl = NULL, *te = NULL;
	size_t n_cl = 0, n_te = 0;

	for (size_t i = 0; i < n; i++) {
		if (fields[i].name == NULL)
			return 1;
		if (field_is(&fields[i], "content-length"))
			cl = &fields[i], n_cl++;
		else if (field_is(&fields[i], "transfer-encoding"))
			te = &fields[i], n_te++;
	}
	if (te != NULL)
		return n_te > 1 || cl != NULL || minor_version == 0 || te->value_len != 7 ||
		       strncasecmp(te->value, "chunked", 7) != 0;
	if (cl != NULL) {
		if (n_cl > 1 || cl->value_len == 0)
			return 1;
		for (size_t i = 0; i < cl->value_len; i++)
			if (cl->value[i] < '0' || cl->value[i] > '9')
				return 1;
	}
	return 0;
}

/* Drop the framing fields from fields[0..*n) and add the marker last; the
 * caller makes sure there is room for it. */
static void mark_head(struct phr_header *fields, size_t *n, char *marker, size_t marker_len)
{
	size_t k = 0;

	for (size_t i = 0; i < *n; i++)
		if (!is_framing_field(&fields[i]))
			fields[k++] = fields[i];
	fields[k++] = (struct phr_header){marker, marker_len, marker, 0};
	*n = k;
}

/* picohttpparser's answers, which the hook must keep. */
#define PHR_ERROR (-1)
#define PHR_INCOMPLETE (-2)

static phr_parse_request_fn real_parser;

/* Found once, when a server is made: without it no server starts. */
int httpd_find_real_parser(struct cairn_error *err)
{
	if (__atomic_load_n(&real_parser, __ATOMIC_ACQUIRE))
		return 0;
	void *sym = dlsym(RTLD_NEXT, "phr_parse_request");
	if (sym == NULL)
		return cairn_error_set(err, CAIRN_EUNSUPPORTED,
				       "httpd: libh2o's request parser (phr_parse_request) is not "
				       "linked in");
	phr_parse_request_fn fn;
	memcpy(&fn, &sym, sizeof(fn));
	__atomic_store_n(&real_parser, fn, __ATOMIC_RELEASE);
	return 0;
}

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len,
		      const char **path, size_t *path_len, int *minor_version,
		      struct phr_header *headers, size_t *num_headers, size_t last_len)
{
	phr_parse_request_fn fn = __atomic_load_n(&real_parser, __ATOMIC_ACQUIRE);
	if (fn == NULL)
		return PHR_ERROR; /* no server was made: nothing should parse here */
	size_t max = *num_headers;
	int r = fn(buf, len, method, method_len, path, path_len, minor_version, headers, num_headers,
		   last_len);
	if (r >= 0) {
		/* a faulty head has a framing field to drop: the marker fits */
		if (framing_is_faulty(headers, *num_headers, *minor_version))
			mark_head(headers, num_headers, bad_framing, sizeof(bad_framing) - 1);
		return r;
	}
	if (r != -1 || max < 2 || *num_headers != max)
		return r;
	/* the array is full: is the whole head here yet? */
	const struct phr_header *last = &headers[max - 1];
	const char *from = last->value != NULL ? last->value + last->value_len : last->name;
	if (from == NULL || from < buf || from > buf + len)
		return r;
	for (const char *p = from; p < buf + len; p++) {
		if (*p != '\n')
			continue;
		const char *q = p + 1;
		if (q < buf + len && *q == '\r')
			q++;
		if (q >= buf + len)
			break;
		if (*q != '\n')
			continue;
		*num_headers = max - 1;
		mark_head(headers, num_headers, too_many_fields, sizeof(too_many_fields) - 1);
		return (int)(q + 1 - buf);
	}
	return PHR_INCOMPLETE;
}
