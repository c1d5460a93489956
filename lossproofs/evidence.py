"""``lossproofs evidence``: what the properties actually drew, and what that proves.

"N passed" proves only as much as the inputs reached. This report draws the suite's own
ordinary strategies with a fixed seed (the ``ci`` profile's example count by default) and the
size tier's, runs the forward and gradient checks against a target as the ordinary properties
do (:func:`lossproofs.checks.check_forward` and :func:`~lossproofs.checks.check_gradients`, the
target's gradient too where it is floating; known divergences set aside element by element,
:mod:`lossproofs.ledger`), and counts, for every function × dtype × parameter family (the
case's tags, plus ``all``):

- ``cases``: cases drawn; ``nontrivial``: cases with at least two elements, non-constant
  logits and at least one non-zero expected value, where a wrong kernel can show;
- ``set_aside``: cases of which nothing was compared (known divergences cover both the forward
  value and the gradient as a whole); ``forward_set_aside`` and ``gradient_set_aside``: cases
  whose forward value, or gradient, was not compared (a torch backward that raises, say), with
  the entries that did it in ``set_aside_why``; ``elements_set_aside`` / ``elements``: the
  element-level set-asides of the results that were compared;
- ``failed``: cases that failed a check although no ledger entry of the target sets them
  aside: every one is listed under *Unexplained failures* with its reproduction, and the
  command exits with status 1 (a conforming target, or one whose divergences the ledger
  explains, has none);
- ``max_N``, ``max_C``, ``max_K``, ``max_total_weight``: the largest batch (rows), class count,
  K-dim spatial extent and total class weight (Σ w[t] over kept targets; Σ w for BCE) reached.

The size tier's draws go through those same checks, which ask more of them than
``lossproofs/suite/test_large.py`` does: it compares the input gradient only, at the
whole-result scale (and log_softmax's and cross_entropy's at the scale of their terms), where
the checks compare the target's gradient too, per element. A failure of a size-tier draw may so
be one the suite does not see; it is reported all the same.

What the target declares it does not provide or follows another convention on
(``Target.declared_out``: a module's ``NOT_PROVIDED`` and ``CONVENTIONS``) is never drawn: the
strategies take it (``exclude=``), a size-tier stratum whose every case carries such a family
(:data:`lossproofs.strategies.large.STRATUM_FAMILIES`) is skipped, and the report names each
declaration, skipped stratum and missing function under *Not drawn for this target*.

``evidence.json`` (a list ``rows``, the unexplained failures, what was not drawn, the
environment, the options and counts) and ``evidence.md`` are written to ``--out`` (never over an
existing result without ``--overwrite``). Exit status: 0, or 1 when a failure is unexplained
(the report is written all the same), 2 for a usage error or an existing result.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lossproofs import checks, ledger
from lossproofs.cases import DTYPES, Case
from lossproofs.conformance_run import DEFAULT_SEED
from lossproofs.declarations import drawable
from lossproofs.environment import (
    environment,
    environment_markdown,
    result_paths,
    write_json,
    write_text,
)
from lossproofs.helptext import TARGET_OPTION_HELP, description
from lossproofs.registry import FUNCTION_NAMES, LOSSES
from lossproofs.strategies.large import STRATA, STRATUM_FAMILIES, large_cases
from lossproofs.strategies.sampling import sample
from lossproofs.targets import Target, get_target

STRATUM_NAMES = frozenset(s for strata in STRATA.values() for s in strata)

CI_CASES = 100  # the ci profile's examples per property
QUICK_CASES = 12
MAX_SET_ASIDE_SHARE = 0.05  # of a function × dtype's draws; more hides too much evidence
LARGE_CASES = 2  # per size-tier stratum, as test_large draws under the ci profile
SHOWN_FAILURES = 3  # unexplained failures shown in full per function × dtype (all in the JSON)


@dataclass
class Row:
    function: str
    dtype: str
    family: str
    cases: int = 0
    nontrivial: int = 0
    set_aside: int = 0  # nothing of the case compared
    forward_set_aside: int = 0  # the forward value not compared
    gradient_set_aside: int = 0  # the gradient not compared
    failed: int = 0
    elements: int = 0
    elements_set_aside: int = 0
    max_N: int = 0
    max_C: int = 0
    max_K: int = 0
    max_total_weight: float = 0.0
    set_aside_why: dict[str, int] = field(default_factory=dict)

    @property
    def set_aside_share(self) -> float:
        return self.set_aside / self.cases if self.cases else 0.0


# -- what a case reaches ---------------------------------------------------------------------------
def sizes(case: Case) -> dict[str, float]:
    """``N`` (rows), ``C`` (classes), ``K`` (K-dim spatial extent), ``total_weight``."""
    x = case.arrays[0]
    kind = LOSSES[case.function].kind
    if kind == "softmax":
        dims = case.params.get("dim", 0)
        dims = dims if isinstance(dims, tuple | list) else (dims,)
        c = int(np.prod([x.shape[d] for d in dims])) if x.ndim else 1
        return {"N": x.size // c if c else 0, "C": c, "K": 0, "total_weight": 0.0}
    if kind == "linear":  # (N, in) or (in,) input, (C, d1..dK, in) weight: rows × positions
        w = case.arrays[1]
        t = case.arrays[2]
        n = 1 if x.ndim == 1 else x.shape[0]
        c, k = w.shape[0], int(np.prod(w.shape[1:-1])) if w.ndim > 2 else 0
        cw = case.params.get("weight")
        cw = np.ones(c) if cw is None else np.asarray(cw)
        if t.dtype.kind == "f":  # probability targets: Σ over rows of Σ_c w_c·t_c
            total = float(np.sum(np.moveaxis(t, 0 if t.ndim == 1 else 1, -1) * cw))
        else:
            ignore_index = case.params.get("ignore_index")
            kept = t != (-100 if ignore_index is None else ignore_index)
            total = float(np.sum(cw[t[kept].astype(np.int64)]))
        return {"N": n, "C": c, "K": k, "total_weight": total}
    if kind == "binary":
        w = case.params.get("weight")
        total = float(np.sum(np.broadcast_to(w, x.shape))) if w is not None else float(x.size)
        return {"N": x.size, "C": 1, "K": 0, "total_weight": total}
    n, c = (1, x.shape[0]) if x.ndim == 1 else (x.shape[0], x.shape[1])
    k = int(np.prod(x.shape[2:])) if x.ndim > 2 else 0
    t = case.arrays[1]
    w = case.params.get("weight")
    w = np.ones(c) if w is None else np.asarray(w)
    if t.dtype.kind == "f":  # probability targets: Σ over rows of Σ_c w_c·t_c
        moved = np.moveaxis(t, 0 if t.ndim == 1 else 1, -1)
        total = float(np.sum(moved * w))
    else:
        kept = (t != case.params.get("ignore_index", -100)) & (t >= 0) & (t < c)
        total = float(np.sum(w[t[kept].astype(np.int64)])) if c else 0.0
    return {"N": n, "C": c, "K": k, "total_weight": total}


nontrivial = checks.nontrivial


# -- the run ---------------------------------------------------------------------------------------
@dataclass
class Failure:
    """A case that failed a check with no ledger entry of the target setting it aside."""

    function: str
    dtype: str
    tier: str  # "ordinary" or "large"
    stratum: str  # the size tier's stratum ("" for ordinary draws)
    failed: list[str]  # what disagreed: "forward", "input gradient", "target gradient", ...
    message: str
    case: str  # the case's repr
    seed: int  # of the gradient check's grad_output
    reproduction: str
    # ledger entries of the target's families, same function and check, with no predicate:
    # they set nothing aside, but may name the mechanism
    unpredicated: list[str] = field(default_factory=list)


@dataclass
class NotDrawn:
    """What was not drawn for the target, and why (its declarations, missing functions)."""

    declared: dict[str, dict[str, str]] = field(default_factory=dict)  # function → family → why
    missing: dict[str, str] = field(default_factory=dict)  # function → why
    undrawable: dict[str, str] = field(default_factory=dict)  # function → why nothing can be
    strata: list[dict[str, str]] = field(default_factory=list)  # size-tier strata skipped
    # cases a strategy drew although the target declares them out (a lossproofs bug): not run
    drawn_anyway: dict[str, int] = field(default_factory=dict)  # "function dtype: why" → count


@dataclass
class Evidence:
    rows: list[Row]
    failures: list[Failure]
    not_drawn: NotDrawn


def collect(impl: Target, functions=FUNCTION_NAMES, dtypes=DTYPES, n: int = CI_CASES,
            seed: int = DEFAULT_SEED, progress=None, large: bool = True) -> list[Row]:
    """Draw, check and count; one :class:`Row` per function × dtype × family reached."""
    return run(impl, functions, dtypes, n, seed, progress, large).rows


def run(impl: Target, functions=FUNCTION_NAMES, dtypes=DTYPES, n: int = CI_CASES,
        seed: int = DEFAULT_SEED, progress=None, large: bool = True) -> Evidence:
    """Draw what ``impl`` declares it provides, check and count: the rows, the unexplained
    failures and what was not drawn."""
    rows: list[Row] = []
    failures: list[Failure] = []
    not_drawn = NotDrawn()
    for function in functions:
        if impl.get(function) is None:
            not_drawn.missing[function] = impl.missing_reason(function)
            continue
        exclude = impl.declared_out(function)
        declared = {**{f: f"not provided: {why}" for f, why in
                       impl.not_provided.get(function, {}).items()},
                    **{f: f"convention: {why}" for f, why in
                       impl.conventions.get(function, {}).items()}}
        if declared:
            not_drawn.declared[function] = declared
        nothing = drawable(function, exclude)
        if nothing:
            not_drawn.undrawable[function] = nothing
            continue
        if large:
            not_drawn.strata += [{"function": function, "stratum": stratum, "why": why}
                                 for stratum, why in skipped_strata(impl, function)]
        for dtype in dtypes:
            table: dict[str, Row] = {}
            drawn = draws(impl, function, dtype, n, seed, large)
            for i, case in enumerate(drawn):
                why = impl.excluded(case)
                if why:  # a strategy bug: the declaration was passed as exclude=
                    key = f"{function} {dtype}: {why}"
                    not_drawn.drawn_anyway[key] = not_drawn.drawn_anyway.get(key, 0) + 1
                    continue
                expected = checks.reference_forward(case)
                outcomes = check_case(impl, case, seed + i)
                tier = "large" if "large" in case.tags else "ordinary"
                for family in ("all", tier, *sorted(case.tags - {"large"})):
                    row = table.setdefault(family, Row(function, dtype, family))
                    _count(row, case, expected, outcomes, sizes(case))
                if any(o.status == "fail" for o in outcomes):
                    failures.append(_failure(impl, case, tier, seed + i, outcomes))
            rows.extend(table.values())
            if progress and "all" in table:
                a = table["all"]
                progress(f"{function} {dtype}: {a.cases} cases, {a.nontrivial} non-trivial, "
                         f"{a.set_aside} set aside, {a.failed} failed"
                         + (" (unexplained)" if a.failed else ""))
    return Evidence(rows, failures, not_drawn)


def draws(impl: Target, function: str, dtype: str, n: int = CI_CASES, seed: int = DEFAULT_SEED,
          large: bool = True) -> list[Case]:
    """The seeded draws of ``function`` in ``dtype`` for ``impl``: ``n`` of the ordinary
    strategy and the size tier's, none of a family the target declares out."""
    exclude = impl.declared_out(function)
    ordinary = sample(LOSSES[function].cases(dtype, exclude=exclude), n, seed)
    return ordinary + (_large_cases(function, dtype, seed, exclude) if large else [])


