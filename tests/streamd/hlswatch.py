#!/usr/bin/env python3
"""Watches one live HLS playlist of streamd the way a player does, and holds
what it sees to RFC 8216's rules for a server (used by hls-live.sh).

It reloads URL every 0.5 s until the playlist carries EXT-X-ENDLIST or
SECONDS pass, reads the first bytes of every new segment with a Range
request, and checks across all the reloads:
  - EXT-X-TARGETDURATION never changes and bounds every EXTINF;
  - a segment (by media sequence number) never changes: byte range,
    duration, discontinuity number;
  - segments leave a sliding playlist only at its head, in order, and the
    head never moves back;
  - a sliding playlist holds 3 target durations after its first segment
    once the recording is long enough (6.2.2);
  - every listed segment can be read at once (206, the listed length);
  - how long after a segment ends (its EXT-X-PROGRAM-DATE-TIME plus the
    durations before it, plus its own) it first appears: a player that
    reloads every target duration must find it within about that.
It prints one JSON object; the exit status is 1 when a rule broke (each
one named in "violations"), 2 on bad usage.

Usage: hlswatch.py URL SECONDS [--delayed N]
  --delayed N: the playlist runs N seconds behind live (start=-N), so a
  segment is due N seconds after it ends.
"""
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime


def fetch(url, rng=None):
    req = urllib.request.Request(url)
    if rng:
        req.add_header("Range", "bytes=%d-%d" % rng)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


def iso_seconds(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse(text):
    """The playlist's header values and its segments."""
    pl = {"segs": [], "target": None, "msn": 0, "dseq": 0, "type": None,
          "endlist": False}
    ms = pdt = None
    disc = ndisc = 0
    wall = None
    for line in text.splitlines():
        m = re.match(r"#EXT-X-TARGETDURATION:(\d+)$", line)
        if m:
            pl["target"] = int(m.group(1))
        m = re.match(r"#EXT-X-MEDIA-SEQUENCE:(\d+)$", line)
        if m:
            pl["msn"] = int(m.group(1))
        m = re.match(r"#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)$", line)
        if m:
            pl["dseq"] = int(m.group(1))
        m = re.match(r"#EXT-X-PLAYLIST-TYPE:(\w+)$", line)
        if m:
            pl["type"] = m.group(1)
        if line == "#EXT-X-ENDLIST":
            pl["endlist"] = True
        if line == "#EXT-X-DISCONTINUITY":
            disc = 1
        m = re.match(r"#EXT-X-PROGRAM-DATE-TIME:(.+)$", line)
        if m:
            pdt = iso_seconds(m.group(1))
        m = re.match(r"#EXTINF:([0-9.]+),", line)
        if m:
            ms = round(float(m.group(1)) * 1000)
        m = re.match(r"#EXT-X-BYTERANGE:(\d+)@(\d+)$", line)
        if m:
            ndisc += disc
            if pdt is not None:
                wall = pdt
            seg = {"msn": pl["msn"] + len(pl["segs"]),
                   "len": int(m.group(1)), "off": int(m.group(2)),
                   "ms": ms, "disc": pl["dseq"] + ndisc, "wall": wall}
            pl["segs"].append(seg)
            wall = None if wall is None else wall + ms / 1000.0
            ms = pdt = None
            disc = 0
    return pl


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    url, secs = argv[1], float(argv[2])
    delayed = float(argv[4]) if len(argv) > 4 and argv[3] == "--delayed" \
        else 0.0
    seg_url = urllib.parse.urljoin(url, "data.ts")
    seen, first_seen, violations = {}, {}, []
    target = None
    head = -1
    prev = None
    reloads = read = 0
    min_after_first = None
    delays = []
    t_end = time.time() + secs
    finished = False

    def bad(msg):
        if msg not in violations:
            violations.append(msg)

    while time.time() < t_end:
        t_req = time.time()
        try:
            status, body = fetch(url)
        except urllib.error.HTTPError as e:
            if e.code == 503 and reloads == 0:  # nothing complete yet
                time.sleep(0.5)
                continue
            bad("playlist answered %d" % e.code)
            break
        reloads += 1
        pl = parse(body.decode())
        if not pl["segs"] or pl["target"] is None:
            bad("a playlist without segments or target duration")
            break
        if target is None:
            target = pl["target"]
        elif pl["target"] != target:
            bad("target duration changed: %d then %d" % (target,
                                                          pl["target"]))
        for s in pl["segs"]:
            if s["ms"] > pl["target"] * 1000:
                bad("EXTINF %d ms over the target %d s" % (s["ms"],
                                                           pl["target"]))
            old = seen.get(s["msn"])
            key = (s["off"], s["len"], s["ms"], s["disc"])
            if old is None:
                seen[s["msn"]] = key
                first_seen[s["msn"]] = t_req
                if prev is not None and s["wall"] is not None:
                    ends = s["wall"] + s["ms"] / 1000.0 + delayed
                    delays.append(t_req - ends)
                status, data = fetch(seg_url, (s["off"], s["off"] +
                                               min(s["len"], 4096) - 1))
                read += 1
                if status != 206 or len(data) != min(s["len"], 4096):
                    bad("segment %d not readable: %d, %d bytes" %
                        (s["msn"], status, len(data)))
            elif old != key:
                bad("segment %d changed: %s then %s" % (s["msn"], old, key))
        # a finished recording's VOD playlist begins at its first segment
        if not pl["endlist"] and pl["msn"] < head:
            bad("media sequence went back: %d then %d" % (head, pl["msn"]))
        head = max(head, pl["msn"])
        if prev is not None and not pl["endlist"]:
            last_prev = prev["segs"][-1]["msn"]
            last = pl["segs"][-1]["msn"]
            if last < last_prev:
                bad("the tail shrank: %d then %d" % (last_prev, last))
        if pl["type"] is None and not pl["endlist"] and pl["msn"] > 0:
            after = sum(s["ms"] for s in pl["segs"][1:]) / 1000.0
            min_after_first = after if min_after_first is None else \
                min(min_after_first, after)
            if after < 3 * pl["target"]:
                bad("sliding playlist holds %.3f s after its first segment,"
                    " under 3 target durations" % after)
        prev = pl
        if pl["endlist"]:
            finished = True
            break
        time.sleep(max(0.0, 0.5 - (time.time() - t_req)))

    delays.sort()
    out = {
        "url": url, "reloads": reloads, "segments": len(seen),
        "segments_read": read, "target": target, "finished": finished,
        "type": prev["type"] if prev else None,
        "min_after_first_s": min_after_first,
        "listing_delay_max_s": round(delays[-1], 3) if delays else None,
        "listing_delay_p50_s": round(delays[len(delays) // 2], 3)
        if delays else None,
        "violations": violations,
    }
    if target is not None and delays and delays[-1] > target + 1.0:
        violations.append("a segment was listed %.2f s after it ended, "
                          "more than the target duration + 1 s" % delays[-1])
    print(json.dumps(out))
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
