"""``python -m lossproofs accuracy``: ulp error of each implementation against the exact oracle.

For every function × dtype × implementation (torch fused, torch composed
``nll_loss(log_softmax)``, the NumPy reference, scipy.special where it has the function, and the
named naive formulations of :mod:`lossproofs.naive`) this measures, over a fixed seeded set of
problems per extreme stratum (:mod:`lossproofs.strategies.extreme`) plus the pinned worst cases
of the targeted search (:data:`PINNED`), the maximum and 99th-percentile distance in ulps of the
dtype from :mod:`lossproofs.oracle`, forward and gradient, and how often a result is non-finite
where the exact answer is finite.

``--target T`` (any target of :func:`lossproofs.targets.get_target`: ``nn``, ``compile``,
``cuda``, ``module:package.module``) measures T's functions in place of torch's fused ones; the
JSON and Markdown name the target.

The errors are counted by :mod:`lossproofs.error_model`, the same code the accuracy properties
(``lossproofs/suite/test_accuracy.py``) run, so the report users cite comes from the code CI
checks; the implementations compared are those of :mod:`lossproofs.accuracy_implementations`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from lossproofs import ledger
from lossproofs.accuracy_implementations import implementations
from lossproofs.cases import Case
from lossproofs.environment import (
    default_output_dir,
    environment,
    environment_markdown,
    write_json,
    write_text,
)
from lossproofs.error_model import (
    error_floors,
    errors,
    exact,
    floored_ulps,
    intermediate_overflow,
)
from lossproofs.helptext import TARGET_OPTION_HELP, description
from lossproofs.registry import GENERIC_FUNCTIONS
from lossproofs.strategies import extreme
from lossproofs.targets import Target, get_target
from lossproofs.tolerances import ULP_BOUNDS

# The functions with an exact oracle and extreme strata: every registered one the generic
# checks run (Loss.generic_checks; linear_cross_entropy's study is lossproofs.oracle.linear).
FUNCTIONS = GENERIC_FUNCTIONS

# ---------------------------------------------------------------------------- pinned cases
# Worst inputs found by the targeted search (lossproofs/suite/test_accuracy.py,
# hypothesis.target), kept as data so the tests pin them with @example and the report measures
# them. Arrays are given as found; the error model rounds them to the case's dtype, as torch does.
_PINNED_TAG = extreme.stratum_tag("pinned")
PINNED: list[Case] = [
    # log_softmax of a dominant class: the exact value is −Σ_{j≠k} exp(x_j − m), which torch
    # rounds to 0 because it takes log(S) rather than log1p(S − 1).
    Case("log_softmax", (np.array([[0.0, -30.0]]),), {"dim": 1}, dtype="float32",
         tags=_PINNED_TAG, grad_output=np.array([[1.0, -0.5]])),
    # float16 logits past the exp overflow threshold (11.09) with a large gap.
    Case("cross_entropy", (np.array([[12.0, -12.0, 11.5]]), np.array([1])),
         {"reduction": "mean"}, dtype="float16", tags=_PINNED_TAG, grad_output=np.array(1.0)),
    # BCE with logits at x = 1e3 with the matching target: exact loss softplus(−1e3)·pw ≈ 0.
    Case("binary_cross_entropy_with_logits", (np.array([1000.0, -1000.0]), np.array([0.0, 1.0])),
         {"reduction": "none", "pos_weight": np.array([3.0, 3.0])}, dtype="float32",
         tags=_PINNED_TAG, grad_output=np.array([1.0, 1.0])),
]


# ---------------------------------------------------------------------------- the report


def _summary(values: list[np.ndarray]) -> dict[str, Any]:
    v = np.concatenate([np.ravel(a) for a in values]) if values else np.array([])
    if v.size == 0:
        return {"n": 0, "max": None, "p99": None, "nonfinite": 0}
    finite = v[np.isfinite(v)]
    return {"n": int(v.size),
            "max": float(v.max()),
            "p99": float(np.quantile(v, 0.99, method="higher")),
            "nonfinite": int((~np.isfinite(v)).sum()),
            "max_finite": float(finite.max()) if finite.size else None}


def _empty_collection() -> dict[str, Any]:
    """One implementation's errors per direction, raw and fair (counts are added as met)."""
    return {"forward": [], "gradient": [], "forward_fair": [], "gradient_fair": []}