def check_case(impl: Target, case: Case, seed: int) -> list[checks.Outcome]:
    """The forward and gradient checks of the properties (the target's known divergences set
    aside, :mod:`lossproofs.ledger`), as two outcomes; an exception the target raises is a
    failed outcome that names it."""
    declared = LOSSES[case.function]
    if declared.kind == "linear":  # three gradients at the matmul's scales
        forward, gradient = checks.check_linear_forward, checks.check_linear_gradients
        gradient_args: tuple = (seed,)
    else:
        forward, gradient = checks.check_forward, checks.check_gradients
        gradient_args = (seed, _wrt_target(case))
    return [_guarded("forward", forward, impl, case),
            _guarded("gradient", gradient, impl, case, *gradient_args)]


def _wrt_target(case: Case) -> bool:
    """Whether the target's gradient is checked too (a floating target of a function
    differentiable in it), as test_target_gradient_matches_closed_form does."""
    return bool(LOSSES[case.function].differentiable_target and len(case.arrays) > 1
                and case.arrays[1].dtype.kind == "f")


def _guarded(direction: str, check, impl: Target, case: Case, *args) -> checks.Outcome:
    try:
        return check(impl, case, *args)
    except Exception as e:  # the target raised on a case it declares it provides
        return checks.Outcome("fail", [], "", f"{case.function} {direction}: {impl.name} "
                              f"raised {type(e).__name__}: {e}")


