#!/usr/bin/env bash
# cairn sync from a Guix-dialect head: cairn publish --dialect guix over a
# store built by Nix, signed with a Guix key, with --feed.  The replica's
# narinfos are the head's byte for byte and verify with the Guix key; the
# files are under Guix's nar/<method>/<basename>, and the replica served by
# cairn publish --binary-cache answers them as the head does.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 cmp zstd
publish_require
nix_lib_init

pstore_init "$TMP/src"
top=$(pstore_build "$TMP/src" 3 gs 3000) || { not_ok "nix-build"; finish; exit 1; }
hp() { basename "$1" | cut -c1-32; }
"$CAIRN" key generate --format guix --secret "$TMP/g.sec" --public "$TMP/g.pub"
publish_start "${PSTORE_ARGS[@]}" --dialect guix --key "$TMP/g.sec" --compression zstd,none \
  --feed "$TMP/feed" || { not_ok "the Guix-dialect head starts"; finish; exit 1; }
HEAD_URL=$PUBLISH_URL HEAD_PID=$PUBLISH_PID
n_valid=$(nix path-info --store "$(pstore_uri "$TMP/src")" --all | wc -l)
for ((i = 0; i < 200; i++)); do
  curl -sf "$HEAD_URL/feed/events?since=0" -o "$TMP/page" &&
    [ "$(sed -n 's/^head //p' "$TMP/page")" -ge "$n_valid" ] && break
  sleep 0.1
done
R=$TMP/replica
if "$CAIRN" sync --from "$HEAD_URL" --to "$R" --trusted-key "$TMP/g.pub" > "$TMP/sync.out" 2> "$TMP/sync.err"; then
  ok "sync from a Guix-dialect head, trusting its Guix key"
else
  not_ok "sync from a Guix-dialect head, trusting its Guix key"
  sed 's/^/  | /' "$TMP/sync.out" "$TMP/sync.err"
fi
check "  every valid path copied" grep -q " $n_valid items, $n_valid copied" "$TMP/sync.out"
ni=$R/$(hp "$top").narinfo
curl -sf "$HEAD_URL/$(hp "$top").narinfo" -o "$TMP/head.narinfo"
check "the narinfo is the head's, byte for byte" cmp -s "$TMP/head.narinfo" "$ni"
check "  it verifies with the Guix key" "$CAIRN" narinfo verify --trusted-key "$TMP/g.pub" < "$ni"
url=$(sed -n 's/^URL: //p' "$ni" | head -n 1)
check "  its first URL is Guix's nar/zstd/<basename>" [ "$url" = "nar/zstd/$(basename "$top")" ]
check "  and the file is there" [ -s "$R/$url" ]
check "  decompressing to the nar the head serves uncompressed" \
  bash -c 'cmp -s <(zstd -dc "$0") <(curl -sf "$1/nar/$2")' "$R/$url" "$HEAD_URL" "$(basename "$top")"
check "its listing is the head's" \
  bash -c 'cmp -s <(curl -sf "$0/$1.ls") "$2/$1.ls"' "$HEAD_URL" "$(hp "$top")" "$R"
drv=$(sed -n 's/^Deriver: //p' "$ni")
check "its build log is the head's" \
  bash -c '[ -s "$2/log/$1" ] && cmp -s <(curl -sf "$0/log/$1") "$2/log/$1"' "$HEAD_URL" "$drv" "$R"
: > "$R/nar/zstd/.debris.AbCdEf"
"$CAIRN" sync --from "$HEAD_URL" --to "$R" --trusted-key "$TMP/g.pub" > "$TMP/sync2.out" 2>&1 || true
check "a second run copies nothing and sweeps nar/zstd/ too" \
  bash -c 'grep -q " 0 copied, $0 already there" "$1" && [ ! -e "$2" ]' "$n_valid" "$TMP/sync2.out" "$R/nar/zstd/.debris.AbCdEf"
publish_start --binary-cache "$R" || { not_ok "the replica is served"; finish; exit 1; }
check "the replica serves the narinfo" \
  bash -c 'cmp -s <(curl -sf "$0/$1.narinfo") "$2"' "$PUBLISH_URL" "$(hp "$top")" "$ni"
check "  and the nar at its Guix URL" \
  bash -c 'cmp -s <(curl -sf "$0/$1") "$2"' "$PUBLISH_URL" "$url" "$R/$url"
curl -sf "$PUBLISH_URL/$(hp "$top").narinfo" -o "$TMP/served.narinfo" || true
if python3 -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("gcrypt") else 1)'; then
  check "  the narinfo it serves verifies with libgcrypt directly, as a Guix client checks it" \
    python3 "$SRCDIR/tests/integration/guix-verify.py" "$TMP/served.narinfo" "$TMP/g.pub"
fi
publish_stop || true
PUBLISH_PID=$HEAD_PID
publish_stop || true
finish
