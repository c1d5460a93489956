"""A probe, run by tests/test_determinism.py in a subprocess (not collected by default): one
derandomized property that writes what it drew to ``$LOSSPROOFS_PROBE_OUT``."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

DRAWN = []


@settings(max_examples=200, derandomize=True, database=None)
@given(st.integers(), st.floats(allow_nan=False))
def test_probe(i, x):
    DRAWN.append((i, x))


@pytest.mark.parametrize("stratum", ["only"])
@settings(max_examples=200, derandomize=True, database=None)
@given(st.integers(), st.floats(allow_nan=False))
def test_probe_parametrized(stratum, i, x):
    DRAWN.append((stratum, i, x))


def teardown_module(module):
    with open(os.environ["LOSSPROOFS_PROBE_OUT"], "w") as f:
        f.write("\n".join(repr(d) for d in DRAWN))
