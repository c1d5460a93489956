"""The conformance suite itself, shipped in the package so that no checkout is needed.

Run it with ``lossproofs test [--target T] [pytest args]`` (see :mod:`lossproofs.cli`), or from
a checkout with ``pytest``. The pytest plugin is :mod:`lossproofs.suite.plugin`.
"""

from __future__ import annotations

from pathlib import Path

SUITE_DIR = Path(__file__).resolve().parent
SUITE_INI = SUITE_DIR / "pytest.ini"


def pytest_args(*args: str, paths: tuple[str, ...] = ()) -> list[str]:
    """pytest arguments that run the packaged suite (or ``paths`` in it) with its own
    configuration, wherever it is installed and whatever the caller's working directory holds
    (the caller's ``conftest.py`` and ini files are not consulted)."""
    files = [str(SUITE_DIR / p) for p in paths] or [str(SUITE_DIR)]
    return ["-c", str(SUITE_INI), "--rootdir", str(SUITE_DIR), *args, *files]
