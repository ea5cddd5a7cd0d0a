#!/usr/bin/env bash
# cairn mirror --require-sigs K (issue 13.4): a narinfo is served only when
# K distinct trusted keys, across the upstreams, signed the same NarHash,
# NarSize and References, and it carries every one of their signatures.
# Two upstreams sign with two keys; for one item the second serves another
# build (same store path, other bytes, so another NarHash), and one item
# only the first has.  A stock Nix pointed at the mirror with K = 2
# substitutes the rest and cannot substitute those two; the mirror's log
# says why.  With K = 1 the first upstream's answer is served as before.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
. "$SRCDIR/tests/integration/mirror-lib.sh"
nix_lib_init
skip_unless nginx curl

s1=$TMP/s1
s2=$TMP/s2
good=$(nix_build_closure "$s1" 3 kgood 20000)
bad=$(nix_build_closure "$s1" 1 kbad 20000)
only=$(nix_build_closure "$s1" 1 konly 20000)
# the same derivation built again: the same path, other random bytes
bad2=$(nix_build_closure "$s2" 1 kbad 20000)
check "the second build of the bad item has the same store path" [ "$bad2" = "$bad" ]
nix_gen_key kofn-a "$TMP/ka"
nix_gen_key kofn-b "$TMP/kb"
for p in "$good" "$bad" "$only"; do nix_copy_to_file "$s1" "$p" "$TMP/a" xz "$TMP/ka.sec"; done
nix_copy_to_file "$s1" "$good" "$TMP/b" xz "$TMP/kb.sec"
nix_copy_to_file "$s2" "$bad" "$TMP/b" xz "$TMP/kb.sec"
hash_of() { basename "$1" | cut -c1-32; }
gh=$(hash_of "$good"); bh=$(hash_of "$bad"); oh=$(hash_of "$only")
check "the upstreams disagree about the bad item's NarHash" \
  bash -c "! cmp -s <(grep ^NarHash: '$TMP/a/$bh.narinfo') <(grep ^NarHash: '$TMP/b/$bh.narinfo')"

nginx_serve a "$TMP/a"; pa=$NGINX_PORT
nginx_serve b "$TMP/b"; pb=$NGINX_PORT
keys="$(cat "$TMP/ka.pub") $(cat "$TMP/kb.pub")"
margs=(--upstream "http://127.0.0.1:$pa" --upstream "http://127.0.0.1:$pb"
       --trusted-key "$TMP/ka.pub" --trusted-key "$TMP/kb.pub")
code() { curl -s -o /dev/null -w '%{http_code}' "$1"; }

mirror_start m2 "${margs[@]}" --require-sigs 2 --cache "$TMP/mc2" --log-interval 50ms
url=http://127.0.0.1:$MIRROR_PORT
curl -fs "$url/$gh.narinfo" > "$TMP/good.narinfo"
check "K=2: the agreed narinfo carries both signatures" \
  bash -c "[ \$(grep -c '^Sig: ' '$TMP/good.narinfo') = 2 ] &&
           grep -q '^Sig: kofn-a:' '$TMP/good.narinfo' && grep -q '^Sig: kofn-b:' '$TMP/good.narinfo'"
check "... each of them valid" bash -c "
  '$CAIRN' narinfo verify --trusted-key '$TMP/ka.pub' < '$TMP/good.narinfo' > /dev/null &&
  '$CAIRN' narinfo verify --trusted-key '$TMP/kb.pub' < '$TMP/good.narinfo' > /dev/null"
check "... otherwise the first upstream's narinfo" \
  cmp <(grep -v '^Sig:' "$TMP/good.narinfo") <(grep -v '^Sig:' "$TMP/a/$gh.narinfo")

check "K=2, stock Nix through the mirror: the agreed closure is substituted" \
  nix_substitute "$url" "$TMP/n1" "$good" "$keys"
check "... valid, and its contents hash right" nix_has_paths "$TMP/n1" $(nix_closure "$s1" "$good")
check "K=2: a Nix that trusts only the second key substitutes it too (the first upstream's text, both Sig lines)" \
  nix_substitute "$url" "$TMP/n1b" "$good" "$(cat "$TMP/kb.pub")"
check "K=2, stock Nix: the item the upstreams disagree about cannot be substituted" \
  bash -c "! nix-store --store 'local?root=$TMP/n1' --realise '$bad' \
    --option substituters '$url' --option trusted-public-keys '$keys' > /dev/null 2>&1"
check "... nothing of it reached the store" [ ! -e "$TMP/n1$bad" ]
check "... the mirror answers 404 for it" [ "$(code "$url/$bh.narinfo")" = 404 ]
check "... and logs why: which keys signed what" \
  wait_log "(refused the narinfo of|; the last:) $bh: servers disagree: http://127\.0\.0\.1:$pa \(signed by kofn-a\) claim NarHash .*; but http://127\.0\.0\.1:$pb \(signed by kofn-b\) claim NarHash "
