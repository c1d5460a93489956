"""The conformance suite itself, shipped in the package so that no checkout is needed.

Run it with ``lossproofs test [--target T] [pytest args]`` (see :mod:`lossproofs.cli`), or from
a checkout with ``pytest``. The pytest plugin is :mod:`lossproofs.suite.plugin`.
"""

from __future__ import annotations

from lossproofs.packaged import SUITE_DIR, SUITE_INI, pytest_args

__all__ = ["SUITE_DIR", "SUITE_INI", "pytest_args"]
