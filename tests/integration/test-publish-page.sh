#!/usr/bin/env bash
# The commands on cairn publish's `/` page run as printed (issue 12.5): the
# `nix copy` line, taken from the page and run verbatim in a clean
# environment with the Nix Debian ships (2.8), copies the path it names and
# its closure, which Nix then holds valid; the nix.conf lines, put in a
# nix.conf as they are, make nix-store substitute from the server; an
# unsigned server's line works too; a store elsewhere than /nix/store gets a
# line that works for it; and the Guix lines fetch the key `guix archive
# --authorize` reads.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3
publish_require
nix_lib_init

store=$TMP/store
top=$(nix_build_closure "$store" 3 page 1000)
mapfile -t closure < <(nix_closure "$store" "$top")
"$CAIRN" key generate --format nix --secret "$TMP/nix.sec" --public "$TMP/nix.pub" page-1 > /dev/null
"$CAIRN" key generate --format nix --secret "$TMP/nix2.sec" --public "$TMP/nix2.pub" page-2 > /dev/null
"$CAIRN" key generate --format guix --secret "$TMP/guix.sec" --public "$TMP/guix.pub" > /dev/null

# page URL: the text of the page's <pre> blocks, HTML entities decoded
page() {
  curl -fsS "$1/" | python3 -c '
import html, re, sys
for block in re.findall(r"<pre>(.*?)</pre>", sys.stdin.read(), re.S):
    sys.stdout.write(html.unescape(block))'
}

# clean ARG...: run in an empty environment (no NIX_CONFIG, no XDG_*), as a
# user who pastes the line into a fresh shell would
clean() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$HOME_DIR" "$@"; }
# (no substituters: a path that is missing must not send Nix to the network)
nixc() { clean "${NIXC_ENV[@]}" nix --extra-experimental-features nix-command --option substituters "" "$@" > /dev/null; }
NIXC_ENV=()

# run_line LINE LOG: run LINE with bash in the clean environment; its exit
# status (1 for an empty line: nothing printed is nothing that works)
run_line() {
  [ -n "$1" ] || return 1
  local rc=0
  clean bash -c "$1" > "$2" 2>&1 || rc=$?
  sed 's/^/    | /' "$2"
  return "$rc"
}

# --- a Nix store at /nix/store (a chroot store), two keys --------------------
publish_start --store "$store/nix/store" --key "$TMP/nix.sec" --key "$TMP/nix2.sec"
page "$PUBLISH_URL" > "$TMP/page.txt"
sed 's/^/    | /' "$TMP/page.txt"
line=$(grep -m1 '^nix ' "$TMP/page.txt" || true)
check "the page prints a nix copy line" test -n "$line"
check "  ... that enables nix-command, as Nix 2.8 needs" \
  grep -q '^nix --extra-experimental-features nix-command copy ' <<< "$line"
check "  ... naming the path added last ($(basename "$top")), not a placeholder" \
  grep -q " $top\$" <<< "$line"
check "  ... and trusting both keys" \
  grep -qF "'$(cat "$TMP/nix.pub") $(cat "$TMP/nix2.pub")'" <<< "$line"
check "the server's URL has no trailing slash (Guix before 1.4 would ask for //<hash>.narinfo)" \
  bash -c '! grep -q "127.0.0.1:[0-9]*/[ '\'']" "$0"' "$TMP/page.txt"

HOME_DIR=$TMP/home
mkdir -p "$HOME_DIR"
rc=0
run_line "$line" "$TMP/copy.log" || rc=$?
check "the printed nix copy line runs as printed (exit $rc)" test "$rc" = 0
check "  ... and Nix holds the closure valid in ~/cairn-copy" \
  nixc path-info --store "$HOME_DIR/cairn-copy" "${closure[@]}"
check "  ... with its contents intact" \
  nixc store verify --store "$HOME_DIR/cairn-copy" --no-trust -r "$top"

# the nix.conf lines, as printed, in a user's nix.conf; `substituters =`
# first only keeps Nix off cache.nixos.org (no network here)
HOME_DIR=$TMP/home2
mkdir -p "$HOME_DIR/.config/nix"
{
  echo "substituters ="
  grep -E '^extra-(substituters|trusted-public-keys) = ' "$TMP/page.txt"
} > "$HOME_DIR/.config/nix/nix.conf"
check "the page prints the two nix.conf lines" \
  test "$(grep -c '^extra-' "$HOME_DIR/.config/nix/nix.conf")" = 2
