"""Hypothesis strategies for ``linear_cross_entropy`` cases.

``Case("linear_cross_entropy", (input, linear_weight, target), params, dtype, layout, tags)``
with params ``linear_bias``, ``weight``, ``reduction``, ``ignore_index`` and
``label_smoothing``, over cross_entropy's parameter space (class-index targets with ignored
entries, class weights, label smoothing, probability targets, K-dim weights, unbatched input,
every dtype and layout), built from the same building blocks as
:func:`lossproofs.strategies.nll_loss_cases`.

Draws are non-trivial by construction: batched cases have at least 2 tokens, C ≥ 2, some row of
logits is non-constant, and when targets may be ignored both kept and ignored targets are
common (each element is ignored with probability about 1/3, and at least one is kept).

Sizes are small (N ≤ :data:`MAX_TOKENS`, in ≤ :data:`MAX_IN_FEATURES`) and values bounded
(:data:`VALUE_BOUND`), so logits stay within ``in·VALUE_BOUND² + VALUE_BOUND`` — ordinary inputs;
extreme logits and large vocabularies are the accuracy study's (``lossproofs.oracle.linear``).
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lossproofs.cases import Case
from lossproofs.strategies import (
    MAX_CLASSES,
    MAX_SPATIAL,
    REDUCTIONS,
    _dtype,
    _tags,
    class_weights,
    float_arrays,
    ignore_indices,
    label_smoothings,
    layouts,
    probability_targets,
    reductions,
)

FUNCTION = "linear_cross_entropy"
MAX_TOKENS = 7
MAX_IN_FEATURES = 4
VALUE_BOUND = 2.0
DEFAULT_IGNORE_INDEX = -100


def values(shape) -> st.SearchStrategy[np.ndarray]:
    """Activations, weights and biases in ``[-VALUE_BOUND, VALUE_BOUND]``."""
    return float_arrays(shape, -VALUE_BOUND, VALUE_BOUND)


@st.composite
def linear_shapes(draw, allow_unbatched: bool = True, allow_kdim: bool = True):
    """``(input shape, linear_weight shape)``: ``(in,)`` or ``(N, in)`` with 2 ≤ N ≤
    MAX_TOKENS; ``(C, in)`` or, batched only, ``(C, d1[, d2], in)``; 2 ≤ C ≤ MAX_CLASSES."""
    kinds = ["batched", "batched"] + (["unbatched"] if allow_unbatched else []) + (
        ["kdim"] if allow_kdim else [])
    kind = draw(st.sampled_from(kinds))
    d = draw(st.integers(1, MAX_IN_FEATURES))
    c = draw(st.integers(2, MAX_CLASSES))
    if kind == "unbatched":
        return (d,), (c, d)
    n = draw(st.integers(2, MAX_TOKENS))
    if kind == "kdim":
        k = draw(st.integers(1, 2))
        out = tuple(draw(st.lists(st.integers(1, MAX_SPATIAL), min_size=k, max_size=k)))
        return (n, d), (c, *out, d)
    return (n, d), (c, d)


def logits_shape(input_shape, weight_shape) -> tuple[int, ...]:
    """torch's ``(*batch, C, d1..dK)``."""
    return (*input_shape[:-1], weight_shape[0], *weight_shape[1:-1])


def index_target_shape(input_shape, weight_shape) -> tuple[int, ...]:
    """The logits' shape without the class dim: ``()``, ``(N,)`` or ``(N, d1..dK)``."""
    return (*input_shape[:-1], *weight_shape[1:-1])


@st.composite
def index_targets_with_ignored(draw, shape, n_classes: int, ignore_index: int | None):
    """Class indices of ``shape``; with an ``ignore_index`` and at least 2 elements, usually
    (3 draws in 4) between 1 and all-but-one of them are ignored, at drawn positions, so that
    kept and ignored targets are both common (hypothesis would otherwise favour none)."""
    t = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, n_classes - 1)))
    size = int(np.prod(shape))
    if ignore_index is not None and size >= 2 and draw(st.sampled_from([True, True, True,
                                                                           False])):
        k = draw(st.integers(1, size - 1))
        positions = draw(st.permutations(range(size)))[:k]
        flat = t.reshape(-1)
        flat[positions] = ignore_index
        t = flat.reshape(shape)
    return t.astype(np.int64)


def _input_layout(draw, input_shape, exclude=frozenset()):
    layout = "contiguous" if "non-contiguous" in exclude else draw(layouts())
    if layout == "expanded" and len(input_shape) == 2:
        row = draw(values((1, input_shape[1])))
        return layout, np.broadcast_to(row, input_shape).copy()
    return ("contiguous" if layout == "expanded" else layout), draw(values(input_shape))


