"""Running the conformance report: draw seeded cases, run each check against a target, and
aggregate the outcomes into the matrix function × parameter family × dtype.

Errors are measured two ways, both against the float64 reference evaluated on the inputs as
rounded to the dtype (:func:`measure`; see :mod:`lossproofs.conformance` for what they mean):
``ulps`` at the result's scale and ``of bound``, the fraction of the tolerance used. Elements a
known divergence of the target affects (:mod:`lossproofs.ledger`) are set aside as the
properties set them aside; a case counts as ``known`` only when a divergence covers it as a
whole. Every ledger example is run for every target: for the entry's families it is a known
failure (or "fixed upstream?"), for any other target a check it must pass.
:mod:`lossproofs.conformance_render` writes the result as JSON and Markdown.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lossproofs import checks, ledger
from lossproofs.cases import DTYPES, Case
from lossproofs.dtypes import tiny
from lossproofs.error_cases import ERROR_CASES
from lossproofs.oracle import ulp_distance
from lossproofs.registry import FUNCTION_NAMES, LOSSES
from lossproofs.special_cases import SPECIAL_CASES
from lossproofs.special_cases import declared_out as special_declared_out
from lossproofs.strategies.sampling import sample
from lossproofs.targets import Target
from lossproofs.targets import linear as L
from lossproofs.tolerances import tolerance

# Parameter families, in the order the matrix lists them; a case belongs to every family among
# its Case.tags, and to "all".
FAMILIES = ("all", "reduction", "weight", "ignore_index", "label_smoothing",
            "probability target", "k-dim", "unbatched", "non-contiguous", "empty",
            "single class", "uint8 target", "pos_weight", "clamp", "0-d", "linear_bias")
QUICK_CASES = 12
FULL_CASES = 300
DEFAULT_SEED = 20240601


# -- drawing cases ----------------------------------------------------------------------------
def sample_cases(function: str, dtype: str, n: int, seed: int) -> list[Case]:
    """``n`` cases of ``function`` in ``dtype`` drawn from the suite's strategy with a fixed
    hypothesis seed (so a report can be regenerated); generation only, no shrinking."""
    return sample(LOSSES[function].cases(dtype), n, seed)


# -- measuring one comparison -----------------------------------------------------------------
@dataclass
class Measure:
    """One comparison: ``ok`` under the suite's bound, worst ulps, worst fraction of bound."""

    ok: bool
    ulps: float
    of_bound: float
    message: str = ""


def measure(actual: np.ndarray, expected: np.ndarray, dtype: str, kind: str,
            scale: float | np.ndarray, what: str,
            set_aside: np.ndarray | None = None) -> Measure:
    """``scale``: a scalar or one per element (checks.forward_scale, checks.gradient_scale),
    never taken below the dtype's smallest normal, as :func:`lossproofs.checks.compare`."""
    comparison = checks.compare(actual, expected, dtype, kind, scale, set_aside)
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return Measure(False, np.inf, np.inf, comparison.bound)
    finite = np.isfinite(expected)
    if set_aside is not None:
        finite = finite & ~np.broadcast_to(set_aside, expected.shape)
    a, e = actual[finite], expected[finite]
    scale = np.broadcast_to(np.maximum(np.asarray(scale, dtype=np.float64), tiny(dtype)),
                            expected.shape)[finite]
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
    nontrivial: bool = True


def _worse(m: Measure | None, one: Measure) -> Measure:
    """Two comparisons of one case as one: ok only if both are, the larger errors, and the
    message of the failing comparison that uses more of its bound."""
    if m is None:
        return one
    failing = [x for x in (m, one) if not x.ok]
    message = max(failing, key=lambda x: x.of_bound).message if failing else ""
    return Measure(m.ok and one.ok, max(m.ulps, one.ulps), max(m.of_bound, one.of_bound),
                   message)


