"""Divergences of torch's chunked ``linear_cross_entropy`` (``F.linear_cross_entropy(...,
options=nn.LinearCrossEntropyOptions(...))``, torch 2.13; the feature came in with
pytorch#176338 and pytorch#181574) from the reference path (``options=None``: linear, then
cross_entropy) and the mathematics. Family: ``torch-chunked`` only (the built-in target
``chunked``); the reference path (targets ``torch``, ``nn``) must pass every entry.

Found by ``lossproofs/suite/test_linear_cross_entropy.py`` on torch 2.13.0 CPU; no upstream issue
found for any of them. Bad input is judged against the reference path's exception type
(:data:`lossproofs.error_cases.ERROR_CASES`, check ``"error type"``): the chunked target declares
those error cases unsupported, naming the entry, so test_errors.py skips them for it and
test_divergences.py pins them here.
"""

from __future__ import annotations

import numpy as np

from lossproofs.cases import Case
from lossproofs.error_cases import ERROR_CASES
from lossproofs.families import TORCH_CHUNKED
from lossproofs.ledger.record import Divergence

FUNCTION = "linear_cross_entropy"
CHUNKED = frozenset({TORCH_CHUNKED})
NO_ISSUE = ""  # no upstream issue found (the table says so)

_G = np.random.default_rng(7)
_X = _G.normal(size=(5, 3))
_W = _G.normal(size=(4, 3))
_B = _G.normal(size=4)
_T = np.array([0, 3, -100, 1, 2])  # row 2 ignored


def mean_denominator_is_zero(case: Case) -> bool:
    """A ``mean`` whose denominator is 0 (every target ignored, or every kept target's class
    weight 0): the loss is NaN, and the chunked path's gradient is NaN in *every* row where the
    reference path's is NaN only in the kept rows (see the special-value test)."""
    if case.params.get("reduction", "mean") != "mean" or case.arrays[2].dtype.kind == "f":
        return False
    t = case.arrays[2]
    ignore_index = case.params.get("ignore_index")
    kept = t != (-100 if ignore_index is None else ignore_index)
    w = case.params.get("weight")
    if w is None:
        return not kept.any()
    w = case.rounded(np.asarray(w))
    return float(np.sum(w[np.where(kept, t, 0)][kept])) == 0.0


def zero_mean_denominator(case: Case, direction: str = "gradient") -> bool:
    """The chunked path's gradient of a ``mean`` whose denominator is 0 (every target ignored,
    or every kept target's class weight 0): drawn by the ordinary strategies, set aside as a
    whole for the gradient (the loss itself is NaN on both paths and compared)."""
    return direction == "gradient" and case.function == FUNCTION and \
        mean_denominator_is_zero(case)


def _nan_in_ignored_row() -> Case:
    x = _X.copy()
    x[2, 0] = np.nan  # row 2's target is ignored (−100)
    return Case(FUNCTION, (x, _W, _T), {"linear_bias": _B, "reduction": "mean"})


def _error_case(name: str):
    return next(c for c in ERROR_CASES if c.function == FUNCTION and c.name == name)


def _error_type(name: str, reason: str) -> Divergence:
    """The chunked path handles the error case ``name`` unlike the reference path."""
    bad = _error_case(name)
    example = Case(FUNCTION, tuple(np.asarray(a) for a in bad.args), dict(bad.kwargs))
    return Divergence(f"chunked linear_cross_entropy: {name}", FUNCTION, "error type", example,
                      reason, NO_ISSUE, CHUNKED, AssertionError, expected=bad)


ERROR_TYPE_ENTRIES: tuple[Divergence, ...] = (
    _error_type("target out of bounds", "raises gather's RuntimeError ('index 9 is out of "
                "bounds for dimension 1') instead of cross_entropy's IndexError"),
    _error_type("negative target that is not ignore_index", "raises gather's RuntimeError "
                "instead of cross_entropy's IndexError"),
    _error_type("target shorter than the batch", "raises narrow's RuntimeError ('start (2) + "
                "length (2) exceeds dimension size (3)') instead of ValueError ('Expected input "
                "batch_size (4) to match target batch_size (3)')"),
    _error_type("target longer than the batch", "SILENTLY ACCEPTS it: the first N targets are "
                "used and the mean divides by the weights of all of them (a doubled target "
                "halves the loss); the reference path raises ValueError"),
    _error_type("class weight too short", "raises index_select's IndexError instead of "
                "RuntimeError ('weight tensor should be defined either for all 5 classes or no "
                "classes')"),
    _error_type("class weight too long", "SILENTLY ACCEPTS it (the extra entries are never "
                "indexed); the reference path raises RuntimeError"),
    _error_type("class weight of another dtype", "SILENTLY ACCEPTS a float32 class weight with "
                "float64 input (cast); the reference path raises RuntimeError ('expected scalar "
                "type Double but found Float')"),
    _error_type("bias of another dtype", "SILENTLY ACCEPTS a float32 linear_bias with float64 "
                "input (cast); the reference path's linear raises RuntimeError"),
    _error_type("float ignore_index", "raises the custom op schema's RuntimeError instead of "
                "TypeError"),
    _error_type("integer input", "raises ValueError ('acc_dtype must be one of ...') instead "
                "of NotImplementedError"),
)

ENTRIES: tuple[Divergence, ...] = (
    Divergence(
        "chunked linear_cross_entropy: NaN activation in an ignored row", FUNCTION, "forward",
        _nan_in_ignored_row(),
        "a NaN (or inf) activation in an IGNORED row (a padding token) makes the loss NaN for "
        "mean, sum and none (the chunked loop adds weight·logit with weight 0, and 0·NaN = "
        "NaN), where the reference path, like cross_entropy, leaves the row out exactly and "
        "returns the finite loss of the kept rows",
        NO_ISSUE, CHUNKED, AssertionError),
    Divergence(
        "chunked linear_cross_entropy: mean over a zero denominator", FUNCTION, "gradient",
        Case(FUNCTION, (_X, _W, _T), {"linear_bias": _B, "weight": np.zeros(4),
                                      "reduction": "mean"}),
        "with reduction='mean' and a zero denominator (every kept target's class weight 0, or "
        "every target ignored) the input gradient is NaN in every row, ignored rows included "
        "(neg_weight_target divides the whole (N,) vector by NaN); the reference path gives "
        "NaN in the kept rows only and exactly 0 in the ignored ones",
        NO_ISSUE, CHUNKED, AssertionError, direction="gradient", affected=zero_mean_denominator,
        near_miss=Case(FUNCTION, (_X, _W, _T), {"linear_bias": _B,
                                               "weight": np.array([0.0, 0.0, 0.0, 1.5]),
                                               "reduction": "mean"}),
        seed=3),
    Divergence(
        "chunked linear_cross_entropy: unbatched input with a (1,) target", FUNCTION, "forward",
        Case(FUNCTION, (_X[0], _W, np.array([2])), {"reduction": "mean"}),
        "rejects an unbatched (in,) input with a target of shape (1,) with RuntimeError ('Index "
        "tensor must have the same number of dimensions') where the reference path, like "
        "cross_entropy for a (C,) input, accepts it",
        NO_ISSUE, CHUNKED, RuntimeError),
    *ERROR_TYPE_ENTRIES,
)
