#!/usr/bin/env bash
# cairn sync from a store head: cairn publish over a Nix store built here,
# without --cache, so its nar URLs carry a query ("?hash=").  A replica
# keeps each nar under its plain file name and its narinfo names that file
# (the URL is not signed; every signed byte stays the head's), so the real
# Nix reads the replica as a file:// cache.  The chain head -> replica ->
# replica of the replica (each replica served by cairn publish
# --binary-cache --feed): an item built with nix-build during the test
# reaches the end of the chain, and a path deleted from the head's store
# leaves it through the signed feeds.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 cmp
publish_require
nix_lib_init

pstore_init "$TMP/src"
SRC=$(pstore_uri "$TMP/src")
top=$(pstore_build "$TMP/src" 3 ss 3000) || { not_ok "nix-build"; finish; exit 1; }
hp() { basename "$1" | cut -c1-32; }
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" head-test-1
"$CAIRN" key generate --format nix --secret "$TMP/r.sec" --public "$TMP/r.pub" replica-test-1
publish_start "${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --feed "$TMP/feed" ||
  { not_ok "the head starts"; finish; exit 1; }
HEAD_PID=$PUBLISH_PID HEAD_URL=$PUBLISH_URL
n_valid=$(nix path-info --store "$SRC" --all | wc -l)
at_head() {
  curl -sf "$HEAD_URL/feed/events?since=0&max=1" -o "$TMP/page" &&
    [ "$(sed -n 's/^head //p' "$TMP/page")" -ge "$n_valid" ]
}
wait_for 30 at_head || true
ni=$(curl -sf "$HEAD_URL/$(hp "$top").narinfo")
check "the head's nar URL carries a query" grep -q '^URL: nar/.*?hash=' <<< "$ni"

R=$TMP/replica R2=$TMP/replica2
"$CAIRN" sync --from "$HEAD_URL" --to "$R" --trusted-key "$TMP/k.pub" --follow \
  --status "$TMP/status" > /dev/null 2> "$TMP/follow.err" &
f1=$!
cleanup_hooks+=("kill -9 $f1 2>/dev/null")
check "the replica gets the closure" wait_file "$R/$(hp "$top").narinfo" 30
rni=$(cat "$R/$(hp "$top").narinfo")
url=$(narinfo_field "$rni" URL)
check "  its narinfo names the nar's plain file ($url)" \
  bash -c '[[ $0 == nar/* && $0 != *"?"* && -f $1/$0 ]]' "$url" "$R"
check "  every other line is the head's, Sig included" \
  cmp -s <(grep -v '^URL: ' <<< "$ni") <(grep -v '^URL: ' <<< "$rni")
if nix copy --quiet --from "file://$R" --to "$(pstore_dst_uri "$TMP/dst")" \
  --option trusted-public-keys "$(cat "$TMP/k.pub")" "$top" 2> "$TMP/copy.err"; then
  ok "the real Nix copies the closure from the replica as a file:// cache, with the head's key"
else
  not_ok "the real Nix copies the closure from the replica as a file:// cache, with the head's key"
  sed 's/^/  | /' "$TMP/copy.err"
fi

publish_start --binary-cache "$R" --key "$TMP/r.sec" --feed "$TMP/feed-r" ||
  { not_ok "the replica is served"; finish; exit 1; }
R_PID=$PUBLISH_PID R_URL=$PUBLISH_URL
"$CAIRN" sync --from "$R_URL" --to "$R2" --trusted-key "$TMP/k.pub" --trusted-key "$TMP/r.pub" \
  --follow > /dev/null 2> "$TMP/follow2.err" &
f2=$!
cleanup_hooks+=("kill -9 $f2 2>/dev/null")
check "the replica of the replica gets the closure" wait_file "$R2/$(hp "$top").narinfo" 30
check "  byte for byte the replica's" cmp -s "$R/$(hp "$top").narinfo" "$R2/$(hp "$top").narinfo"

new=$(pstore_build "$TMP/src" 1 ssnew 2000) || not_ok "nix-build of a new item"
check "an item built with nix-build during the test reaches the replica" \
  wait_file "$R/$(hp "$new").narinfo" 30
check "  and the end of the chain" wait_file "$R2/$(hp "$new").narinfo" 30
check "  byte for byte the replica's there" \
  cmp -s "$R/$(hp "$new").narinfo" "$R2/$(hp "$new").narinfo"
if nix copy --quiet --from "file://$R2" --to "$(pstore_dst_uri "$TMP/dst2")" \
  --option trusted-public-keys "$(cat "$TMP/k.pub")" "$new" 2> "$TMP/copy2.err"; then
  ok "  the real Nix copies it from the end of the chain with the head's key"
else
  not_ok "  the real Nix copies it from the end of the chain with the head's key"
  sed 's/^/  | /' "$TMP/copy2.err"
fi

head_seq=$(curl -sf "$HEAD_URL/feed/events?since=0&max=1" | sed -n 's/^head //p')
at_seq() { grep -qx "seq $head_seq" "$TMP/status" && grep -qx "head $head_seq" "$TMP/status"; }
check "the replica's status file says it is at the head's seq ($head_seq)" wait_for 30 at_seq
check "  lag 0, and when" bash -c 'grep -qx "lag 0" "$0" && grep -Eqx "updated [0-9]+" "$0"' "$TMP/status"

nix-store --store "$SRC" --delete "$new" > /dev/null 2>&1 || not_ok "nix-store --delete"
gone() { [ ! -e "$1" ]; }
check "a path deleted from the head's store leaves the replica (signed page)" \
  wait_for 30 gone "$R/$(hp "$new").narinfo"
check "  and the end of the chain" wait_for 30 gone "$R2/$(hp "$new").narinfo"
check "  the rest stays" [ -e "$R2/$(hp "$top").narinfo" ]
check "no page was refused on the way" \
  bash -c '! grep -q "refused" "$0" "$1"' "$TMP/follow.err" "$TMP/follow2.err"
kill -TERM "$f1" "$f2"
wait "$f1" "$f2" 2> /dev/null || true
publish_stop || true
PUBLISH_PID=$HEAD_PID
publish_stop || true
finish
