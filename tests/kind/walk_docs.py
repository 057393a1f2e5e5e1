#!/usr/bin/env python3
"""Walk the docs as a new user would: run, in order, every shell block the given Markdown files
mark with `<!-- walk -->`, in one bash session from the repository root, and fail when a block
fails or does not print what its marker expects.

    tests/kind/walk_docs.py docs/install.md docs/first-policy.md           # run them
    tests/kind/walk_docs.py --print docs/install.md docs/first-policy.md   # show the script

A marker sits on the line before a fenced ```sh block:

    <!-- walk -->                      run the block
    <!-- walk expect="TEXT" -->        run it, and fail unless its output contains TEXT

The blocks are the documentation's own text, so the docs cannot drift from what is tested: the
kind workflow (.github/workflows/kind-e2e.yml) runs this on a machine with Docker and kind, and
tests/chart/test_docs.py checks the extraction on every CI run. Background jobs a block starts
(`kubectl port-forward … &`) are killed when the walk ends.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MARKER = re.compile(r'^<!--\s*walk(?:\s+expect="(?P<expect>[^"]*)")?\s*-->\s*$')


@dataclass
class Block:
    source: str  # file:line of the fence
    code: str
    expect: str | None


def blocks(path: Path) -> list[Block]:
    """The marked blocks of one Markdown file, in order. A marker not followed by a ```sh fence
    is an error (a silently skipped step would make the walk pass without testing it)."""
    lines = path.read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if not m:
            i += 1
            continue
        fence = i + 1
        if fence >= len(lines) or lines[fence].strip() not in ("```sh", "```bash"):
            raise SystemExit(f"{path}:{i + 1}: a walk marker must be followed by a ```sh block")
        end = fence + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise SystemExit(f"{path}:{fence + 1}: unterminated code block")
        out.append(Block(f"{path}:{fence + 1}", "\n".join(lines[fence + 1 : end]), m.group("expect")))
        i = end + 1
    return out


def script(all_blocks: list[Block], logdir: str) -> str:
    """One bash script: strict mode, background jobs killed on exit, each block announced, run
    in the current shell (so variables and functions carry over, as in a user's terminal), and
    checked against its expectation."""
    parts = [
        "set -euo pipefail",
        # On any exit: stop background jobs; on failure, show the failing block's output.
        "trap 'rc=$?; jobs -p | xargs -r kill 2>/dev/null || true;"
        ' if [ "$rc" -ne 0 ] && [ -n "${WALK_LOG:-}" ]; then cat "$WALK_LOG"; fi\' EXIT',
        f"cd {shlex.quote(str(REPO))}",
    ]
    for n, b in enumerate(all_blocks, 1):
        parts.append(f"echo {shlex.quote(f'==> walk {n}/{len(all_blocks)}: {b.source}')} >&2")
        if b.expect is None:
            parts.append(f"set -x\n{b.code}\n{{ set +x; }} 2>/dev/null")
            continue
        # A brace group with a redirection runs in this shell (variables carry over) and, not
        # being part of an && / || list, still stops the walk at its first failing command.
        log = f"{logdir}/block-{n}.log"
        parts.append(
            f"WALK_LOG={log}\n"
            f"{{\nset -x\n{b.code}\n{{ set +x; }} 2>/dev/null\n}} > {log} 2>&1\n"
            f"WALK_LOG=\ncat {log}\n"
            f"grep -qF -- {shlex.quote(b.expect)} {log} || "
            f"{{ echo {shlex.quote(f'walk: {b.source} did not print {b.expect!r}')} >&2; exit 1; }}"
        )
    parts.append("echo '==> walk: every step worked' >&2")
    return "\n".join(parts) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--print", action="store_true", help="print the script instead of running it")
    ap.add_argument("docs", nargs="+", type=Path)
    args = ap.parse_args()
    all_blocks = [b for d in args.docs for b in blocks(d)]
    if not all_blocks:
        print("walk: no marked blocks", file=sys.stderr)
        return 2
    if args.print:
        print(script(all_blocks, "$WALK_LOGS"), end="")
        return 0
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gatehouse-walk-") as logs:
        return subprocess.run(["bash", "-c", script(all_blocks, shlex.quote(logs))]).returncode


if __name__ == "__main__":
    sys.exit(main())
