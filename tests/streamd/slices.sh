#!/usr/bin/env bash
# Bodies go in slices while newly accepted connections wait for their
# request to be read (sd_http.c, "Slices while a crowd arrives").  A raw
# HTTP/1.1 player reads a live recording's 9 s backlog as fast as it can
# (?burst=0), in chunks whose sizes it sees: with no new connection around
# they are libmicrohttpd's whole buffer (tens of KiB); while silent
# connections accepted within the last second are open, every chunk is
# at most the slice; once they close, whole chunks again.  The silent
# connections are then served as usual (a request on one still gets its
# answer), and the player's bytes are the recording's, in order.
#
# Environment: STREAMD (default: the build tree's), IOSCHED_PROFILE_DIR.
# Exit status: 0 pass, 1 fail, 77 skipped.
# shellcheck disable=SC2015,SC2119 # "check && check || fail": fail exits
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
. "$(dirname "$0")/lib.sh"

need_streamd
need_clients
need_python3
make_workdir slices

SLICE=16384 # sd_http.c's CROWD_SLICE

start_streamd
pass "streamd listens on $URL"
# 1 MB/s, so 9 s behind live is 9 MB to read at once.
push_mux=muxrate=8000000 start_push cam1 20
wait_live cam1 true 15
sleep 11
pass "cam1 is live, 11 s in"

# The player: three phases of 2 MB each, alone, beside silent fresh
# connections (a new one every 0.2 s, so that one was always accepted
# within the last second), and alone again.  Prints one line per phase:
# its chunks, its largest chunk, and the largest after the first MiB of
# the phase (what was already on its way when the phase began is whole).
# A last line: a request sent on a silent connection, answered.
python3 - "${URL#http://}" "$work/body.bin" \
	>"$work/player.out" 2>"$work/player.err" <<'EOF'
import socket, sys, time
addr = sys.argv[1]
host, port = addr.rsplit(":", 1)
port = int(port)
# A small receive buffer, so that what was sent before a phase began
# (the kernel's buffers on both sides) is well within its margin.
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
s.connect((host, port))
s.sendall(("GET /streams/cam1.ts?start=-9&burst=0 HTTP/1.1\r\nHost: %s\r\n"
           "Connection: close\r\n\r\n" % addr).encode())
f = s.makefile("rb")
head = b""
while not head.endswith(b"\r\n\r\n"):
    head += f.read(1)
if b"chunked" not in head.lower():
    sys.exit("not chunked: %r" % head)
silent = []
def chunk():
    n = int(f.readline().split(b";")[0], 16)
    body = f.read(n)
    f.readline()
    return n, body
PHASE, MARGIN = 2000000, 1 << 20
body = bytearray()
for phase in ("alone", "beside fresh connections", "alone again"):
    got, sizes, last = 0, [], 0
    while got < PHASE:
        if phase.startswith("beside") and time.monotonic() - last > 0.2:
            c = socket.create_connection((host, port))
            silent.append(c)
            last = time.monotonic()
        n, b = chunk()
        if n == 0:
            sys.exit("the body ended after %d bytes" % len(body))
        sizes.append((got, n))
        got += n
        body += b
    late = [n for at, n in sizes if at >= MARGIN]
    print("%s: %d chunks, largest %d, largest after 1 MiB %d" %
          (phase, len(sizes), max(n for _, n in sizes), max(late)))
    if phase.startswith("beside"):
        c = silent.pop()
        for q in silent:
            q.close()
        silent = []
        c.sendall(("GET /streams HTTP/1.1\r\nHost: %s\r\nConnection: close"
                   "\r\n\r\n" % addr).encode())
        c.settimeout(10)
        answer = c.recv(64).split(b"\r\n")[0].decode(errors="replace")
        c.close()
print("silent connection: %s" % answer)
open(sys.argv[2], "wb").write(body)
EOF
cat "$work/player.out"
[ "$(wc -l <"$work/player.out")" -eq 4 ] ||
	fail "the player stopped: $(cat "$work/player.err")"

late() { sed -n "$1"'p' "$work/player.out" | sed 's/.* //'; }
largest() {
	sed -n "$1"'p' "$work/player.out" | sed 's/.*, largest \([0-9]*\),.*/\1/'
}
a=$(largest 1) b=$(late 2) c=$(late 3)
check "$a > $SLICE" || fail "alone, the largest chunk is $a bytes"
pass "alone: chunks up to $a bytes"
check "$b <= $SLICE" || fail "beside fresh connections, a $b-byte chunk"
pass "beside fresh connections: chunks of at most $b bytes"
check "$c > $SLICE" || fail "alone again, the largest chunk is $c bytes"
pass "alone again: chunks up to $c bytes"
grep -q '^silent connection: HTTP/1.1 200' "$work/player.out" ||
	fail "a request on a silent connection: $(tail -n 1 "$work/player.out")"
pass "a request on a silent connection is answered"
wait "$push_pid" || fail "the push failed: $(cat "$work/push-cam1.err")"
rec=$work/cam1.ts body=$work/body.bin
python3 - "$rec" "$body" <<'EOF' || fail "the player's bytes differ"
import sys
data, body = (open(p, "rb").read() for p in sys.argv[1:])
at = data.find(body[:65536])
sys.exit(at < 0 or at % 188 or data[at:at + len(body)] != body)
EOF
pass "the player's $(size_of "$body") bytes are the recording's, in order"
