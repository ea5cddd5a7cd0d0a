# storedb against a store database written by the real Nix: build a small
# closure into a private chroot store, then compare what libcairn reads with
# `nix path-info --json`; keep a reader busy while Nix adds a path; read as
# an unprivileged user (the WAL caveat in docs/storedb.md).
. "$SRCDIR/tests/integration/lib.sh"
skip_unless nix-build nix python3 setpriv
nix_env

DUMP="$BUILDDIR/tests/integration/storedb-dump"
[ -x "$DUMP" ] || { echo "error: $DUMP not built" >&2; exit 1; }

ROOT="$TMP/root"
DB="$ROOT/nix/var/nix/db/db.sqlite"
# The builder runs chrooted in the private store: give it /bin/sh.
sbx=""
for d in /bin /usr /lib /lib64; do [ -e "$d" ] && sbx="$sbx $d"; done
NIXS=(--store "$ROOT" --option sandbox-paths "${sbx# }")

cat >"$TMP/drv.nix" <<'EOF'
{ tag ? "" }:
let
  mk = name: script: derivation {
    inherit name; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" script ]; PATH = "/bin:/usr/bin";
  };
  a = mk "a" "echo hi > $out";
  # b refers to a and to itself, like most real outputs
  b = mk "b" "echo ${a} > $out; echo $out >> $out";
  late = mk "late${tag}" "echo ${a} > $out";
in { inherit a b late; }
EOF

build() { nix-build "${NIXS[@]}" --no-out-link "$TMP/drv.nix" "$@" 2>"$TMP/build.log"; }

out_b=$(build -A b) || { cat "$TMP/build.log"; exit 1; }
check "nix built b into the private store" test -n "$out_b"
nix store sign "${NIXS[@]}" -r --key-file "$VECTORS_DIR/nix/keys/cache.example.org-1.sec" "$out_b"
echo "content-addressed" >"$TMP/ca-file"
out_ca=$(nix store add-path "${NIXS[@]}" --name ca-thing "$TMP/ca-file")
check "nix added a content-addressed path" test -n "$out_ca"

# compare FILE_OURS FILE_NIX: same set of paths, same fields.  Nix leaves out
# empty or false fields; storedb-dump prints them all.
compare() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
def norm(x):
    x = dict(x)
    x.setdefault("signatures", []); x.setdefault("ultimate", False)
    x.setdefault("deriver", None); x.setdefault("ca", None)
    return x
ours = {p["path"]: p for p in json.load(open(sys.argv[1]))}
nix = {p["path"]: norm(p) for p in json.load(open(sys.argv[2]))}
if ours != nix:
    for k in sorted(set(ours) | set(nix)):
        if ours.get(k) != nix.get(k):
            print("  ours:", ours.get(k)); print("  nix: ", nix.get(k))
    sys.exit(1)
print("  %d paths equal" % len(ours))
EOF
}

# 1. The closure of b, path by path.
nix path-info "${NIXS[@]}" --json -r "$out_b" >"$TMP/nix-closure.json"
"$DUMP" /nix/store "$DB" closure "$out_b" >"$TMP/ours-closure.json"
check "closure of b equals nix path-info -r" compare "$TMP/ours-closure.json" "$TMP/nix-closure.json"
check "b carries its signature" grep -q '"signatures":\["cache.example.org-1:' "$TMP/ours-closure.json"

