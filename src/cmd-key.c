/*
 * cmd-key.c - `cairn key`: make signing keys of either ecosystem and derive
 * their public halves.  Secrets never reach a file that others can read:
 * they are written mode 0600 under a temporary name, then renamed.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cairn/buf.h"
#include "cairn/keys.h"
#include "cli.h"
#include "cairn/banned.h"

static const char key_usage[] =
    "usage: cairn key generate --format nix|guix [--secret FILE] [--public FILE] [NAME]\n"
    "       cairn key public < SECRET-KEY\n"
    "\n"
    "generate  make a new signing key pair.  Nix keys need NAME (e.g.\n"
    "          cache.example.org-1); Guix keys have no name.  Without --secret the\n"
    "          secret key is written to stdout; with it, to FILE (mode 0600) and the\n"
    "          public key to --public FILE (mode 0644), or to stdout.  Existing files are\n"
    "          never overwritten.\n"
    "public    read a secret key (Nix or Guix, detected) on stdin and write its\n"
    "          public key to stdout.\n";

struct key_opts {
	int format; /* enum cairn_key_kind; 0: not given */
	const char *secret, *public;
};
static const struct cli_choice key_formats[] = {
	{"nix", CAIRN_KEY_NIX}, {"guix", CAIRN_KEY_GUIX}, {NULL, 0}};
static const struct cli_option key_generate_options[] = {
	OPT_CHOICE("format", struct key_opts, format, "nix|guix", key_formats,
		   "the kind of key (required)"),
	OPT_STRING(0, "secret", struct key_opts, secret, "FILE",
		   "write the secret key to FILE (mode 0600)"),
	OPT_STRING(0, "public", struct key_opts, public, "FILE",
		   "with --secret: write the public key to FILE (mode 0644)"),
	OPT_END(),
};
static const struct cli_option no_options[] = {OPT_END()};
static const struct cli_help_section key_sections[] = {
	{"options of generate:", key_generate_options},
	{NULL, NULL},
};
static const struct cli_spec key_spec = {.usage = key_usage, .sections = key_sections};

/*
 * Write data to a new file at path via a 0600 temporary file in the same
 * directory; fails if path exists.  A public key is then made readable by
 * all (0644): a server's unprivileged user and its clients read it.
 */
