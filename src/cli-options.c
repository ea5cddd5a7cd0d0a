/*
 * cli-options.c - the one option parser of the cairn program, driven by
 * the tables of cli-options.h; --help and --config FILE read the same
 * tables.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/http.h"
#include "cli.h"
#include "cairn/banned.h"

/* An option found in a table, with the offset of its table's base. */
struct found {
	const struct cli_option *o;
	size_t base_off;
};

/* Names offered by "did you mean": enough for any command's table. */
#define NAMES_MAX 128

static bool takes_value(const struct cli_option *o)
{
	return o->kind != CLI_OPT_FLAG && !(o->kind == CLI_OPT_CALLBACK && (o->flags & CLI_OPT_NOARG));
}

static bool find_long(const struct cli_option *opts, const char *name, size_t len, size_t off,
		      struct found *f)
{
	for (const struct cli_option *o = opts; o->kind != CLI_OPT_END; o++) {
		if (o->kind == CLI_OPT_TABLE) {
			if (find_long(o->table, name, len, off + o->offset, f))
				return true;
		} else if (o->long_name && !strncmp(o->long_name, name, len) &&
			   !o->long_name[len]) {
			f->o = o;
			f->base_off = off;
			return true;
		}
	}
	return false;
}

static bool find_short(const struct cli_option *opts, char c, size_t off, struct found *f)
{
	for (const struct cli_option *o = opts; o->kind != CLI_OPT_END; o++) {
		if (o->kind == CLI_OPT_TABLE) {
			if (find_short(o->table, c, off + o->offset, f))
				return true;
		} else if (o->short_name && o->short_name == c) {
			f->o = o;
			f->base_off = off;
			return true;
		}
	}
	return false;
}

static void collect_names(const struct cli_option *opts, const char **names, size_t *n)
{
	for (const struct cli_option *o = opts; o->kind != CLI_OPT_END && *n < NAMES_MAX; o++) {
		if (o->kind == CLI_OPT_TABLE)
			collect_names(o->table, names, n);
		else if (o->long_name && !(o->flags & CLI_OPT_HIDDEN))
			names[(*n)++] = o->long_name;
	}
}

static int unknown_option(const struct cli_spec *spec, const struct cli_option *opts,
			  const char *arg)
{
	const char *names[NAMES_MAX];
	size_t n = 0;
	collect_names(opts, names, &n);
	const char *typed = arg + 2;
	size_t len = strcspn(typed, "=");
	char buf[72];
	snprintf(buf, sizeof(buf), "%.*s", (int)(len < 64 ? len : 64), typed);
	const char *s = arg[1] == '-' ? cli_suggest(buf, names, n) : NULL;
	if (s)
		cli_error("unknown option '%.*s'; did you mean '--%s'?", (int)(len + 2), arg, s);
	else
		cli_error("unknown option '%s'", arg);
	return cli_usage(spec, false);
}

/* "1d", "10s", "500ms": a bound in a message. */
static void format_ms(uint64_t ms, char *out, size_t cap)
{
	static const struct {
		uint64_t ms;
		const char *unit;
	} units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (ms && ms % units[i].ms == 0) {
			snprintf(out, cap, "%llu%s", (unsigned long long)(ms / units[i].ms),
				 units[i].unit);
			return;
		}
	snprintf(out, cap, "%llums", (unsigned long long)ms);
}

static void check_size(const struct cli_option *o, size_t want)
{
	if (o->size != want)
		BUG("option --%s: its target has %zu bytes, its kind wants %zu", o->long_name,
		    o->size, want);
}

static int apply_int(const struct cli_option *o, void *t, const char *v)
{
	char *end;
	long long n = strtoll(v, &end, 10);
	check_size(o, sizeof(long));
	/* a digit first: strtoll skips spaces and takes a '+' */
	if ((*v < '0' || *v > '9') && !(*v == '-' && v[1] >= '0' && v[1] <= '9'))
		end = (char *)v;
	if (end == v || *end || n < o->min || n > o->max) {
		cli_error("--%s: '%s' is not a number from %lld to %lld", o->long_name, v, o->min,
			  o->max);
		return EXIT_USAGE;
	}
	*(long *)t = (long)n;
	return EXIT_OK;
}