# 2. Every valid path (outputs, .drv files, the CA path), by hash part.
nix path-info "${NIXS[@]}" --json --all >"$TMP/nix-all.json"
"$DUMP" /nix/store "$DB" list >"$TMP/list"
args=()
while read -r p; do
  h=${p#/nix/store/}
  args+=(hash "${h:0:32}")
done <"$TMP/list"
"$DUMP" /nix/store "$DB" "${args[@]}" | python3 -c '
import json, sys
print(json.dumps([json.loads(l) for l in sys.stdin]))' >"$TMP/ours-all.json"
check "every path by hash part equals nix path-info --all" compare "$TMP/ours-all.json" "$TMP/nix-all.json"
check "count matches" test "$("$DUMP" /nix/store "$DB" count)" = "count $(wc -l <"$TMP/list")"
check "the CA path has its ca field" grep -Eq '"ca": *"fixed:r:sha256:' "$TMP/ours-all.json"

# 3. A busy reader does not lock Nix out: storedb-dump queries in a loop
#    while nix-build registers a new path, then sees it.
rm -f "$TMP/ready" "$TMP/built"
"$DUMP" /nix/store "$DB" count touch "$TMP/ready" poll-until "$TMP/built" count list \
  >"$TMP/busy.out" 2>"$TMP/busy.err" &
reader=$!
cleanup_hooks+=("kill $reader 2>/dev/null")
for _ in $(seq 300); do [ -e "$TMP/ready" ] && break; sleep 0.1; done
out_late=$(timeout 120 nix-build "${NIXS[@]}" --no-out-link "$TMP/drv.nix" -A late 2>"$TMP/build.log" || true)
[ -n "$out_late" ] || cat "$TMP/build.log"
touch "$TMP/built"
check "storedb reader exited cleanly" wait "$reader"
check "nix-build succeeded while the reader polled" test -n "$out_late"
check "the reader really was polling" grep -Eq '^polls [1-9]' "$TMP/busy.out"
check "the reader sees the new path" grep -qx "$out_late" "$TMP/busy.out"
before=$(sed -n 's/^count //p' "$TMP/busy.out" | head -1)
after=$(sed -n 's/^count //p' "$TMP/busy.out" | tail -1)
check "count went up by the new path and its .drv" test "$after" -eq $((before + 2))

# 4. An unprivileged reader of the root-owned database.  With no writer the
#    -wal/-shm files do not exist and it may not create them: -f falls back
#    to immutable.  Once a writer holds the database (the daemon would), the
#    -wal exists and the reader must go back to normal mode -- otherwise it
#    would miss a path Nix commits to the WAL.
chmod 755 "$TMP"
# A read-only connection cannot checkpoint, so the last reader above left
# the -wal behind; a writable connection closing last removes it, as when
# the daemon stops.
python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("select count(*) from ValidPaths").fetchall(); c.close()' "$DB"
nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
check "no -wal file while nothing holds the database" test ! -e "$DB-wal"
if "${nobody[@]}" "$DUMP" /nix/store "$DB" count >"$TMP/nobody.out" 2>"$TMP/nobody.err"; then
  echo "  (this SQLite reads the WAL database without -shm access)"
else
  echo "  without fallback: $(cat "$TMP/nobody.err")"
fi
"${nobody[@]}" "$DUMP" -f /nix/store "$DB" mode count >"$TMP/nobody.out" 2>&1
check "nobody reads with the fallback" grep -qx "count $after" "$TMP/nobody.out"

rm -f "$TMP/g2" "$TMP/held" "$TMP/release"
chmod 1777 "$TMP"   # so that nobody can create its ready file
"${nobody[@]}" "$DUMP" -f /nix/store "$DB" mode touch "$TMP/nobody-ready" poll-until "$TMP/g2" mode list \
  poll-until "$TMP/g3" count mode >"$TMP/nobody2.out" 2>"$TMP/nobody2.err" &
reader=$!
cleanup_hooks+=("kill $reader 2>/dev/null")
for _ in $(seq 300); do [ -e "$TMP/nobody-ready" ] && break; sleep 0.1; done
python3 - "$DB" "$TMP/held" "$TMP/release" <<'EOF' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])            # holds the database like a daemon
db.execute("select count(*) from ValidPaths").fetchall()
open(sys.argv[2], "w").close()
end = time.time() + 120
while not os.path.exists(sys.argv[3]) and time.time() < end:
    time.sleep(0.05)
EOF
holder=$!
cleanup_hooks+=("kill $holder 2>/dev/null")
for _ in $(seq 300); do [ -e "$TMP/held" ] && break; sleep 0.1; done
out_late2=$(build -A late --argstr tag 2) || cat "$TMP/build.log"
# A poll that looked while the holder had made the -wal but not yet the
# -shm failed to leave the fallback, and storedb waits RECONNECT_INTERVAL
# (1 s) before it tries again: let that pass, as it would between requests.
sleep 1.2
touch "$TMP/g2"
# The writer goes away again (the reader keeps polling meanwhile).
touch "$TMP/release"
wait "$holder" || true
touch "$TMP/g3"
check "unprivileged reader exited cleanly" wait "$reader"
echo "  reader said: $(tr "\n" " " < "$TMP/nobody2.out" | cut -c1-300)"
cat "$TMP/nobody2.err"
check "it started in the immutable fallback" test "$(sed -n 1p "$TMP/nobody2.out")" = "mode immutable"
check "it went back to normal mode when the -wal appeared" grep -qx "mode normal" "$TMP/nobody2.out"
check "it sees the path Nix committed to the WAL" grep -qx "$out_late2" "$TMP/nobody2.out"
check "it still reads after the writer left" grep -qx "count $((after + 2))" "$TMP/nobody2.out"
echo "  after the writer left: $(tail -1 "$TMP/nobody2.out"); -wal exists: $(test -e "$DB-wal" && echo yes || echo no)"

finish
