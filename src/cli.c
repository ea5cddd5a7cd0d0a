#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn/buf.h"
#include "cairn/escape.h"
#include "cairn/io.h"
#include "cairn/http.h"
#include "cairn/httpd.h"
#include "cairn/keys.h"
#include "cairn/quote.h"
#include "cairn/survey.h"
#include "cli.h"
#include "cairn/banned.h"

const char *cli_progname = "cairn";

/*
 * Messages often hold what a server sent (a key name, a reason, a path in
 * a NAR): they reach the terminal only as quote.h makes them safe, so no
 * server can move the cursor or forge a line of output.
 */
__attribute__((format(printf, 2, 0)))
static void cli_vmsg(const char *kind, const char *fmt, va_list ap)
{
	struct cairn_buf raw = CAIRN_BUF_INIT(1 << 16), safe = CAIRN_BUF_INIT(1 << 18);
	cairn_buf_vprintf(&raw, fmt, ap);
	cairn_quote(&safe, raw.data ? raw.data : "", raw.len, CAIRN_QUOTE_KEEP_BACKSLASH);
	fprintf(stderr, "%s: %s: %s\n", cli_progname, kind, safe.data ? safe.data : "");
	cairn_buf_release(&raw);
	cairn_buf_release(&safe);
}

const char *cli_safe(const char *s)
{
	/* A few at a time in one printf: a small ring of buffers. */
	static char ring[4][4096];
	static unsigned next;
	char *out = ring[next++ % 4];
	return s ? cairn_quote_str(out, sizeof(ring[0]), s, strlen(s), 0) : "";
}

const char *cli_safe_name(const char *s, size_t len)
{
	static char ring[4][8192];
	static unsigned next;
	char *out = ring[next++ % 4];
	struct cairn_buf b = CAIRN_BUF_INIT(sizeof(ring[0]) - 1);
	if (cairn_quote(&b, s, len, CAIRN_QUOTE_WRAP) == 0 && b.data)
		memcpy(out, b.data, b.len + 1);
	else
		cairn_quote_str(out, sizeof(ring[0]), s, len, 0);
	cairn_buf_release(&b);
	return out;
}

void cli_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cli_vmsg("error", fmt, ap);
	va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cli_vmsg("warning", fmt, ap);
	va_end(ap);
}

int cli_fail(const char *what, const struct cairn_error *err)
{
	cli_error("%s: %s", what, cairn_error_msg(err));
	return EXIT_FAIL;
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return false;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	}
	return false;
}

/* Optimal string alignment distance: a swap of neighbours costs one, as a
 * typist's slip does. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	size_t d[65][65];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1];
			size_t v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	return d[la][lb];
}

const char *cli_suggest(const char *typed, const char *const *names, size_t n)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		size_t d = edit_distance(typed, names[i]);
		/* A prefix ("pub") is as telling as a slip. */
		if (strlen(typed) >= 2 && !strncmp(names[i], typed, strlen(typed)))
			d = 1;
		if (d < best_d) {
			best_d = d;
			best = names[i];
		}
	}
	size_t len = strlen(typed);
	return best && best_d <= (len < 6 ? 2 : 3) && best_d < len ? best : NULL;
}

int cli_read_stream(const char *path, int (*fn)(void *ctx, const void *data, size_t len,
					  struct cairn_error *err),
		    void *ctx, struct cairn_error *err)
{
	bool is_stdin = strcmp(path, "-") == 0;
	int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cairn_error_errno(err, errno, "cannot open '%s'", path);
	static char chunk[1 << 20]; /* the CLI reads one file at a time */
	int rc = 0;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = cairn_error_errno(err, errno, "cannot read '%s'", path);
			break;
		}
		if (n == 0)
			break;
		rc = fn(ctx, chunk, (size_t)n, err);
		if (rc)
			break;
	}
	if (!is_stdin)
		close(fd);
	return rc;
}

struct read_file {
	struct cairn_buf b;
	const char *path;
};

static int read_file_append(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct read_file *r = ctx;
	int rc = cairn_buf_append(&r->b, data, len);
	if (rc)
		return cairn_error_set(err, rc, "'%s' is larger than %zu bytes", r->path, r->b.max);
	return 0;
}

int cli_read_file(const char *path, size_t max, char **out, size_t *len,
		  struct cairn_error *err)
{
	struct read_file r = {CAIRN_BUF_INIT(max), path};
	int rc = cli_read_stream(path, read_file_append, &r, err);
	if (rc) {
		cairn_buf_release(&r.b);
		return rc;
	}
	*out = cairn_buf_steal(&r.b, len);
	if (!*out)
		return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
	return 0;
}