def run_report(per_stratum: int, max_classes: int, max_batch: int, seed: int,
               functions=FUNCTIONS, dtypes=extreme.DTYPES, progress=print,
               target: Target | None = None) -> dict[str, Any]:
    """Measure every implementation of :func:`implementations` (``target`` in torch's place)
    on the seeded strata and the pinned cases; ``{"rows": [...], "missing": {...}}``."""
    rows = []
    missing = {}
    for function in functions:
        if target is not None and target.get(function) is None:
            missing[function] = target.missing_reason(function)
        for dtype in dtypes:
            problems = []
            for s_index, stratum in enumerate(extreme.strata_for(function)):
                rng = np.random.default_rng([seed, FUNCTIONS.index(function),
                                             extreme.DTYPES.index(dtype), s_index])
                count = 1 if stratum in ("large_C", "large_batch") else per_stratum
                problems += [extreme.sample(rng, function, stratum, dtype,
                                            max_classes=max_classes, max_batch=max_batch)
                             for _ in range(count)]
            problems += [p for p in PINNED if p.function == function and p.dtype == dtype]
            t0 = time.perf_counter()
            exacts = [exact(p) for p in problems]
            floors = [error_floors(p) for p in problems]
            collected: dict[str, dict[str, list[np.ndarray]]] = {}
            worst: dict[tuple[str, str], dict[str, Any]] = {}
            for name, impl in implementations(function, target).items():
                for p, ex, fl in zip(problems, exacts, floors):
                    if target is not None and name == target.name and \
                            target.excluded_arguments(function, p.params):
                        # outside the target's declared capabilities: not run (as in the
                        # accuracy properties), counted in the row
                        collected.setdefault(name, _empty_collection())
                        collected[name]["not_provided"] = collected[name].get(
                            "not_provided", 0) + 1
                        continue
                    try:
                        result = impl(p)
                    except Exception as e:  # a target's kernel that raises
                        if target is None or name != target.name:
                            raise  # torch and the references must not
                        # counted and named in the row, not measured: a crash on one problem
                        # must not hide the others (a ledger entry should explain it)
                        c = collected.setdefault(name, _empty_collection())
                        c["raised"] = c.get("raised", 0) + 1
                        first_line = (str(e).splitlines() or [""])[0][:160]
                        c.setdefault("raised_example", f"{type(e).__name__}: {first_line} "
                                     f"({extreme.stratum_of(p)})")
                        continue
                    if result is None:
                        continue
                    c = collected.setdefault(name, _empty_collection())
                    overflow = intermediate_overflow(p)
                    c.setdefault("overflow", 0)
                    c.setdefault("problems", 0)
                    c["overflow"] += int(overflow)
                    c["problems"] += 1
                    for i, direction in enumerate(("forward", "gradient")):
                        if result[i] is None:
                            continue
                        err = errors(result[i], ex[i], dtype)
                        c[direction].append(err)
                        if not overflow:  # those are counted, and pinned by strict xfails
                            c[direction + "_fair"].append(
                                floored_ulps(result[i], ex[i], fl[i], dtype))
                        key = (direction, name)
                        if err.size and (key not in worst
                                         or np.nanmax(err) > worst[key]["ulps"]):
                            worst[key] = {"ulps": float(np.nanmax(err)),
                                          "stratum": extreme.stratum_of(p)}
            for name, c in collected.items():
                row = {"function": function, "dtype": dtype, "implementation": name,
                       "problems": c.get("problems", 0),
                       "intermediate_overflow_problems": c.get("overflow", 0)}
                if c.get("not_provided"):
                    row["not_provided_problems"] = c["not_provided"]
                if c.get("raised"):
                    row["raised_problems"] = c["raised"]
                    row["raised_example"] = c["raised_example"]
                for direction in ("forward", "gradient"):
                    row[direction] = _summary(c[direction])
                    row[direction]["worst_stratum"] = worst.get((direction, name), {}).get(
                        "stratum")
                    row[direction]["fair"] = _summary(c[direction + "_fair"])
                    bound = ULP_BOUNDS.get((function, dtype, direction))
                    row[direction]["bound"] = bound
                rows.append(row)
            progress(f"{function:34s} {dtype:9s} {len(problems):3d} problems "
                     f"{time.perf_counter() - t0:6.1f} s")
    return {"rows": rows, "missing": missing}


