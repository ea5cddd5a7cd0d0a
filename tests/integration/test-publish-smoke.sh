# cairn publish, smoke test: a store built by the real Nix, served on
# 127.0.0.1; narinfos verify with `cairn narinfo verify`, nars (compressed
# on the fly, then baked) hash to their NarHash, the real Nix client copies
# the closure, Guix-dialect narinfos verify and have guix publish's layout,
# a binary-cache directory is served byte for byte, and bad requests get
# 404/400 while the server keeps serving.  The full matrix (every
# compression, concurrency, benchmarks) is in test-publish*.sh.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
nix_lib_init
skip_unless curl zstd xz bzip2

store=$TMP/store
# no random bytes: items that compress, so that they are baked (an item that
# does not compress is offered uncompressed only: test-publish-guix.sh)
top=$(nix_build_closure "$store" 3 smoke 0)
mapfile -t closure < <(nix_closure "$store" "$top")
check "built a closure of 3 paths" test "${#closure[@]}" -eq 3

"$CAIRN" key generate --format nix --secret "$TMP/nix.sec" --public "$TMP/nix.pub" smoke-1 > /dev/null
"$CAIRN" key generate --format guix --secret "$TMP/guix.sec" --public "$TMP/guix.pub" > /dev/null
"$CAIRN" key generate --format nix --secret "$TMP/other.sec" --public "$TMP/other.pub" other-1 > /dev/null

# start_publish NAME ARGS...: run cairn publish in the background on a free
# port; sets PORT.  Stopped (SIGTERM) when the test ends.
start_publish() {
  local name=$1; shift
  local pf=$TMP/$name.port
  "$CAIRN" publish --listen 127.0.0.1:0 --port-file "$pf" --threads 2 "$@" \
    > "$TMP/$name.log" 2>&1 &
  local pid=$!
  cleanup_hooks+=("kill $pid 2>/dev/null; wait $pid 2>/dev/null")
  eval "${name}_pid=$pid"
  PORT=$(port_from_file "$pf" "$pid") && return 0
  cat "$TMP/$name.log" >&2
  return 1
}

# hash part of a store path
hp() { basename "$1" | cut -c1-32; }
field() { sed -n "s/^$1: //p"; }

start_publish nix --store "$store/nix/store" --key "$TMP/nix.sec" \
  --cache "$TMP/cache" --compression zstd:3,xz:6 --negative-ttl 7 --ttl 99
url=http://127.0.0.1:$PORT

check "nix-cache-info names /nix/store" \
  bash -c "curl -sf '$url/nix-cache-info' | grep -qx 'StoreDir: /nix/store'"
check "nix-cache-info says WantMassQuery" \
  bash -c "curl -sf '$url/nix-cache-info' | grep -qx 'WantMassQuery: 1'"

