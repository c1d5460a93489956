"""Run the suite against a broken implementation and against its bug-free twin, in subprocesses,
and read the verdict.

:func:`run` starts ``python -m pytest`` on the entry's test files and keyword, with
``--target module:lossproofs.broken.<name>``, the derandomized ``teeth`` hypothesis profile,
the example counter :mod:`lossproofs.broken._examples` and a JUnit XML report. Then it runs
the tests that caught the bug once more against the twin: the same module with
``LOSSPROOFS_BROKEN_CONTROL=1`` (:func:`lossproofs.broken._common.control`), which computes
the function without its bug and shares every other line; each catching property replays the
very example that failed on the broken module (a test without one, a fixed case or a failing
``@example``, runs whole). It returns a :class:`TeethResult`:
which tests failed, with what message and after how many examples, whether the twin passed
them, and whether that is the verdict the catalogue expects (the suite failed, in the listed
tests, by its own assertion — not by an import error, a collection error or a crash — and
the twin passed every catching test, so no catch is an artifact of the module's harness).
"""

from __future__ import annotations

import json
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

from lossproofs.broken import CATALOGUE, BrokenImplementation, _examples
from lossproofs.broken._common import CONTROL_ENV
from lossproofs.packaged import pytest_args

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
class Outcomes:
    """What one pytest run reported, by test id (``file::test[params]``): ``failures`` and
    ``errors`` map to the first line of the message; ``examples`` is the number of hypothesis
    examples each property ran, ``first_failure`` the number of the example that first
    failed, ``reproduce`` its ``@reproduce_failure`` arguments and ``replayed`` the tests that
    passed such a replay (see :mod:`lossproofs.broken._examples`)."""

    returncode: int
    failures: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    passed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    examples: dict[str, int] = field(default_factory=dict)
    first_failure: dict[str, int] = field(default_factory=dict)
    reproduce: dict[str, str] = field(default_factory=dict)
    replayed: list[str] = field(default_factory=list)
    seconds: float = 0.0
    output_tail: str = ""


@dataclass
class TeethResult:
    """Outcome of one teeth run: the broken module's run and the twin's (``control``, None
    until it ran: :func:`run` skips it when nothing was caught)."""

    broken: BrokenImplementation
    returncode: int
    failures: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    passed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    output_tail: str = ""
    first_failure: dict[str, int] = field(default_factory=dict)
    control: Outcomes | None = None

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

    def twin_outcome(self, test: str) -> str:
        """``passed``, ``failed: <message>``, ``error: <message>``, ``skipped`` or ``not run``:
        what the bug-free twin did in ``test``."""
        c = self.control
        if c is None:
            return "not run"
        if test in c.failures:
            return f"failed: {c.failures[test]}"
        if test in c.errors:
            return f"error: {c.errors[test]}"
        return "passed" if test in c.passed else "skipped" if test in c.skipped else "not run"

    def artifacts(self) -> dict[str, str]:
        """Catching tests the twin did not pass: their failure is not evidence of the bug."""
        return {t: o for t in self.caught_by() if (o := self.twin_outcome(t)) != "passed"}

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
        for t, outcome in self.artifacts().items():
            out.append(f"the bug-free twin does not pass {t} ({outcome[:300]}): a harness "
                       "artifact, not a catch")
        if self.control is not None and self.control.errors:
            out.append(f"the twin's run errored: {self.control.errors}")
        return out

    def twin_ran(self) -> dict[str, str]:
        """What the twin ran of each catching test: the replayed failing example, or all the
        examples of a property it ran whole, or the test's one fixed case."""
        c = self.control or Outcomes(0)
        return {t: ("the failing example" if t in c.replayed else
                    f"{c.examples[t]} examples" if t in c.examples else "its one case")
                for t in self.caught_by()}

    @property
    def caught(self) -> bool:
        return not self.problems()

    def summary(self) -> str:
        lines = [f"{self.broken.module} ({self.broken.function}): {self.broken.bug}",
                 f"  verdict: {'CAUGHT' if self.caught else 'NOT CAUGHT'} in "
                 f"{self.seconds:.1f} s ({len(self.failures)} failed, {self.passed} passed, "
                 f"{self.skipped} skipped)"
                 + (f"; twin {self.control.seconds:.1f} s" if self.control else "")]
        lines += [f"  caught by {t} (at example {self.first_failure.get(t, '-')}; twin "
                  f"{self.twin_outcome(t)[:80]}): {self.failures[t][:160]}"
                  for t in self.caught_by()]
        lines += [f"  also failed {t}: {self.failures[t][:160]}" for t in self.also_failed()]
        lines += [f"  PROBLEM: {p}" for p in self.problems()]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        b = self.broken
        return {"module": b.module, "target": b.target, "function": b.function, "bug": b.bug,
                "modelled_on": list(b.modelled_on), "catchers": list(b.catchers),
                "caught": self.caught, "caught_by": {t: self.failures[t] for t in
                                                     self.caught_by()},
                "examples_to_first_failure": {t: self.first_failure.get(t)
                                              for t in self.caught_by()},
                "twin": {t: self.twin_outcome(t) for t in self.caught_by()},
                "twin_ran": self.twin_ran(),
                "also_failed": {t: self.failures[t] for t in self.also_failed()},
                "errors": self.errors, "problems": self.problems(),
                "passed": self.passed, "skipped": self.skipped,
                "returncode": self.returncode, "seconds": round(self.seconds, 2),
                "twin_seconds": round(self.control.seconds, 2) if self.control else None}


