"""The size tier: forward values and gradients on inputs of realistic size, every dtype.

Language-model vocabularies (C up to 65599, sizes that no block size divides), batches long
enough that an accumulator in half precision stagnates, counts and total weights beyond the
dtype's largest finite value, K-dim inputs of 10⁴–10⁵ positions, weights over the dtype's whole
range: the strata of :mod:`lossproofs.strategies.large`, each its own parametrisation, so each
runs in CI. The checks and bounds are the ordinary ones (``lossproofs.checks`` against the
float64 reference on the rounded inputs, bounds from ``lossproofs.tolerances``).

Few examples per property: one draw holds 10⁵–10⁶ elements and costs about as much as a
hundred ordinary ones (``LARGE_EXAMPLES``: 2 under the dev and ci profiles, a fiftieth of the
profile's count beyond). Shrinking is off: a draw is a stratum, a few sizes and a seed, and its
reproduction rebuilds the arrays from the seed.
"""


import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from lossproofs import checks, ledger, reference
from lossproofs.cases import DTYPES, Case
from lossproofs.strategies.large import STRATA, STRATUM_FAMILIES, large_cases
from lossproofs.suite._support import draw_case, require

LARGE_EXAMPLES = max(2, settings.default.max_examples // 50)
LARGE_SETTINGS = settings(
    max_examples=LARGE_EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.data_too_large])
SEEDS = st.integers(0, 2**32 - 1)

FUNCTION_STRATA = [(function, stratum) for function, strata in STRATA.items()
                   for stratum in strata]


# The torch divergences the size tier found are ledger entries (lossproofs/ledger/large.py).


def _aside(impl, case: Case, direction: str, shape: tuple[int, ...]):
    """What to leave uncompared: the ledger's set-aside for this target, as ``(whole, mask)``;
    a case set aside as a whole is not compared (a stratum a divergence covers entirely, such
    as torch's float32 softmax over a non-last dim, is then pinned by its ledger example
    alone). Recorded as hypothesis events."""
    found = ledger.set_aside(impl, case, direction, shape)
    if found:
        event(f"set aside ({'whole case' if found.whole else 'elements'}): {found.names}")
    return found.whole, found.mask


def _assert_forward(impl, case: Case, what: str):
    expected = checks.reference_forward(case)
    whole, mask = _aside(impl, case, "forward", expected.shape)
    if whole:
        return
    actual, expected, scale = checks.forward(impl, case)
    checks.assert_agrees(actual, expected, case, "forward", what, scale, mask)


def _assert_gradients(impl, case: Case, seed: int):
    """checks.gradients against the closed forms, at checks.gradient_scale; log_softmax's at the
    scale of the terms its backward combines (see :func:`_log_softmax_gradient_scale`)."""
    whole, mask = _aside(impl, case, "gradient", case.arrays[0].shape)
    if whole:
        return
    for name, actual, expected in checks.gradients(impl, case, seed):
        scale = checks.gradient_scale(case.function, expected)
        if case.function == "log_softmax":
            scale = max(scale, _log_softmax_gradient_scale(case, seed))
        if case.function == "cross_entropy":
            scale = max(scale, _cross_entropy_gradient_scale(case, seed))
        checks.assert_agrees(actual, expected, case, "gradient", f"{case.function} {name}",
                             scale, mask if mask is not None and mask.shape == expected.shape
                             else None)


def _log_softmax_gradient_scale(case: Case, seed: int) -> float:
    """log_softmax's gradient is g − p·Σg: its rounding is ε·(|g| + p·Σ|g|), and over a
    vocabulary p·Σ|g| exceeds max|gradient| (p = 10⁻³ and 5·10⁴ classes give 50 where the
    gradient is ≤ 2). The scale of a sum is the sum of its terms' magnitudes, as
    checks.error_scale has it for reductions; checks.gradient_scale's max|expected| is that only
    for short rows."""
    (x,), params = case.reference_args()
    g = np.abs(checks.grad_output_for(case, x.shape, seed))
    p = reference.softmax(x, params["dim"])
    terms = g + p * np.sum(g, axis=params["dim"], keepdims=True)
    return max(1.0, float(np.max(terms, initial=0.0)))


