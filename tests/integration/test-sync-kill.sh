#!/usr/bin/env bash
# cairn sync killed with SIGKILL at random moments, 10 times, each kill
# followed by a consistency check of the replica (every narinfo has its
# file, byte for byte the head's, so its FileHash holds; nothing else but
# temporary files may be left), then a restart that must complete the
# replica and leave no temporary file.  Items already in place are never
# copied again.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 cmp
publish_require
nix_lib_init

pstore_init "$TMP/src"
SRC=$(pstore_uri "$TMP/src")
# 24 items of 1 MiB: enough bytes that a kill lands in the middle of a copy
top=$(pstore_build "$TMP/src" 24 sk $((1024 * 1024))) || { not_ok "nix-build"; finish; exit 1; }
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" head-test-1
BC=$TMP/head
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/k.sec&compression=none" "$top"
n_head=$(ls "$BC"/*.narinfo | wc -l)
publish_start --binary-cache "$BC" --key "$TMP/k.sec" --feed "$TMP/feed" ||
  { not_ok "the head starts"; finish; exit 1; }
for ((i = 0; i < 200; i++)); do
  curl -sf "$PUBLISH_URL/feed/events?since=0" -o "$TMP/page" &&
    [ "$(sed -n 's/^head //p' "$TMP/page")" -ge "$n_head" ] && break
  sleep 0.1
done

R=$TMP/replica
mkdir -p "$R"
count() { find "$R" -maxdepth 1 -name '*.narinfo' | wc -l; }
# consistent [final]: every narinfo in R is the head's and its file is the
# head's; final: no temporary file either, and every item is there
consistent() {
  local f b u n=0
  for f in "$R"/*.narinfo; do
    [ -e "$f" ] || continue
    b=$(basename "$f")
    cmp -s "$f" "$BC/$b" || { echo "  $b differs from the head's"; return 1; }
    u=$(sed -n 's/^URL: //p' "$f")
    cmp -s "$R/$u" "$BC/$u" || { echo "  $u (of $b) is missing or differs"; return 1; }
    n=$((n + 1))
  done
  if [ "${1:-}" = final ]; then
    [ -z "$(find "$R" -name '.*' -type f)" ] || { echo "  temporary files left"; return 1; }
    [ "$n" -eq "$n_head" ] || { echo "  $n of $n_head items"; return 1; }
  fi
}

# Each round: a third of the items taken out of the replica (from the
# second round on, so that the run has work), a run killed at a random
# moment, the consistency check, then a restart that must complete the
# replica, copying only what is missing, and leave no temporary file.
bad=0 killed_mid=0 debris=0 restarts_bad=0
for ((k = 1; k <= 10; k++)); do
  if [ "$k" -gt 1 ]; then
    for f in "$R"/*.narinfo; do
      [ $((RANDOM % 3)) -eq 0 ] || continue
      u=$(sed -n 's/^URL: //p' "$f")
      rm -f "$f" "$R/$u"
    done
  fi
  before=$(count)
  "$CAIRN" sync --from "$PUBLISH_URL" --to "$R" --trusted-key "$TMP/k.pub" --parallel 2 \
    > /dev/null 2>&1 &
  pid=$!
  sleep "0.0$((RANDOM % 10))$((RANDOM % 10))"
  if kill -9 "$pid" 2> /dev/null; then killed_mid=$((killed_mid + 1)); fi
  wait "$pid" 2> /dev/null || true
  consistent || { bad=$((bad + 1)); echo "  after kill $k"; }
  [ -z "$(find "$R" -name '.*' -type f)" ] || debris=$((debris + 1))
  [ "$(count)" -ge "$before" ] || { bad=$((bad + 1)); echo "  kill $k lost items"; }
  mid=$(count)
  "$CAIRN" sync --from "$PUBLISH_URL" --to "$R" --trusted-key "$TMP/k.pub" > "$TMP/restart.out" 2>&1 ||
    { restarts_bad=$((restarts_bad + 1)); echo "  restart $k failed"; sed 's/^/  | /' "$TMP/restart.out"; }
  consistent final || { restarts_bad=$((restarts_bad + 1)); echo "  after restart $k"; }
  present=$(sed -n 's/.* copied, \([0-9]*\) already there.*/\1/p' "$TMP/restart.out")
  [ "${present:-x}" = "$mid" ] ||
    { restarts_bad=$((restarts_bad + 1)); echo "  restart $k: ${present:-?} already there, $mid were"; }
done
echo "  $killed_mid of 10 kills landed while sync ran, $debris in the middle of a file"
check "after each of 10 kill -9s the replica is consistent" [ "$bad" -eq 0 ]
check "each restart completes it, copies only what was missing, leaves no temporary file" \
  [ "$restarts_bad" -eq 0 ]
publish_stop || true
finish
