"""``python -m lossproofs report``: the conformance matrix of one implementation under test.

Runs the suite's own checks (:mod:`lossproofs.checks`, the strategies of
:mod:`lossproofs.registry`, :mod:`lossproofs.special_cases`, :mod:`lossproofs.error_cases`,
the ledger :mod:`lossproofs.ledger`) against a target on a fixed, seeded sample of cases, and writes
a matrix function × parameter family × dtype with pass/fail counts, the worst forward and
gradient errors, the special values, the error cases and the known failures, as JSON and
Markdown, each carrying the environment (target, versions, device, git commit).

Errors are reported two ways, both against the float64 reference evaluated on the inputs as
rounded to the dtype (the oracle of the tests):

- ``ulps``: the largest error in units in the last place of the dtype at the result's scale,
  ``max(|expected|, scale)`` (scale as in the tolerance: Σ|ℓ_i| for reductions, the largest
  gradient element for coupled gradients; see :func:`lossproofs.checks.error_scale`), counted
  with :func:`lossproofs.oracle.ulp_distance`. Plain ulps of a result that cancelled to near
  zero would call a rounding-level error millions of ulps; this floor keeps the number honest.
- ``of bound``: the largest ``|actual − expected| / (atol·scale + rtol·|expected|)``, the
  fraction of the tolerance of :mod:`lossproofs.tolerances` used; a check passes when ≤ 1.

``python -m lossproofs report --teeth`` instead runs the suite against every deliberately
broken implementation of :mod:`lossproofs.broken` and writes which tests caught each bug.

This module is the command line; the run (drawing, running, aggregating) is
:mod:`lossproofs.conformance_run`, the JSON and Markdown :mod:`lossproofs.conformance_render`,
the teeth report :mod:`lossproofs.broken.report`.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from lossproofs.broken.report import run_teeth
from lossproofs.cases import DTYPES
from lossproofs.conformance_render import to_json, to_markdown
from lossproofs.conformance_run import DEFAULT_SEED, FULL_CASES, QUICK_CASES, build
from lossproofs.environment import default_output_dir, write_json, write_text
from lossproofs.helptext import TARGET_OPTION_HELP
from lossproofs.registry import FUNCTION_NAMES
from lossproofs.targets import get_target


def _parser(prog: str = "python -m lossproofs report") -> argparse.ArgumentParser:

    p = argparse.ArgumentParser(
        prog=prog,
        description="Conformance matrix (function × parameter family × dtype) of one "
                    "implementation under test, as JSON and Markdown.")
    p.add_argument("--target", default="torch",
                   help="the implementation under test; " + TARGET_OPTION_HELP)
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK_CASES} cases per function and dtype instead of {FULL_CASES}")
    p.add_argument("--cases", type=int, default=None,
                   help="cases per function and dtype (overrides --quick)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="hypothesis seed of the cases")
    p.add_argument("--functions", default=",".join(FUNCTION_NAMES),
                   help="comma-separated subset of " + ", ".join(FUNCTION_NAMES))
    p.add_argument("--dtypes", default=",".join(DTYPES),
                   help="comma-separated subset of " + ", ".join(DTYPES))
    p.add_argument("--out", default=None,
                   help="output directory (default results/conformance/<UTC time>-<device>)")
    p.add_argument("--overwrite", action="store_true", help="replace existing result files")
    p.add_argument("--teeth", action="store_true",
                   help="run the suite against every broken implementation of lossproofs.broken "
                        "instead (writes teeth.json and teeth.md)")
    return p


def _subset(parser, text: str, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    chosen = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in chosen if x not in allowed]
    if bad or not chosen:
        parser.error(f"--{name} {text!r}: expected a comma-separated subset of "
                     f"{', '.join(allowed)}")
    return chosen


def main(argv: list[str] | None = None, prog: str = "python -m lossproofs report") -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    functions = _subset(parser, args.functions, FUNCTION_NAMES, "functions")
    dtypes = _subset(parser, args.dtypes, DTYPES, "dtypes")
    n = args.cases if args.cases is not None else (QUICK_CASES if args.quick else FULL_CASES)
    if n < 1:
        parser.error(f"--cases {n}: must be at least 1")
    if args.teeth:
        out = Path(args.out) if args.out else default_output_dir("teeth", "cpu")
        return run_teeth(out, args.overwrite)
    try:
        impl = get_target(args.target)
    except (ValueError, RuntimeError, ImportError) as e:
        parser.error(f"--target {args.target}: {e}")
    out = Path(args.out) if args.out else default_output_dir("conformance", impl.device)
    json_path, md_path = out / "conformance.json", out / "conformance.md"
    for path in (json_path, md_path):  # refuse before spending minutes on the run
        if path.exists() and not args.overwrite:
            print(f"error: refusing to overwrite existing result {str(path)!r}: choose another "
                  "--out directory or pass --overwrite", file=sys.stderr)
            return 2
    with warnings.catch_warnings():
        # NumPy's invalid-value warnings from comparing NaN with NaN are expected here
        warnings.simplefilter("ignore", RuntimeWarning)
        report = build(impl, functions, dtypes, n, args.seed,
                       progress=lambda line: print(line, flush=True))
    payload = to_json(report, args.quick)
    write_json(json_path, payload, args.overwrite)
    write_text(md_path, to_markdown(payload, report), args.overwrite)
    print(f"{payload['verdict']}; wrote {json_path} and {md_path}")
    return 0 if payload["verdict"] == "conforms" else 1


if __name__ == "__main__":
    raise SystemExit(main())
