"""``python -m lossproofs report``: the conformance matrix of one implementation under test.

Runs the suite's own checks (:mod:`lossproofs.checks`, the strategies of
:mod:`lossproofs.specs`, :mod:`lossproofs.special_cases`, :mod:`lossproofs.error_cases`,
:mod:`lossproofs.known_issues`) against a target on a fixed, seeded sample of cases, and writes
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
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from lossproofs import checks
from lossproofs.cases import DTYPES, Case
from lossproofs.environment import (
    default_output_dir,
    environment,
    environment_markdown,
    write_json,
    write_text,
)
from lossproofs.error_cases import ERROR_CASES, SILENTLY_ACCEPTED
from lossproofs.known_issues import KNOWN_ISSUES, TORCH_TARGETS, known_issue
from lossproofs.oracle import ulp_distance
from lossproofs.special_cases import DIVERGENCES, SPECIAL_CASES
from lossproofs.specs import FUNCTION_NAMES, SPECS
from lossproofs.targets import Target, get_target
from lossproofs.tolerances import tolerance

# Parameter families, in the order the matrix lists them; a case belongs to every family among
# its Case.tags, and to "all".
FAMILIES = ("all", "reduction", "weight", "ignore_index", "label_smoothing",
            "probability target", "k-dim", "unbatched", "non-contiguous", "empty",
            "single class", "uint8 target", "pos_weight", "clamp", "0-d")
QUICK_CASES = 12
FULL_CASES = 300
DEFAULT_SEED = 20240601


# -- drawing cases ----------------------------------------------------------------------------
def sample_cases(function: str, dtype: str, n: int, seed: int) -> list[Case]:
    """``n`` cases of ``function`` in ``dtype`` drawn from the suite's strategy with a fixed
    hypothesis seed (so a report can be regenerated); generation only, no shrinking."""
    drawn: list[Case] = []
    strategy = SPECS[function].cases(dtype)

    @hypothesis_seed(seed)
    @settings(max_examples=n, database=None, deadline=None, derandomize=False,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def collect(data):
        drawn.append(data.draw(strategy))

    collect()
    return drawn


# -- measuring one comparison -----------------------------------------------------------------
@dataclass
class Measure:
    """One comparison: ``ok`` under the suite's bound, worst ulps, worst fraction of bound."""

    ok: bool
    ulps: float
    of_bound: float
    message: str = ""


def measure(actual: np.ndarray, expected: np.ndarray, dtype: str, kind: str,
            scale: float, what: str) -> Measure:
    comparison = checks.compare(actual, expected, dtype, kind, scale)
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return Measure(False, np.inf, np.inf, comparison.bound)
    finite = np.isfinite(expected)
    a, e = actual[finite], expected[finite]
    with np.errstate(invalid="ignore"):
        # distance |a − e| counted on the dtype's grid at magnitude max(|e|, scale)
        floor = np.maximum(np.abs(e), scale)
        ulps = ulp_distance(floor + np.abs(a - e), floor, dtype)
    ulps = np.where(np.isfinite(a) | np.isnan(ulps), ulps, np.inf)
    ulps = np.where(np.isnan(ulps), np.inf, ulps)
    tol = tolerance(dtype, kind)
    with np.errstate(invalid="ignore", over="ignore"):
        # fraction of the allowed error |a − e| ≤ atol·scale + rtol·|e| that is used
        used = np.abs(actual[finite] - expected[finite]) / (
            tol.atol * scale + tol.rtol * np.abs(expected[finite]))
    used = np.where(np.isnan(used), np.inf, used)
    message = "" if comparison.ok else comparison.message(what, actual, expected)
    return Measure(comparison.ok, float(np.max(ulps, initial=0.0)),
                   float(np.max(used, initial=0.0)), message)


@dataclass
class CaseOutcome:
    """Forward and gradient outcome of one case: status is pass, fail, error or known."""

    case: Case
    forward: str
    gradient: str
    forward_measure: Measure | None = None
    gradient_measure: Measure | None = None
    detail: str = ""


