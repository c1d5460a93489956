"""Forward values: the implementation under test against the float64 reference.

One generic property per function and dtype; the strategies cover every parameter family
(reductions, weight, ignore_index, label smoothing, probability targets, K-dim, unbatched,
C = 1, empty batches, broadcast weights, non-contiguous layouts). The reference runs on the
inputs as rounded to the dtype, so the bound measures only the implementation's arithmetic.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lossproofs import checks
from lossproofs.cases import DTYPES
from lossproofs.specs import FUNCTION_NAMES, SPECS
from lossproofs.suite._support import require, skip_known_issues


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("function", FUNCTION_NAMES)
@given(data=st.data())
def test_forward_matches_reference(impl, function, dtype, data):
    require(impl, function)
    case = data.draw(SPECS[function].cases(dtype), label="case")
    skip_known_issues(impl, case, "forward")
    actual, expected, scale = checks.forward(impl, case)
    checks.assert_agrees(actual, expected, case, "forward", f"{function} forward", scale)
