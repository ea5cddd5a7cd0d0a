#!/usr/bin/env bash
# A follower behind a proxy that forges feed pages: a page removing an
# item, hashed right but signed for another statement (as a forger without
# the key would make it), is refused and logged, and the item stays; once
# the proxy passes the head's pages through again, the follower goes on
# and gets an item published meanwhile.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3
publish_require
nix_lib_init

pstore_init "$TMP/src"
SRC=$(pstore_uri "$TMP/src")
top=$(pstore_build "$TMP/src" 2 fg 1000) || { not_ok "nix-build"; finish; exit 1; }
hp() { basename "$1" | cut -c1-32; }
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" head-test-1
BC=$TMP/head
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/k.sec&compression=zstd" "$top"
publish_start --binary-cache "$BC" --key "$TMP/k.sec" --feed "$TMP/feed" ||
  { not_ok "the head starts"; finish; exit 1; }
for ((i = 0; i < 200; i++)); do
  curl -sf "$PUBLISH_URL/feed/events?since=0" -o "$TMP/page" &&
    [ "$(sed -n 's/^head //p' "$TMP/page")" -ge 2 ] && break
  sleep 0.1
done
echo pass > "$TMP/mode"
python3 "$SRCDIR/tests/integration/feed-proxy.py" "$PUBLISH_URL" "$TMP/mode" "$TMP/proxy-port" &
cleanup_hooks+=("kill $! 2>/dev/null")
for ((i = 0; i < 100; i++)); do [ -s "$TMP/proxy-port" ] && break; sleep 0.1; done
PROXY=http://127.0.0.1:$(cat "$TMP/proxy-port")

R=$TMP/replica
printf 'forge\n%s\n' "$(hp "$top")" > "$TMP/mode"
"$CAIRN" sync --from "$PROXY" --to "$R" --trusted-key "$TMP/k.pub" --follow \
  > /dev/null 2> "$TMP/follow.err" &
f=$!
cleanup_hooks+=("kill -9 $f 2>/dev/null")
refused=no
for ((i = 0; i < 200; i++)); do
  if grep -q "page after [0-9]* refused: .*does not verify" "$TMP/follow.err"; then refused=yes; break; fi
  sleep 0.1
done
check "a forged page (a removal, signed for another statement) is refused and logged" [ "$refused" = yes ]
check "  the item it would remove stays" [ -e "$R/$(hp "$top").narinfo" ]
echo pass > "$TMP/mode"
new=$(pstore_build "$TMP/src" 1 fgnew 500)
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/k.sec&compression=zstd" "$new"
arrived=no
for ((i = 0; i < 300; i++)); do [ -e "$R/$(hp "$new").narinfo" ] && { arrived=yes; break; }; sleep 0.1; done
check "then, with the head's pages again, the follower goes on: a new item arrives" [ "$arrived" = yes ]
check "  and the item stays" [ -e "$R/$(hp "$top").narinfo" ]
kill -TERM "$f"
for ((i = 0; i < 100; i++)); do kill -0 "$f" 2> /dev/null || break; sleep 0.1; done
check "the follower stops on SIGTERM" bash -c '! kill -0 "$0" 2> /dev/null' "$f"
publish_stop || true
finish
