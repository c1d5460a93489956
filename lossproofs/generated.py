"""Generated sections of hand-written files: the text between two HTML-comment markers is
rewritten by a command (README's ledger table, docs/frameworks.md's tables) and checked by a
test, so the rest of the file stays prose a person edits."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def replace_between(path: Path, start: str, end: str, body: str) -> None:
    """Rewrite ``path`` with ``body`` between the ``start`` and ``end`` markers (kept); exit
    with a message naming the file and markers when either is missing."""
    text = path.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise SystemExit(f"{path}: no {start} … {end} markers to write between")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body}{end}{tail}", encoding="utf-8")


def section_command(argv: list[str] | None, prog: str, description: str, start: str, end: str,
                    render: Callable[[], str]) -> int:
    """``prog [--update FILE]``: print the generated section, or rewrite it in FILE between
    ``start`` and ``end``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--update", type=Path, metavar="FILE",
                        help=f"rewrite FILE between the {start} … {end} markers")
    args = parser.parse_args(argv)
    if args.update:
        replace_between(args.update, start, end, render())
    else:
        sys.stdout.write(render())
    return 0