static int apply_duration(const struct cli_option *o, void *t, const char *v)
{
	uint64_t ms;
	check_size(o, sizeof(uint64_t));
	if (cli_parse_ms(v, &ms) < 0 || ms < (uint64_t)o->min ||
	    (o->max && ms > (uint64_t)o->max) || ((o->flags & CLI_OPT_SECONDS) && ms % 1000)) {
		char lo[32], hi[32];
		format_ms((uint64_t)o->min, lo, sizeof(lo));
		format_ms((uint64_t)o->max, hi, sizeof(hi));
		if (o->max)
			cli_error("--%s: '%s' is not a duration from %s to %s (ms, s, m, h, d)",
				  o->long_name, v, lo, hi);
		else
			cli_error("--%s: '%s' is not a duration%s (ms, s, m, h, d)", o->long_name,
				  v, o->flags & CLI_OPT_SECONDS ? " in whole seconds" : "");
		return EXIT_USAGE;
	}
	*(uint64_t *)t = ms;
	return EXIT_OK;
}

static int apply_choice(const struct cli_option *o, void *t, const char *v)
{
	char names[256];
	size_t len = 0;
	check_size(o, sizeof(int));
	for (const struct cli_choice *c = o->choices; c->name; c++) {
		if (!strcmp(c->name, v)) {
			*(int *)t = c->value;
			return EXIT_OK;
		}
		int w = snprintf(names + len, sizeof(names) - len, "%s%s", len ? ", " : "",
				 c->name);
		if (w > 0 && (size_t)w < sizeof(names) - len)
			len += (size_t)w;
	}
	cli_error("--%s takes %s, not '%s'", o->long_name, names, v);
	return EXIT_USAGE;
}

/* Put v (NULL for an option without a value) where o says, in base. */
static int apply(const struct cli_option *o, char *base, const char *v)
{
	void *t = base + o->offset;
	switch (o->kind) {
	case CLI_OPT_FLAG:
		check_size(o, sizeof(bool));
		*(bool *)t = true;
		return EXIT_OK;
	case CLI_OPT_STRING:
		check_size(o, sizeof(const char *));
		*(const char **)t = v;
		return EXIT_OK;
	case CLI_OPT_LIST: {
		struct cli_list *l = t;
		check_size(o, sizeof(*l));
		if (o->max && l->n >= (size_t)o->max) {
			cli_error("at most %lld --%s", o->max, o->long_name);
			return EXIT_USAGE;
		}
		const char **nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
		if (!nv) {
			cli_error("out of memory");
			return EXIT_FAIL;
		}
		l->v = nv;
		l->v[l->n++] = v;
		return EXIT_OK;
	}
	case CLI_OPT_INT:
		return apply_int(o, t, v);
	case CLI_OPT_SIZE: {
		uint64_t n;
		check_size(o, sizeof(uint64_t));
		if (cli_parse_size(v, &n) < 0 || (o->max && n > (uint64_t)o->max)) {
			if (o->max)
				cli_error("--%s: '%s' is not a size up to %lld (K, M, G, T)",
					  o->long_name, v, o->max);
			else
				cli_error("--%s: '%s' is not a size (K, M, G, T)", o->long_name, v);
			return EXIT_USAGE;
		}
		*(uint64_t *)t = n;
		return EXIT_OK;
	}
	case CLI_OPT_DURATION:
		return apply_duration(o, t, v);
	case CLI_OPT_CHOICE:
		return apply_choice(o, t, v);
	case CLI_OPT_CALLBACK:
		return o->cb(t, o, v);
	default:
		BUG("option --%s: kind %d is not applied", o->long_name ? o->long_name : "",
		    (int)o->kind);
	}
}

/* ---- --config FILE ----------------------------------------------------- */

static bool config_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* One option of the file: name and value point into the file's text. */
struct config_opt {
	const char *name;
	const char *value; /* NULL for a flag */
	struct found f;
};

/* Cut one line (NUL-terminated, spaces trimmed) into *opt; EXIT_OK, or
 * EXIT_USAGE after naming the file and the line. */