def _fmt(s: dict[str, Any]) -> str:
    if not s["n"]:
        return "–"
    top = "∞" if s["max"] == float("inf") else f"{s['max']:.3g}"
    p99 = "∞" if s["p99"] == float("inf") else f"{s['p99']:.3g}"
    extra = f" ({s['nonfinite']} non-finite)" if s["nonfinite"] else ""
    return f"{top} / {p99}{extra}"


def _fair(s: dict[str, Any]) -> str:
    f = s.get("fair") or {"n": 0}
    if not f["n"]:
        return "–"
    top = "∞" if f["max"] == float("inf") else f"{f['max']:.3g}"
    bound = s.get("bound")
    flag = " ✗" if bound is not None and f["max"] > bound else ""
    return f"{top}{flag} ({bound})"


def _target_line(report: dict[str, Any]) -> str:
    t = report.get("target") or {"name": "torch", "description": "torch.nn.functional on CPU",
                                  "version": "", "device": "cpu"}
    line = (f"Implementation under test: **`{t['name']}`**, {t['description']} ({t['version']}, "
            f"device `{t['device']}`): the rows named `{t['name']}`; the other rows (torch "
            "composed, the reference, scipy, the naive formulas) are the same comparisons for "
            "every target.")
    missing = report.get("missing") or {}
    if missing:
        line += " Not provided: " + "; ".join(f"{f} ({why})" for f, why in missing.items())
        line += "."
    return line


def _known_departures(report: dict[str, Any]) -> list[str]:
    """The ledger's accuracy entries of the target's families: what a `✗` of its rows is."""
    families = set((report.get("target") or {}).get("families", ()))
    # a framework's own forward and gradient entries explain its rows too (e.g. a declared
    # clamp convention on the near-0/1 stratum); torch's are in the README's ledger table
    entries = [d for d in ledger.LEDGER if d.families & families and ledger.explains_accuracy(d)]
    if not entries:
        return []
    return ["", "## Known departures of this target's family (the ledger)", "",
            "| divergence | function | check | example dtype | direction | upstream |",
            "|---|---|---|---|---|---|",
            *[f"| {d.name} | {d.function} | {d.check} | {d.example.dtype} | {d.direction} | "
              f"{d.upstream or 'none found'} |" for d in entries]]


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Accuracy against the exact oracle",
        "",
        "<!-- generated by `python -m lossproofs accuracy`; do not edit by hand -->",
        "",
        f"Settings: `{json.dumps(report['settings'])}`",
        "",
        _target_line(report),
        "",
        "Each cell: **max / 99th percentile** distance from the exact (mpmath) answer, in ulps "
        "of the dtype, over elements whose exact value is finite and representable in the "
        "dtype; `(k non-finite)` counts results that are inf/NaN where the exact answer is "
        "finite. Inputs are rounded to the dtype first; the exact answer is computed on those "
        "rounded inputs. Forward and gradient (with respect to the input) columns; `–`: not "
        "applicable (scipy has no gradients and no half types; the reference is float64).",
        "",
        "**fair**: the same errors counted in ulps of max(|exact|, floor), where the floor is "
        "the sum of magnitudes of the terms the documented formula combines (what a "
        "backward-stable evaluation guarantees), with subnormal exact values counted in units "
        "of the smallest normal; `(bound)` is `lossproofs.tolerances.ULP_BOUNDS`, `✗` marks a "
        "maximum beyond it. **overflow**: problems (of those measured) where torch's formula "
        "forms an intermediate beyond the dtype's max although the result is representable "
        "(`lossproofs.error_model.intermediate_overflow`); they are in the raw columns (as ∞) but "
        "not in the fair one, and are pinned by the strict xfails "
        "`test_low_precision_*_overflows_intermediate`.",
        "",
        "## Machine",
        "",
        environment_markdown(report["environment"]),
        "",
        "## Results",
        "",
        "| function | dtype | implementation | forward max / p99 | gradient max / p99 "
        "| fair fwd / grad (bound) | overflow | worst stratum (fwd, grad) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        fair = " / ".join(_fair(r[d]) for d in ("forward", "gradient"))
        lines.append(
            f"| {r['function']} | {r['dtype']} | {r['implementation']} | {_fmt(r['forward'])} "
            f"| {_fmt(r['gradient'])} | {fair} | {r['intermediate_overflow_problems']}/"
            f"{r['problems']} | {r['forward'].get('worst_stratum')}, "
            f"{r['gradient'].get('worst_stratum')} |")
    skipped = [f"{r['function']} {r['dtype']}: {r['not_provided_problems']}"
               for r in report["rows"] if r.get("not_provided_problems")]
    if skipped:
        lines += ["", "Problems outside the target's declared capabilities (its NOT_PROVIDED "
                  "parameters), not run for it: " + "; ".join(skipped) + "."]
    raised = [f"{r['function']} {r['dtype']}: {r['raised_problems']} ({r['raised_example']})"
              for r in report["rows"] if r.get("raised_problems")]
    if raised:
        lines += ["", "Problems on which the target raised instead of returning (not in the "
                  "columns; the known departures below name the cause): " + "; ".join(raised)
                  + "."]
    lines += _known_departures(report)
    lines += ["", "## Strata", ""]
    lines += [f"- `{s.name}`: {s.why}" for s in extreme.LOGIT_STRATA.values()]
    lines += [f"- `{k}` (BCE family): {v}" for k, v in extreme.BINARY_STRATA.items()]
    lines += ["- `pinned`: worst cases found by the targeted search "
              "(`lossproofs.accuracy.PINNED`)", ""]
    return "\n".join(lines) + "\n"


