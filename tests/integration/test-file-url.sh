#!/usr/bin/env bash
# file:// binary caches (issue 12.8): fetch, weather, challenge and mirror
# read a `nix copy --to file://DIR` directory as they read an HTTP cache,
# and a narinfo can never make them read a file outside that directory.
. "$SRCDIR/tests/integration/lib.sh"
skip_unless curl xz

V=$VECTORS_DIR/nix
PUB=$V/keys/cache.example.org-1.pub
TOP=/nix/store/x6b6ah9iya8w14wv5fzzwj36lf2yyghw-appvec-3.0
C=$TMP/cache
cp -r "$V/cache-xz" "$C"
U=file://$C

rc=0; "$CAIRN" fetch --no-cache --json --from "$U" --trusted-key "$PUB" --store "$TMP/r" \
  --closure "$TOP" >"$TMP/j" 2>"$TMP/err" || rc=$?
cat "$TMP/err"
check "fetch --from file://: the closure of 3 is fetched" \
  bash -c '[ "$0" = 0 ] && grep -q "\"fetched\":3" "$1"' "$rc" "$TMP/j"
check "  ... and unpacked" test -x "$TMP/r$TOP/bin/appvec" -o -e "$TMP/r$TOP"

out=$("$CAIRN" weather --from "$U" "$TOP" /nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-none)
check "weather: file:// 1 of 2 (a missing file is absent, as a 404)" \
  bash -c 'grep -q "50.0% available (1 of 2)" <<<"$0" && grep -q "1 absent, 0 invalid, 0 unknown" <<<"$0"' "$out"
check "challenge reads a file:// cache" \
  bash -c '"$CAIRN" challenge --from "$0" "$1" | grep -q "sha256:0cbj5m7kpn64l2f08qcs3d5a5w9gkg8l2rkc49257d8244lri1d6"' "$U" "$TOP"

"$CAIRN" mirror --upstream "$U" --cache "$TMP/m" --trusted-key "$PUB" --listen 127.0.0.1:0 \
  --port-file "$TMP/mport" 2>"$TMP/mlog" &
mpid=$!
cleanup_hooks+=("kill $mpid")
M=http://127.0.0.1:$(port_from_file "$TMP/mport" "$mpid" || cat "$TMP/mlog" >&2)
check "mirror in front of a file:// cache serves its narinfo" \
  bash -c 'curl -fsS "$0/x6b6ah9iya8w14wv5fzzwj36lf2yyghw.narinfo" | grep -q "^StorePath: $1"' "$M" "$TOP"
url=$(sed -n 's/^URL: //p' "$C/x6b6ah9iya8w14wv5fzzwj36lf2yyghw.narinfo")
check "  ... and its nar, byte for byte" \
  bash -c 'curl -fsS "$0/$1" | cmp - "$2/$1"' "$M" "$url" "$C"

# Hostile narinfos in the cache: a URL that climbs out of it, and an
# absolute file:// URL, are refused, never read.
echo "secret" >"$TMP/secret"
mkdir -p "$TMP/h"; cp -r "$C/." "$TMP/h/"
ni=$TMP/h/x6b6ah9iya8w14wv5fzzwj36lf2yyghw.narinfo
for bad in "nar/../../secret" "file://$TMP/secret" "nar/%2e%2e/%2e%2e/secret"; do
  sed -i "s|^URL: .*|URL: $bad|" "$ni"
  rc=0; "$CAIRN" fetch --no-cache --from "file://$TMP/h" --trusted-key "$PUB" --store "$TMP/r-$RANDOM" --closure \
    "$TOP" >/dev/null 2>"$TMP/err" || rc=$?
  check "narinfo URL '$bad' under a file:// cache: refused" \
    bash -c '[ "$0" = 1 ] && grep -q "may not hold\|only http" "$1"' "$rc" "$TMP/err"
done
check "a file:// server must be an absolute path" \
  bash -c '! "$CAIRN" weather --from file://relative/dir "$0" 2>/dev/null' "$TOP"
finish
