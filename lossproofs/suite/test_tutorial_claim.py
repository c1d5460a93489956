"""The seed tutorial's worked example: ``CrossEntropyLoss()([[0.2, 0.1, -0.1]], [0])``.

The tutorial prints 0.9729. By hand: −0.2 + log(e^0.2 + e^0.1 + e^−0.1) (the hand derivation,
the reference and torch.nn's own call are checked in tests/test_reference_cases.py).
"""

import math

import pytest
import torch

from lossproofs.suite._support import require

TUTORIAL_PRINTED = 0.9729  # the tutorial's printed value, 4 decimals
BY_HAND = -0.2 + math.log(math.exp(0.2) + math.exp(0.1) + math.exp(-0.1))
LOGITS = [[0.2, 0.1, -0.1]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_implementation_gives_the_tutorial_value(impl, dtype):
    require(impl, "cross_entropy")
    value = float(impl.cross_entropy(torch.tensor(LOGITS, dtype=dtype), torch.tensor([0])))
    assert round(value, 4) == TUTORIAL_PRINTED
