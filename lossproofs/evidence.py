"""``lossproofs evidence``: what the properties actually drew, and what that proves.

"N passed" proves only as much as the inputs reached. This report draws the suite's own
ordinary strategies with a fixed seed (the ``ci`` profile's example count by default), runs the
forward and gradient checks against a target exactly as the properties do (known divergences
set aside element by element, :mod:`lossproofs.ledger`), and counts, for every function × dtype
× parameter family (the case's tags, plus ``all``):

- ``cases``: cases drawn; ``nontrivial``: cases with at least two elements, non-constant
  logits and at least one non-zero expected value, where a wrong kernel can show;
- ``set_aside``: cases of which nothing was compared (known divergences cover both the forward
  value and the gradient as a whole); ``forward_set_aside`` and ``gradient_set_aside``: cases
  whose forward value, or gradient, was not compared (a torch backward that raises, say), with
  the entries that did it in ``set_aside_why``; ``elements_set_aside`` / ``elements``: the
  element-level set-asides of the results that were compared;
- ``failed``: cases that failed a check (a conforming target has none);
- ``max_N``, ``max_C``, ``max_K``, ``max_total_weight``: the largest batch (rows), class count,
  K-dim spatial extent and total class weight (Σ w[t] over kept targets; Σ w for BCE) reached.

``evidence.json`` (a list ``rows``, the environment, the seed and counts) and ``evidence.md`` are
written to ``--out`` (never over an existing result without ``--overwrite``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lossproofs import checks
from lossproofs.cases import DTYPES, Case
from lossproofs.conformance_run import DEFAULT_SEED, sample_cases
from lossproofs.environment import (
    environment,
    environment_markdown,
    result_paths,
    write_json,
    write_text,
)
from lossproofs.registry import FUNCTION_NAMES, LOSSES
from lossproofs.targets import Target, get_target

CI_CASES = 100  # the ci profile's examples per property
QUICK_CASES = 12
MAX_SET_ASIDE_SHARE = 0.05  # of a function × dtype's draws; more hides too much evidence
LARGE_CASES = 2  # per size-tier stratum, as test_large draws under the ci profile


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
def collect(impl: Target, functions=FUNCTION_NAMES, dtypes=DTYPES, n: int = CI_CASES,
            seed: int = DEFAULT_SEED, progress=None, large: bool = True) -> list[Row]:
    """Draw, check and count; one :class:`Row` per function × dtype × family reached."""
    rows: list[Row] = []
    for function in functions:
        if impl.get(function) is None:
            continue
        declared = LOSSES[function]
        for dtype in dtypes:
            table: dict[str, Row] = {}
            tier = _large_cases(function, dtype, seed) if large else []
            for i, case in enumerate(sample_cases(function, dtype, n, seed) + tier):
                if impl.excluded(case):  # outside the target's declared capabilities
                    continue
                expected = checks.reference_forward(case)
                if declared.kind == "linear":  # three gradients at the matmul's scales
                    from lossproofs import linear_targets

                    outcomes = [linear_targets.check_forward(impl, case),
                                linear_targets.check_gradients(impl, case, seed + i)]
                else:
                    wrt_target = (declared.differentiable_target
                                  and case.arrays[1].dtype.kind == "f")
                    outcomes = [checks.check_forward(impl, case),
                                checks.check_gradients(impl, case, seed + i, wrt_target)]
                reached = sizes(case)
                tier = "large" if "large" in case.tags else "ordinary"
                for family in ("all", tier, *sorted(case.tags - {"large"})):
                    row = table.setdefault(family, Row(function, dtype, family))
                    _count(row, case, expected, outcomes, reached)
            rows.extend(table.values())
            if progress:
                a = table["all"]
                progress(f"{function} {dtype}: {a.cases} cases, {a.nontrivial} non-trivial, "
                         f"{a.set_aside} set aside, {a.failed} failed")
    return rows


def _count(row: Row, case: Case, expected, outcomes, reached) -> None:
    row.cases += 1
    row.nontrivial += checks.nontrivial(case, expected)
    whole = [o for o in outcomes if o.status == "set aside"]
    forward, gradient = (o.status == "set aside" for o in outcomes)
    row.forward_set_aside += forward
    row.gradient_set_aside += gradient
    if forward and gradient:
        row.set_aside += 1
    if whole:
        for o in whole:
            for name in o.divergences.split(", "):
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


def _large_cases(function: str, dtype: str, seed: int) -> list[Case]:
    """The size tier's draws (``lossproofs/strategies/large.py``; strata at random, on average
    as many per stratum as its properties draw under the ci profile): tagged ``large``, so they
    count in that family and in ``all`` (the largest sizes reached), not in the set-aside
    budget of the ordinary draws."""
    from hypothesis import strategies as st

    from lossproofs.strategies.large import STRATA, large_cases
    from lossproofs.strategies.sampling import sample

    strata = STRATA.get(function, ())
    if not strata:
        return []
    return sample(st.sampled_from(strata).flatmap(
        lambda stratum: large_cases(function, stratum, dtype)), LARGE_CASES * len(strata), seed)


def over_budget(rows: list[Row]) -> list[Row]:
    """The function × dtype rows whose whole-case set-aside share exceeds the budget."""
    return [r for r in rows if r.family == "ordinary" and r.set_aside_share > MAX_SET_ASIDE_SHARE]


# -- writing ---------------------------------------------------------------------------------------
def to_json(impl: Target, rows: list[Row], n: int, seed: int) -> dict[str, Any]:
    env = environment(impl.device)
    env["target"] = {"name": impl.name, "description": impl.description,
                     "version": impl.version}
    env["hypothesis_profile"] = "seeded draws of the ordinary strategies (no shrinking)"
    return {"environment": env, "cases_per_function_and_dtype": n, "seed": seed,
            "max_set_aside_share": MAX_SET_ASIDE_SHARE,
            "over_budget": [f"{r.function} {r.dtype}" for r in over_budget(rows)],
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
        "`large`). *Non-trivial*: ≥ 2 elements, non-constant logits and a non-zero expected "
        "value. *Set aside*: cases of which nothing was compared (budget ≤ "
        f"{100 * payload['max_set_aside_share']:.0f} % of the ordinary draws per function × "
        "dtype); *forward / gradient set aside*: cases whose forward value or gradient a known "
        "divergence covers as a whole (a backward that raises, every element affected); "
        "*elements set aside*: the element-level set-asides of compared results. The maxima "
        "include the size tier.",
        "",
    ]
    over = payload["over_budget"]
    lines += [f"**Over the set-aside budget: {', '.join(over)}.**" if over
              else "Every function × dtype is within the set-aside budget.", ""]
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
    lines += ["", "## Machine", "", environment_markdown(env)]
    return "\n".join(lines) + "\n"


def _parser(prog: str = "python -m lossproofs evidence") -> argparse.ArgumentParser:
    from lossproofs.cli import TARGET_OPTION_HELP, description

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
        rows = collect(impl, args.functions, args.dtypes, n, args.seed,
                       progress=lambda line: print(line, flush=True))
    payload = to_json(impl, rows, n, args.seed)
    write_json(json_path, payload, args.overwrite)
    write_text(md_path, to_markdown(payload), args.overwrite)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
