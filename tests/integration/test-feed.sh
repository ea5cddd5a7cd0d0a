#!/usr/bin/env bash
# The change feed of `cairn publish --feed` (docs/PROTOCOL.md), with real
# processes: a Nix store built by nix-build, served; the feed fetched with
# curl and checked with `cairn feed verify`; an item built during the test
# reaches a waiting long-poll without a restart; forged, replayed and
# unsigned pages are refused; the sequence survives a restart and never
# goes back; a garbage-collected path becomes a signed removal; a follower
# too far behind gets 410; the snapshot; the Guix dialect with a Guix key;
# a binary-cache directory as the source.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 zstd
publish_require
nix_lib_init

pstore_init "$TMP/src"
SRC=$(pstore_uri "$TMP/src")
if ! top=$(pstore_build "$TMP/src" 3 fa 100); then
  not_ok "nix-build builds a 3-path closure"
  finish
  exit 1
fi
hp() { basename "$1" | cut -c1-32; }
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" feed-test-1
"$CAIRN" key generate --format nix --secret "$TMP/o.sec" --public "$TMP/o.pub" feed-test-1
"$CAIRN" key generate --format guix --secret "$TMP/g.sec" --public "$TMP/g.pub"
FEED=$TMP/feed
ARGS=("${PSTORE_ARGS[@]}" --key "$TMP/k.sec" --feed "$FEED")

# page SINCE [QUERY]: GET the page after SINCE into $TMP/page
page() { curl -sf --max-time 70 "$PUBLISH_URL/feed/events?since=$1${2:-}" -o "$TMP/page"; }
# field NAME: a head field of $TMP/page ("range" gives two words)
field() { sed -n "s/^$1 //p" "$TMP/page" | head -n 1; }
# wait_head N: poll (bounded, 20 s) until the feed's head is at least N
wait_head() {
  local i
  for ((i = 0; i < 200; i++)); do
    if page 0 && [ "$(field head)" -ge "$1" ]; then return 0; fi
    sleep 0.1
  done
  return 1
}

# wait_item SINCE HASHPART: poll (bounded, 20 s) until the page after SINCE
# adds HASHPART (a build registers its .drv first, then its output)
wait_item() {
  local i
  for ((i = 0; i < 200; i++)); do
    if page "$1" "&max=10000" && grep -q "^add [0-9]* $2 " "$TMP/page"; then return 0; fi
    sleep 0.1
  done
  return 1
}

publish_start "${ARGS[@]}" || { not_ok "cairn publish --feed starts"; finish; exit 1; }
n_valid=$(nix path-info --store "$SRC" --all | wc -l)
check "the feed lists the $n_valid valid paths of the store" wait_head "$n_valid"
FEED_ID=$(field feed)
check "the page names a feed id of 32 hex digits" grep -Eq '^[0-9a-f]{32}$' <<< "$FEED_ID"
if "$CAIRN" feed verify --trusted-key "$TMP/k.pub" --since 0 --feed "$FEED_ID" "$TMP/page" \
  > "$TMP/verify.out" 2> "$TMP/verify.err"; then
  ok "cairn feed verify accepts the page with the server's key"
else
  not_ok "cairn feed verify accepts the page with the server's key"
  sed 's/^/  | /' "$TMP/verify.err"
fi
check "the top path is added, its narinfo trusted through its own Sig" \
  grep -q "^add [0-9]* $(hp "$top") $top trusted$" "$TMP/verify.out"
ni=$(curl -sf "$PUBLISH_URL/$(hp "$top").narinfo")
check "the add event carries the narinfo exactly as served" \
  python3 - "$TMP/page" "$(hp "$top")" "$ni" << 'EOF'
import sys
page, hp, served = open(sys.argv[1], "rb").read(), sys.argv[2], sys.argv[3]
for_hp = [l for l in page.split(b"\n") if l.startswith(b"add ") and l.split()[2].decode() == hp]
head = for_hp[0]
n = int(head.split()[3])
start = page.index(head + b"\n") + len(head) + 1
sys.exit(0 if page[start:start + n].decode() == served + "\n" or page[start:start + n].decode() == served else 1)
EOF