def _run_directions(outcome: CaseOutcome, known: Callable[[str], bool],
                    measured: Callable[[str], Measure | None]) -> CaseOutcome:
    """Fill ``outcome``'s forward and gradient: ``known`` where a divergence covers the
    direction as a whole, else the status of ``measured(direction)`` (None: nothing to
    compare, a pass), ``error`` where the implementation raises; the first failure's message
    becomes the outcome's detail."""
    for direction in ("forward", "gradient"):
        if known(direction):
            setattr(outcome, direction, "known")
            continue
        try:
            m = measured(direction)
            setattr(outcome, f"{direction}_measure", m)
            status, detail = ("pass", "") if m is None or m.ok else ("fail", m.message)
        except Exception as e:  # an implementation that raises on a valid input fails
            status, detail = "error", f"{type(e).__name__}: {e}"
        setattr(outcome, direction, status)
        if status in ("fail", "error") and not outcome.detail:
            outcome.detail = detail
    return outcome


def run_linear_case(impl: Target, case: Case, seed: int) -> CaseOutcome:
    """:func:`run_case` for the linear kind: the forward value and the three gradients (and
    the target's, for probability targets) at :func:`lossproofs.checks.linear_error_scales`,
    a case a known divergence of the target covers set aside as the properties set it aside
    (:func:`lossproofs.targets.linear.check_forward` / ``check_gradients``)."""
    fn = impl.get(case.function)
    expected_forward = checks.reference_forward(case)

    def measured(direction: str) -> Measure | None:
        if direction == "forward":
            actual, expected = L._quiet(L.forward, fn, case)
            results = [("forward", actual, expected)]
            scales = checks.linear_error_scales(case)
        else:
            g, results = L._quiet(L.gradients, fn, case, seed, L.wrt(case))
            scales = checks.linear_error_scales(case, g)
        m = None
        for name, actual, expected in results:
            m = _worse(m, measure(actual, expected, case.dtype, direction, scales[name],
                                  f"{case.function} {name}"
                                  + ("" if direction == "forward" else " gradient")))
        return m

    return _run_directions(
        CaseOutcome(case, "pass", "pass", nontrivial=checks.nontrivial(case, expected_forward)),
        lambda direction: ledger.set_aside(impl, case, direction, ()).whole, measured)


def run_case(impl: Target, case: Case, seed: int) -> CaseOutcome:
    declared = LOSSES[case.function]
    if declared.kind == "linear":
        return run_linear_case(impl, case, seed)
    expected_forward = checks.reference_forward(case)
    asides = {direction: ledger.set_aside(impl, case, direction, shape) for direction, shape
              in (("forward", expected_forward.shape), ("gradient", case.arrays[0].shape))}

    def measured(direction: str) -> Measure | None:
        aside = asides[direction]
        if direction == "forward":
            out, _ = checks.call(impl, case)
            return measure(checks.to_numpy(out), expected_forward, case.dtype, "forward",
                           checks.forward_scale(case, expected_forward),
                           f"{case.function} forward", aside.mask)
        wrt_target = (declared.differentiable_target and len(case.arrays) > 1
                      and case.arrays[1].dtype.kind == "f")
        m = None
        g_out = checks.grad_output_for(case, expected_forward.shape, seed)
        for name, actual, expected in checks.gradients(impl, case, seed, wrt_target):
            mask = aside.mask if aside.mask is not None and \
                aside.mask.shape == expected.shape else None
            m = _worse(m, measure(actual, expected, case.dtype, "gradient",
                                  checks.gradient_scale(case, expected, g_out, name),
                                  f"{case.function} {name}", mask))
        return m

    return _run_directions(
        CaseOutcome(case, "pass", "pass", nontrivial=checks.nontrivial(case, expected_forward)),
        lambda direction: asides[direction].whole, measured)