# every narinfo verifies, and its nar (as first served) hashes to NarHash
for p in "${closure[@]}"; do
  h=$(hp "$p")
  curl -sf -D "$TMP/h.$h" "$url/$h.narinfo" > "$TMP/$h.narinfo" || true
  check "narinfo of $(basename "$p") served" test -s "$TMP/$h.narinfo"
  check "narinfo of $(basename "$p") has its StorePath" \
    grep -qx "StorePath: $p" "$TMP/$h.narinfo"
  check "narinfo of $(basename "$p") verifies with cairn" \
    "$CAIRN" narinfo verify --trusted-key "$TMP/nix.pub" < "$TMP/$h.narinfo"
  if "$CAIRN" narinfo verify --trusted-key "$TMP/other.pub" < "$TMP/$h.narinfo" > /dev/null 2>&1; then
    not_ok "narinfo of $(basename "$p") verified with an unrelated key"
  else
    ok "narinfo of $(basename "$p") refused with an unrelated key"
  fi
  check "narinfo Cache-Control follows --ttl" grep -qi '^cache-control: public, max-age=99' "$TMP/h.$h"
  nar_url=$(field URL < "$TMP/$h.narinfo")
  want=$(field NarHash < "$TMP/$h.narinfo")
  curl -sf "$url/$nar_url" | zstd -dc > "$TMP/$h.nar"
  got=$("$CAIRN" hash file "$TMP/$h.nar")
  check "nar of $(basename "$p") hashes to its NarHash ($nar_url)" test "$got" = "$want"
  # the uncompressed form of the same URL, with its length announced
  plain=${nar_url%%.zst\?*}
  plain=$plain${nar_url#*.zst}
  curl -sf -D "$TMP/hn.$h" "$url/$plain" > "$TMP/$h.plain.nar"
  check "uncompressed nar of $(basename "$p") is the nar" cmp -s "$TMP/$h.nar" "$TMP/$h.plain.nar"
  check "uncompressed nar has Content-Length" \
    grep -qi "^content-length: $(field NarSize < "$TMP/$h.narinfo")" "$TMP/hn.$h"
done

# the bakers catch up; then narinfos carry FileHash/FileSize and the file
for _ in $(seq 100); do
  n=$(curl -sf "$url/metrics" | sed -n 's/^cairn_publish_bakes_total //p')
  [ "${n:-0}" -ge 3 ] && break
  sleep 0.1
done
check "the three nars were baked" test "${n:-0}" -ge 3
types=$(curl -sf "$url/metrics" | sed -n 's/^# TYPE //p')
check "/metrics: publish's gauges are gauges" \
  bash -c 'grep -qx "cairn_publish_cache_bytes gauge" <<<"$1" && grep -qx "cairn_publish_bake_queue gauge" <<<"$1"' _ "$types"
check "... every counter is named *_total, no gauge is" \
  bash -c '! grep -v " gauge$" <<<"$1" | grep -qv "_total counter$" && ! grep -q "_total gauge$" <<<"$1"' _ "$types"
h=$(hp "$top")
curl -sf "$url/$h.narinfo" > "$TMP/baked.narinfo"
check "a baked narinfo has FileHash" grep -q '^FileHash: sha256:' "$TMP/baked.narinfo"
check "a baked narinfo still verifies" \
  "$CAIRN" narinfo verify --trusted-key "$TMP/nix.pub" < "$TMP/baked.narinfo"
burl=$(field URL < "$TMP/baked.narinfo")
curl -sf -D "$TMP/hb" "$url/$burl" > "$TMP/baked.nar.zst"
check "the baked file hashes to FileHash" \
  test "$("$CAIRN" hash file "$TMP/baked.nar.zst")" = "$(field FileHash < "$TMP/baked.narinfo")"
check "the baked file has FileSize bytes" \
  test "$(stat -c %s "$TMP/baked.nar.zst")" = "$(field FileSize < "$TMP/baked.narinfo")"
check "nars are immutable for caches" grep -qi '^cache-control: .*immutable' "$TMP/hb"
check "a Range of the baked file is 206" \
  bash -c "curl -s -o /dev/null -w '%{http_code}' -r 0-9 '$url/$burl' | grep -qx 206"
# the URL of the earlier narinfo still works
old=$(field URL < "$TMP/$h.narinfo")
check "the pre-bake URL still serves the nar" \
  bash -c "curl -sf '$url/$old' | zstd -dc | cmp -s - '$TMP/$h.nar'"

# the real Nix client copies the closure, and refuses another key
if nix_copy_from "$url" "$TMP/dst" "$top" "$(cat "$TMP/nix.pub")"; then
  ok "nix copy --from cairn publish"
else
  not_ok "nix copy --from cairn publish"
fi
check "the copied closure is valid and intact" nix_has_paths "$TMP/dst" "${closure[@]}"
if nix_copy_from "$url" "$TMP/dst2" "$top" "$(cat "$TMP/other.pub")" 2> /dev/null; then
  not_ok "nix copy accepted narinfos signed by an untrusted key"
else
  ok "nix copy refuses cairn's narinfos with another trusted key"
fi

# bad requests: 404 quickly, the negative TTL, and the server keeps going
code() { curl -s -o /dev/null -w '%{http_code}' --path-as-is "$url$1"; }
check "unknown hash: 404" test "$(code /00000000000000000000000000000000.narinfo)" = 404
check "malformed hash: 404" test "$(code /eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.narinfo)" = 404
check "short hash: 404" test "$(code /abc.narinfo)" = 404
check "unknown nar: 404" test "$(code /nar/0000000000000000000000000000000000000000000000000000.nar.zst)" = 404
check "traversal in a log: 404" test "$(code /log/..%2f..%2fetc%2fpasswd)" = 404
check "traversal in a nar: 404" test "$(code /nar/../../etc/passwd)" != 200
# (every method is served, so that URLs survive a change of --compression;
# an unconfigured one at a low level)
check "a method not configured: served, the nar" \
  bash -c "curl -sf '$url/${old%%.zst\?*}.bz2?${old#*\?}' | bzip2 -dc | cmp -s - '$TMP/$h.nar'"
curl -s -D "$TMP/h404" -o /dev/null "$url/00000000000000000000000000000000.narinfo"
check "404 Cache-Control follows --negative-ttl" grep -qi '^cache-control: public, max-age=7' "$TMP/h404"
check "still serving after bad requests" test "$(code /nix-cache-info)" = 200
check "signing-key.pub is the public key" \
  bash -c "curl -sf '$url/signing-key.pub' | grep -qxF '$(cat "$TMP/nix.pub")'"
check "/health" test "$(code /health)" = 200
check "/ is an HTML page naming the key" \
  bash -c "curl -sf '$url/' | grep -qF '$(cat "$TMP/nix.pub")'"
check "/metrics counts narinfo requests" \
  bash -c "curl -sf '$url/metrics' | grep -q 'route=\"narinfo\"'"
check "a .ls listing is JSON with the root" \
  bash -c "curl -sf '$url/$h.ls' | grep -q '^{\"root\":{\"entries\"'"

# the build log, as Nix keeps it (bzip2), with its Content-Encoding
drv=$(nix_path_info "$store" "$top" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["deriver"])')
curl -sf -D "$TMP/hl" "$url/log/$(basename "$drv")" > "$TMP/log.bz2" || true
d=$(basename "$drv")
check "/log/<drv> is the build log, bzip2 as stored" \
  cmp -s "$TMP/log.bz2" "$store/nix/var/log/nix/drvs/${d:0:2}/${d:2}.bz2"
check "/log/<drv> says Content-Encoding: bzip2" grep -qi '^content-encoding: bzip2' "$TMP/hl"
check "nix log --store http://... reads it" \
  bash -c "nix log --store '$url' '$drv' > /dev/null"

# /file/NAME/sha256/HASH: a flat fixed-output item, found by name and hash
printf 'content-addressed file for cairn\n' > "$TMP/fod.txt"
fod_hash=$("$CAIRN" hash file "$TMP/fod.txt")
cat > "$TMP/fod.nix" <<EOF
derivation {
  name = "fod.txt";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "printf 'content-addressed file for cairn\\\\n' > \$out" ];
  outputHashMode = "flat";
  outputHashAlgo = "sha256";
  outputHash = "${fod_hash#sha256:}";
}
EOF
if fod=$(nix-build --store "$(nix_store_uri "$store")" --no-out-link --quiet "$TMP/fod.nix" 2> "$TMP/fod.err"); then
  check "/file/<name>/sha256/<hash> serves the fixed-output file" \
    bash -c "curl -sf '$url/file/fod.txt/sha256/${fod_hash#sha256:}' | cmp -s - '$TMP/fod.txt'"
  check "/file/ with another hash is 404" \
    test "$(code "/file/fod.txt/sha256/$(printf '0%.0s' {1..52})")" = 404
  check "/file/ with a traversal is 404" test "$(code "/file/..%2f..%2fetc/sha256/x")" = 404
  # a tampered store: a named pipe where the file was must not stop the
  # server (a blocking open would wait for a writer forever)
  mv "$store$fod" "$store$fod.aside"
  mkfifo "$store$fod"
  check "/file/ over a named pipe is 404, at once" \
    test "$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$url/file/fod.txt/sha256/${fod_hash#sha256:}")" = 404
  check "the server still answers after it" \
    test "$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$url/nix-cache-info")" = 200
  rm -f "$store$fod"
  mv "$store$fod.aside" "$store$fod"
