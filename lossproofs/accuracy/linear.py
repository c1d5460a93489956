"""What each ``acc_policy`` of torch's chunked ``F.linear_cross_entropy`` costs in accuracy,
against the exact oracle: ``python -m lossproofs accuracy-linear [--out DIR] [--overwrite]``.

Runs :func:`ulp_study` (torch's reference path and every chunked
policy, with and without a float32 ``acc_dtype`` for the half types, on the ordinary,
extreme-logit and large-vocabulary strata; mean reduction, bias and class weights, a quarter of
the targets ignored) and writes ``linear_cross_entropy.json`` (every record, with the
environment) and ``linear_cross_entropy.md``: per dtype and policy the worst error over the
strata of the loss and of each gradient, in ulps of the dtype, raw and *floored* (in ulps of
``max(|exact|, floor)``, the floor being what a backward-stable matmul-then-cross-entropy commits
to; see :func:`floors`). Floored counts are what to compare between
policies; raw counts show where a tiny exact value makes any rounding look large.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lossproofs.cases import Case
from lossproofs.comparison import linear_error_terms
from lossproofs.environment import (
    default_output_dir,
    environment,
    environment_markdown,
    write_json,
    write_text,
)
from lossproofs.helptext import description
from lossproofs.oracle import ulp_distance
from lossproofs.oracle.linear import (
    floored_ulps,
    linear_cross_entropy,
    linear_cross_entropy_backward,
    strata,
)
from lossproofs.targets.linear import ACC_POLICIES, UNAVAILABLE_ACC_POLICIES

QUANTITIES = ("forward", "input", "linear_weight", "linear_bias")
DTYPES = ("float64", "float32", "float16", "bfloat16")


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (dtype, policy): the worst raw and floored ulps of each quantity over the strata,
    and the stratum where the floored worst occurred."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        row = rows.setdefault((r["dtype"], r["policy"]), {"dtype": r["dtype"],
                                                          "policy": r["policy"]})
        worst = row.get(r["quantity"])
        if worst is None or r["floored"] > worst["floored"]:
            row[r["quantity"]] = {"raw": max(r["raw"], (worst or {}).get("raw", 0.0)),
                                  "floored": r["floored"], "stratum": r["stratum"]}
        else:
            worst["raw"] = max(worst["raw"], r["raw"])
    order = {d: i for i, d in enumerate(DTYPES)}
    return sorted(rows.values(), key=lambda row: order.get(row["dtype"], len(order)))


def _cell(q: dict[str, Any] | None) -> str:
    if q is None:
        return "—"
    return f"{q['floored']:.3g} ({q['raw']:.3g})"


def markdown(report: dict[str, Any]) -> str:
    lines = ["# linear_cross_entropy: accuracy of each acc_policy against the exact oracle", "",
             environment_markdown(report["environment"]), "",
             "Worst error over the strata, in ulps of the dtype: **floored** (at "
             "max(|exact|, the backward-stable floor)), raw in parentheses. Loss = the mean "
             "reduction's value; `input`, `linear_weight`, `linear_bias` = its gradients "
             "(grad_output 1). The chunked path runs with `batch_chunk_size = N // 3` (a "
             "non-divisor of N).", "",
             "| dtype | policy | loss | ∂/∂input | ∂/∂linear_weight | ∂/∂linear_bias |",
             "|---|---|---:|---:|---:|---:|"]
    for row in report["summary"]:
        lines.append(f"| {row['dtype']} | {row['policy']} | "
                     + " | ".join(_cell(row.get(q)) for q in QUANTITIES) + " |")
    lines += ["", "## Every record", "",
              "| stratum | dtype | policy | quantity | floored ulps | raw ulps |",
              "|---|---|---|---|---:|---:|"]
    lines += [f"| {r['stratum']} | {r['dtype']} | {r['policy']} | {r['quantity']} | "
              f"{r['floored']:.3g} | {r['raw']:.3g} |" for r in report["records"]]
    lines += ["", f"Strata (seed {report['settings']['seed']}): "
              + "; ".join(report["strata"]) + ".", ""]
    missing = report["settings"].get("unavailable_acc_policies") or {}
    lines += [f"Not measured: acc_policy `{name}`: {why}." for name, why in missing.items()]
    lines += [""] if missing else []
    return "\n".join(lines)


# -- the ULP study -------------------------------------------------------------------------------
def _round_to(a: np.ndarray, dtype: str) -> np.ndarray:
    return torch.from_numpy(np.asarray(a, dtype=np.float64)).to(getattr(torch, dtype)).double(
    ).numpy()


def floors(case) -> dict[str, np.ndarray]:
    """Elementwise floors of the ULP count: the matmul's first-order error terms
    (:func:`lossproofs.comparison.linear_error_terms`, the error model the checks take their
    scales from), without the checks' ``≥ 1`` clamp."""
    return linear_error_terms(case)


ALL_POLICIES = (("reference path", None), ("accurate", None), ("balanced", None),
                ("compact", None), ("auto", None), ("accurate", "float32"),
                ("balanced", "float32"), ("compact", "float32"))