# refusals: another key of the same name, a forged narinfo (hash redone or
# not), a page replayed where the events after 1 were asked for, unsigned
refused() { ! "$CAIRN" feed verify "$@" > /dev/null 2> "$TMP/refused.err"; }
check "a key of the same name that did not sign is refused" \
  refused --trusted-key "$TMP/o.pub" "$TMP/page"
# a forger keeps every length: one digit of a NarSize changed in place
python3 - "$TMP/page" "$TMP/forged" << 'EOF'
import sys
t = bytearray(open(sys.argv[1], "rb").read())
i = t.index(b"\nNarSize: ") + 10
t[i] = ord("1") if t[i] != ord("1") else ord("2")
open(sys.argv[2], "wb").write(t)
EOF
check "a page with a narinfo changed is refused (hash)" refused --trusted-key "$TMP/k.pub" "$TMP/forged"
python3 - "$TMP/forged" << 'EOF'
import hashlib, sys
t = open(sys.argv[1], "rb").read()
i = t.index(b"\nend ") + 1
j = t.index(b"\n", i)
w = t[i:j].split(b" ")
w[2] = hashlib.sha256(t[:i]).hexdigest().encode()
open(sys.argv[1], "wb").write(t[:i] + b" ".join(w) + t[j:])
EOF
check "with its hash redone, it is refused (signature)" \
  refused --trusted-key "$TMP/k.pub" "$TMP/forged"
check "  and the reason says the signature does not verify" grep -q "does not verify" "$TMP/refused.err"
check "a page replayed for another position is refused" \
  refused --trusted-key "$TMP/k.pub" --since 1 "$TMP/page"
check "a page of another feed is refused" \
  refused --trusted-key "$TMP/k.pub" --feed 0123456789abcdef0123456789abcdef "$TMP/page"
grep -v "^sig " "$TMP/page" > "$TMP/unsigned"
check "an unsigned page is refused" refused --trusted-key "$TMP/k.pub" "$TMP/unsigned"

# bounded pages: max=1 gives one event, and the next page follows it
page 0 "&max=1"
check "max=1: a page of one event, range 0 1" [ "$(field range)" = "0 1" ]
check "a malformed query is 400" \
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$PUBLISH_URL/feed/events?since=x")" = 400 ]
page 0
HEAD=$(field head)
check "since past the head is 400" \
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$PUBLISH_URL/feed/events?since=$((HEAD + 5))")" = 400 ]

# long-poll: a request waiting at the head gets the item built meanwhile
curl -sf --max-time 60 "$PUBLISH_URL/feed/events?since=$HEAD&wait=50" -o "$TMP/lp" &
lp=$!
new=$(pstore_build "$TMP/src" 1 fnew 10)
if wait "$lp"; then
  ok "the long-poll at the head answers"
  "$CAIRN" feed verify --trusted-key "$TMP/k.pub" --since "$HEAD" "$TMP/lp" > "$TMP/lp.out" || true
  check "  with the first path nix-build registered, numbered $((HEAD + 1)), verified" \
    grep -q "^add $((HEAD + 1)) [0-9a-z]* .*fnew-1.* trusted$" "$TMP/lp.out"
  check "  from the same server process (no restart)" kill -0 "$PUBLISH_PID"
else
  not_ok "the long-poll at the head answers"
fi
check "the path built during the test is added to the feed" wait_item "$HEAD" "$(hp "$new")"
"$CAIRN" feed verify --trusted-key "$TMP/k.pub" --since "$HEAD" "$TMP/page" > "$TMP/new.out" || true
check "  its narinfo trusted through its own Sig" grep -q "^add [0-9]* $(hp "$new") $new trusted$" "$TMP/new.out"
# a wait with nothing new ends with an empty signed page
HEAD=$(field head)
page "$HEAD" "&wait=1"
check "a wait with nothing new ends with an empty page at the head" \
  [ "$(field range)" = "$HEAD $HEAD" ]