def record(result: dict) -> dict:
    """The part of a result's :meth:`TeethResult.as_dict` a fresh run must reproduce for the
    committed report to be current: the catalogue, the verdict, which catcher patterns caught
    the bug and what the twin did in the tests each matched. Which parametrizations of a
    catcher failed (the dtypes of ``test_forward_matches_reference[cross_entropy-*]``), the
    examples to first failure and the tests that failed besides the catchers are reported, not
    compared: they move whenever a strategy (or the pool of literal constants hypothesis draws
    from the package's sources, which any edit of any module of the package changes) changes,
    without changing the verdict."""
    keys = ("module", "function", "bug", "modelled_on", "catchers", "caught")
    caught_by, twin = result.get("caught_by", {}), result.get("twin", {})
    matched = {p: [t for t in caught_by if matches(t, p)] for p in result.get("catchers", [])}
    return {**{k: result.get(k) for k in keys},
            "caught_by": sorted(p for p, tests in matched.items() if tests),
            "twin": {p: sorted({twin.get(t, "not run").split(":")[0] for t in tests})
                     for p, tests in matched.items() if tests}}


def command(broken: BrokenImplementation, junit: str, tests: tuple[str, ...] = ()) -> list[str]:
    """The pytest command line of one teeth run: the entry's files narrowed by its keyword, or
    only ``tests`` (ids as :class:`Outcomes` names them: the twin's run)."""
    selection = () if tests else ("-k", broken.keyword)
    return [sys.executable, "-m", "pytest", *pytest_args(
        "-q", "-p", "no:xdist", "-p", _examples.__name__, "--target", broken.target,
        *selection, f"--junitxml={junit}", "-o", "junit_family=xunit1",
        paths=tests or broken.files)]


def _node_id(case: ET.Element) -> str:
    module = case.get("classname", "")
    path = module.replace(".", "/") + ".py" if module else case.get("file", "")
    return f"{path}::{case.get('name')}"


def _first_line(element: ET.Element) -> str:
    message = element.get("message") or (element.text or "")
    return message.strip().splitlines()[0] if message.strip() else ""


def parse_junit(path: str | os.PathLike[str], outcomes: Outcomes) -> None:
    """Fill ``outcomes`` from a JUnit XML file written by pytest (with the example counts of
    :mod:`lossproofs.broken._examples` as test case properties)."""
    for case in ET.parse(path).getroot().iter("testcase"):
        node = _node_id(case)
        failure, error, skipped = (case.find(k) for k in ("failure", "error", "skipped"))
        if failure is not None:
            outcomes.failures[node] = _first_line(failure)
        elif error is not None:
            outcomes.errors[node] = _first_line(error)
        elif skipped is not None:
            outcomes.skipped.append(node)
        else:
            outcomes.passed.append(node)
        for prop in case.iter("property"):
            name, value = prop.get("name"), prop.get("value")
            if name == _examples.EXAMPLES:
                outcomes.examples[node] = int(value)
            elif name == _examples.FIRST_FAILURE:
                outcomes.first_failure[node] = int(value)
            elif name == _examples.REPRODUCE:
                outcomes.reproduce[node] = value
            elif name == _examples.REPLAYED:
                outcomes.replayed.append(node)


def run_pytest(broken: BrokenImplementation, tests: tuple[str, ...] = (), control: bool = False,
               replay: dict[str, str] | None = None, timeout: float = 600) -> Outcomes:
    """One pytest run in a fresh interpreter against ``broken`` (its bug-free twin if
    ``control``): the entry's tests, or only ``tests``; ``replay`` (test id → the failure's
    ``@reproduce_failure`` arguments) runs just that example of those properties
    (:mod:`lossproofs.broken._examples`)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "LOSSPROOFS_TARGET", CONTROL_ENV,
                                _examples.REPLAY_ENV))}
    env.update(LOSSPROOFS_PROFILE="teeth", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_PARENT),
                                                         env.get("PYTHONPATH")])))
    if control:
        env[CONTROL_ENV] = "1"
    if replay:
        env[_examples.REPLAY_ENV] = json.dumps(replay)
    with tempfile.TemporaryDirectory() as tmp:
        junit = os.path.join(tmp, "junit.xml")
        start = time.perf_counter()
        proc = subprocess.run(command(broken, junit, tests), cwd=tmp, env=env,
                              timeout=timeout, capture_output=True, text=True)
        outcomes = Outcomes(proc.returncode, seconds=time.perf_counter() - start,
                            output_tail=(proc.stdout + proc.stderr)[-4000:])
        if os.path.exists(junit):
            parse_junit(junit, outcomes)
        else:
            outcomes.errors["<session>"] = outcomes.output_tail[-500:]
    return outcomes


def run(broken: BrokenImplementation, timeout: float = 600) -> TeethResult:
    """Run the suite against ``broken``, then the tests that caught it against its bug-free
    twin (none if nothing was caught); see :class:`TeethResult`.

    The twin replays, in each catching property, the example at which the broken module
    failed (hypothesis's ``@reproduce_failure``), so the control is exactly "does the bug-free
    module pass the example that caught the broken one", at the cost of one example; a
    catching test without a blob (a failing ``@example``, a test of one fixed case) runs
    whole."""
    o = run_pytest(broken, timeout=timeout)
    result = TeethResult(broken, o.returncode, o.failures, o.errors, len(o.passed),
                         len(o.skipped), o.seconds, o.output_tail, o.first_failure)
    caught = result.caught_by()
    if caught:
        replay = {t: o.reproduce[t] for t in caught if t in o.reproduce}
        result.control = run_pytest(broken, tuple(caught), control=True, replay=replay,
                                    timeout=timeout)
    return result


def run_all(entries=CATALOGUE, workers: int | None = None) -> list[TeethResult]:
    """Every entry, ``workers`` subprocesses at a time (default: the CPU count)."""
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        return list(pool.map(run, entries))
