"""Bad input: the implementation and the reference reject the same inputs the same way.

Each entry of ``lossproofs.error_cases.ERROR_CASES`` must raise its exception type from both;
the reference's message must also name the offending argument, as torch's own messages do.
Invalid input torch accepts without an error is a ledger entry (test_divergences.py).
"""

import pytest

from lossproofs import reference
from lossproofs.error_cases import ERROR_CASES
from lossproofs.suite._support import require


def _id(case):
    return f"{case.function}-{case.name}"


@pytest.mark.parametrize("case", ERROR_CASES, ids=_id)
def test_implementation_rejects(impl, case):
    require(impl, case.function)
    reason = impl.unsupported(case.check_name)
    if reason:
        pytest.skip(reason)
    args, kwargs = case.torch_args()
    with pytest.raises(case.exception):
        impl.get(case.function)(*args, **kwargs)


@pytest.mark.parametrize("case", ERROR_CASES, ids=_id)
def test_reference_rejects_naming_the_argument(case):
    with pytest.raises(case.exception) as info:
        getattr(reference, case.function)(*case.args, **case.kwargs)
    message = str(info.value).lower()
    assert case.argument.lower() in message, (
        f"reference message does not name {case.argument!r}: {info.value}")