rc=0
clean nix-store --store "$TMP/sub" --realise "$top" > "$TMP/sub.log" 2>&1 || rc=$?
sed 's/^/    | /' "$TMP/sub.log"
check "with those lines in nix.conf, nix-store --realise substitutes from the server (exit $rc)" \
  test "$rc" = 0
check "  ... the closure is valid there" nixc path-info --store "$TMP/sub" -r "$top"
publish_stop

# --- no key: the line says --no-check-sigs, and still runs -------------------
publish_start --store "$store/nix/store"
page "$PUBLISH_URL" > "$TMP/page-nokey.txt"
line=$(grep -m1 '^nix ' "$TMP/page-nokey.txt" || true)
check "without a key, the line skips the signature check" grep -q -- '--no-check-sigs' <<< "$line"
check "  ... and the page says why no nix.conf lines" grep -q 'signed cache' "$TMP/page-nokey.txt"
HOME_DIR=$TMP/home3
mkdir -p "$HOME_DIR"
rc=0
run_line "$line" "$TMP/copy3.log" || rc=$?
check "  ... and it runs as printed (exit $rc)" test "$rc" = 0
check "  ... copying the closure" nixc path-info --store "$HOME_DIR/cairn-copy" -r "$top"
publish_stop

# --- a store elsewhere than /nix/store -----------------------------------------
pstore_init "$TMP/src"
ptop=$(pstore_build "$TMP/src" 2 other 100)
publish_start "${PSTORE_ARGS[@]}" --key "$TMP/nix.sec"
page "$PUBLISH_URL" > "$TMP/page-other.txt"
line=$(grep -m1 'nix-command copy ' "$TMP/page-other.txt" || true)
check "a store at $NIX_STORE_DIR: the line names a path of it" grep -q " $ptop\$" <<< "$line"
check "  ... and sets NIX_STORE_DIR for it" grep -q "^NIX_STORE_DIR=$NIX_STORE_DIR nix " <<< "$line"
HOME_DIR=$TMP/home4
mkdir -p "$HOME_DIR"
rc=0
run_line "$line" "$TMP/copy4.log" || rc=$?
check "  ... and it runs as printed (exit $rc)" test "$rc" = 0
NIXC_ENV=(NIX_STORE_DIR="$NIX_STORE_DIR")
check "  ... copying into a scratch store with that store directory" \
  nixc path-info --store "$HOME_DIR/cairn-copy" -r "$ptop"
NIXC_ENV=()
publish_stop
unset NIX_STORE_DIR

# --- Guix dialect ---------------------------------------------------------------
# No Guix here: the printed key line runs with `sudo` and `guix` stand-ins
# that keep what `guix archive --authorize` would read on its stdin.
publish_start --store "$store/nix/store" --dialect guix --key "$TMP/guix.sec"
page "$PUBLISH_URL" > "$TMP/page-guix.txt"
sed 's/^/    | /' "$TMP/page-guix.txt"
line=$(grep -m1 'guix archive --authorize' "$TMP/page-guix.txt" || true)
check "Guix: the page prints the authorize line" test -n "$line"
mkdir -p "$TMP/stub"
printf '#!/bin/sh\nexec "$@"\n' > "$TMP/stub/sudo"
printf '#!/bin/sh\n[ "$*" = "archive --authorize" ] && cat > "%s"\n' "$TMP/authorized" > "$TMP/stub/guix"
chmod +x "$TMP/stub/sudo" "$TMP/stub/guix"
rc=0
env -i PATH="$TMP/stub:/usr/bin:/bin" HOME="$TMP" bash -c "$line" || rc=$?
check "  ... which runs as printed and hands guix archive --authorize the Guix key (exit $rc)" \
  cmp -s "$TMP/authorized" "$TMP/guix.pub"
build=$(grep -m1 '^guix build ' "$TMP/page-guix.txt" || true)
check "Guix: --substitute-urls names the server, without a trailing slash, beside the defaults" \
  grep -qF -- "--substitute-urls='$PUBLISH_URL https://bordeaux.guix.gnu.org https://ci.guix.gnu.org'" <<< "$build"
publish_stop

# --- a Host that is not a plain host[:port] never reaches a command --------------
publish_start --store "$store/nix/store" --key "$TMP/nix.sec"
curl -fsS -H 'Host: x$(touch${IFS}pwned)' "$PUBLISH_URL/" > "$TMP/page-host.html"
check "a hostile Host header is not echoed into the commands" \
  bash -c '! grep -q "pwned" "$0" && grep -q "http://SERVER" "$0"' "$TMP/page-host.html"
publish_stop
finish
