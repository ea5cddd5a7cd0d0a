# cairn fetch against real Nix binary caches (built with nix-build, copied
# with `nix copy --to file://...` in every compression, served by nginx) and
# against servers that misbehave on purpose (fetch-test-server.py): the
# acceptance cases and the failure matrix of issue 4.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
nix_lib_init # Nix 2.8 as root, no daemon, chroot stores under $TMP
skip_unless nginx sha256sum curl

PYSRV="$SRCDIR/tests/integration/fetch-test-server.py"

# build_closure ROOT N BYTES: N derivations, each refers to the two before it,
# each holds BYTES random bytes (two builds differ); prints the top path
build_closure() {
  local root=$1 n=$2 bytes=$3 expr=$TMP/closure-$RANDOM.nix
  cat >"$expr" <<EOF
let
  mk = i: deps: derivation {
    name = "fx-\${toString i}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/bin:/usr/bin";
    inherit deps;
    args = [ "-c" ''
      mkdir -p \$out/bin \$out/share/empty
      for d in \$deps; do echo "\$d" >> \$out/refs; done
      printf '#!/bin/sh\necho fx-\${toString i}\n' > \$out/bin/fx-\${toString i}
      chmod +x \$out/bin/fx-\${toString i}
      ln -s bin/fx-\${toString i} \$out/link
      head -c $bytes /dev/urandom > \$out/data
    '' ];
  };
  go = i: if i == 1 then [ (mk 1 []) ]
          else let prev = go (i - 1);
                   d = [ (builtins.head prev) ] ++ (if i > 2 then [ (builtins.elemAt prev 1) ] else []);
               in [ (mk i d) ] ++ prev;
in builtins.head (go $n)
EOF
  nix-build --store "local?root=$root" --no-out-link --quiet "$expr"
}

copy_to() { nix_copy_to_file "$@"; }

hashpart() { basename "$1" | cut -c1-32; }

# nar_hash_of FILE-OR-DIR: sha256:<nix32> of `nix-store --dump`, computed by Nix
nar_hash_of() {
  local hex
  hex=$(nix-store --dump "$1" | sha256sum | cut -d' ' -f1)
  echo "sha256:$(nix hash to-base32 --type sha256 "$hex")"
}

# ---- servers
WWW=$TMP/www
mkdir -p "$WWW"
nginx_start ng "$WWW"
NG=$NGINX_URL

# serve_py DIR MODE: start fetch-test-server.py; sets PY_URL, PY_PID, PY_LOG
serve_py() {
  local pf=$TMP/py-$RANDOM
  PY_LOG=$pf.log
  python3 "$PYSRV" "$1" "$pf" "$2" "$PY_LOG" 2>>"$TMP/py.err" &
  PY_PID=$!
  cleanup_hooks+=("kill $PY_PID 2>/dev/null")
  local port
  port=$(port_from_file "$pf" "$PY_PID") || { echo "serve_py: server did not start" >&2; return 1; }
  PY_URL=http://127.0.0.1:$port
}

# ---- closure and keys
nix_gen_key test-1 "$TMP/k1"
nix_gen_key test-2 "$TMP/k2"

S1=$TMP/s1
TOP=$(build_closure "$S1" 6 300000)
mapfile -t CLOSURE < <(nix path-info --store "local?root=$S1" -r "$TOP")
DEP=$(grep -- '-fx-1$' <<<"$(printf '%s\n' "${CLOSURE[@]}")")
DEP2=$(grep -- '-fx-2$' <<<"$(printf '%s\n' "${CLOSURE[@]}")") # refers to DEP
check "built a closure of 6 paths" test "${#CLOSURE[@]}" -eq 6

for c in none xz zstd bzip2; do
  copy_to "$S1" "$TOP" "$WWW/c-$c" "$c" "$TMP/k1.sec"
done

F=("$CAIRN" fetch --no-cache --trusted-key "$TMP/k1.pub")

