"""Special values (NaN, ±inf, masked classes, the BCE clamp, all-ignored and empty inputs).

Expected values come from ``lossproofs.special_cases``, derived by hand from the formulas. Where
torch's answer is not the mathematics, the case is a ledger entry (lossproofs/ledger), run by
test_divergences.py.
"""

import numpy as np
import pytest
import torch

from lossproofs import checks
from lossproofs.special_cases import SPECIAL_CASES
from lossproofs.suite._support import require

TORCH_TARGETS = {"torch", "nn", "compile", "cuda"}


def _id(case):
    return f"{case.function}-{case.name}"


def _tensors(case, requires_grad=False):
    args = [torch.from_numpy(np.array(a, copy=True)) if isinstance(a, np.ndarray) else a
            for a in case.args]
    if requires_grad:
        args[0].requires_grad_(True)
    return args


def _assert_exact(actual, expected, what):
    c = checks.compare(np.asarray(actual, dtype=np.float64), np.asarray(expected), "float64",
                       "forward")
    assert c.ok, c.message(what, np.asarray(actual), np.asarray(expected))


@pytest.mark.parametrize("case", SPECIAL_CASES, ids=_id)
def test_implementation_special_value(impl, case):
    require(impl, case.function)
    declared = impl.excluded_arguments(case.function, case.kwargs)
    if declared:
        pytest.skip(declared)
    args = _tensors(case, requires_grad=case.expected_grad is not None)
    out = impl.get(case.function)(*args, **case.kwargs)
    _assert_exact(checks.to_numpy(out), case.expected, f"{case.name} ({case.why})")
    if case.expected_grad is not None:
        (grad,) = torch.autograd.grad(out.sum(), args[0])
        _assert_exact(checks.to_numpy(grad), case.expected_grad, f"gradient at {case.name}")
