"""Bad input: the implementation and the reference reject the same inputs.

Judged at two levels. Every implementation must reject each entry of
``lossproofs.error_cases.ERROR_CASES`` with *some* exception: silently accepting an input that
has no loss (an out-of-range class, mismatched shapes) is a finding, named by the case. A
torch-family target must also raise torch's exception type (other frameworks have their own
conventions). The reference raises torch's type with a message naming the offending argument.
A case whose culprit is an argument the target declares it does not provide is not run for it.
Invalid input torch accepts without an error is a ledger entry (test_divergences.py).
"""

import pytest

from lossproofs import ledger
from lossproofs.declarations import call_families
from lossproofs.error_cases import ERROR_CASES
from lossproofs.suite._support import require


def _id(case):
    return f"{case.function}-{case.name}"


def _call_or_skip(impl, case):
    require(impl, case.function)
    reason = (impl.unsupported(case.check_name)
              or ledger.known_error_type(impl, case)
              or impl.excluded_arguments(case.function, case.kwargs)
              or impl.excluded_families(case.function,
                                        call_families(case.function, case.args, case.kwargs)))
    if reason:
        pytest.skip(reason)
    args, kwargs = case.torch_args()
    return lambda: impl.get(case.function)(*args, **kwargs)


@pytest.mark.parametrize("case", ERROR_CASES, ids=_id)
def test_implementation_rejects(impl, case):
    run = _call_or_skip(impl, case)
    try:
        run()
    except Exception:
        return
    raise AssertionError(f"{impl.name} silently accepted bad input: {case.function} with "
                         f"{case.name} (culprit: {case.argument})")


@pytest.mark.parametrize("case", ERROR_CASES, ids=_id)
def test_implementation_rejects_with_torchs_exception_type(impl, case):
    if not impl.torch_exceptions:
        pytest.skip(f"{impl.name} does not claim torch's exception types (a module says so with "
                    "RAISES_TORCH_EXCEPTIONS = True); test_implementation_rejects judges the "
                    "rejection")
    run = _call_or_skip(impl, case)
    with pytest.raises(case.exception):
        run()