check "K=2, stock Nix: an item one key signed cannot be substituted" \
  bash -c "! nix-store --store 'local?root=$TMP/n1' --realise '$only' \
    --option substituters '$url' --option trusted-public-keys '$keys' > /dev/null 2>&1"
check "... the mirror answers 404 for it" [ "$(code "$url/$oh.narinfo")" = 404 ]
check "... and logs why" \
  wait_log "(refused the narinfo of|; the last:) $oh: not enough signatures: 1 of 2 required \(http://127\.0\.0\.1:$pa \(signed by kofn-a\) claim .*\); http://127\.0\.0\.1:$pb: does not have it"
check "refusals are counted" [ "$(metric cairn_mirror_untrusted_total)" -ge 2 ]
check "nothing refused was cached" bash -c "
  [ \$(sqlite3 '$TMP/mc2/index.sqlite' \"SELECT count(*) FROM narinfo WHERE hash IN ('$bh', '$oh')\") = 0 ]"
mirror_stop

# Restarted with K=2 on the same cache: what it holds carries both
# signatures, so it is still served, upstreams down or not.
mirror_start m2b "${margs[@]}" --require-sigs 2 --cache "$TMP/mc2"
url=http://127.0.0.1:$MIRROR_PORT
check "K=2 restarted: the narinfo it held is served with both signatures" \
  bash -c "[ \$(curl -fs '$url/$gh.narinfo' | grep -c '^Sig: ') = 2 ]"
mirror_stop

mirror_start m1 "${margs[@]}" --cache "$TMP/mc1"
url=http://127.0.0.1:$MIRROR_PORT
check "K=1: the bad item is served, as the first upstream has it" \
  cmp <(curl -fs "$url/$bh.narinfo") "$TMP/a/$bh.narinfo"
check "K=1: so is the item one key signed" cmp <(curl -fs "$url/$oh.narinfo") "$TMP/a/$oh.narinfo"
check "K=1, stock Nix: the bad item substitutes (from the first upstream's build)" \
  nix_substitute "$url" "$TMP/n2" "$bad" "$keys"
check "... its contents are the first build's" diff -r "$s1$bad" "$TMP/n2$bad"
mirror_stop

# A nar URL belongs to the upstream whose narinfo names it: the preferred
# upstream here has no narinfo for the item, but other bytes at the same
# path.  The nar is asked of the upstream whose narinfo is served.
onar=$(sed -n 's/^URL: //p' "$TMP/a/$oh.narinfo")
mkdir -p "$TMP/d/nar"
cp "$TMP/a/nix-cache-info" "$TMP/d/"
cp "$TMP/b/$(sed -n 's/^URL: //p' "$TMP/b/$bh.narinfo")" "$TMP/d/$onar"
nginx_serve d "$TMP/d"; pd=$NGINX_PORT
mirror_start m3 --upstream "http://127.0.0.1:$pd" --upstream "http://127.0.0.1:$pa" \
  --trusted-key "$TMP/ka.pub" --cache "$TMP/mc3"
url=http://127.0.0.1:$MIRROR_PORT
check "the second upstream's narinfo is served" cmp <(curl -fs "$url/$oh.narinfo") "$TMP/a/$oh.narinfo"
check "... its nar comes whole, from that upstream" cmp <(curl -fs "$url/$onar") "$TMP/a/$onar"
check "... the first upstream was not asked for it" [ "$(count_requests d "/$onar")" -eq 0 ]
mirror_stop

# K=2 with the second upstream gone: one key is not enough, and the log
# says which upstream did not answer
nginx_stop b
mirror_start m4 "${margs[@]}" --require-sigs 2 --cache "$TMP/mc4" --connect-timeout 500ms
url=http://127.0.0.1:$MIRROR_PORT
check "K=2, an upstream down: the item is refused" [ "$(code "$url/$gh.narinfo")" = 404 ]
check "... saying the other did not answer" \
  wait_log "refused the narinfo of $gh: not enough signatures: 1 of 2 required \(http://127\.0\.0\.1:$pa \(signed by kofn-a\) .*\); http://127\.0\.0\.1:$pb: .*"
mirror_stop

check "--require-sigs without --trusted-key is refused" \
  bash -c "! '$CAIRN' mirror --upstream http://127.0.0.1:$pa --cache '$TMP/mcx' --require-sigs 2 \
    --listen 127.0.0.1:0 2> '$TMP/nokeys.err' && grep -q 'require-sigs 2 needs --trusted-key' '$TMP/nokeys.err'"
finish
