"""Forward values: the implementation under test against the float64 reference.

One generic property per function and dtype; the strategies cover every parameter family
(reductions, weight, ignore_index, label smoothing, probability targets, K-dim, unbatched,
C = 1, empty batches, broadcast weights, non-contiguous layouts). The reference runs on the
inputs as rounded to the dtype, so the bound measures only the implementation's arithmetic.
Elements a known divergence of the target affects (lossproofs/ledger) are set aside; the rest of
the case is compared.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lossproofs.cases import DTYPES
from lossproofs.registry import GENERIC_FUNCTIONS
from lossproofs.suite._support import assert_forward_agrees, draw_case, require


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("function", GENERIC_FUNCTIONS)  # see Loss.generic_checks
@given(data=st.data())
def test_forward_matches_reference(impl, function, dtype, data):
    require(impl, function)
    case = draw_case(data, impl, function, dtype)
    assert_forward_agrees(impl, case)