static int config_line(const char *file, size_t lineno, char *p, const struct cli_option *opts,
		       struct config_opt *opt)
{
	for (const char *q = p; *q; q++) {
		if ((unsigned char)*q < 0x20 && *q != '\t') {
			cli_error("%s:%zu: control character in the line", file, lineno);
			return EXIT_USAGE;
		}
	}
	char *name = p, *value = NULL;
	while (*p && !config_blank(*p))
		p++;
	if (*p) {
		*p++ = '\0';
		while (config_blank(*p))
			p++;
		value = p;
	}
	if (name[0] == '-') {
		cli_error("%s:%zu: '%s': write option names without their dashes", file, lineno,
			  name);
		return EXIT_USAGE;
	}
	if (!strcmp(name, "config")) {
		cli_error("%s:%zu: a config file cannot name another", file, lineno);
		return EXIT_USAGE;
	}
	if (!find_long(opts, name, strlen(name), 0, &opt->f)) {
		cli_error("%s:%zu: unknown option '%s' (see '%s -h')", file, lineno, name,
			  cli_progname);
		return EXIT_USAGE;
	}
	if (takes_value(opt->f.o) && !value) {
		cli_error("%s:%zu: '%s' needs a value", file, lineno, name);
		return EXIT_USAGE;
	}
	if (!takes_value(opt->f.o) && value) {
		cli_error("%s:%zu: '%s' takes no value", file, lineno, name);
		return EXIT_USAGE;
	}
	opt->name = name;
	opt->value = value;
	return EXIT_OK;
}

/* Cut text (len bytes, NUL-terminated) into opts; EXIT_OK or EXIT_USAGE.
 * The whole file is checked before any of it is applied. */
static int config_parse(const char *file, char *text, size_t len, const struct cli_option *table,
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
		if (*p && *p != '#') {
			if (n == CLI_CONFIG_OPTIONS_MAX) {
				cli_error("%s:%zu: more than %d options", file, lineno,
					  CLI_CONFIG_OPTIONS_MAX);
				return EXIT_USAGE;
			}
			int ret = config_line(file, lineno, p, table, &opts[n]);
			if (ret != EXIT_OK)
				return ret;
			n++;
		}
		p = next;
	}
	*n_opts = n;
	return EXIT_OK;
}

/* The table's OPT_CONFIG entry, or NULL. */
static const struct cli_option *config_entry(const struct cli_option *opts)
{
	for (const struct cli_option *o = opts; o->kind != CLI_OPT_END; o++)
		if (o->kind == CLI_OPT_CONFIG)
			return o;
	return NULL;
}

/* argv's --config FILE (NULL when none), stepping over other options'
 * values; EXIT_OK or EXIT_USAGE. */
static int config_find(const struct cli_option *opts, int argc, char **argv, const char **file)
{
	*file = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		struct found f;
		if (!strcmp(a, "--"))
			break;
		if (strncmp(a, "--", 2))
			continue;
		if (!strcmp(a, "--config") || !strncmp(a, "--config=", 9)) {
			if (!a[8] && i + 1 >= argc) {
				cli_error("--config needs a FILE");
				return EXIT_USAGE;
			}
			if (*file) {
				cli_error("--config may be given once");
				return EXIT_USAGE;
			}
			*file = a[8] ? a + 9 : argv[++i];
		} else if (!strchr(a, '=') && find_long(opts, a + 2, strlen(a + 2), 0, &f) &&
			   takes_value(f.o)) {
			i++;
		}
	}
	return EXIT_OK;
}

static int config_apply(const struct cli_option *opts, char *base, int argc, char **argv)
{
	const struct cli_option *co = config_entry(opts);
	const char *file;
	struct cairn_error err;
	struct config_opt *cfg = NULL;
	char *text = NULL;
	size_t len = 0, n = 0;
	int ret;

	if (!co)
		return EXIT_OK;
	if ((ret = config_find(opts, argc, argv, &file)) != EXIT_OK || !file)
		return ret;
	cairn_error_init(&err);
	if (cli_read_file(file, CLI_CONFIG_MAX, &text, &len, &err) < 0)
		return cli_fail("--config", &err);
	/* the values point into the text: it lives as long as base */
	check_size(co, sizeof(char *));
	*(char **)(base + co->offset) = text;
	if (!(cfg = calloc(CLI_CONFIG_OPTIONS_MAX, sizeof(*cfg)))) {
		cli_error("out of memory");
		return EXIT_FAIL;
	}
	ret = config_parse(file, text, len, opts, cfg, &n);
	for (size_t i = 0; i < n && ret == EXIT_OK; i++)
		ret = apply(cfg[i].f.o, base + cfg[i].f.base_off, cfg[i].value);
	free(cfg);
	return ret;
}

