/*
 * publish-page.c - the front page of `cairn publish`: what a person who
 * opens the server's URL in a browser needs to use it (the substituter
 * line and keys to paste, for Nix or Guix), as HTML or plain text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/httpd.h"
#include "cairn/storepath.h"
#include "cairn/escape.h"
#include "publish-int.h"
#include "cairn/banned.h"

/* Bytes a shell takes as they are, unquoted. */
static bool shell_plain(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("/._+-:@%,=", *s)))
			return false;
	return true;
}

/* Append s as one shell word: as it is when that is safe, else in single
 * quotes, so that a command on the page runs as printed whatever a key
 * name or a store path holds. */
static void shell_word(struct cairn_buf *b, const char *s)
{
	if (shell_plain(s)) {
		cairn_buf_puts(b, s);
		return;
	}
	cairn_buf_putc(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			cairn_buf_puts(b, "'\\''");
		else
			cairn_buf_putc(b, *s);
	}
	cairn_buf_putc(b, '\'');
}

/*
 * The server's URL as the client named it (its Host), for the commands on
 * the page.  The authority is reflected into a command a reader may paste
 * into a shell: anything but a plain host[:port] gives a placeholder.
 */
static void page_url(struct cairn_httpd_req *req, char *url, size_t cap)
{
	size_t al = 0;
	const char *auth = cairn_httpd_req_authority(req, &al);
	bool ok = auth && al > 0 && al < 256;
	for (size_t i = 0; ok && i < al; i++) {
		char c = auth[i];
		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		     c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_';
	}
	/* no trailing slash: Guix before 1.4 appends "/<hash>.narinfo" to it */
	if (ok)
		snprintf(url, cap, "http://%.*s", (int)al, auth);
	else
		snprintf(url, cap, "http://SERVER");
}

/* The Nix keys as one word list ("a:x b:y"), as trusted-public-keys takes them. */
static void nix_key_list(const struct cairn_publish *p, struct cairn_buf *b)
{
	bool first = true;
	for (size_t i = 0; i < p->nix_keys_len;) {
		const char *nl = memchr(p->nix_keys + i, '\n', p->nix_keys_len - i);
		size_t end = nl ? (size_t)(nl - p->nix_keys) : p->nix_keys_len;
		if (end > i) {
			if (!first)
				cairn_buf_putc(b, ' ');
			cairn_buf_append(b, p->nix_keys + i, end - i);
			first = false;
		}
		i = end + 1;
	}
}

/*
 * How a Nix user takes from this cache, as commands that run as printed
 * with the Nix Debian ships (2.8, where `nix copy` is behind the
 * nix-command feature): a copy of a real path of this store (the one added
 * last) into a scratch store under ~, then the nix.conf lines.
 */
static void page_nix(struct cairn_publish *p, struct cairn_buf *u, const char *url)
{
	struct cairn_buf keys = CAIRN_BUF_INIT(1 << 16);
	struct cairn_storedb *db = NULL;
	char *example = NULL;

	nix_key_list(p, &keys);
	if (pub_db_get(p, &db, NULL) == 0) {
		if (cairn_storedb_recent_path(db, &example, NULL) < 0)
			example = NULL;
		pub_db_put(p, db);
	}
	if (example) {
		cairn_buf_puts(
		    u, "# Try it: copy a path of this cache (here the one added last) and its\n"
		       "# closure into a scratch store in ~/cairn-copy, not your own:\n");
		/* a store elsewhere than /nix/store: only a Nix with that
		 * store directory takes from it (and copies into one) */
		if (strcmp(p->store_dir, "/nix/store") != 0) {
			cairn_buf_puts(u, "NIX_STORE_DIR=");
			shell_word(u, p->store_dir);
			cairn_buf_putc(u, ' ');
		}
		cairn_buf_puts(u, "nix --extra-experimental-features nix-command copy --from ");
		shell_word(u, url);
		cairn_buf_puts(u, " --to ~/cairn-copy");
		if (keys.len) {
			cairn_buf_puts(u, " --option trusted-public-keys ");
			shell_word(u, keys.data);
		} else {
			cairn_buf_puts(u, " --no-check-sigs");
		}
		cairn_buf_putc(u, ' ');
		shell_word(u, example);
		cairn_buf_puts(
		    u, "\n# Into your own store (as root, or a user the daemon trusts): the same\n"
		       "# without --to ~/cairn-copy.\n");
		free(example);
	} else {
		cairn_buf_puts(u, "# The store has no valid path yet: nothing to copy.\n");
	}
	if (keys.len) {
		cairn_buf_printf(
		    u,
		    "\n# To substitute from it, add to /etc/nix/nix.conf (then restart\n"
		    "# nix-daemon):\nextra-substituters = %s\n"
		    "extra-trusted-public-keys = %s\n",
		    url, keys.data);
	} else {
		cairn_buf_puts(
		    u, "\n# Its narinfos are not signed: Nix takes substitutes only from a\n"
		       "# signed cache (start cairn publish with --key).\n");
	}
	if (strcmp(p->store_dir, "/nix/store") != 0)
		cairn_buf_printf(u,
				 "# Its store is %s: only a Nix with that store directory\n"
				 "# (NIX_STORE_DIR) substitutes from it.\n",
				 p->store_dir);
	cairn_buf_release(&keys);
}

