/*
 * cmd-nar.c - `cairn nar`: dump, restore, hash, ls, cat and check NAR
 * archives.  A thin layer: everything is in libcairn's nar module.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn/hash.h"
#include "cairn/nar.h"
#include "cli.h"
#include "cairn/banned.h"

static const char nar_usage[] =
    "usage: cairn nar dump PATH\n"
    "       cairn nar restore DIR < NAR\n"
    "       cairn nar hash [--base16 | --base64 | --sri] PATH\n"
    "       cairn nar ls [-R] [NAR]\n"
    "       cairn nar cat NAR FILE\n"
    "       cairn nar check [--base16 | --base64 | --sri] [NAR]\n"
    "\n"
    "Write, read and check Nix archives (NARs), byte for byte as Nix does.\n"
    "\n"
    "  dump PATH      write the NAR of PATH (file, symlink or directory) to stdout,\n"
    "                 as `nix-store --dump PATH`\n"
    "  restore DIR    read a NAR on stdin and create DIR from it, as\n"
    "                 `nix-store --restore DIR`; DIR must not exist; a bad archive\n"
    "                 leaves nothing behind\n"
    "  hash PATH      print the SHA-256 of PATH's NAR (sha256:<nix32>) and, on a\n"
    "                 second line, the NAR's size in bytes\n"
    "  ls [NAR]       print the JSON listing a binary cache serves as <hash>.ls;\n"
    "                 with -R, one line per entry instead (type, size, path)\n"
    "  cat NAR FILE   print the regular file FILE (a path inside the archive,\n"
    "                 like bin/hello) without unpacking anything else\n"
    "  check [NAR]    validate a NAR with all of today's Nix rules and print its\n"
    "                 hash and size like `hash`\n"
    "\n"
    "NAR arguments are files, or - (the default) for stdin.\n";

struct nar_opts {
	int enc; /* enum cairn_hash_encoding */
	bool recursive;
};

/* --base16 and the others: each names the form it asks for. */
static int opt_encoding(void *target, const struct cli_option *opt, const char *value)
{
	(void)value;
	int *enc = target;
	if (!strcmp(opt->long_name, "base16"))
		*enc = CAIRN_HASH_BASE16;
	else if (!strcmp(opt->long_name, "base64"))
		*enc = CAIRN_HASH_BASE64;
	else if (!strcmp(opt->long_name, "sri"))
		*enc = CAIRN_HASH_SRI;
	else
		*enc = CAIRN_HASH_NIX32;
	return EXIT_OK;
}

#define ENC(l, h) OPT_CALLBACK(0, l, struct nar_opts, enc, NULL, opt_encoding, CLI_OPT_NOARG, h)
static const struct cli_option nar_hash_options[] = {
	ENC("base16", "print the hash in base16 instead of nix32"),
	ENC("base64", "print the hash in base64"),
	ENC("sri", "print the hash as SRI (sha256-BASE64)"),
	ENC("nix32", "print the hash in nix32 (the default; alias --base32)"),
	OPT_CALLBACK(0, "base32", struct nar_opts, enc, NULL, opt_encoding,
		     CLI_OPT_NOARG | CLI_OPT_HIDDEN, NULL),
	OPT_END(),
};
#undef ENC
static const struct cli_option nar_ls_options[] = {
	OPT_FLAG('R', "recursive", struct nar_opts, recursive,
		 "one line per entry (type, size, path) instead of JSON"),
	OPT_END(),
};
static const struct cli_help_section nar_sections[] = {
	{"options of hash and check:", nar_hash_options},
	{"options of ls:", nar_ls_options},
	{NULL, NULL},
};
static const struct cli_spec nar_spec = {.usage = nar_usage, .sections = nar_sections};

/* The action's options and at most max_args operands, left in argv[0..). */
static int nar_parse(const struct cli_option *opts, struct nar_opts *o, int argc, char **argv,
		     int min_args, int max_args, int *nargs)
{
	int ret = cli_parse_options(&nar_spec, opts, o, argc, argv, nargs);
	if (ret != CLI_GO_ON)
		return ret;
	if (*nargs < min_args || *nargs > max_args)
		return cli_usage(&nar_spec, false);
	return CLI_GO_ON;
}

#define READ_CHUNK (1u << 20)

static int write_stdout(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	(void)ctx;
	if (cli_write_all(STDOUT_FILENO, data, len) != 0)
		return cairn_error_errno(err, errno, "cannot write to stdout");
	return 0;
}

