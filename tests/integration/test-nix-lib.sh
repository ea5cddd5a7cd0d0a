#!/usr/bin/env bash
# nix-lib.sh works: a 5-path closure with references is built into a private
# store, copied to a signed file:// cache, and substituted back into fresh
# stores from that cache and over HTTP (nix copy, and nix-store --realise
# with the cache as substituter), where an unknown key is refused.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
nix_lib_init

# fails CMD...: CMD (a shell function too, unlike bash -c '! ...') fails
fails() { ! "$@" 2> "$TMP/fails.err"; }

s1=$TMP/store1
if ! top=$(nix_build_closure "$s1" 5 smoke 1000); then
  not_ok "nix_build_closure builds 5 derivations"
  finish; exit 1
fi
mapfile -t closure < <(nix_closure "$s1" "$top")
check "closure of $top has 5 paths" [ "${#closure[@]}" -eq 5 ]
check "the top path is smoke-5" grep -qx "/nix/store/[0-9a-z]\{32\}-smoke-5" <<< "$top"
refs=$(nix-store --store "$(nix_store_uri "$s1")" -q --references "$top" | sed 's/.*-smoke-//' | sort | tr '\n' ' ')
check "smoke-5 refers to smoke-4 and smoke-3 (got: $refs)" [ "$refs" = "3 4 " ]
check "the built paths are valid in store1" nix_has_paths "$s1" "${closure[@]}"
check "nothing went to the real /nix/store" [ ! -e "$top" ]
check "each path has its executable" test -x "$s1$top/bin/smoke-5"
size=$(nix_path_info "$s1" "$top" | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["narSize"])')
check "nix_path_info gives smoke-5's NAR size ($size), the size of its dump" \
  [ "$size" = "$(nix-store --dump "$s1$top" | wc -c)" ]

nix_gen_key smoke-test-1 "$TMP/key"
nix_gen_key other-1 "$TMP/other"
cache=$TMP/cache
check "nix_copy_to_file (zstd, signed)" nix_copy_to_file "$s1" "$top" "$cache" zstd "$TMP/key.sec"
check "the cache has nix-cache-info" grep -q '^StoreDir: /nix/store$' "$cache/nix-cache-info"
n=$(grep -l '^Sig: smoke-test-1:' "$cache"/*.narinfo | wc -l)
check "5 signed narinfos (got $n)" [ "$n" -eq 5 ]
check "NARs are zstd" bash -c 'ls "$0"/nar/*.nar.zst | wc -l | grep -qx 5' "$cache"

s2=$TMP/store2
check "nix_copy_from file:// with the right key" \
  nix_copy_from "file://$cache" "$s2" "$top" "$(cat "$TMP/key.pub")"
check "the whole closure is in store2" nix_has_paths "$s2" "${closure[@]}"

nix_http_serve "$cache"
url=http://127.0.0.1:$NIX_HTTP_PORT
check "nix_copy_from http:// with another key is refused" \
  fails nix_copy_from "$url" "$TMP/store3" "$top" "$(cat "$TMP/other.pub")"
check "... and leaves store3 without the top path" [ ! -e "$TMP/store3$top" ]
check "nix_copy_from http:// with both keys trusted" \
  nix_copy_from "$url" "$TMP/store3" "$top" "$(cat "$TMP/other.pub")" "$(cat "$TMP/key.pub")"
check "the whole closure is in store3" nix_has_paths "$TMP/store3" "${closure[@]}"
check "nix_substitute without the key is refused" \
  fails nix_substitute "$url" "$TMP/store4" "$top"
check "... and leaves store4 without the top path" [ ! -e "$TMP/store4$top" ]
check "nix_substitute (nix-store --realise from the HTTP cache)" \
  nix_substitute "$url" "$TMP/store4" "$top" "$(cat "$TMP/key.pub")"
check "the whole closure is in store4" nix_has_paths "$TMP/store4" "${closure[@]}"
finish