# store_items ROOT: number of entries in ROOT/nix/store (0 when absent)
store_items() { find "$1/nix/store" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# json_get FILE EXPR: evaluate a Python expression over the JSON summary j
json_get() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# ---- every compression: the whole closure, each item dumped back has the signed NarHash
for c in none xz zstd bzip2; do
  R=$TMP/r-$c
  if "${F[@]}" --from "$NG/c-$c" --store "$R" --closure --json "$TOP" >"$TMP/j-$c" 2>"$TMP/e-$c"; then
    ok "$c: fetch --closure exits 0"
  else
    not_ok "$c: fetch --closure exits 0"; cat "$TMP/e-$c"
  fi
  bad=0
  for p in "${CLOSURE[@]}"; do
    want=$(sed -n 's/^NarHash: //p' "$WWW/c-$c/$(hashpart "$p").narinfo")
    got=$(nar_hash_of "$R$p" 2>/dev/null || echo missing)
    [ "$got" = "$want" ] || { bad=1; echo "  $p: $got != $want"; }
  done
  check "$c: all ${#CLOSURE[@]} items unpacked with the signed NarHash" test "$bad" = 0
  check "$c: JSON says 6 fetched, compression $c" \
    test "$(json_get "$TMP/j-$c" '(j["fetched"], {i["compression"] for i in j["items"]} == {"'$c'"})')" = "(6, True)"
done

out=$("${F[@]}" --from "$NG/c-xz" --store "$TMP/r-xz" --closure "$TOP" 2>&1)
check "second run: everything present, exit 0" test "$(grep -c '^present ' <<<"$out")" = 1
check "nix-store --verify-path agrees (Nix reads what we unpacked)" \
  cmp <(nix-store --dump "$TMP/r-zstd$TOP") <(nix-store --dump "$S1$TOP")

# paths on stdin, and a sub-path of an item; fx-2 refers to fx-1, asked for
# in the same run
R=$TMP/r-stdin
printf '%s\n\n%s/bin/fx-1\n' "$DEP2" "$DEP" | "${F[@]}" --from "$NG/c-zstd" --store "$R" - 2>/dev/null
check "paths from stdin (no --closure: just those two)" test "$(store_items "$R")" = 2

# --nar-dir keeps verified NARs
R=$TMP/nars
"${F[@]}" --from "$NG/c-xz" --nar-dir "$R" --closure "$TOP" 2>/dev/null
want=$(sed -n 's/^NarHash: //p' "$WWW/c-xz/$(hashpart "$TOP").narinfo")
got=$("$CAIRN" nar check <"$R/$(basename "$TOP").nar" | head -1)
check "--nar-dir: 6 NARs, the top one hashes to its NarHash" \
  test "$(ls "$R" | wc -l)-$got" = "6-$want"

# ---- registration (issue 12.1): a chroot store's database, read by Nix's own
# tools.  r-zstd got the whole closure above.
R=$TMP/r-zstd
NS=(--store "local?root=$R")
check "nix path-info: the closure is valid in the chroot store" \
  test "$(nix path-info "${NS[@]}" -r "$TOP" 2>/dev/null | sort)" = "$(printf '%s\n' "${CLOSURE[@]}" | sort)"
# The fields Nix reads back are those of the store it was built in, and the
# signatures the narinfos carried (the ones that verified).
nix path-info "${NS[@]}" -r --json "$TOP" >"$TMP/pi-fetched.json" 2>/dev/null || true
nix path-info --store "local?root=$S1" -r --json "$TOP" >"$TMP/pi-built.json"
check "  ... NarHash, NarSize, References, Deriver as built, the accepted Sig, not ultimate" \
  python3 - "$TMP/pi-fetched.json" "$TMP/pi-built.json" "$WWW/c-zstd" <<'EOF'
import json, sys
got = {p["path"]: p for p in json.load(open(sys.argv[1]))}
want = {p["path"]: p for p in json.load(open(sys.argv[2]))}
bad = 0
for path, w in want.items():
    g = got.get(path, {})
    sigs = [l.split(": ", 1)[1].strip() for l in
            open("%s/%s.narinfo" % (sys.argv[3], path[11:43])) if l.startswith("Sig: ")]
    for k in ("narHash", "narSize", "references", "deriver"):
        if g.get(k) != w.get(k):
            print("  %s %s: %r != %r" % (path, k, g.get(k), w.get(k))); bad = 1
    if g.get("signatures") != sigs or g.get("ultimate", False) or not g.get("registrationTime"):
        print("  %s: %r" % (path, g)); bad = 1
sys.exit(bad)
EOF
rc=0; nix-store "${NS[@]}" --verify --check-contents >"$TMP/verify" 2>&1 || rc=$?
check "nix-store --verify --check-contents accepts the chroot store" \
  test "$rc-$(grep -ci 'modified\|invalid\|error\|warning' "$TMP/verify")" = "0-0"
check "nix-store -q --references: what was built" \
  test "$(nix-store "${NS[@]}" -q --references "$TOP")" = "$(nix-store --store "local?root=$S1" -q --references "$TOP")"
check "--json: narHash, references, deriver, signatures of each item, registered" \
  python3 - "$TMP/j-zstd" "$WWW/c-zstd" <<'EOF'
import json, sys
bad = 0
for i in json.load(open(sys.argv[1]))["items"]:
    ni = dict(l.rstrip("\n").split(": ", 1) for l in open("%s/%s.narinfo" % (sys.argv[2], i["path"][11:43])) if ": " in l)
    sigs = [l.split(": ", 1)[1].strip() for l in open("%s/%s.narinfo" % (sys.argv[2], i["path"][11:43])) if l.startswith("Sig: ")]
    want = (ni["NarHash"], int(ni["NarSize"]), sorted("/nix/store/" + r for r in ni["References"].split()),
            "/nix/store/" + ni["Deriver"], sigs, True)
    got = (i["narHash"], i["narSize"], i["references"], i["deriver"], i["signatures"], i["registered"])
    if got != want:
        print("  ", got, "\n  ", want); bad = 1
sys.exit(bad)
EOF
check "placed with a store's metadata (read-only, mtime 1)" \
  test "$(stat -c '%a %Y' "$R$TOP" "$R$TOP/bin/fx-6" "$R$TOP/data" | tr '\n' ' ')" = "555 1 555 1 444 1 "
# Nix itself finds nothing to substitute; against an empty store the same
# command downloads (so the counting means something).
nar_gets() { grep -c "GET /$1/\(nar/\|[^ ]*\.narinfo\)" "$TMP/ng.access" || true; }
nars_only() { grep -c "GET /$1/nar/" "$TMP/ng.access" || true; }
NSUB=(--max-jobs 0 --no-link --option substituters "$NG/c-zstd" --option trusted-public-keys "$(cat "$TMP/k1.pub")")
n0=$(nar_gets c-zstd)
rc=0; nix build "${NS[@]}" "${NSUB[@]}" "$TOP" 2>"$TMP/err" || rc=$?
n1=$(nar_gets c-zstd)
nix build --store "local?root=$TMP/r-nixsubst" "${NSUB[@]}" "$TOP" 2>/dev/null || true
n2=$(nar_gets c-zstd)
check "nix build --max-jobs 0 of the fetched path: nothing downloaded again ($((n1 - n0)); an empty store asks $((n2 - n1)))" \
  test "$rc-$((n1 - n0))-$(((n2 - n1) >= 12))" = "0-0-1"

# ---- references (issue 12.2): without --closure, an item is placed only when
# its references are valid in the store or fetched in the same run
FX5=$(grep -- '-fx-5$' <<<"$(printf '%s\n' "${CLOSURE[@]}")")
FX4=$(grep -- '-fx-4$' <<<"$(printf '%s\n' "${CLOSURE[@]}")")
R=$TMP/r-refs
rc=0; "${F[@]}" --from "$NG/c-zstd" --store "$R" "$TOP" 2>"$TMP/err" || rc=$?
check "missing references: refused, exit 1, nothing placed" test "$rc-$(store_items "$R")" = "1-0"
check "  ... naming both" grep -q "$(basename "$FX5"), $(basename "$FX4")\|$(basename "$FX4"), $(basename "$FX5")" "$TMP/err"
sed 's/^/    # /' "$TMP/err"
"${F[@]}" --from "$NG/c-zstd" --store "$R" --closure "$FX5" 2>/dev/null || true
rc=0; "${F[@]}" --from "$NG/c-zstd" --store "$R" "$TOP" 2>"$TMP/err" || rc=$?
check "references already valid in the store: accepted, and valid itself" \
  test "$rc-$(nix path-info --store "local?root=$R" "$TOP" 2>/dev/null)" = "0-$TOP"
check "references fetched in the same run (the stdin test above): both valid" \
  test "$(nix path-info --store "local?root=$TMP/r-stdin" "$DEP" "$DEP2" | wc -l)" = 2

# ---- crash safety: files first (synced), then the registration.  strace
# shows the order: every file and directory of an item synced before it is
# renamed into place, the store directory synced after, and only then the
# database written.
if command -v strace >/dev/null; then
  R=$TMP/r-order
  strace -f -qq -y -e trace=fsync,renameat2,pwrite64 -o "$TMP/trace" \
    "${F[@]}" --from "$NG/c-zstd" --store "$R" --closure "$DEP2" 2>/dev/null || true
  check "strace: files and directories synced, renamed, store synced, then registered" \
    python3 - "$TMP/trace" "$R/nix/store" "$(basename "$DEP")" "$(basename "$DEP2")" <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
store, items = sys.argv[2], sys.argv[3:]
def first(pred, start=0):
    return next((i for i in range(start, len(lines)) if pred(lines[i])), None)
bad = 0
for b in items:
    ren = first(lambda l: re.search(r'renameat2\(\d+<%s>, "%s\.tmp-\w+", \d+<%s>, "%s"' % (
        re.escape(store), re.escape(b), re.escape(store), re.escape(b)), l))
    if ren is None:
        print("  no rename of", b); bad = 1; continue
    tmp = re.search(r'"(%s\.tmp-\w+)"' % re.escape(b), lines[ren]).group(1)
    synced = [i for i, l in enumerate(lines[:ren]) if "fsync(" in l and "<%s/%s" % (store, tmp) in l]
    dir_synced = first(lambda l: re.search(r'fsync\(\d+<%s/%s>' % (re.escape(store), tmp), l))
    store_sync = first(lambda l: re.search(r'fsync\(\d+<%s>' % re.escape(store), l), ren)
    reg = first(lambda l: "pwrite64(" in l and "db.sqlite-wal>" in l, ren)
    if len(synced) < 3 or dir_synced is None or dir_synced > ren or store_sync is None or reg is None or not store_sync < reg:
        print("  %s: file syncs %s, dir sync %s, rename %s, store sync %s, db write %s" % (
            b, synced, dir_synced, ren, store_sync, reg)); bad = 1
sys.exit(bad)
EOF
else
  not_ok "strace is needed for the ordering test (scripts/deps.sh test installs it)"
fi

# A database that refuses the registration (a full disk, a crash between the
# two steps): the files are there, the path is not valid, and a re-run
# registers the files as they are, after checking them, without downloading.
R=$TMP/r-crash
DBF=$R/nix/var/nix/db/db.sqlite
"${F[@]}" --from "$NG/c-zstd" --store "$R" "$DEP" 2>/dev/null || true
sqlite3 "$DBF" "CREATE TRIGGER refuse BEFORE INSERT ON ValidPaths BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;" || true
rc=0; "${F[@]}" --from "$NG/c-zstd" --store "$R" "$DEP2" 2>"$TMP/err" || rc=$?
check "registration refused: exit 1, the item named as not registered" \
  test "$rc-$(grep -c "$(basename "$DEP2"): in place but not registered.*refused by the test" "$TMP/err")" = "1-1"
sed 's/^/    # /' "$TMP/err"
check "  ... its files are in place, and Nix does not see it as valid" \
  bash -c '[ -e "$1$2" ] && ! nix path-info --store "local?root=$1" "$2" 2>/dev/null' _ "$R" "$DEP2"
sqlite3 "$DBF" "DROP TRIGGER refuse" || true
n0=$(nars_only c-zstd)
rc=0; "${F[@]}" --from "$NG/c-zstd" --store "$R" --json "$DEP2" >"$TMP/j" 2>"$TMP/err" || rc=$?
check "a re-run registers the files in place, without downloading the NAR" \
  test "$rc-$(json_get "$TMP/j" '(j["items"][0]["inPlace"], j["items"][0]["registered"])')-$(($(nars_only c-zstd) - n0))" = "0-(True, True)-0"
check "  ... and Nix verifies its contents" \
  bash -c 'nix-store --store "local?root=$1" --verify --check-contents 2>&1 | grep -ci "modified\|error" | grep -qx 0' _ "$R"
FX3=$(grep -- '-fx-3$' <<<"$(printf '%s\n' "${CLOSURE[@]}")")
sqlite3 "$DBF" "CREATE TRIGGER refuse BEFORE INSERT ON ValidPaths BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;" || true
"${F[@]}" --from "$NG/c-zstd" --store "$R" "$FX3" 2>/dev/null || true
sqlite3 "$DBF" "DROP TRIGGER refuse" || true
chmod u+w "$R$FX3" "$R$FX3/data" 2>/dev/null && echo changed >>"$R$FX3/data" || true
rc=0; "${F[@]}" --from "$NG/c-zstd" --store "$R" "$FX3" 2>"$TMP/err" || rc=$?
check "files in place that differ from what was signed: not registered, exit 1" \
  test "$rc-$(grep -c 'not what was signed' "$TMP/err")" = "1-1"
sed 's/^/    # /' "$TMP/err"

# A database someone holds locked (here sqlite3, as a busy daemon would):
# said clearly, with what to do, before anything is downloaded.
R=$TMP/r-locked
"${F[@]}" --from "$NG/c-zstd" --store "$R" "$DEP" 2>/dev/null || true
mkdir -p "$R/nix/var/nix/db"
mkfifo "$TMP/lockfifo"
sqlite3 "$R/nix/var/nix/db/db.sqlite" <"$TMP/lockfifo" >/dev/null 2>&1 &
holder=$!
cleanup_hooks+=("kill $holder 2>/dev/null")
exec 7>"$TMP/lockfifo"
echo "BEGIN EXCLUSIVE; INSERT INTO ValidPaths (path, hash, registrationTime) VALUES ('x', 'y', 1);" >&7
for _ in $(seq 100); do
  sqlite3 "$R/nix/var/nix/db/db.sqlite" "BEGIN IMMEDIATE; ROLLBACK;" 2>/dev/null || break
  sleep 0.05
done
n0=$(nar_gets c-zstd)
rc=0; "${F[@]}" --db-timeout 1 --from "$NG/c-zstd" --store "$R" "$DEP2" 2>"$TMP/err" || rc=$?
check "locked database: exit 1, 'locked by another process', what to do, nothing downloaded" \
  test "$rc-$(grep -c 'locked by another process' "$TMP/err")-$(grep -c 'nix-daemon' "$TMP/err")-$(($(nar_gets c-zstd) - n0))-$(store_items "$R")" = "1-1-1-0-1"
sed 's/^/    # /' "$TMP/err"
exec 7>&-
wait "$holder" 2>/dev/null || true
rc=0; "${F[@]}" --from "$NG/c-zstd" --store "$R" "$DEP2" 2>/dev/null || rc=$?
check "  ... once it is released, the same fetch registers" \
  test "$rc-$(nix path-info --store "local?root=$R" "$DEP2" 2>/dev/null)" = "0-$DEP2"

# ---- failure matrix: narinfos
mkcache() { rm -rf "$WWW/$1"; cp -a "$WWW/c-zstd" "$WWW/$1"; }
TOPNI=$(hashpart "$TOP").narinfo
DEPNI=$(hashpart "$DEP").narinfo

# expect_fail NAME PATTERN ARGS...: exit 1, PATTERN in stderr, nothing in ROOT
expect_fail() {
  local name=$1 pat=$2 R=$TMP/r-$RANDOM rc=0; shift 2
  "${F[@]}" --store "$R" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
  if [ "$rc" = 1 ] && grep -q -- "$pat" "$TMP/err" && [ "$(store_items "$R")" = 0 ] &&
     [ -z "$(find "$R" -name '*.tmp-*' 2>/dev/null)" ]; then
    ok "$name"
    sed 's/^/    # /' "$TMP/err"
  else
    not_ok "$name (exit $rc)"; cat "$TMP/err"
  fi
}

# expect_ok NAME ARGS...: exit 0, JSON summary in $TMP/j
expect_ok() {
  local name=$1 R=$TMP/r-$RANDOM rc=0; shift
  "${F[@]}" --store "$R" --json "$@" >"$TMP/j" 2>"$TMP/err" || rc=$?
  LAST_ROOT=$R
  if [ "$rc" = 0 ]; then ok "$name"; else not_ok "$name (exit $rc)"; cat "$TMP/err"; fi
}

mkcache unsigned
sed -i '/^Sig:/d' "$WWW"/unsigned/*.narinfo
expect_fail "unsigned narinfo: refused" "no trusted signature" --from "$NG/unsigned" "$TOP"

mkcache untrusted
for n in "$WWW"/untrusted/*.narinfo; do
  sed '/^Sig:/d' "$n" | "$CAIRN" narinfo sign --key "$TMP/k2.sec" >"$n.new" && mv "$n.new" "$n"
done
expect_fail "signed by an untrusted key: refused" "no trusted signature" --from "$NG/untrusted" "$TOP"
check "  ... and the reason names the key" grep -q "test-2" "$TMP/err"

mkcache changed
sed -i 's/^NarSize: \([0-9]*\)/NarSize: \18/' "$WWW/changed/$DEPNI"
expect_fail "signature over different fields: refused" "no trusted signature" \
  --from "$NG/changed" "$DEP"

# A reference cycle (issue 11.7): fx-1 claims to refer to the top, which
# refers to it through the closure.  Every narinfo is validly signed; the
# error names the cycle instead of an internal error.
mkcache cycle
sed -i "s|^References:.*|References: $(basename "$TOP")|" "$WWW/cycle/$DEPNI"
sed '/^Sig:/d' "$WWW/cycle/$DEPNI" | "$CAIRN" narinfo sign --key "$TMP/k1.sec" >"$TMP/cy" &&
  mv "$TMP/cy" "$WWW/cycle/$DEPNI"
expect_fail "a reference cycle in signed narinfos: refused, the cycle named" "reference cycle" \
  --from "$NG/cycle" --closure "$TOP"
check "  ... the message names both ends of the cycle" \
  grep -q "reference cycle.*$(basename "$DEP") -> .*$(basename "$TOP")" "$TMP/err"
check "  ... and no internal error" bash -c '! grep -q "internal error" "$0"' "$TMP/err"

mkcache swapped
cp "$WWW/swapped/$DEPNI" "$WWW/swapped/$TOPNI"
expect_fail "narinfo StorePath not the requested path: refused" "not the path asked for" \
  --from "$NG/swapped" "$TOP"

# ---- failure matrix: bytes
# A good second server answers narinfos 1 s late, so that the bad
# first one's narinfo is the first good answer and its NAR is asked for
# (beside nginx answering at once, it often never was, and the case
# passed without meeting the fault); nar_gets_py LOG counts those asks.
serve_py "$WWW/c-none" late-1000
LATE_NONE=$PY_URL
serve_py "$WWW/c-zstd" late-1000
LATE_ZSTD=$PY_URL
nar_gets_py() { grep -c '^GET /nar/' "$1" || true; }
serve_py "$WWW/c-none" tamper
expect_fail "tampered NAR bytes (none): hash mismatch" "hash mismatch" --from "$PY_URL" "$DEP"
n0=$(nar_gets_py "$PY_LOG")
expect_ok "tampered first server, good second: fetched" --from "$PY_URL" --from "$LATE_NONE" "$DEP"
check "  ... from the second, after the first sent its NAR" \
  test "$(json_get "$TMP/j" 'j["items"][0]["server"]')-$(( $(nar_gets_py "$PY_LOG") > n0 ))" = "$LATE_NONE-1"
serve_py "$WWW/c-zstd" tamper
expect_fail "tampered NAR bytes (zstd): refused" "verifies" --from "$PY_URL" "$DEP"
rc=0
"${F[@]}" --nar-dir "$TMP/nars-bad" --from "$PY_URL" "$DEP" 2>/dev/null || rc=$?
check "tampered NAR with --nar-dir: exit 1, no file left (not even a temporary)" \
  test "$rc-$(find "$TMP/nars-bad" -type f 2>/dev/null | wc -l)" = "1-0"

mkcache truncated
for f in "$WWW"/truncated/nar/*; do truncate -s $(($(stat -c %s "$f") / 2)) "$f"; done
expect_fail "truncated NAR: refused" "verifies" --from "$NG/truncated" "$DEP"
n0=$(nars_only truncated)
expect_ok "truncated NAR on the first server, good second: fetched" \
  --from "$NG/truncated" --from "$LATE_ZSTD" --closure "$TOP"
check "  ... after the first sent its NARs ($(( $(nars_only truncated) - n0 )))" test "$(nars_only truncated)" -gt "$n0"

# The first good answer decides (K = 1); a server answering later with
# the same claim is one more source, also after every earlier one failed.
serve_py "$WWW/c-none" late
late_url=$PY_URL
serve_py "$WWW/c-none" die
kpid=$PY_PID
expect_ok "server killed mid-transfer: finished from a later answer" \
  --from "$PY_URL" --from "$late_url" "$DEP"
check "  ... the first server is gone, the late one served it" \
  test "$(kill -0 "$kpid" 2>/dev/null && echo alive)-$(json_get "$TMP/j" 'j["items"][0]["server"]')" = "-$late_url"

# (the stalling server sends the rest after 30 s: a fetch that waited for
# it would get the whole NAR from its first request; one that gave up on
# the stall asks again, with Range from this server or from the second)
serve_py "$WWW/c-none" stall
expect_ok "stalling server: times out, resumes or fails over" \
  --stall-timeout 2 --from "$PY_URL" --from "$LATE_NONE" "$DEP"
check "  ... the stall was given up on: $(sed -n 's|^GET /nar/[^ ]* ||p' "$PY_LOG" | tr '\n' ' ')from the first, served by $(json_get "$TMP/j" 'j["items"][0]["server"]')" \
  bash -c '[ "$0" = "$1" ] || grep -q "^GET /nar/.* bytes=[1-9]" "$2"' \
  "$(json_get "$TMP/j" 'j["items"][0]["server"]')" "$LATE_NONE" "$PY_LOG"
kill "$PY_PID" 2>/dev/null || true

serve_py "$WWW/c-none" cut
expect_ok "short body: resumed with Range from the same server" --from "$PY_URL" "$DEP"
check "  ... the log shows the Range request" grep -q "^GET /nar/.* bytes=[1-9]" "$PY_LOG"

mkdir -p "$WWW/empty"
expect_ok "first server 404, second has it" --from "$NG/empty" --from "$NG/c-zstd" --closure "$TOP"
check "  ... all 6 from the second" test "$(json_get "$TMP/j" 'j["fetched"]')" = 6

serve_py "$WWW/c-zstd" missing
expect_ok "narinfo but no NAR on the first server: the second sends it" \
  --from "$PY_URL" --from "$LATE_ZSTD" "$DEP"
check "  ... after the first was asked for it" \
  test "$(json_get "$TMP/j" 'j["items"][0]["server"]')-$(nar_gets_py "$PY_LOG")" = "$LATE_ZSTD-1"

# --from order, not arrival order, decides whom the NAR is asked of first:
# the first server's narinfo comes after the second's (as it may under
# load), and it is still asked for the NAR before the second sends it.
serve_py "$WWW/c-zstd" missing-late-300
expect_ok "narinfo late and no NAR on the first server: the second sends it" \
  --from "$PY_URL" --from "$NG/c-zstd" "$DEP"
check "  ... after the first, whose narinfo came last, was asked for it" \
  test "$(json_get "$TMP/j" 'j["items"][0]["server"]')-$(nar_gets_py "$PY_LOG")" = "$NG/c-zstd-1"
# ... but a preferred server that is slow to answer is not waited for
# past the grace (2 s): the second's answer decides, it sends the NAR
serve_py "$WWW/c-zstd" missing-late-8000
expect_ok "first server's narinfo 8 s late: not waited for" --from "$PY_URL" --from "$NG/c-zstd" "$DEP"
check "  ... the second sent the NAR, the first was never asked for it" \
  test "$(json_get "$TMP/j" 'j["items"][0]["server"]')-$(nar_gets_py "$PY_LOG")" = "$NG/c-zstd-0"

dead1=$(free_port)
dead2=$(free_port)
expect_fail "all servers down: clear error, exit 1, nothing left" "no server could be asked" \
  --from "http://127.0.0.1:$dead1" --from "http://127.0.0.1:$dead2" --closure "$TOP"
check "  ... the reason names both servers" \
  grep -q "127.0.0.1:$dead1.*127.0.0.1:$dead2" "$TMP/err"

# ---- trust from signatures, bytes from anywhere
mkcache signed2
for n in "$WWW"/signed2/*.narinfo; do
  sed '/^Sig:/d' "$n" | "$CAIRN" narinfo sign --key "$TMP/k2.sec" >"$n.new" && mv "$n.new" "$n"
done
expect_ok "--require-sigs 2, two servers signed by different keys that agree: accepted" \
  --trusted-key "$TMP/k2.pub" --require-sigs 2 --from "$NG/c-zstd" --from "$NG/signed2" \
  --closure "$TOP"
check "  ... two signers each" test "$(json_get "$TMP/j" '{i["signers"] for i in j["items"]}')" = "{2}"
expect_fail "--require-sigs 2 with one signer: refused" "not enough signatures" \
  --trusted-key "$TMP/k2.pub" --require-sigs 2 --from "$NG/c-zstd" "$TOP"

# One key trusted under two names is one signer (issue 11.1): the same
# signature, relabelled on a second server, must not count twice.
mkcache relabel
sed -i 's/^Sig: test-1:/Sig: farm-b:/' "$WWW"/relabel/*.narinfo
printf 'farm-b:%s\n' "$(cut -d: -f2 "$TMP/k1.pub")" >"$TMP/farm-b.pub"
expect_fail "--require-sigs 2, one key under two names: refused" "not enough signatures" \
  --trusted-key "$TMP/farm-b.pub" --require-sigs 2 --from "$NG/c-zstd" --from "$NG/relabel" "$TOP"
check "  ... and the key ring says it holds one key twice" \
  grep -q "one key is trusted under the names 'test-1' 'farm-b'" "$TMP/err"
expect_ok "  ... the relabelled server alone is accepted with --require-sigs 1" \
  --trusted-key "$TMP/farm-b.pub" --from "$NG/relabel" --closure "$TOP"

S2=$TMP/s2
TOP2=$(build_closure "$S2" 6 300000)
check "a second build of the same derivations has the same path" test "$TOP2" = "$TOP"
copy_to "$S2" "$TOP" "$WWW/other" zstd "$TMP/k2.sec"
expect_fail "--require-sigs 2, servers disagree: refused" "servers disagree" \
  --trusted-key "$TMP/k2.pub" --require-sigs 2 --from "$NG/c-zstd" --from "$NG/other" "$TOP"
check "  ... both servers named" grep -q "$NG/c-zstd.*but $NG/other\|$NG/other.*but $NG/c-zstd" "$TMP/err"

mkcache nonars
rm -rf "$WWW/nonars/nar"
expect_ok "unsigned narinfo that matches a signed one: a byte source" \
  --from "$NG/nonars" --from "$NG/unsigned" --closure "$TOP"
check "  ... the bytes came from the unsigned server" \
  test "$(json_get "$TMP/j" '{i["server"] for i in j["items"]}')" = "{'$NG/unsigned'}"

# content-addressed: no signature needed when the path recomputes and the content checks
mkdir -p "$TMP/ca-src/sub"
echo "content-addressed" >"$TMP/ca-src/sub/file"
CA=$(nix store add-path --store "local?root=$S1" --name ca-item "$TMP/ca-src")
copy_to "$S1" "$CA" "$WWW/ca" zstd
check "the CA narinfo has a CA field" grep -q "^CA: fixed:r:sha256:" "$WWW/ca/$(hashpart "$CA").narinfo"
expect_ok "unsigned CA item whose path recomputes: fetched" --from "$NG/ca" "$CA"
check "  ... accepted by CA" test "$(json_get "$TMP/j" 'j["items"][0]["contentAddressed"]')" = True
rm -rf "$WWW/ca-bad" && cp -a "$WWW/ca" "$WWW/ca-bad"
sed -i 's/^CA: fixed:r:sha256:./CA: fixed:r:sha256:0/' "$WWW/ca-bad/$(hashpart "$CA").narinfo"
expect_fail "unsigned CA item whose path does not recompute: refused" "no trusted signature" \
  --from "$NG/ca-bad" "$CA"


# ---- narinfo cache: a second run asks nothing it already knows
DB=$TMP/nicache.sqlite
FC=("$CAIRN" fetch --cache-db "$DB" --trusted-key "$TMP/k1.pub")
narinfo_gets() { grep -c "GET /$1/[^ ]*\.narinfo" "$TMP/ng.access" || true; }
n0=$(narinfo_gets c-zstd); e0=$(narinfo_gets empty)
"${FC[@]}" --from "$NG/empty" --from "$NG/c-zstd" --store "$TMP/nc1" --closure "$TOP" 2>/dev/null
n1=$(narinfo_gets c-zstd); e1=$(narinfo_gets empty)
"${FC[@]}" --from "$NG/empty" --from "$NG/c-zstd" --store "$TMP/nc2" --closure "$TOP" 2>/dev/null
n2=$(narinfo_gets c-zstd); e2=$(narinfo_gets empty)
check "narinfo cache: first run asks both servers for 6 narinfos ($((n1 - n0)), $((e1 - e0)))" \
  test "$((n1 - n0))-$((e1 - e0))" = "6-6"
check "narinfo cache: second run asks nothing (positive and negative entries)" \
  test "$((n2 - n1))-$((e2 - e1))" = "0-0"
check "narinfo cache: second run still fetched all 6" test "$(store_items "$TMP/nc2")" = 6
rc=0; "${FC[@]}" --from "http://127.0.0.1:$dead1" --store "$TMP/nc3" "$TOP" 2>/dev/null || rc=$?
rc2=0; "${FC[@]}" --from "http://127.0.0.1:$dead1" --store "$TMP/nc3" "$TOP" 2>"$TMP/err" || rc2=$?
check "a down server is remembered in the cache" \
  test "$rc-$rc2-$(grep -c remembered "$TMP/err")" = "1-1-1"

# ---- Priority from nix-cache-info, then the order given
mkcache lowprio; echo "Priority: 90" >>"$WWW/lowprio/nix-cache-info"
mkcache highprio; echo "Priority: 10" >>"$WWW/highprio/nix-cache-info"
expect_ok "two servers with different Priority" \
  --from "$NG/lowprio" --from "$NG/highprio" --closure "$TOP"
check "  ... everything from the one with the lower Priority number, given second" \
  test "$(json_get "$TMP/j" '{i["server"] for i in j["items"]}')" = "{'$NG/highprio'}"
mkcache wrongdir; sed -i 's|^StoreDir: .*|StoreDir: /gnu/store|' "$WWW/wrongdir/nix-cache-info"
expect_ok "a server of another store directory is skipped" \
  --from "$NG/wrongdir" --from "$NG/c-zstd" --closure "$TOP"
check "  ... everything from the other one" \
  test "$(json_get "$TMP/j" '{i["server"] for i in j["items"]}')" = "{'$NG/c-zstd'}"

expect_ok "--jobs 1" --jobs 1 --from "$NG/c-xz" --closure "$TOP"
check "  ... 6 fetched" test "$(json_get "$TMP/j" 'j["fetched"]')" = 6
for t in 0 1 4; do
  expect_ok "--threads $t: the closure" --threads "$t" --from "$NG/c-xz" --closure "$TOP"
  check "  ... 6 fetched, the top item unpacked right" \
    test "$(json_get "$TMP/j" 'j["fetched"]')-$(nar_hash_of "$LAST_ROOT$TOP")" = \
    "6-$(sed -n 's/^NarHash: //p' "$WWW/c-xz/$TOPNI")"
done
serve_py "$WWW/c-none" tamper
expect_fail "--threads 0: tampered bytes refused" "hash mismatch" --threads 0 --from "$PY_URL" "$DEP"
expect_ok "--threads 0: tampered first server, good second" --threads 0 \
  --from "$PY_URL" --from "$LATE_NONE" "$DEP"
check "  ... after the first sent its NAR" test "$(nar_gets_py "$PY_LOG")" -ge 1
serve_py "$WWW/c-none" cut
expect_ok "--threads 0: short body resumed" --threads 0 --from "$PY_URL" "$DEP"
out=$("${F[@]}" --from "$NG/c-xz" --store "$TMP/r-pipe" --closure "$TOP" 2>&1 >/dev/null)
check "on a pipe: one line per finished item" test "$(grep -c '^fetched /nix/store/' <<<"$out")" = 6

# ---- the Guix dialect: /gnu/store, nar/gzip/<basename> URLs, a Signature line
# over the text before it, keys in Guix's formats.  A cache made here with
# `cairn nar dump`, gzip and `cairn narinfo sign` (Guix keys), as guix
# publish lays it out.
G=$WWW/guix
mkdir -p "$G/nar/gzip" "$TMP/gsrc"
"$CAIRN" key generate --format guix --secret "$TMP/g1.sec" --public "$TMP/g1.pub" >/dev/null
"$CAIRN" key generate --format guix --secret "$TMP/g2.sec" --public "$TMP/g2.pub" >/dev/null
printf 'StoreDir: /gnu/store\nWantMassQuery: 0\nPriority: 100\n' >"$G/nix-cache-info"
GLIB=0kbbxc27vzz13gjlal2xpdl3ldasp15j-glib-1.0
GAPP=1j4pm3ca6i83nr7lf02z696lda7gzrlk-gapp-2.0
mkdir -p "$TMP/gsrc/$GLIB/lib" "$TMP/gsrc/$GAPP/bin"
echo "library" >"$TMP/gsrc/$GLIB/lib/libg.txt"
printf '#!/bin/sh\necho /gnu/store/%s\n' "$GLIB" >"$TMP/gsrc/$GAPP/bin/gapp"
chmod +x "$TMP/gsrc/$GAPP/bin/gapp"
ln -s bin/gapp "$TMP/gsrc/$GAPP/run"
# guix_item BASENAME REFS...: NAR, gzip file and signed narinfo
guix_item() {
  local b=$1 nar=$TMP/$1.nar h sz; shift
  "$CAIRN" nar dump "$TMP/gsrc/$b" >"$nar"
  gzip -9n <"$nar" >"$G/nar/gzip/$b"
  { read -r h; read -r sz; } < <("$CAIRN" nar check <"$nar")
  printf 'StorePath: /gnu/store/%s\nURL: nar/gzip/%s\nCompression: gzip\nFileSize: %s\nNarHash: %s\nNarSize: %s\nReferences: %s\n' \
    "$b" "$b" "$(stat -c %s "$G/nar/gzip/$b")" "$h" "$sz" "$*" |
    "$CAIRN" narinfo sign --key "$TMP/g1.sec" --host test.guix >"$G/${b:0:32}.narinfo"
}
guix_item "$GLIB"
guix_item "$GAPP" "$GAPP" "$GLIB"
check "the Guix narinfo ends in a Signature line" \
  bash -c 'tail -1 "$0" | grep -q "^Signature: 1;test.guix;"' "$G/${GAPP:0:32}.narinfo"
GF=("$CAIRN" fetch --no-cache --store-dir /gnu/store)
R=$TMP/r-guix
if "${GF[@]}" --trusted-key "$TMP/g1.pub" --from "$NG/guix" --store "$R" --closure --json \
  "/gnu/store/$GAPP" >"$TMP/j" 2>"$TMP/err"; then
  ok "Guix cache, Guix signing-key.pub: the closure fetched"
else
  not_ok "Guix cache, Guix signing-key.pub: the closure fetched"; cat "$TMP/err"
fi
check "  ... both trees unpacked as they were" diff -r "$TMP/gsrc" "$R/gnu/store"
check "  ... gzip, 2 items" \
  test "$(json_get "$TMP/j" '(j["fetched"], {i["compression"] for i in j["items"]})')" = "(2, {'gzip'})"
printf '(acl\n (entry %s\n  (tag (guix import))))\n' "$(cat "$TMP/g1.pub")" >"$TMP/acl"
rc=0; "${GF[@]}" --trusted-key "$TMP/acl" --from "$NG/guix" --store "$TMP/r-guix2" --closure \
  "/gnu/store/$GAPP" 2>"$TMP/err" || rc=$?
check "Guix acl file as trusted keys: fetched" test "$rc-$(ls "$TMP/r-guix2/gnu/store" | wc -l)" = "0-2"
rc=0; "${GF[@]}" --trusted-key "$TMP/g2.pub" --from "$NG/guix" --store "$TMP/r-guix3" \
  "/gnu/store/$GAPP" 2>"$TMP/err" || rc=$?
check "Guix narinfo signed by an untrusted Guix key: refused" \
  test "$rc-$(grep -c 'no trusted signature' "$TMP/err")" = "1-1"
rm -rf "$WWW/guix-edit" && cp -a "$G" "$WWW/guix-edit"
sed -i "s/^NarSize: \([0-9]*\)/NarSize: \18/" "$WWW/guix-edit/${GLIB:0:32}.narinfo"
rc=0; "${GF[@]}" --trusted-key "$TMP/g1.pub" --from "$NG/guix-edit" --store "$TMP/r-guix4" \
  "/gnu/store/$GLIB" 2>"$TMP/err" || rc=$?
check "Guix narinfo changed after signing: refused" \
  test "$rc-$(grep -c 'no trusted signature' "$TMP/err")" = "1-1"
sed 's/^/    # /' "$TMP/err"
rc=0; "$CAIRN" fetch --no-cache --trusted-key "$TMP/g1.pub" --from "$NG/guix" \
  --store "$TMP/r-guix5" "/gnu/store/$GLIB" 2>"$TMP/err" || rc=$?
check "a /gnu/store path with the default store directory: usage error" test "$rc" = 2

# Registration into Guix's database.  Guix is not installable here, so the
# database is made as guix-daemon makes it: the tables and columns of Guix's
# nix/libstore/schema.sql (schema version 7: no ultimate, sigs or ca), then
# the "schema" file.
R=$TMP/r-guixdb
mkdir -p "$R/var/guix/db"
sqlite3 "$R/var/guix/db/db.sqlite" >/dev/null <<'EOF'
PRAGMA journal_mode = WAL;
CREATE TABLE ValidPaths (id integer primary key autoincrement not null,
  path text unique not null, hash text not null, registrationTime integer not null,
  deriver text, narSize integer);
CREATE TABLE Refs (referrer integer not null, reference integer not null,
  primary key (referrer, reference),
  foreign key (referrer) references ValidPaths(id) on delete cascade,
  foreign key (reference) references ValidPaths(id) on delete restrict);
CREATE INDEX IndexReferrer ON Refs(referrer);
CREATE INDEX IndexReference ON Refs(reference);
CREATE TRIGGER DeleteSelfRefs BEFORE DELETE ON ValidPaths
  BEGIN DELETE FROM Refs WHERE referrer = old.id AND reference = old.id; END;
CREATE TABLE DerivationOutputs (drv integer not null, id text not null, path text not null,
  primary key (drv, id), foreign key (drv) references ValidPaths(id) on delete cascade);
CREATE INDEX IndexDerivationOutputs ON DerivationOutputs(path);
CREATE TABLE FailedPaths (path text primary key not null, time integer not null);
EOF
echo 7 >"$R/var/guix/db/schema"
rc=0; "${GF[@]}" --trusted-key "$TMP/g1.pub" --from "$NG/guix" --store "$R" --closure \
  "/gnu/store/$GAPP" 2>"$TMP/err" || rc=$?
check "Guix database (made from Guix's schema): the closure registered" test "$rc" = 0
gdb_rows() {
  sqlite3 "$1" "SELECT v.path, v.hash, v.narSize, v.deriver IS NULL,
    (SELECT group_concat(p, ' ') FROM (SELECT w.path AS p FROM Refs r
     JOIN ValidPaths w ON w.id = r.reference WHERE r.referrer = v.id ORDER BY w.path))
    FROM ValidPaths v" | LC_ALL=C sort
}
want=$(for b in "$GLIB" "$GAPP"; do
  ni=$G/${b:0:32}.narinfo
  refs=$(sed -n 's/^References: //p' "$ni" | tr ' ' '\n' | sed '/^$/d; s|^|/gnu/store/|' | LC_ALL=C sort | paste -sd' ')
  echo "/gnu/store/$b|sha256:$(nix hash to-base16 "$(sed -n 's/^NarHash: //p' "$ni")")|$(sed -n 's/^NarSize: //p' "$ni")|1|$refs"
done | LC_ALL=C sort)
check "  ... each row: path, sha256 base16 NarHash, NarSize, no deriver, references (Refs by id)" \
  test "$(gdb_rows "$R/var/guix/db/db.sqlite")" = "$want"
# the database fetch creates itself for /gnu/store (r-guix above) has the
# same tables, columns, indexes and trigger as that one
gschema() {
  sqlite3 "$1" "SELECT m.type, m.name, p.name, p.type, p.\"notnull\", p.pk FROM sqlite_master m
    LEFT JOIN pragma_table_info(m.name) p WHERE m.name NOT LIKE 'sqlite_%' ORDER BY 1, 2, 3"
}
check "a Guix database cairn creates has Guix's tables, columns and indexes, schema 7" \
  test "$(gschema "$TMP/r-guix/var/guix/db/db.sqlite")-$(cat "$TMP/r-guix/var/guix/db/schema")" = \
  "$(gschema "$R/var/guix/db/db.sqlite")-7"

# ---- against cairn publish, in both dialects, on the store the closure was
# built in (a chroot store: ROOT/nix/store is served as /nix/store)
. "$SRCDIR/tests/integration/publish-lib.sh"
"$CAIRN" key generate --format guix --secret "$TMP/pg.sec" --public "$TMP/pg.pub" >/dev/null
for dialect in nix guix; do
  if [ $dialect = nix ]; then key=$TMP/k1; else key=$TMP/pg; fi
  publish_start --store "$S1/nix/store" --key "$key.sec" --dialect $dialect \
    --compression zstd:3,xz:1 --cache "$TMP/pcache-$dialect" || { not_ok "$dialect: publish starts"; continue; }
  R=$TMP/r-pub-$dialect
  if "$CAIRN" fetch --no-cache --trusted-key "$key.pub" --from "$PUBLISH_URL" --store "$R" \
       --closure "$TOP" >/dev/null 2>"$TMP/e-pub"; then
    ok "cairn publish ($dialect): fetch --closure exits 0"
  else
    not_ok "cairn publish ($dialect): fetch --closure exits 0"; sed 's/^/    # /' "$TMP/e-pub"
  fi
  bad=0
  for p in "${CLOSURE[@]}"; do
    cmp -s <(nix-store --dump "$R$p" 2>/dev/null) <(nix-store --dump "$S1$p") || { bad=1; echo "  # $p differs"; }
  done
  check "cairn publish ($dialect): all ${#CLOSURE[@]} items identical to the source" test "$bad" = 0
  rc=0; "$CAIRN" fetch --no-cache --trusted-key "$TMP/k2.pub" --from "$PUBLISH_URL" \
    --store "$TMP/r-pub-bad-$dialect" "$TOP" 2>/dev/null || rc=$?
  check "cairn publish ($dialect): another trusted key is refused, nothing left" \
    test "$rc-$(store_items "$TMP/r-pub-bad-$dialect")" = "1-0"
  kill "$PUBLISH_PID" 2>/dev/null; wait "$PUBLISH_PID" 2>/dev/null || true
done

# ---- the real store (issue 12.1): as root, a closure of paths no other test
# has (a unique name) fetched into /nix/store with --store /, then Nix's own
# tools on the real store.  Cleaned up at the end: when this test created
# /nix, by removing it (a complete undo, and nix-store --delete of the real
# store scans every process for roots, seconds here); otherwise with
# nix-store --delete, checked.
if [ "$(id -u)" = 0 ]; then
  made_nix=0
  [ -e /nix ] || made_nix=1
  UNIQ=reg$(date +%s%N | tail -c 10)$RANDOM
  RTOP=$(nix_build_closure "$TMP/s-real" 2 "$UNIQ")
  mapfile -t RCL < <(nix_closure "$TMP/s-real" "$RTOP")
  copy_to "$TMP/s-real" "$RTOP" "$WWW/real" zstd "$TMP/k1.sec"
  if [ "$made_nix" = 1 ]; then
    cleanup_hooks+=("rm -rf /nix")
  else
    cleanup_hooks+=("nix-store --delete ${RCL[*]} >/dev/null 2>&1")
  fi
  rc=0; "${F[@]}" --from "$NG/real" --store / --closure --json "$RTOP" >"$TMP/j" 2>"$TMP/err" || rc=$?
  check "--store /: the closure fetched and registered in /nix/var/nix/db" \
    test "$rc-$(json_get "$TMP/j" '[i["registered"] for i in j["items"]]')" = "0-[True, True]"
  check "  ... nix path-info (the real store) knows the closure" \
    test "$(nix path-info -r "$RTOP" 2>/dev/null | sort)" = "$(printf '%s\n' "${RCL[@]}" | sort)"
  check "  ... nix-store -q --references: what was built" \
    test "$(nix-store -q --references "$RTOP")" = "$(nix-store --store "local?root=$TMP/s-real" -q --references "$RTOP")"
  # The whole real store is checked only when it holds nothing but ours.
  if [ "$made_nix" = 1 ]; then
    vrc=0; nix-store --verify --check-contents >"$TMP/verify" 2>&1 || vrc=$?
  else
    vrc=0; nix store verify --no-trust -r "$RTOP" >"$TMP/verify" 2>&1 || vrc=$?
  fi
  check "  ... Nix checks the contents against the registered hashes" \
    test "$vrc-$(grep -ci 'modified\|invalid\|error' "$TMP/verify")" = "0-0"
  n0=$(nar_gets real)
  rc=0; nix build --max-jobs 0 --no-link --option substituters "$NG/real" \
    --option trusted-public-keys "$(cat "$TMP/k1.pub")" "$RTOP" 2>"$TMP/err" || rc=$?
  check "  ... nix build --max-jobs 0: nothing downloaded again" test "$rc-$(($(nar_gets real) - n0))" = "0-0"
  out=$("${F[@]}" --from "$NG/real" --store "" --closure "$RTOP" 2>&1 || true)
  check "  ... --store \"\": the same store, everything present" test "$(grep -c '^present ' <<<"$out")" = 1
  if [ "$made_nix" = 0 ]; then
    nix-store --delete "${RCL[@]}" >/dev/null 2>&1 || true
    left=0
    for p in "${RCL[@]}"; do
      [ -e "$p" ] && left=$((left + 1))
      nix path-info "$p" >/dev/null 2>&1 && left=$((left + 1))
    done
    check "  ... and nix-store --delete removes them again" test "$left" = 0
  fi
else
  ok "# skip the real /nix/store part: not root"
fi

# ---- usage
rc=0; "$CAIRN" fetch --store "$TMP/x" "$TOP" 2>/dev/null || rc=$?
check "missing --from/--trusted-key: exit 2" test "$rc" = 2
check "fetch -h prints usage, exit 0" bash -c '"$0" fetch -h | head -1 | grep -q "^usage: cairn fetch"' "$CAIRN"

finish