/* Feed all of path ("-" is stdin) to p, then finish. */
static int feed_file(struct cairn_nar_parser *p, const char *path, struct cairn_error *err)
{
	int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cairn_error_errno(err, errno, "cannot open '%s'", path);
	char *buf = malloc(READ_CHUNK);
	int rc = 0;
	if (!buf) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, READ_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = cairn_error_errno(err, errno, "cannot read '%s'", path);
			break;
		}
		if (n == 0) {
			rc = cairn_nar_parser_finish(p, err);
			break;
		}
		rc = cairn_nar_parser_feed(p, buf, (size_t)n, err);
		if (rc)
			break;
	}
out:
	free(buf);
	if (fd != STDIN_FILENO)
		close(fd);
	return rc;
}

static void print_hash(const struct cairn_hash *h, uint64_t size, enum cairn_hash_encoding enc)
{
	char s[CAIRN_HASH_STR_MAX];
	cairn_hash_format(h, enc, s, sizeof(s));
	printf("%s\n%" PRIu64 "\n", s, size);
}

static const struct cli_option no_options[] = {OPT_END()};

static int nar_dump(int argc, char **argv)
{
	struct nar_opts o = {0};
	int n, ret = nar_parse(no_options, &o, argc, argv, 1, 1, &n);
	if (ret != CLI_GO_ON)
		return ret;
	struct cairn_error err;
	cairn_error_init(&err);
	if (cairn_nar_dump_path(argv[0], write_stdout, NULL, &err) != 0)
		return cli_fail("dump", &err);
	return EXIT_OK;
}

static int nar_restore(int argc, char **argv)
{
	struct nar_opts o = {0};
	int n, ret = nar_parse(no_options, &o, argc, argv, 1, 1, &n);
	if (ret != CLI_GO_ON)
		return ret;
	struct cairn_error err;
	cairn_error_init(&err);
	struct cairn_nar_restore *r = NULL;
	struct cairn_nar_parser *p = NULL;
	int rc = cairn_nar_restore_new(argv[0], &r, &err);
	if (!rc) {
		static const struct cairn_nar_limits lim = {.no_hash = true};
		p = cairn_nar_parser_new(&cairn_nar_restore_callbacks, r, &lim);
		if (!p)
			rc = cairn_error_set(&err, CAIRN_ENOMEM, "out of memory");
	}
	if (!rc)
		rc = feed_file(p, "-", &err);
	if (!rc)
		rc = cairn_nar_restore_commit(r, &err);
	cairn_nar_parser_free(p);
	cairn_nar_restore_free(r); /* removes everything unless committed */
	return rc ? cli_fail("restore", &err) : EXIT_OK;
}

static int nar_hash(int argc, char **argv)
{
	struct nar_opts o = {.enc = CAIRN_HASH_NIX32};
	int n, ret = nar_parse(nar_hash_options, &o, argc, argv, 1, 1, &n);
	if (ret != CLI_GO_ON)
		return ret;
	const char *path = argv[0];
	enum cairn_hash_encoding enc = (enum cairn_hash_encoding)o.enc;
	struct cairn_error err;
	cairn_error_init(&err);
	struct cairn_hash h;
	uint64_t size;
	if (cairn_nar_hash_path(path, &h, &size, &err) != 0)
		return cli_fail("hash", &err);
	print_hash(&h, size, enc);
	return EXIT_OK;
}

static int nar_check(int argc, char **argv)
{
	struct nar_opts o = {.enc = CAIRN_HASH_NIX32};
	int n, ret = nar_parse(nar_hash_options, &o, argc, argv, 0, 1, &n);
	if (ret != CLI_GO_ON)
		return ret;
	const char *path = n ? argv[0] : NULL;
	enum cairn_hash_encoding enc = (enum cairn_hash_encoding)o.enc;
	struct cairn_error err;
	cairn_error_init(&err);
	struct cairn_nar_parser *p = cairn_nar_parser_new(NULL, NULL, NULL);
	if (!p) {
		cairn_error_set(&err, CAIRN_ENOMEM, "out of memory");
		return cli_fail("check", &err);
	}
	struct cairn_hash h;
	int rc = feed_file(p, path ? path : "-", &err);
	if (!rc)
		rc = cairn_nar_parser_hash(p, &h);
	if (!rc)
		print_hash(&h, cairn_nar_parser_size(p), enc);
	cairn_nar_parser_free(p);
	return rc ? cli_fail("check", &err) : EXIT_OK;
}

/* ---- ls -R: one line per node ---------------------------------------- */

