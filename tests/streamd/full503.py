#!/usr/bin/env python3
"""A stand-in for a streamd that is full, for the tests of streamd-bench and
streamd-soak: uploads (PUT /record/NAME, chunked) are kept and served back
as /streams/NAME/data.ts with the catalog (/streams, /streams/NAME) and a
quiet /metrics (with the admission counters), while playback requests
past the first --admit at a time are answered 503, with a Retry-After
header unless --no-retry-after, and the JSON body admission control
gives, after --refuse-delay seconds.  An admitted request gets 200 after
--head-delay seconds and, --first-byte-delay seconds later, zero bytes at
2 Mbit/s until the client hangs up.  --refuse-suffix S answers the
uploads of names ending in S with 503 as well.  It writes its port to
--port-file.
"""

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

recordings = {}  # name -> bytearray
lock = threading.Lock()
state = {"sessions": 0, "admitted": 0, "refused": 0, "bytes_out": 0}
opts = None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, ctype="application/json", extra=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def refuse(self):
        extra = [("Connection", "close")]
        if not opts.no_retry_after:
            extra.append(("Retry-After", str(opts.retry_after)))
        with lock:
            state["refused"] += 1
        self.answer(503, json.dumps({"error": "node full",
                                     "reason": "disk"}), extra=extra)
        self.close_connection = True

    def drain(self):
        """Reads what the client still sends until it hangs up, so that
        it sees the answer before a reset."""
        self.connection.settimeout(10)
        try:
            while self.connection.recv(65536):
                pass
        except OSError:
            pass

    def do_PUT(self):
        name = self.path.split("?")[0][len("/record/"):]
        if opts.refuse_suffix and name.endswith(opts.refuse_suffix):
            self.refuse()
            self.wfile.flush()
            self.drain()
            return
        buf = bytearray()
        with lock:
            recordings[name] = buf
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            data = self.rfile.read(size)
            self.rfile.readline()
            with lock:
                buf += data
        self.answer(201, "{}")

    def catalog_entry(self, name):
        return {"name": name, "bytes": len(recordings[name]),
                "duration": len(recordings[name]) / 250000.0,
                "live": False}

    def play(self):
        with lock:
            admit = state["sessions"] < opts.admit
            if admit:
                state["sessions"] += 1
                state["admitted"] += 1
        if not admit:
            time.sleep(opts.refuse_delay)
            self.refuse()
            return
        try:
            time.sleep(opts.head_delay)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            time.sleep(opts.first_byte_delay)
            chunk = bytes(188 * 133)
            while True:
                self.wfile.write(chunk)
                self.wfile.flush()
                with lock:
                    state["bytes_out"] += len(chunk)
                time.sleep(len(chunk) / 250000.0)
        except OSError:
            pass
        finally:
            with lock:
                state["sessions"] -= 1
            self.close_connection = True

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/metrics":
            with lock:
                text = ("streamd_underflows_total 0\n"
                        "streamd_sched_deadline_misses_total 0\n"
                        "streamd_bytes_out_total %d\n"
                        "process_resident_memory_bytes 50000000\n"
                        "process_open_fds 20\n"
                        "streamd_admitted_total %d\n"
                        'streamd_admission_refused_total{reason="disk"} %d\n'
                        % (state["bytes_out"], state["admitted"],
                           state["refused"]))
            self.answer(200, text, "text/plain")
        elif path == "/streams":
            with lock:
                self.answer(200, json.dumps(
                    [self.catalog_entry(n) for n in recordings]))
        elif path.startswith("/streams/") and path.count("/") == 2 \
                and not path.endswith(".ts") and "." not in path[9:]:
            name = path[len("/streams/"):]
            with lock:
                known = name in recordings
                body = json.dumps(self.catalog_entry(name)) if known else ""
            if known:
                self.answer(200, body)
            else:
                self.answer(404, '{"error":"no such recording"}')
        elif path.endswith("/data.ts") and "Range" not in self.headers:
            name = path[len("/streams/"):-len("/data.ts")]
            with lock:
                data = bytes(recordings.get(name, b""))
            self.answer(200, data, "video/mp2t")
        elif path.startswith("/streams/"):
            self.play()
        else:
            self.answer(404, "{}")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    global opts
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--retry-after", type=int, default=1)
    p.add_argument("--no-retry-after", action="store_true")
    p.add_argument("--admit", type=int, default=0)
    p.add_argument("--refuse-suffix", default=None)
    p.add_argument("--first-byte-delay", type=float, default=0)
    p.add_argument("--head-delay", type=float, default=0)
    p.add_argument("--refuse-delay", type=float, default=0)
    opts = p.parse_args()
    srv = Server(("127.0.0.1", 0), Handler)
    with open(opts.port_file + ".tmp", "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(opts.port_file + ".tmp", opts.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
