"""What each ``acc_policy`` of torch's chunked ``F.linear_cross_entropy`` costs in accuracy,
against the exact oracle: ``python -m lossproofs accuracy-linear [--out DIR] [--overwrite]``.

Runs :func:`lossproofs.oracle_linear.ulp_study` (torch's reference path and every chunked
policy, with and without a float32 ``acc_dtype`` for the half types, on the ordinary,
extreme-logit and large-vocabulary strata; mean reduction, bias and class weights, a quarter of
the targets ignored) and writes ``linear_cross_entropy.json`` (every record, with the
environment) and ``linear_cross_entropy.md``: per dtype and policy the worst error over the
strata of the loss and of each gradient, in ulps of the dtype, raw and *floored* (in ulps of
``max(|exact|, floor)``, the floor being what a backward-stable matmul-then-cross-entropy commits
to; see :func:`lossproofs.oracle_linear.floors`). Floored counts are what to compare between
policies; raw counts show where a tiny exact value makes any rounding look large.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from lossproofs.environment import (
    default_output_dir,
    environment,
    environment_markdown,
    write_json,
    write_text,
)
from lossproofs.helptext import description

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
    import torch.nn.functional as F

    if not hasattr(F, "linear_cross_entropy"):
        p.error("this torch has no F.linear_cross_entropy (torch ≥ 2.13)")
    from lossproofs.linear_targets import UNAVAILABLE_ACC_POLICIES
    from lossproofs.oracle_linear import strata, ulp_study

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