def _offered_policies() -> tuple[tuple[str, str | None], ...]:
    """:data:`ALL_POLICIES` less the acc_policy values the installed torch does not have
    (:data:`lossproofs.targets.linear.UNAVAILABLE_ACC_POLICIES`: ``balanced`` from torch 2.14),
    and any it has that the list does not name, with and without a float32 ``acc_dtype``."""
    out = [(p, a) for p, a in ALL_POLICIES if p == "reference path" or p in ACC_POLICIES]
    named = {p for p, _ in ALL_POLICIES}
    out += [(p, a) for p in ACC_POLICIES if p not in named for a in (None, "float32")]
    return tuple(out)


POLICIES = _offered_policies()


def ulp_study(dtypes=("float64", "float32", "float16", "bfloat16"), policies=POLICIES,
              reductions=("mean",), seed: int = 0, strata_names=None) -> list[dict]:
    """Measure torch against the oracle; one record per stratum × dtype × (acc_policy,
    acc_dtype) × reduction × quantity with ``raw`` and ``floored`` ulps (the worst element).
    A float32 ``acc_dtype`` is tried with float16/bfloat16 only (torch rejects it otherwise);
    the chunked runs use ``batch_chunk_size = N // 3`` (a non-divisor for the strata's N)."""
    records = []
    for sname, s in strata(seed).items():
        if strata_names and sname not in strata_names:
            continue
        for dtype in dtypes:
            x = _round_to(s["input"], dtype)
            w = _round_to(s["linear_weight"], dtype)
            kw = {k: _round_to(v, dtype) for k, v in s["kwargs"].items()}
            t = s["target"]
            for reduction in reductions:
                exact = linear_cross_entropy(x, w, t, reduction=reduction, **kw)
                g = np.ones(exact.shape)
                exact_grads = linear_cross_entropy_backward(g, x, w, t, reduction=reduction,
                                                            **kw)
                case = Case("linear_cross_entropy", (x, w, t), {**kw, "reduction": reduction},
                            "float64")
                floor = floors(case)
                for policy, acc_dtype in policies:
                    if acc_dtype and dtype not in ("float16", "bfloat16"):
                        continue
                    dt = getattr(torch, dtype)
                    tx = torch.from_numpy(x).to(dt).requires_grad_()
                    tw = torch.from_numpy(w).to(dt).requires_grad_()
                    tb = torch.from_numpy(kw["linear_bias"]).to(dt).requires_grad_()
                    tcw = torch.from_numpy(kw["weight"]).to(dt)
                    options = None if policy == "reference path" else (
                        nn.LinearCrossEntropyOptions(
                            batch_chunk_size=max(1, x.shape[0] // 3), chunking_method=None,
                            acc_policy=policy,
                            acc_dtype=getattr(torch, acc_dtype) if acc_dtype else None))
                    out = F.linear_cross_entropy(tx, tw, torch.from_numpy(t), linear_bias=tb,
                                                 weight=tcw, reduction=reduction,
                                                 options=options)
                    grads = torch.autograd.grad(out, (tx, tw, tb),
                                                torch.from_numpy(g).to(out.dtype))
                    got = {"forward": out.detach().double().numpy(),
                           **{k: v.double().numpy() for k, v in
                              zip(("input", "linear_weight", "linear_bias"), grads)}}
                    want = {"forward": exact, "input": exact_grads[0],
                            "linear_weight": exact_grads[1], "linear_bias": exact_grads[2]}
                    name = policy + (f", acc_dtype={acc_dtype}" if acc_dtype else "")
                    for q in got:
                        records.append(dict(
                            stratum=sname, dtype=dtype, policy=name, reduction=reduction,
                            quantity=q,
                            raw=float(np.max(ulp_distance(got[q], want[q], dtype), initial=0)),
                            floored=floored_ulps(got[q], want[q], floor[q], dtype)))
    return records


def _table(records: list[dict]) -> str:
    lines = ["| stratum | dtype | policy | quantity | raw ulps | floored ulps |",
             "|---|---|---|---|---|---|"]
    for r in records:
        lines.append(f"| {r['stratum']} | {r['dtype']} | {r['policy']} | {r['quantity']} | "
                     f"{r['raw']:.3g} | {r['floored']:.3g} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None,
         prog: str = "python -m lossproofs accuracy-linear") -> int:
    p = argparse.ArgumentParser(prog=prog, description=description(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default results/accuracy-linear/<stamp>-cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace existing results")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtypes", nargs="*", choices=DTYPES, default=list(DTYPES))
    args = p.parse_args(argv)
    if not hasattr(F, "linear_cross_entropy"):
        p.error("this torch has no F.linear_cross_entropy (torch ≥ 2.13)")
    out = args.out or default_output_dir("accuracy-linear")
    t0 = time.perf_counter()
    records = ulp_study(dtypes=tuple(args.dtypes), seed=args.seed)
    names = {name: (*s["input"].shape, s["linear_weight"].shape[0])
             for name, s in strata(args.seed).items()}
    report = {"settings": {"seed": args.seed, "dtypes": args.dtypes,
                           "unavailable_acc_policies": dict(UNAVAILABLE_ACC_POLICIES)},
              "environment": environment("cpu"),
              "strata": [f"{k}: N × in × C = {' × '.join(map(str, v))}"
                         for k, v in names.items()],
              "summary": summarize(records), "records": records,
              "seconds": round(time.perf_counter() - t0, 1)}
    write_json(out / "linear_cross_entropy.json", report, overwrite=args.overwrite)
    write_text(out / "linear_cross_entropy.md", markdown(report), overwrite=args.overwrite)
    print(f"wrote {out}/linear_cross_entropy.{{json,md}} in {report['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
