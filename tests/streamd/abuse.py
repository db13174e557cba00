#!/usr/bin/env python3
"""The hostile and odd HTTP clients of tests/streamd/abuse.sh.

curl cannot hold two thousand idle connections from a chosen source
address, trickle a request head one byte at a time, send a NUL inside a
request line, or stop reading a response it asked for; these small raw
socket clients can.  Each subcommand does one thing and prints one result
(a status code, or one JSON object) on stdout for the shell test to check:

  status ADDR TARGET [HEADER...]   GET TARGET (backslash escapes such as
                                   \\x00 are bytes): the response status
  bighead ADDR BYTES               GET / with one header of BYTES: status
  flood ADDR SRC COUNT OUT         COUNT idle connections from SRC; OUT.held
                                   once the refused ones are told apart,
                                   OUT when all are closed (or --max)
  slowloris ADDR EVERY             a head trickled a byte per EVERY
                                   seconds: seconds until the server closes
  stall ADDR TARGET HOLD           GET TARGET with a tiny receive buffer,
                                   never read; closes after HOLD seconds
  poll URL SECONDS OUT             GET /streams on one kept-alive
                                   connection every 0.25 s: latencies
  trickle ADDR NAME FILE EVERY N   PUT FILE to /record/NAME (chunked), all
                                   but its last N bytes at once, then one
                                   byte per EVERY seconds: status, seconds

ADDR is HOST:PORT.  Exit status 0 unless the arguments are wrong.
"""
import http.client
import json
import os
import select
import socket
import sys
import time


