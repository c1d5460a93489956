"""``python -m lossproofs <command>``: the project's report commands.

- ``accuracy``: ULP accuracy against the exact mpmath oracle (:mod:`lossproofs.accuracy`).
- ``report``: the conformance matrix for one implementation (:mod:`lossproofs.conformance`).
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "accuracy": ("lossproofs.accuracy", "ULP accuracy of each implementation vs the exact oracle"),
    "report": ("lossproofs.conformance", "conformance matrix for one implementation under test"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        print("usage: python -m lossproofs {" + ",".join(COMMANDS) + "} [options]\n")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:10s} {text}")
        if argv and argv[0] not in {"-h", "--help"}:
            print(f"\nerror: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
