"""Empty and single-element inputs: their own explicit tests (ordinary draws never make them).

Every case of :func:`lossproofs.strategies.degenerate.degenerate_cases` — empty batches, empty
class and spatial dimensions, 0-d inputs, one element, one class, with each reduction and with
and without weights — against the reference, forward and gradient, in every dtype. An empty
``mean`` is 0/0 = NaN and an empty ``sum`` 0, with an empty (or zero) gradient: the values an
empty fast path in a kernel gets wrong.
"""

import pytest

from lossproofs import checks
from lossproofs.cases import DTYPES
from lossproofs.registry import GENERIC_FUNCTIONS
from lossproofs.strategies.degenerate import degenerate_cases
from lossproofs.suite._support import require

SEED = 20261129  # of the random grad_output


def _provided_cases(impl, function: str, dtype: str) -> list:
    """The degenerate cases of ``function`` that ``impl`` declares it provides; skip, naming the
    declarations, when there are none."""
    cases = degenerate_cases(function, dtype)
    assert cases, "every function has empty and single-element cases"
    reasons = [impl.excluded(case) for case in cases]
    provided = [case for case, reason in zip(cases, reasons) if reason is None]
    if not provided:
        pytest.skip("; ".join(sorted(set(reasons))))
    return provided


def _failures(outcomes) -> list[str]:
    return [f"{case!r}\n{outcome.message}" for case, outcome in outcomes
            if outcome.status == "fail"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("function", GENERIC_FUNCTIONS)  # see Loss.generic_checks
def test_degenerate_forward_matches_reference(impl, function, dtype):
    require(impl, function)
    failures = _failures((case, checks.check_forward(impl, case))
                         for case in _provided_cases(impl, function, dtype))
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("function", GENERIC_FUNCTIONS)  # see Loss.generic_checks
def test_degenerate_gradient_matches_closed_form(impl, function, dtype):
    require(impl, function)
    failures = _failures((case, checks.check_gradients(impl, case, SEED))
                         for case in _provided_cases(impl, function, dtype))
    assert not failures, "\n\n".join(failures)
