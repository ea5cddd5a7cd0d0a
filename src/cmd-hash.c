/*
 * cmd-hash.c - `cairn hash`: convert hashes between Nix's textual forms,
 * and hash a file flat.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cairn/hash.h"
#include "cli.h"
#include "cairn/banned.h"

struct hash_opts {
	int enc;  /* enum cairn_hash_encoding; -1: the action's default */
	int algo; /* enum cairn_hash_algo; 0: not given */
};

static const struct cli_choice formats[] = {
	{"nix32", CAIRN_HASH_NIX32}, {"base32", CAIRN_HASH_NIX32}, {"base16", CAIRN_HASH_BASE16},
	{"base64", CAIRN_HASH_BASE64}, {"sri", CAIRN_HASH_SRI},	     {NULL, 0}};

static int opt_algo(void *target, const struct cli_option *opt, const char *v)
{
	(void)opt;
	int a = (int)cairn_hash_algo_parse(v, strlen(v));
	if (!a) {
		cli_error("unknown hash algorithm '%s' (md5, sha1, sha256 or sha512)", v);
		return EXIT_USAGE;
	}
	*(int *)target = a;
	return EXIT_OK;
}

static const struct cli_option hash_options[] = {
	OPT_CHOICE("to", struct hash_opts, enc, "FORMAT", formats,
		   "nix32 (alias base32), base16, base64 or sri\n"
		   "(convert: default sri; file: default nix32)"),
	OPT_CALLBACK(0, "type", struct hash_opts, algo, "ALGO", opt_algo, 0,
		     "md5, sha1, sha256 or sha512: the algorithm of hashes given\n"
		     "without a prefix (default sha256); a prefixed hash of\n"
		     "another algorithm is an error"),
	OPT_CALLBACK(0, "hash-algo", struct hash_opts, algo, "ALGO", opt_algo, 0,
		     "the same as --type"),
	OPT_END(),
};

static const struct cli_spec hash_spec = {
	.usage =
	"usage: cairn hash convert [--to FORMAT] [--type ALGO] HASH...\n"
	"       cairn hash file [--to FORMAT] FILE...\n"
	"\n"
	"convert  print each HASH in another form.  A HASH may be written as\n"
	"         ALGO:NIX32, ALGO:BASE16, ALGO:BASE64, ALGO-BASE64 (SRI) or without\n"
	"         the ALGO prefix.  Like `nix hash convert`, the nix32, base16 and\n"
	"         base64 forms are printed without a prefix, SRI with one.\n"
	"file     print the SHA-256 of each FILE's contents (flat, not a NAR;\n"
	"         use `cairn nar hash` for that) as sha256:NIX32 ('-' is stdin).\n"
	"\n"
	"options:\n",
	.options = hash_options,
	.tail =
	"\n"
	"exit status: 0 ok, 1 a HASH or FILE was bad (the others are still\n"
	"printed), 2 usage error.\n",
};

/* Print h in enc; the prefix is dropped unless keep_prefix or SRI. */
static int print_hash(const struct cairn_hash *h, enum cairn_hash_encoding enc, bool keep_prefix)
{
	char s[CAIRN_HASH_STR_MAX];
	if (cairn_hash_format(h, enc, s, sizeof(s)) < 0) {
		cli_error("cannot print hash");
		return EXIT_FAIL;
	}
	const char *out = s;
	if (!keep_prefix && enc != CAIRN_HASH_SRI) {
		const char *colon = strchr(s, ':');
		out = colon ? colon + 1 : s;
	}
	printf("%s\n", out);
	return EXIT_OK;
}