def _failure(impl: Target, case: Case, tier: str, seed: int,
             outcomes: list[checks.Outcome]) -> Failure:
    failed: list[str] = []
    for direction, o in zip(("forward", "gradient"), outcomes):
        if o.status != "fail":
            continue
        bad = [what for what, c in o.comparisons if not c.ok]
        failed += bad or [f"{direction} (raised)"]
    strata = sorted(case.tags & set(STRATUM_NAMES)) if tier == "large" else []
    return Failure(case.function, case.dtype, tier, ", ".join(strata), failed,
                   "\n".join(o.message for o in outcomes if o.status == "fail"),
                   repr(case).split("\n--- reproduction ---")[0],
                   seed, reproduction(impl, case, seed, failed),
                   unpredicated_entries(impl, case.function, failed))


def unpredicated_entries(impl: Target, function: str, failed: list[str]) -> list[str]:
    """The ledger entries of ``impl``'s families for ``function`` and the failed checks that
    have no predicate: they set nothing aside (so do not explain a failure), but may describe
    its mechanism."""
    directions = {"forward" if what.startswith("forward") else "gradient" for what in failed}
    target_gradient = any(what.startswith("target") for what in failed)
    return [d.name for d in ledger.LEDGER
            if d.affected is None and d.applies_to(impl) and d.check in ("forward", "gradient")
            and function in (d.function, *d.also_functions) and d.direction in directions
            and (d.direction == "forward" or d.wrt_target or not target_gradient)]


