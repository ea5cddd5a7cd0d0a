#!/usr/bin/env bash
# cairn mirror with --trusted-key in front of two upstreams, the second
# hostile (fetch-test-server.py serving files prepared here).  Its narinfos
# carry valid signatures by the trusted key, but the fields signatures do
# not cover (URL, Compression, FileHash, FileSize) point at the nar of
# another item, Y, and at that path it serves another item's genuine nar.
# Whatever order the narinfos arrive in, and with the honest upstream down,
# the mirror must never serve those bytes as Y's nar nor cache them, and
# must still serve Y from the honest upstream.  Also: bytes that match an
# unsigned FileHash but not the signed NarHash are never cached.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
nix_lib_init
skip_unless nginx curl gzip

store=$TMP/store
y=$(nix_build_closure "$store" 1 hy 200000)
z=$(nix_build_closure "$store" 1 hz 150000)
w=$(nix_build_closure "$store" 1 hw 1000)
nix_gen_key hostile-test-1 "$TMP/key"
for i in y z w; do nix_copy_to_file "$store" "${!i}" "$TMP/$i" xz "$TMP/key.sec"; done
hash_of() { basename "$1" | cut -c1-32; }
yh=$(hash_of "$y"); zh=$(hash_of "$z"); wh=$(hash_of "$w")
ynar=$(sed -n 's/^URL: //p' "$TMP/y/$yh.narinfo")
znar=$(sed -n 's/^URL: //p' "$TMP/z/$zh.narinfo")
nix32() { "$CAIRN" hash file --to nix32 "$1" | awk '{print $1}' | sed 's/^sha256://'; }

# the honest upstream has Y only; the hostile one Z and W, not Y
mkdir -p "$TMP/honest" "$TMP/hostile/nar"
cp -r "$TMP/y/." "$TMP/honest/"
cp "$TMP/y/nix-cache-info" "$TMP/hostile/"
# Z's signed narinfo, URL pointing at Y's nar path (FileHash and FileSize
# still Z's own), and Z's genuine nar (it matches Z's signed NarHash) there
sed "s|^URL: .*|URL: $ynar|" "$TMP/z/$zh.narinfo" > "$TMP/hostile/$zh.narinfo"
cp "$TMP/z/$znar" "$TMP/hostile/$ynar"
# W's signed narinfo naming a file of its own whose FileHash and FileSize
# are right, but which is Z's nar, not W's: the signed NarHash says no
junk=nar/$(nix32 "$TMP/z/$znar").nar.xz
sed -e "s|^URL: .*|URL: $junk|" -e "s|^FileHash: .*|FileHash: sha256:$(nix32 "$TMP/z/$znar")|" \
  -e "s|^FileSize: .*|FileSize: $(stat -c %s "$TMP/z/$znar")|" \
  "$TMP/w/$wh.narinfo" > "$TMP/hostile/$wh.narinfo"
[ "$junk" != "$ynar" ] || { echo "test set-up: junk and Y collide" >&2; exit 1; }
cp "$TMP/z/$znar" "$TMP/hostile/$junk"

check "the hostile narinfos carry valid signatures by the trusted key" bash -c "
  '$CAIRN' narinfo verify --trusted-key '$TMP/key.pub' < '$TMP/hostile/$zh.narinfo' > /dev/null &&
  '$CAIRN' narinfo verify --trusted-key '$TMP/key.pub' < '$TMP/hostile/$wh.narinfo' > /dev/null"

# hostile_start DIR NAME: fetch-test-server.py serving DIR, requests in $TMP/NAME.log
hostile_start() {
  python3 "$SRCDIR/tests/integration/fetch-test-server.py" "$1" "$TMP/$2.port" serve \
    "$TMP/$2.log" 2> "$TMP/$2.err" &
  cleanup_hooks+=("kill $! 2>/dev/null")
  HOSTILE_PORT=$(port_from_file "$TMP/$2.port" $!)
}
hostile_start "$TMP/hostile" hostile
nginx_serve honest "$TMP/honest"
hp=$NGINX_PORT
margs=(--upstream "http://127.0.0.1:$hp" --upstream "http://127.0.0.1:$HOSTILE_PORT"
       --trusted-key "$TMP/key.pub" --health-interval 300ms --max-backoff 600ms
       --connect-timeout 500ms)