static int hash_convert(int argc, char **argv, enum cairn_hash_encoding enc,
			enum cairn_hash_algo algo, bool algo_given)
{
	int rc = EXIT_OK;
	for (int i = 0; i < argc; i++) {
		struct cairn_hash h;
		struct cairn_error err;
		cairn_error_init(&err);
		const char *s = argv[i];
		if (cairn_hash_parse(s, strlen(s), algo, &h, &err) != 0) {
			cli_error("%s", cairn_error_msg(&err));
			rc = EXIT_FAIL;
			continue;
		}
		if (algo_given && h.algo != algo) {
			cli_error("hash '%s' is %s, not %s", s, cairn_hash_algo_name(h.algo),
				  cairn_hash_algo_name(algo));
			rc = EXIT_FAIL;
			continue;
		}
		if (print_hash(&h, enc, false) != EXIT_OK)
			rc = EXIT_FAIL;
	}
	return rc;
}

static int hash_one_file(const char *path, struct cairn_hash *out)
{
	bool is_stdin = strcmp(path, "-") == 0;
	int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cli_error("cannot open '%s': %s", path, strerror(errno));
		return EXIT_FAIL;
	}
	struct cairn_sha256 ctx;
	if (cairn_sha256_init(&ctx) != 0) {
		cli_error("cannot start SHA-256");
		if (!is_stdin)
			close(fd);
		return EXIT_FAIL;
	}
	static char chunk[1 << 17];
	int rc = EXIT_OK;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			cli_error("cannot read '%s': %s", path, strerror(errno));
			rc = EXIT_FAIL;
			break;
		}
		if (n == 0)
			break;
		cairn_sha256_update(&ctx, chunk, (size_t)n);
	}
	if (!is_stdin)
		close(fd);
	if (rc != EXIT_OK) {
		cairn_sha256_release(&ctx);
		return rc;
	}
	memset(out, 0, sizeof(*out));
	out->algo = CAIRN_HASH_SHA256;
	out->len = CAIRN_SHA256_LEN;
	cairn_sha256_final(&ctx, out->digest);
	return EXIT_OK;
}

static int hash_file(int argc, char **argv, enum cairn_hash_encoding enc)
{
	int rc = EXIT_OK;
	for (int i = 0; i < argc; i++) {
		struct cairn_hash h;
		if (hash_one_file(argv[i], &h) != EXIT_OK) {
			rc = EXIT_FAIL;
			continue;
		}
		if (print_hash(&h, enc, true) != EXIT_OK)
			rc = EXIT_FAIL;
	}
	return rc;
}

int cmd_hash(int argc, char **argv)
{
	if (cli_wants_help(argc, argv))
		return cli_usage(&hash_spec, true);
	if (argc < 2) {
		cli_error("missing action (convert or file)");
		return cli_usage(&hash_spec, false);
	}
	const char *sub = argv[1];
	bool convert = !strcmp(sub, "convert");
	if (!convert && strcmp(sub, "file") != 0) {
		static const char *const names[] = {"convert", "file"};
		const char *s = cli_suggest(sub, names, 2);
		if (s)
			cli_error("unknown action '%s'; did you mean '%s'?", sub, s);
		else
			cli_error("unknown action '%s' (convert or file)", sub);
		return EXIT_USAGE;
	}
	struct hash_opts o = {.enc = -1};
	int nargs, ret = cli_parse_options(&hash_spec, hash_options, &o, argc - 1, argv + 1, &nargs);
	if (ret != CLI_GO_ON)
		return ret;
	char **args = argv + 1;
	enum cairn_hash_encoding enc = o.enc >= 0 ? (enum cairn_hash_encoding)o.enc
				       : convert ? CAIRN_HASH_SRI
						 : CAIRN_HASH_NIX32;
	if (nargs < 1) {
		cli_error("%s needs at least one %s", sub, convert ? "HASH" : "FILE");
		return cli_usage(&hash_spec, false);
	}
	if (convert)
		return hash_convert(nargs, args, enc,
				    o.algo ? (enum cairn_hash_algo)o.algo : CAIRN_HASH_SHA256,
				    o.algo != 0);
	if (o.algo && o.algo != CAIRN_HASH_SHA256) {
		cli_error("file: only sha256 is supported");
		return EXIT_USAGE;
	}
	return hash_file(nargs, args, enc);
}
