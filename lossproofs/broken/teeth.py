"""Run the suite against a broken implementation, in a subprocess, and read the verdict.

:func:`run` starts ``python -m pytest`` on the entry's test files and keyword, with
``--target module:lossproofs.broken.<name>``, the derandomized ``teeth`` hypothesis profile and
a JUnit XML report, and returns a :class:`TeethResult`: which tests failed, with what message,
and whether that is the verdict the catalogue expects (the suite failed, in the listed tests,
by its own assertion — not by an import error, a collection error or a crash).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from lossproofs.broken import CATALOGUE, BrokenImplementation
from lossproofs.suite import pytest_args

# The directory holding the lossproofs package (a checkout or site-packages): on the subprocess's
# path, so that it tests this copy of the suite and of the broken modules.
PACKAGE_PARENT = Path(__file__).resolve().parents[2]

# A failure is the suite's own verdict when the check raised AssertionError (checks.compare
# and plain asserts) or pytest.raises reported that nothing was raised.
VERDICT_PREFIXES = ("AssertionError", "assert ", "Failed: DID NOT RAISE")


def matches(test_id: str, pattern: str) -> bool:
    """``pattern`` with ``*`` as the only wildcard (test ids contain brackets, which fnmatch
    would read as character classes)."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, test_id) is not None


@dataclass
class TeethResult:
    """Outcome of one teeth run. ``failures`` maps failing test ids to the first line of their
    failure message; ``errors`` lists tests (or collection) that errored instead."""

    broken: BrokenImplementation
    returncode: int
    failures: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    passed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    output_tail: str = ""

    def caught_by(self) -> list[str]:
        """Failing tests that the catalogue names as catchers of this bug."""
        return sorted(t for t in self.failures
                      if any(matches(t, p) for p in self.broken.catchers))

    def also_failed(self) -> list[str]:
        caught = set(self.caught_by())
        return sorted(t for t in self.failures if t not in caught)

    def missing_catchers(self) -> list[str]:
        """Catcher patterns that matched no failing test."""
        return [p for p in self.broken.catchers
                if not any(matches(t, p) for t in self.failures)]

    def non_verdict_catches(self) -> dict[str, str]:
        """Catching tests whose failure is not an assertion of the suite (a crash)."""
        return {t: self.failures[t] for t in self.caught_by()
                if not self.failures[t].startswith(VERDICT_PREFIXES)}

    def problems(self) -> list[str]:
        """Why this run is not the expected verdict; empty when the suite caught the bug."""
        out = []
        if self.returncode != 1:
            out.append(f"pytest exit code {self.returncode}, expected 1 (tests failed)")
        if self.errors:
            out.append(f"errors instead of failures: {sorted(self.errors)}")
        if self.missing_catchers():
            out.append(f"no failing test matches {self.missing_catchers()}")
        for t, message in self.non_verdict_catches().items():
            out.append(f"{t} failed by a crash, not an assertion: {message}")
        return out

    @property
    def caught(self) -> bool:
        return not self.problems()

    def summary(self) -> str:
        lines = [f"{self.broken.module} ({self.broken.function}): {self.broken.bug}",
                 f"  verdict: {'CAUGHT' if self.caught else 'NOT CAUGHT'} in "
                 f"{self.seconds:.1f} s ({len(self.failures)} failed, {self.passed} passed, "
                 f"{self.skipped} skipped)"]
        lines += [f"  caught by {t}: {self.failures[t][:160]}" for t in self.caught_by()]
        lines += [f"  also failed {t}: {self.failures[t][:160]}" for t in self.also_failed()]
        lines += [f"  PROBLEM: {p}" for p in self.problems()]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        b = self.broken
        return {"module": b.module, "target": b.target, "function": b.function, "bug": b.bug,
                "modelled_on": list(b.modelled_on), "catchers": list(b.catchers),
                "caught": self.caught, "caught_by": {t: self.failures[t] for t in
                                                     self.caught_by()},
                "also_failed": {t: self.failures[t] for t in self.also_failed()},
                "errors": self.errors, "problems": self.problems(),
                "passed": self.passed, "skipped": self.skipped,
                "returncode": self.returncode, "seconds": round(self.seconds, 2)}


def command(broken: BrokenImplementation, junit: str) -> list[str]:
    """The pytest command line of one teeth run."""
    return [sys.executable, "-m", "pytest", *pytest_args(
        "-q", "-p", "no:xdist", "--target", broken.target, "-k", broken.keyword,
        f"--junitxml={junit}", "-o", "junit_family=xunit1", paths=broken.files)]


def _node_id(case: ET.Element) -> str:
    module = case.get("classname", "")
    path = module.replace(".", "/") + ".py" if module else case.get("file", "")
    return f"{path}::{case.get('name')}"


def _first_line(element: ET.Element) -> str:
    message = element.get("message") or (element.text or "")
    return message.strip().splitlines()[0] if message.strip() else ""


def parse_junit(path: str | os.PathLike[str], result: TeethResult) -> None:
    """Fill ``result`` from a JUnit XML file written by pytest."""
    for case in ET.parse(path).getroot().iter("testcase"):
        node = _node_id(case)
        failure, error, skipped = (case.find(k) for k in ("failure", "error", "skipped"))
        if failure is not None:
            result.failures[node] = _first_line(failure)
        elif error is not None:
            result.errors[node] = _first_line(error)
        elif skipped is not None:
            result.skipped += 1
        else:
            result.passed += 1


def run(broken: BrokenImplementation, timeout: float = 600) -> TeethResult:
    """Run the suite against ``broken`` in a fresh interpreter; see :class:`TeethResult`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "LOSSPROOFS_TARGET"))}
    env.update(LOSSPROOFS_PROFILE="teeth", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_PARENT),
                                                         env.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory() as tmp:
        junit = os.path.join(tmp, "junit.xml")
        start = time.perf_counter()
        proc = subprocess.run(command(broken, junit), cwd=tmp, env=env, timeout=timeout,
                              capture_output=True, text=True)
        result = TeethResult(broken, proc.returncode, seconds=time.perf_counter() - start,
                             output_tail=(proc.stdout + proc.stderr)[-4000:])
        if os.path.exists(junit):
            parse_junit(junit, result)
        else:
            result.errors["<session>"] = result.output_tail[-500:]
    return result


def run_all(entries=CATALOGUE, workers: int | None = None) -> list[TeethResult]:
    """Every entry, ``workers`` subprocesses at a time (default: the CPU count)."""
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(run, entries))
