"""Drives a regiond binary over HTTP to write a state directory fixture.

Usage: make-state-fixture.py BINARY STATE_DIR journal|snapshot > EXPECTED.json
Prints the listing just before a SIGTERM, when it was taken, and every
request sent with an Idempotency-Key (for Tests/RegionStateTests/Fixtures).
"""
import http.client, json, subprocess, sys, time, os, shutil

binary, state, kind = sys.argv[1], sys.argv[2], sys.argv[3]
shutil.rmtree(state, ignore_errors=True)
proc = subprocess.Popen([binary, "--state-dir", state, "--port", "0", "--log-level", "warning"],
                        stdout=subprocess.PIPE, text=True)
line = proc.stdout.readline()
port = int(line.strip().rsplit(":", 1)[1])
conn = http.client.HTTPConnection("127.0.0.1", port)

def call(method, path, body=None, headers=None):
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body); h["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    text = r.read()
    return r.status, (json.loads(text) if text else None)

while call("GET", "/readyz")[0] != 200:
    time.sleep(0.05)

keyed = []  # requests with an Idempotency-Key, to replay after loading
def post(body, key=None):
    s, b = call("POST", "/regions", body, {"Idempotency-Key": key} if key else None)
    assert s in (200, 201), (s, b)
    if key: keyed.append({"key": key, "request": body, "offset": b["offset"]})
    return b

keyed = []  # requests with an Idempotency-Key, to replay after loading
def post(body, key=None):
    s, b = call("POST", "/regions", body, {"Idempotency-Key": key} if key else None)
    assert s in (200, 201), (s, b)
    if key: keyed.append({"key": key, "request": body, "offset": b["offset"]})
    return b

def scenario(tag):
    a = post({"size": 1048576, "label": f"vm-a {tag}"}, key=f"{tag}-a")
    s1 = post({"size": 3 * 1048576, "label": "vm-a", "share": f"layer-{tag}"}, key=f"{tag}-s1")
    s2 = post({"size": 4 * 1048576, "label": "vm-b", "share": f"layer-{tag}"}, key=f"{tag}-s2")
    post({"size": 2 * 1048576, "label": "vm-c", "share": f"layer-{tag}"})
    post({"size": 1048576, "share": f"other-{tag}", "ttl": 2592000})
    lease = post({"size": 1048576, "label": "leased", "ttl": 3600}, key=f"{tag}-lease")
    s, _ = call("POST", f"/regions/{lease['offset']}/renew", {"ttl": 7200}); assert s == 200
    gone = post({"size": 5 * 1048576, "label": "gone"}, key=f"{tag}-gone")
    s, _ = call("DELETE", f"/regions/{gone['offset']}"); assert s == 200
    s, b = call("POST", "/regions/batch", {"regions": [
        {"size": 123456, "label": "ünïcödé"}, {"size": 20 * 1048576, "share": f"big-{tag}", "label": "batch"},
        {"size": 1048576, "ttl": 86400}]})
    assert s == 201, (s, b)
    post({"size": 1, "label": "tiny"}, key=f"{tag}-tiny")
    return s1

if kind == "snapshot":
    scenario("before")
    # Leases of 1 s in batches: every expiry is one release record, so the
    # journal passes 65,536 records and compacts without a request each;
    # the snapshot then holds the shares, leases and keys of "before".
    live = call("GET", "/pool")[1]["regionCount"]
    while not any(n.startswith("snapshot-") for n in os.listdir(state)):
        for _ in range(3):
            s, b = call("POST", "/regions/batch", {"regions": [{"size": 1048576, "ttl": 1}] * 1024})
            assert s == 201, (s, b)
        while call("GET", "/pool")[1]["regionCount"] > live: time.sleep(0.2)
    s1 = scenario("after")
    s, _ = call("DELETE", f"/regions/{s1['offset']}"); assert s == 200
else:
    s1 = scenario("one")
    scenario("two")
    s, _ = call("DELETE", f"/regions/{s1['offset']}"); assert s == 200

listing = call("GET", "/regions")[1]
written_at = int(time.time() * 1000)
proc.terminate(); proc.wait()
os.remove(os.path.join(state, "lock"))
print(json.dumps({"writtenAt": written_at, "regions": listing["regions"], "keyed": keyed}, ensure_ascii=False, sort_keys=True))
