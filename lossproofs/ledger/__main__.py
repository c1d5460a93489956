"""``python -m lossproofs.ledger [--update README.md]``: print the divergence table, or rewrite it
in place between the ``<!-- ledger:start -->`` and ``<!-- ledger:end -->`` markers."""

from __future__ import annotations

from lossproofs.generated import section_command
from lossproofs.ledger import markdown_table

START, END = "<!-- ledger:start -->", "<!-- ledger:end -->"


def main(argv: list[str] | None = None) -> int:
    return section_command(argv, "python -m lossproofs.ledger", __doc__, START, END,
                           markdown_table)


if __name__ == "__main__":
    raise SystemExit(main())
