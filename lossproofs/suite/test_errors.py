"""Bad input: the implementation and the reference reject the same inputs the same way.

Each entry of ``lossproofs.error_cases.ERROR_CASES`` must raise its exception type from both;
the reference's message must also name the offending argument, as torch's own messages do.
"""

import pytest

from lossproofs import reference
from lossproofs.error_cases import ERROR_CASES, SILENTLY_ACCEPTED
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


SILENT = [case for case, _ in SILENTLY_ACCEPTED]
REASONS = {case.name: reason for case, reason in SILENTLY_ACCEPTED}
TORCH_TARGETS = {"torch", "nn", "compile", "cuda"}


@pytest.mark.parametrize("case", SILENT, ids=_id)
def test_invalid_input_torch_accepts_is_rejected(impl, case, request):
    """The mathematics has no loss for these inputs; torch silently coerces them."""
    require(impl, case.function)
    if impl.name in TORCH_TARGETS:
        request.applymarker(pytest.mark.xfail(strict=True, reason=REASONS[case.name]))
    args, kwargs = case.torch_args()
    with pytest.raises((ValueError, RuntimeError)):
        impl.get(case.function)(*args, **kwargs)


@pytest.mark.parametrize("case", SILENT, ids=_id)
def test_reference_rejects_what_torch_silently_accepts(case):
    with pytest.raises(case.exception) as info:
        getattr(reference, case.function)(*case.args, **case.kwargs)
    assert case.argument in str(info.value)