def reproduction(impl: Target, case: Case, seed: int, failed: list[str]) -> str:
    """``case.reproduction(impl)`` followed by the check the report ran, with its seed."""
    names = LOSSES[case.function].arguments[: len(case.arrays)]
    arrays = "(" + ", ".join(names) + ("," if len(names) == 1 else "") + ")"
    params = "{" + ", ".join(f"{k!r}: {k}" if isinstance(v, np.ndarray) else f"{k!r}: {v!r}"
                             for k, v in case.params.items()) + "}"
    linear = LOSSES[case.function].kind == "linear"
    kind = "linear_" if linear else ""
    lines = [case.reproduction(impl), "# the check lossproofs evidence ran (known divergences of "
             "the target set aside):", "from lossproofs import checks",
             "from lossproofs.cases import Case", "from lossproofs.targets import get_target",
             f"case = Case({case.function!r}, {arrays}, {params}, {case.dtype!r}, "
             f"{case.layout!r})"]
    if any(what.startswith("forward") for what in failed):
        lines.append(f"print(checks.check_{kind}forward(get_target({impl.name!r}), case)"
                     ".message)")
    if any(not what.startswith("forward") for what in failed):
        wrt = "" if linear else f", wrt_target={_wrt_target(case)}"
        lines.append(f"print(checks.check_{kind}gradients(get_target({impl.name!r}), case, {seed}"
                     f"{wrt}).message)")
    return "\n".join(lines)


def _entry_names(divergences: str) -> list[str]:
    """The ledger entries named in an outcome's ``divergences`` (joined with ", ", which some
    names contain)."""
    names, part = [], []
    for piece in divergences.split(", "):
        part.append(piece)
        if ", ".join(part) in ledger.BY_NAME:
            names.append(", ".join(part))
            part = []
    return names + ([", ".join(part)] if part else [])


def _count(row: Row, case: Case, expected, outcomes, reached) -> None:
    row.cases += 1
    row.nontrivial += checks.nontrivial(case, expected)
    whole = [o for o in outcomes if o.status == "set aside"]
    forward, gradient = (o.status == "set aside" for o in outcomes)
    row.forward_set_aside += forward
    row.gradient_set_aside += gradient
    if forward and gradient:
        row.set_aside += 1
    for o in whole:
        for name in _entry_names(o.divergences):
            row.set_aside_why[name] = row.set_aside_why.get(name, 0) + 1
    row.failed += any(o.status == "fail" for o in outcomes)
    for o in outcomes:
        for _, c in o.comparisons:
            row.elements += c.compared + c.set_aside
            row.elements_set_aside += c.set_aside
    row.max_N = max(row.max_N, int(reached["N"]))
    row.max_C = max(row.max_C, int(reached["C"]))
    row.max_K = max(row.max_K, int(reached["K"]))
    row.max_total_weight = max(row.max_total_weight, float(reached["total_weight"]))


