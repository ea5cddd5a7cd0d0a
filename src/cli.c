#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn/buf.h"
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

int cli_usage(const char *usage, bool to_stdout)
{
	fputs(usage, to_stdout ? stdout : stderr);
	return to_stdout ? EXIT_OK : EXIT_USAGE;
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

int cli_dispatch(int argc, char **argv, const struct cli_action *acts, size_t n,
		 const char *usage)
{
	if (cli_wants_help(argc, argv))
		return cli_usage(usage, true);
	if (argc < 2) {
		cli_error("missing action");
		return cli_usage(usage, false);
	}
	const char *names[16];
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(argv[1], acts[i].name))
			return acts[i].fn(argc - 1, argv + 1);
		if (i < 16)
			names[i] = acts[i].name;
	}
	const char *s = cli_suggest(argv[1], names, n < 16 ? n : 16);
	if (s)
		cli_error("unknown action '%s'; did you mean '%s'?", argv[1], s);
	else
		cli_error("unknown action '%s'", argv[1]);
	return cli_usage(usage, false);
}

int cli_read_file(const char *path, size_t max, char **out, size_t *len,
		  struct cairn_error *err)
{
	int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cairn_error_errno(err, errno, "cannot open '%s'", path);
	struct cairn_buf b = CAIRN_BUF_INIT(max);
	char chunk[65536];
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
		rc = cairn_buf_append(&b, chunk, (size_t)n);
		if (rc) {
			cairn_error_set(err, rc, "'%s' is larger than %zu bytes", path, max);
			break;
		}
	}
	if (fd != STDIN_FILENO)
		close(fd);
	if (rc) {
		cairn_buf_release(&b);
		return rc;
	}
	*out = cairn_buf_steal(&b, len);
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

int cli_http_option(int argc, char **argv, int *i, struct cairn_http_config *hc)
{
	static const char *const names[] = {"--connect-timeout", "--first-byte-timeout",
					    "--stall-timeout", "--min-rate", "--rate-window"};
	const char *a = argv[*i];
	size_t k;
	for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (!strcmp(a, names[k]))
			break;
	if (k == sizeof(names) / sizeof(names[0]))
		return 0;
	if (*i + 1 >= argc) {
		cli_error("%s needs a value", a);
		return EXIT_USAGE;
	}
	const char *v = argv[++*i];
	uint64_t n;
	if (k == 3) {
		if (cli_parse_size(v, &n) < 0 || n > CAIRN_HTTP_MIN_RATE_MAX) {
			cli_error("%s: '%s' is not a size up to %ld", a, v, CAIRN_HTTP_MIN_RATE_MAX);
			return EXIT_USAGE;
		}
		hc->min_rate = (long)n;
		return 1;
	}
	if (cli_parse_ms(v, &n) < 0 || n == 0 || n > (uint64_t)CAIRN_HTTP_TIMEOUT_MAX_MS) {
		cli_error("%s: '%s' is not a duration (ms, s, m, h) from 1ms to 1d", a, v);
		return EXIT_USAGE;
	}
	switch (k) {
	case 0: hc->connect_timeout_ms = (long)n; break;
	case 1: hc->first_byte_timeout_ms = (long)n; break;
	/* whole seconds, at least one */
	case 2: hc->stall_timeout_s = (long)((n + 999) / 1000); break;
	default:
		hc->min_rate_window_s = (long)((n + 999) / 1000);
		if (hc->min_rate_window_s > CAIRN_HTTP_RATE_WINDOW_MAX_S) {
			cli_error("%s: at most %d s", a, CAIRN_HTTP_RATE_WINDOW_MAX_S);
			return EXIT_USAGE;
		}
		break;
	}
	return 1;
}

int cli_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return CAIRN_EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n;
	unsigned min;
	unsigned cp;
	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xE0) == 0xC0)
		n = 2, min = 0x80, cp = s[0] & 0x1F;
	else if ((s[0] & 0xF0) == 0xE0)
		n = 3, min = 0x800, cp = s[0] & 0x0F;
	else if ((s[0] & 0xF8) == 0xF0)
		n = 4, min = 0x10000, cp = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80) /* also stops at the NUL */
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

/* A JSON string; bytes that are not UTF-8 (file names may hold any) become
 * U+FFFD, so the output always parses. */
void cli_json_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t n = utf8_len(p);
		if (n == 0) {
			fputs("\\ufffd", stdout);
			p++;
		} else if (*p == '"' || *p == '\\') {
			printf("\\%c", *p++);
		} else if (*p < 0x20 || *p == 0x7F) {
			printf("\\u%04x", *p++);
		} else {
			fwrite(p, 1, n, stdout);
			p += n;
		}
	}
	putchar('"');
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

/*
 * What usage says of the option NAME (len bytes): 1 if a line reads
 * "  --NAME VALUE ...", 0 if "  --NAME" stands alone or before two spaces
 * (a flag), -1 if no line names it.
 */
static int usage_option(const char *usage, const char *name, size_t len)
{
	for (const char *p = usage; (p = strstr(p, "\n  --")) != NULL; p++) {
		const char *n = p + 5;
		if (strncmp(n, name, len) != 0 || (n[len] != ' ' && n[len] != '\n'))
			continue;
		return n[len] == ' ' && n[len + 1] != ' ' && n[len + 1] != '\n' ? 1 : 0;
	}
	return -1;
}

static bool config_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* One option of the file: name and value point into the file's text. */
struct config_opt {
	const char *name;
	const char *value; /* NULL for a flag */
};

