"""Gradients: autograd of the implementation under test against the reference's closed forms.

A random upstream gradient (never all ones) is pushed back through the implementation and
compared with ``reference.<name>_backward`` (and ``<name>_target_backward`` for floating
targets), for the same parameter space as the forward tests.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lossproofs.cases import DTYPES
from lossproofs.specs import FUNCTION_NAMES, SPECS
from lossproofs.suite._support import assert_gradients_agree, require, skip_known_issues

SEEDS = st.integers(0, 2**32 - 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("function", FUNCTION_NAMES)
@given(data=st.data(), seed=SEEDS)
def test_input_gradient_matches_closed_form(impl, function, dtype, data, seed):
    require(impl, function)
    case = data.draw(SPECS[function].cases(dtype), label="case")
    skip_known_issues(impl, case, "gradient")
    assert_gradients_agree(impl, case, seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "function", [name for name, spec in SPECS.items() if spec.differentiable_target])
@given(data=st.data(), seed=SEEDS)
def test_target_gradient_matches_closed_form(impl, function, dtype, data, seed):
    require(impl, function)
    case = data.draw(SPECS[function].cases(dtype).filter(
        lambda c: c.arrays[1].dtype.kind == "f"), label="case")
    skip_known_issues(impl, case, "gradient")
    assert_gradients_agree(impl, case, seed, wrt_target=True)