/*
 * The same for Guix (the Guix manual, "Getting Substitutes from Other
 * Servers"): authorise the key once, as root; then name the server beside
 * the default ones, since --substitute-urls replaces the daemon's list.
 * A trailing slash is left out: Guix before 1.4 appends "/<hash>.narinfo".
 */
static void page_guix(struct cairn_publish *p, struct cairn_buf *u, const char *url)
{
	if (!p->guix_key_len) {
		cairn_buf_puts(
		    u, "# No Guix key: Guix takes substitutes only from a server whose\n"
		       "# key it has authorised (start cairn publish with a Guix --key).\n");
		return;
	}
	cairn_buf_puts(u, "# Authorise its key, once:\ncurl -fsS ");
	cairn_buf_puts(u, url);
	cairn_buf_puts(u, "/signing-key.pub | sudo guix archive --authorize\n"
			  "# Then take substitutes from it and from the default servers:\n"
			  "guix build --substitute-urls=");
	struct cairn_buf w = CAIRN_BUF_INIT(4096);
	cairn_buf_printf(&w, "%s https://bordeaux.guix.gnu.org https://ci.guix.gnu.org", url);
	shell_word(u, w.data ? w.data : "");
	cairn_buf_release(&w);
	cairn_buf_puts(u, " hello\n"
			  "# or for every build: the same list in guix-daemon's --substitute-urls\n"
			  "# (Guix System: substitute-urls in guix-configuration).\n");
}

int pub_h_root(struct cairn_httpd_req *req, void *data)
{
	struct cairn_publish *p = data;
	struct cairn_buf b = CAIRN_BUF_INIT(1 << 20);
	char url[300];
	bool nix = p->cfg.dialect == CAIRN_PUBLISH_NIX;

	page_url(req, url, sizeof(url));
	cairn_buf_puts(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
			   "<title>cairn binary cache</title></head><body>\n"
			   "<h1>cairn binary cache</h1>\n<p>This server publishes the ");
	cairn_buf_puts(&b, nix ? "Nix" : "Guix");
	cairn_buf_puts(&b, " store <code>");
	cairn_html_str(&b, p->store_dir, strlen(p->store_dir));
	cairn_buf_puts(&b, "</code> as a binary cache (substitutes), with cairn publish.</p>\n");
	cairn_buf_puts(&b, "<h2>Signing keys</h2>\n<pre>");
	cairn_html_str(&b, p->nix_keys, p->nix_keys_len);
	cairn_html_str(&b, p->guix_key, p->guix_key_len);
	if (!p->nix_keys_len && !p->guix_key_len)
		cairn_buf_puts(&b, "(none: narinfos are not signed)\n");
	cairn_buf_puts(&b, "</pre>\n<h2>How to use it</h2>\n<pre>");
	struct cairn_buf u = CAIRN_BUF_INIT(1 << 16);
	if (nix)
		page_nix(p, &u, url);
	else
		page_guix(p, &u, url);
	cairn_html_str(&b, u.data ? u.data : "", u.len);
	cairn_buf_release(&u);
	cairn_buf_puts(&b, "</pre>\n<p><a href=\"/nix-cache-info\">nix-cache-info</a> · "
			   "<a href=\"/signing-key.pub\">signing-key.pub</a> · "
			   "<a href=\"/nix-signing-keys\">nix-signing-keys</a> · "
			   "<a href=\"/guix-signing-key.pub\">guix-signing-key.pub</a> · "
			   "<a href=\"/metrics\">metrics</a> · <a href=\"/health\">health</a></p>\n"
			   "</body></html>\n");
	/* the example path changes as the store does */
	pub_cache_control(req, 60);
	int rc = cairn_httpd_send(req, 200, "text/html; charset=utf-8", b.data ? b.data : "",
				  b.len);
	cairn_buf_release(&b);
	return rc;
}
