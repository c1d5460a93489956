"""``python -m lossproofs.ledger [--update README.md]``: print the divergence table, or rewrite it
in place between the ``<!-- ledger:start -->`` and ``<!-- ledger:end -->`` markers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lossproofs.generated import replace_between
from lossproofs.ledger import markdown_table

START, END = "<!-- ledger:start -->", "<!-- ledger:end -->"


def update(path: Path) -> None:
    replace_between(path, START, END, markdown_table())


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
