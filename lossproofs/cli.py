"""The ``lossproofs`` command (also ``python -m lossproofs``): one entry point, one subcommand
per job, each with ``--help``.

- ``test [--target T] [pytest args]``: the conformance suite (packaged in
  :mod:`lossproofs.suite`, teeth included) against an implementation; exits with pytest's status.
- ``report``: the conformance matrix (:mod:`lossproofs.conformance`).
- ``accuracy``: ULP accuracy against the exact oracle (:mod:`lossproofs.accuracy`).
- ``evidence``: what the properties drew, per function × dtype × parameter family
  (:mod:`lossproofs.evidence`).
- ``accuracy-linear``: ULPs of each ``acc_policy`` of ``F.linear_cross_entropy``
  (:mod:`lossproofs.accuracy_linear`).
- ``bench {cross-entropy,training,linear-cross-entropy}``: the benchmark scripts
  (``benchmarks.*``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module whose main(argv) runs it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "report": ("lossproofs.conformance", "conformance matrix for one implementation under test"),
    "accuracy": ("lossproofs.accuracy", "ULP accuracy against the exact mpmath oracle"),
    "evidence": ("lossproofs.evidence", "what the properties drew: cases, non-trivial, set aside"),
    "accuracy-linear": ("lossproofs.accuracy_linear",
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
TEST_HELP = """\
Run the conformance suite against an implementation and exit with pytest's status.

  lossproofs test                                   # torch.nn.functional on the CPU
  lossproofs test --target module:my_pkg.my_losses  # your own kernels
  lossproofs test --target nn -k cross_entropy -x   # any pytest arguments pass through

Targets: torch (default), nn, compile, cuda, or module:package.module (see the README's
"Testing your own implementation"). The hypothesis profile comes from LOSSPROOFS_PROFILE
(dev, ci, thorough); CI=true selects ci.
"""


def run_suite(argv: list[str]) -> int:
    """``lossproofs test``: pytest on the packaged suite, with the caller's arguments after ours."""
    if argv and argv[0] in {"-h", "--help"}:
        print(TEST_HELP)
        return 0
    import pytest

    from lossproofs.suite import pytest_args

    return int(pytest.main(pytest_args(*argv)))


def _run_module(module: str, argv: list[str]) -> int:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        print(f"lossproofs: {module} is not available here ({e})", file=sys.stderr)
        return 2
    return int(mod.main(argv) or 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lossproofs", description="Evidence that loss functions are what they claim to be.")
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not argv or argv[0] in {"-h", "--help"}:
        parser.print_help()
        return 0
    command, rest = argv[0], argv[1:]
    if command == "test":
        return run_suite(rest)
    if command in COMMANDS:
        return _run_module(COMMANDS[command][0], rest)
    if command == "bench":
        if not rest or rest[0] in {"-h", "--help"} or rest[0] not in BENCHMARKS:
            parser.parse_args(["bench", "--help"] if not rest or rest[0] in {"-h", "--help"}
                              else ["bench", *rest[:1]])
            return 2
        return _run_module(BENCHMARKS[rest[0]][0], rest[1:])
    parser.parse_args(argv[:1])  # exits with argparse's "invalid choice" message
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
