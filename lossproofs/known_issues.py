"""Bugs in torch that the property suite found or confirmed, as data.

Each :class:`KnownIssue` says which cases it affects (``applies``), gives one representative
case, and explains the torch behaviour with its upstream issue. The generic properties set the
affected cases aside for torch targets only (so one known bug does not mask every other check),
and ``tests/test_known_issues.py`` runs each representative case as a named strict xfail: when
torch fixes the bug, that test fails and asks for the entry to be removed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lossproofs.cases import Case

TORCH_TARGETS = frozenset({"torch", "nn", "compile", "cuda"})


@dataclass(frozen=True)
class KnownIssue:
    """A torch divergence: ``applies(case, direction)`` tells whether ``case`` hits it in the
    ``"forward"`` or ``"gradient"`` check; ``example`` reproduces it."""

    name: str
    direction: str
    applies: Callable[[Case, str], bool]
    example: Case
    reason: str
    upstream: str = ""
    targets: frozenset[str] = TORCH_TARGETS

    @property
    def xfail_reason(self) -> str:
        return f"{self.reason} {self.upstream}".strip()


def _nll_4d_permuted(case: Case, direction: str) -> bool:
    return (direction == "gradient" and case.function == "nll_loss"
            and case.arrays[0].ndim == 4 and case.layout == "transposed")


def _bce_half_clamp(case: Case, direction: str) -> bool:
    if not (direction == "gradient" and case.function == "binary_cross_entropy"
            and case.dtype == "float16"):
        return False
    p = case.rounded(case.arrays[0])
    return bool(((p == 0.0) | (p == 1.0)).any())


def _uint8_smoothed_weighted_mean(case: Case, direction: str) -> bool:
    return (case.function == "cross_entropy" and len(case.arrays) > 1
            and case.arrays[1].dtype == np.uint8 and case.params.get("weight") is not None
            and bool(case.params.get("label_smoothing")) and case.params.get("reduction") == "mean")


KNOWN_ISSUES: tuple[KnownIssue, ...] = (
    KnownIssue(
        "cross_entropy rejects a uint8 target with weight, smoothing and mean", "forward",
        _uint8_smoothed_weighted_mean,
        Case("cross_entropy", (np.array([[0.5, -1.0, 2.0], [0.0, 1.0, -0.5]]),
                               np.array([0, 2], dtype=np.uint8)),
             {"weight": np.array([1.0, 2.0, 0.5]), "reduction": "mean", "label_smoothing": 0.2}),
        "torch accepts uint8 class-index targets for (C,) and (N, C) inputs, but with a class "
        "weight, label_smoothing > 0 and reduction='mean' its smoothing denominator gathers "
        "weight[target] and raises 'RuntimeError: gather(): Expected dtype int32/int64 for "
        "index' (found by this suite; no upstream issue found)"),
    KnownIssue(
        "nll_loss backward on a permuted 4-D input", "gradient", _nll_4d_permuted,
        Case("nll_loss", (np.arange(24.0).reshape(2, 3, 2, 2) / 10,
                          np.array([[[0, 1], [2, 0]], [[1, 1], [0, 2]]])),
             {"reduction": "mean"}, "float64", "transposed"),
        "torch's nll_loss on a 4-D input whose memory is permuted (channels_last, movedim) "
        "raises 'RuntimeError: grad_input must be contiguous' in backward: the 4-D path "
        "skips the .contiguous() the 3-D and 5-D paths make, so the gradient buffer keeps "
        "the input's strides",
        "https://github.com/pytorch/pytorch/issues/175084"),
    KnownIssue(
        "binary_cross_entropy float16 gradient at p = 0 or 1", "gradient", _bce_half_clamp,
        Case("binary_cross_entropy", (np.array([0.0, 1.0, 0.25]), np.array([0.0, 1.0, 1.0])),
             {"reduction": "none"}, "float16"),
        "torch clamps BCE's gradient denominator p(1 − p) at 1e-12, which rounds to 0 in "
        "float16: at p = 0 or 1 the gradient is 0/0 = NaN (or ±inf) instead of the "
        "(p − y)/1e-12 that float32 and bfloat16 give (found by this suite; no upstream "
        "issue found)"),
)


def known_issue(target_name: str, case: Case, direction: str) -> KnownIssue | None:
    """The known torch issue ``case`` runs into under ``target_name``, if any."""
    for issue in KNOWN_ISSUES:
        if target_name in issue.targets and issue.applies(case, direction):
            return issue
    return None