def skipped_strata(impl: Target, function: str) -> list[tuple[str, str]]:
    """The size-tier strata of ``function`` whose every case carries a family ``impl`` declares
    out (:data:`~lossproofs.strategies.large.STRATUM_FAMILIES`), each with the declaration."""
    exclude = impl.declared_out(function)
    return [(stratum, impl.excluded_families(function, {STRATUM_FAMILIES[stratum]}) or "")
            for stratum in STRATA.get(function, ())
            if STRATUM_FAMILIES.get(stratum) in exclude]


def _large_cases(function: str, dtype: str, seed: int,
                 exclude: frozenset[str] = frozenset()) -> list[Case]:
    """The size tier's draws (``lossproofs/strategies/large.py``; strata at random, on average
    as many per stratum as its properties draw under the ci profile), none of a family in
    ``exclude`` and no stratum about one: tagged ``large``, so they count in that family and in
    ``all`` (the largest sizes reached), not in the set-aside budget of the ordinary draws."""
    from hypothesis import strategies as st

    strata = [s for s in STRATA.get(function, ()) if STRATUM_FAMILIES.get(s) not in exclude]
    if not strata:
        return []
    return sample(st.sampled_from(strata).flatmap(
        lambda stratum: large_cases(function, stratum, dtype, exclude=exclude)),
        LARGE_CASES * len(strata), seed)


def over_budget(rows: list[Row]) -> list[Row]:
    """The function × dtype rows whose whole-case set-aside share exceeds the budget."""
    return [r for r in rows if r.family == "ordinary" and r.set_aside_share > MAX_SET_ASIDE_SHARE]


# -- writing ---------------------------------------------------------------------------------------
def to_json(impl: Target, rows: list[Row], n: int, seed: int,
            failures: list[Failure] = (), not_drawn: NotDrawn | None = None,
            command: str = "") -> dict[str, Any]:
    """The report as JSON; ``command`` the options it was generated with (a command line)."""
    env = environment(impl.device)
    env["target"] = {"name": impl.name, "description": impl.description,
                     "version": impl.version}
    env["hypothesis_profile"] = "seeded draws of the ordinary strategies (no shrinking)"
    return {"environment": env, "command": command, "cases_per_function_and_dtype": n,
            "seed": seed, "max_set_aside_share": MAX_SET_ASIDE_SHARE,
            "over_budget": [f"{r.function} {r.dtype}" for r in over_budget(rows)],
            "unexplained_failures": [asdict(f) for f in failures],
            "not_drawn": asdict(not_drawn or NotDrawn()),
            "rows": [asdict(r) | {"set_aside_share": round(r.set_aside_share, 4)} for r in rows]}


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "–"


