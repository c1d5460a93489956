"""Each known torch bug (``lossproofs.known_issues``) as a named strict xfail.

The generic properties set these cases aside for torch targets; here each one runs through the
same check, expected to fail with the stated torch behaviour. When torch fixes one, its test
XPASSes, which strict mode reports as a failure: drop the entry then.
"""

import pytest

from lossproofs import checks
from lossproofs.known_issues import KNOWN_ISSUES
from lossproofs.suite._support import assert_gradients_agree, require


def _id(issue):
    return issue.name


@pytest.mark.parametrize("issue", KNOWN_ISSUES, ids=_id)
def test_known_torch_issue(impl, issue, request):
    require(impl, issue.example.function)
    if impl.name in issue.targets:
        request.applymarker(pytest.mark.xfail(strict=True, reason=issue.xfail_reason))
    case = issue.example
    if issue.direction == "forward":
        actual, expected, scale = checks.forward(impl, case)
        checks.assert_agrees(actual, expected, case, "forward", issue.name, scale)
    else:
        assert_gradients_agree(impl, case, seed=issue.seed)


@pytest.mark.parametrize("issue", KNOWN_ISSUES, ids=_id)
def test_known_issue_example_is_in_its_own_scope(issue):
    """The representative case is one the generic properties set aside (else the pinned
    example and the exclusion would drift apart)."""
    assert issue.applies(issue.example, issue.direction)
