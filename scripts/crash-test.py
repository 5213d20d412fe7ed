#!/usr/bin/env python3
"""kill -9 crash test for regiond's journal (DESIGN.md §4).

In a fresh state directory, runs CYCLES cycles of: start regiond on port 0
with --state-dir, wait for /readyz 200, drive it from 8 client threads doing
random allocations (several classes, with and without label and
Idempotency-Key) and releases of the regions each owns, for a random 0.2-1.5 s,
then kill -9 it while requests are in flight, restart it on the same directory
and check against the clients' model:

  * every change whose response was received is there: acknowledged
    allocations present with the same class and label, acknowledged releases
    absent;
  * nothing else is there, except changes whose response never came (in
    flight at the kill): each such allocation may or may not be present, each
    such release may or may not have happened;
  * regions do not overlap, are aligned, and GET /pool agrees with the list;
  * idempotency keys survive the restart (a repeat replays the same region).

The model is then reconciled with what the server reports and the next cycle
continues from there. Standard library only; exit 0 on pass.

usage: scripts/crash-test.py --binary .build/debug/regiond [--cycles 20] [--seed N]
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1024 * 1024
CAPACITY = 4096 * MIB
CLIENTS = 8


def class_size(k):
    return MIB << (2 * k)


class TestFailure(Exception):
    pass


# ---------------------------------------------------------------- the server


class Server:
    """One regiond process on port 0; stderr goes to a log file."""

    def __init__(self, binary, state_dir, log_path):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--state-dir", state_dir, "--log-level", "error"],
            stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL)
        self.port = self._read_port(timeout=15)
        self._wait_ready(timeout=15)

    def _read_port(self, timeout):
        found = {}

        def reader():
            for raw in self.proc.stdout:
                m = re.search(rb"listening on http://[^:]+:(\d+)", raw)
                if m:
                    found["port"] = int(m.group(1))
                    return

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(timeout)
        if "port" not in found:
            code = self.proc.poll()
            self.kill()
            raise TestFailure(f"regiond did not print 'listening on' within {timeout}s "
                              f"(exit code {code}); log tail:\n{self.log_tail()}")
        return found["port"]

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TestFailure(f"regiond exited with {self.proc.returncode} before /readyz was 200; "
                                  f"log tail:\n{self.log_tail()}")
            try:
                status, _, _ = request(self.port, "GET", "/readyz")
                if status == 200:
                    return
                last = status
            except OSError as e:
                last = e
            time.sleep(0.02)
        raise TestFailure(f"/readyz not 200 within {timeout}s (last: {last}); log tail:\n{self.log_tail()}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
        except OSError:
            return "(no log)"


def request(port, method, path, body=None, headers=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        return send(conn, method, path, body, headers)
    finally:
        conn.close()


def send(conn, method, path, body=None, headers=None):
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    raw = resp.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw
    return resp.status, parsed, resp


# ---------------------------------------------------------------- the model


class Model:
    """What the clients know. `live`: offset -> region (class, label, key, owner)
    the server acknowledged and nobody released (with an acknowledged or no
    release). `uncertain`: operations whose response never came."""

    def __init__(self):
        self.live = {}
        self.uncertain_allocs = []    # dicts: owner, cls, label, key, size
        self.uncertain_releases = []  # (offset, region): one offset may be in several
        self.lock = threading.Lock()
        self.errors = []


class Client(threading.Thread):
    def __init__(self, cid, port, model, rng, stop, cycle, counters):
        super().__init__(daemon=True)
        self.cid, self.port, self.model, self.rng = cid, port, model, rng
        self.stop, self.cycle, self.counters = stop, cycle, counters

    def error(self, msg):
        with self.model.lock:
            self.model.errors.append(f"client {self.cid}: {msg}")

    def owned(self):
        with self.model.lock:
            return [o for o, r in self.model.live.items() if r["owner"] == self.cid]

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        n = 0
        while not self.stop.is_set():
            n += 1
            owned = self.owned()
            roll = self.rng.random()
            try:
                if owned and roll < len(owned) / (len(owned) + 12.0):
                    self.release(conn, self.rng.choice(owned))
                elif owned and roll > 0.97:
                    self.replay(conn, owned)
                else:
                    self.allocate(conn, n)
            except (OSError, http.client.HTTPException):
                # The server was killed (or dropped us): that op is uncertain.
                conn.close()
                if self.stop.is_set():
                    return
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.close()

    def allocate(self, conn, n):
        # Mostly small classes, some large ones; sizes anywhere in the class.
        cls = self.rng.choices([0, 1, 2, 3, 4], weights=[40, 30, 18, 9, 3])[0]
        low = class_size(cls - 1) + 1 if cls > 0 else 1
        size = self.rng.randint(low, class_size(cls))
        op_id = f"{self.cycle}-{self.cid}-{n}"
        label = f"L{op_id}" if self.rng.random() < 0.5 else None
        key = f"K{op_id}" if self.rng.random() < 0.5 else None
        body = {"size": size}
        if label is not None:
            body["label"] = label
        headers = {"Idempotency-Key": key} if key else {}
        op = {"owner": self.cid, "cls": cls, "label": label, "key": key, "size": size}
        with self.model.lock:
            self.model.uncertain_allocs.append(op)
        status, resp, _ = send(conn, "POST", "/regions", body, headers)
        with self.model.lock:
            self.model.uncertain_allocs.remove(op)
            if status == 201:
                if not isinstance(resp, dict) or resp.get("class") != cls or resp.get("label") != label \
                        or resp.get("size") != class_size(cls):
                    self.model.errors.append(f"client {self.cid}: allocate {body} answered 201 {resp}")
                    return
                offset = resp["offset"]
                # (An offset with a release in flight may be free again already.)
                if offset in self.model.live:
                    self.model.errors.append(
                        f"client {self.cid}: allocate {body} got offset {offset}, which is still allocated")
                self.model.live[offset] = {"cls": cls, "label": label, "key": key, "owner": self.cid,
                                           "size": size}
                self.counters["allocs"] += 1
            elif status == 409 and isinstance(resp, dict) and resp.get("code") == "not_enough_space":
                self.counters["full"] += 1
            else:
                self.model.errors.append(f"client {self.cid}: allocate {body} key={key} answered {status} {resp}")

    def release(self, conn, offset):
        with self.model.lock:
            region = self.model.live.pop(offset)
            entry = (offset, region)
            self.model.uncertain_releases.append(entry)
        status, resp, _ = send(conn, "DELETE", f"/regions/{offset}")
        with self.model.lock:
            self.model.uncertain_releases.remove(entry)
            if status == 200 and isinstance(resp, dict) and resp.get("offset") == offset \
                    and resp.get("class") == region["cls"] and resp.get("label") == region["label"]:
                self.counters["releases"] += 1
            else:
                self.model.live[offset] = region
                self.model.errors.append(f"client {self.cid}: release {offset} ({region}) answered {status} {resp}")

    def replay(self, conn, owned):
        with self.model.lock:
            keyed = [o for o in owned if self.model.live.get(o, {}).get("key")]
            if not keyed:
                return
            offset = self.rng.choice(keyed)
            region = self.model.live[offset]
        body = {"size": region["size"]}
        if region["label"] is not None:
            body["label"] = region["label"]
        status, resp, r = send(conn, "POST", "/regions", body, {"Idempotency-Key": region["key"]})
        if status != 200 or not isinstance(resp, dict) or resp.get("offset") != offset \
                or r.getheader("Idempotent-Replayed") != "true":
            self.error(f"replay of key {region['key']} (offset {offset}) answered {status} {resp}")
        else:
            self.counters["replays"] += 1


# ---------------------------------------------------------------- the check


def check_state(port, model, cycle, rng):
    """Compares the restarted server with the model; raises TestFailure on a
    lost or phantom change, then reconciles the model with the server."""
    status, listed, _ = request(port, "GET", "/regions")
    if status != 200:
        raise TestFailure(f"GET /regions answered {status} {listed}")
    regions = {r["offset"]: r for r in listed["regions"]}
    problems = []

    # Shape, alignment, no overlap.
    end = 0
    for offset in sorted(regions):
        r = regions[offset]
        if r.get("size") != class_size(r.get("class", 99)):
            problems.append(f"region {r}: size is not its class size")
        if offset % r["size"] != 0:
            problems.append(f"region {r}: offset not aligned to its size")
        if offset < end:
            problems.append(f"region {r} overlaps the previous region (which ends at {end})")
        end = max(end, offset + r["size"])
    if end > CAPACITY:
        problems.append(f"regions end at {end}, past the capacity {CAPACITY}")

    # GET /pool agrees with the list.
    status, pool, _ = request(port, "GET", "/pool")
    used = sum(r["size"] for r in regions.values())
    if status != 200 or pool.get("usedBytes") != used or pool.get("regionCount") != len(regions) \
            or pool.get("freeBytes") != CAPACITY - used or pool.get("capacity") != CAPACITY:
        problems.append(f"GET /pool {status} {pool} disagrees with the list "
                        f"(usedBytes {used}, regionCount {len(regions)})")
    elif sum(c["allocated"] for c in pool["classes"]) != len(regions):
        problems.append(f"GET /pool per-class allocated counts do not add up to {len(regions)}: {pool['classes']}")

    def same(r, m):
        return r["class"] == m["cls"] and r.get("label") == m["label"]

    # Acknowledged allocations (not released, or with a release in flight).
    extras = dict(regions)
    for offset, m in model.live.items():
        r = extras.pop(offset, None)
        if r is None:
            problems.append(f"LOST acknowledged allocation: offset {offset} class {m['cls']} "
                            f"label {m['label']!r} (client {m['owner']}) is missing")
        elif not same(r, m):
            problems.append(f"acknowledged allocation at {offset} changed: expected class {m['cls']} "
                            f"label {m['label']!r}, server has {r}")
    releases_done = 0
    for offset, m in model.uncertain_releases:
        r = extras.get(offset)
        if r is not None and same(r, m):
            extras.pop(offset)
            # The release did not happen, or it did and an unlabelled in-flight
            # allocation of the same class took the offset again: without a
            # label the two look alike, so the key is not checked.
            model.live[offset] = m if m["label"] is not None else dict(m, key=None)
        else:
            releases_done += 1     # it did (the offset may now hold an in-flight allocation)

    # Everything else must be an in-flight allocation: labelled ones by their
    # unique label, unlabelled ones by class.
    by_label = {op["label"]: op for op in model.uncertain_allocs if op["label"] is not None}
    unlabelled = {}
    for op in model.uncertain_allocs:
        if op["label"] is None:
            unlabelled.setdefault(op["cls"], []).append(op)
    allocs_done = 0
    for offset, r in sorted(extras.items()):
        label = r.get("label")
        if label is not None:
            op = by_label.pop(label, None)
        else:
            candidates = unlabelled.get(r["class"])
            op = candidates.pop() if candidates else None
        if op is None or op["cls"] != r["class"]:
            problems.append(f"PHANTOM region {r}: no acknowledged or in-flight allocation explains it "
                            f"(an acknowledged release, a failed request, or never requested)")
            continue
        allocs_done += 1
        # Only a labelled op is identified for sure; its key belongs to this region.
        model.live[offset] = {"cls": op["cls"], "label": op["label"], "owner": op["owner"],
                              "size": op["size"], "key": op["key"] if label is not None else None}
    if problems:
        raise TestFailure("\n  ".join([f"cycle {cycle}: state after restart is wrong:"] + problems))

    # Keys survive the restart: a repeat replays the same region.
    keyed = [o for o, m in model.live.items() if m.get("key")]
    for offset in rng.sample(keyed, min(4, len(keyed))):
        m = model.live[offset]
        body = {"size": m["size"]}
        if m["label"] is not None:
            body["label"] = m["label"]
        status, resp, r = request(port, "POST", "/regions", body, {"Idempotency-Key": m["key"]})
        if status != 200 or resp.get("offset") != offset or r.getheader("Idempotent-Replayed") != "true":
            raise TestFailure(f"cycle {cycle}: after restart, repeating key {m['key']} of region {offset} "
                              f"answered {status} {resp} (expected 200 replay of offset {offset})")

    resolved = (allocs_done, len(model.uncertain_allocs) - allocs_done,
                releases_done, len(model.uncertain_releases) - releases_done)
    model.uncertain_allocs = []
    model.uncertain_releases = []
    return resolved, len(regions), used


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the state directory")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print(f"crash-test: seed {seed} (reproduce with --seed {seed}), {args.cycles} cycles, {CLIENTS} clients",
          flush=True)
    rng = random.Random(seed)
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"FAIL: {binary} is not an executable", file=sys.stderr)
        return 2

    work = tempfile.mkdtemp(prefix="regiond-crash-")
    state_dir = os.path.join(work, "state")
    log_path = os.path.join(work, "regiond.log")
    model = Model()
    totals = {"allocs": 0, "releases": 0, "full": 0, "replays": 0, "uncertain": 0}
    started = time.monotonic()
    server = None
    ok = False
    try:
        server = Server(binary, state_dir, log_path)
        for cycle in range(1, args.cycles + 1):
            counters = {"allocs": 0, "releases": 0, "full": 0, "replays": 0}
            stop = threading.Event()
            clients = [Client(i, server.port, model, random.Random(rng.random()), stop, cycle, counters)
                       for i in range(CLIENTS)]
            for c in clients:
                c.start()
            run_for = rng.uniform(0.2, 1.5)
            time.sleep(run_for)
            with model.lock:
                in_flight = len(model.uncertain_allocs) + len(model.uncertain_releases)
            stop.set()
            server.kill()  # kill -9, requests in flight
            for c in clients:
                c.join(15)
                if c.is_alive():
                    raise TestFailure(f"cycle {cycle}: client {c.cid} still hangs 15 s after the kill")
            if model.errors:
                raise TestFailure(f"cycle {cycle}: wrong answers before the kill:\n  " + "\n  ".join(model.errors))
            uncertain = len(model.uncertain_allocs) + len(model.uncertain_releases)
            server = Server(binary, state_dir, log_path)
            (a_done, a_not, r_done, r_not), live, used = check_state(server.port, model, cycle, rng)
            for k in counters:
                totals[k] += counters[k]
            totals["uncertain"] += uncertain
            print(f"cycle {cycle:2}: ran {run_for:.2f}s, acked {counters['allocs']:4} allocs "
                  f"{counters['releases']:4} releases ({counters['full']} full, {counters['replays']} replays); "
                  f"in flight at kill {uncertain} (≈{in_flight} just before): allocs kept {a_done} / "
                  f"lost {a_not}, releases done {r_done} / not {r_not}; live {live} regions, "
                  f"{used // MIB} MiB", flush=True)
        ok = True
    except TestFailure as e:
        print(f"FAIL (seed {seed}): {e}", file=sys.stderr)
        if server is not None:
            print(f"regiond log tail ({log_path}):\n{server.log_tail()}", file=sys.stderr)
        print(f"state directory kept: {state_dir}", file=sys.stderr)
    finally:
        if server is not None:
            server.kill()
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    took = time.monotonic() - started
    if not ok:
        return 1
    print(f"PASS: {args.cycles} kill -9 cycles in {took:.1f}s: {totals['allocs']} acknowledged allocations, "
          f"{totals['releases']} acknowledged releases, {totals['replays']} replays, {totals['full']} full, "
          f"{totals['uncertain']} in flight at a kill; no acknowledged change lost, no phantom change "
          f"(seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
