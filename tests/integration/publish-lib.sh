# shellcheck shell=bash
# Helpers for the `cairn publish` tests: a private Nix store whose store
# directory is a real directory under $TMP, and a cairn publish server on
# 127.0.0.1 started, waited for and stopped within bounded times (nginx for
# comparison: lib.sh's nginx_start).  Source it
# after lib.sh and nix-lib.sh (for nix_lib_init):
#     . "$SRCDIR/tests/integration/lib.sh"
#     . "$SRCDIR/tests/integration/nix-lib.sh"
#     . "$SRCDIR/tests/integration/publish-lib.sh"
#     publish_require                  # fails (not skips) without `cairn publish`
#     nix_lib_init
#     pstore_init "$TMP/src"           # exports NIX_STORE_DIR=$TMP/src/store
#     top=$(pstore_build "$TMP/src" 5 p 1000)
#     publish_start "${PSTORE_ARGS[@]}" --key k.sec   # sets PUBLISH_URL
#
# Why not nix-lib.sh's chroot stores (local?root=DIR): their paths are
# /nix/store/... while the files live in DIR/nix/store, and `cairn publish
# --store DIR --db FILE` has no way to serve one directory under another
# name.  A store whose directory *is* $TMP/src/store (Nix's `store=` setting,
# with NIX_STORE_DIR so that http:// and file:// caches agree on StoreDir)
# is served exactly as a real /nix/store would be, and Nix builds into it
# without the sandbox because it is not "diverted".  A destination store
# keeps that store directory and puts its files elsewhere (`real=`), so it
# needs no build at all.

: "${TMP:?source lib.sh first}"

# publish_require: `cairn publish` exists; a missing server is a failure
# of this test, not a reason to skip it.
publish_require() {
  if ! "$CAIRN" publish -h > "$TMP/publish-h.out" 2>&1; then
    echo "error: '$CAIRN publish -h' failed: cairn publish is missing or broken" >&2
    sed 's/^/  /' "$TMP/publish-h.out" >&2
    exit 1
  fi
}

# pstore_init ROOT: the store directory ROOT/store is the store directory of
# every Nix command from now on
pstore_init() {
  mkdir -p "$1"
  export NIX_STORE_DIR=$1/store
  # the arguments that make cairn publish serve it (its defaults for --db
  # and --log-dir cover only stores ending in /nix/store or /gnu/store)
  PSTORE_ARGS=(--store "$1/store" --db "$1/var/nix/db/db.sqlite" --log-dir "$1/var/log/nix/drvs")
}

# pstore_uri ROOT: the Nix store URI of the private store at ROOT; its
# database and build logs are where a real one keeps them relative to /
# (ROOT/var/nix/db/db.sqlite, ROOT/var/log/nix/drvs/xx/yyy...bz2)
pstore_uri() { echo "local?store=$NIX_STORE_DIR&state=$1/var/nix&log=$1/var/log/nix"; }

# pstore_dst_uri DIR: a fresh destination store with the same store directory
# whose files go under DIR
pstore_dst_uri() { echo "local?store=$NIX_STORE_DIR&real=$1/store&state=$1/state&log=$1/log"; }

# pstore_build ROOT N [NAME [BYTES [FILES [SOURCE]]]]: build N >= 1
# derivations into the store at ROOT and print the top one's store path.
# Path i is NAME-i: an executable bin/NAME-i, a symlink `link` to it, a text
# file naming its dependencies (i-1 and i-2, so the top has all N in its
# closure), FILES (default 1) files data-K of the first BYTES (default 0)
# bytes of SOURCE (default /dev/urandom; a host file works, the build is not
# sandboxed), and a line on stdout that Nix keeps as its build log.
pstore_build() {
  local root=$1 n=$2 name=${3:-p} bytes=${4:-0} files=${5:-1} source=${6:-/dev/urandom} expr
  expr=$TMP/closure-$name-$RANDOM.nix
  [ "$n" -ge 1 ] || { echo "pstore_build: N must be >= 1" >&2; return 2; }
  cat > "$expr" << EOF
let
  mk = i: deps: derivation {
    name = "$name-\${toString i}";
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/bin:/usr/bin";
    deps = deps;
    args = [ "-c" ''
      mkdir -p \$out/bin
      echo "build log of $name-\${toString i}"
      for d in \$deps; do echo "\$d" >> \$out/refs; done
      printf '#!/bin/sh\necho $name-\${toString i}\n' > \$out/bin/$name-\${toString i}
      chmod +x \$out/bin/$name-\${toString i}
      ln -s bin/$name-\${toString i} \$out/link
      k=0
      while [ \$k -lt $files ]; do
        head -c $bytes $source > \$out/data-\$k
        k=\$((k + 1))
      done
    '' ];
  };
  go = i: if i == 1 then [ (mk 1 []) ]
          else let prev = go (i - 1);
                   d = [ (builtins.head prev) ] ++ (if i > 2 then [ (builtins.elemAt prev 1) ] else []);
               in [ (mk i d) ] ++ prev;
in builtins.head (go $n)
EOF
  nix-build --store "$(pstore_uri "$root")" --no-out-link --quiet "$expr"
}

