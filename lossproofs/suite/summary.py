"""The closing verdict of a suite run: function × property → pass / fail / not provided / not run.

Registered by the suite plugin. Each collected test is labelled with the function it checks
and its property (its test module: ``forward``, ``gradients``, ``ledger``, ...); the outcome
of every test reaches the controlling process (under xdist too, through the report's
``user_properties``) and is folded into one cell per function × property:

- ``fail`` if any test of the cell failed (with the first failure's first line and test id),
- ``pass`` if any passed (a strict xfail of a known divergence counts as a pass: the target
  behaves as the ledger records),
- ``not provided`` if every test skipped because the target declares the function or a family
  out, ``not run`` if they skipped for another reason or none was collected.

The terminal shows the matrix at the end of the run, and ``--json PATH`` writes it with the
environment it was measured on (never overwriting a file, unless ``--json-overwrite``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from lossproofs.declarations import DECLARABLE
from lossproofs.environment import environment, write_json

KEY = "lossproofs"
FUNCTIONS = tuple(DECLARABLE)
# what a skip reason says when the target declares the function or a family out
_NOT_PROVIDED = re.compile(r"not provided|does not define|does not provide|convention:")
# property (test module) -> column name
SHORT_NAMES = {"divergences": "ledger", "special_values": "special", "second_order": "2nd-order",
               "linear_cross_entropy": "linear", "linear_torch_paths": "linear-paths",
               "tutorial_claim": "tutorial", "combinations": "combos", "large": "size-tier"}


def label(item) -> dict[str, str]:
    """The function and property an item checks (``"*"``: every function, for tests that are
    about none in particular)."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    function = params.get("function")
    if function is None:
        for value in params.values():
            name = getattr(value, "function", None)
            if isinstance(name, str):
                function = name
                break
    if function is None:  # a test module about one function says so (FUNCTION)
        declared = getattr(getattr(item, "module", None), "FUNCTION", None)
        function = declared if declared in FUNCTIONS else None
    if function is None:
        # the longest registered name in the test's name (cross_entropy in
        # binary_cross_entropy is the shorter match)
        found = [f for f in FUNCTIONS if f in item.name]
        function = max(found, key=len) if found else "*"
    prop = item.path.stem.removeprefix("test_")
    prop = SHORT_NAMES.get(prop, prop)
    return {"function": str(function), "property": prop, "dtype": str(params.get("dtype", ""))}


@dataclass
class Cell:
    passed: int = 0
    failed: int = 0
    xfailed: int = 0
    not_provided: int = 0
    not_run: int = 0
    after_failure: int = 0  # skipped: an earlier test of the cell failed
    first_failure: str = ""
    reasons: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.failed:
            return "fail"
        if self.passed or self.xfailed:
            return "pass"
        if self.not_provided:
            return "not provided"
        return "not run"