int cli_load_keyring(struct cairn_keyring *kr, const char *arg)
{
	struct cairn_error err;
	char *text = NULL;
	size_t len = 0;
	int rc;

	cairn_error_init(&err);
	/* A key's base64 may hold '/': only a missing file makes ARG a key. */
	if (strcmp(arg, "-") && access(arg, F_OK) != 0 && errno == ENOENT && strchr(arg, ':')) {
		rc = cairn_keyring_load(kr, arg, strlen(arg), &err);
		if (rc < 0) {
			/* Not echoed: a pasted secret key would end up in a log. */
			cli_error("--trusted-key: no such file, and not a key (name:base64): %s",
				  cairn_error_msg(&err));
			return EXIT_FAIL;
		}
		return EXIT_OK;
	}
	if (cli_read_file(arg, CAIRN_KEYFILE_MAX, &text, &len, &err))
		return cli_fail("cannot read a trusted key", &err);
	rc = cairn_keyring_load(kr, text, len, &err);
	free(text);
	if (rc < 0) {
		cli_error("'%s': %s", arg, cairn_error_msg(&err));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

void cli_keyring_check(const struct cairn_keyring *kr)
{
	struct cairn_buf b = CAIRN_BUF_INIT(1 << 20);
	if (cairn_keyring_aliases(kr, &b) && b.data) {
		for (const char *l = b.data, *nl; (nl = strchr(l, '\n')); l = nl + 1)
			cli_warn("%.*s", (int)(nl - l), l);
	}
	cairn_buf_release(&b);
}

int cli_write_all(int fd, const void *buf, size_t len)
{
	return cairn_write_all(fd, buf, len);
}

/* A JSON string on stdout (lib/json.c: bytes that are not UTF-8 become
 * U+FFFD, so the output always parses). */
void cli_json_str(const char *s)
{
	struct cairn_buf b;
	cairn_buf_init(&b, SIZE_MAX);
	if (cairn_json_cstr(&b, s) == 0)
		fwrite(b.data, 1, b.len, stdout);
	else
		fputs("\"\"", stdout);
	cairn_buf_release(&b);
}

int cli_survey_add_stdin(struct cairn_survey *s)
{
	char *text = NULL;
	size_t len = 0;
	struct cairn_error err;
	cairn_error_init(&err);
	if (cli_read_file("-", CLI_STDIN_PATHS_MAX, &text, &len, &err))
		return cli_fail("cannot read store paths from stdin", &err);
	int ret = EXIT_OK;
	char *p = text, *end = text + len;
	while (p < end) {
		while (p < end && isspace((unsigned char)*p))
			p++;
		char *q = p;
		while (q < end && !isspace((unsigned char)*q))
			q++;
		if (q == p)
			break;
		*q = '\0';
		if (cairn_survey_add(s, p, NULL, &err) < 0) {
			ret = cli_fail("bad store path on stdin", &err);
			break;
		}
		p = q + 1;
	}
	free(text);
	return ret;
}

/* The decimal number s starts with; *end: what follows it.  A digit must
 * come first: strtoull skips spaces and takes a sign, so " -5" would wrap
 * to 2^64 - 5. */
static int leading_number(const char *s, unsigned long long *v, char **end)
{
	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	*v = strtoull(s, end, 10);
	return errno || *end == s ? -1 : 0;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	if (leading_number(s, &v, &end) < 0)
		return -1;
	uint64_t m = 1;
	if (*end) {
		const char *units = "KMGT", *u = strchr(units, *end);
		if (!u || end[1])
			return -1;
		m = UINT64_C(1) << (10 * (u - units + 1));
	}
	if (v > UINT64_MAX / m)
		return -1;
	*out = v * m;
	return 0;
}

int cli_parse_ms(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	if (leading_number(s, &v, &end) < 0)
		return -1;
	uint64_t m;
	if (!*end || !strcmp(end, "s"))
		m = 1000;
	else if (!strcmp(end, "ms"))
		m = 1;
	else if (!strcmp(end, "m"))
		m = 60000;
	else if (!strcmp(end, "h"))
		m = 3600000;
	else if (!strcmp(end, "d"))
		m = 86400000;
	else
		return -1;
	if (v > UINT64_C(10) * 365 * 86400000 / m)
		return -1;
	*out = v * m;
	return 0;
}

int cli_parse_seconds(const char *s, unsigned *out)
{
	uint64_t ms;
	if (cli_parse_ms(s, &ms) < 0 || ms % 1000)
		return -1;
	*out = (unsigned)(ms / 1000);
	return 0;
}

static struct cairn_httpd *g_serving;

static void on_stop_signal(int sig)
{
	(void)sig;
	if (g_serving)
		cairn_httpd_stop(g_serving);
}

void cli_serve_signals(struct cairn_httpd *h)
{
	struct sigaction sa;
	g_serving = h;
	if (!h)
		return;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}