# publish_start ARG...: start `cairn publish --listen 127.0.0.1:0 ARG...`
# and wait for the port it writes once listening.  Sets PUBLISH_PID,
# PUBLISH_PORT, PUBLISH_URL, PUBLISH_LOG.  Not in $(...): the stop hook must
# be registered in the test's own shell.  On failure, shows the server's
# output.
publish_n=0
publish_start() {
  publish_n=$((publish_n + 1))
  PUBLISH_LOG=$TMP/publish-$publish_n.log
  "$CAIRN" publish --listen 127.0.0.1:0 --port-file "$TMP/publish-$publish_n.port" "$@" \
    > "$PUBLISH_LOG" 2>&1 &
  PUBLISH_PID=$!
  cleanup_hooks+=("kill -9 $PUBLISH_PID 2>/dev/null")
  if PUBLISH_PORT=$(port_from_file "$TMP/publish-$publish_n.port" "$PUBLISH_PID" 15); then
    PUBLISH_URL=http://127.0.0.1:$PUBLISH_PORT
    return 0
  fi
  echo "error: cairn publish $* did not start listening" >&2
  sed 's/^/  | /' "$PUBLISH_LOG" >&2
  kill -9 "$PUBLISH_PID" 2> /dev/null || true
  return 1
}

# publish_sanitizer_clean: with an ASan/UBSan build as $CAIRN, the server
# reported no memory error or undefined behaviour (shown otherwise).  Leaks
# found at exit are shown but do not fail: libh2o's own contexts are not all
# freed at shutdown (set ASAN_OPTIONS=detect_leaks=0 to silence them).
publish_sanitizer_clean() {
  if grep -q "ERROR: AddressSanitizer\|runtime error:" "$PUBLISH_LOG"; then
    echo "error: sanitizer report from cairn publish ($PUBLISH_LOG):" >&2
    sed 's/^/  | /' "$PUBLISH_LOG" | head -n 60 >&2
    return 1
  fi
  if grep -q "ERROR: LeakSanitizer" "$PUBLISH_LOG"; then
    echo "warning: cairn publish leaked at exit:" >&2
    grep -A3 "^Direct leak" "$PUBLISH_LOG" | sed 's/^/  | /' | head -n 24 >&2
  fi
  return 0
}

# publish_stop: SIGTERM the server and wait for it (bounded: 10 s, then
# KILL); fails if it had to be killed or left a sanitizer report
publish_stop() {
  kill "$PUBLISH_PID" 2> /dev/null || { publish_sanitizer_clean; return; }
  if wait_gone "$PUBLISH_PID" 10; then
    wait "$PUBLISH_PID" 2> /dev/null || true
    publish_sanitizer_clean
    return
  fi
  echo "warning: cairn publish (pid $PUBLISH_PID) ignored SIGTERM for 10 s" >&2
  kill -9 "$PUBLISH_PID" 2> /dev/null || true
  wait "$PUBLISH_PID" 2> /dev/null || true
  return 1
}

# nar_sha256 PATH: base16 SHA-256 of the NAR of the file system object PATH
nar_sha256() { nix-store --dump "$1" | sha256sum | cut -d' ' -f1; }

# narinfo_field TEXT NAME: the first value of field NAME in narinfo TEXT
narinfo_field() { sed -n "s/^$2: //p" <<< "$1" | head -n 1; }
