"""The seed tutorial's worked example: ``CrossEntropyLoss()([[0.2, 0.1, -0.1]], [0])``.

The tutorial prints 0.9729. By hand: −0.2 + log(e^0.2 + e^0.1 + e^−0.1).
"""

import math

import numpy as np
import pytest
import torch

from lossproofs import reference
from lossproofs.suite._support import require
from lossproofs.targets import get_target

TUTORIAL_PRINTED = 0.9729  # the tutorial's printed value, 4 decimals
BY_HAND = -0.2 + math.log(math.exp(0.2) + math.exp(0.1) + math.exp(-0.1))
LOGITS = [[0.2, 0.1, -0.1]]


def test_hand_derivation_matches_the_tutorial():
    assert round(BY_HAND, 4) == TUTORIAL_PRINTED


def test_reference_gives_the_tutorial_value():
    value = float(reference.cross_entropy(np.array(LOGITS), np.array([0])))
    assert round(value, 4) == TUTORIAL_PRINTED
    assert math.isclose(value, BY_HAND, rel_tol=4 * 2.0**-52)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_implementation_gives_the_tutorial_value(impl, dtype):
    require(impl, "cross_entropy")
    value = float(impl.cross_entropy(torch.tensor(LOGITS, dtype=dtype), torch.tensor([0])))
    assert round(value, 4) == TUTORIAL_PRINTED


def test_module_api_gives_the_tutorial_value():
    """The tutorial's own call, ``nn.CrossEntropyLoss()(input, target)``, via the nn target."""
    value = float(get_target("nn").cross_entropy(torch.tensor(LOGITS), torch.tensor([0])))
    assert round(value, 4) == TUTORIAL_PRINTED