/* Cut text (len bytes, NUL-terminated) into opts; EXIT_OK or EXIT_USAGE. */
static int config_parse(const char *file, char *text, size_t len, const char *usage,
			struct config_opt *opts, size_t *n_opts)
{
	size_t n = 0, lineno = 0;
	char *p = text, *end = text + len;

	if (memchr(text, '\0', len)) {
		cli_error("%s: holds a NUL byte; a config file is text", file);
		return EXIT_USAGE;
	}
	while (p < end) {
		char *eol = memchr(p, '\n', (size_t)(end - p));
		char *next = eol ? eol + 1 : end;
		if (!eol)
			eol = end;
		lineno++;
		if ((size_t)(eol - p) > CLI_CONFIG_LINE_MAX) {
			cli_error("%s:%zu: line longer than %d bytes", file, lineno,
				  CLI_CONFIG_LINE_MAX);
			return EXIT_USAGE;
		}
		*eol = '\0';
		while (eol > p && config_blank(eol[-1]))
			*--eol = '\0';
		while (config_blank(*p))
			p++;
		if (!*p || *p == '#') {
			p = next;
			continue;
		}
		for (const char *q = p; *q; q++) {
			if ((unsigned char)*q < 0x20 && *q != '\t') {
				cli_error("%s:%zu: control character in the line", file, lineno);
				return EXIT_USAGE;
			}
		}
		char *name = p, *value = NULL;
		while (*p && !config_blank(*p))
			p++;
		size_t name_len = (size_t)(p - name);
		if (*p) {
			*p++ = '\0';
			while (config_blank(*p))
				p++;
			value = p;
		}
		if (name[0] == '-') {
			cli_error("%s:%zu: '%s': write option names without their dashes", file,
				  lineno, name);
			return EXIT_USAGE;
		}
		int kind = strcmp(name, "config") ? usage_option(usage, name, name_len) : -2;
		if (kind == -2) {
			cli_error("%s:%zu: a config file cannot name another", file, lineno);
			return EXIT_USAGE;
		}
		if (kind < 0) {
			cli_error("%s:%zu: unknown option '%s' (see '%s -h')", file, lineno, name,
				  cli_progname);
			return EXIT_USAGE;
		}
		if (kind == 1 && !value) {
			cli_error("%s:%zu: '%s' needs a value", file, lineno, name);
			return EXIT_USAGE;
		}
		if (kind == 0 && value) {
			cli_error("%s:%zu: '%s' takes no value", file, lineno, name);
			return EXIT_USAGE;
		}
		if (n == CLI_CONFIG_OPTIONS_MAX) {
			cli_error("%s:%zu: more than %d options", file, lineno,
				  CLI_CONFIG_OPTIONS_MAX);
			return EXIT_USAGE;
		}
		opts[n].name = name;
		opts[n].value = value;
		n++;
		p = next;
	}
	*n_opts = n;
	return EXIT_OK;
}

int cli_config_expand(struct cli_config *c, const char *usage, int argc, char **argv)
{
	const char *file = NULL;
	int at = 0;
	struct cairn_error err;
	size_t len = 0, n = 0, names_len = 0;
	struct config_opt *opts = NULL;
	int ret;

	c->argc = argc;
	c->argv = argv;
	/* find --config, stepping over the values of the other options */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--config")) {
			if (i + 1 >= argc) {
				cli_error("--config needs a FILE");
				return EXIT_USAGE;
			}
			if (file) {
				cli_error("--config may be given once");
				return EXIT_USAGE;
			}
			file = argv[i + 1];
			at = i++;
		} else if (!strncmp(argv[i], "--", 2) &&
			   usage_option(usage, argv[i] + 2, strlen(argv[i] + 2)) == 1) {
			i++;
		}
	}
	if (!file)
		return EXIT_OK;

	cairn_error_init(&err);
	if (cli_read_file(file, CLI_CONFIG_MAX, &c->text, &len, &err) < 0)
		return cli_fail("--config", &err);
	opts = calloc(CLI_CONFIG_OPTIONS_MAX, sizeof(*opts));
	if (!opts) {
		cli_error("out of memory");
		return EXIT_FAIL;
	}
	ret = config_parse(file, c->text, len, usage, opts, &n);
	if (ret != EXIT_OK)
		goto out;

	for (size_t i = 0; i < n; i++)
		names_len += strlen(opts[i].name) + 3;
	/* argv[0], two per option at most, argv's rest without --config FILE, NULL */
	c->alloc = calloc(1 + 2 * n + (size_t)argc - 2, sizeof(char *));
	c->names = malloc(names_len ? names_len : 1);
	if (!c->alloc || !c->names) {
		cli_error("out of memory");
		ret = EXIT_FAIL;
		goto out;
	}
	int k = 0;
	char *w = c->names;
	c->alloc[k++] = argv[0];
	for (size_t i = 0; i < n; i++) {
		size_t nl = strlen(opts[i].name);
		w[0] = '-';
		w[1] = '-';
		memcpy(w + 2, opts[i].name, nl + 1);
		c->alloc[k++] = w;
		w += nl + 3;
		if (opts[i].value)
			c->alloc[k++] = (char *)opts[i].value;
	}
	for (int i = 1; i < argc; i++)
		if (i != at && i != at + 1)
			c->alloc[k++] = argv[i];
	c->alloc[k] = NULL;
	c->argc = k;
	c->argv = c->alloc;
out:
	free(opts);
	return ret;
}

void cli_config_release(struct cli_config *c)
{
	free(c->alloc);
	free(c->names);
	free(c->text);
	*c = (struct cli_config)CLI_CONFIG_INIT;
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