# snapshot: every present item, signed, consistent with the head
curl -sf --max-time 30 "$PUBLISH_URL/feed/snapshot" -o "$TMP/snap.zst"
if "$CAIRN" feed verify --trusted-key "$TMP/k.pub" --feed "$FEED_ID" "$TMP/snap.zst" \
  > "$TMP/snap.out" 2> "$TMP/snap.err"; then
  ok "the snapshot verifies"
  n_valid=$(nix path-info --store "$SRC" --all | wc -l)
  check "  it holds every valid path ($n_valid), at the head" \
    grep -q "^snapshot $FEED_ID dialect nix range 0 $HEAD head $HEAD events $n_valid$" "$TMP/snap.out"
else
  not_ok "the snapshot verifies"
  sed 's/^/  | /' "$TMP/snap.err"
fi

metrics=$(curl -sf "$PUBLISH_URL/metrics")
check "/metrics counts the feed's events, pages and snapshots" \
  bash -c 'grep -Eq "^cairn_feed_events_total [1-9]" <<< "$0" && grep -Eq "^cairn_feed_pages_total [1-9]" <<< "$0" && grep -Eq "^cairn_feed_snapshots_total 1$" <<< "$0"' "$metrics"

# restart: the same feed, the same head; the next event follows it
publish_stop || not_ok "cairn publish stops (a long-poll pending does not hold it)"
publish_start "${ARGS[@]}" || { not_ok "cairn publish restarts"; finish; exit 1; }
page 0
check "after a restart: the same feed id" [ "$(field feed)" = "$FEED_ID" ]
check "  and the same head" [ "$(field head)" = "$HEAD" ]
new2=$(pstore_build "$TMP/src" 1 fnew2 10)
wait_item "$HEAD" "$(hp "$new2")" || true
check "  the next event gets the next number, $((HEAD + 1))" \
  grep -q "^add $((HEAD + 1)) " "$TMP/page"
HEAD=$(field head)

# a long-poll pending does not hold a stop up
curl -s --max-time 60 "$PUBLISH_URL/feed/events?since=$HEAD&wait=50" -o /dev/null &
lp=$!
sleep 0.3
check "a stop with a long-poll pending is prompt" publish_stop
wait "$lp" || true

# removal: the garbage collector deletes a path; a signed page says so
publish_start "${ARGS[@]}" || { not_ok "cairn publish restarts"; finish; exit 1; }
nix-store --store "$SRC" --delete "$new2" > /dev/null 2>&1 || true
removed=no
for ((i = 0; i < 100; i++)); do
  page "$HEAD"
  if grep -q "^remove [0-9]* $(hp "$new2")$" "$TMP/page"; then removed=yes; break; fi
  sleep 0.2
done
check "a path deleted from the store becomes a remove event" [ "$removed" = yes ]
check "  on a page that verifies" \
  "$CAIRN" feed verify --trusted-key "$TMP/k.pub" --since "$HEAD" "$TMP/page"
HEAD=$(field head)
publish_stop || true

# a follower too far behind: 410, and the snapshot still works
publish_start "${ARGS[@]}" --feed-keep 1 || { not_ok "cairn publish restarts"; finish; exit 1; }
pstore_build "$TMP/src" 1 fnew3 10 > /dev/null
for ((i = 0; i < 200; i++)); do
  code=$(curl -s -o "$TMP/gone" -w '%{http_code}' "$PUBLISH_URL/feed/events?since=0")
  [ "$code" != 410 ] || break
  sleep 0.1
done
check "--feed-keep 1: since=0 is 410 Gone" [ "$code" = 410 ]
check "  and says to bootstrap from the snapshot" grep -q "snapshot" "$TMP/gone"
curl -sf --max-time 30 "$PUBLISH_URL/feed/snapshot" -o "$TMP/snap.zst"
check "  the snapshot verifies" "$CAIRN" feed verify --trusted-key "$TMP/k.pub" "$TMP/snap.zst"
publish_stop || true

# Guix dialect, signed with a Guix key: pages verify with it; the narinfos
# are Guix's and trusted through their own Signature
publish_start "${PSTORE_ARGS[@]}" --dialect guix --key "$TMP/g.sec" --feed "$TMP/feed-guix" ||
  { not_ok "cairn publish --dialect guix --feed starts"; finish; exit 1; }