static int rl_line(const struct cairn_nar_node *n, const char *mode, uint64_t size)
{
	char slashed[CAIRN_NAR_PATH_MAX + 2];
	snprintf(slashed, sizeof(slashed), "/%.*s", (int)n->path_len, n->path);
	printf("%s %12" PRIu64 " %s", mode, size, cli_safe_name(slashed, strlen(slashed)));
	if (n->type == CAIRN_NAR_SYMLINK)
		printf(" -> %s", cli_safe_name(n->target, n->target_len));
	putchar('\n');
	return 0;
}

static int rl_dir(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	(void)ctx;
	(void)err;
	return rl_line(n, "dr-xr-xr-x", 0);
}

static int rl_file(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	(void)ctx;
	(void)err;
	return rl_line(n, n->executable ? "-r-xr-xr-x" : "-r--r--r--", n->size);
}

static int rl_link(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	(void)ctx;
	(void)err;
	return rl_line(n, "lrwxrwxrwx", 0);
}

static const struct cairn_nar_callbacks recursive_listing = {
    .directory_begin = rl_dir,
    .file_begin = rl_file,
    .symlink = rl_link,
};

static int nar_ls(int argc, char **argv)
{
	struct nar_opts o = {0};
	int n, ret = nar_parse(nar_ls_options, &o, argc, argv, 0, 1, &n);
	if (ret != CLI_GO_ON)
		return ret;
	bool recursive = o.recursive;
	const char *path = n ? argv[0] : "-";
	struct cairn_error err;
	cairn_error_init(&err);
	struct cairn_nar_ls *ls = recursive ? NULL : cairn_nar_ls_new(0);
	struct cairn_nar_parser *p = NULL;
	int rc = 0;
	if (!recursive && !ls)
		rc = cairn_error_set(&err, CAIRN_ENOMEM, "out of memory");
	if (!rc) {
		static const struct cairn_nar_limits lim = {.no_hash = true};
		p = recursive ? cairn_nar_parser_new(&recursive_listing, NULL, &lim)
			      : cairn_nar_parser_new(&cairn_nar_ls_callbacks, ls, &lim);
		if (!p)
			rc = cairn_error_set(&err, CAIRN_ENOMEM, "out of memory");
	}
	if (!rc)
		rc = feed_file(p, path, &err);
	if (!rc && !recursive) {
		char *json;
		size_t len;
		rc = cairn_nar_ls_take(ls, &json, &len, &err);
		if (!rc) {
			fwrite(json, 1, len, stdout);
			putchar('\n');
			free(json);
		}
	}
	cairn_nar_parser_free(p);
	cairn_nar_ls_free(ls);
	if (fflush(stdout) != 0 && !rc)
		rc = cairn_error_errno(&err, errno, "cannot write to stdout");
	return rc ? cli_fail("ls", &err) : EXIT_OK;
}

static int nar_cat(int argc, char **argv)
{
	struct nar_opts o = {0};
	int nargs, ret = nar_parse(no_options, &o, argc, argv, 2, 2, &nargs);
	if (ret != CLI_GO_ON)
		return ret;
	const char *file = argv[1];
	/* "/bin/hello", "./bin/hello" and "bin/hello/" all name bin/hello */
	while (file[0] == '/' || (file[0] == '.' && file[1] == '/'))
		file += file[0] == '/' ? 1 : 2;
	char *want = strdup(file);
	if (!want) {
		cli_error("out of memory");
		return EXIT_FAIL;
	}
	size_t n = strlen(want);
	while (n && want[n - 1] == '/')
		want[--n] = '\0';
	struct cairn_error err;
	cairn_error_init(&err);
	struct cairn_nar_cat c;
	cairn_nar_cat_init(&c, want, write_stdout, NULL);
	static const struct cairn_nar_limits lim = {.no_hash = true};
	struct cairn_nar_parser *p = cairn_nar_parser_new(&cairn_nar_cat_callbacks, &c, &lim);
	int rc =
	    p ? feed_file(p, argv[0], &err) : cairn_error_set(&err, CAIRN_ENOMEM, "out of memory");
	if (!rc)
		rc = cairn_nar_cat_done(&c, &err);
	cairn_nar_parser_free(p);
	free(want);
	return rc ? cli_fail("cat", &err) : EXIT_OK;
}

int cmd_nar(int argc, char **argv)
{
	static const struct cli_action acts[] = {
	    {"dump", nar_dump}, {"restore", nar_restore}, {"hash", nar_hash},
	    {"ls", nar_ls},	    {"cat", nar_cat},	      {"check", nar_check},
	};
	return cli_dispatch(argc, argv, acts, sizeof(acts) / sizeof(acts[0]), &nar_spec);
}
