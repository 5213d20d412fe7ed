#!/usr/bin/env python3
"""Checks openapi.yaml against itself and against the server's route table.

1. Validates the spec with openapi_spec_validator (OpenAPI 3.1).
2. Validates every `example` / `examples` in it against the schema it sits
   next to (openapi_spec_validator does not do that).
3. Compares the spec's (METHOD, path template) pairs with a route list,
   one `METHOD /path/{param}` per line (blank lines and `#` comments are
   ignored), read from --routes FILE or from stdin. The server prints that
   list with `regiond --print-routes`:

       regiond --print-routes | .build/venv/bin/python scripts/check-openapi.py

   Use --no-routes to skip the comparison.

Exit status 0 when everything matches, 1 otherwise (2 for usage errors).
Run it with .build/venv/bin/python (openapi-spec-validator, PyYAML).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import quote

import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ROUTE_LINE = re.compile(r"^([A-Z]+)\s+(/\S*)$")


def load_spec(path: Path) -> dict:
    try:
        with path.open(encoding="utf-8") as f:
            spec = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise SystemExit(f"check-openapi: cannot read {path}: {e}")
    if not isinstance(spec, dict):
        raise SystemExit(f"check-openapi: {path} is not a YAML mapping")
    return spec


def validate_spec(spec: dict) -> list[str]:
    problems = []
    for err in OpenAPIV31SpecValidator(spec).iter_errors():
        where = "/".join(str(p) for p in err.path) or "(root)"
        problems.append(f"{where}: {err.message}")
    return problems


def pointer(parts: list[str], uri: bool = True) -> str:
    """A JSON pointer as a URI fragment: ~ and / escaped, then percent-encoded."""
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "#/" + "/".join(quote(p, safe="~") if uri else p for p in escaped)


def check_links(spec: dict) -> list[str]:
    """operationIds are unique; every link names an existing operation and its parameters."""
    problems = []

    def names(params) -> set[str]:
        out = set()
        for prm in params or []:
            if isinstance(prm, dict) and "$ref" in prm:
                prm = resolve(spec, prm["$ref"])
            if isinstance(prm, dict):
                out.add(prm.get("name"))
        return out

    ops: dict[str, set[str]] = {}
    for path, item in (spec.get("paths") or {}).items():
        for method in HTTP_METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            oid = op.get("operationId")
            if oid is None:
                problems.append(f"{method.upper()} {path}: no operationId")
            elif oid in ops:
                problems.append(f"operationId {oid} used twice")
            else:
                ops[oid] = names(item.get("parameters")) | names(op.get("parameters"))

    def links_in(node, parts):
        if isinstance(node, dict):
            if parts and parts[-1] == "links":
                for name, link in node.items():
                    if isinstance(link, dict) and "$ref" in link:
                        link = resolve(spec, link["$ref"])
                    yield pointer(parts + [name], uri=False), link
            for k, v in node.items():
                yield from links_in(v, parts + [str(k)])

    for where, link in links_in(spec, []):
        oid = link.get("operationId")
        if oid is None:
            continue  # operationRef links are not used here
        if oid not in ops:
            problems.append(f"{where}: operationId {oid} does not exist")
            continue
        for prm in link.get("parameters", {}):
            if prm.split(".")[-1] not in ops[oid]:
                problems.append(f"{where}: {oid} has no parameter {prm}")
    return problems


def resolve(spec: dict, ref: str) -> dict:
    node = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def validate_examples(spec: dict) -> tuple[int, list[str]]:
    """Checks each example against its sibling schema. Returns (count, problems)."""
    problems: list[str] = []
    count = 0

    def check(value, schema_parts: list[str], where: str) -> None:
        nonlocal count
        count += 1
        # The whole spec is the root resource, so `#/components/...` refs resolve;
        # its other OpenAPI keys are unknown keywords, which JSON Schema ignores.
        root = dict(spec)
        root["$ref"] = pointer(schema_parts)
        for err in Draft202012Validator(root).iter_errors(value):
            at = "/".join(str(p) for p in err.absolute_path) or "(value)"
            problems.append(f"example {where} at {at}: {err.message}")

    def walk(node, parts: list[str]) -> None:
        if isinstance(node, dict):
            where = pointer(parts, uri=False)
            in_schemas = parts[:2] == ["components", "schemas"] and len(parts) == 3
            if "schema" in node and isinstance(node["schema"], dict):
                if "example" in node:
                    check(node["example"], parts + ["schema"], where)
                for name, ex in (node.get("examples") or {}).items():
                    if isinstance(ex, dict) and "value" in ex:
                        check(ex["value"], parts + ["schema"], f"{where}/examples/{name}")
            elif in_schemas and "example" in node:
                check(node["example"], parts, where)
            for key, child in node.items():
                walk(child, parts + [str(key)])
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, parts + [str(i)])

    walk(spec, [])
    return count, problems


def spec_routes(spec: dict) -> set[tuple[str, str]]:
    routes = set()
    for path, item in (spec.get("paths") or {}).items():
        for method in HTTP_METHODS:
            if isinstance(item, dict) and method in item:
                routes.add((method.upper(), path))
    return routes


def parse_routes(text: str, source: str) -> tuple[set[tuple[str, str]], list[str]]:
    routes, problems = set(), []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = ROUTE_LINE.match(line)
        if not m or m.group(1).lower() not in HTTP_METHODS:
            problems.append(f"{source}:{n}: not `METHOD /path`: {raw!r}")
            continue
        routes.add((m.group(1), m.group(2)))
    return routes, problems


def shape(path: str) -> str:
    """The path with parameter names erased, to explain near misses."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", type=Path, default=root / "openapi.yaml",
                    help="the spec (default: openapi.yaml at the repo top)")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--routes", metavar="FILE",
                       help="route list, one `METHOD /path/{param}` per line; - for stdin (the default)")
    group.add_argument("--no-routes", action="store_true",
                       help="only validate the spec and its examples")
    args = ap.parse_args()

    failed = False
    spec = load_spec(args.spec)

    problems = validate_spec(spec)
    if problems:
        failed = True
        print(f"FAIL {args.spec}: not a valid OpenAPI 3.1 document:")
        for p in problems:
            print(f"  {p}")
    else:
        print(f"ok   {args.spec}: valid OpenAPI {spec.get('openapi')}")

    problems = check_links(spec)
    if problems:
        failed = True
        print("FAIL operations and links:")
        for p in problems:
            print(f"  {p}")
    else:
        print("ok   operationIds unique, links name existing operations and parameters")

    count, problems = validate_examples(spec)
    if problems:
        failed = True
        print(f"FAIL {len(problems)} example problem(s):")
        for p in problems:
            print(f"  {p}")
    else:
        print(f"ok   {count} examples match their schemas")

    if not args.no_routes:
        if args.routes in (None, "-"):
            if args.routes is None and sys.stdin.isatty():
                print("check-openapi: give the route list on stdin or with --routes FILE "
                      "(or --no-routes)", file=sys.stderr)
                return 2
            text, source = sys.stdin.read(), "<stdin>"
        else:
            try:
                text, source = Path(args.routes).read_text(encoding="utf-8"), args.routes
            except OSError as e:
                print(f"check-openapi: cannot read {args.routes}: {e}", file=sys.stderr)
                return 2
        served, problems = parse_routes(text, source)
        if problems:
            failed = True
            print(f"FAIL {source}: unreadable lines:")
            for p in problems:
                print(f"  {p}")
        documented = spec_routes(spec)
        if not served and not problems:
            failed = True
            print(f"FAIL {source}: no routes at all")
        only_spec = sorted(documented - served, key=lambda r: (r[1], r[0]))
        only_server = sorted(served - documented, key=lambda r: (r[1], r[0]))
        if only_spec:
            failed = True
            print(f"FAIL in the spec but not served ({len(only_spec)}):")
            for m, p in only_spec:
                print(f"  {m} {p}")
        if only_server:
            failed = True
            print(f"FAIL served but not in the spec ({len(only_server)}):")
            for m, p in only_server:
                print(f"  {m} {p}")
        for m, p in only_spec:
            for m2, p2 in only_server:
                if m == m2 and p != p2 and shape(p) == shape(p2):
                    print(f"  note: {m} {p} (spec) and {p2} (server) differ only in parameter names")
        if not (only_spec or only_server) and served:
            print(f"ok   {len(documented)} routes: the spec and {source} agree")

    print("check-openapi: FAILED" if failed else "check-openapi: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
