#!/usr/bin/env bash
# cairn sync reads what a replica already holds under an item's name (to
# skip what it has): a named pipe there (opened blocking, it held the sync
# for good) is not read but replaced by the head's narinfo.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl cmp nginx xz mkfifo timeout
nix_lib_init

pstore_init "$TMP/src"
SRC=$(pstore_uri "$TMP/src")
top=$(pstore_build "$TMP/src" 1 odd 100) || { not_ok "nix-build"; finish; exit 1; }
h=$(basename "$top" | cut -c1-32)
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" head-test-1
BC=$TMP/head
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/k.sec&compression=xz" "$top"
nginx_start head "$BC" || { not_ok "nginx serves the head"; finish; exit 1; }
echo "$top" > "$TMP/list"
R=$TMP/replica
mkdir -p "$R"
mkfifo "$R/$h.narinfo"
if timeout 30 "$CAIRN" sync --from "$NGINX_URL" --to "$R" --trusted-key "$TMP/k.pub" \
  --paths "$TMP/list" > "$TMP/sync.out" 2> "$TMP/sync.err"; then
  ok "sync completes beside a named pipe under the item's narinfo name"
else
  not_ok "sync completes beside a named pipe under the item's narinfo name"
  sed 's/^/  | /' "$TMP/sync.out" "$TMP/sync.err"
fi
check "  the pipe is replaced by the head's narinfo, byte for byte" \
  eval '[ -f "$R/$h.narinfo" ] && cmp -s "$BC/$h.narinfo" "$R/$h.narinfo"'
finish
