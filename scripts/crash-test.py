#!/usr/bin/env python3
"""kill -9 crash test for regiond's journal (the README's crash model).

In a fresh state directory, runs CYCLES cycles of: start regiond on port 0
with --state-dir, wait for /readyz 200, drive it from 8 client threads for a
random 0.2-1.5 s, then kill -9 it while requests are in flight, restart it on
the same directory and check against the clients' model. The clients do:

  * plain allocations (several classes, with and without label and
    Idempotency-Key), idempotent replays, and releases of their regions;
  * shared regions: create one under a fresh share key, join it (any client,
    a size of the same class; now and then one of another class, which must
    be 409 share_conflict and change nothing), leave it (DELETE drops one
    reference). A client only drops a reference while another acknowledged
    one stays, or drops the last one when no join is in flight, so the
    region is never released and re-created under a client's feet;
  * leases: allocations with a ttl of 1-3 s, renewed (with or without a new
    ttl) or released while at least 0.4 s is left; 1 s after a lease's
    acknowledged expiry its client checks that regiond released it;
  * batches of 2-5 labelled items (plain, leased, creating a shared region,
    joining one); one batch in five has an invalid item, which must fail
    with that item's index and allocate nothing.

  * ids: every answer's id (and a join's ref) is new; releases, leaves and
    renewals send ?id= (and &ref=: a leave drops the client's own reference);
    now and then a client asks for an id it released (404 not_allocated);
  * teardowns: each client labels some allocations and joins vm-<cid> and
    now and then sends DELETE /regions?label=vm-<cid>;
  * 2 readers: GET /regions, GET /regions/<offset>?id=, and batches that can
    never fit (409 not_enough_space, whose index counts the free blocks).

After each restart:

  * every acknowledged region has its id; an in-flight allocation found has
    an id never answered before; a teardown in flight happened wholly or not;
  * no answered read is undone: a region (by id) an answered GET showed is
    there, with at least its refs then minus the references dropped since,
    unless its lease may have ended; an id answered 404 is not there; a 409
    not_enough_space did not see fewer free blocks (or a smaller largestFree)
    than what survived plus every region known this cycle;

  * every change whose response was received is there: acknowledged
    allocations present with the same class and label, acknowledged releases
    absent; each shared region's refs is exactly its acknowledged joins minus
    its acknowledged leaves, give or take the ones in flight at the kill;
    each lease is there with the acknowledged expiresAt (or the one an
    in-flight renewal could have set) unless that expiry has passed;
  * nothing else is there, except changes whose response never came (in
    flight at the kill): each such allocation may or may not be present, each
    such release may or may not have happened; a batch in flight is there
    wholly or not at all (its leased items count only while they cannot have
    expired; a join only while the region's refs tell whether it happened);
  * a region whose lease ended is gone within 1 s of the later of its
    expiry and /readyz (a lease that ended while regiond was down ends at
    start-up);
  * regions do not overlap, are aligned, and GET /pool agrees with the list;
  * idempotency keys survive the restart (a repeat replays the same region).

The model is then reconciled with what the server reports and the next cycle
continues from there. Standard library only; exit 0 on pass.

usage: scripts/crash-test.py --binary .build/debug/regiond [--cycles 20] [--seed N]
"""

import argparse
import calendar
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1024 * 1024
CAPACITY = 4096 * MIB
CLIENTS = 8
READERS = 2                  # threads that only read and get refused
TTLS = [1, 2, 3]             # lease lengths, seconds
LEASE_MARGIN_MS = 400        # renew or release a lease only while this much of it is left
EXPIRY_GRACE_MS = 1000       # an ended lease is gone this long after max(expiry, ready)
CLOCK_SLACK_MS = 5           # whole milliseconds on the server, float ones here


def class_size(k):
    return MIB << (2 * k)


def now_ms():
    return time.time() * 1000.0


RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z$")


def expiry_ms(region):
    """`expiresAt` as milliseconds since 1970; None when absent or malformed."""
    m = RFC3339.match(region.get("expiresAt") or "") if isinstance(region, dict) else None
    if not m:
        return None
    y, mo, d, h, mi, s, ms = map(int, m.groups())
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1000 + ms


def fmt_ms(ms):
    return time.strftime("%H:%M:%S", time.gmtime(ms / 1000)) + f".{int(ms) % 1000:03d}"


class TestFailure(Exception):
    pass


# ---------------------------------------------------------------- the server


