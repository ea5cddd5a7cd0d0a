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
#include "cairn/keys.h"
#include "cli-options.h"

/* Exit codes shared by all subcommands. */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,   /* the job failed (bad input, verification failed, ...) */
	EXIT_USAGE = 2,  /* wrong arguments */
};

/*
 * A subcommand.  Its help comes from its option table (cli_parse_options),
 * so `cairn help NAME` runs NAME with --help.
 */
struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;   /* one line for `cairn --help` */
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
int cmd_ipfs(int argc, char **argv);
int cmd_monitor(int argc, char **argv);

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
/*
 * True if an argument before "--" is -h or --help: `cairn nar dump --help`
 * and `cairn fetch --from URL -h` show the usage rather than act.
 */
bool cli_wants_help(int argc, char **argv);

/* The closest of names[0..n) to typed, when it is close enough to be a
 * likely typo; NULL otherwise. */
const char *cli_suggest(const char *typed, const char *const *names, size_t n);

/*
 * Read all of a file ("-" is stdin) into a NUL-terminated allocation of at
 * most max bytes.  Returns 0 or a negative cairn error with detail in err.
 */
/* Read path ("-": stdin) in chunks of up to 1 MiB, each handed to fn;
 * fn's non-zero return stops it. */
int cli_read_stream(const char *path, int (*fn)(void *ctx, const void *data, size_t len,
					  struct cairn_error *err),
		    void *ctx, struct cairn_error *err);
int cli_read_file(const char *path, size_t max, char **out, size_t *len,
		  struct cairn_error *err);
/* Write all of buf to fd, retrying on short writes.  0 or CAIRN_EIO. */
int cli_write_all(int fd, const void *buf, size_t len);

/*
 * Print s as a JSON string on stdout; bytes that are not UTF-8 (file names
 * may hold any) become U+FFFD so that the output always parses.
 */
void cli_json_str(const char *s);

/*
 * --trusted-key ARG: ARG is a key file (any format cairn_keyring_load
 * reads) or, when no such file exists, the key itself as in nix.conf
 * ("name:base64").  EXIT_OK, or EXIT_FAIL after saying why.
 */
int cli_load_keyring(struct cairn_keyring *kr, const char *arg);
/* After the last --trusted-key: warn about a key held under two names. */
void cli_keyring_check(const struct cairn_keyring *kr);

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

struct cairn_httpd;
/*
 * Servers: SIGTERM and SIGINT stop h gracefully, SIGPIPE is ignored (h2o
 * writes with writev).  Call with NULL before h goes away.
 */
void cli_serve_signals(struct cairn_httpd *h);

#endif