def run_case(impl: Target, case: Case, seed: int) -> CaseOutcome:
    spec = SPECS[case.function]
    outcome = CaseOutcome(case, "pass", "pass")
    for direction in ("forward", "gradient"):
        issue = known_issue(impl.name, case, direction)
        try:
            if direction == "forward":
                actual, expected, scale = checks.forward(impl, case)
                m = measure(actual, expected, case.dtype, "forward", scale,
                            f"{case.function} forward")
                outcome.forward_measure = m
            else:
                wrt_target = spec.differentiable_target and case.arrays[1].dtype.kind == "f" \
                    if len(case.arrays) > 1 else False
                m = None
                for name, actual, expected in checks.gradients(impl, case, seed, wrt_target):
                    g = measure(actual, expected, case.dtype, "gradient",
                                checks.gradient_scale(case.function, expected),
                                f"{case.function} {name}")
                    if m is None or (m.ok and not g.ok) or g.of_bound > m.of_bound:
                        m = Measure(m.ok and g.ok if m else g.ok, max(g.ulps, m.ulps if m else 0),
                                    max(g.of_bound, m.of_bound if m else 0),
                                    g.message or (m.message if m else ""))
                outcome.gradient_measure = m
            status = "pass" if m is None or m.ok else "fail"
            detail = "" if m is None else m.message
        except Exception as e:  # an implementation that raises on a valid input fails
            status, detail = "error", f"{type(e).__name__}: {e}"
        if issue is not None:
            status = "known"
            detail = f"known issue: {issue.name}"
        setattr(outcome, direction, status)
        if status in ("fail", "error") and not outcome.detail:
            outcome.detail = detail
    return outcome


