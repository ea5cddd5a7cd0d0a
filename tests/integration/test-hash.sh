#!/usr/bin/env bash
# `cairn hash convert` and `cairn hash file` against the real Nix
# (`nix hash to-base32/to-base16/to-base64/to-sri`, `nix hash file`), and
# the exit codes for bad input.
. "$SRCDIR/tests/integration/lib.sh"
skip_unless nix sha256sum sha1sum md5sum sha512sum
nix_env

# Inputs of several sizes; the hex digests of each algorithm are the seeds.
printf '' >"$TMP/empty"
printf 'hello cairn\n' >"$TMP/small"
head -c 100000 /dev/urandom >"$TMP/random"
cp "$VECTORS_DIR/nix/trees/t04-dir.nar" "$TMP/nar"

declare -A tool=([md5]=md5sum [sha1]=sha1sum [sha256]=sha256sum [sha512]=sha512sum)
declare -A nixto=([nix32]=to-base32 [base16]=to-base16 [base64]=to-base64 [sri]=to-sri)

# Nix is asked once per algorithm and output form for all inputs at once
# (one `nix hash` per value took a minute), and cairn likewise; each of
# cairn's lines is compared with Nix's line for the same input.
for algo in md5 sha1 sha256 sha512; do
  hexes=()
  for f in empty small random nar; do hexes+=("$(${tool[$algo]} "$TMP/$f" | cut -d' ' -f1)"); done
  # Every form Nix prints is an input, with and without the algorithm.
  inputs=("${hexes[@]}")
  for hex in "${hexes[@]}"; do inputs+=("$algo:$hex"); done
  for to in nix32 base64 sri; do
    vs=$(nix hash "${nixto[$to]}" --type "$algo" "${hexes[@]}") || { not_ok "nix refused $algo ${hexes[*]}"; continue; }
    mapfile -t v <<<"$vs"
    inputs+=("${v[@]}")
    if [ "$to" != sri ]; then for x in "${v[@]}"; do inputs+=("$algo:$x"); done; fi
  done
  for to in nix32 base16 base64 sri; do
    wants=$(nix hash "${nixto[$to]}" --type "$algo" "${inputs[@]}" 2>&1) || { not_ok "nix refused one of ${inputs[*]}: $wants"; continue; }
    mapfile -t want <<<"$wants"
    if [ "${#want[@]}" -ne "${#inputs[@]}" ]; then
      not_ok "$algo --to $to: nix printed ${#want[@]} lines for ${#inputs[@]} inputs"; continue
    fi
    # all at once first (cairn prints one line per hash); one by one only
    # to name the inputs that differ
    if gots=$("$CAIRN" hash convert --to "$to" --type "$algo" "${inputs[@]}" 2>&1) && [ "$gots" = "$wants" ]; then
      passes=$((passes + ${#inputs[@]})); continue
    fi
    bad=0
    for i in "${!inputs[@]}"; do
      in=${inputs[$i]}
      got=$("$CAIRN" hash convert --to "$to" --type "$algo" "$in" 2>&1) || true
      if [ "$got" = "${want[$i]}" ]; then
        passes=$((passes + 1))
      else
        bad=1; not_ok "$algo: convert --to $to $in: got '$got', nix says '${want[$i]}'"
      fi
    done
    [ "$bad" = 1 ] || not_ok "$algo --to $to: right one by one, but not all at once"
  done
done
for f in empty small random nar; do
  # Without --type, sha256 is assumed for a bare hash and a prefix wins.
  hex=$(sha256sum "$TMP/$f" | cut -d' ' -f1)
  check "$f: bare hex defaults to sha256" \
    test "$("$CAIRN" hash convert --to sri "$hex")" = "$(nix hash to-sri --type sha256 "$hex")"
  h1=$(sha1sum "$TMP/$f" | cut -d' ' -f1)
  check "$f: a sha1: prefix needs no --type" \
    test "$("$CAIRN" hash convert --to nix32 "sha1:$h1")" = "$(nix hash to-base32 --type sha1 "$h1")"
  check "$f: hash file matches nix hash file" \
    test "$("$CAIRN" hash file "$TMP/$f")" = "sha256:$(nix hash file --base32 "$TMP/$f")"
  check "$f: hash file --to sri matches" \
    test "$("$CAIRN" hash file --to sri "$TMP/$f")" = "$(nix hash file --sri "$TMP/$f")"
  check "$f: hash file - reads stdin" \
    test "$("$CAIRN" hash file - <"$TMP/$f")" = "$("$CAIRN" hash file "$TMP/$f")"
done
ok "conversions agree with nix ($passes so far)"

# The default output form is SRI, like `nix hash convert`.
h=$(sha256sum "$TMP/small" | cut -d' ' -f1)
check "default --to is sri" test "$("$CAIRN" hash convert "$h")" = "$(nix hash to-sri --type sha256 "$h")"
check "several hashes, one line each" \
  test "$("$CAIRN" hash convert --to base16 "$h" "sha256:$h" | wc -l)" -eq 2

# exit_is CODE DESCRIPTION COMMAND...: the command exits with CODE and, for
# failures, says "error:" on stderr.
exit_is() {
  local want=$1 what=$2; shift 2
  local rc=0
  "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  if [ "$rc" -ne "$want" ]; then not_ok "$what: exit $rc, want $want"; return; fi
  if [ "$want" -ne 0 ] && ! grep -q "error:" "$TMP/err"; then not_ok "$what: no error message"; return; fi
  ok "$what"
}
exit_is 1 "bad character in hash" "$CAIRN" hash convert --to nix32 "sha256:${h%?}g"
exit_is 1 "nix32 with 'e'" "$CAIRN" hash convert --to base16 sha256:e4zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw
exit_is 1 "wrong length" "$CAIRN" hash convert --to nix32 "sha256:${h}00"
exit_is 1 "unknown algorithm prefix" "$CAIRN" hash convert --to nix32 "md4:$h"
exit_is 1 "prefix contradicts --type" "$CAIRN" hash convert --type sha1 --to nix32 "sha256:$h"
exit_is 1 "SRI with bad padding" "$CAIRN" hash convert --to nix32 sha256-HDfQGvQL4ugGkd48w99EN3ppmvuxfGjwgJZLL9Bx/BM
exit_is 1 "empty hash" "$CAIRN" hash convert --to nix32 ""
exit_is 1 "bad hash among good ones" "$CAIRN" hash convert --to nix32 "$h" nope "$h"
check "the good ones are still printed" test "$(wc -l <"$TMP/out")" -eq 2
exit_is 1 "missing file" "$CAIRN" hash file "$TMP/no-such-file"
exit_is 2 "unknown format" "$CAIRN" hash convert --to base58 "$h"
exit_is 2 "unknown algorithm" "$CAIRN" hash convert --type sha3 "$h"
exit_is 2 "--to without argument" "$CAIRN" hash convert --to
exit_is 2 "unknown option" "$CAIRN" hash convert --frobnicate "$h"
exit_is 2 "no hashes" "$CAIRN" hash convert --to nix32
exit_is 2 "no subcommand" "$CAIRN" hash
exit_is 2 "unknown subcommand" "$CAIRN" hash path /nix/store
exit_is 2 "file with another algorithm" "$CAIRN" hash file --type sha1 "$TMP/small"
exit_is 0 "convert -h" "$CAIRN" hash convert -h
check "convert -h prints usage" grep -q "^usage: cairn hash" "$TMP/out"
finish