def _cross_entropy_gradient_scale(case: Case, seed: int) -> float:
    """cross_entropy's gradient is g·(p·Σ_c w_c·T_c − w·T)/denominator with T the (smoothed)
    target distribution: its rounding is ε·|g|·(p·Σ_c |w_c·T_c| + |w·T|)/denominator, which
    with label smoothing and many weighted classes exceeds max|gradient| (the two terms nearly
    cancel). As for log_softmax, the scale is the magnitude of the terms combined."""
    (x, t), params = case.reference_args()
    cd = 0 if x.ndim == 1 else 1
    c = x.shape[cd]
    eps_ = float(params.get("label_smoothing", 0.0))
    w = params.get("weight")
    shape = [1] * x.ndim
    shape[cd] = c
    w = np.ones(shape) if w is None else np.abs(w).reshape(shape)
    if t.shape == x.shape:  # probability targets: T = (1 − ε)·t + ε/C; mean over numel/C
        dist = (1 - eps_) * t + eps_ / c
        denominator = max(1, t.size // c) if params.get("reduction", "mean") == "mean" else 1
    else:
        ignore = params.get("ignore_index", -100)
        kept = np.expand_dims(t != ignore, cd)
        one_hot = np.zeros(x.shape)
        np.put_along_axis(one_hot, np.expand_dims(np.where(t == ignore, 0, t), cd), 1.0, cd)
        dist = ((1 - eps_) * one_hot + eps_ / c) * kept
        denominator = 1.0
        if params.get("reduction", "mean") == "mean":
            denominator = float(np.sum(np.where(kept, np.take_along_axis(
                np.broadcast_to(w, x.shape), np.expand_dims(np.where(t == ignore, 0, t), cd),
                cd), 0.0)))
    p = reference.softmax(x, cd)
    wd = w * np.abs(dist)
    terms = p * np.sum(wd, axis=cd, keepdims=True) + wd
    out = checks.reference_forward(case)
    g = np.abs(checks.grad_output_for(case, out.shape, seed))
    g = np.expand_dims(g, cd) if g.ndim else g
    with np.errstate(all="ignore"):
        scale = float(np.max(g * terms, initial=0.0)) / denominator if denominator else 0.0
    return max(1.0, scale) if np.isfinite(scale) else 1.0


def _large_cases(impl, function: str, stratum: str, dtype: str):
    """The stratum's cases, never drawing what ``impl`` declares it does not provide; a stratum
    whose every case carries such a family (:data:`STRATUM_FAMILIES`) is skipped, naming it."""
    family = STRATUM_FAMILIES.get(stratum)
    if family in impl.declared_out(function):
        pytest.skip(f"{impl.name}: {impl.excluded_families(function, {family})}")
    return large_cases(function, stratum, dtype, exclude=impl.declared_out(function))


def _params():
    return [pytest.param(f, s, d, id=f"{f}-{s.replace(' ', '_')}-{d}")
            for f, s in FUNCTION_STRATA for d in DTYPES]


@pytest.mark.parametrize(("function", "stratum", "dtype"), _params())
@LARGE_SETTINGS
@given(data=st.data())
def test_large_forward_matches_reference(impl, function, stratum, dtype, data):
    require(impl, function)
    case = draw_case(data, impl, function, dtype, _large_cases(impl, function, stratum, dtype))
    _assert_forward(impl, case, f"{function} forward ({stratum})")


@pytest.mark.parametrize(("function", "stratum", "dtype"), _params())
@LARGE_SETTINGS
@given(data=st.data(), seed=SEEDS)
def test_large_gradient_matches_closed_form(impl, function, stratum, dtype, data, seed):
    require(impl, function)
    case = draw_case(data, impl, function, dtype, _large_cases(impl, function, stratum, dtype))
    _assert_gradients(impl, case, seed)