class Summary:
    """Collects outcomes (a pytest plugin object) and prints/writes the matrix."""

    def __init__(self, config, target):
        self.config = config
        self.target = target
        self.cells: dict[tuple[str, str], Cell] = defaultdict(Cell)

    def pytest_runtest_logreport(self, report):
        info = dict(report.user_properties).get(KEY)
        if info is None:
            return
        cell = self.cells[(info["function"], info["property"])]
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if hasattr(report, "wasxfail"):
                if report.skipped:
                    cell.xfailed += 1
                else:  # a strict xfail that passed is a failure of the record
                    self._fail(cell, report)
            elif report.passed:
                cell.passed += 1
            elif report.failed:
                self._fail(cell, report)
            elif report.skipped:
                reason = _skip_reason(report)
                if reason.startswith("not run:") and "already failed" in reason:
                    cell.after_failure += 1
                    return
                if _NOT_PROVIDED.search(reason):
                    cell.not_provided += 1
                else:
                    cell.not_run += 1
                if reason and len(cell.reasons) < 3 and reason not in cell.reasons:
                    cell.reasons.append(reason)
        elif report.when == "teardown" and report.failed:
            self._fail(cell, report)

    @staticmethod
    def _fail(cell: Cell, report) -> None:
        cell.failed += 1
        if not cell.first_failure:
            cell.first_failure = f"{report.nodeid.split('::')[-1]}: {_first_line(report)}"

    # -- output ---------------------------------------------------------------------------------
    def matrix(self) -> dict:
        functions = sorted({f for f, _ in self.cells},  # "*": tests of no one function
                           key=lambda f: (FUNCTIONS.index(f) if f in FUNCTIONS else 99, f))
        properties = sorted({p for _, p in self.cells})
        rows = {}
        for f in functions:
            rows[f] = {}
            for p in properties:
                if (f, p) not in self.cells:
                    continue
                c = self.cells[(f, p)]
                rows[f][p] = {"status": c.status, "passed": c.passed, "failed": c.failed,
                              "xfailed": c.xfailed, "not_provided": c.not_provided,
                              "not_run": c.not_run, "not_run_after_failure": c.after_failure,
                              "first_failure": c.first_failure,
                              "skip_reasons": c.reasons}
        verdicts = {f: _function_verdict(cells) for f, cells in rows.items()}
        return {"target": self.target.name, "description": self.target.description,
                "version": self.target.version, "properties": properties, "rows": rows,
                "verdicts": verdicts}

    def pytest_terminal_summary(self, terminalreporter):
        if not self.cells:
            return
        data = self.matrix()
        tr = terminalreporter
        tr.section(f"lossproofs verdict: {data['target']} ({data['version']})")
        symbols = {"pass": "ok", "fail": "FAIL", "not provided": "n/p", "not run": "-"}
        props = data["properties"]
        missing = [f for f in data["rows"] if f in FUNCTIONS and self.target.get(f) is None]
        shown = {f: cells for f, cells in data["rows"].items() if f not in missing}
        props = [p for p in props if any(p in cells for cells in shown.values())]
        width = max((len(f) for f in shown), default=0) + 2
        cols = [max(len(p), 4) + 1 for p in props]
        tr.write_line(" " * width + "".join(p.ljust(w) for p, w in zip(props, cols))
                      + "verdict")
        for f, cells in shown.items():
            line = f.ljust(width) + "".join(
                symbols[cells[p]["status"]].ljust(w) if p in cells else "".ljust(w)
                for p, w in zip(props, cols))
            tr.write_line(line + data["verdicts"][f])
        if missing:
            tr.write_line(f"not defined by {data['target']}: {', '.join(missing)}")
        tr.write_line("ok: passed (known divergences as strict xfails) | FAIL: failed | "
                      "n/p: not provided (declared) | -: not run | *: tests of several "
                      "functions")
        failures = [(f, p, c) for f, cells in data["rows"].items() for p, c in cells.items()
                    if c["status"] == "fail"]
        if failures:
            tr.write_line("")
            tr.write_line(f"First failure of each of the {len(failures)} failing cells "
                          "(the full report is above):")
            for f, p, c in failures:
                more = (f", {c['not_run_after_failure']} more not run"
                        if c["not_run_after_failure"] else "")
                tr.write_line(f"  {f} × {p} ({c['failed']} failed{more}): "
                              f"{_shorten(c['first_failure'], 160)}")
        path = self.config.getoption("lossproofs_json")
        if path:
            payload = {"environment": environment(self.target.device), "summary": data}
            written = write_json(path, payload,
                                 overwrite=self.config.getoption("lossproofs_json_overwrite"))
            tr.write_line(f"lossproofs: summary written to {written}")


def _function_verdict(cells: dict) -> str:
    statuses = {c["status"] for c in cells.values()}
    if "fail" in statuses:
        return "FAILS"
    if "pass" in statuses:
        return "conforms"
    return "not provided" if "not provided" in statuses else "not run"


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr or "")


def _first_line(report) -> str:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr or "")
    if text.startswith("ExceptionGroup"):  # hypothesis found several: show the first
        errors = [line[1:].strip() for line in str(report.longrepr).splitlines()
                  if line.startswith("E ") and "Error" in line and "ExceptionGroup" not in line]
        if errors:
            return f"{errors[0]} (and other distinct failures)"
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _shorten(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
