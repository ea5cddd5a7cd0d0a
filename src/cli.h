/*
 * cli.h - what every subcommand of the cairn program shares: the command
 * table entry, messages, and reading whole inputs with a bound.
 */
#ifndef CAIRN_CLI_H
#define CAIRN_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"

/* Exit codes shared by all subcommands. */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,   /* the job failed (bad input, verification failed, ...) */
	EXIT_USAGE = 2,  /* wrong arguments */
};

/* struct cmd's flags: what main() does before it calls the command */
enum cmd_flags {
	CMD_CONFIG = 1 << 0, /* --config FILE is expanded (cli_config_expand) */
};

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;   /* one line for `cairn --help` */
	const char *usage;     /* full text for `cairn help NAME` and `-h` */
	unsigned flags;        /* enum cmd_flags */
};

/* Subcommands: one file each, src/cmd-NAME.c. */
int cmd_nar(int argc, char **argv);
int cmd_hash(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_narinfo(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_weather(int argc, char **argv);
int cmd_challenge(int argc, char **argv);
int cmd_fetch(int argc, char **argv);
int cmd_mirror(int argc, char **argv);
int cmd_feed(int argc, char **argv);
int cmd_sync(int argc, char **argv);
extern const char cmd_nar_usage[];
extern const char cmd_hash_usage[];
extern const char cmd_key_usage[];
extern const char cmd_narinfo_usage[];
extern const char cmd_publish_usage[];
extern const char cmd_weather_usage[];
extern const char cmd_challenge_usage[];
extern const char cmd_fetch_usage[];
extern const char cmd_mirror_usage[];
extern const char cmd_feed_usage[];
extern const char cmd_sync_usage[];

/* The running program's name for messages ("cairn nar"). */
extern const char *cli_progname;

/* "cairn nar: error: <fmt>\n" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Untrusted text (from a server, a NAR) made safe for the terminal
 * (quote.h).  cli_safe: a message or field, cut to 4 KiB; cli_safe_name: a
 * file name or symlink target, in double quotes when anything had to be
 * escaped.  Each returns one of a few static buffers, valid until the
 * fourth call after it: enough for one printf.
 */
const char *cli_safe(const char *s);
const char *cli_safe_name(const char *s, size_t len);
/* Report a library error: "cairn nar: error: <what>: <detail>". */
int cli_fail(const char *what, const struct cairn_error *err);
/* Print usage to stdout (help) and return EXIT_OK, or to stderr and EXIT_USAGE. */
int cli_usage(const char *usage, bool to_stdout);
/*
 * True if an argument before "--" is -h or --help: `cairn nar dump --help`
 * and `cairn fetch --from URL -h` show the usage rather than act.
 */
bool cli_wants_help(int argc, char **argv);

/* The closest of names[0..n) to typed, when it is close enough to be a
 * likely typo; NULL otherwise. */
const char *cli_suggest(const char *typed, const char *const *names, size_t n);

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
		 const char *usage);

/*
 * Read all of a file ("-" is stdin) into a NUL-terminated allocation of at
 * most max bytes.  Returns 0 or a negative cairn error with detail in err.
 */
int cli_read_file(const char *path, size_t max, char **out, size_t *len,
		  struct cairn_error *err);
/* Write all of buf to fd, retrying on short writes.  0 or CAIRN_EIO. */
int cli_write_all(int fd, const void *buf, size_t len);

/*
 * Print s as a JSON string on stdout; bytes that are not UTF-8 (file names
 * may hold any) become U+FFFD so that the output always parses.
 */
void cli_json_str(const char *s);

struct cairn_keyring;
/*
 * --trusted-key ARG: ARG is a key file (any format cairn_keyring_load
 * reads) or, when no such file exists, the key itself as in nix.conf
 * ("name:base64").  EXIT_OK, or EXIT_FAIL after saying why.
 */
int cli_load_keyring(struct cairn_keyring *kr, const char *arg);
/* After the last --trusted-key: warn about a key held under two names. */
void cli_keyring_check(const struct cairn_keyring *kr);

struct cairn_http_config;
/*
 * The HTTP client's timeouts, the same options in every command that asks
 * servers (fetch, challenge, weather):
 *   --connect-timeout T     to connect (default 5s)
 *   --first-byte-timeout T  from the request to the status line (default 5s)
 *   --stall-timeout T       without a byte (default 30s)
 *   --min-rate SIZE         slower than this over the window is slow (default 1K)
 *   --rate-window T         (default 10s)
 * Durations as cli_parse_ms; SIZE as cli_parse_size (0 turns the rate off).
 * Returns 1 when argv[*i] was one (its value consumed), 0 when not, or
 * EXIT_USAGE after saying what is wrong.
 */
int cli_http_option(int argc, char **argv, int *i, struct cairn_http_config *hc);
/* Their lines for a usage text. */
#define CLI_HTTP_OPTIONS_USAGE                                                                     \
	"  --connect-timeout T   to connect to a server (default 5s)\n"                             \
	"  --first-byte-timeout T  from a request to its status line; a server this\n"           \
	"                        silent is down for the run (default 5s)\n"                          \
	"  --stall-timeout T     with no byte received (default 30s)\n"                              \
	"  --min-rate SIZE       a transfer slower than this over --rate-window is\n"               \
	"                        ended as too slow (default 1K; 0: off)\n"                           \
	"  --rate-window T       (default 10s)\n"

struct cairn_survey;
/* Store paths read from stdin by `weather -` and `challenge -`. */
#define CLI_STDIN_PATHS_MAX ((size_t)1 << 30)
/*
 * Add the whitespace-separated store paths on stdin to a survey.  Returns
 * EXIT_OK, or EXIT_FAIL after saying which path was refused and why.
 */
int cli_survey_add_stdin(struct cairn_survey *s);

/*
 * Option values.  A size: N with an optional K, M, G or T (powers of 1024).
 * A duration: N with ms, s (the default), m, h or d, at most ten years;
 * cli_parse_seconds also refuses what is not whole seconds.  0 or -1.
 */
int cli_parse_size(const char *s, uint64_t *out);
int cli_parse_ms(const char *s, uint64_t *out);
int cli_parse_seconds(const char *s, unsigned *out);

/*
 * --config FILE, for the servers, so that a unit's command line stays
 * short.  One option a line, its long name without the dashes, then its
 * value (the rest of the line, spaces trimmed), or the name alone for a
 * flag; lines starting with '#' and blank lines are skipped:
 *
 *     # /etc/cairn/publish.conf
 *     listen 127.0.0.1:8080
 *     cache /var/cache/cairn/publish
 *
 * The names, and which ones take a value, are read from the command's
 * usage text (its lines "  --name VALUE  ..." and "  --flag  ..."), so the
 * file accepts exactly the options -h lists.  Bounded by the constants
 * below, since the file may come from anyone who can edit the unit.
 */
#define CLI_CONFIG_MAX ((size_t)64 << 10)   /* bytes in the file */
#define CLI_CONFIG_LINE_MAX 4096            /* bytes in one line */
#define CLI_CONFIG_OPTIONS_MAX 256          /* options in the file */

struct cli_config {
	int argc;
	char **argv;   /* the expanded command line, or the one given */
	char *text;    /* the file; values point into it */
	char *names;   /* "--name" strings */
	char **alloc;  /* argv when it was allocated here */
};
#define CLI_CONFIG_INIT { 0, NULL, NULL, NULL, NULL }

/*
 * If argv (argv[0] is the command) holds --config FILE, read FILE and
 * set c->argv to argv[0], FILE's options, then argv's other arguments:
 * options given on the command line come last, so they override or add
 * to the file's.  Without --config, c->argv is argv.  EXIT_OK, or
 * EXIT_USAGE / EXIT_FAIL after saying why, naming the file and the line.
 */
int cli_config_expand(struct cli_config *c, const char *usage, int argc, char **argv);
void cli_config_release(struct cli_config *c);

struct cairn_httpd;
/*
 * Servers: SIGTERM and SIGINT stop h gracefully, SIGPIPE is ignored (h2o
 * writes with writev).  Call with NULL before h goes away.
 */
void cli_serve_signals(struct cairn_httpd *h);

#endif
