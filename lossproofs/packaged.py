"""Where the packaged suite lives and the pytest arguments that run it: what ``lossproofs test``
and the teeth runner (which runs the suite against broken implementations in subprocesses)
share, below both of them."""

from __future__ import annotations

from pathlib import Path

SUITE_DIR = Path(__file__).resolve().parent / "suite"
SUITE_INI = SUITE_DIR / "pytest.ini"


def pytest_args(*args: str, paths: tuple[str, ...] = ()) -> list[str]:
    """pytest arguments that run the packaged suite (or ``paths`` in it) with its own
    configuration, wherever it is installed and whatever the caller's working directory holds
    (the caller's ``conftest.py`` and ini files are not consulted)."""
    files = [str(SUITE_DIR / p) for p in paths] or [str(SUITE_DIR)]
    return ["-c", str(SUITE_INI), "--rootdir", str(SUITE_DIR), *args, *files]