/* ---- the command line -------------------------------------------------- */

/* argv[*i], an option: apply it, consuming its value. */
static int parse_one(const struct cli_spec *spec, const struct cli_option *opts, char *base,
		     int argc, char **argv, int *i)
{
	const char *a = argv[*i], *v = NULL;
	struct found f;
	char name[72];
	if (a[1] == '-') {
		size_t len = strcspn(a + 2, "=");
		if (!find_long(opts, a + 2, len, 0, &f))
			return unknown_option(spec, opts, a);
		if (a[2 + len] == '=')
			v = a + 3 + len;
		snprintf(name, sizeof(name), "--%s", f.o->long_name);
	} else {
		if (!find_short(opts, a[1], 0, &f))
			return unknown_option(spec, opts, a);
		if (a[2] && takes_value(f.o))
			v = a + 2;
		else if (a[2]) {
			cli_error("unknown option '%s'", a);
			return cli_usage(spec, false);
		}
		snprintf(name, sizeof(name), "-%c", a[1]);
	}
	if (f.o->kind == CLI_OPT_CONFIG) {
		if (!v)
			(*i)++; /* FILE was read before the rest by config_apply */
		return EXIT_OK;
	}
	if (!takes_value(f.o)) {
		if (v) {
			cli_error("%s takes no value", name);
			return EXIT_USAGE;
		}
	} else if (!v) {
		if (*i + 1 >= argc) {
			cli_error("%s needs a value (%s)", name, f.o->argh ? f.o->argh : "");
			return EXIT_USAGE;
		}
		v = argv[++*i];
	}
	return apply(f.o, base + f.base_off, v);
}

int cli_parse_options(const struct cli_spec *spec, const struct cli_option *opts, void *base,
		      int argc, char **argv, int *nargs)
{
	int ret, k = 0;
	if (cli_wants_help(argc, argv))
		return cli_usage(spec, true);
	if ((ret = config_apply(opts, base, argc, argv)) != EXIT_OK)
		return ret;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--")) {
			while (++i < argc)
				argv[k++] = argv[i];
			break;
		}
		if (a[0] != '-' || !a[1]) {
			argv[k++] = argv[i];
			continue;
		}
		if ((ret = parse_one(spec, opts, base, argc, argv, &i)) != EXIT_OK)
			return ret;
	}
	*nargs = k;
	return CLI_GO_ON;
}

void cli_options_release(const struct cli_option *opts, void *base)
{
	for (const struct cli_option *o = opts; o->kind != CLI_OPT_END; o++) {
		char *t = (char *)base + o->offset;
		if (o->kind == CLI_OPT_TABLE) {
			cli_options_release(o->table, t);
		} else if (o->kind == CLI_OPT_LIST) {
			struct cli_list *l = (struct cli_list *)t;
			free(l->v);
			l->v = NULL;
			l->n = 0;
		} else if (o->kind == CLI_OPT_CONFIG) {
			free(*(char **)t);
			*(char **)t = NULL;
		}
	}
}

/* ---- help ------------------------------------------------------------- */

#define HELP_COLUMN 24

static void print_options(FILE *out, const struct cli_option *opts)
{
	for (const struct cli_option *o = opts; o->kind != CLI_OPT_END; o++) {
		if (o->kind == CLI_OPT_TABLE) {
			print_options(out, o->table);
			continue;
		}
		if (o->kind == CLI_OPT_GROUP) {
			fprintf(out, "%s\n", o->help ? o->help : "");
			continue;
		}
		if (o->flags & CLI_OPT_HIDDEN)
			continue;
		char left[128];
		int n = snprintf(left, sizeof(left), "  %s%.1s%s--%s%s%s", o->short_name ? "-" : "",
				 o->short_name ? &o->short_name : "", o->short_name ? ", " : "",
				 o->long_name, o->argh ? " " : "", o->argh ? o->argh : "");
		const char *h = o->help ? o->help : "";
		if (n + 2 > HELP_COLUMN)
			fprintf(out, "%s\n%*s", left, HELP_COLUMN, "");
		else
			fprintf(out, "%-*s", HELP_COLUMN, left);
		for (const char *nl; (nl = strchr(h, '\n')); h = nl + 1)
			fprintf(out, "%.*s\n%*s", (int)(nl - h), h, HELP_COLUMN, "");
		fprintf(out, "%s\n", h);
	}
}

