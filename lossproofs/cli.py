"""The ``lossproofs`` command (also ``python -m lossproofs``): one entry point, one subcommand
per job, each with ``--help``.

- ``test [--target T] [pytest args]``: the conformance suite (packaged in
  :mod:`lossproofs.suite`, teeth included) against an implementation; exits with pytest's status.
- ``report``: the conformance matrix (:mod:`lossproofs.conformance`).
- ``accuracy``: ULP accuracy against the exact oracle (:mod:`lossproofs.accuracy`).
- ``evidence``: what the properties drew, per function × dtype × parameter family
  (:mod:`lossproofs.evidence`).
- ``accuracy-linear``: ULPs of each ``acc_policy`` of ``F.linear_cross_entropy``
  (:mod:`lossproofs.accuracy.linear`).
- ``bench {cross-entropy,training,linear-cross-entropy}``: the benchmark scripts
  (``benchmarks.*``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from lossproofs.helptext import (
    BUILTIN_TARGET_HELP,
    DECLARATION_HELP,
    PROFILE_HELP,
    TARGET_FORM_HELP,
    _listing,
)
from lossproofs.packaged import pytest_args

# name -> (module whose main(argv, prog=...) runs it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "report": ("lossproofs.conformance", "conformance matrix for one implementation under test"),
    "accuracy": ("lossproofs.accuracy", "ULP accuracy against the exact mpmath oracle"),
    "evidence": ("lossproofs.evidence", "what the properties drew: cases, non-trivial, set aside"),
    "accuracy-linear": ("lossproofs.accuracy.linear",
                        "ULPs of each acc_policy of F.linear_cross_entropy against the oracle"),
}
BENCHMARKS: dict[str, tuple[str, str]] = {
    "cross-entropy": ("benchmarks.cross_entropy",
                      "fused CrossEntropyLoss vs LogSoftmax + NLLLoss and other formulations"),
    "training": ("benchmarks.training_equivalence",
                 "the tutorial's MLP trained with each formulation, step by step"),
    "linear-cross-entropy": ("benchmarks.linear_cross_entropy",
                             "F.linear_cross_entropy (LM head + loss) against the unfused form"),
}

TEST_HELP = f"""\
usage: lossproofs test [--target T] [--json PATH] [pytest arguments ...]

Run the conformance suite against an implementation and exit with pytest's status (the
checks of the suite itself, such as the teeth, run with the default target only).

  lossproofs test                                   # torch.nn.functional on the CPU
  lossproofs test --target module:my_pkg.my_losses  # your own kernels
  lossproofs test --target nn -k cross_entropy -x   # any pytest arguments pass through
  lossproofs test -n auto                           # in parallel (pytest-xdist)

Options:
  --target T     the implementation under test (default torch, or LOSSPROOFS_TARGET); below
  --json PATH    also write the closing summary (function × property → pass / fail / not
                 provided / not run) as JSON, with the environment (--json-overwrite to
                 replace an existing file)
  anything else  goes to pytest (-k, -x, -n auto, --hypothesis-seed, ...)

A module declares what it does not provide, per function, in NOT_PROVIDED (and CONVENTIONS):
  NOT_PROVIDED = {{"cross_entropy": {{"label_smoothing": "why", "reduction:none": "why"}}}}
Those cases are never drawn for it. The families each function can be declared without:
{_listing(DECLARATION_HELP)}

The run ends with the verdict, function × property. After the first failure of a function ×
property × dtype the cell's other tests are not run (LOSSPROOFS_EVERY_FAILURE=1 runs them),
and a failure is shrunk for at most LOSSPROOFS_SHRINK_SECONDS (default 2) seconds.

Targets (see the README's "Testing your own implementation"):
{_listing(BUILTIN_TARGET_HELP)}
{_listing(TARGET_FORM_HELP)}

Hypothesis profiles (LOSSPROOFS_PROFILE=NAME; CI=true selects ci):
{_listing(PROFILE_HELP)}
"""

def run_suite(argv: list[str]) -> int:
    """``lossproofs test``: pytest on the packaged suite, with the caller's arguments after ours."""
    if argv and argv[0] in {"-h", "--help"}:
        print(TEST_HELP)
        return 0
    import pytest

    return int(pytest.main(pytest_args(*argv)))


def _run_module(module: str, argv: list[str], prog: str) -> int:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        print(f"lossproofs: {module} is not available here ({e})", file=sys.stderr)
        return 2
    return int(mod.main(argv, prog=prog) or 0)


def _parser(prog: str = "lossproofs") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Evidence that loss functions are what they claim to be.",
        epilog=f"Each command has --help; {prog} test --help lists the targets (--target) and "
               "the hypothesis profiles.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("test", help="run the conformance suite against an implementation",
                   add_help=False)
    for name, (_, text) in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    bench = sub.add_parser("bench", help="run a benchmark script")
    bench_sub = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for name, (_, text) in BENCHMARKS.items():
        bench_sub.add_parser(name, help=text, add_help=False)
    return parser


def _program() -> str:
    """How the command was invoked, for usage lines: ``python -m lossproofs`` or
    ``lossproofs``."""
    return ("python -m lossproofs" if os.path.basename(sys.argv[0]) == "__main__.py"
            else "lossproofs")


def main(argv: list[str] | None = None) -> int:
    prog = _program() if argv is None else "lossproofs"
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(prog)
    if not argv or argv[0] in {"-h", "--help"}:
        parser.print_help()
        return 0
    command, rest = argv[0], argv[1:]
    if command == "test":
        return run_suite(rest)
    if command in COMMANDS:
        return _run_module(COMMANDS[command][0], rest, f"{prog} {command}")
    if command == "bench":
        if not rest or rest[0] in {"-h", "--help"} or rest[0] not in BENCHMARKS:
            parser.parse_args(["bench", "--help"] if not rest or rest[0] in {"-h", "--help"}
                              else ["bench", *rest[:1]])
            return 2
        return _run_module(BENCHMARKS[rest[0]][0], rest[1:], f"{prog} bench {rest[0]}")
    parser.parse_args(argv[:1])  # exits with argparse's "invalid choice" message
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