code() { curl -s -o /dev/null -w '%{http_code}' "$1"; }
# only_y MC: nothing but Y's file in the mirror cache MC
only_y() { [ "$(ls "$1/data")" = "$(sha256sum < "$TMP/y/$ynar" | cut -d' ' -f1)" ]; }

# 1. Y's narinfo first, then Z's (the order in which Z's claim used to
#    replace Y's): Y's nar still comes from the honest upstream, verified
mirror_start m1 --cache "$TMP/mc1" "${margs[@]}"
url=http://127.0.0.1:$MIRROR_PORT
curl -fs "$url/$yh.narinfo" -o /dev/null
check "the hostile upstream's narinfo of Z is served (its signature is valid)" \
  [ "$(code "$url/$zh.narinfo")" = 200 ]
check "Y's nar is Y's bytes" cmp <(curl -fs "$url/$ynar") "$TMP/y/$ynar"
check "... from the honest upstream" [ "$(count_requests honest "/$ynar")" -eq 1 ]
check "... and the hostile one was not asked for it" \
  [ "$(grep -c "GET /$ynar" "$TMP/hostile.log")" -eq 0 ]
check "only Y's bytes are in the cache" only_y "$TMP/mc1"
check "Y's nar again (a hit): Y's bytes" cmp <(curl -fs "$url/$ynar") "$TMP/y/$ynar"

# W's file matches its unsigned FileHash but not W's signed NarHash
curl -fs "$url/$wh.narinfo" -o /dev/null
check "bytes that miss the signed NarHash: the client sees a failure" \
  bash -c "! curl -fs '$url/$junk' -o /dev/null"
check "... and they are not cached" only_y "$TMP/mc1"
mirror_stop

# 2. Z's narinfo first, then Y's; then the honest upstream goes down, so
#    only the hostile one answers for Y's nar path
mirror_start m2 --cache "$TMP/mc2" "${margs[@]}"
url=http://127.0.0.1:$MIRROR_PORT
curl -fs "$url/$zh.narinfo" -o /dev/null
curl -fs "$url/$yh.narinfo" -o /dev/null
nginx_stop honest
before=$(grep -c "GET /$ynar" "$TMP/hostile.log" || true)
check "honest upstream down: Y's nar path is not answered with Z's bytes" \
  bash -c "! curl -fs '$url/$ynar' -o '$TMP/got2'"
check "... the hostile upstream was asked for it" \
  [ "$(grep -c "GET /$ynar" "$TMP/hostile.log")" -gt "$before" ]
check "... nothing was cached" [ "$(ls "$TMP/mc2/data" | wc -l)" -eq 0 ]
nginx_serve honest "$TMP/honest" "$hp"
for _ in $(seq 40); do
  curl -fs "$url/$ynar" -o "$TMP/got2" && cmp -s "$TMP/got2" "$TMP/y/$ynar" && break
  sleep 0.1
done
check "honest upstream back: Y's nar is Y's bytes" cmp "$TMP/got2" "$TMP/y/$ynar"
check "... and only Y's bytes are cached" only_y "$TMP/mc2"
mirror_stop

# 3. The Guix layout (nar/gzip/<basename>, no FileHash, URL groups after
#    the Signature line, so unsigned): Z's narinfo names nar/gzip/<Y's
#    basename>, where the hostile upstream serves Z's nar, gzip'ed
"$CAIRN" key generate --format guix --secret "$TMP/g.sec" --public "$TMP/g.pub" > /dev/null
ybase=$(basename "$y"); zbase=$(basename "$z")
mkdir -p "$TMP/gh/nar/gzip" "$TMP/gx/nar/gzip"
printf 'StoreDir: /nix/store\n' | tee "$TMP/gh/nix-cache-info" > "$TMP/gx/nix-cache-info"
xz -dc < "$TMP/y/$ynar" | gzip -c > "$TMP/gh/nar/gzip/$ybase"
xz -dc < "$TMP/z/$znar" | gzip -c > "$TMP/gx/nar/gzip/$ybase"
# guix_narinfo ITEM HASH BASE: ITEM's narinfo with a URL group for its own
# nar/gzip/BASE, signed with the Guix key
guix_narinfo() {
  { grep '^StorePath:' "$TMP/$1/$2.narinfo"
    printf 'URL: nar/gzip/%s\nCompression: gzip\n' "$3"
    grep -E '^(NarHash|NarSize|References):' "$TMP/$1/$2.narinfo"
  } | "$CAIRN" narinfo sign --key "$TMP/g.sec" --host test
}
guix_narinfo y "$yh" "$ybase" > "$TMP/gh/$yh.narinfo"
# the hostile upstream adds a group after the signature (unsigned, as
# Guix 1.4 prints them) naming Y's nar path
{ guix_narinfo z "$zh" "$zbase"
  printf 'URL: nar/gzip/%s\nCompression: gzip\nFileSize: %s\n' "$ybase" \
    "$(stat -c %s "$TMP/gx/nar/gzip/$ybase")"
} > "$TMP/gx/$zh.narinfo"
check "Guix: the hostile narinfo's signature is valid" \
  bash -c "'$CAIRN' narinfo verify --trusted-key '$TMP/g.pub' < '$TMP/gx/$zh.narinfo' > /dev/null"
