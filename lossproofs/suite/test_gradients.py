"""Gradients: autograd of the implementation under test against the reference's closed forms.

A random upstream gradient (never all ones) is pushed back through the implementation and
compared with ``reference.<name>_backward`` (and ``<name>_target_backward`` for floating
targets), for the same parameter space as the forward tests.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lossproofs.cases import DTYPES
from lossproofs.registry import GENERIC_FUNCTIONS, LOSSES, with_target_gradient
from lossproofs.suite._support import (
    assert_gradients_agree,
    draw_case,
    require,
    require_families,
)

SEEDS = st.integers(0, 2**32 - 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("function", GENERIC_FUNCTIONS)  # see Loss.generic_checks
@given(data=st.data(), seed=SEEDS)
def test_input_gradient_matches_closed_form(impl, function, dtype, data, seed):
    require(impl, function)
    case = draw_case(data, impl, function, dtype)
    assert_gradients_agree(impl, case, seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("function", with_target_gradient())
@given(data=st.data(), seed=SEEDS)
def test_target_gradient_matches_closed_form(impl, function, dtype, data, seed):
    require(impl, function)
    if function == "cross_entropy":  # differentiable in its target only for probabilities
        require_families(impl, function, "probability target")
    strategy = LOSSES[function].cases(dtype, exclude=impl.declared_out(function))
    case = draw_case(data, impl, function, dtype,
                     strategy.filter(lambda c: c.arrays[1].dtype.kind == "f"))
    assert_gradients_agree(impl, case, seed, wrt_target=True)
