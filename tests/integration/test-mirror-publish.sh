#!/usr/bin/env bash
# cairn mirror in front of cairn publish (which serves a chroot store,
# signing narinfos and compressing nars on the fly): the real Nix client
# substitutes a closure through the mirror, and a second run is served
# from the mirror's cache.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
nix_lib_init
skip_unless curl
if ! "$CAIRN" publish -h > /dev/null 2>&1; then
  echo "error: this cairn has no working publish command" >&2
  exit 1
fi

store=$TMP/store1
top=$(nix_build_closure "$store" 4 pub 50000)
nix_gen_key publish-test-1 "$TMP/key"
n_paths=$(nix_closure "$store" "$top" | wc -l)

"$CAIRN" publish --store "$store/nix/store" --key "$TMP/key.sec" \
  --listen 127.0.0.1:0 --port-file "$TMP/pub.port" --threads 2 --access-log "$TMP/pub.access" \
  2> "$TMP/publish.log" &
ppid=$!
cleanup_hooks+=("kill $ppid 2>/dev/null")
pport=$(port_from_file "$TMP/pub.port" "$ppid") || cat "$TMP/publish.log" >&2

mirror_start m --upstream "http://127.0.0.1:$pport" --cache "$TMP/mc" --trusted-key "$TMP/key.pub"
url=http://127.0.0.1:$MIRROR_PORT
check "nix copy --from the mirror (in front of cairn publish)" \
  nix_copy_from "$url" "$TMP/store2" "$top" "$(cat "$TMP/key.pub")"
check "the closure is valid" nix_has_paths "$TMP/store2" $(nix_closure "$store" "$top")
nars1=$(grep -c '"GET /nar/' "$TMP/pub.access" || true)
check "each nar fetched from publish once ($nars1)" [ "$nars1" -eq "$n_paths" ]
check "verified nars are cached" [ "$(ls "$TMP/mc/data" | wc -l)" -eq "$n_paths" ]
check "a second run substitutes the closure" \
  nix_copy_from "$url" "$TMP/store3" "$top" "$(cat "$TMP/key.pub")"
check "... with no nar request to publish" \
  [ "$(grep -c '"GET /nar/' "$TMP/pub.access" || true)" -eq "$nars1" ]
mirror_stop
finish
