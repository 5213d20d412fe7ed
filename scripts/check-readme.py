#!/usr/bin/env python3
"""Runs every `sh` block of README.md marked `<!-- checked -->` and compares
what each command prints with the `# ` lines written under it.

A checked block is pasted as a block by a reader: it starts what it needs,
waits for it, and stops what it started. Here each block runs in one bash
process, in a fresh temporary directory, with the directory of the given
regiond binary first on PATH. The `# ` lines right under a command are its
expected output, line by line; in them `...` matches anything and an RFC
3339 time matches any time. After a blank line, `# ` lines are prose. A
command with no output lines may print anything; a comment on the
command's own line is only a comment.

    scripts/check-readme.py --binary .build/debug/regiond [README.md]

Exit status 0 when every block prints what the README says, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

MARKER = "<!-- checked -->"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def checked_blocks(readme: str) -> list[tuple[int, list[str]]]:
    """(line number, lines) of every ```sh block right after the marker."""
    blocks, lines, index = [], readme.splitlines(), 0
    while index < len(lines):
        if lines[index].strip() == MARKER and index + 1 < len(lines) and lines[index + 1].startswith("```sh"):
            start = index + 2
            end = start
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            blocks.append((start + 1, lines[start:end]))
            index = end
        index += 1
    return blocks


def pattern(expected: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\.\.\.)", expected):
        if piece == "...":
            parts.append(".*")
        else:
            parts.append(TIME.sub("\0", piece).replace("\0", "TIME"))
    text = "".join(re.escape(part) if part != ".*" else part for part in parts)
    return re.compile("^" + text.replace("TIME", TIME.pattern) + "$")


def parse(block: list[str]) -> list[tuple[str, list[str]]]:
    """Commands (continuation lines joined), each with the output written under it."""
    parsed: list[tuple[str, list[str]]] = []
    pending: list[str] = []
    # Output lines follow their command directly; after a blank line, `# `
    # lines are prose about the commands that follow.
    attached = False
    for line in block:
        if pending:
            pending.append(line)
            if not line.endswith("\\"):
                parsed.append(("\n".join(pending), []))
                pending = []
                attached = True
        elif line.startswith("# ") or line == "#":
            if parsed and attached:
                parsed[-1][1].append(line[2:])
        elif not line.strip():
            attached = False
        elif line.startswith("#"):
            continue
        elif line.endswith("\\"):
            pending = [line]
        else:
            parsed.append((line, []))
            attached = True
    return parsed


def run(block: list[str], binary: Path) -> tuple[int, int, list[str]]:
    """Runs a block; returns its command count, checked outputs and problems."""
    parsed = parse(block)
    script = ["set -u"]
    for index, (command, _) in enumerate(parsed):
        script.append(f"printf '\\n@@step {index}@@\\n'")
        script.append(command)
    script.append("printf '\\n@@end@@\\n'")
    env = dict(os.environ, PATH=f"{binary.parent}:{os.environ['PATH']}")
    with tempfile.TemporaryDirectory() as directory:
        done = subprocess.run(
            ["bash", "-c", "\n".join(script)], cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    outputs: dict[int, list[str]] = {}
    current = None
    for line in done.stdout.splitlines():
        found = re.fullmatch(r"@@step (\d+)@@", line)
        if found:
            current = int(found.group(1))
            outputs[current] = []
        elif line == "@@end@@":
            current = None
        elif current is not None and line:
            outputs[current].append(line)
    problems = []
    if "@@end@@" not in done.stdout:
        problems.append(f"the block did not run to its end; stderr:\n{done.stderr[-2000:]}")
    checked = 0
    for index, (command, want) in enumerate(parsed):
        if not want:
            continue
        checked += 1
        got = outputs.get(index, [])
        if len(got) != len(want) or not all(pattern(w).match(g) for w, g in zip(want, got)):
            problems.append(
                f"$ {command}\n  README says:\n    " + "\n    ".join(want) + "\n  it printed:\n    "
                + "\n    ".join(got or ["(nothing)"]))
    return len(parsed), checked, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", type=Path, required=True, help="the regiond to put first on PATH")
    parser.add_argument("readme", type=Path, nargs="?", default=Path(__file__).resolve().parent.parent / "README.md")
    options = parser.parse_args()
    binary = options.binary.resolve()
    if not os.access(binary, os.X_OK):
        print(f"check-readme: {binary} is not an executable", file=sys.stderr)
        return 2
    blocks = checked_blocks(options.readme.read_text(encoding="utf-8"))
    if not blocks:
        print("check-readme: no checked block in the README", file=sys.stderr)
        return 1
    failed = 0
    for line, block in blocks:
        count, checked, problems = run(block, binary)
        if problems:
            failed += 1
            print(f"FAIL README.md:{line}: {len(problems)} of {checked} outputs differ")
            for problem in problems:
                print(problem)
        else:
            print(f"ok   README.md:{line}: {count} commands, {checked} outputs as written")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