def parse_addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def read_status(sock, timeout):
    """The status code of the response on @sock, or 0 (closed, none)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    parts = data.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return 0


def request(addr, head, timeout=10.0):
    """Sends the raw request head @head; returns the response status."""
    with socket.create_connection(addr, timeout=timeout) as sock:
        try:
            sock.sendall(head)
        except OSError:
            pass
        return read_status(sock, timeout)


def unescape(text):
    """'a\\x00b' -> b'a\\x00b': the test tables write bytes as escapes."""
    return text.encode("latin-1").decode("unicode_escape").encode("latin-1")


def cmd_status(args):
    addr, target, headers = parse_addr(args[0]), unescape(args[1]), args[2:]
    head = b"GET " + target + b" HTTP/1.1\r\nHost: streamd\r\n"
    for h in headers:
        head += unescape(h) + b"\r\n"
    head += b"Connection: close\r\n\r\n"
    print(request(addr, head))


def cmd_bighead(args):
    addr, size = parse_addr(args[0]), int(args[1])
    head = (b"GET /streams HTTP/1.1\r\nHost: streamd\r\nX-Big: " +
            b"a" * size + b"\r\nConnection: close\r\n\r\n")
    print(request(addr, head))


def write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.replace(path + ".tmp", path)


def flood_open(addr, src, count):
    """Opens @count connections from @src; {fd: (socket, connect time)}."""
    socks, failed = {}, 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((src, 0))
            s.settimeout(5)
            s.connect(addr)
            s.setblocking(False)
        except OSError:
            failed += 1
            s.close()
            continue
        socks[s.fileno()] = (s, time.monotonic())
    return socks, failed


def flood_watch(poller, socks, until, closes):
    """Closes and records every connection the server ended, until @until."""
    while socks and time.monotonic() < until:
        for fd, _ in poller.poll(50):
            s, t0 = socks[fd]
            try:
                if s.recv(4096):
                    continue  # an answer: not expected, wait for the end
            except BlockingIOError:
                continue
            except OSError:
                pass
            closes.append(time.monotonic() - t0)
            poller.unregister(fd)
            s.close()
            del socks[fd]


def cmd_flood(args):
    addr, src, count, out = parse_addr(args[0]), args[1], int(args[2]), args[3]
    fast = 0.5  # a refused connection is closed at once; a held one lasts
    socks, failed = flood_open(addr, src, count)
    opened = len(socks)
    poller = select.poll()
    for fd in socks:
        poller.register(fd, select.POLLIN | select.POLLRDHUP)
    closes = []
    flood_watch(poller, socks, time.monotonic() + fast, closes)
    refused = sum(1 for c in closes if c < fast)
    held = opened - refused
    write_json(out + ".held", {"opened": opened, "connect_failed": failed,
                               "refused": refused, "held": len(socks)})
    flood_watch(poller, socks, time.monotonic() + 30, closes)
    later = sorted(c for c in closes if c >= fast)
    write_json(out, {"opened": opened, "connect_failed": failed,
                     "refused": refused, "held": held,
                     "closed_later": len(later),
                     "first_close_s": round(later[0], 3) if later else None,
                     "last_close_s": round(later[-1], 3) if later else None,
                     "unclosed": len(socks)})
    for s, _ in socks.values():
        s.close()


def cmd_slowloris(args):
    addr, every = parse_addr(args[0]), float(args[1])
    t0 = time.monotonic()
    with socket.create_connection(addr, timeout=5) as sock:
        sock.sendall(b"GET /streams HTTP/1.1\r\nHost: streamd\r\nX-Slow: ")
        sock.setblocking(False)
        answered = b""
        while time.monotonic() - t0 < 60:
            r, _, _ = select.select([sock], [], [], every)
            if r:
                try:
                    chunk = sock.recv(4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                answered += chunk
                continue
            try:
                sock.send(b"a")
            except OSError:
                break
    print(json.dumps({"closed_after_s": round(time.monotonic() - t0, 3),
                      "answer_bytes": len(answered)}))


def cmd_stall(args):
    addr, target, hold = parse_addr(args[0]), args[1].encode(), float(args[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(addr)
    sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: streamd\r\n\r\n")
    time.sleep(hold)
    sock.close()


def cmd_poll(args):
    url, secs, out = args[0], float(args[1]), args[2]
    host, port = parse_addr(url.split("//", 1)[1].rstrip("/"))
    conn = http.client.HTTPConnection(host, port, timeout=5,
                                      source_address=("127.0.0.1", 0))
    lat, errors, connects, why = [], 0, 1, []
    end = time.monotonic() + secs
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            conn.request("GET", "/streams")
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors += 1
                why.append("HTTP %d" % resp.status)
            lat.append(time.monotonic() - t0)
        except (OSError, http.client.HTTPException) as e:
            errors += 1
            why.append("%.3f %s" % (time.monotonic() - t0, e))
            conn.close()
            connects += 1
        time.sleep(0.25)
    conn.close()
    write_json(out, {"requests": len(lat), "errors": errors,
                     "connections": connects,
                     "max_latency_s": round(max(lat), 3) if lat else None,
                     "first_errors": why[:3]})


def cmd_trickle(args):
    addr, name, path = parse_addr(args[0]), args[1], args[2]
    every, slow = float(args[3]), int(args[4])
    with open(path, "rb") as f:
        body = f.read()
    fast, rest = body[:-slow], body[-slow:]
    t0 = time.monotonic()
    with socket.create_connection(addr, timeout=30) as sock:
        sock.sendall(("PUT /record/%s HTTP/1.1\r\nHost: streamd\r\n"
                      "Content-Type: video/mp2t\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n" % name).encode())
        sock.sendall(b"%x\r\n%s\r\n" % (len(fast), fast))
        for i in range(len(rest)):
            time.sleep(every)
            sock.sendall(b"1\r\n" + rest[i:i + 1] + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        status = read_status(sock, 30)
    print(json.dumps({"status": status,
                      "seconds": round(time.monotonic() - t0, 3)}))


COMMANDS = {
    "status": (cmd_status, 2), "bighead": (cmd_bighead, 2),
    "flood": (cmd_flood, 4), "slowloris": (cmd_slowloris, 2),
    "stall": (cmd_stall, 3), "poll": (cmd_poll, 3),
    "trickle": (cmd_trickle, 5),
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS or \
            len(argv) - 2 < COMMANDS[argv[1]][1]:
        sys.stderr.write(__doc__)
        return 2
    COMMANDS[argv[1]][0](argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