# -- aggregating --------------------------------------------------------------------------------
@dataclass
class Cell:
    """Counts and worst errors of one (function, family, dtype) cell."""

    cases: int = 0
    passed: int = 0
    failed: int = 0
    known: int = 0
    nontrivial: int = 0  # cases that can show a wrong kernel (see checks.nontrivial)
    nontrivial_passed: int = 0
    not_provided: int = 0  # cases outside the target's declared capabilities (not run)
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
        if o.nontrivial:
            self.nontrivial += 1
            self.nontrivial_passed += statuses == {"pass"}
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
    ledger_checks: list[dict] = field(default_factory=list)  # divergence examples, must pass
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


def _ledger_check(impl: Target, entry: ledger.Divergence) -> tuple[str, str]:
    """``entry``'s example through its check: ``pass``, ``fail`` (with the message) or
    ``error`` (the implementation raised)."""
    try:
        outcome = checks.run_check(impl, entry)
    except Exception as e:
        return "error", f"{type(e).__name__}: {e}"
    return outcome.status, outcome.message


def _known(impl: Target, case, status: str, detail: str) -> tuple[str, str]:
    """A special-value or error case's status, ``known`` (or ``fixed upstream?``) where a
    ledger entry of ``impl``'s families covers it (``Divergence.covers``)."""
    entry = ledger.covering(impl, case)
    if entry is None:
        return status, detail
    return ("known" if status != "pass" else "fixed upstream?"), f"{entry.name}: {detail}"


def build(impl: Target, functions=FUNCTION_NAMES, dtypes=DTYPES, n: int = FULL_CASES,
          seed: int = DEFAULT_SEED, progress=None) -> Report:
    """Run every check against ``impl``; see the module docstring."""
    start = time.perf_counter()
    report = Report(impl, n, seed)
    for function in functions:
        if impl.get(function) is None:
            report.missing[function] = impl.missing_reason(function)
            continue
        for dtype in dtypes:
            cells: dict[str, Cell] = defaultdict(Cell)
            for i, case in enumerate(sample_cases(function, dtype, n, seed)):
                if impl.excluded(case):
                    for family in ("all", *case.tags):
                        cells[family].not_provided += 1
                    continue
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
            # as test_special_values: a case outside the declared capabilities is not run
            declared = special_declared_out(impl, case)
            status, detail = (declared.split(":")[0], declared) if declared else _known(
                impl, case, *_special_value(impl, case))
            report.special_values.append({"function": case.function, "case": case.name,
                                          "status": status, "why": case.why, "detail": detail})
    for case in ERROR_CASES:
        if case.function in functions and impl.get(case.function) is not None:
            reason = (impl.unsupported(case.check_name)
                      or ledger.known_error_type(impl, case))
            provided = impl.excluded_arguments(case.function, case.kwargs)
            # torch-family targets must raise torch's type; any other must reject at all
            expected = case.exception if impl.torch_exceptions else Exception
            if reason:
                status, detail = "unsupported", reason
            elif provided:
                status, detail = "not provided", provided
            else:
                status, detail = _known(impl, case, *_rejects(impl, case, expected))
            report.errors.append({"function": case.function, "case": case.name,
                                  "exception": expected.__name__, "status": status,
                                  "detail": detail})
    for entry in ledger.LEDGER:
        if entry.function not in functions or impl.get(entry.function) is None:
            continue
        declared = ledger.not_provided_by(impl, entry)
        status, detail = ("not provided", declared) if declared else _ledger_check(impl, entry)
        row = {"kind": entry.check, "function": entry.function, "case": entry.name,
               "why": entry.reason, "upstream": entry.upstream, "detail": detail}
        if entry.applies_to(impl):
            # a known failure of this target's family: recorded, never counted as a pass
            report.known_failures.append(
                {**row, "status": "fixed upstream?" if status == "pass" else
                 "not provided" if status == "not provided" else "known"})
        elif entry.check == "rejects":
            report.errors.append({**row, "exception": "any (torch accepts it silently)",
                                  "status": status})
        else:
            report.ledger_checks.append({**row, "status": status})
    report.seconds = time.perf_counter() - start
    return report