def _target(spec: str) -> Target:
    """``--target``'s type: the resolved target, or argparse's usage error naming ``spec``."""
    try:
        return get_target(spec)
    except (ValueError, RuntimeError, ImportError) as e:
        raise argparse.ArgumentTypeError(f"{spec}: {e}") from e


def main(argv: list[str] | None = None, prog: str = "python -m lossproofs accuracy") -> int:

    parser = argparse.ArgumentParser(prog=prog, description=description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="few problems per stratum, C ≤ 1e4, batches ≤ 512 (< 1 minute)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default results/accuracy/<stamp>-cpu)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing results")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--per-stratum", type=int, default=None,
                        help="problems per stratum (default 2 quick, 12 full)")
    parser.add_argument("--functions", nargs="*", default=list(FUNCTIONS), choices=FUNCTIONS)
    parser.add_argument("--dtypes", nargs="*", default=list(extreme.DTYPES),
                        choices=extreme.DTYPES)
    parser.add_argument("--target", default="torch", type=_target,
                        help="the implementation measured in torch's place; "
                             + TARGET_OPTION_HELP)
    args = parser.parse_args(argv)
    per = args.per_stratum if args.per_stratum is not None else (2 if args.quick else 12)
    if per < 1:
        parser.error(f"--per-stratum must be ≥ 1, got {per}")
    target = args.target
    max_classes, max_batch = (10_000, 512) if args.quick else (100_000, 2048)
    out = args.out or default_output_dir("accuracy", target.device)
    settings = {"quick": args.quick, "per_stratum": per, "max_classes": max_classes,
                "max_batch": max_batch, "seed": args.seed, "target": target.name}
    if tuple(args.dtypes) != tuple(extreme.DTYPES):
        settings["dtypes"] = list(args.dtypes)
    t0 = time.perf_counter()
    report = run_report(per, max_classes, max_batch, args.seed, tuple(args.functions),
                        tuple(args.dtypes), target=target)
    report = {"settings": settings, "environment": environment(target.device),
              "target": {"name": target.name, "description": target.description,
                         "version": target.version, "device": target.device,
                         "families": sorted(target.families)},
              **report, "seconds": round(time.perf_counter() - t0, 1)}
    write_json(out / "accuracy.json", report, overwrite=args.overwrite)
    write_text(out / "accuracy.md", markdown(report), overwrite=args.overwrite)
    print(f"wrote {out / 'accuracy.json'} and {out / 'accuracy.md'} "
          f"in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
