# shellcheck shell=bash
# Servers for the weather and challenge tests (and bench/weather.sh): static
# binary-cache directories behind a private nginx (lib.sh's), a server that
# answers garbage, and a port where nothing listens.  Source it after lib.sh.
#     serve_nginx DIR        # sets SERVE_PORT; nginx stops when the test exits
#     serve_junk             # sets SERVE_PORT: junk narinfos, 500s, resets
#     serve_closed_port      # prints a port nothing listens on

: "${TMP:?source lib.sh first}"

# serve_nginx DIR [WORKERS]: lib.sh's nginx_start under a name of its own
serve_n=0
serve_nginx() {
  serve_n=$((serve_n + 1))
  nginx_start "serve-$serve_n" "$1" "" "" "${2:-1}" || return 1
  SERVE_PORT=$NGINX_PORT
}

# serve_junk: every narinfo request gets garbage, a 500, a body cut short
# or a reset, by the hash part's first character; nix-cache-info is fine.
serve_junk() {
  local pid pf=$TMP/junk-$RANDOM.port
  python3 - "$pf" >"$pf.log" 2>&1 <<'PY' &
import http.server, os, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, code, body, length=None):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        p = self.path.lstrip("/")
        if p == "nix-cache-info":
            return self.send(200, b"StoreDir: /nix/store\n")
        k = ord(p[:1] or "0") % 4
        if k == 0:
            self.send(200, b"\x00\xffthis is not a narinfo\n" * 10)
        elif k == 1:
            self.send(500, b"internal error\n")
        elif k == 2:
            self.send(200, b"StorePath: /nix/store/", length=1000)
            self.close_connection = True
        else:
            self.send(200, b"StorePath: /nix/store/00000000000000000000000000000000-other\n"
                      b"URL: nar/x\nNarHash: sha256:0000000000000000000000000000000000000000000000000000\n"
                      b"NarSize: 1\n")
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs: 1 s retransmits
srv = S(("127.0.0.1", 0), H)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d\n" % srv.server_address[1])
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.serve_forever()
PY
  pid=$!
  cleanup_hooks+=("kill $pid")
  SERVE_PORT=$(port_from_file "$pf" "$pid") || { cat "$pf.log" >&2; return 1; }
}

serve_closed_port() { free_port; }

# build_two_stores: build the same four derivations into two private Nix
# stores, $TMP/store1 and $TMP/store2 (needs nix-lib.sh, nix_lib_init).
# wt-a (a file, an executable, a symlink) <- wt-b <- wt-stamp <- wt-top;
# wt-stamp writes the time in nanoseconds and random bytes (one file under
# a name that is not UTF-8), so its two builds differ; everything else is reproducible (wt-top refers to
# wt-stamp by path, which is the same in both stores).  Sets TOP, STAMP
# and CLOSURE (the four paths, one a line).
build_two_stores() {
  local expr=$TMP/two-stores.nix
  cat >"$expr" <<'NIX'
let
  mk = name: deps: script: derivation {
    inherit name deps;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/bin:/usr/bin";
    args = [ "-c" script ];
  };
  a = mk "wt-a" [] ''
    mkdir -p $out/bin
    echo a > $out/a
    printf '#!/bin/sh\necho a\n' > $out/bin/a
    chmod +x $out/bin/a
    ln -s a $out/link
  '';
  b = mk "wt-b" [ a ] ''
    mkdir -p $out
    echo $deps > $out/deps
  '';
  stamp = mk "wt-stamp" [ b ] ''
    mkdir -p $out/share
    echo $deps > $out/deps
    echo same > $out/same
    date +%s%N > $out/stamp
    head -c 16 /dev/urandom > $out/share/random
    head -c 4 /dev/urandom > "$out/share/x$(printf '\377')y"
  '';
in mk "wt-top" [ stamp ] ''
  mkdir -p $out
  echo $deps > $out/deps
''
NIX
  TOP=$(nix-build --store "$(nix_store_uri "$TMP/store1")" --no-out-link --quiet "$expr") &&
    [ "$(nix-build --store "$(nix_store_uri "$TMP/store2")" --no-out-link --quiet "$expr")" = "$TOP" ] &&
    CLOSURE=$(nix_closure "$TMP/store1" "$TOP") &&
    STAMP=$(grep -- '-wt-stamp$' <<<"$CLOSURE")
}

# narinfo_of DIR PATH: the narinfo file of PATH in the cache directory DIR
narinfo_of() { local b=${2#/nix/store/}; echo "$1/${b%%-*}.narinfo"; }
