#!/usr/bin/env bash
# One large item from three mirrors at once (issue 17, point 2): each
# behind its own emulated link (linkem), one at 10 % of the others' rate,
# one cut after a few MB on every connection.  The item must arrive whole
# and verified, from all of them, the slow one's share moved to the fast
# ones, and no byte asked twice beyond the cut connections' losses.
# Bytes per source come from linkem's own counts, never from the clock.
. "$SRCDIR/tests/integration/lib.sh"
. "$SRCDIR/tests/integration/nix-lib.sh"
nix_lib_init
skip_unless nginx sha256sum
LINKEM=$BUILDDIR/tests/integration/linkem
SIZE=24000000

S1=$TMP/s1
TOP=$(nix_build_closure "$S1" 1 big "$SIZE")
check "built one path of $SIZE random bytes" test -n "$TOP"
nix_gen_key test-1 "$TMP/k1"
WWW=$TMP/www
nix_copy_to_file "$S1" "$TOP" "$WWW/cache" none "$TMP/k1.sec"
NI=$WWW/cache/$(basename "$TOP" | cut -c1-32).narinfo
FILESIZE=$(sed -n 's/^FileSize: //p' "$NI")
check "the cache holds an uncompressed NAR of $FILESIZE bytes" test "$FILESIZE" -gt "$SIZE"
nginx_start ng "$WWW"
up=127.0.0.1:$NGINX_PORT

# link NAME ARGS...: a linkem in front of nginx; sets LINK_PORT
link() {
  local name=$1; shift
  "$LINKEM" --to "$up" --port-file "$TMP/$name.port" "$@" 2>"$TMP/$name.log" &
  local pid=$!
  cleanup_hooks+=("kill $pid")
  LINK_PORT=$(port_from_file "$TMP/$name.port" "$pid")
}
# down NAME: server-to-client bytes over all of a link's connections
down() { sed -n 's/.*closed up=[0-9]* down=\([0-9]*\).*/\1/p' "$TMP/$1.log" | awk '{s+=$1} END {print s+0}'; }

link fast --delay-ms 5 --rate 40M;	FAST=$LINK_PORT
link slow --delay-ms 5 --rate 4M;	SLOW=$LINK_PORT
link dies --delay-ms 5 --rate 40M --cut-after 3000000;	DIES=$LINK_PORT

R=$TMP/r
rc=0
"$CAIRN" fetch --cache-db "$TMP/ni.sqlite" --trusted-key "$TMP/k1.pub" --store "$R" --json \
  --from "http://127.0.0.1:$SLOW/cache" --from "http://127.0.0.1:$DIES/cache" \
  --from "http://127.0.0.1:$FAST/cache" "$TOP" >"$TMP/j" 2>"$TMP/e" || rc=$?
check "fetch from three mirrors exits 0 ($rc)" test "$rc" = 0 || cat "$TMP/e"
check "the item is in the store and verifies" nix_has_paths "$R" "$TOP"

# cairn has exited, so every connection is closing: count once linkem's
# logs stop growing between two polls
settled() {
  local n; n=$(cat "$TMP"/*.log | grep -c closed)
  [ "$n" = "$(cat "$TMP/closed.n" 2>/dev/null)" ] && [ "$n" -gt 0 ] && return 0
  echo "$n" >"$TMP/closed.n"; return 1
}
wait_for 10 settled || true
f=$(down fast); s=$(down slow); d=$(down dies)
echo "# bytes down: fast=$f slow=$s dies=$d (file $FILESIZE)"
check "all three sources sent part of the file" test "$f" -gt 0 -a "$s" -gt 0 -a "$d" -gt 0
check "the cut source's connections were cut" grep -q 'cut after 3000000 bytes' "$TMP/dies.log"
check "the fast source sent more than the slow one (10 % of its rate)" test "$f" -gt "$s"
check "the slow source sent less than a third of the file" test "$s" -lt $((FILESIZE / 3))
# headers and the narinfo requests are small; only a few cut-off tails are lost
check "nothing much asked twice: all bytes down < 1.2 x the file" \
  test $((f + s + d)) -lt $((FILESIZE * 12 / 10))

# the rates measured are kept for the next run's order (nicache speeds)
speed() { python3 -c 'import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute("select rate from speeds where url=?", (sys.argv[2],)).fetchone(); print(r[0] if r else 0)' "$TMP/ni.sqlite" "$1"; }
sf=$(speed "http://127.0.0.1:$FAST/cache"); ss=$(speed "http://127.0.0.1:$SLOW/cache")
echo "# kept rates: fast=$sf slow=$ss bytes/s"
check "the fast mirror's rate is kept, and above the slow one's" test "$sf" -gt "$ss" -a "$sf" -gt 0

# A source that goes silent mid-way: a fixed timeout would end it only
# after --stall-timeout (600 s here, and no rate floor); its own rate,
# falling while the other's holds, moves its share over, and its open
# request is cancelled once every byte is in.  The bound is the test's.
link stalls --delay-ms 5 --rate 40M --stall-after 2000000;	STALLS=$LINK_PORT
R2=$TMP/r2
rc=0
timeout 120 "$CAIRN" fetch --no-cache --trusted-key "$TMP/k1.pub" --store "$R2" \
  --stall-timeout 600 --min-rate 0 \
  --from "http://127.0.0.1:$STALLS/cache" --from "http://127.0.0.1:$FAST/cache" "$TOP" \
  >/dev/null 2>"$TMP/e2" || rc=$?
check "fetch with a stalling mirror completes, long before its stall timeout ($rc)" test "$rc" = 0 ||
  cat "$TMP/e2"
check "the item from a stalling and a good mirror verifies" nix_has_paths "$R2" "$TOP"

# --multi-min 0: one server at a time, as before; the other is not asked for bytes
link one --delay-ms 5 --rate 40M;	ONE=$LINK_PORT
link two --delay-ms 5 --rate 40M;	TWO=$LINK_PORT
rc=0
"$CAIRN" fetch --no-cache --trusted-key "$TMP/k1.pub" --store "$TMP/r3" --multi-min 0 \
  --from "http://127.0.0.1:$ONE/cache" --from "http://127.0.0.1:$TWO/cache" "$TOP" \
  >/dev/null 2>"$TMP/e3" || rc=$?
check "fetch --multi-min 0 exits 0 ($rc)" test "$rc" = 0 || cat "$TMP/e3"
rm -f "$TMP/closed.n"; wait_for 10 settled || true
o=$(down one); t=$(down two)
echo "# bytes down: one=$o two=$t"
# (which one answers first is a race: with K = 1 that one is asked for the bytes)
check "--multi-min 0: one server sent the whole file, the other only its narinfo" \
  test $((o > t ? o : t)) -gt "$FILESIZE" -a $((o > t ? t : o)) -lt 100000

finish
