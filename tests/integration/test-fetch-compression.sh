#!/usr/bin/env bash
# Compression chosen for the link (issue 17, point 3): one item offered as
# xz and as zstd in one narinfo (a Nix signature covers neither URL, so
# the two groups sit under one signature, as a Guix narinfo lists them).
# Behind an emulated 2 Mbit/s link fetch asks for the xz file (smaller);
# behind an unlimited one for the zstd file (unpacks faster).  Each run
# first fetches another item over the same link, so that the link's rate
# is measured and kept (nicache) before the choice.  The outcome is which
# URL nginx was asked for, never a time.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
nix_lib_init
skip_unless nginx python3
LINKEM=$BUILDDIR/tests/integration/linkem

# text that xz packs clearly tighter than zstd, the same on every run
words_text "$TMP/text" 2500000 17
S=$TMP/s
cat > "$TMP/text.nix" <<NIX
derivation {
  name = "text-item";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  PATH = "/bin:/usr/bin";
  src = $TMP/text;
  args = [ "-c" "mkdir \$out && cat \$src > \$out/text" ];
}
NIX
ITEM=$(nix-build --store "$(nix_store_uri "$S")" --no-out-link --quiet "$TMP/text.nix")
WARM=$(nix_build_closure "$S" 1 warm 1500000)
check "built the text item and the warm-up item" test -n "$ITEM" -a -n "$WARM"

nix_gen_key test-1 "$TMP/k1"
WWW=$TMP/www
nix_copy_to_file "$S" "$ITEM" "$WWW/cache" xz "$TMP/k1.sec"
nix_copy_to_file "$S" "$WARM" "$WWW/cache" none "$TMP/k1.sec"
nix_copy_to_file "$S" "$ITEM" "$TMP/z" zstd "$TMP/k1.sec"
h=$(basename "$ITEM" | cut -c1-32)
cp "$TMP"/z/nar/*.nar.zst "$WWW/cache/nar/"
grep -E '^(URL|Compression|FileHash|FileSize): ' "$TMP/z/$h.narinfo" >> "$WWW/cache/$h.narinfo"
sed 's/^/    | /' "$WWW/cache/$h.narinfo"
size_of() { sed -n "/^Compression: $1\$/,/^FileSize/s/^FileSize: //p" "$WWW/cache/$h.narinfo"; }
XZ=$(size_of xz); ZST=$(size_of zstd)
check "the narinfo offers xz ($XZ bytes) and zstd ($ZST), xz > 5 % smaller" \
  test -n "$XZ" -a -n "$ZST" -a $((XZ * 105 / 100)) -lt "$ZST"
nginx_start ng "$WWW"
up=127.0.0.1:$NGINX_PORT

link() {
  local name=$1; shift
  "$LINKEM" --to "$up" --port-file "$TMP/$name.port" "$@" 2>"$TMP/$name.log" &
  local pid=$!
  cleanup_hooks+=("kill $pid")
  LINK_PORT=$(port_from_file "$TMP/$name.port" "$pid")
}
asked() { grep -c "GET /cache/nar/[^ ]*\.nar\.$1 " "$TMP/ng.access" || true; }
json_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); i=[x for x in d["items"] if x["path"]==sys.argv[2]][0]; print(eval(sys.argv[3]))' "$@"; }

# fetch_via NAME PORT: the warm-up item, then the offered one; same cache
fetch_via() {
  local name=$1 port=$2 rc=0
  "$CAIRN" fetch --cache-db "$TMP/$name.sqlite" --trusted-key "$TMP/k1.pub" \
    --store "$TMP/r-$name-warm" --from "http://127.0.0.1:$port/cache" "$WARM" \
    >/dev/null 2>"$TMP/e-$name-warm" || rc=$?
  check "$name link: warm-up fetch exits 0 ($rc)" test "$rc" = 0 || cat "$TMP/e-$name-warm"
  rc=0
  "$CAIRN" fetch --cache-db "$TMP/$name.sqlite" --trusted-key "$TMP/k1.pub" --json \
    --store "$TMP/r-$name" --from "http://127.0.0.1:$port/cache" "$ITEM" \
    >"$TMP/j-$name" 2>"$TMP/e-$name" || rc=$?
  check "$name link: fetch exits 0 ($rc)" test "$rc" = 0 || cat "$TMP/e-$name"
  check "$name link: the item is in the store and verifies" nix_has_paths "$TMP/r-$name" "$ITEM"
  python3 -m json.tool "$TMP/j-$name" | grep -A30 compressionChoice | sed 's/^/    | /' | head -30 || true
}

link slow --delay-ms 5 --rate 2M; SLOW=$LINK_PORT
fetch_via slow "$SLOW"
check "2 Mbit/s: the xz file was asked for ($(asked xz)), the zstd one not ($(asked zst))" \
  test "$(asked xz)" = 1 -a "$(asked zst)" = 0
check "2 Mbit/s: --json says xz" test "$(json_field "$TMP/j-slow" "$ITEM" 'i["compression"]')" = xz
check "2 Mbit/s: ... from the rate kept by the warm-up run" \
  test "$(json_field "$TMP/j-slow" "$ITEM" 'i["compressionChoice"]["netRateFrom"]')" = "earlier runs"
check "2 Mbit/s: ... the rate used is under 2 Mbit/s" \
  test "$(json_field "$TMP/j-slow" "$ITEM" 'int(i["compressionChoice"]["netRate"] <= 250000)')" = 1
check "2 Mbit/s: ... the xz estimate is the smaller" \
  test "$(json_field "$TMP/j-slow" "$ITEM" 'int(sorted(i["compressionChoice"]["options"], key=lambda o: o["seconds"])[0]["compression"] == "xz")')" = 1
check "2 Mbit/s: ... unpacking speeds measured on this machine" \
  test "$(json_field "$TMP/j-slow" "$ITEM" 'i["compressionChoice"]["unpackMeasured"]')" = True

link fast --delay-ms 0; FAST=$LINK_PORT
fetch_via fast "$FAST"
check "unlimited: the zstd file was asked for ($(asked zst)), xz not again ($(asked xz))" \
  test "$(asked xz)" = 1 -a "$(asked zst)" = 1
check "unlimited: --json says zstd" test "$(json_field "$TMP/j-fast" "$ITEM" 'i["compression"]')" = zstd
check "unlimited: ... the rate used is over 2 Mbit/s" \
  test "$(json_field "$TMP/j-fast" "$ITEM" 'int(i["compressionChoice"]["netRate"] > 250000)')" = 1

# the unpacking speeds were measured once per cache and kept
n=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from speeds where url like ?", ("cairn-codec-unpack:%",)).fetchone()[0])' "$TMP/slow.sqlite")
check "unpacking speeds kept per method ($n)" test "$n" -ge 5

finish
