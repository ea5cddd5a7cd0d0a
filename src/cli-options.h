/*
 * cli-options.h - declarative option tables (git's parse-options is the
 * model).  A command describes each option once, in a table: its names,
 * what kind of value it takes, where the value goes and its help line.  One
 * parser reads the command line (and --config files) from the table, and
 * --help is printed from it, so that what is parsed, what -h lists, what a
 * config file accepts and what tests/integration/test-cli-docs.sh checks
 * against docs/cairn-NAME.md cannot disagree.
 *
 * A table's targets are offsets into the command's own options struct
 * (offsetof), so tables are static const data: help can be printed and
 * tables walked without running the command.
 *
 *     struct opts { bool json; long jobs; const char *db; };
 *     static const struct cli_option options[] = {
 *         OPT_FLAG(0, "json", struct opts, json, "print JSON"),
 *         OPT_INT(0, "jobs", struct opts, jobs, "N", 1, 64, "in flight (default 8)"),
 *         OPT_END(),
 *     };
 *
 * Command lines: --name VALUE, --name=VALUE, -x VALUE, -xVALUE; options
 * and operands mix in any order; "--" ends the options; "-" is an operand.
 */
#ifndef CAIRN_CLI_OPTIONS_H
#define CAIRN_CLI_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/keys.h"

enum cli_opt_kind {
	CLI_OPT_END = 0,
	CLI_OPT_GROUP,	  /* a heading in the help; help NULL: a blank line */
	CLI_OPT_FLAG,	  /* bool: set when given */
	CLI_OPT_STRING,	  /* const char *: the last one given */
	CLI_OPT_LIST,	  /* struct cli_list: every one given, at most max (0: any) */
	CLI_OPT_INT,	  /* long: from min to max */
	CLI_OPT_SIZE,	  /* uint64_t: cli_parse_size, at most max (0: any) */
	CLI_OPT_DURATION, /* uint64_t milliseconds: cli_parse_ms, from min to max */
	CLI_OPT_CHOICE,	  /* int: the value of the name given among choices */
	CLI_OPT_CALLBACK, /* cb(target, opt, value) */
	CLI_OPT_TABLE,	  /* another table's options, their offsets from offset */
	CLI_OPT_CONFIG,	  /* --config FILE: FILE's options come first */
};

enum cli_opt_flags {
	CLI_OPT_HIDDEN = 1 << 0,  /* parsed, not in the help: an alias */
	CLI_OPT_NOARG = 1 << 1,	  /* CLI_OPT_CALLBACK: takes no value (cb gets NULL) */
	CLI_OPT_SECONDS = 1 << 2, /* CLI_OPT_DURATION: whole seconds only */
};

struct cli_option;
/* EXIT_OK to go on, or the exit status after saying what is wrong. */
typedef int (*cli_opt_cb)(void *target, const struct cli_option *opt, const char *value);

struct cli_choice {
	const char *name;
	int value;
};

struct cli_option {
	enum cli_opt_kind kind;
	char short_name;	 /* 0: none */
	const char *long_name;	 /* without the dashes */
	size_t offset;		 /* of the target in the command's struct */
	size_t size;		 /* of the target, checked against the kind */
	const char *argh;	 /* the value's name in the help: "FILE" */
	const char *help;	 /* lines after the first are indented */
	long long min, max;	 /* INT, SIZE, DURATION, LIST */
	cli_opt_cb cb;		 /* CALLBACK */
	const struct cli_option *table; /* TABLE */
	const struct cli_choice *choices; /* CHOICE, ending with a NULL name */
	unsigned flags;		 /* enum cli_opt_flags */
};

/* A repeatable option's values, in order; free with cli_options_release. */
struct cli_list {
	const char **v;
	size_t n;
};

/* --trusted-key's target: the keys of every file given. */
struct cli_keys {
	struct cairn_keyring kr;
	size_t n_files;
};
int cli_opt_trusted_key(void *target, const struct cli_option *opt, const char *value);

#define CLI_FIELD_SIZE(T, f) sizeof(((T *)0)->f)
#define OPT_END() {.kind = CLI_OPT_END}
#define OPT_GROUP(h) {.kind = CLI_OPT_GROUP, .help = (h)}
#define OPT_FLAG(s, l, T, f, h)                                                                    \
	{.kind = CLI_OPT_FLAG, .short_name = (s), .long_name = (l), .offset = offsetof(T, f),      \
	 .size = CLI_FIELD_SIZE(T, f), .help = (h)}
#define OPT_STRING(s, l, T, f, a, h)                                                               \
	{.kind = CLI_OPT_STRING, .short_name = (s), .long_name = (l), .offset = offsetof(T, f),    \
	 .size = CLI_FIELD_SIZE(T, f), .argh = (a), .help = (h)}
#define OPT_LIST(s, l, T, f, a, mx, h)                                                             \
	{.kind = CLI_OPT_LIST, .short_name = (s), .long_name = (l), .offset = offsetof(T, f),      \
	 .size = CLI_FIELD_SIZE(T, f), .argh = (a), .max = (mx), .help = (h)}
#define OPT_INT(s, l, T, f, a, mn, mx, h)                                                          \
	{.kind = CLI_OPT_INT, .short_name = (s), .long_name = (l), .offset = offsetof(T, f),       \
	 .size = CLI_FIELD_SIZE(T, f), .argh = (a), .min = (mn), .max = (mx), .help = (h)}
