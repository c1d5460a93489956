"""The references against the hand-derived cases the packaged suite holds implementations to:
special values, the rejection of bad input (naming the culprit argument), and the tutorial's
worked example. The suite (lossproofs/suite) tests the implementation under test; what it
compares with is tested here, once."""

import math

import numpy as np
import pytest
import torch

from lossproofs import checks, reference
from lossproofs.error_cases import ERROR_CASES
from lossproofs.special_cases import SPECIAL_CASES
from lossproofs.targets import get_target

TUTORIAL_PRINTED = 0.9729  # the tutorial's printed value, 4 decimals
BY_HAND = -0.2 + math.log(math.exp(0.2) + math.exp(0.1) + math.exp(-0.1))
LOGITS = [[0.2, 0.1, -0.1]]


def _id(case):
    return f"{case.function}-{case.name}"


def _assert_exact(actual, expected, what):
    c = checks.compare(np.asarray(actual, dtype=np.float64), np.asarray(expected), "float64",
                       "forward")
    assert c.ok, c.message(what, np.asarray(actual), np.asarray(expected))


@pytest.mark.parametrize("case", SPECIAL_CASES, ids=_id)
def test_reference_special_value(case):
    out = getattr(reference, case.function)(*case.args, **case.kwargs)
    _assert_exact(out, case.expected, f"reference {case.name} ({case.why})")
    if case.expected_grad is not None:
        expected_shape_ones = np.ones_like(np.asarray(out, dtype=np.float64))
        grad = getattr(reference, f"{case.function}_backward")(
            expected_shape_ones, *case.args, **case.kwargs)
        _assert_exact(grad, case.expected_grad, f"reference gradient at {case.name}")


@pytest.mark.parametrize("case", ERROR_CASES, ids=_id)
def test_reference_rejects_naming_the_argument(case):
    with pytest.raises(case.exception) as info:
        getattr(reference, case.function)(*case.args, **case.kwargs)
    message = str(info.value).lower()
    assert case.argument.lower() in message, (
        f"reference message does not name {case.argument!r}: {info.value}")


def test_hand_derivation_matches_the_tutorial():
    assert round(BY_HAND, 4) == TUTORIAL_PRINTED


def test_reference_gives_the_tutorial_value():
    value = float(reference.cross_entropy(np.array(LOGITS), np.array([0])))
    assert round(value, 4) == TUTORIAL_PRINTED
    assert math.isclose(value, BY_HAND, rel_tol=4 * 2.0**-52)


def test_module_api_gives_the_tutorial_value():
    """The tutorial's own call, ``nn.CrossEntropyLoss()(input, target)``, via the nn target."""
    value = float(get_target("nn").cross_entropy(torch.tensor(LOGITS), torch.tensor([0])))
    assert round(value, 4) == TUTORIAL_PRINTED
