"""A derandomized verdict must not depend on which test files are collected.

Hypothesis mixes literal constants of loaded local modules into its draws; the suite's plugin
pins that pool (``lossproofs.suite.plugin.pin_hypothesis_constants``). Here a probe property is
run twice in fresh processes, alone and next to a module full of other constants: it must draw
exactly the same inputs. The same pair of runs without the plugin shows that the effect is real
(so this test can fail).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


# Hypothesis takes constants from local modules that are not test files (so from the modules a
# test file imports, like lossproofs.error_cases): this stands for one, collected beside the
# probe.
EXTRA = '''
MAGIC = (123456789, -987654321, 31337.25, 2.0**-1000, 6.02214076e23, -424242.0, 777777777)


def test_nothing():
    assert MAGIC
'''


def _draws(tmp_path: Path, name: str, extra: bool, plugin: bool = True,
           rootdir: Path | None = None) -> str:
    out = tmp_path / f"{name}.txt"
    files = [str(HERE / "probe_draws.py")]
    if extra:
        (tmp_path / "module_with_constants.py").write_text(EXTRA)
        files.insert(0, str(tmp_path / "module_with_constants.py"))
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
            "-o", "addopts=", *(["-p", "lossproofs.suite.plugin"] if plugin else []),
            *([f"--rootdir={rootdir}"] if rootdir else []), *files]
    env = {**os.environ, "LOSSPROOFS_PROBE_OUT": str(out), "LOSSPROOFS_PROFILE": "ci"}
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out.read_text()


def test_draws_do_not_depend_on_other_collected_modules(tmp_path):
    alone = _draws(tmp_path, "alone", extra=False)
    beside = _draws(tmp_path, "beside", extra=True)
    assert alone == beside


def test_without_the_pin_other_modules_change_the_draws(tmp_path):
    alone = _draws(tmp_path, "alone", extra=False, plugin=False)
    beside = _draws(tmp_path, "beside", extra=True, plugin=False)
    if alone == beside:
        pytest.skip("this hypothesis version does not mix local constants into draws")
    assert alone != beside


# Hypothesis seeds each parametrization of a derandomized property from its pytest node id,
# which is relative to the rootdir, and the rootdir follows what is collected (the suite's own
# pytest.ini when only suite files are named, the repository's pyproject.toml when tests/ is
# named too): the plugin keys it by module and test name instead.
def test_parametrized_draws_do_not_depend_on_the_rootdir(tmp_path):
    near = _draws(tmp_path, "near", extra=False, rootdir=HERE)
    far = _draws(tmp_path, "far", extra=False, rootdir=tmp_path)
    assert near == far


def test_without_the_plugin_the_rootdir_changes_parametrized_draws(tmp_path):
    near = _draws(tmp_path, "near", extra=False, plugin=False, rootdir=HERE)
    far = _draws(tmp_path, "far", extra=False, plugin=False, rootdir=tmp_path)
    if near == far:
        pytest.skip("this hypothesis version does not key parametrized draws by node id")
    assert near != far