int cli_usage(const struct cli_spec *spec, bool to_stdout)
{
	FILE *out = to_stdout ? stdout : stderr;
	fputs(spec->usage, out);
	if (spec->options)
		print_options(out, spec->options);
	for (const struct cli_help_section *s = spec->sections; s && s->options; s++) {
		fprintf(out, "\n%s\n", s->heading);
		print_options(out, s->options);
	}
	if (spec->tail)
		fputs(spec->tail, out);
	return to_stdout ? EXIT_OK : EXIT_USAGE;
}

int cli_dispatch(int argc, char **argv, const struct cli_action *acts, size_t n,
		 const struct cli_spec *spec)
{
	if (cli_wants_help(argc, argv))
		return cli_usage(spec, true);
	if (argc < 2) {
		cli_error("missing action");
		return cli_usage(spec, false);
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
	return cli_usage(spec, false);
}

/* ---- options shared by commands ---------------------------------------- */

int cli_opt_trusted_key(void *target, const struct cli_option *opt, const char *value)
{
	struct cli_keys *k = target;
	(void)opt;
	int ret = cli_load_keyring(&k->kr, value);
	if (ret == EXIT_OK)
		k->n_files++;
	return ret;
}

static int http_duration(void *target, const struct cli_option *opt, const char *v)
{
	struct cairn_http_config *hc = target;
	uint64_t n;
	if (cli_parse_ms(v, &n) < 0 || n == 0 || n > (uint64_t)CAIRN_HTTP_TIMEOUT_MAX_MS) {
		cli_error("--%s: '%s' is not a duration (ms, s, m, h) from 1ms to 1d",
			  opt->long_name, v);
		return EXIT_USAGE;
	}
	/* the stall and rate windows are whole seconds, at least one */
	long s = (long)((n + 999) / 1000);
	switch (opt->long_name[0]) { /* connect, first-byte, stall, rate-window */
	case 'c': hc->connect_timeout_ms = (long)n; break;
	case 'f': hc->first_byte_timeout_ms = (long)n; break;
	case 's': hc->stall_timeout_s = s; break;
	default:
		if (s > CAIRN_HTTP_RATE_WINDOW_MAX_S) {
			cli_error("--%s: at most %d s", opt->long_name, CAIRN_HTTP_RATE_WINDOW_MAX_S);
			return EXIT_USAGE;
		}
		hc->min_rate_window_s = s;
		break;
	}
	return EXIT_OK;
}

static int http_min_rate(void *target, const struct cli_option *opt, const char *v)
{
	struct cairn_http_config *hc = target;
	uint64_t n;
	if (cli_parse_size(v, &n) < 0 || n > CAIRN_HTTP_MIN_RATE_MAX) {
		cli_error("--%s: '%s' is not a size up to %ld", opt->long_name, v,
			  CAIRN_HTTP_MIN_RATE_MAX);
		return EXIT_USAGE;
	}
	hc->min_rate = (long)n;
	return EXIT_OK;
}

#define HTTP_OPT(l, fn, a, h)                                                                      \
	{.kind = CLI_OPT_CALLBACK, .long_name = (l), .argh = (a), .cb = (fn), .help = (h)}
const struct cli_option cli_http_options[] = {
	HTTP_OPT("connect-timeout", http_duration, "T", "to connect to a server (default 5s)"),
	HTTP_OPT("first-byte-timeout", http_duration, "T",
		 "from a request to its status line; a server this\n"
		 "silent is down for the run (default 5s)"),
	HTTP_OPT("stall-timeout", http_duration, "T", "with no byte received (default 30s)"),
	HTTP_OPT("min-rate", http_min_rate, "SIZE",
		 "a transfer slower than this over --rate-window is\n"
		 "ended as too slow (default 1K; 0: off)"),
	HTTP_OPT("rate-window", http_duration, "T", "(default 10s)"),
	OPT_END(),
};