static int write_file_atomic(const char *path, const char *data, size_t len, bool public)
{
	size_t n = strlen(path);
	char *tmp = malloc(n + 16);
	if (!tmp)
		return -1;
	snprintf(tmp, n + 16, "%s.tmp.XXXXXX", path);
	int fd = mkstemp(tmp); /* creates the file with mode 0600 */
	if (fd < 0) {
		cli_error("cannot create '%s': %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	int rc = 0;
	if (cli_write_all(fd, data, len) != 0 || fsync(fd) != 0) {
		cli_error("cannot write '%s': %s", tmp, strerror(errno));
		rc = -1;
	}
	if (rc == 0 && public && fchmod(fd, 0644) != 0) {
		cli_error("cannot make '%s' readable: %s", tmp, strerror(errno));
		rc = -1;
	}
	if (close(fd) != 0 && rc == 0) {
		cli_error("cannot write '%s': %s", tmp, strerror(errno));
		rc = -1;
	}
	/* link, not rename: an existing key is never replaced by accident. */
	if (rc == 0 && link(tmp, path) != 0) {
		cli_error("cannot create '%s': %s", path, strerror(errno));
		rc = -1;
	}
	unlink(tmp);
	free(tmp);
	return rc;
}

static void buf_wipe(struct cairn_buf *b)
{
	if (b->data)
		sodium_memzero(b->data, b->cap);
	cairn_buf_release(b);
}

static int emit(const char *file, struct cairn_buf *b, bool public)
{
	if (file)
		return write_file_atomic(file, b->data, b->len, public) ? EXIT_FAIL : EXIT_OK;
	bool nl = b->len && b->data[b->len - 1] == '\n';
	if (cli_write_all(STDOUT_FILENO, b->data, b->len) ||
	    (!nl && cli_write_all(STDOUT_FILENO, "\n", 1))) {
		cli_error("cannot write to stdout");
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

static int format_public(const struct cairn_seckey *sk, struct cairn_buf *out)
{
	if (sk->kind == CAIRN_KEY_NIX) {
		struct cairn_nix_pubkey pk;
		cairn_nix_seckey_public(&sk->u.nix, &pk);
		return cairn_nix_pubkey_format(&pk, out);
	}
	struct cairn_guix_pubkey pk;
	cairn_guix_seckey_public(&sk->u.guix, &pk);
	return cairn_guix_pubkey_format(&pk, out);
}

static int key_generate(int argc, char **argv)
{
	struct key_opts o = {0};
	int nargs, r = cli_parse_options(&key_spec, key_generate_options, &o, argc, argv, &nargs);
	if (r != CLI_GO_ON)
		return r;
	const char *secret = o.secret, *public = o.public, *name = nargs ? argv[0] : NULL;
	if (nargs > 1) {
		cli_error("more than one NAME");
		return cli_usage(&key_spec, false);
	}
	if (!o.format) {
		cli_error("--format nix or --format guix is required");
		return cli_usage(&key_spec, false);
	}
	bool nix = o.format == CAIRN_KEY_NIX;
	if (nix && !name) {
		cli_error("a Nix key needs a NAME, e.g. cache.example.org-1");
		return cli_usage(&key_spec, false);
	}
	if (!nix && name) {
		cli_error("Guix keys have no name");
		return cli_usage(&key_spec, false);
	}
	if (public && !secret) {
		cli_error("--public needs --secret (the secret would go to stdout)");
		return cli_usage(&key_spec, false);
	}

	struct cairn_seckey sk;
	struct cairn_error err;
	struct cairn_buf sb = CAIRN_BUF_INIT(1 << 16), pb = CAIRN_BUF_INIT(1 << 16);
	int ret = EXIT_FAIL, rc;
	cairn_error_init(&err);
	memset(&sk, 0, sizeof(sk));
	sk.kind = nix ? CAIRN_KEY_NIX : CAIRN_KEY_GUIX;
	rc = nix ? cairn_nix_key_generate(name, &sk.u.nix, &err)
		 : cairn_guix_key_generate(&sk.u.guix, &err);
	if (rc) {
		ret = cli_fail("cannot generate a key", &err);
		goto out;
	}
	rc = nix ? cairn_nix_seckey_format(&sk.u.nix, &sb)
		 : cairn_guix_seckey_format(&sk.u.guix, &sb);
	if (!rc)
		rc = format_public(&sk, &pb);
	if (rc) {
		cli_error("cannot format the key: %s", cairn_strerror(rc));
		goto out;
	}
	if (!secret) {
		ret = emit(NULL, &sb, false);
		goto out;
	}
	if (emit(secret, &sb, false) != EXIT_OK)
		goto out;
	ret = emit(public, &pb, true);
out:
	cairn_seckey_wipe(&sk);
	buf_wipe(&sb);
	cairn_buf_release(&pb);
	return ret;
}

static int key_public(int argc, char **argv)
{
	struct key_opts o = {0};
	int nargs, r = cli_parse_options(&key_spec, no_options, &o, argc, argv, &nargs);
	if (r != CLI_GO_ON)
		return r;
	if (nargs > 0) {
		cli_error("'key public' reads the secret key on stdin and takes no arguments");
		return cli_usage(&key_spec, false);
	}
	char *text = NULL;
	size_t len = 0;
	struct cairn_error err;
	struct cairn_seckey sk;
	struct cairn_buf pb = CAIRN_BUF_INIT(1 << 16);
	int ret = EXIT_FAIL;
	cairn_error_init(&err);
	if (cli_read_file("-", CAIRN_KEYFILE_MAX, &text, &len, &err))
		return cli_fail("cannot read the secret key", &err);
	if (cairn_seckey_parse(text, len, &sk, &err)) {
		ret = cli_fail("cannot read the secret key", &err);
		goto out;
	}
	int rc = format_public(&sk, &pb);
	cairn_seckey_wipe(&sk);
	if (rc) {
		cli_error("cannot format the public key: %s", cairn_strerror(rc));
		goto out;
	}
	ret = emit(NULL, &pb, true);
out:
	sodium_memzero(text, len);
	free(text);
	cairn_buf_release(&pb);
	return ret;
}

int cmd_key(int argc, char **argv)
{
	static const struct cli_action acts[] = {{"generate", key_generate}, {"public", key_public}};
	return cli_dispatch(argc, argv, acts, sizeof(acts) / sizeof(acts[0]), &key_spec);
}
