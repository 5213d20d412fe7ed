#!/usr/bin/env python3
"""Writes the seed corpus of RegionFuzz into Fuzz/corpus/, in the input
format of Sources/RegionFuzz/FuzzInput.swift. Run it again after changing
the format or the list; the output is committed."""
import hashlib
import pathlib

METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "TRACE",
           "CONNECT", "get", "", "GET ", "PROPFIND", "POST\0", "DELETE\ufffd", "BREW"]
HEADERS = ["Idempotency-Key", "Authorization", "Content-Length", "Content-Type", "idempotency-key"]
GOOD_AUTH = len(HEADERS)        # the known "Authorization: Bearer fuzz-token"
CUSTOM = len(HEADERS) + 1       # a header whose name follows in the input


def field(data):
    data = data.encode() if isinstance(data, str) else data
    if len(data) < 0xE0:
        return bytes([len(data)]) + data
    return b"\xff" + len(data).to_bytes(2, "little") + data


def request(method="GET", path="/regions", query=(), headers=(), body=b"", token=False):
    out = bytes([METHODS.index(method) << 1 | int(token)]) + field(path)
    out += bytes([len(query)]) + b"".join(field(k) + field(v) for k, v in query)
    out += bytes([len(headers)])
    for name, value in headers:
        if name is GOOD_AUTH:
            out += bytes([GOOD_AUTH])
        elif name in HEADERS:
            out += bytes([HEADERS.index(name)]) + field(value)
        else:
            out += bytes([CUSTOM]) + field(name) + field(value)
    return out + (body.encode() if isinstance(body, str) else body)


def post(body, **kw):
    return request("POST", "/regions", body=body, **kw)


SEEDS = [
    # ordinary traffic
    post('{"size": 1048576}'),
    post('{"size": 4096, "label": "db"}', headers=[("Idempotency-Key", "k1")]),
    post('{"size": 4096, "label": "db"}', headers=[("Idempotency-Key", "k1")]),
    post('{"size": 9000000, "label": "db"}', headers=[("Idempotency-Key", "k1")]),
    post('{"size": 4294967296}'),
    request("GET", "/regions", query=[("label", "db")]),
    request("GET", "/pool"),
    request("GET", "/regions/0"),
    request("DELETE", "/regions/0"),
    request("DELETE", "/regions/1048576"),
    request("GET", "/metrics"),
    request("GET", "/readyz", token=True),
    request("GET", "/pool", token=True),
    request("GET", "/pool", headers=[(GOOD_AUTH, None)], token=True),
    request("GET", "/pool", headers=[("Authorization", "Bearer fuzz-tokeN")], token=True),
    request("GET", "/pool", headers=[("Authorization", "Bearer fuzz-token\0")], token=True),
    request("GET", "/pool", headers=[("authorization", "Bearer fuzz-token")], token=True),
    post('{"size": 1}', headers=[(GOOD_AUTH, None), ("Authorization", "wrong")], token=True),
    # bad JSON and numbers
    post(""), post("{"), post("[]"), post("null"), post('{"size": "1"}'), post('{"size": null}'),
    post('{"size": 1e400}'), post('{"size": 18446744073709551616}'), post('{"size": 18446744073709551615}'),
    post('{"size": -0}'), post('{"size": 1.0}'), post('{"size": -1}'), post('{"size": 0}'),
    post('{"size": 1, "size": 2}'), post('{"size": 1, "label": 5}'), post('{"size": 1, "label": "' + "x" * 257 + '"}'),
    post('{"size": 1, "label": "' + "\u00e9" * 129 + '"}'), post('{"size": 1, "label": "\\ud800"}'),
    post('{"size": 1}garbage'), post(' \t\n{"size":1}\n'),
    # odd encodings
    post(b'\xfe\xff\x00{\x00"\x00s\x00i\x00z\x00e\x00"\x00:\x001\x00}'),
    post(b'\xef\xbb\xbf{"size": 1}'), post(b'{"size": 1, "label": "\xff\xfe"}'),
    post(b'{"size": 1, "label": "a\x00b"}'), post(b'\x00\x00\x00\x00'),
    request("GET", b"/regions/\xff"), request("GET", b"/pool\x00"),
    post('{"size": 1}', headers=[("Idempotency-Key", "")]),
    post('{"size": 1}', headers=[("Idempotency-Key", "a b")]),
    post('{"size": 1}', headers=[("Idempotency-Key", "\u00e9")]),
    post('{"size": 1}', headers=[("Idempotency-Key", "k" * 256)]),
    post('{"size": 1}', headers=[("Content-Length", "-1")]),
    post('{"size": 1}', headers=[("Content-Length", "99999999999999999999")]),
    post('{"size": 1}', headers=[("Content-Type", "text/plain")]),
    post('{"size": 1}', headers=[("", ""), ("X\0", "\r\n")]),
    # path tricks
    *[request(m, p) for m in ["GET", "DELETE"] for p in [
        "/regions/../pool", "//regions", "/regions/%2e", "/regions/0/", "/REGIONS", "/regions/00000000000000000000001",
        "/regions/18446744073709551616", "/regions/+1", "/regions/ 1", "/regions/1e3", "/regions/0x10",
        "/regions/\u0661", "regions", "", "/", "/regions?x=1", "/regions/" + "9" * 3000, "/" + "a/" * 2000]],
    *[request(m) for m in METHODS],
    # deep nesting
    post("[" * 10000 + "]" * 10000), post('{"size": 1, "label": ' + "[" * 5000 + "]" * 5000 + "}"),
    post('{"a":' * 3000 + "1" + "}" * 3000),
    # a NUL in the path or a query value must not cut it short
    request("DELETE", "/regions/0\0"), request("GET", "/regions/1048576\0junk"),
    request("GET", "/regions", query=[("label", "a\0b")]),
    # shares, leases, renewals and batches
    post('{"size": 5000000, "share": "layer"}'), post('{"size": 16777216, "share": "layer"}'),
    post('{"size": 1, "share": "layer"}'), post('{"size": 1048576, "ttl": 60}'), post('{"size": 1, "ttl": 0}'),
    request("POST", "/regions/0/renew", body='{"ttl": 5}'), request("POST", "/regions/0/renew"),
    request("POST", "/regions/batch", body='{"regions": [{"size": 1}, {"size": 4194304, "share": "s"}]}'),
    request("POST", "/regions/batch", body='{"regions": [{"size": 1}, {"size": 8589934592}]}'),
    request("POST", "/regions/batch", body='{"regions": []}'),
    # two different Content-Length values, and a list of them
    post('{"size":1048576}', headers=[("Content-Length", "16"), ("Content-Length", "17")]),
    post('{"size":1048576}', headers=[("Content-Length", "16, 17")]),
]


def main():
    corpus = pathlib.Path(__file__).resolve().parent / "corpus"
    corpus.mkdir(exist_ok=True)
    for old in corpus.iterdir():
        old.unlink()
    for seed in SEEDS:
        (corpus / hashlib.sha1(seed).hexdigest()[:16]).write_bytes(seed)
    print(f"{len(SEEDS)} seeds in {corpus}")


if __name__ == "__main__":
    main()
