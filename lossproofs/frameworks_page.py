"""``python -m lossproofs.frameworks_page [--update docs/frameworks.md]``: the cross-framework page.

One table function × dtype × framework (torch, JAX/optax, TensorFlow, tinygrad) of agreement
with the suite's checks (from each framework's committed conformance report) and worst ULP
error against the exact oracle (from its committed accuracy report), then per framework what it
declares it does not provide, the conventions it follows on purpose, and its named divergences
(the ledger's entries of its family, and the findings records). Everything is read from the
committed JSON, the ledger and :mod:`lossproofs.frameworks.findings`; no framework is imported,
so the page regenerates (and ``tests/test_frameworks.py`` checks it is current) where none is
installed. Without ``--update`` the generated part is printed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lossproofs import ledger
from lossproofs.cases import DTYPES
from lossproofs.frameworks.findings import FINDINGS
from lossproofs.generated import section_command
from lossproofs.registry import FUNCTION_NAMES

REPOSITORY = Path(__file__).resolve().parents[1]
START, END = "<!-- frameworks:start -->", "<!-- frameworks:end -->"
# (column, ledger family, conformance report, accuracy report), paths from the repository root
FRAMEWORKS = (
    ("torch", "torch", "docs/conformance/torch-cpu", "docs/accuracy"),
    ("jax", "jax", "docs/conformance/jax-cpu", "docs/accuracy/jax-cpu"),
    ("tensorflow", "tensorflow", "docs/conformance/tensorflow-cpu", "docs/accuracy/tensorflow-cpu"),
    ("tinygrad", "tinygrad", "docs/conformance/tinygrad-cpu", "docs/accuracy/tinygrad-cpu"),
)


def _load(root: Path, folder: str, name: str) -> dict[str, Any] | None:
    path = root / folder / name
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _ulps(summary: dict[str, Any]) -> str:
    """The worst fair ulps of one direction, ``✗`` beyond its bound, ``–`` if unmeasured."""
    fair = summary.get("fair") or {"n": 0}
    if not fair["n"]:
        return "–"
    worst = fair["max"]
    text = "∞" if worst == float("inf") else f"{worst:.3g}"
    bound = summary.get("bound")
    return text + (" ✗" if bound is not None and worst > bound else "")


def _agreement(cell: dict[str, Any] | None, missing: str | None) -> str:
    if missing is not None:
        return "not provided"
    if cell is None:
        return "–"
    if not cell["cases"]:
        return f"not provided ({cell['not_provided']})" if cell["not_provided"] else "–"
    mark = "✗" if cell["failed"] else "✓"
    extra = [f"{cell['failed']} fail"] if cell["failed"] else []
    extra += [f"{cell['known']} known"] if cell["known"] else []
    extra += [f"{cell['not_provided']} n/p"] if cell["not_provided"] else []
    return f"{mark} {cell['passed']}/{cell['cases']}" + (f" ({', '.join(extra)})"
                                                         if extra else "")


def _table(reports: dict[str, tuple[dict | None, dict | None]],
           name_of: dict[str, str]) -> list[str]:
    columns = [column for column, *_ in FRAMEWORKS]
    lines = ["| function | dtype | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for function in FUNCTION_NAMES:
        for dtype in DTYPES:
            cells = []
            for column in columns:
                conformance, accuracy = reports[column]
                if conformance is None:
                    cells.append("no report")
                    continue
                missing = conformance["missing_functions"].get(function)
                cell = next((c for c in conformance["matrix"]
                             if (c["function"], c["family"], c["dtype"]) == (function, "all",
                                                                             dtype)), None)
                text = _agreement(cell, missing)
                row = next((r for r in (accuracy or {}).get("rows", [])
                            if (r["function"], r["dtype"], r["implementation"])
                            == (function, dtype, name_of[column])), None)
                if row is not None:
                    text += f" · {_ulps(row['forward'])} / {_ulps(row['gradient'])}"
                    if row.get("raised_problems"):
                        text += f" ({row['raised_problems']} raised ✗)"
                cells.append(text)
            if all(c in ("not provided", "–", "no report") for c in cells):
                continue
            lines.append(f"| `{function}` | {dtype} | " + " | ".join(cells) + " |")
    return lines


def _settings(column: str, conformance: dict | None, accuracy: dict | None) -> str:
    if conformance is None:
        return f"- **{column}**: no committed conformance report"
    t, s = conformance["target"], conformance["settings"]
    text = (f"- **{column}** ({t['version']}): conformance {s['cases_per_function_and_dtype']} "
            f"cases per function and dtype (seed {s['seed']}), verdict "
            f"*{conformance['verdict']}*")
    if accuracy is not None:
        a = accuracy["settings"]
        text += (f"; accuracy {a['per_stratum']} problems per stratum, C ≤ {a['max_classes']}, "
                 f"batches ≤ {a['max_batch']}")
        if a.get("dtypes"):
            text += f", dtypes {', '.join(a['dtypes'])} only"
    return text


def _link(url: str) -> str:
    if not url:
        return "none found"
    parts = url.rstrip("/").split("/")
    label = f"{parts[-4]}#{parts[-1]}" if len(parts) >= 5 and "github.com" in url else url
    return f"[{label}]({url})"


def _divergences(family: str) -> list[str]:

    if family == "torch":
        count = sum(bool(d.families & ledger.TORCH_FAMILIES) for d in ledger.LEDGER)
        return [f"{count} ledger entries of the torch families: the README's divergence table "
                "lists them with their upstream issues (the `✗` above is one of them)."]
    entries = [d for d in ledger.LEDGER if family in d.families]
    lines = [f"Ledger entries of family `{family}` ({len(entries)}; the suite runs each "
             "example as a strict xfail, the reports list it as a known failure):", ""]
    lines += [f"- **{d.name}** (`{d.function}`"
              + "".join(f", `{f}`" for f in d.also_functions)
              + f", {d.check}; upstream {_link(d.upstream)})" for d in entries] or ["- none"]
    records = [r for r in FINDINGS if r["framework"] == family]
    if records:
        lines += ["", f"Findings records ({len(records)}; `tests/test_frameworks.py` re-runs "
                  "each and fails once the framework is fixed):", ""]
        lines += [f"- **{r['name']}** (`{r['framework_function']}`, {r['dtype']}, "
                  f"{r['kind']}; upstream {_link(r['upstream'])})" for r in records]
    return lines


def red_accuracy_rows(accuracy: dict | None, name: str) -> list[tuple[str, str, str, float]]:
    """``(function, dtype, direction, worst fair ulps)`` of each of ``name``'s accuracy rows
    beyond its ULP bound, and of each row with problems on which it raised (forward, ∞)."""
    red = []
    for r in (accuracy or {}).get("rows", []):
        if r["implementation"] != name:
            continue
        for direction in ("forward", "gradient"):
            fair, bound = r[direction].get("fair") or {"n": 0}, r[direction].get("bound")
            if fair["n"] and bound is not None and fair["max"] > bound:
                red.append((r["function"], r["dtype"], direction, fair["max"]))
        if r.get("raised_problems") and (r["function"], r["dtype"], "forward") not in {
                red_row[:3] for red_row in red}:  # a crash is red in the forward direction
            red.append((r["function"], r["dtype"], "forward", float("inf")))
    return red


def explanations(family: str, function: str, direction: str) -> list[str]:
    """The ledger entries of ``family`` on ``function`` that can explain an accuracy row of
    ``direction`` beyond its bound: its accuracy entries and its own (not torch's) forward and
    gradient entries of that direction."""

    return [d.name for d in ledger.LEDGER
            if family in d.families and function in (d.function, *d.also_functions)
            and d.direction == direction and ledger.explains_accuracy(d)]


def _red_cells(family: str, name: str, accuracy: dict | None) -> list[str]:
    red = red_accuracy_rows(accuracy, name)
    if not red or family == "torch":
        return []
    lines = ["Accuracy rows beyond their bound (`✗` above) and the named divergences of this "
             "family on that function and direction (its accuracy entries, its own forward and "
             "gradient entries) that can explain them:", ""]
    for function, dtype, direction, worst in red:
        names = "; ".join(explanations(family, function, direction)) or "**none: unexplained**"
        lines.append(f"- `{function}` {dtype} {direction} ({worst:.3g} ulps): {names}")
    return [*lines, ""]


def _declared(conformance: dict | None) -> list[str]:
    declared = (conformance or {}).get("declared") or {}
    lines = []
    for key, title in (("not_provided", "Not provided"), ("conventions", "Conventions")):
        rows = [f"- `{function}` {family}: {why}"
                for function, families in declared.get(key, {}).items()
                for family, why in families.items()]
        if rows:
            lines += [f"{title} (declared; such cases are not drawn for it):", "", *rows, ""]
    return lines


def render(root: Path = REPOSITORY) -> str:
    """The generated part of docs/frameworks.md."""
    reports = {column: (_load(root, conf, "conformance.json"), _load(root, acc, "accuracy.json"))
               for column, _, conf, acc in FRAMEWORKS}
    name_of = {column: (reports[column][0] or {}).get("target", {}).get("name", column)
               for column, *_ in FRAMEWORKS}
    lines = ["## Agreement and accuracy", "",
             "Each cell: agreement with the suite's checks on the conformance report's seeded "
             "cases (`✓ passed/cases`; `✗` if any failed; `known`: covered as a whole by a "
             "named divergence of the framework, below; `n/p`: cases of a parameter family the "
             "framework declares it does not provide, not run) · worst forward / gradient error "
             "against the exact oracle on the accuracy report's extreme inputs, in ulps of the "
             "dtype above the fair floor (`✗` beyond `lossproofs.tolerances.ULP_BOUNDS`; `–`: "
             "not measured; `k raised ✗`: problems on which it raised instead of returning). "
             "`not provided`: the framework has no such function.", "",
             *_table(reports, name_of), "", "## Reports", ""]
    lines += [_settings(column, *reports[column]) for column, *_ in FRAMEWORKS]
    for column, family, conf, acc in FRAMEWORKS:
        lines += ["", f"## {column}", "",
                  f"Reports: [conformance]({conf.removeprefix('docs/')}/conformance.md), "
                  f"[accuracy]({acc.removeprefix('docs/')}/accuracy.md).", ""]
        lines += _declared(reports[column][0])
        lines += _red_cells(family, name_of[column], reports[column][1])
        lines += _divergences(family)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return section_command(argv, "python -m lossproofs.frameworks_page", __doc__, START, END,
                           render)


if __name__ == "__main__":
    raise SystemExit(main())
