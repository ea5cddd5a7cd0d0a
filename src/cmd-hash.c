/*
 * cmd-hash.c - `cairn hash`: convert hashes between Nix's textual forms,
 * and hash a file flat.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cairn/hash.h"
#include "cli.h"
#include "cairn/banned.h"

const char cmd_hash_usage[] =
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
	"options:\n"
	"  --to FORMAT   nix32 (alias base32), base16, base64 or sri\n"
	"                (convert: default sri; file: default nix32)\n"
	"  --type ALGO   md5, sha1, sha256 or sha512: the algorithm of hashes given\n"
	"                without a prefix (default sha256); a prefixed hash of\n"
	"                another algorithm is an error.  Alias: --hash-algo.\n"
	"  -h, --help    show this help\n"
	"\n"
	"exit status: 0 ok, 1 a HASH or FILE was bad (the others are still\n"
	"printed), 2 usage error.\n";

static int parse_format(const char *s, enum cairn_hash_encoding *out)
{
	if (!strcmp(s, "nix32") || !strcmp(s, "base32"))
		*out = CAIRN_HASH_NIX32;
	else if (!strcmp(s, "base16"))
		*out = CAIRN_HASH_BASE16;
	else if (!strcmp(s, "base64"))
		*out = CAIRN_HASH_BASE64;
	else if (!strcmp(s, "sri"))
		*out = CAIRN_HASH_SRI;
	else
		return -1;
	return 0;
}

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
		return cli_usage(cmd_hash_usage, true);
	if (argc < 2) {
		cli_error("missing action (convert or file)");
		return cli_usage(cmd_hash_usage, false);
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

	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "type", required_argument, NULL, 'a' },
		{ "hash-algo", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum cairn_hash_encoding enc = convert ? CAIRN_HASH_SRI : CAIRN_HASH_NIX32;
	enum cairn_hash_algo algo = CAIRN_HASH_SHA256;
	bool algo_given = false;
	/* Options follow the sub-subcommand: parse argv[1..] as their own argv. */
	int ac = argc - 1;
	char **av = argv + 1;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(ac, av, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (parse_format(optarg, &enc) != 0) {
				cli_error("unknown format '%s' (nix32, base16, base64 or sri)",
					  optarg);
				return EXIT_USAGE;
			}
			break;
		case 'a':
			algo = cairn_hash_algo_parse(optarg, strlen(optarg));
			if (!algo) {
				cli_error("unknown hash algorithm '%s' (md5, sha1, sha256 or sha512)",
					  optarg);
				return EXIT_USAGE;
			}
			algo_given = true;
			break;
		case 'h':
			return cli_usage(cmd_hash_usage, true);
		case ':':
			cli_error("option '%s' needs an argument", av[optind - 1]);
			return EXIT_USAGE;
		default:
			cli_error("unknown option '%s'", av[optind - 1]);
			return EXIT_USAGE;
		}
	}
	int nargs = ac - optind;
	char **args = av + optind;
	if (nargs < 1) {
		cli_error("%s needs at least one %s", sub, convert ? "HASH" : "FILE");
		return cli_usage(cmd_hash_usage, false);
	}
	if (convert)
		return hash_convert(nargs, args, enc, algo, algo_given);
	if (algo != CAIRN_HASH_SHA256) {
		cli_error("file: only sha256 is supported");
		return EXIT_USAGE;
	}
	return hash_file(nargs, args, enc);
}
