"""torch's departures from the mathematics found by the per-element bounds work (issue 10,
item 5: the thorough profile run against the per-element scales of :mod:`lossproofs.checks`).

Each entry has the record type of :mod:`lossproofs.ledger`; its ``affected`` predicate marks
exactly the cases the mechanism takes past the suite's bound, and a ``near_miss`` just outside
it passes.
"""

from __future__ import annotations

import numpy as np

from lossproofs.cases import Case
from lossproofs.comparison import error_scale, reference_forward
from lossproofs.ledger.record import TORCH_EAGER, Divergence
from lossproofs.reference._kernels import _index_rows, _to_rows
from lossproofs.tolerances import tolerance

EAGER = frozenset({TORCH_EAGER})


def _smoothing_log_sum_rounding(case: Case, direction: str):
    """cross_entropy with index targets and label smoothing, reduced: torch's log_softmax
    subtracts log S with S = 1 + t, t = Σ_{j≠k} e^{d_j}, rounded to the dtype (log, not log1p;
    pytorch#113708), so every log-probability of the row is off by δ = |log fl(1 + t) − log1p(t)|
    (in float16, for t < 2⁻¹¹, the dominant one comes back as exactly 0). The smoothing term
    (ε/C)·Σ_c w_c·(−lp_c) and the NLL term w_t·(−lp_t) carry δ·((ε/C)·Σ_c w_c + (1 − ε)·w_t),
    which the mean's 1/Σ w[t] amplifies. True when that exceeds the table's bound at the
    check's scale (unreduced outputs: the error model's per-element floor covers δ)."""
    if direction != "forward" or case.function != "cross_entropy" or len(case.arrays) < 2:
        return False
    (x, t), params = case.reference_args()
    smoothing = params.get("label_smoothing", 0.0)
    reduction = params.get("reduction", "mean")
    if t.shape == x.shape or not smoothing or reduction == "none":
        return False
    rows, _ = _to_rows(np.asarray(x, dtype=np.float64))
    n, c = rows.shape
    if n == 0 or c == 0 or not np.isfinite(rows).all():
        return False
    kept, _, wt, w = _index_rows(t, params.get("weight"), c, params.get("ignore_index", -100))
    d = rows - np.max(rows, axis=1, keepdims=True)
    others = np.sum(np.exp(d), axis=1) - 1.0  # t = Σ_{j≠k} e^{d_j}
    delta = np.abs(np.log(case.rounded(1.0 + others)) - np.log1p(others))
    per_row = np.where(kept, delta * (smoothing / c * np.sum(np.abs(w)) + (1 - smoothing) * wt),
                       0.0)
    den = float(np.sum(wt)) if reduction == "mean" else 1.0
    if den == 0:
        return False
    expected = reference_forward(case)
    tol = tolerance(case.dtype, "forward")
    bound = tol.atol * error_scale(case, expected) + tol.rtol * float(np.abs(expected))
    return bool(np.sum(per_row) / den > bound)


_X = np.array([-5.0, 5.0])
_T = np.array(0)

ENTRIES: tuple[Divergence, ...] = (
    Divergence(
        "cross_entropy label smoothing amplifies log_softmax's log S rounding",
        "cross_entropy", "forward",
        Case("cross_entropy", (_X, _T),
             {"weight": np.array([2.0**-10, 2.0]), "reduction": "mean",
              "label_smoothing": 1.0}, "float16"),
        "with label smoothing, torch forms (ε/C)·Σ_c w_c·(−lp_c) from its log_softmax, whose "
        "log S (log, not log1p) shifts every log-probability by the rounding of S = 1 + t: "
        "for logits (−5, 5) in float16 the dominant −lp = 4.5e-5 comes back as 0, and the "
        "mean's 1/Σ w[t] = 1024 makes the loss 5.0 instead of 5.0465 (0.9 % off; float32 "
        "is off the same way by S's rounding, 6e-5; found by the thorough profile)",
        "https://github.com/pytorch/pytorch/issues/113708",
        families=EAGER, direction="forward",
        affected=_smoothing_log_sum_rounding,
        near_miss=Case("cross_entropy", (_X, _T),
                       {"weight": np.array([0.5, 2.0]), "reduction": "mean",
                        "label_smoothing": 1.0}, "float16"),
    ),
)