#define OPT_SIZE(l, T, f, a, mx, h)                                                                \
	{.kind = CLI_OPT_SIZE, .long_name = (l), .offset = offsetof(T, f),                         \
	 .size = CLI_FIELD_SIZE(T, f), .argh = (a), .max = (mx), .help = (h)}
#define OPT_DURATION(l, T, f, a, mn, mx, fl, h)                                                    \
	{.kind = CLI_OPT_DURATION, .long_name = (l), .offset = offsetof(T, f),                     \
	 .size = CLI_FIELD_SIZE(T, f), .argh = (a), .min = (mn), .max = (mx), .flags = (fl),      \
	 .help = (h)}
#define OPT_CHOICE(l, T, f, a, ch, h)                                                              \
	{.kind = CLI_OPT_CHOICE, .long_name = (l), .offset = offsetof(T, f),                       \
	 .size = CLI_FIELD_SIZE(T, f), .argh = (a), .choices = (ch), .help = (h)}
#define OPT_CALLBACK(s, l, T, f, a, fn, fl, h)                                                     \
	{.kind = CLI_OPT_CALLBACK, .short_name = (s), .long_name = (l), .offset = offsetof(T, f), \
	 .argh = (a), .cb = (fn), .flags = (fl), .help = (h)}
#define OPT_TRUSTED_KEY(T, f, h)                                                                   \
	{.kind = CLI_OPT_CALLBACK, .long_name = "trusted-key", .offset = offsetof(T, f),           \
	 .size = CLI_FIELD_SIZE(T, f), .argh = "FILE", .cb = cli_opt_trusted_key, .help = (h)}
#define OPT_TABLE(T, f, t)                                                                         \
	{.kind = CLI_OPT_TABLE, .offset = offsetof(T, f), .size = CLI_FIELD_SIZE(T, f), .table = (t)}
/* f: a char * in T that keeps the file's text (the values point into it) */
#define OPT_CONFIG(T, f, h)                                                                        \
	{.kind = CLI_OPT_CONFIG, .long_name = "config", .offset = offsetof(T, f),                 \
	 .size = CLI_FIELD_SIZE(T, f), .argh = "FILE", .help = (h)}

/* What --help prints: usage lines and a description, the options, a tail. */
struct cli_help_section {
	const char *heading; /* e.g. "options of ls:" */
	const struct cli_option *options;
};
struct cli_spec {
	const char *usage;		 /* "usage: cairn NAME ...\n\n<description>\n" */
	const struct cli_option *options; /* the command's own, or NULL */
	const struct cli_help_section *sections; /* the actions', NULL-ended */
	const char *tail;		 /* after the options (exit status...) */
};

/* cli_parse_options's return when the command should go on. */
#define CLI_GO_ON (-1)

/*
 * Parse argv (argv[0] is the command's or action's name) by opts into the
 * struct at base.  -h or --help anywhere before "--" prints spec's help
 * on stdout and returns EXIT_OK.  A table with OPT_CONFIG reads
 * --config FILE first: FILE's options, then the command line's, so those
 * given on the command line override or add to the file's.  The operands
 * are moved to argv[0..*nargs).  Returns CLI_GO_ON, or the exit status
 * (EXIT_USAGE, EXIT_FAIL) after saying what is wrong, naming the option,
 * or the file and line.
 */
int cli_parse_options(const struct cli_spec *spec, const struct cli_option *opts, void *base,
		      int argc, char **argv, int *nargs);
/* Free what parsing allocated in base: the lists, the config file's text. */
void cli_options_release(const struct cli_option *opts, void *base);

/* Print spec's help on stdout (EXIT_OK) or stderr (EXIT_USAGE). */
int cli_usage(const struct cli_spec *spec, bool to_stdout);

/* A command's actions (`cairn nar dump`, `cairn key generate`...). */
struct cli_action {
	const char *name;
	int (*fn)(int argc, char **argv); /* argv[0] is the action's name */
};
/*
 * Run the action named by argv[1]: help for -h/--help anywhere, a usage
 * error naming the closest action for a typo.
 */
int cli_dispatch(int argc, char **argv, const struct cli_action *acts, size_t n,
		 const struct cli_spec *spec);

/*
 * --config FILE: one option a line, its long name without the dashes, then
 * its value (the rest of the line, spaces trimmed), or the name alone for
 * a flag; lines starting with '#' and blank lines are skipped:
 *
 *     # /etc/cairn/publish.conf
 *     listen 127.0.0.1:8080
 *     cache /var/cache/cairn/publish
 *
 * It accepts exactly the options of the command's table.  Bounded by the
 * constants below, since the file may come from anyone who can edit the
 * unit.
 */
#define CLI_CONFIG_MAX ((size_t)64 << 10) /* bytes in the file */
#define CLI_CONFIG_LINE_MAX 4096	  /* bytes in one line */
#define CLI_CONFIG_OPTIONS_MAX 256	  /* options in the file */

/*
 * The HTTP client's timeouts, the same options in every command that asks
 * servers (fetch, challenge, weather): OPT_TABLE(T, http, cli_http_options)
 * with a struct cairn_http_config http in T.
 */
extern const struct cli_option cli_http_options[];

#endif
