"""Ordinary strategies of the binary cross-entropies: probabilities (the clamp stratum's exact
endpoints a share of the draws), logits, hard and soft targets, broadcast ``weight`` and
``pos_weight``, every reduction and layout (the helpers are :mod:`lossproofs.strategies`')."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lossproofs.cases import Case
from lossproofs.strategies.basics import (
    CONSTANT_ROWS_SHARE,
    _choice,
    _dtype,
    _expanded,
    _layout_for,
    _reduction,
    _row_tags,
    _stratum,
    _tags,
    broadcast_shapes_into,
    float_arrays,
    vary_rows,
)

CLAMP_SHARE = 30  # percent of BCE cases holding exact endpoints p ∈ {0, 1}


@st.composite
def bce_probabilities(draw, shape, clamp: bool = True) -> np.ndarray:
    """Probabilities in ``[0, 1]``; in the ``clamp`` stratum (CLAMP_SHARE of the draws) about a
    third of the elements are the exact endpoints, where log clamps at −100. Endpoints in every
    element would leave nothing else to compare where an implementation's gradient at the
    endpoints is a known divergence (float16 torch), so they are a share, not the rule.
    Without ``clamp`` no element is 0 or 1 (``(0, 1)``, open: smallest normal float16 step
    away, so the endpoints stay out in every dtype)."""
    if not clamp:
        return draw(hnp.arrays(np.float64, shape,
                               elements=st.floats(2.0**-14, 1.0 - 2.0**-11), fill=st.nothing()))
    p = draw(hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0), fill=st.nothing()))
    if _stratum(draw, ("clamp", CLAMP_SHARE), default="") == "clamp":
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        at = rng.random(p.shape) < 1 / 3
        if p.size and not at.any():
            at.flat[0] = True
        p = np.where(at, rng.integers(0, 2, p.shape).astype(np.float64), p)
    return p


def bce_targets(shape) -> st.SearchStrategy[np.ndarray]:
    """Hard ``{0, 1}`` or soft ``[0, 1]`` targets."""
    return st.one_of(
        hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0]), fill=st.nothing()),
        float_arrays(shape, 0.0, 1.0))


@st.composite
def bce_shapes(draw) -> tuple[int, ...]:
    """1-d to 3-d, every dimension ≥ 1 and at least two elements (0-d and single-element
    inputs are degenerate cases, :mod:`.degenerate`)."""
    ndim = draw(st.integers(1, 3))
    shape = [draw(st.integers(1, {1: 12, 2: 8, 3: 5}[ndim])) for _ in range(ndim)]
    if int(np.prod(shape)) < 2:
        shape[-1] = 2
    return tuple(shape)


def _not_constant(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``x`` unless all its elements are equal, then with a ramp added (see vary_rows)."""
    flat = vary_rows(x.reshape(-1), 0, lo, hi)
    return flat.reshape(x.shape)


@st.composite
def _bce_input(draw, shape, elements, lo: float, hi: float, exclude=frozenset()):
    layout = _layout_for(draw, shape, None, exclude)
    if layout == "expanded" and int(np.prod(shape[1:])) < 2:
        layout = "sliced"  # one element per slice: expanded would make the input constant
    stratum = _stratum(draw, ("constant rows", CONSTANT_ROWS_SHARE), default="varied")
    if stratum == "constant rows":
        x = np.full(shape, draw(elements(())).item())
    elif layout == "expanded":
        x = _expanded(draw(elements(shape)))
        x = np.broadcast_to(_not_constant(x[:1], lo, hi), shape).copy()
    else:
        x = _not_constant(draw(elements(shape)), lo, hi)
    return layout, x, stratum


def _bce_weight(draw, shape):
    return draw(float_arrays(draw(broadcast_shapes_into(shape)), 0.0, 3.0))


@st.composite
def binary_cross_entropy_cases(draw, dtype: str | None = None,
                               exclude: frozenset[str] = frozenset()) -> Case:
    """``binary_cross_entropy`` on 1-d to 3-d inputs, broadcast weights, all reductions;
    families in ``exclude`` (``weight``, ``clamp``, ``non-contiguous``, ``reduction:<r>``) are
    not drawn (:mod:`lossproofs.declarations`)."""
    shape = draw(bce_shapes())
    clamp = "clamp" not in exclude
    lo, hi = (0.0, 1.0) if clamp else (2.0**-14, 1.0 - 2.0**-11)
    layout, p, stratum = draw(_bce_input(
        shape, lambda s: bce_probabilities(s, clamp), lo, hi, exclude))
    y = draw(bce_targets(shape))
    params: dict = {}
    if "weight" not in exclude and _choice(draw, (True, False)):
        params["weight"] = _bce_weight(draw, shape)
    params["reduction"] = _reduction(draw, exclude)
    tags = ["reduction", f"reduction:{params['reduction']}",
            "weight" if "weight" in params else None,
            "clamp" if ((p == 0) | (p == 1)).any() else None, _row_tags(stratum),
            None if layout == "contiguous" else "non-contiguous", f"layout:{layout}"]
    return Case("binary_cross_entropy", (p, y), params, _dtype(draw, dtype), layout, _tags(*tags))


@st.composite
def binary_cross_entropy_with_logits_cases(draw, dtype: str | None = None,
                                           exclude: frozenset[str] = frozenset()) -> Case:
    """``binary_cross_entropy_with_logits`` with broadcast weight and ``pos_weight``; families
    in ``exclude`` (``weight``, ``pos_weight``, ``non-contiguous``, ``reduction:<r>``) are not
    drawn."""
    shape = draw(bce_shapes())
    layout, x, stratum = draw(_bce_input(shape, lambda s: float_arrays(s, -20.0, 20.0),
                                         -20.0, 20.0, exclude))
    y = draw(bce_targets(shape))
    params: dict = {}
    if "weight" not in exclude and _choice(draw, (True, False)):
        params["weight"] = _bce_weight(draw, shape)
    if "pos_weight" not in exclude and _choice(draw, (True, False)):
        pw_shape = draw(st.sampled_from([(shape[-1],), (1,)]))
        params["pos_weight"] = draw(float_arrays(pw_shape, 0.0, 4.0))
    params["reduction"] = _reduction(draw, exclude)
    tags = ["reduction", f"reduction:{params['reduction']}",
            "weight" if "weight" in params else None,
            "pos_weight" if "pos_weight" in params else None, _row_tags(stratum),
            None if layout == "contiguous" else "non-contiguous", f"layout:{layout}"]
    return Case("binary_cross_entropy_with_logits", (x, y), params, _dtype(draw, dtype), layout,
                _tags(*tags))
