#!/usr/bin/env bash
# cairn sync --paths: a head without a feed (nginx serving a `nix copy`
# directory) replicated by the closures of a list of store paths, the
# narinfos asked through the query engine: exactly the closure, byte for
# byte, that the real Nix then copies from; a path the head lacks is named
# and the rest is copied; references are followed only from trusted
# narinfos.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/publish-lib.sh"
skip_unless curl python3 cmp nginx xz
nix_lib_init

pstore_init "$TMP/src"
SRC=$(pstore_uri "$TMP/src")
top=$(pstore_build "$TMP/src" 4 sp 2000) || { not_ok "nix-build"; finish; exit 1; }
other=$(pstore_build "$TMP/src" 1 spother 100)
untr=$(pstore_build "$TMP/src" 2 spuntr 100)
hp() { basename "$1" | cut -c1-32; }
"$CAIRN" key generate --format nix --secret "$TMP/k.sec" --public "$TMP/k.pub" head-test-1
"$CAIRN" key generate --format nix --secret "$TMP/o.sec" --public "$TMP/o.pub" other-test-1
BC=$TMP/head
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/k.sec&compression=xz" "$top" "$other"
nix copy --quiet --from "$SRC" --to "file://$BC?secret-key=$TMP/o.sec&compression=xz" "$untr"
nginx_start head "$BC" || { not_ok "nginx serves the head"; finish; exit 1; }
mapfile -t closure < <(nix path-info --store "$SRC" -r "$top")

printf '# the release\n%s\n\n%s\n' "$top" "$untr" > "$TMP/list"
R=$TMP/replica
"$CAIRN" sync --from "$NGINX_URL" --to "$R" --trusted-key "$TMP/k.pub" --paths "$TMP/list" \
  > "$TMP/sync.out" 2> "$TMP/sync.err" || true
sed 's/^/  | /' "$TMP/sync.out" "$TMP/sync.err"
same=yes
for p in "${closure[@]}"; do
  cmp -s "$BC/$(hp "$p").narinfo" "$R/$(hp "$p").narinfo" || { same=no; echo "  $p missing or differs"; }
done
check "the closure of the listed path is replicated, byte for byte (${#closure[@]} narinfos)" [ "$same" = yes ]
check "nothing outside the closure is copied" [ ! -e "$R/$(hp "$other").narinfo" ]
check "an untrusted narinfo is refused and named" grep -q "$untr: refused" "$TMP/sync.err"
check "  and its references are not even asked for (${#closure[@]} + 1 narinfos asked)" \
  grep -q ": $((${#closure[@]} + 1)) items, " "$TMP/sync.out"
check "  nor copied" [ ! -e "$R/$(hp "$untr").narinfo" ]
dst=$TMP/dst
if nix copy --quiet --from "file://$R" --to "$(pstore_dst_uri "$dst")" \
  --option trusted-public-keys "$(cat "$TMP/k.pub")" "$top" 2> "$TMP/copy.err"; then
  ok "the real Nix copies the closure from the replica"
else
  not_ok "the real Nix copies the closure from the replica"
  sed 's/^/  | /' "$TMP/copy.err"
fi
echo "/nix/store/00000000000000000000000000000000-absent" > "$TMP/list2"
sed -i "s|/nix/store|$NIX_STORE_DIR|" "$TMP/list2"
echo "$top" >> "$TMP/list2"
if "$CAIRN" sync --from "$NGINX_URL" --to "$R" --trusted-key "$TMP/k.pub" --paths "$TMP/list2" \
  > "$TMP/sync2.out" 2> "$TMP/sync2.err"; then
  not_ok "a path the head lacks makes sync exit 1"
else
  ok "a path the head lacks makes sync exit 1"
fi
check "  naming it" grep -q "00000000000000000000000000000000-absent: not copied: the head does not have it" "$TMP/sync2.err"
check "  and the rest is already there" grep -q " 0 copied, ${#closure[@]} already there" "$TMP/sync2.out"

# a Hydra-style store-paths.xz at a URL
printf '%s\n' "$top" | xz -c > "$BC/store-paths.xz"
if "$CAIRN" sync --from "$NGINX_URL" --to "$TMP/replica3" --trusted-key "$TMP/k.pub" \
  --paths "$NGINX_URL/store-paths.xz" > "$TMP/sync3.out" 2> "$TMP/sync3.err"; then
  ok "--paths takes a store-paths.xz URL"
  check "  the closure is copied" grep -q ": ${#closure[@]} items, ${#closure[@]} copied" "$TMP/sync3.out"
else
  not_ok "--paths takes a store-paths.xz URL"
  sed 's/^/  | /' "$TMP/sync3.out" "$TMP/sync3.err"
fi
finish