n_valid=$(nix path-info --store "$SRC" --all | wc -l)
wait_head "$n_valid" || true
if "$CAIRN" feed verify --trusted-key "$TMP/g.pub" --since 0 "$TMP/page" > "$TMP/gv.out" 2> "$TMP/gv.err"; then
  ok "Guix dialect: the page verifies with the Guix key"
  check "  it says dialect guix" grep -q "^page [0-9a-f]* dialect guix " "$TMP/gv.out"
  check "  the top path's Guix narinfo is trusted" grep -q "^add [0-9]* $(hp "$top") $top trusted$" "$TMP/gv.out"
  check "  the Nix key does not verify it" refused --trusted-key "$TMP/k.pub" "$TMP/page"
else
  not_ok "Guix dialect: the page verifies with the Guix key"
  sed 's/^/  | /' "$TMP/gv.err"
fi
publish_stop || true

# a binary-cache directory as the source: its narinfos as they are
BC=$TMP/bc
nix copy --quiet --from "$SRC" --to "file://$BC" --no-check-sigs "$top" 2> /dev/null ||
  not_ok "nix copy to a binary-cache directory"
publish_start --binary-cache "$BC" --key "$TMP/k.sec" --feed "$TMP/feed-bc" ||
  { not_ok "cairn publish --binary-cache --feed starts"; finish; exit 1; }
check "binary cache: the feed lists its 3 narinfos" wait_head 3
check "  the page verifies" "$CAIRN" feed verify --trusted-key "$TMP/k.pub" --since 0 "$TMP/page"
BHEAD=$(field head)
curl -sf --max-time 60 "$PUBLISH_URL/feed/events?since=$BHEAD&wait=50" -o "$TMP/lp" &
lp=$!
nix copy --quiet --from "$SRC" --to "file://$BC" --no-check-sigs "$new" 2> /dev/null || true
if wait "$lp"; then
  check "  a narinfo copied in meanwhile reaches a waiting long-poll" \
    grep -q "^add $((BHEAD + 1)) $(hp "$new") " "$TMP/lp"
  check "  byte for byte the file" python3 - "$TMP/lp" "$BC/$(hp "$new").narinfo" << 'EOF'
import sys
page, f = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
sys.exit(0 if b"\n" + f + b"\nend " in page else 1)
EOF
else
  not_ok "  a narinfo copied in meanwhile reaches a waiting long-poll"
fi
rm "$BC/$(hp "$new").narinfo"
removed=no
for ((i = 0; i < 100; i++)); do
  page "$((BHEAD + 1))" || true
  if grep -q "^remove $((BHEAD + 2)) $(hp "$new")$" "$TMP/page"; then removed=yes; break; fi
  sleep 0.2
done
check "  a narinfo removed from the directory becomes a remove event" [ "$removed" = yes ]
publish_stop || not_ok "cairn publish --binary-cache stops cleanly"

# --user (as root): the log is opened as root (its -wal and -shm too,
# kept open), then the server runs as nobody: a snapshot (a connection of
# its own, opened as nobody) and new events still work
if [ "$(id -u)" = 0 ] && id nobody > /dev/null 2>&1; then
  chmod o+x "$TMP"
  chmod -R o+rX "$BC"
  publish_start --binary-cache "$BC" --key "$TMP/k.sec" --feed "$TMP/feed-user" --user nobody ||
    { not_ok "cairn publish --feed --user nobody starts"; finish; exit 1; }
  wait_head 3 || true
  curl -sf --max-time 30 "$PUBLISH_URL/feed/snapshot" -o "$TMP/snap-user.zst" || true
  check "--user nobody: the snapshot verifies" \
    "$CAIRN" feed verify --trusted-key "$TMP/k.pub" "$TMP/snap-user.zst"
  h=$(field head)
  rm "$BC/$(hp "$top").narinfo"
  check "  and a change becomes an event" wait_head $((h + 1))
  publish_stop || true
fi

finish