hostile_start "$TMP/gx" gx
nginx_serve gh "$TMP/gh"
ghp=$NGINX_PORT
mirror_start m3 --cache "$TMP/mc3" --upstream "http://127.0.0.1:$ghp" \
  --upstream "http://127.0.0.1:$HOSTILE_PORT" --trusted-key "$TMP/g.pub" \
  --health-interval 300ms --max-backoff 600ms --connect-timeout 500ms
url=http://127.0.0.1:$MIRROR_PORT
curl -fs "$url/$yh.narinfo" -o /dev/null
check "Guix: Z's narinfo is served" [ "$(code "$url/$zh.narinfo")" = 200 ]
check "Guix: Y's nar is Y's bytes" \
  cmp <(curl -fs "$url/nar/gzip/$ybase") "$TMP/gh/nar/gzip/$ybase"
check "Guix: ... cached" [ "$(ls "$TMP/mc3/data")" = "$(sha256sum < "$TMP/gh/nar/gzip/$ybase" | cut -d' ' -f1)" ]
mirror_stop
mirror_start m4 --cache "$TMP/mc4" --upstream "http://127.0.0.1:$ghp" \
  --upstream "http://127.0.0.1:$HOSTILE_PORT" --trusted-key "$TMP/g.pub" \
  --health-interval 300ms --max-backoff 600ms --connect-timeout 500ms
url=http://127.0.0.1:$MIRROR_PORT
curl -fs "$url/$yh.narinfo" -o /dev/null
curl -fs "$url/$zh.narinfo" -o /dev/null
nginx_stop gh
check "Guix, honest upstream down: Y's nar path is not answered with Z's bytes" \
  bash -c "! curl -fs '$url/nar/gzip/$ybase' -o /dev/null"
check "Guix: ... nothing was cached" [ "$(ls "$TMP/mc4/data" | wc -l)" -eq 0 ]
mirror_stop

# Claims on one URL that read it with different compressions: Z's signed
# narinfo names Y's file (its FileHash and FileSize too) but says zstd.
# Asked first, its claim used to decide how the file is read for every
# claim: Y's xz file then met none, and Y could not be had through the
# mirror at all.  Each compression a claim says is tried: Y's is met.
mkdir -p "$TMP/hostile5"
cp "$TMP/y/nix-cache-info" "$TMP/hostile5/"
sed -e "s|^URL: .*|URL: $ynar|" -e "s|^Compression: .*|Compression: zstd|" \
  -e "s|^FileHash: .*|$(grep '^FileHash: ' "$TMP/y/$yh.narinfo")|" \
  -e "s|^FileSize: .*|$(grep '^FileSize: ' "$TMP/y/$yh.narinfo")|" \
  "$TMP/z/$zh.narinfo" > "$TMP/hostile5/$zh.narinfo"
nginx_serve honest5 "$TMP/honest"; hp5=$NGINX_PORT
nginx_serve hostile5 "$TMP/hostile5"
mirror_start m5 --cache "$TMP/mc5" --upstream "http://127.0.0.1:$NGINX_PORT" \
  --upstream "http://127.0.0.1:$hp5" --trusted-key "$TMP/key.pub" \
  --health-interval 300ms --max-backoff 600ms --connect-timeout 500ms
url=http://127.0.0.1:$MIRROR_PORT
check "Z's narinfo naming Y's file as zstd is served (its signature is valid)" \
  [ "$(code "$url/$zh.narinfo")" = 200 ]
curl -fs "$url/$yh.narinfo" -o /dev/null
check "... Y's nar is still Y's bytes, read as xz" cmp <(curl -fs "$url/$ynar") "$TMP/y/$ynar"
check "... and cached" only_y "$TMP/mc5"
mirror_stop
finish