def to_markdown(payload: dict[str, Any]) -> str:
    env = payload["environment"]
    lines = [
        "# Evidence: what the properties drew",
        "",
        "Generated by `lossproofs evidence`; do not edit. Target: "
        f"{env['target']['name']} — {env['target']['description']} ({env['target']['version']}).",
        f"{payload['cases_per_function_and_dtype']} seeded cases per function × dtype (seed "
        f"{payload['seed']}), drawn from the suite's ordinary strategies and run through its "
        "forward and gradient checks, plus the size tier's draws (about 2 per stratum, family "
        "`large`; the same checks, the target's gradient included, where `test_large` compares "
        "the input gradient only, at the whole-result scale). *Non-trivial*: ≥ 2 elements, "
        "non-constant logits and a non-zero expected value. *Set aside*: cases of which "
        "nothing was compared (budget ≤ "
        f"{100 * payload['max_set_aside_share']:.0f} % of the ordinary draws per function × "
        "dtype); *forward / gradient set aside*: cases whose forward value or gradient a known "
        "divergence covers as a whole (a backward that raises, every element affected); "
        "*elements set aside*: the element-level set-asides of compared results. The maxima "
        "include the size tier.",
        "",
    ]
    if payload.get("command"):
        lines += [f"Regenerate: `{payload['command']} --out DIR --overwrite`.", ""]
    failures = payload.get("unexplained_failures", [])
    lines += [f"**{len(failures)} unexplained failure{'s' if len(failures) != 1 else ''}: "
              "cases that failed a check with no ledger entry of this target setting them "
              "aside (see [Unexplained failures](#unexplained-failures)); `lossproofs evidence` "
              "exits with status 1.**" if failures else
              "No unexplained failure: every case compared agreed with the reference, beyond "
              "what a ledger entry of this target sets aside.", ""]
    over = payload["over_budget"]
    lines += [f"**Over the set-aside budget: {', '.join(over)}.**" if over
              else "Every function × dtype is within the set-aside budget.", ""]
    lines += _failures_markdown(failures)
    lines += ["## Per function × dtype", "",
              "| function | dtype | cases (large) | non-trivial | set aside | forward / gradient "
              "set aside | elements set aside | failed | max N | max C | max K | "
              "max total weight |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = payload["rows"]
    large = {(r["function"], r["dtype"]): r["cases"] for r in rows if r["family"] == "large"}
    for r in (r for r in rows if r["family"] == "all"):
        lines.append(
            f"| {r['function']} | {r['dtype']} | "
            f"{r['cases']} ({large.get((r['function'], r['dtype']), 0)}) | "
            f"{r['nontrivial']} ({_pct(r['nontrivial'], r['cases'])}) | "
            f"{r['set_aside']} ({_pct(r['set_aside'], r['cases'])}) | "
            f"{r['forward_set_aside']} / {r['gradient_set_aside']} | "
            f"{r['elements_set_aside']} of {r['elements']} | {r['failed']} | {r['max_N']} | "
            f"{r['max_C']} | {r['max_K']} | {r['max_total_weight']:.4g} |")
    lines += ["", "## Per parameter family (all dtypes)", "",
              "| function | family | cases | non-trivial | set aside | failed |",
              "|---|---|---:|---:|---:|---:|"]
    merged: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in rows:
        if r["family"] != "all":
            m = merged[(r["function"], r["family"])]
            for k, key in enumerate(("cases", "nontrivial", "set_aside", "failed")):
                m[k] += r[key]
    for (function, family), (c, nt, sa, f) in sorted(merged.items()):
        lines.append(f"| {function} | {family} | {c} | {nt} | {sa} | {f} |")
    why: dict[str, int] = defaultdict(int)
    for r in rows:
        if r["family"] == "all":
            for name, count in r["set_aside_why"].items():
                why[name] += count
    lines += ["", "## Why cases were set aside", ""]
    lines += [f"- {name}: {count}" for name, count in sorted(why.items())] or ["- none"]
    lines += ["", *_not_drawn_markdown(payload.get("not_drawn") or asdict(NotDrawn()))]
    lines += ["", "## Machine", "", environment_markdown(env)]
    return "\n".join(lines) + "\n"


def _failures_markdown(failures: list[dict[str, Any]]) -> list[str]:
    """Each unexplained failure with its reproduction: the first :data:`SHOWN_FAILURES` of each
    function × dtype in full, the rest counted (every one is in ``evidence.json``)."""
    if not failures:
        return []
    lines = ["## Unexplained failures", "",
             "Each case below failed a check of the suite (the same checks and bounds as the "
             "properties) and no ledger entry of this target sets it aside: a bug of the target, "
             "a divergence to pin in the ledger (`lossproofs/ledger/`), or a mistake of the "
             "reference or the strategy. The reproduction runs the call and the check.", ""]
    shown: dict[tuple[str, str], int] = defaultdict(int)
    for k, f in enumerate(failures, 1):
        cell = (f["function"], f["dtype"])
        shown[cell] += 1
        if shown[cell] > SHOWN_FAILURES:
            continue
        where = "size tier" + (f", stratum {f['stratum']}" if f["stratum"] else "") if (
            f["tier"] == "large") else "ordinary draw"
        lines += [f"### {k}. {f['function']} {f['dtype']}: {', '.join(f['failed'])} ({where})",
                  "", "```", f["case"], f["message"], "```", ""]
        if f["unpredicated"]:
            lines += ["Ledger entries of this target for the same function and check have no "
                      "predicate, so they set nothing aside (they may describe this mechanism; "
                      "a predicate in the ledger would let the checks set it aside): "
                      + "; ".join(f"*{name}*" for name in f["unpredicated"]) + ".", ""]
        lines += ["```python", f["reproduction"], "```", ""]
    more = {cell: count - SHOWN_FAILURES for cell, count in shown.items()
            if count > SHOWN_FAILURES}
    if more:
        lines += ["Not shown here (every one is in `evidence.json`): "
                  + "; ".join(f"{count} more of {function} {dtype}"
                              for (function, dtype), count in more.items()) + ".", ""]
    return lines


def failure_summary(failures: list[Failure]) -> str:
    """``function dtype what (count)`` for each kind of failure, for the terminal."""
    counts: dict[str, int] = defaultdict(int)
    for f in failures:
        counts[f"{f.function} {f.dtype} {', '.join(f.failed)}"] += 1
    return "; ".join(f"{what} ({count})" for what, count in counts.items())


def _not_drawn_markdown(not_drawn: dict[str, Any]) -> list[str]:
    lines = ["## Not drawn for this target", ""]
    for function, families in sorted(not_drawn["declared"].items()):
        lines += [f"- {function}: {family}: {why}" for family, why in sorted(families.items())]
    for function, why in sorted(not_drawn["missing"].items()):
        lines.append(f"- {function}: not provided ({why})")
    for function, why in sorted(not_drawn["undrawable"].items()):
        lines.append(f"- {function}: nothing drawn ({why})")
    for s in not_drawn["strata"]:
        lines.append(f"- {s['function']}: size-tier stratum *{s['stratum']}* skipped "
                     f"({s['why']})")
    for what, count in sorted(not_drawn["drawn_anyway"].items()):
        lines.append(f"- {what}: {count} case(s) drawn although declared out, not run (a "
                     "lossproofs strategy bug: please report it)")
    if len(lines) == 2:
        lines.append("- nothing: the target declares no family out and provides every function "
                     "checked")
    return lines


def command_line(args: argparse.Namespace) -> str:
    """The options of a run as a ``lossproofs evidence`` command (without ``--out``)."""
    parts = ["lossproofs evidence", f"--target {args.target}"]
    parts.append("--quick" if args.quick and args.cases is None else
                 f"--cases {args.cases if args.cases is not None else CI_CASES}")
    parts.append(f"--seed {args.seed}")
    if list(args.functions) != list(FUNCTION_NAMES):
        parts.append("--functions " + " ".join(args.functions))
    if list(args.dtypes) != list(DTYPES):
        parts.append("--dtypes " + " ".join(args.dtypes))
    return " ".join(parts)


def _parser(prog: str = "python -m lossproofs evidence") -> argparse.ArgumentParser:

    p = argparse.ArgumentParser(prog=prog, description=description(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="torch", help="the implementation; " + TARGET_OPTION_HELP)
    p.add_argument("--quick", action="store_true", help=f"{QUICK_CASES} cases per cell")
    p.add_argument("--cases", type=int, help=f"cases per function × dtype (default {CI_CASES})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--functions", nargs="*", choices=FUNCTION_NAMES, default=list(FUNCTION_NAMES))
    p.add_argument("--dtypes", nargs="*", choices=DTYPES, default=list(DTYPES))
    p.add_argument("--out", help="output directory (default results/evidence/<stamp>-<device>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing result")
    return p


def main(argv: list[str] | None = None, prog: str = "python -m lossproofs evidence") -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    n = args.cases if args.cases is not None else (QUICK_CASES if args.quick else CI_CASES)
    if n < 1:
        parser.error(f"--cases {n}: must be at least 1")
    try:
        impl = get_target(args.target)
    except (ValueError, RuntimeError, ImportError) as e:
        parser.error(f"--target {args.target}: {e}")
    try:
        json_path, md_path = result_paths(args.out, "evidence", impl.device, args.overwrite)
    except FileExistsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        found = run(impl, args.functions, args.dtypes, n, args.seed,
                    progress=lambda line: print(line, flush=True))
    payload = to_json(impl, found.rows, n, args.seed, found.failures, found.not_drawn,
                      command_line(args))
    write_json(json_path, payload, args.overwrite)
    write_text(md_path, to_markdown(payload), args.overwrite)
    print(f"wrote {json_path} and {md_path}")
    if found.failures:
        print(f"{len(found.failures)} unexplained failure(s), no ledger entry of {impl.name} "
              f"sets them aside: {failure_summary(found.failures)} (reproductions under "
              f"'Unexplained failures' in {md_path})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