# -- aggregating --------------------------------------------------------------------------------
@dataclass
class Cell:
    """Counts and worst errors of one (function, family, dtype) cell."""

    cases: int = 0
    passed: int = 0
    failed: int = 0
    known: int = 0
    forward_ulps: float = 0.0
    forward_of_bound: float = 0.0
    gradient_ulps: float = 0.0
    gradient_of_bound: float = 0.0
    first_failure: str = ""

    def add(self, o: CaseOutcome) -> None:
        self.cases += 1
        statuses = {o.forward, o.gradient}
        if statuses & {"fail", "error"}:
            self.failed += 1
            if not self.first_failure:
                self.first_failure = f"{o.detail}\n{o.case.reproduction()}"
        elif "known" in statuses:
            self.known += 1
        else:
            self.passed += 1
        for direction in ("forward", "gradient"):
            m = getattr(o, f"{direction}_measure")
            if m is not None and getattr(o, direction) != "known":
                setattr(self, f"{direction}_ulps", max(getattr(self, f"{direction}_ulps"),
                                                       m.ulps))
                setattr(self, f"{direction}_of_bound",
                        max(getattr(self, f"{direction}_of_bound"), m.of_bound))

    def as_dict(self) -> dict[str, Any]:
        return {k: (_finite(v) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _finite(x: float) -> float | str:
    return x if np.isfinite(x) else str(x)


@dataclass
class Report:
    target: Target
    cases_per_cell: int
    seed: int
    matrix: dict[tuple[str, str, str], Cell] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    special_values: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    known_failures: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _special_value(impl: Target, case) -> tuple[str, str]:
    args = [torch.from_numpy(np.array(a, copy=True)) if isinstance(a, np.ndarray) else a
            for a in case.args]
    if case.expected_grad is not None:
        args[0].requires_grad_(True)
    try:
        out = impl.get(case.function)(*args, **case.kwargs)
        c = checks.compare(checks.to_numpy(out), np.asarray(case.expected), "float64", "forward")
        if not c.ok:
            return "fail", c.message(case.name, checks.to_numpy(out), np.asarray(case.expected))
        if case.expected_grad is not None:
            (grad,) = torch.autograd.grad(out.sum(), args[0])
            c = checks.compare(checks.to_numpy(grad), np.asarray(case.expected_grad), "float64",
                               "gradient")
            if not c.ok:
                return "fail", c.message(f"gradient at {case.name}", checks.to_numpy(grad),
                                         np.asarray(case.expected_grad))
        return "pass", ""
    except Exception as e:
        return "error", f"{type(e).__name__}: {e}"


def _rejects(impl: Target, case, exceptions) -> tuple[str, str]:
    args, kwargs = case.torch_args()
    try:
        impl.get(case.function)(*args, **kwargs)
    except exceptions:
        return "pass", ""
    except Exception as e:
        return "fail", f"raised {type(e).__name__} instead of {exceptions}: {e}"
    return "fail", "accepted the input without an error"


def build(impl: Target, functions=FUNCTION_NAMES, dtypes=DTYPES, n: int = FULL_CASES,
          seed: int = DEFAULT_SEED, progress=None) -> Report:
    """Run every check against ``impl``; see the module docstring."""
    start = time.perf_counter()
    report = Report(impl, n, seed)
    is_torch = impl.name in TORCH_TARGETS
    for function in functions:
        if impl.get(function) is None:
            report.missing[function] = impl.missing_reason(function)
            continue
        for dtype in dtypes:
            cells: dict[str, Cell] = defaultdict(Cell)
            for i, case in enumerate(sample_cases(function, dtype, n, seed)):
                outcome = run_case(impl, case, seed + i)
                for family in ("all", *case.tags):
                    cells[family].add(outcome)
            for family, cell in cells.items():
                report.matrix[(function, family, dtype)] = cell
            if progress:
                c = cells["all"]
                progress(f"{function} {dtype}: {c.passed} pass, {c.failed} fail, {c.known} known")
    for case in SPECIAL_CASES:
        if case.function in functions and impl.get(case.function) is not None:
            status, detail = _special_value(impl, case)
            report.special_values.append({"function": case.function, "case": case.name,
                                          "status": status, "why": case.why, "detail": detail})
    for case in DIVERGENCES:
        if case.function in functions and impl.get(case.function) is not None:
            status, detail = _special_value(impl, case)
            entry = {"function": case.function, "case": case.name, "why": case.why,
                     "upstream": case.upstream, "detail": detail}
            if is_torch:
                entry["status"] = "known" if status != "pass" else "fixed upstream?"
                report.known_failures.append({"kind": "special value", **entry})
            else:
                report.special_values.append({**entry, "status": status})
    for case in ERROR_CASES:
        if case.function in functions and impl.get(case.function) is not None:
            reason = impl.unsupported(case.check_name)
            status, detail = ("unsupported", reason) if reason else _rejects(
                impl, case, case.exception)
            report.errors.append({"function": case.function, "case": case.name,
                                  "exception": case.exception.__name__, "status": status,
                                  "detail": detail})
    for case, why in SILENTLY_ACCEPTED:
        if case.function in functions and impl.get(case.function) is not None:
            status, detail = _rejects(impl, case, (ValueError, RuntimeError))
            entry = {"function": case.function, "case": case.name,
                     "exception": "ValueError or RuntimeError",
                     "detail": why if is_torch else detail}
            if is_torch:
                report.known_failures.append({
                    "kind": "error not raised", **entry,
                    "status": "known" if status != "pass" else "fixed upstream?"})
            else:
                report.errors.append({**entry, "status": status})
    for issue in KNOWN_ISSUES:
        if (issue.example.function in functions and impl.name in issue.targets
                and impl.get(issue.example.function) is not None):
            o = run_case(impl, issue.example, issue.seed)
            # run_case marks the example "known"; whether it still fails is what we record
            m = getattr(o, f"{issue.direction}_measure")
            still = m is None or not m.ok
            report.known_failures.append({
                "kind": f"known issue ({issue.direction})", "function": issue.example.function,
                "case": issue.name, "why": issue.reason, "upstream": issue.upstream,
                "status": "known" if still else "fixed upstream?"})
    report.seconds = time.perf_counter() - start
    return report


# -- writing ------------------------------------------------------------------------------------
def to_json(report: Report, quick: bool) -> dict[str, Any]:
    t = report.target
    cells = [{"function": f, "family": fam, "dtype": d, **c.as_dict()}
             for (f, fam, d), c in report.matrix.items()]
    failed = sum(c.failed for (f, fam, d), c in report.matrix.items() if fam == "all")
    failed += sum(e["status"] in ("fail", "error") for e in report.special_values + report.errors)
    return {
        "generated_by": "python -m lossproofs report",
        "environment": environment(t.device),
        "target": {"name": t.name, "description": t.description, "version": t.version,
                   "device": t.device},
        "settings": {"quick": quick, "cases_per_function_and_dtype": report.cases_per_cell,
                     "seed": report.seed, "seconds": round(report.seconds, 1)},
        "verdict": "conforms" if failed == 0 else f"{failed} failing checks",
        "missing_functions": report.missing,
        "matrix": cells,
        "special_values": report.special_values,
        "errors": report.errors,
        "known_failures": report.known_failures,
    }


def _cell_text(c: Cell | None) -> str:
    if c is None:
        return ""
    mark = "✗" if c.failed else "✓"
    counts = f"{c.passed}/{c.cases}" + (f", {c.failed} fail" if c.failed else "") + (
        f", {c.known} known" if c.known else "")
    return (f"{mark} {counts} · {_num(c.forward_ulps)} / {_num(c.gradient_ulps)} ulp · "
            f"{_num(c.forward_of_bound)} / {_num(c.gradient_of_bound)}")


def _num(x: float) -> str:
    return "inf" if not np.isfinite(x) else (f"{x:.2g}" if x < 100 else f"{x:.3g}")


def to_markdown(payload: dict[str, Any], report: Report) -> str:
    t = payload["target"]
    s = payload["settings"]
    lines = [
        f"# Conformance report: `{t['name']}`",
        "",
        "<!-- generated by `python -m lossproofs report`; do not edit -->",
        "",
        f"{t['description']} ({t['version']}, device `{t['device']}`).",
        f"**Verdict: {payload['verdict']}** — {s['cases_per_function_and_dtype']} seeded cases "
        f"per function and dtype (seed {s['seed']}{', quick' if s['quick'] else ''}), "
        f"{s['seconds']} s.",
        "",
        "## Environment",
        "",
        environment_markdown(payload["environment"]),
        "",
        "## Matrix",
        "",
        "Each cell: `✓ passed/cases` (`✗` if any case failed) · worst forward / gradient error "
        "in ulps of the dtype · worst forward / gradient error as a fraction of the suite's "
        "bound (a check passes at ≤ 1). Errors are against the float64 reference on the "
        "inputs as rounded to the dtype; ulps near zero overstate small absolute errors, which "
        "the fraction of bound puts in scale. `known` cases hit a named torch issue (below).",
        "",
    ]
    for function in FUNCTION_NAMES:
        if function in report.missing:
            lines += [f"### {function}", "", f"Not provided: {report.missing[function]}.", ""]
            continue
        fams = [fam for fam in FAMILIES
                if any((function, fam, d) in report.matrix for d in DTYPES)]
        if not fams:
            continue
        lines += [f"### {function}", "", "| family | " + " | ".join(DTYPES) + " |",
                  "|---|" + "---|" * len(DTYPES)]
        for fam in fams:
            lines.append(f"| {fam} | " + " | ".join(
                _cell_text(report.matrix.get((function, fam, d))) for d in DTYPES) + " |")
        lines.append("")
    lines += ["## Special values", "", "| function | case | status | why |", "|---|---|---|---|"]
    lines += [f"| {e['function']} | {e['case']} | {e['status']} | {e['why']} |"
              for e in report.special_values]
    lines += ["", "## Errors (bad input must raise)", "",
              "| function | case | expected | status |", "|---|---|---|---|"]
    lines += [f"| {e['function']} | {e['case']} | {e['exception']} | {e['status']}"
              f"{': ' + e['detail'] if e['status'] == 'unsupported' else ''} |"
              for e in report.errors]
    lines += ["", "## Known failures", "",
              "Where this target (torch) is known to differ from the mathematics or to fail: "
              "reported, never counted as passes. `fixed upstream?` means the known failure no "
              "longer reproduces.", "",
              "| kind | function | case | status | reason |", "|---|---|---|---|---|"]
    lines += [f"| {e['kind']} | {e['function']} | {e['case']} | {e['status']} | "
              f"{e.get('why') or e.get('detail', '')} {e.get('upstream', '')} |"
              for e in report.known_failures]
    if not report.known_failures:
        lines.append("| – | – | – | – | none for this target |")
    failures = [(k, c) for k, c in report.matrix.items() if k[1] == "all" and c.failed]
    if failures:
        lines += ["", "## First failure per function and dtype", ""]
        for (function, _, dtype), c in failures:
            lines += [f"### {function}, {dtype}", "", "```python", c.first_failure, "```", ""]
    return "\n".join(lines).rstrip() + "\n"


# -- teeth ----------------------------------------------------------------------------------------
def teeth_markdown(payload: dict[str, Any]) -> str:
    lines = ["# Teeth: the suite against deliberately broken implementations", "",
             "<!-- generated by `python -m lossproofs report --teeth`; do not edit -->", "",
             "Each module of `lossproofs/broken/` redefines one function of "
             "`torch.nn.functional` with a realistic bug; the suite (the test files of that "
             "function, hypothesis profile `teeth`: derandomized, 100 examples) must fail, in "
             "the tests listed, by its own assertions. `tests/test_teeth.py` asserts this in CI.",
             "", "## Environment", "", environment_markdown(payload["environment"]), "",
             "| broken module | bug | modelled on | verdict | caught by |", "|---|---|---|---|---|"]
    for r in payload["results"]:
        refs = ", ".join(f"[{u.removeprefix('https://github.com/')}]({u})"
                         for u in r["modelled_on"])
        caught = "<br>".join(f"`{t.split('/')[-1]}`" for t in r["caught_by"])
        verdict = "caught" if r["caught"] else "NOT caught: " + "; ".join(r["problems"])
        lines.append(f"| `{r['module']}` | {r['bug']} | {refs} | {verdict} ({r['seconds']} s) "
                     f"| {caught} |")
    lines += ["", "## What each catching test said", ""]
    for r in payload["results"]:
        lines += [f"### `{r['module']}`", ""]
        lines += [f"- `{t}`: {msg[:300]}" for t, msg in r["caught_by"].items()]
        if r["also_failed"]:
            lines.append(f"- also failed: {', '.join(f'`{t}`' for t in r['also_failed'])}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def run_teeth(out: Path, overwrite: bool) -> int:
    from lossproofs.broken import teeth

    results = teeth.run_all()
    for r in results:
        print(r.summary())
    payload = {"generated_by": "python -m lossproofs report --teeth",
               "environment": environment("cpu"), "results": [r.as_dict() for r in results]}
    write_json(out / "teeth.json", payload, overwrite)
    write_text(out / "teeth.md", teeth_markdown(payload), overwrite)
    print(f"wrote {out / 'teeth.json'} and {out / 'teeth.md'}")
    return 0 if all(r.caught for r in results) else 1


# -- command line ---------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lossproofs report",
        description="Conformance matrix (function × parameter family × dtype) of one "
                    "implementation under test, as JSON and Markdown.")
    p.add_argument("--target", default="torch",
                   help="torch (default), nn, compile, cuda or module:package.module")
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


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
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
