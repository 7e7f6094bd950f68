"""Fills a server with decisions and measures the console's decision stream
(bench/console.sh runs it). Standard library only."""

import concurrent.futures
import json
import re
import statistics
import sys
import time
import urllib.parse
import urllib.request

URL, KEYS, COUNT, BUILD = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
keys = json.load(open(KEYS))
ADMIN, DECIDE = keys["admin_key"]["secret"], keys["test_key"]["secret"]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


opener = urllib.request.build_opener(NoRedirect)


def call(method, path, body=None, key=None, cookie=None, form=None):
    data, ctype = None, None
    if body is not None:
        data, ctype = json.dumps(body).encode(), "application/json"
    if form is not None:
        data, ctype = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    req = urllib.request.Request(URL + path, data=data, method=method)
    if ctype:
        req.add_header("Content-Type", ctype)
    if key:
        req.add_header("Authorization", "Bearer " + key)
    if cookie:
        req.add_header("Cookie", cookie)
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


POLICY = """id: bench-mix
default_effect: allow
rules:
  - name: big-wires
    when: 'action.type == "WIRE" && action.amount > 900'
    effect: block
    reason_code: TOO_BIG
    explanation: Too big.
  - name: mid-wires
    when: 'action.type == "WIRE" && action.amount > 800'
    effect: review
    reason_code: CHECK
    explanation: Check it.
"""
assert call("POST", "/v1/admin/policies", {"text": POLICY, "activate": True, "environment": "test"}, ADMIN)[0] in (200, 201)


def one(i):
    body = {
        "actor": {"id": f"agent-{i % 37}", "type": "AI_AGENT"},
        "action": {"type": ["WIRE", "TOOL_CALL", "EMAIL"][i % 3], "amount": i % 1000, "tool": "fs.read"},
        "context": {"ticket": f"T-{i}", "note": "x" * 40},
        "policy_refs": ["bench-mix"],
    }
    status, _, _ = call("POST", "/v1/decisions", body, DECIDE)
    assert status == 200, status


started = time.time()
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(one, range(COUNT)))
fill_s = time.time() - started


status, _, headers = call("POST", "/console/login", form={"key": ADMIN})
assert status == 303, status
cookie = re.search(r"tg_session=[0-9a-f]+", headers["Set-Cookie"]).group(0)


def timed(path, runs=30):
    times, size, body = [], 0, b""
    for _ in range(runs):
        t = time.perf_counter()
        status, body, _ = call("GET", path, cookie=cookie)
        times.append((time.perf_counter() - t) * 1000)
        assert status == 200, (path, status)
        size = len(body)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
        "max_ms": round(times[-1], 1),
        "bytes": size,
    }, body


stream, html = timed("/console/decisions")
rows = html.count(b'<tr id="row-')
assets = re.findall(rb'(?:src|href)="(/console/assets/[^"]+)"', html)
asset_bytes = sum(len(call("GET", a.decode(), cookie=cookie)[1]) for a in assets)
filtered, _ = timed("/console/decisions?actor=nobody-at-all")
overview, _ = timed("/console", runs=10)
first = re.search(rb'href="(/console/decisions/dec_[0-9a-f]+)"', html).group(1).decode()
decision, _ = timed(first, runs=10)
report = {
    "build": BUILD,
    "decisions_recorded": COUNT,
    "fill_seconds": round(fill_s, 1),
    "GET /console/decisions": dict(stream, rows=rows),
    "first visit bytes (page + assets, uncompressed)": stream["bytes"] + asset_bytes,
    "asset bytes": asset_bytes,
    "GET /console/decisions?actor=<no match> (scans at most 4096 entries)": filtered,
    "GET /console (overview, chart over the last hour)": overview,
    "GET /console/decisions/{id}": decision,
    "timing": "wall time of each GET on loopback at the client (an upper bound of server time)",
}
print(json.dumps(report, indent=2))
ok = stream["p95_ms"] < 300 and stream["bytes"] + asset_bytes < 200 * 1024 and rows == 50
print("GOAL (< 300 ms, < 200 KiB, 50 rows):", "met" if ok else "NOT met")