class Server:
    """One regiond process on port 0; stderr goes to a log file.

    It is ready when it sends READY=1 to a notify socket of ours (the sd_notify
    protocol: NOTIFY_SOCKET names a datagram socket); the STATUS= beside it
    says where it serves. An event, no polling.
    """

    def __init__(self, binary, state_dir, log_path):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        notify_dir = tempfile.mkdtemp(prefix="regiond-notify-")
        notify_path = os.path.join(notify_dir, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(notify_path)
        try:
            self.proc = subprocess.Popen(
                [binary, "--port", "0", "--state-dir", state_dir, "--log-level", "error"],
                stdout=subprocess.DEVNULL, stderr=self.log, stdin=subprocess.DEVNULL,
                env=dict(os.environ, NOTIFY_SOCKET=notify_path))
            self.port = self._wait_ready(timeout=30)
        finally:
            self.notify.close()
            shutil.rmtree(notify_dir, ignore_errors=True)

    def _wait_ready(self, timeout):
        """Waits for READY=1; returns the port of its STATUS=serving on http://HOST:PORT."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                code = self.proc.poll()
                self.kill()
                raise TestFailure(f"regiond sent no READY=1 within {timeout}s (exit code {code}); "
                                  f"log tail:\n{self.log_tail()}")
            # Short waits, so an early exit is noticed; each ends at a datagram or its timeout.
            self.notify.settimeout(min(left, 0.5))
            try:
                message = self.notify.recv(4096).decode()
            except socket.timeout:
                continue
            fields = message.split("\n")
            if "READY=1" in fields:
                # Wall-clock time it was seen ready (it became ready at or before this).
                self.ready_ms = now_ms()
                m = re.search(r"STATUS=serving on http://[^\n]+:(\d+)", message)
                if not m:
                    raise TestFailure(f"READY=1 without the address: {message!r}")
                return int(m.group(1))

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
    """What the clients know.

    `live`: offset -> unshared region (cls, label, key, owner, size, and
    `lease` {ttl, expires, renewing} when leased) the server acknowledged and
    nobody released (with an acknowledged or no release).
    `shares`: share key -> shared region: `state` creating (its allocation in
    flight), open, or closing (its last reference is being dropped); `holders`
    one client id per acknowledged reference not being dropped;
    `pending_joins` / `pending_leaves` the joins and leaves in flight.
    `uncertain_*`: operations whose response never came."""

    def __init__(self):
        self.live = {}
        self.shares = {}
        self.uncertain_allocs = []    # dicts: owner, cls, label, key, size, ttl, sent
        self.uncertain_releases = []  # (offset, region): one offset may be in several
        self.uncertain_batches = []   # dicts: owner, sent, items
        self.uncertain_teardowns = []  # dicts: owner, label, plain, whole, dropped (see Client.teardown)
        self.lock = threading.Lock()
        self.errors = []
        self.seen_ids = {}            # every id (allocation or reference) ever answered -> what answered it
        self.cycle_start()

    def cycle_start(self):
        """What this cycle's answered reads and refusals must be checked against after the kill."""
        self.reads = []        # (sent, region) for every region an answered GET showed
        self.gone = []         # (id, sent): a GET/DELETE/renew ?id= answered 404 not_allocated
        self.refusals = []     # (class, free blocks of that class or None, largestFree or None)
        self.drops = {}        # id -> [(refs dropped, answered or None)]: releases and leaves sent this cycle
        self.renew_ends = {}   # id -> the earliest expiry a renewal sent this cycle could set
        self.known = set()     # (offset, size) of every region known this cycle (refusal check)
        for o, m in self.live.items():
            self.known.add((o, class_size(m["cls"])))
        for s in self.shares.values():
            if s["offset"] is not None:
                self.known.add((s["offset"], class_size(s["cls"])))

    def new_id(self, i, what):
        """Under the lock: `i` answers a new allocation or reference; an error if it was ever seen."""
        if not isinstance(i, int) or i < 1:
            self.errors.append(f"{what}: id {i!r} is not an integer from 1")
        elif i in self.seen_ids:
            self.errors.append(f"REUSED id {i}: {what}; it was seen before: {self.seen_ids[i]}")
        else:
            self.seen_ids[i] = what

    def drop(self, i, refs=1):
        """Under the lock: a release (or a drop of `refs` references) of allocation `i` is sent; returns
        its record, to stamp with the time of its answer."""
        rec = [refs, None]
        self.drops.setdefault(i, []).append(rec)
        return rec

    def take_offset(self, offset):
        """Called under the lock when the server handed out `offset`: returns
        what still holds it in the model (an error), or None. A lease that has
        ended by now was released by the server: it is forgotten."""
        m = self.live.get(offset)
        if m is not None:
            lease = m.get("lease")
            if lease and lease["renewing"] is None and lease["expires"] <= now_ms() + CLOCK_SLACK_MS:
                del self.live[offset]
            else:
                return f"region {m}"
        for s in self.shares.values():
            if s["offset"] == offset and s["state"] == "open":
                return f"shared region {s['key']}"
        return None

    def in_flight(self):
        """Under the lock: allocations, releases, batches, joins and leaves, renewals in flight."""
        return (len(self.uncertain_allocs), len(self.uncertain_releases), len(self.uncertain_batches),
                sum(len(s["pending_joins"]) + len(s["pending_leaves"]) for s in self.shares.values()),
                sum(1 for m in self.live.values() if m.get("lease") and m["lease"]["renewing"]),
                len(self.uncertain_teardowns))


def new_share(key, cls, label, owner, batch=None):
    return {"key": key, "offset": None, "id": None, "cls": cls, "label": label, "state": "creating", "owner": owner,
            "holders": [], "pending_joins": [], "pending_leaves": [], "probes": [], "zeros": 0, "batch": batch}


def random_size(rng, cls):
    low = class_size(cls - 1) + 1 if cls > 0 else 1
    return rng.randint(low, class_size(cls))


def expiry_in(E, ttl, sent, received):
    """Whether expiry E is what regiond sets for `ttl` seconds at some moment between `sent` and `received`."""
    return sent + ttl * 1000 - CLOCK_SLACK_MS <= E <= received + ttl * 1000 + CLOCK_SLACK_MS


class Client(threading.Thread):
    def __init__(self, cid, port, model, rng, stop, cycle, counters):
        super().__init__(daemon=True)
        self.cid, self.port, self.model, self.rng = cid, port, model, rng
        self.stop, self.cycle, self.counters = stop, cycle, counters
        self.vm = f"vm-{cid}"   # this client's label: its teardown releases what carries it
        self.stale = []         # (offset, id) of its acknowledged releases: asking for them is a 404

    def error(self, msg):
        with self.model.lock:
            self.model.errors.append(f"client {self.cid}: {msg}")

    def owned(self):
        """This client's unleased regions, and its leases that ended over the
        grace ago, which it forgets (regiond must have released them)."""
        now = now_ms()
        mine, ended = [], []
        with self.model.lock:
            for o, r in list(self.model.live.items()):
                if r["owner"] != self.cid:
                    continue
                lease = r.get("lease")
                if lease is None:
                    mine.append(o)
                elif lease["renewing"] is None and lease["expires"] + EXPIRY_GRACE_MS < now:
                    del self.model.live[o]
                    ended.append((o, r))
        return mine, ended

    def check_expired(self, conn, offset, region):
        """regiond released this lease by itself (its offset may hold another region by now)."""
        sent = now_ms()
        status, resp, _ = send(conn, "GET", f"/regions/{offset}?id={region['id']}")
        if status == 404:
            with self.model.lock:
                self.model.gone.append((region["id"], sent))
        if status == 200:
            self.error(f"NOT EXPIRED: region {resp} is still there at {fmt_ms(now_ms())}, its lease ended at "
                       f"{fmt_ms(region['lease']['expires'])}")
        elif status not in (200, 404):
            self.error(f"GET /regions/{offset} answered {status} {resp}")
        else:
            with self.model.lock:
                self.counters["expired"] += 1

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        n = 0
        while not self.stop.is_set():
            n += 1
            owned, ended = self.owned()
            roll = self.rng.random()
            try:
                for offset, region in ended:
                    self.check_expired(conn, offset, region)
                if roll < 0.015:
                    self.teardown(conn)
                elif self.stale and roll < 0.04:
                    self.ask_stale(conn)
                elif owned and roll < len(owned) / (len(owned) + 12.0):
                    self.release(conn, self.rng.choice(owned))
                elif owned and roll > 0.97:
                    self.replay(conn, owned)
                else:
                    kind = self.rng.random()
                    if kind < 0.18:
                        self.share_op(conn, n)
                    elif kind < 0.34:
                        self.lease_op(conn, n)
                    elif kind < 0.52:
                        self.batch(conn, n)
                    else:
                        self.allocate(conn, n)
            except (OSError, http.client.HTTPException):
                # The server was killed (or dropped us): that op is uncertain.
                conn.close()
                if self.stop.is_set():
                    return
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.close()

    # ------------------------------------------------ plain regions

    def allocate(self, conn, n):
        # Mostly small classes, some large ones; sizes anywhere in the class.
        cls = self.rng.choices([0, 1, 2, 3, 4], weights=[40, 30, 18, 9, 3])[0]
        size = random_size(self.rng, cls)
        op_id = f"{self.cycle}-{self.cid}-{n}"
        roll = self.rng.random()
        label = self.vm if roll < 0.3 else f"L{op_id}" if roll < 0.6 else None
        key = f"K{op_id}" if self.rng.random() < 0.5 else None
        body = {"size": size}
        if label is not None:
            body["label"] = label
        headers = {"Idempotency-Key": key} if key else {}
        op = {"owner": self.cid, "cls": cls, "label": label, "key": key, "size": size, "ttl": None}
        with self.model.lock:
            self.model.uncertain_allocs.append(op)
        status, resp, _ = send(conn, "POST", "/regions", body, headers)
        with self.model.lock:
            self.model.uncertain_allocs.remove(op)
            if status == 201:
                if not isinstance(resp, dict) or resp.get("class") != cls or resp.get("label") != label \
                        or resp.get("size") != class_size(cls) or "expiresAt" in resp or "share" in resp:
                    self.model.errors.append(f"client {self.cid}: allocate {body} answered 201 {resp}")
                    return
                offset = resp["offset"]
                # (An offset with a release in flight may be free again already.)
                holder = self.model.take_offset(offset)
                if holder is not None:
                    self.model.errors.append(
                        f"client {self.cid}: allocate {body} got offset {offset}, which is still allocated ({holder})")
                self.model.new_id(resp.get("id"), f"client {self.cid}: allocate {body} answered {resp}")
                if resp.get("ref") != resp.get("id"):
                    self.model.errors.append(f"client {self.cid}: allocate {body} answered {resp}: ref is not id")
                self.model.known.add((offset, class_size(cls)))
                self.model.live[offset] = {"cls": cls, "label": label, "key": key, "owner": self.cid,
                                           "size": size, "id": resp.get("id")}
                self.counters["allocs"] += 1
            elif status == 409 and isinstance(resp, dict) and resp.get("code") == "not_enough_space":
                self.counters["full"] += 1
                self.model.refusals.append((cls, None, resp.get("largestFree")))
            else:
                self.model.errors.append(f"client {self.cid}: allocate {body} key={key} answered {status} {resp}")

    def release(self, conn, offset):
        with self.model.lock:
            region = self.model.live.get(offset)
            if region is None or (region.get("lease") and (region["lease"]["renewing"] is not None or
                                                          region["lease"]["expires"] - now_ms() < LEASE_MARGIN_MS)):
                return
            del self.model.live[offset]
            entry = (offset, region)
            self.model.uncertain_releases.append(entry)
            rec = self.model.drop(region["id"])
        status, resp, _ = send(conn, "DELETE", f"/regions/{offset}?id={region['id']}")
        with self.model.lock:
            rec[1] = now_ms()
            self.model.uncertain_releases.remove(entry)
            if status == 200 and isinstance(resp, dict) and resp.get("offset") == offset \
                    and resp.get("class") == region["cls"] and resp.get("label") == region["label"] \
                    and resp.get("id") == region["id"]:
                self.counters["releases"] += 1
                self.stale.append((offset, region["id"]))
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
                or resp.get("id") != region["id"] or r.getheader("Idempotent-Replayed") != "true":
            self.error(f"replay of key {region['key']} (offset {offset}) answered {status} {resp}")
        else:
            with self.model.lock:
                self.counters["replays"] += 1

    # ------------------------------------------------ shared regions

    def share_op(self, conn, n):
        with self.model.lock:
            open_ = [s for s in self.model.shares.values() if s["state"] == "open"]
            mine = [s for s in open_ if any(h["cid"] == self.cid for h in s["holders"])]
            refs = sum(len(s["holders"]) for s in open_)
        # About 3 references per region, 4 to 8 regions; each ends when its last reference goes.
        roll = self.rng.random()
        if len(open_) < 4 or (roll < 0.1 and len(open_) < 8):
            self.share_create(conn, n)
        elif mine and (roll < 0.45 or refs > 3 * len(open_)):
            if not self.share_leave(conn, self.rng.choice(mine)):
                self.share_join(conn, n, self.rng.choice(open_))
        else:
            self.share_join(conn, n, self.rng.choice(open_))

    def open_share(self, s, resp, what):
        """A new shared region was answered (model lock held): it must have
        one reference and an offset nothing else holds; the share is open."""
        s["id"] = resp.get("id") if isinstance(resp, dict) else None
        if not self.check_shared(resp, s) or resp["refs"] != 1 or resp.get("ref") != s["id"]:
            self.model.errors.append(f"client {self.cid}: {what} answered {resp}")
        self.model.new_id(s["id"], f"client {self.cid}: {what} answered {resp}")
        self.model.known.add((s["offset"], class_size(s["cls"])))
        holder = self.model.take_offset(s["offset"])
        if holder is not None:
            self.model.errors.append(f"client {self.cid}: {what} got offset {s['offset']}, "
                                     f"which is still allocated ({holder})")
        s["state"], s["holders"] = "open", [{"cid": self.cid, "ref": s["id"], "label": s["label"]}]
        self.counters["shares"] += 1

    def check_shared(self, resp, s):
        return isinstance(resp, dict) and resp.get("offset") == s["offset"] and resp.get("share") == s["key"] \
            and resp.get("id") == s["id"] \
            and resp.get("class") == s["cls"] and resp.get("label") == s["label"] \
            and resp.get("size") == class_size(s["cls"]) and isinstance(resp.get("refs"), int) \
            and "expiresAt" not in resp

    def share_create(self, conn, n):
        op_id = f"{self.cycle}-{self.cid}-{n}"
        cls = self.rng.choices([0, 1, 2], weights=[50, 35, 15])[0]
        size = random_size(self.rng, cls)
        roll = self.rng.random()
        label = self.vm if roll < 0.3 else f"L{op_id}" if roll < 0.6 else None
        s = new_share(f"S{op_id}", cls, label, self.cid)
        body = {"size": size, "share": s["key"]}
        if label is not None:
            body["label"] = label
        with self.model.lock:
            self.model.shares[s["key"]] = s
        status, resp, _ = send(conn, "POST", "/regions", body)
        with self.model.lock:
            if status == 201 and isinstance(resp, dict) and isinstance(resp.get("offset"), int):
                s["offset"] = resp["offset"]
                self.open_share(s, resp, f"create shared {body}")
            else:
                del self.model.shares[s["key"]]
                if status == 409 and isinstance(resp, dict) and resp.get("code") == "not_enough_space":
                    self.counters["full"] += 1
                    self.model.refusals.append((cls, None, resp.get("largestFree")))
                else:
                    self.model.errors.append(f"client {self.cid}: create shared {body} answered {status} {resp}")

    def share_join(self, conn, n, s):
        op_id = f"{self.cycle}-{self.cid}-{n}"
        with self.model.lock:
            if s["state"] != "open":
                return
            conflict = self.rng.random() < 0.05
            join = {"owner": self.cid, "batch": None}
            if conflict:
                # Another class: 409 share_conflict, nothing changes (not even in
                # flight). Its region is not released meanwhile (a join would create it).
                cls = self.rng.choice([c for c in range(5) if c != s["cls"]])
                s["probes"].append(join)
            else:
                cls = s["cls"]
                s["pending_joins"].append(join)
        body = {"size": random_size(self.rng, cls), "share": s["key"]}
        roll = self.rng.random()
        if roll < 0.7:
            # A joiner's label (the region keeps the first one): the reference's own.
            body["label"] = self.vm if roll < 0.4 else f"J{op_id}"
        status, resp, _ = send(conn, "POST", "/regions", body)
        with self.model.lock:
            if conflict:
                s["probes"].remove(join)
                if status == 409 and isinstance(resp, dict) and resp.get("code") == "share_conflict":
                    self.counters["conflicts"] += 1
                else:
                    self.model.errors.append(f"client {self.cid}: join {body} of {s['key']} (class {s['cls']}) "
                                             f"answered {status} {resp}, expected 409 share_conflict")
                return
            s["pending_joins"].remove(join)
            # Nobody can have dropped the last reference: at least 2 now.
            if status == 200 and self.check_shared(resp, s) and resp["refs"] >= 2:
                self.model.new_id(resp.get("ref"), f"client {self.cid}: join {body} answered {resp}")
                s["holders"].append({"cid": self.cid, "ref": resp.get("ref"), "label": body.get("label")})
                self.counters["joins"] += 1
            else:
                self.model.errors.append(f"client {self.cid}: join {body} of {s['key']} at {s['offset']} "
                                         f"answered {status} {resp}")

    def share_leave(self, conn, s):
        """Drops one of this client's references; False when it may not now."""
        with self.model.lock:
            mine = [h for h in s["holders"] if h["cid"] == self.cid]
            if s["state"] != "open" or not mine:
                return False
            if len(s["holders"]) == 1:
                if s["pending_joins"] or s["probes"]:
                    return False
                s["state"] = "closing"   # the last reference: no more joins
            h = self.rng.choice(mine)
            s["holders"].remove(h)
            leave = {"owner": self.cid, "refs": [h], "teardown": None}
            s["pending_leaves"].append(leave)
            rec = self.model.drop(s["id"])
        # Exactly this client's reference, not the newest.
        status, resp, _ = send(conn, "DELETE", f"/regions/{s['offset']}?id={s['id']}&ref={h['ref']}")
        with self.model.lock:
            rec[1] = now_ms()
            s["pending_leaves"].remove(leave)
            if status == 200 and self.check_shared(resp, s) and resp["refs"] >= 0 and resp.get("ref") == h["ref"] \
                    and (resp["refs"] > 0 or s["state"] == "closing"):
                self.counters["leaves"] += 1
                s["zeros"] += resp["refs"] == 0
                if s["state"] == "closing" and not s["pending_leaves"]:
                    if s["zeros"] != 1:
                        self.model.errors.append(f"client {self.cid}: {s['zeros']} of the answers dropping the "
                                                 f"references of {s['key']} said refs 0, expected exactly one")
                    del self.model.shares[s["key"]]
                    self.counters["unshared"] += 1
            else:
                s["holders"].append(h)
                self.model.errors.append(f"client {self.cid}: leave {s['key']} at {s['offset']} ({len(s['holders'])} "
                                         f"acknowledged references, state {s['state']}) answered {status} {resp}")
        return True

    # ------------------------------------------------ leases

    def lease_op(self, conn, n):
        """Renews or releases a lease of this client's with enough time left, or makes a new one."""
        now = now_ms()
        with self.model.lock:
            renewable = [o for o, m in self.model.live.items()
                         if m["owner"] == self.cid and m.get("lease") and m["lease"]["renewing"] is None
                         and m["lease"]["expires"] - now > LEASE_MARGIN_MS]
        roll = self.rng.random()
        if renewable and roll < 0.4:
            self.renew(conn, self.rng.choice(renewable))
            return
        if renewable and roll < 0.5:
            self.release(conn, self.rng.choice(renewable))
            return
        cls = self.rng.choices([0, 1, 2], weights=[50, 35, 15])[0]
        size = random_size(self.rng, cls)
        ttl = self.rng.choice(TTLS)
        label = f"T{self.cycle}-{self.cid}-{n}"   # always labelled: identified after a restart
        body = {"size": size, "label": label, "ttl": ttl}
        op = {"owner": self.cid, "cls": cls, "label": label, "key": None, "size": size, "ttl": ttl,
              "sent": now_ms()}
        with self.model.lock:
            self.model.uncertain_allocs.append(op)
        status, resp, _ = send(conn, "POST", "/regions", body)
        received = now_ms()
        with self.model.lock:
            self.model.uncertain_allocs.remove(op)
            if status == 201:
                E = expiry_ms(resp)
                if not isinstance(resp, dict) or resp.get("class") != cls or resp.get("label") != label \
                        or resp.get("size") != class_size(cls) or E is None \
                        or not expiry_in(E, ttl, op["sent"], received):
                    self.model.errors.append(f"client {self.cid}: allocate {body} answered 201 {resp} "
                                             f"(sent at {fmt_ms(op['sent'])}, answered at {fmt_ms(received)})")
                    return
                offset = resp["offset"]
                holder = self.model.take_offset(offset)
                if holder is not None:
                    self.model.errors.append(
                        f"client {self.cid}: allocate {body} got offset {offset}, which is still allocated ({holder})")
                self.model.new_id(resp.get("id"), f"client {self.cid}: allocate {body} answered {resp}")
                self.model.known.add((offset, class_size(cls)))
                self.model.live[offset] = {"cls": cls, "label": label, "key": None, "owner": self.cid,
                                           "size": size, "id": resp.get("id"),
                                           "lease": {"ttl": ttl, "expires": E, "renewing": None}}
                self.counters["leases"] += 1
            elif status == 409 and isinstance(resp, dict) and resp.get("code") == "not_enough_space":
                self.counters["full"] += 1
                self.model.refusals.append((cls, None, resp.get("largestFree")))
            else:
                self.model.errors.append(f"client {self.cid}: allocate {body} answered {status} {resp}")

    def renew(self, conn, offset):
        given = self.rng.choice([None, None] + TTLS)
        with self.model.lock:
            m = self.model.live.get(offset)
            if m is None or m.get("lease") is None or m["lease"]["renewing"] is not None:
                return
            lease = m["lease"]
            if given is None and lease["ttl"] is None:
                given = self.rng.choice(TTLS)   # its length is not known for sure (see check_state)
            ttl = given or lease["ttl"]
            sent = now_ms()
            if lease["expires"] - sent < LEASE_MARGIN_MS:
                return
            lease["renewing"] = {"ttl": ttl, "sent": sent}
            ends = self.model.renew_ends
            ends[m["id"]] = min(ends.get(m["id"], sent + ttl * 1000), sent + ttl * 1000)
        body = {"ttl": given} if given else None
        status, resp, _ = send(conn, "POST", f"/regions/{offset}/renew?id={m['id']}", body)
        received = now_ms()
        with self.model.lock:
            lease["renewing"] = None
            E = expiry_ms(resp)
            if status == 200 and isinstance(resp, dict) and resp.get("offset") == offset \
                    and resp.get("label") == m["label"] and resp.get("class") == m["cls"] and resp.get("id") == m["id"] \
                    and E is not None and expiry_in(E, ttl, sent, received):
                lease["expires"], lease["ttl"] = E, ttl
                self.counters["renewals"] += 1
            else:
                self.model.errors.append(f"client {self.cid}: renew {offset} with {body} (ttl {ttl}, sent at "
                                         f"{fmt_ms(sent)}, answered at {fmt_ms(received)}; lease {lease}) "
                                         f"answered {status} {resp}")

    # ------------------------------------------------ batches

    def batch(self, conn, n):
        count = self.rng.randint(2, 5)
        failing = self.rng.random() < 0.2
        bad_at = self.rng.randint(1, count) if failing else None
        items, body_items = [], []
        with self.model.lock:
            open_ = [s for s in self.model.shares.values() if s["state"] == "open"]
            joinable = [s for s in open_ if len(s["holders"]) < 4]
            for i in range(count):
                if i == bad_at:
                    body_items.append({"size": CAPACITY + 1, "label": f"X{self.cycle}-{self.cid}-{n}"})
                op_id = f"{self.cycle}-{self.cid}-{n}.{i}"
                roll = self.rng.random()
                cls = self.rng.choices([0, 1, 2], weights=[50, 35, 15])[0]
                label = f"B{op_id}"
                item = {"owner": self.cid, "cls": cls, "label": label, "size": random_size(self.rng, cls)}
                body = {"size": item["size"], "label": label}
                if roll < 0.6:
                    item["kind"] = "plain"
                elif roll < 0.75:
                    item["kind"], item["ttl"] = "lease", self.rng.choice(TTLS)
                    body["ttl"] = item["ttl"]
                elif (roll < 0.88 and len(open_) < 8) or not joinable:
                    item["kind"], item["share"] = "share", new_share(f"S{op_id}", cls, label, self.cid)
                    body["share"] = item["share"]["key"]
                else:
                    s = self.rng.choice(joinable)
                    item["kind"], item["share"] = "join", s
                    item["cls"] = s["cls"]
                    body = {"size": random_size(self.rng, s["cls"]), "share": s["key"], "label": label}
                items.append(item)
                body_items.append(body)
            if bad_at == count:
                body_items.append({"size": CAPACITY + 1, "label": f"X{self.cycle}-{self.cid}-{n}"})
            batch = {"owner": self.cid, "items": items, "sent": now_ms()}
            if not failing:
                # In flight: the model knows of it. A failing one must change nothing,
                # so the model ignores it: anything of it after a restart is a phantom.
                self.model.uncertain_batches.append(batch)
                for item in items:
                    if item["kind"] == "share":
                        item["share"]["batch"] = batch
                        self.model.shares[item["share"]["key"]] = item["share"]
                    elif item["kind"] == "join":
                        item["join"] = {"owner": self.cid, "batch": batch}
                        item["share"]["pending_joins"].append(item["join"])
        body = {"regions": body_items}
        status, resp, _ = send(conn, "POST", "/regions/batch", body)
        received = now_ms()
        with self.model.lock:
            if not failing:
                self.model.uncertain_batches.remove(batch)
                for item in items:
                    if item["kind"] == "join":
                        item["share"]["pending_joins"].remove(item["join"])
            if failing:
                index = resp.get("index") if isinstance(resp, dict) else None
                code = resp.get("code") if isinstance(resp, dict) else None
                if (status == 400 and code == "invalid_memory_class" and index == bad_at) \
                        or (status == 409 and code == "not_enough_space" and isinstance(index, int)
                            and index < bad_at):
                    self.counters["batches_failed"] += 1
                    if status == 409 and index == 0:
                        self.model.refusals.append((items[0]["cls"], None, resp.get("largestFree")))
                else:
                    self.model.errors.append(f"client {self.cid}: batch {body} (item {bad_at} invalid) answered "
                                             f"{status} {resp}, expected 400 invalid_memory_class at index {bad_at}")
                return
            regions = resp.get("regions") if status == 201 and isinstance(resp, dict) else None
            if not isinstance(regions, list) or len(regions) != len(items):
                for item in items:
                    if item["kind"] == "share":
                        del self.model.shares[item["share"]["key"]]
                if status == 409 and isinstance(resp, dict) and resp.get("code") == "not_enough_space" \
                        and isinstance(resp.get("index"), int):
                    self.counters["full"] += 1
                    if resp["index"] == 0:
                        self.model.refusals.append((items[0]["cls"], None, resp.get("largestFree")))
                else:
                    self.model.errors.append(f"client {self.cid}: batch {body} answered {status} {resp}")
                return
            for item, r in zip(items, regions):
                self.batch_item_acknowledged(item, r, batch["sent"], received, body)
            self.counters["batches"] += 1
            self.counters["batch_items"] += len(items)

    def batch_item_acknowledged(self, item, r, sent, received, body):
        """Called under the lock: the model takes an acknowledged batch item."""
        kind = item["kind"]
        if kind in ("plain", "lease"):
            E = expiry_ms(r)
            if not isinstance(r, dict) or r.get("class") != item["cls"] or r.get("label") != item["label"] \
                    or "share" in r or (E is not None) != (kind == "lease") \
                    or (kind == "lease" and not expiry_in(E, item["ttl"], sent, received)):
                self.model.errors.append(f"client {self.cid}: batch {body} answered item {item['label']} with {r}")
                return
            holder = self.model.take_offset(r["offset"])
            if holder is not None:
                self.model.errors.append(f"client {self.cid}: batch {body} got offset {r['offset']} for "
                                         f"{item['label']}, which is still allocated ({holder})")
            self.model.new_id(r.get("id"), f"client {self.cid}: batch {body} answered item {item['label']} with {r}")
            self.model.known.add((r["offset"], class_size(item["cls"])))
            entry = {"cls": item["cls"], "label": item["label"], "key": None, "owner": self.cid,
                     "size": item["size"], "id": r.get("id")}
            if kind == "lease":
                entry["lease"] = {"ttl": item["ttl"], "expires": E, "renewing": None}
                self.counters["leases"] += 1
            self.model.live[r["offset"]] = entry
        elif kind == "share":
            s = item["share"]
            s["offset"] = r.get("offset") if isinstance(r, dict) else None
            s["batch"] = None
            self.open_share(s, r, f"batch {body}, new shared {s['key']},")
        else:
            s = item["share"]
            if not self.check_shared(r, s) or r["refs"] < 2:
                self.model.errors.append(f"client {self.cid}: batch {body} answered the join of {s['key']} "
                                         f"at {s['offset']} with {r}")
            else:
                self.model.new_id(r.get("ref"), f"client {self.cid}: batch {body} answered the join with {r}")
                s["holders"].append({"cid": self.cid, "ref": r.get("ref"), "label": item["label"]})
                self.counters["joins"] += 1


    # ------------------------------------------------ teardown by label, stale ids

    def teardown(self, conn):
        """DELETE /regions?label=vm-<cid>: its plain regions and its shared regions go whole, its
        references labelled so are dropped from the other shared regions; all or nothing."""
        with self.model.lock:
            live, shares = self.model.live, self.model.shares
            plain = [(o, m) for o, m in live.items() if m["owner"] == self.cid and m["label"] == self.vm]
            whole = [s for s in shares.values() if s["label"] == self.vm and s["state"] != "creating"]
            dropped = []
            for s in shares.values():
                mine = [h for h in s["holders"] if h["label"] == self.vm]
                if s["label"] != self.vm and mine:
                    dropped.append((s, mine))
            # The same rules as a leave: nothing in flight on a region this may release.
            if any(s["state"] != "open" or s["pending_joins"] or s["pending_leaves"] or s["probes"] for s in whole) \
                    or any(len(mine) == len(s["holders"]) and (s["pending_joins"] or s["probes"])
                           for s, mine in dropped):
                return
            td = {"owner": self.cid, "label": self.vm, "plain": plain, "seen": set(), "recs": []}
            for o, m in plain:
                del live[o]
                self.model.uncertain_releases.append((o, m))
                td["recs"].append(self.model.drop(m["id"]))
            entries = []
            for s in whole:
                entries.append((s, {"owner": self.cid, "refs": list(s["holders"]), "teardown": td}))
                s["holders"], s["state"] = [], "closing"
                td["recs"].append(self.model.drop(s["id"], 1 << 30))
            for s, mine in dropped:
                entries.append((s, {"owner": self.cid, "refs": mine, "teardown": td}))
                s["holders"] = [h for h in s["holders"] if h not in mine]
                if not s["holders"]:
                    s["state"] = "closing"
                td["recs"].append(self.model.drop(s["id"], len(mine)))
            for s, entry in entries:
                s["pending_leaves"].append(entry)
            self.model.uncertain_teardowns.append(td)
        status, resp, _ = send(conn, "DELETE", f"/regions?label={self.vm}")
        with self.model.lock:
            for rec in td["recs"]:
                rec[1] = now_ms()
            self.model.uncertain_teardowns.remove(td)
            for entry in plain:
                self.model.uncertain_releases.remove(entry)
            for s, entry in entries:
                s["pending_leaves"].remove(entry)
            regions = resp.get("regions") if status == 200 and isinstance(resp, dict) else None
            got = {r.get("id"): r for r in regions if isinstance(r, dict)} if isinstance(regions, list) else {}
            expected = {m["id"] for _, m in plain} | {s["id"] for s, _ in entries}
            if regions is None or set(got) != expected or len(got) != len(regions):
                self.model.errors.append(f"client {self.cid}: teardown of {self.vm} answered {status} {resp}; "
                                         f"expected ids {sorted(expected)}")
                return
            for o, m in plain:
                r = got[m["id"]]
                if r.get("offset") != o or r.get("class") != m["cls"] or "refs" in r or r.get("label") != self.vm:
                    self.model.errors.append(f"client {self.cid}: teardown of {self.vm} answered {r} for {m}")
                self.stale.append((o, m["id"]))
            for s, entry in entries:
                r = got[s["id"]]
                refs = r.get("refs") if self.check_shared(r, s) else None
                if not isinstance(refs, int) or refs < 0 or (refs == 0 and s["state"] != "closing"):
                    self.model.errors.append(f"client {self.cid}: teardown of {self.vm} answered {r} for shared "
                                             f"region {s['key']} ({len(s['holders'])} references left, state "
                                             f"{s['state']})")
                s["zeros"] += refs == 0
                if s["state"] == "closing" and not s["pending_leaves"]:
                    if s["zeros"] != 1:
                        self.model.errors.append(f"client {self.cid}: {s['zeros']} of the answers dropping the "
                                                 f"references of {s['key']} said refs 0, expected exactly one")
                    self.model.shares.pop(s["key"], None)
                    self.counters["unshared"] += 1
                    self.stale.append((s["offset"], s["id"]))
            self.counters["teardowns"] += 1
            self.counters["torn"] += len(regions)

    def ask_stale(self, conn):
        """GET, DELETE or renew an allocation this client released, by its id: 404 and nothing changes
        (its offset may hold another allocation by now)."""
        offset, i = self.rng.choice(self.stale[-20:])
        method, path = self.rng.choice([("GET", ""), ("DELETE", ""), ("POST", "/renew")])
        sent = now_ms()
        status, resp, _ = send(conn, method, f"/regions/{offset}{path}?id={i}")
        with self.model.lock:
            if status == 404 and isinstance(resp, dict) and resp.get("code") == "not_allocated":
                self.model.gone.append((i, sent))
                self.counters["stale"] += 1
            else:
                self.model.errors.append(f"client {self.cid}: {method} /regions/{offset}{path}?id={i} of a released "
                                         f"allocation answered {status} {resp}, expected 404 not_allocated")


# Batches that can never fit: COUNT regions of CLASS when fewer blocks of it exist. The index of the
# refusal is how many free blocks of that class there were.
IMPOSSIBLE = {4: 17, 5: 5, 6: 2}


class Reader(threading.Thread):
    """Reads and refusals, recorded when answered: what they showed must survive the kill."""

    def __init__(self, rid, port, model, rng, stop, counters):
        super().__init__(daemon=True)
        self.rid, self.port, self.model, self.rng, self.stop, self.counters = rid, port, model, rng, stop, counters

    def error(self, msg):
        with self.model.lock:
            self.model.errors.append(f"reader {self.rid}: {msg}")

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stop.is_set():
            try:
                roll = self.rng.random()
                if roll < 0.25:
                    self.list_all(conn)
                elif roll < 0.75:
                    self.get_one(conn)
                else:
                    self.refused(conn)
            except (OSError, http.client.HTTPException):
                conn.close()
                if self.stop.is_set():
                    return
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            time.sleep(0.003)
        conn.close()

    def record(self, sent, regions):
        with self.model.lock:
            for r in regions:
                if not isinstance(r, dict) or not isinstance(r.get("id"), int):
                    self.model.errors.append(f"reader {self.rid}: a region without an id: {r}")
                    continue
                self.model.reads.append((sent, r))
                self.model.known.add((r["offset"], r["size"]))
            self.counters["reads"] += len(regions)

    def list_all(self, conn):
        sent = now_ms()
        status, resp, _ = send(conn, "GET", "/regions")
        if status != 200 or not isinstance(resp, dict) or not isinstance(resp.get("regions"), list):
            return self.error(f"GET /regions answered {status} {resp}")
        self.record(sent, resp["regions"])

    def get_one(self, conn):
        """A region the model knows, also one being released or being joined."""
        with self.model.lock:
            known = [(o, m["id"]) for o, m in self.model.live.items()]
            known += [(o, m["id"]) for o, m in self.model.uncertain_releases]
            known += [(s["offset"], s["id"]) for s in self.model.shares.values() if s["id"] is not None]
        if not known:
            return
        offset, i = self.rng.choice(known)
        sent = now_ms()
        status, resp, _ = send(conn, "GET", f"/regions/{offset}?id={i}")
        if status == 200 and isinstance(resp, dict) and resp.get("id") == i and resp.get("offset") == offset:
            self.record(sent, [resp])
        elif status == 404 and isinstance(resp, dict) and resp.get("code") == "not_allocated":
            with self.model.lock:
                self.model.gone.append((i, sent))
                self.counters["gone"] += 1
        else:
            self.error(f"GET /regions/{offset}?id={i} answered {status} {resp}")

    def refused(self, conn):
        cls = self.rng.choice(list(IMPOSSIBLE))
        body = {"regions": [{"size": class_size(cls)}] * IMPOSSIBLE[cls]}
        status, resp, _ = send(conn, "POST", "/regions/batch", body)
        index = resp.get("index") if isinstance(resp, dict) else None
        if status != 409 or resp.get("code") != "not_enough_space" or not isinstance(index, int) \
                or not 0 <= index < IMPOSSIBLE[cls]:
            return self.error(f"batch of {IMPOSSIBLE[cls]} class {cls} regions answered {status} {resp}, "
                              f"expected 409 not_enough_space")
        with self.model.lock:
            self.model.refusals.append((cls, index, resp.get("largestFree") if index == 0 else None))


# ---------------------------------------------------------------- the check


def snapshot(port):
    """GET /regions, GET /pool, GET /regions until the two lists agree (a
    lease may end in between); returns the list, the pool, and when the
    first list was asked for and answered."""
    for _ in range(50):
        t0 = now_ms()
        status, listed, _ = request(port, "GET", "/regions")
        t1 = now_ms()
        if status != 200:
            raise TestFailure(f"GET /regions answered {status} {listed}")
        pool_status, pool, _ = request(port, "GET", "/pool")
        status, again, _ = request(port, "GET", "/regions")
        if status == 200 and again == listed:
            return listed["regions"], pool_status, pool, t0, t1
    raise TestFailure("GET /regions keeps changing with no client running")


def settled_snapshot(port, ready_ms):
    """A snapshot once every region whose lease ended before regiond was ready
    (while it was down, or earlier) is gone, or once one of them is past its
    grace (the check reports it). (Leases ending after that are checked by
    the next cycle's check: still there, they are past their grace.) Returns
    it and how long it waited, in ms."""
    started = now_ms()
    while True:
        regions, pool_status, pool, t0, t1 = snapshot(port)
        ended = [E for E in (expiry_ms(r) for r in regions if "expiresAt" in r) if E is not None and E <= ready_ms]
        if not ended or t0 > max(max(E, ready_ms) for E in ended) + EXPIRY_GRACE_MS:
            return regions, pool_status, pool, t0, t1, now_ms() - started
        time.sleep(0.02)


def count_free(used, cls):
    """Free aligned blocks of class `cls` in a map of used MiBs."""
    n = class_size(cls) // MIB
    return sum(1 for b in range(0, len(used), n) if not any(used[b:b + n]))


def occupancy(regions):
    used = bytearray(CAPACITY // MIB)
    for r in regions:
        used[r["offset"] // MIB:(r["offset"] + r["size"]) // MIB] = b"\x01" * (r["size"] // MIB)
    return used


def largest_free(used):
    for cls in range(6, -1, -1):
        if count_free(used, cls):
            return class_size(cls)
    return 0


def lease_expiries(lease, kill_ms):
    """The expiries regiond may have for a lease: the acknowledged one, and
    (an interval) what a renewal in flight at the kill could have set."""
    r = lease["renewing"]
    window = (r["sent"] + r["ttl"] * 1000, kill_ms + r["ttl"] * 1000) if r else None
    return lease["expires"], window


def check_state(server, model, cycle, rng, kill_ms):
    """Compares the restarted server with the model; raises TestFailure on a
    lost or phantom change, then reconciles the model with the server."""
    port, ready_ms = server.port, server.ready_ms
    listed, pool_status, pool, t0, t1, waited = settled_snapshot(port, ready_ms)
    regions = {r["offset"]: r for r in listed}
    problems = []
    stats = {"waited": waited, "expired_down": 0, "expired_run": 0, "new_ids": 0}

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
        if ("share" in r) != isinstance(r.get("refs"), int) or ("share" in r and r["refs"] < 1):
            problems.append(f"region {r}: a shared region has refs >= 1, an unshared one none")
    if end > CAPACITY:
        problems.append(f"regions end at {end}, past the capacity {CAPACITY}")

    # GET /pool agrees with the list.
    used = sum(r["size"] for r in regions.values())
    if pool_status != 200 or pool.get("usedBytes") != used or pool.get("regionCount") != len(regions) \
            or pool.get("freeBytes") != CAPACITY - used or pool.get("capacity") != CAPACITY:
        problems.append(f"GET /pool {pool_status} {pool} disagrees with the list "
                        f"(usedBytes {used}, regionCount {len(regions)})")
    elif pool.get("largestFree") != largest_free(occupancy(regions.values())):
        problems.append(f"GET /pool largestFree {pool.get('largestFree')} is not the largest free aligned block "
                        f"of the list, {largest_free(occupancy(regions.values()))}")
    elif sum(c["allocated"] for c in pool["classes"]) != len(regions):
        problems.append(f"GET /pool per-class allocated counts do not add up to {len(regions)}: {pool['classes']}")

    # Ended leases are gone: within the grace of the later of their expiry and
    # the restart (one that ended while regiond was down ends at start-up).
    for r in regions.values():
        if "expiresAt" not in r:
            continue
        E = expiry_ms(r)
        if E is None:
            problems.append(f"region {r}: expiresAt is not RFC 3339 UTC with milliseconds")
        elif t0 > max(E, ready_ms) + EXPIRY_GRACE_MS:
            problems.append(f"NOT EXPIRED: region {r} is still there at {fmt_ms(t0)}, its lease ended at "
                            f"{fmt_ms(E)} and regiond was ready at {fmt_ms(ready_ms)}")

    def same(r, m):
        return r["class"] == m["cls"] and r.get("label") == m["label"] and r.get("id") == m["id"]

    def new_id(r, what):
        """r is an allocation whose answer never came: its id must be one never seen."""
        if r.get("id") in model.seen_ids:
            problems.append(f"REUSED id: {what} came back as {r}, whose id was seen before: "
                            f"{model.seen_ids[r.get('id')]}")
        else:
            model.seen_ids[r.get("id")] = f"{what}, found after the restart of cycle {cycle}: {r}"
            stats["new_ids"] += 1

    def check_lease(r, m, what):
        """r is m's region: it has m's lease (the acknowledged expiry, or one
        an in-flight renewal set), or no lease when m has none. Reconciles m."""
        lease = m.get("lease")
        E = expiry_ms(r)
        if lease is None:
            if "expiresAt" in r:
                problems.append(f"{what} at {r['offset']} has no lease, server has {r}")
            return
        acked, window = lease_expiries(lease, kill_ms)
        in_window = window is not None and window[0] - CLOCK_SLACK_MS <= (E or 0) <= window[1] + CLOCK_SLACK_MS
        if E != acked and not in_window:
            problems.append(f"{what} at {r['offset']}: expected expiresAt {fmt_ms(acked)}"
                            + (f" or, after the renewal in flight, {fmt_ms(window[0])}..{fmt_ms(window[1])}"
                               if window else "") + f"; server has {r}")
            return
        if window is not None and E != acked:
            lease["ttl"] = lease["renewing"]["ttl"]      # the renewal happened
        elif in_window and lease["renewing"]["ttl"] != lease["ttl"]:
            lease["ttl"] = None   # renewed or not, the same expiry: its length is not known
        lease["expires"], lease["renewing"] = E, None

    def lease_may_have_ended(m, at):
        acked, window = lease_expiries(m["lease"], kill_ms)
        return min(acked, window[0] if window else acked) <= at + CLOCK_SLACK_MS

    def count_expired(m):
        stats["expired_down" if kill_ms <= m["lease"]["expires"] <= ready_ms else "expired_run"] += 1

    # Shared regions, by their (never reused) share keys.
    shared = {r["share"]: r for r in regions.values() if "share" in r}
    shared_refs = {k: r["refs"] for k, r in shared.items()}
    extras = {o: r for o, r in regions.items() if "share" not in r}
    shares_resolved = [0, 0]   # in-flight joins and leaves at the kill
    cleanup = []               # shared regions whose references are not all known: dropped after the check
    for key, s in list(model.shares.items()):
        r = shared.pop(key, None)
        if r is not None and (r["class"] != s["cls"] or r.get("label") != s["label"] or "expiresAt" in r
                              or (s["offset"] is not None and r["offset"] != s["offset"])
                              or (s["id"] is not None and r["id"] != s["id"])):
            problems.append(f"shared region {key} changed: expected class {s['cls']} label {s['label']!r} "
                            f"id {s['id']} at {s['offset']}, server has {r}")
            continue
        if s["state"] == "creating":
            # Its allocation was in flight (alone or in a batch).
            if s["batch"] is not None:
                s["present"] = r is not None
            if r is None:
                del model.shares[key]
                continue
            if r["refs"] != 1:
                problems.append(f"shared region {key} whose allocation was in flight has refs {r['refs']}, "
                                f"expected 1 (no join was sent): {r}")
            new_id(r, f"shared region {key} whose allocation was in flight")
            s.update(offset=r["offset"], id=r["id"], state="open", batch=None, probes=[],
                     holders=[{"cid": s["owner"], "ref": r["id"], "label": s["label"]}])
            continue
        lo = len(s["holders"])
        joins, leaves = s["pending_joins"], s["pending_leaves"]
        dropping = sum(len(leave["refs"]) for leave in leaves)
        hi = lo + len(joins) + dropping
        refs = r["refs"] if r is not None else 0
        if not lo <= refs <= hi:
            what = "LOST shared region" if r is None else "shared region"
            expected = f"exactly {lo}" if lo == hi else f"{lo} to {hi} ({len(joins)} joins and " \
                                                       f"{dropping} references dropped in flight)"
            problems.append(f"{what} {key} at {s['offset']}: refs {refs} after restart, expected {expected} "
                            f"(acknowledged joins minus acknowledged leaves); server has {r}")
            continue
        # Whether the joins and the leaves in flight happened, when refs tells.
        joined = left = None
        if refs == lo + len(joins) and not leaves or refs == hi:
            joined, left = bool(joins), False
        elif refs == lo:
            joined, left = False, True
        for join in joins:
            join["happened"] = joined
        for leave in leaves:
            if leave["teardown"] is not None and left is not None:
                leave["teardown"]["seen"].add(left)
        shares_resolved[0] += len(joins)
        shares_resolved[1] += len(leaves)
        if r is None:
            del model.shares[key]
            continue
        if left is None or joined:
            # A join's reference (or which leave happened) is unknown: the check drops them all.
            cleanup.append(s)
            continue
        holders = s["holders"] + ([h for leave in leaves for h in leave["refs"]] if left is False else [])
        s.update(state="open", holders=holders, pending_joins=[], pending_leaves=[], probes=[], zeros=0)
    for key, r in shared.items():
        problems.append(f"PHANTOM shared region {r}: no acknowledged or in-flight allocation explains it")

    # Acknowledged allocations (not released, or with a release in flight).
    for offset, m in list(model.live.items()):
        r = extras.get(offset)
        if m.get("lease") is not None and (r is None or not same(r, m)):
            # Gone (another region may have its place): only once its lease has ended.
            if lease_may_have_ended(m, t1):
                del model.live[offset]
                count_expired(m)
            else:
                acked, window = lease_expiries(m["lease"], kill_ms)
                problems.append(f"LOST leased region: offset {offset} class {m['cls']} label {m['label']!r} "
                                f"(client {m['owner']}) expiring at {fmt_ms(acked)} is missing at {fmt_ms(t1)}"
                                + (f"; server has {r} there" if r else ""))
            continue
        extras.pop(offset, None)
        if r is None:
            problems.append(f"LOST acknowledged allocation: offset {offset} class {m['cls']} "
                            f"label {m['label']!r} (client {m['owner']}) is missing")
        elif not same(r, m):
            problems.append(f"acknowledged allocation at {offset} changed: expected class {m['cls']} "
                            f"label {m['label']!r} id {m['id']}, server has {r}")
        else:
            check_lease(r, m, "acknowledged allocation")
    releases_done = 0
    for offset, m in model.uncertain_releases:
        r = extras.get(offset)
        if r is not None and same(r, m):
            extras.pop(offset)
            # The release did not happen (its id says so).
            check_lease(r, m, "region whose release was in flight")
            model.live[offset] = m
        else:
            releases_done += 1     # it did (the offset may now hold an in-flight allocation)

    for td in model.uncertain_teardowns:
        for offset, m in td["plain"]:
            td["seen"].add(model.live.get(offset) is not m)

    # Everything else must be an in-flight allocation: labelled ones (and
    # every batch item) by their label (unique, or the client's vm-<cid>, of
    # which a client has one allocation in flight), unlabelled ones by class.
    by_label = {op["label"]: op for op in model.uncertain_allocs if op["label"] is not None}
    for batch in model.uncertain_batches:
        for item in batch["items"]:
            if item["kind"] in ("plain", "lease"):
                by_label[item["label"]] = dict(item, batch=batch, key=None, ttl=item.get("ttl"),
                                               sent=batch["sent"])
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
            op = candidates.pop() if candidates and "expiresAt" not in r else None
        if op is None or op["cls"] != r["class"]:
            problems.append(f"PHANTOM region {r}: no acknowledged or in-flight allocation explains it "
                            f"(an acknowledged release, a failed request, or never requested)"
                            + (f"; its id was answered before: {model.seen_ids[r.get('id')]}"
                               if r.get("id") in model.seen_ids else ""))
            continue
        new_id(r, f"the allocation in flight {op['label']!r} of client {op['owner']}")
        E = expiry_ms(r)
        if (E is None) != (op["ttl"] is None) or (E is not None and not expiry_in(E, op["ttl"], op["sent"], kill_ms)):
            problems.append(f"region {r} of the allocation in flight {op['label']!r} (ttl {op['ttl']}, sent at "
                            f"{fmt_ms(op['sent']) if op.get('sent') else '-'}, killed at {fmt_ms(kill_ms)}) "
                            f"has the wrong lease")
            continue
        allocs_done += op.get("batch") is None
        if op.get("batch") is not None:
            op["batch"]["found"] = op["batch"].get("found", set()) | {op["label"]}
        # Only a labelled op is identified for sure; its key belongs to this region.
        entry = {"cls": op["cls"], "label": op["label"], "owner": op["owner"], "id": r["id"],
                 "size": op["size"], "key": op["key"] if label is not None else None}
        if E is not None:
            entry["lease"] = {"ttl": op["ttl"], "expires": E, "renewing": None}
        model.live[offset] = entry

    # A batch in flight is there wholly or not at all.
    batches_done = [0, 0]
    for batch in model.uncertain_batches:
        found = batch.get("found", set())
        seen = []
        for item in batch["items"]:
            kind = item["kind"]
            if kind == "plain":
                there = item["label"] in found
            elif kind == "lease":
                # Absent proves nothing once it may have expired.
                there = True if item["label"] in found else \
                    (None if batch["sent"] + item["ttl"] * 1000 <= t1 + CLOCK_SLACK_MS else False)
            elif kind == "share":
                there = item["share"].get("present")
            else:
                there = item["join"].get("happened")
            seen.append((item, there))
        known = {there for _, there in seen if there is not None}
        if len(known) > 1:
            problems.append("PARTIAL batch in flight at the kill: " + ", ".join(
                f"{item['kind']} {item['label']}"
                + (f" ({item['share']['key']})" if "share" in item else "")
                + {True: " there", False: " NOT there", None: " unknown"}[there] for item, there in seen))
        batches_done[0 if True in known else 1] += 1

    # A teardown in flight is there wholly or not at all.
    teardowns_checked = 0
    for td in model.uncertain_teardowns:
        if len(td["seen"]) > 1:
            problems.append(f"PARTIAL teardown of {td['label']} in flight at the kill: some of its regions "
                            f"and references are gone, others are not")
        teardowns_checked += bool(td["seen"])

    # No answered read or refusal showed what the crash undid.
    by_id = {r["id"]: r for r in regions.values()}
    reads = {}
    for sent, r in model.reads:
        k = (r["id"], r.get("refs"), r.get("expiresAt"))
        reads[k] = max(reads.get(k, (0, None)), (sent, r), key=lambda x: x[0])
    for (i, _, _), (sent, r) in reads.items():
        now = by_id.get(i)
        if now is not None and (now["offset"] != r["offset"] or now["class"] != r["class"]
                                or now.get("label") != r.get("label") or now.get("share") != r.get("share")):
            problems.append(f"READ region {r} (asked at {fmt_ms(sent)}) is another region after the restart: {now}")
            continue
        shown = r.get("refs", 1)
        left = 0 if now is None else now.get("refs", 1)
        later = sum(n for n, answered in model.drops.get(i, []) if answered is None or answered >= sent)
        if left >= shown - later:
            continue
        E = expiry_ms(r)
        if E is not None and min(E, model.renew_ends.get(i, E)) <= t1 + CLOCK_SLACK_MS:
            continue
        problems.append(f"UNDONE READ: GET asked at {fmt_ms(sent)} answered {r}, but after the restart "
                        + (f"it has refs {left}" if now is not None else "it is gone")
                        + f", and only {later} of its references were dropped after that read")
    for i, sent in model.gone:
        if i in by_id:
            problems.append(f"UNDONE REFUSAL: id {i} answered 404 not_allocated at {fmt_ms(sent)}, but after the "
                            f"restart it is there: {by_id[i]}")
    # A 409 not_enough_space saw the pool as full as (or fuller than) what survived, together with
    # every region this cycle knew of (one released since still held its place then).
    held = occupancy([{"offset": o, "size": size} for o, size in model.known] + list(regions.values()))
    for cls, blocks, largest in model.refusals:
        free_blocks = count_free(held, cls)
        bad = (blocks is not None and free_blocks > blocks) or \
              (largest is not None and largest < largest_free(held)) or (blocks is None and free_blocks > 0)
        if bad:
            problems.append(f"UNDONE REFUSAL: a 409 not_enough_space for class {cls} answered before the kill "
                            f"(free blocks of the class {blocks}, largestFree {largest}), but the state after the "
                            f"restart with every region known this cycle has {free_blocks} free blocks of it "
                            f"and largestFree {largest_free(held)}")
    stats["read_checks"] = (len(reads), len(model.gone), len(model.refusals))

    for s in model.shares.values():
        if s["state"] == "open" and not s["holders"]:
            problems.append(f"internal: shared region {s['key']} is open with no holders")
    if problems:
        raise TestFailure("\n  ".join([f"cycle {cycle}: state after restart is wrong:"] + problems))

    # Shared regions whose references are not all known: drop them all (the
    # newest each time: a DELETE without an id, as before ids; the clients are
    # stopped, and each answer must still name the region).
    for s in cleanup:
        for _ in range(shared_refs[s["key"]]):
            status, resp, _ = request(port, "DELETE", f"/regions/{s['offset']}")
            if status != 200 or not isinstance(resp, dict) or resp.get("id") != s["id"]:
                raise TestFailure(f"cycle {cycle}: dropping a reference of {s['key']} answered {status} {resp}")
        if resp.get("refs") != 0:
            raise TestFailure(f"cycle {cycle}: dropping the {shared_refs[s['key']]} references of {s['key']} "
                              f"left refs {resp.get('refs')}")
        del model.shares[s["key"]]

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
    stats.update(joins_leaves=sum(shares_resolved), batches=tuple(batches_done),
                 shared=len(model.shares),
                 refs=sum(len(s["holders"]) for s in model.shares.values()),
                 leased=len([m for m in model.live.values() if m.get("lease")]))
    model.uncertain_allocs = []
    model.uncertain_releases = []
    model.uncertain_batches = []
    model.uncertain_teardowns = []
    stats["teardowns_checked"] = teardowns_checked
    model.cycle_start()
    return resolved, len(regions), used, stats


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
    names = ["allocs", "releases", "full", "replays", "shares", "joins", "leaves", "unshared", "conflicts",
             "leases", "renewals", "expired", "batches", "batch_items", "batches_failed", "teardowns", "torn",
             "stale", "reads", "gone"]
    totals = dict.fromkeys(names + ["uncertain", "expired_down", "expired_run", "partial_checked", "new_ids",
                                    "teardowns_checked", "reads_checked", "gone_checked", "refusals_checked"], 0)
    started = time.monotonic()
    server = None
    ok = False
    try:
        server = Server(binary, state_dir, log_path)
        for cycle in range(1, args.cycles + 1):
            counters = dict.fromkeys(names, 0)
            stop = threading.Event()
            clients = [Client(i, server.port, model, random.Random(rng.random()), stop, cycle, counters)
                       for i in range(CLIENTS)]
            clients += [Reader(i, server.port, model, random.Random(rng.random()), stop, counters)
                        for i in range(READERS)]
            for c in clients:
                c.start()
            run_for = rng.uniform(0.2, 1.5)
            # Its own generator: what the check draws depends on the state, which
            # depends on timing; the clients' seeds and the run lengths do not.
            check_rng = random.Random(rng.random())
            time.sleep(run_for)
            with model.lock:
                in_flight = sum(model.in_flight())
            stop.set()
            server.kill()  # kill -9, requests in flight
            kill_ms = now_ms()   # nothing in flight happened after this
            for c in clients:
                c.join(15)
                if c.is_alive():
                    raise TestFailure(f"cycle {cycle}: {c.name} still hangs 15 s after the kill")
            if model.errors:
                raise TestFailure(f"cycle {cycle}: wrong answers before the kill:\n  " + "\n  ".join(model.errors))
            kinds = model.in_flight()
            uncertain = sum(kinds)
            server = Server(binary, state_dir, log_path)
            (a_done, a_not, r_done, r_not), live, used, st = check_state(server, model, cycle, check_rng, kill_ms)
            for k in counters:
                totals[k] += counters[k]
            totals["uncertain"] += uncertain
            totals["expired_down"] += st["expired_down"]
            totals["expired_run"] += st["expired_run"] + counters["expired"]
            totals["partial_checked"] += sum(st["batches"])
            totals["new_ids"] += st["new_ids"]
            totals["teardowns_checked"] += st["teardowns_checked"]
            for k, v in zip(["reads_checked", "gone_checked", "refusals_checked"], st["read_checks"]):
                totals[k] += v
            print(f"cycle {cycle:2}: ran {run_for:.2f}s, acked {counters['allocs']:4} allocs "
                  f"{counters['releases']:4} releases ({counters['full']} full, {counters['replays']} replays); "
                  f"in flight at kill {uncertain} (≈{in_flight} just before): allocs kept {a_done} / "
                  f"lost {a_not}, releases done {r_done} / not {r_not}; live {live} regions, "
                  f"{used // MIB} MiB", flush=True)
            print(f"          shared +{counters['shares']} -{counters['unshared']} ({counters['joins']} joins, "
                  f"{counters['leaves']} leaves, {counters['conflicts']} conflicts; {st['joins_leaves']} in flight; "
                  f"now {st['shared']} with {st['refs']} refs); leases {counters['leases']} ({counters['renewals']} "
                  f"renewals, {kinds[4]} in flight; expired {counters['expired'] + st['expired_run']} running / "
                  f"{st['expired_down']} in the {server.ready_ms - kill_ms:.0f} ms down, waited {st['waited']:.0f} "
                  f"ms; now {st['leased']}); batches {counters['batches']} ({counters['batch_items']} items) + "
                  f"{counters['batches_failed']} failing, {kinds[2]} in flight: {st['batches'][0]} there, "
                  f"{st['batches'][1]} not", flush=True)
            print(f"          teardowns {counters['teardowns']} ({counters['torn']} regions), {kinds[5]} in flight "
                  f"({st['teardowns_checked']} checked); stale ids {counters['stale']}; checked "
                  f"{st['read_checks'][0]} regions read, {st['read_checks'][1]} 404s, {st['read_checks'][2]} 409s; "
                  f"{st['new_ids']} new ids after restart", flush=True)
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
          f"{totals['releases']} acknowledged releases, {totals['replays']} replays, {totals['full']} full; "
          f"{totals['shares']} shared regions, {totals['joins']} joins, {totals['leaves']} leaves "
          f"({totals['unshared']} last), {totals['conflicts']} share conflicts; {totals['leases']} leases, "
          f"{totals['renewals']} renewals, {totals['expired_run']} expired running, {totals['expired_down']} "
          f"while down; {totals['batches']} batches ({totals['batch_items']} items), {totals['batches_failed']} "
          f"failing ones, {totals['partial_checked']} in flight checked whole-or-nothing; {totals['teardowns']} "
          f"teardowns ({totals['torn']} regions), {totals['teardowns_checked']} in flight checked whole-or-nothing; "
          f"{totals['stale']} stale-id 404s; {totals['uncertain']} in flight at a kill; {len(model.seen_ids)} ids, "
          f"none reused ({totals['new_ids']} found after a restart); answered before a kill and checked after it: "
          f"{totals['reads_checked']} regions read, {totals['gone_checked']} 404s, {totals['refusals_checked']} "
          f"409s; no acknowledged change lost, no phantom change, no answered read undone (seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