@st.composite
def linear_cross_entropy_cases(draw, dtype: str | None = None, *, probabilities: bool | None =
                               None, smoothed: bool = True, ignored: bool = True,
                               weighted: bool = True, biased: bool = True,
                               allow_unbatched: bool = True, allow_kdim: bool = True,
                               exclude: frozenset[str] = frozenset()) -> Case:
    """One linear_cross_entropy call over every parameter family.

    ``probabilities`` forces probability (True) or class-index (False) targets; the other
    switches turn families off for properties that hold only without them (e.g. the chunked
    path runs without label smoothing and K-dim weights, ``smoothed=False, allow_kdim=False``).
    ``exclude`` names families never drawn (what a target declares it does not provide,
    :mod:`lossproofs.declarations`).
    """
    if "probability target" in exclude:
        probabilities = False
    smoothed = smoothed and "label_smoothing" not in exclude
    ignored = ignored and "ignore_index" not in exclude
    weighted = weighted and "weight" not in exclude
    biased = biased and "linear_bias" not in exclude
    allow_unbatched = allow_unbatched and "unbatched" not in exclude
    allow_kdim = allow_kdim and "k-dim" not in exclude
    input_shape, weight_shape = draw(linear_shapes(allow_unbatched, allow_kdim))
    c = weight_shape[0]
    layout, x = _input_layout(draw, input_shape, exclude)
    w = draw(values(weight_shape))
    params: dict = {}
    bias = draw(st.one_of(st.none(), values(weight_shape[:-1]))) if biased else None
    z = (np.atleast_2d(x) @ w.reshape(-1, w.shape[-1]).T
         + (0 if bias is None else bias.reshape(-1)))
    # Non-trivial: some row of logits (per position) is not constant over the classes.
    zr = z.reshape(z.shape[0], c, -1)
    assume(bool(np.any(np.ptp(zr, axis=1) > 0)))
    if bias is not None:
        params["linear_bias"] = bias
    use_probabilities = draw(st.booleans()) if probabilities is None else probabilities
    lshape = logits_shape(input_shape, weight_shape)
    if use_probabilities:
        t = draw(probability_targets(lshape))
    else:
        ignore_index = None
        if ignored and draw(st.booleans()):
            ignore_index = draw(ignore_indices(c))
            if ignore_index != DEFAULT_IGNORE_INDEX or draw(st.booleans()):
                params["ignore_index"] = ignore_index
        elif ignored:
            ignore_index = DEFAULT_IGNORE_INDEX  # the default (None → −100) with −100 targets
        t = draw(index_targets_with_ignored(index_target_shape(input_shape, weight_shape), c,
                                            ignore_index))
    weight = draw(class_weights(c)) if weighted else None
    if weight is not None:
        params["weight"] = weight
    kept = [r for r in REDUCTIONS if f"reduction:{r}" not in exclude]
    params["reduction"] = draw(reductions() if len(kept) == len(REDUCTIONS)
                               else st.sampled_from(kept))
    if smoothed:
        eps = draw(label_smoothings())
        if eps:
            params["label_smoothing"] = eps
    ignored_any = (not use_probabilities and ignored
                   and bool(np.any(t == params.get("ignore_index", DEFAULT_IGNORE_INDEX))))
    tags = ["reduction",
            "probability target" if use_probabilities else None,
            "linear_bias" if bias is not None else None,
            "weight" if weight is not None else None,
            "ignore_index" if ignored_any or "ignore_index" in params else None,
            "label_smoothing" if params.get("label_smoothing") else None,
            "unbatched" if len(input_shape) == 1 else None,
            "k-dim" if len(weight_shape) > 2 else None,
            None if layout == "contiguous" else "non-contiguous"]
    return Case(FUNCTION, (x, w, t), params, _dtype(draw, dtype), layout, _tags(*tags))


def chunked_path_cases(dtype: str | None = None, **kwargs) -> st.SearchStrategy[Case]:
    """Cases the chunked path runs itself (no fallback): int64 class-index targets, no label
    smoothing, a 2-D linear weight."""
    return linear_cross_entropy_cases(dtype, probabilities=False, smoothed=False,
                                      allow_kdim=False, **kwargs)


def fallback_cases(dtype: str | None = None) -> st.SearchStrategy[Case]:
    """Cases the chunked path hands to the reference path with a warning: label smoothing,
    probability targets, or a K-dim weight (at least one of them)."""
    return linear_cross_entropy_cases(dtype).filter(
        lambda case: bool(case.params.get("label_smoothing")) or case.arrays[1].ndim > 2
        or case.arrays[2].dtype.kind == "f")


__all__ = [
    "MAX_CLASSES",
    "MAX_IN_FEATURES",
    "MAX_TOKENS",
    "VALUE_BOUND",
    "chunked_path_cases",
    "fallback_cases",
    "index_target_shape",
    "linear_cross_entropy_cases",
    "linear_shapes",
    "logits_shape",
]