else
  not_ok "nix-build of a fixed-output file"
  cat "$TMP/fod.err"
fi

# Guix dialect with a Guix key: verifies, guix publish's layout
start_publish guix --store "$store/nix/store" --dialect guix --key "$TMP/guix.sec" \
  --host smoke.example --compression zstd:3,gzip:6,none
gurl=http://127.0.0.1:$PORT
h=$(hp "$top")
curl -sf "$gurl/$h.narinfo" > "$TMP/guix.narinfo"
# The URL groups follow the Signature, as Guix 1.4 writes them.  A narinfo
# parser that still wants Signature last cannot read that layout: then the
# signature itself is checked by tests/unit/test-publish.c only.
if "$CAIRN" narinfo verify --trusted-key "$TMP/guix.pub" < "$TMP/guix.narinfo" > "$TMP/gv.out" 2>&1; then
  ok "guix narinfo verifies with cairn"
  if "$CAIRN" narinfo verify --trusted-key "$TMP/nix.pub" < "$TMP/guix.narinfo" > /dev/null 2>&1; then
    not_ok "guix narinfo verified with an unrelated key"
  else
    ok "guix narinfo refused with an unrelated key"
  fi
else
  not_ok "guix narinfo verifies with cairn"
  cat "$TMP/gv.out"
