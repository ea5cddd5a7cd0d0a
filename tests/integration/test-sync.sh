#!/usr/bin/env bash
# cairn sync, initial replication: a head (cairn publish --binary-cache over
# a `nix copy` of a closure built by Nix, signed, with --feed) is
# replicated into a directory: nix-cache-info and narinfos byte for byte,
# the files as served; the real Nix copies from the replica with the head's
# key; an item signed by an unknown key and a tampered file are refused and
# named while the rest is copied; a second run copies nothing; debris of a
# killed run is swept; a snapshot signed by an unknown key is refused.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 cmp
publish_require
nix_lib_init

pstore_init "$TMP/src"
SRC=$(pstore_uri "$TMP/src")
top=$(pstore_build "$TMP/src" 4 sy 5000) || { not_ok "nix-build builds a closure"; finish; exit 1; }
bad=$(pstore_build "$TMP/src" 1 sybad 100)
tam=$(pstore_build "$TMP/src" 1 sytam 3000)
hp() { basename "$1" | cut -c1-32; }
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" head-test-1
"$CAIRN" key generate --format nix --secret "$TMP/o.sec" --public "$TMP/o.pub" other-test-1
BC=$TMP/head
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/k.sec&compression=xz" "$top" "$tam"
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/o.sec&compression=xz" "$bad"
# tamper with one file: same size, one byte changed (FileHash catches it)
tam_file=$BC/$(sed -n 's/^URL: //p' "$BC/$(hp "$tam").narinfo")
python3 - "$tam_file" << 'EOF'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
b[len(b) // 2] ^= 0xff
open(sys.argv[1], "wb").write(b)
EOF
n_head=$(ls "$BC"/*.narinfo | wc -l)

publish_start --binary-cache "$BC" --key "$TMP/k.sec" --feed "$TMP/feed" ||
  { not_ok "the head starts"; finish; exit 1; }
for ((i = 0; i < 200; i++)); do
  curl -sf "$PUBLISH_URL/feed/events?since=0" -o "$TMP/page" &&
    [ "$(sed -n 's/^head //p' "$TMP/page")" -ge "$n_head" ] && break
  sleep 0.1
done

R=$TMP/replica
mkdir -p "$R/nar"
: > "$R/.debris.narinfo.AbCdEf"
: > "$R/nar/.debris.nar.xz.AbCdEf"
if "$CAIRN" sync --from "$PUBLISH_URL" --to "$R" --trusted-key "$TMP/k.pub" \
  > "$TMP/sync.out" 2> "$TMP/sync.err"; then
  not_ok "sync exits 1 when items were refused"
else
  ok "sync exits 1 when items were refused"
fi
sed 's/^/  | /' "$TMP/sync.out" "$TMP/sync.err"
check "  it names the item signed by an unknown key" grep -q "$bad: refused" "$TMP/sync.err"
check "  and the tampered one, whose file does not verify" grep -q "$tam: refused or failed: no server sent a NAR that verifies" "$TMP/sync.err"
check "  and copied the $((n_head - 2)) others" grep -q " $n_head items, $((n_head - 2)) copied, 0 already there, 1 refused, 1 failed" "$TMP/sync.out"
check "nix-cache-info is the head's, byte for byte" cmp -s "$BC/nix-cache-info" "$R/nix-cache-info"
same=yes
for f in "$BC"/*.narinfo; do
  b=$(basename "$f")
  case $b in "$(hp "$bad")".narinfo | "$(hp "$tam")".narinfo) continue ;; esac
  cmp -s "$f" "$R/$b" || { same=no; echo "  $b differs or is missing"; }
  u=$(sed -n 's/^URL: //p' "$f")
  cmp -s "$BC/$u" "$R/$u" || { same=no; echo "  $u differs or is missing"; }
done
check "every trusted narinfo and its file are the head's, byte for byte" [ "$same" = yes ]
check "no narinfo for the refused items" \
  [ ! -e "$R/$(hp "$bad").narinfo" ] && [ ! -e "$R/$(hp "$tam").narinfo" ]
check "no temporary file left, the old debris swept" \
  [ -z "$(find "$R" -name '.*' -type f)" ]
dst=$TMP/dst
if nix copy --quiet --from "file://$R" --to "$(pstore_dst_uri "$dst")" \
  --option trusted-public-keys "$(cat "$TMP/k.pub")" "$top" 2> "$TMP/copy.err"; then
  ok "the real Nix copies the closure from the replica with the head's key"
else
  not_ok "the real Nix copies the closure from the replica with the head's key"
  sed 's/^/  | /' "$TMP/copy.err"
fi

"$CAIRN" sync --from "$PUBLISH_URL" --to "$R" --trusted-key "$TMP/k.pub" > "$TMP/sync2.out" 2> /dev/null || true
check "a second run copies nothing again" \
  grep -q " 0 copied, $((n_head - 2)) already there" "$TMP/sync2.out"

check "a snapshot signed by no trusted key is refused" \
  bash -c '! "$0" sync --from "$1" --to "$2" --trusted-key "$3" 2> "$4"' \
  "$CAIRN" "$PUBLISH_URL" "$TMP/replica2" "$TMP/o.pub" "$TMP/sync3.err"
check "  saying why" grep -q "not trusted" "$TMP/sync3.err"
# the items are read as the snapshot streams: only one whose own narinfo
# that key signed may have been copied; the head's key's are not
check "  and no item signed by another key was copied" \
  [ -z "$(ls "$TMP/replica2" | grep -v "^nix-cache-info$" | grep -v "^nar$" | grep -v "^$(hp "$bad").narinfo$")" ]

# --follow: the replica follows the head's feed; a replica of the replica
# (served by cairn publish --binary-cache with its own feed key) follows
# it: an item built and published at the head reaches the end of the chain
HEAD_PID=$PUBLISH_PID HEAD_URL=$PUBLISH_URL
"$CAIRN" key generate --format nix --secret "$TMP/r.sec" --public "$TMP/r.pub" replica-test-1
"$CAIRN" sync --from "$HEAD_URL" --to "$R" --trusted-key "$TMP/k.pub" --follow \
  --status "$TMP/status" > "$TMP/follow.out" 2> "$TMP/follow.err" &
f1=$!
cleanup_hooks+=("kill -9 $f1 2>/dev/null")
publish_start --binary-cache "$R" --key "$TMP/r.sec" --feed "$TMP/feed-r" ||
  { not_ok "the replica is served"; finish; exit 1; }
R_PID=$PUBLISH_PID R_URL=$PUBLISH_URL
R2=$TMP/replica2b
"$CAIRN" sync --from "$R_URL" --to "$R2" --trusted-key "$TMP/k.pub" --trusted-key "$TMP/r.pub" \
  --follow > "$TMP/follow2.out" 2> "$TMP/follow2.err" &
f2=$!
cleanup_hooks+=("kill -9 $f2 2>/dev/null")
# wait_file FILE: bounded (30 s)
wait_file() {
  local i
  for ((i = 0; i < 300; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done
  return 1
}
wait_gone() {
  local i
  for ((i = 0; i < 300; i++)); do [ ! -e "$1" ] && return 0; sleep 0.1; done
  return 1
}
check "the replica of the replica gets the closure" wait_file "$R2/$(hp "$top").narinfo"
new=$(pstore_build "$TMP/src" 1 synew 2000)
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/k.sec&compression=xz" "$new"
check "an item published at the head during the test reaches the replica" \
  wait_file "$R/$(hp "$new").narinfo"
check "  byte for byte" cmp -s "$BC/$(hp "$new").narinfo" "$R/$(hp "$new").narinfo"
check "  and the end of the chain" wait_file "$R2/$(hp "$new").narinfo"
check "  byte for byte there too" cmp -s "$BC/$(hp "$new").narinfo" "$R2/$(hp "$new").narinfo"
head_seq=$(curl -sf "$HEAD_URL/feed/events?since=0&max=1" | sed -n 's/^head //p')
check "the status file says the replica is at the head's seq, lag 0" \
  grep -qx "seq $head_seq" "$TMP/status"
new_file=$(sed -n 's/^URL: //p' "$BC/$(hp "$new").narinfo")
rm "$BC/$(hp "$new").narinfo"
check "an item removed at the head is removed from the replica (signed page)" \
  wait_gone "$R/$(hp "$new").narinfo"
check "  its file, named by its content (another item may share it), stays" [ -e "$R/$new_file" ]
check "  and from the end of the chain" wait_gone "$R2/$(hp "$new").narinfo"
# the head's feed recreated (a new feed id, its own numbering, fewer events
# than the replica had seen: a 400 for its position): the replica finds the
# new feed and follows it from its snapshot, instead of retrying forever
HEAD_PORT=${HEAD_URL##*:}
kill "$HEAD_PID"
wait_gone_pid() { local i; for ((i = 0; i < 100; i++)); do kill -0 "$1" 2> /dev/null || return 0; sleep 0.1; done; return 1; }
wait_gone_pid "$HEAD_PID"
new2=$(pstore_build "$TMP/src" 1 synew2 2000)
# removed while the head was down: the new feed never says so, its snapshot
# just lacks it
rm "$BC/$(hp "$top").narinfo"
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/k.sec&compression=xz" "$new2"
"$CAIRN" publish --listen "127.0.0.1:$HEAD_PORT" --binary-cache "$BC" --key "$TMP/k.sec" \
  --feed "$TMP/feed-new" > "$TMP/publish-new.log" 2>&1 &
HEAD_PID=$!
cleanup_hooks+=("kill -9 $HEAD_PID 2>/dev/null")
check "the head's feed recreated: the replica follows the new feed" \
  wait_file "$R/$(hp "$new2").narinfo"
check "  byte for byte" cmp -s "$BC/$(hp "$new2").narinfo" "$R/$(hp "$new2").narinfo"
check "  and says so once" test "$(grep -c "the feed is now" "$TMP/follow.err")" = 1
check "an item the new snapshot lacks is removed from the replica" \
  wait_gone "$R/$(hp "$top").narinfo"
rest=yes
for f in "$BC"/*.narinfo; do
  b=${f##*/}
  case $b in "$(hp "$bad")".narinfo | "$(hp "$tam")".narinfo) continue ;; esac
  [ -e "$R/$b" ] || rest=no
done
check "  every item the head still has stays" [ "$rest" = yes ]
kill -TERM "$f1" "$f2"
stopped=yes
for p in "$f1" "$f2"; do
  for ((i = 0; i < 100; i++)); do kill -0 "$p" 2> /dev/null || break; sleep 0.1; done
  if kill -0 "$p" 2> /dev/null; then stopped=no; fi
done
check "followers stop promptly on SIGTERM, in the middle of a long-poll" [ "$stopped" = yes ]
wait "$f1" "$f2" 2> /dev/null || true
{ sed "s/^/  | /" "$TMP/follow.err" "$TMP/follow2.err" | grep -v "refused" | head -20; } || true
publish_stop || true
PUBLISH_PID=$HEAD_PID
publish_stop || true
finish
