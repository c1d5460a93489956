"""``python -m lossproofs.ledger [--update README.md]``: print the divergence table, or rewrite it
in place between the ``<!-- ledger:start -->`` and ``<!-- ledger:end -->`` markers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lossproofs.ledger import markdown_table

START, END = "<!-- ledger:start -->", "<!-- ledger:end -->"


def update(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{path}: no {START} … {END} markers to write the table between")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{markdown_table()}{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lossproofs.ledger", description=__doc__)
    parser.add_argument("--update", type=Path, metavar="FILE",
                        help="rewrite the table in FILE between the ledger markers")
    args = parser.parse_args(argv)
    if args.update:
        update(args.update)
    else:
        sys.stdout.write(markdown_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