fi
base=$(basename "$top")
cut -d: -f1 "$TMP/guix.narinfo" | tr '\n' ' ' > "$TMP/guix.order"
# (no cache: zstd and gzip sizes are never known, so no FileSize at all:
# Guix pairs FileSize values with URLs by position)
check "guix narinfo field order is guix publish's" \
  test "$(cat "$TMP/guix.order")" = "StorePath NarHash NarSize References Deriver Signature URL Compression URL Compression URL Compression "
check "guix URL groups" \
  test "$(field URL < "$TMP/guix.narinfo" | tr '\n' ' ')" = "nar/zstd/$base nar/gzip/$base nar/$base "
check "guix Signature names the host" grep -q '^Signature: 1;smoke.example;' "$TMP/guix.narinfo"
curl -sf "$gurl/nar/gzip/$base" | gzip -dc > "$TMP/guix.nar"
check "guix nar/gzip/<basename> is the nar" cmp -s "$TMP/guix.nar" "$TMP/$h.nar"

# a binary-cache directory served as it is
nix_copy_to_file "$store" "$top" "$TMP/bc" xz "$TMP/nix.sec"
start_publish bc --binary-cache "$TMP/bc"
burl=http://127.0.0.1:$PORT
same=0 total=0
while IFS= read -r f; do
  rel=${f#"$TMP/bc/"}
  total=$((total + 1))
  # nix-cache-info: the file's lines, and the batch route said
  if [ "$rel" = nix-cache-info ]; then
    curl -sf "$burl/$rel" | cmp -s - <(cat "$f"; echo "CairnNarinfos: 1") && same=$((same + 1))
  else
    curl -sf "$burl/$rel" | cmp -s - "$f" && same=$((same + 1))
  fi
done < <(find "$TMP/bc" -type f)
check "binary cache: all $total files served byte for byte (nix-cache-info with CairnNarinfos: 1)" \
  test "$same" -eq "$total"
check "binary cache: nix copy from it" nix_copy_from "$burl" "$TMP/dst3" "$top" "$(cat "$TMP/nix.pub")"
check "binary cache: traversal refused" \
  bash -c "test \"\$(curl -s -o /dev/null -w '%{http_code}' --path-as-is '$burl/nar/..%2f..%2fetc/passwd')\" != 200"

# SIGTERM stops it cleanly
kill -TERM "$nix_pid"
for _ in $(seq 100); do kill -0 "$nix_pid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$nix_pid" 2>/dev/null; then not_ok "stops on SIGTERM"; else ok "stops on SIGTERM"; fi

# the same cache under a bound that holds one file: the others are evicted,
# yet the URL a client got with a baked narinfo still serves that nar
start_publish nix2 --store "$store/nix/store" --key "$TMP/nix.sec" \
  --cache "$TMP/cache" --compression zstd:3,xz:6 --cache-max-size 1
ev=$(curl -sf "http://127.0.0.1:$PORT/metrics" | sed -n 's/^cairn_publish_evictions_total //p')
check "the bound evicted files at start ($ev)" test "${ev:-0}" -ge 2
n=0
for p in "${closure[@]}"; do
  h=$(hp "$p")
  [ -s "$TMP/$h.nar" ] || continue
  for f in "$TMP"/cache/info/"$h".zstd; do
    fh=$(cut -d' ' -f2 "$f")
    if curl -sf "http://127.0.0.1:$PORT/nar/$fh.nar.zst" | zstd -dc | cmp -s - "$TMP/$h.nar"; then
      n=$((n + 1))
    fi
  done
done
check "baked URLs of evicted files still serve their nars ($n of 3)" test "$n" -eq 3
kill -TERM "$nix2_pid"

# --user (as root): the keys are read and the socket bound as root, then
# every thread runs as nobody, which owns the cache it bakes into
if [ "$(id -u)" = 0 ] && id nobody > /dev/null 2>&1; then
  chmod -R o+rX "$store"
  chmod o+x "$TMP"
  start_publish user --store "$store/nix/store" --key "$TMP/nix.sec" \
    --cache "$TMP/cache-user" --compression zstd --user nobody
  uids=$(awk '/^Uid:/{print $2}' /proc/"$user_pid"/task/*/status | sort -u | tr '\n' ' ')
  check "--user nobody: every thread runs as nobody ($uids)" test "$uids" = "$(id -u nobody) "
  h=$(hp "$top")
  baked=""
  for _ in $(seq 100); do
    baked=$(curl -sf "http://127.0.0.1:$PORT/$h.narinfo" | field FileSize)
    [ -n "$baked" ] && break
    sleep 0.1
  done
  check "  it serves, and bakes into the cache as nobody (FileSize $baked)" test -n "$baked"
  owners=$(find "$TMP/cache-user/nar" -type f -printf '%u\n' | sort -u | tr '\n' ' ')
  check "  the baked files are nobody's ($owners)" test "$owners" = "nobody "
  kill -TERM "$user_pid"
else
  echo "# not root (or no user nobody): --user not tested"
fi

# systemd socket activation: the listening socket arrives as fd 3
sd=$(python3 "$SRCDIR/tests/integration/socket-activate.py" "$TMP/sd.log" nix-cache-info \
  "$CAIRN" publish --systemd --store "$store/nix/store")
sd="$(head -n 1 "$TMP/sd.log.body") ${sd#* }"
check "--systemd: serves on the socket it is given, stops cleanly ($sd)" test "$sd" = "StoreDir: /nix/store 0"
# a cache directory that cannot be created stops the server at start, named
# (issue 12.9); so does a missing database; an empty store is served with a
# warning, since every client would get 404s
: > "$TMP/a-file"
for c in "$TMP/a-file/cache" "$TMP/no-parent/cache"; do
  rc=0
  timeout 10 "$CAIRN" publish --listen 127.0.0.1:0 --store "$store/nix/store" --cache "$c" \
    > "$TMP/bad-cache.log" 2>&1 || rc=$?
  sed 's/^/    | /' "$TMP/bad-cache.log"
  check "--cache $(basename "$(dirname "$c")")/cache not creatable: refused at start (exit $rc)" \
    bash -c '[ "$1" = 1 ] && grep -q "cannot create the cache directory .$2." "$0"' "$TMP/bad-cache.log" "$rc" "$c"
done
rc=0
timeout 10 "$CAIRN" publish --listen 127.0.0.1:0 --store "$store/nix/store" --db "$TMP/no.sqlite" \
  > "$TMP/bad-db.log" 2>&1 || rc=$?
check "--db FILE missing: says the store database does not exist (exit $rc)" \
  bash -c '[ "$1" = 1 ] && grep -q "store database .*no.sqlite. does not exist" "$0"' "$TMP/bad-db.log" "$rc"
nix path-info --store "$(nix_store_uri "$TMP/empty")" --all > /dev/null 2>&1
start_publish empty --store "$TMP/empty/nix/store"
check "an empty store is served with a warning that every narinfo is a 404" \
  grep -q "warning: the store database .* holds no valid path" "$TMP/empty.log"
kill -TERM "$empty_pid"
finish
