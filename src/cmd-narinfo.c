/*
 * cmd-narinfo.c - `cairn narinfo`: sign a narinfo with Nix and Guix keys,
 * verify one against trusted keys of both kinds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cairn/buf.h"
#include "cairn/keys.h"
#include "cairn/narinfo.h"
#include "cli.h"
#include "cairn/banned.h"

static const char narinfo_usage[] =
    "usage: cairn narinfo sign --key FILE [--key FILE...] [--host NAME] < NARINFO\n"
    "       cairn narinfo verify --trusted-key FILE [--trusted-key FILE...]\n"
    "                            [--require-sigs K] < NARINFO\n"
    "\n"
    "sign    add signatures and write the signed narinfo to stdout.  A Nix secret\n"
    "        key adds a 'Sig:' line; a Guix secret key sets the last line,\n"
    "        'Signature: 1;<host>;<base64>' (host from --host, else this\n"
    "        machine's name).  Nix keys are applied first, as a later Sig would\n"
    "        change the text the Guix signature covers.\n"
    "verify  check the narinfo's signatures.  Trusted key files: Nix public keys\n"
    "        ('name:base64', several per file allowed), a Guix signing-key.pub or\n"
    "        a Guix acl file.  Exit 0 and list the keys that signed when at least\n"
    "        K (default 1) distinct trusted keys did; otherwise exit 1 with the\n"
    "        reason (no signature, untrusted key, invalid, corrupt, hash mismatch).\n";

struct narinfo_opts {
	struct cli_list keys;
	const char *host;
	struct cli_keys trusted;
	long need;
};
static const struct cli_option sign_options[] = {
	OPT_LIST(0, "key", struct narinfo_opts, keys, "FILE", 0,
		 "a Nix or Guix secret key (repeatable; one Guix key at most)"),
	OPT_STRING(0, "host", struct narinfo_opts, host, "NAME",
		   "the host named in a Guix signature (default: hostname)"),
	OPT_END(),
};
static const struct cli_option verify_options[] = {
	OPT_TRUSTED_KEY(struct narinfo_opts, trusted,
			"Nix public keys, a Guix signing-key.pub or acl (repeatable)"),
	OPT_INT(0, "require-sigs", struct narinfo_opts, need, "K", 1, CAIRN_VERIFY_MAX_SIGNERS,
		"distinct trusted signers needed (default 1)"),
	OPT_END(),
};
static const struct cli_help_section narinfo_sections[] = {
	{"options of sign:", sign_options},
	{"options of verify:", verify_options},
	{NULL, NULL},
};
static const struct cli_spec narinfo_spec = {.usage = narinfo_usage, .sections = narinfo_sections};

static int read_narinfo(struct cairn_narinfo **ni)
{
	char *text = NULL;
	size_t len = 0;
	struct cairn_error err;
	cairn_error_init(&err);
	if (cli_read_file("-", CAIRN_NARINFO_MAX, &text, &len, &err))
		return cli_fail("cannot read the narinfo", &err);
	int rc = cairn_narinfo_parse(text, len, ni, &err);
	free(text);
	if (rc)
		return cli_fail("cannot parse the narinfo", &err);
	return EXIT_OK;
}

static int load_seckey(const char *path, struct cairn_seckey *sk)
{
	char *text = NULL;
	size_t len = 0;
	struct cairn_error err;
	cairn_error_init(&err);
	if (cli_read_file(path, CAIRN_KEYFILE_MAX, &text, &len, &err))
		return cli_fail("cannot read the key", &err);
	int rc = cairn_seckey_parse(text, len, sk, &err);
	sodium_memzero(text, len);
	free(text);
	if (rc) {
		cli_error("'%s': %s", path, cairn_error_msg(&err));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

static int narinfo_sign(int argc, char **argv)
{
	struct narinfo_opts o = {0};
	const char **keys, *host;
	size_t n_keys;
	struct cairn_narinfo *ni = NULL;
	struct cairn_seckey *sks = NULL;
	struct cairn_buf out = CAIRN_BUF_INIT(2 * CAIRN_NARINFO_MAX);
	int ret = EXIT_FAIL;
	char hostbuf[256];

	int nargs;
	if ((ret = cli_parse_options(&narinfo_spec, sign_options, &o, argc, argv, &nargs)) !=
	    CLI_GO_ON)
		goto out;
	keys = o.keys.v;
	n_keys = o.keys.n;
	host = o.host;
	ret = EXIT_FAIL;
	if (nargs) {
		cli_error("unexpected argument '%s'", argv[0]);
		ret = cli_usage(&narinfo_spec, false);
		goto out;
	}
	if (n_keys == 0) {
		cli_error("at least one --key is required");
		ret = cli_usage(&narinfo_spec, false);
		goto out;
	}
	sks = calloc(n_keys, sizeof(*sks));
	if (!sks) {
		cli_error("out of memory");
		goto out;
	}
	size_t n_guix = 0;
	for (size_t i = 0; i < n_keys; i++) {
		if (load_seckey(keys[i], &sks[i]) != EXIT_OK)
			goto out;
		n_guix += sks[i].kind == CAIRN_KEY_GUIX;
	}
	if (n_guix > 1) {
		cli_error("a narinfo has one Guix Signature: give at most one Guix key");
		ret = EXIT_USAGE;
		goto out;
	}
	if (n_guix && !host) {
		if (gethostname(hostbuf, sizeof(hostbuf)) != 0) {
			cli_error("cannot get the host name; give --host");
			goto out;
		}
		hostbuf[sizeof(hostbuf) - 1] = '\0';
		host = hostbuf;
	}
	if (read_narinfo(&ni) != EXIT_OK)
		goto out;
	if (ni->signature && n_guix == 0) {
		cli_error("the narinfo has a Guix Signature that a new Sig line would invalidate; "
			  "give the Guix key too");
		goto out;
	}
	struct cairn_error err;
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n_keys; i++) {
			if ((sks[i].kind == CAIRN_KEY_GUIX) != (pass == 1))
				continue;
			cairn_error_init(&err);
			if (cairn_narinfo_sign(ni, &sks[i], host, &err)) {
				ret = cli_fail(keys[i], &err);
				goto out;
			}
		}
	cairn_error_init(&err);
	if (cairn_narinfo_print(ni, &out, &err)) {
		ret = cli_fail("cannot print the narinfo", &err);
		goto out;
	}
	if (cli_write_all(STDOUT_FILENO, out.data, out.len)) {
		cli_error("cannot write to stdout");
		goto out;
	}
	ret = EXIT_OK;
out:
	for (size_t i = 0; sks && i < n_keys; i++)
		cairn_seckey_wipe(&sks[i]);
	free(sks);
	cli_options_release(sign_options, &o);
	cairn_narinfo_free(ni);
	cairn_buf_release(&out);
	return ret;
}

static int narinfo_verify(int argc, char **argv)
{
	struct narinfo_opts o = {.need = 1};
	struct cairn_keyring *kr = &o.trusted.kr;
	struct cairn_narinfo *ni = NULL;
	struct cairn_error err;
	int nargs, ret;

	if ((ret = cli_parse_options(&narinfo_spec, verify_options, &o, argc, argv, &nargs)) !=
	    CLI_GO_ON)
		goto out;
	ret = EXIT_FAIL;
	if (nargs) {
		cli_error("unexpected argument '%s'", argv[0]);
		ret = cli_usage(&narinfo_spec, false);
		goto out;
	}
	if (o.trusted.n_files == 0) {
		cli_error("at least one --trusted-key is required");
		ret = cli_usage(&narinfo_spec, false);
		goto out;
	}
	cli_keyring_check(kr);
	if (read_narinfo(&ni) != EXIT_OK)
		goto out;
	struct cairn_verify_result res;
	cairn_error_init(&err);
	int rc = cairn_narinfo_verify(ni, kr, &res, &err);
	if (rc) {
		cli_error("%s: %s", ni->store_path, res.detail);
		goto out;
	}
	for (size_t i = 0; i < res.n_signers; i++) {
		char name[128];
		cairn_keyring_key_name(kr, &res.signers[i], name, sizeof(name));
		printf("%s: valid signature by %s\n", ni->store_path, name);
	}
	if (res.n_signers < (size_t)o.need) {
		cli_error("%s: %zu trusted signature%s, %ld required", ni->store_path,
			  res.n_signers, res.n_signers == 1 ? "" : "s", o.need);
		goto out;
	}
	ret = EXIT_OK;
out:
	cairn_narinfo_free(ni);
	cairn_keyring_release(kr);
	return ret;
}

int cmd_narinfo(int argc, char **argv)
{
	static const struct cli_action acts[] = {{"sign", narinfo_sign}, {"verify", narinfo_verify}};
	return cli_dispatch(argc, argv, acts, sizeof(acts) / sizeof(acts[0]), &narinfo_spec);
}
