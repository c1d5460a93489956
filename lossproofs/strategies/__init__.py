"""Hypothesis strategies for ordinary inputs (extreme inputs live in :mod:`.extreme`).

Building blocks (shapes, logits, index targets with ``ignore_index`` sprinkled, class weights,
probability targets, BCE probabilities, dtypes, layouts) and, built from them, one strategy of
:class:`~lossproofs.cases.Case` per function: ``cases(function_name, dtype=...)``.

Ordinary inputs are bounded: logits in ``[-LOGIT_BOUND, LOGIT_BOUND]``, at most
``MAX_CLASSES`` classes and small batches, so that tolerances can be stated once per dtype
(see :mod:`lossproofs.tolerances`). Extremes are the job of :mod:`.extreme`.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lossproofs.cases import DTYPES, LAYOUTS, Case

LOGIT_BOUND = 10.0
MAX_CLASSES = 6
MAX_BATCH = 5
MAX_SPATIAL = 3
REDUCTIONS = ("none", "sum", "mean")
DEFAULT_IGNORE_INDEX = -100


def dtypes() -> st.SearchStrategy[str]:
    return st.sampled_from(DTYPES)


def layouts() -> st.SearchStrategy[str]:
    return st.sampled_from(LAYOUTS)


def reductions() -> st.SearchStrategy[str]:
    return st.sampled_from(REDUCTIONS)


def float_arrays(shape, lo: float, hi: float) -> st.SearchStrategy[np.ndarray]:
    """float64 arrays of ``shape`` with finite elements in ``[lo, hi]``."""
    return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False))


def logits(shape) -> st.SearchStrategy[np.ndarray]:
    """Finite logits in ``[-LOGIT_BOUND, LOGIT_BOUND]``."""
    return float_arrays(shape, -LOGIT_BOUND, LOGIT_BOUND)


@st.composite
def class_shapes(draw, allow_unbatched: bool = True, allow_kdim: bool = True,
                 allow_empty: bool = True, min_classes: int = 1) -> tuple[int, ...]:
    """``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)`` with ``k`` in 1..3; N may be 0."""
    kinds = ["batched"] + (["unbatched"] if allow_unbatched else []) + (
        ["kdim"] if allow_kdim else [])
    kind = draw(st.sampled_from(kinds))
    c = draw(st.integers(min_classes, MAX_CLASSES))
    if kind == "unbatched":
        return (c,)
    n = draw(st.integers(0 if allow_empty else 1, MAX_BATCH))
    if kind == "kdim":
        k = draw(st.integers(1, 3))
        return (n, c, *draw(st.lists(st.integers(1, MAX_SPATIAL), min_size=k, max_size=k)))
    return (n, c)


def class_dim(shape: tuple[int, ...]) -> int:
    """torch's class dimension: 0 for an unbatched ``(C,)`` input, else 1."""
    return 0 if len(shape) == 1 else 1


def target_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of an index target for an input of ``shape`` (the class dim removed)."""
    cd = class_dim(shape)
    return shape[:cd] + shape[cd + 1:]


@st.composite
def ignore_indices(draw, num_classes: int) -> int:
    """The default -100, another negative value, a real class, or a value past the classes."""
    return draw(st.sampled_from([
        DEFAULT_IGNORE_INDEX, -1, draw(st.integers(0, num_classes - 1)), num_classes + 2]))


@st.composite
def index_targets(draw, shape: tuple[int, ...], ignore_index: int | None,
                  dtype=np.int64) -> np.ndarray:
    """Class indices for an input of ``shape``, with ``ignore_index`` sprinkled in (unless
    it is None)."""
    c = shape[class_dim(shape)]
    tshape = target_shape(shape)
    values = st.integers(0, c - 1)
    if ignore_index is not None and (dtype == np.int64 or 0 <= ignore_index <= 255):
        values = st.one_of(values, st.just(ignore_index)) if draw(st.booleans()) else values
    return draw(hnp.arrays(dtype, tshape, elements=values))


# Ordinary class weights are 0 or at least MIN_WEIGHT: weights near the underflow threshold
# (where torch's w·x underflows and g/Σw overflows) are extreme inputs, pinned in
# lossproofs.known_issues rather than drawn here.
MIN_WEIGHT = 2.0**-10


def class_weights(num_classes: int) -> st.SearchStrategy[np.ndarray | None]:
    """No weight, or a ``(C,)`` weight in ``{0} ∪ [MIN_WEIGHT, 3]``."""
    w = hnp.arrays(np.float64, (num_classes,),
                   elements=st.one_of(st.just(0.0), st.floats(MIN_WEIGHT, 3.0)))
    return st.one_of(st.none(), w)


@st.composite
def probability_targets(draw, shape: tuple[int, ...]) -> np.ndarray:
    """Class-probability targets of ``shape``: soft rows, one-hot rows, or unnormalised rows."""
    cd = class_dim(shape)
    kind = draw(st.sampled_from(["soft", "one_hot", "unnormalised"]))
    if kind == "unnormalised":
        return draw(float_arrays(shape, 0.0, 1.0))
    if kind == "one_hot":
        c = shape[cd]
        idx = draw(hnp.arrays(np.int64, target_shape(shape), elements=st.integers(0, c - 1)))
        return np.moveaxis(np.eye(c)[idx], -1, cd) if idx.size else np.zeros(shape)
    raw = draw(float_arrays(shape, 0.0, 1.0)) + 1e-3
    return raw / raw.sum(axis=cd, keepdims=True)


def label_smoothings() -> st.SearchStrategy[float]:
    """0 (the default), 1 and values in between."""
    return st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))


@st.composite
def broadcast_shapes_into(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to ``shape`` without enlarging it (trailing dims, 1 or equal)."""
    ndim = draw(st.integers(0, len(shape)))
    tail = shape[len(shape) - ndim:]
    return tuple(draw(st.sampled_from([1, d])) for d in tail)


@st.composite
def _expanded(draw, shape, elements) -> np.ndarray:
    """An array of ``shape`` whose slices along dim 0 are all equal (for the expanded layout)."""
    row = draw(elements((1, *shape[1:])))
    return np.broadcast_to(row, shape).copy()


@st.composite
def _layout_and_input(draw, shape, elements, dtype=None):
    layout = draw(layouts()) if len(shape) >= 1 else "contiguous"
    if layout == "expanded":
        x = draw(_expanded(shape, elements))
    else:
        x = draw(elements(shape))
    return layout, x


def _dtype(draw, dtype):
    return draw(dtypes()) if dtype is None else dtype


def _tags(*names: str | None) -> frozenset[str]:
    return frozenset(n for n in names if n)


@st.composite
def softmax_cases(draw, function: str = "softmax", dtype: str | None = None) -> Case:
    """``softmax``/``log_softmax``/``logsumexp`` on 0-d to 4-d inputs along a valid dim."""
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=4)))
    layout, x = draw(_layout_and_input(shape, logits))
    ndim = max(len(shape), 1)
    dim = draw(st.integers(-ndim, ndim - 1))
    params = {"dim": dim}
    tags = ["empty" if 0 in shape else None, "0-d" if not shape else None,
            None if layout == "contiguous" else "non-contiguous"]
    if function == "logsumexp":
        params["keepdim"] = draw(st.booleans())
    return Case(function, (x,), params, _dtype(draw, dtype), layout, _tags(*tags))


@st.composite
def nll_loss_cases(draw, dtype: str | None = None, function: str = "nll_loss", *,
                   ignored: bool = True, weighted: bool = True, smoothed: bool = True,
                   allow_empty: bool = True, uint8: bool = True) -> Case:
    """``nll_loss`` (or index-target ``cross_entropy``) over every parameter family.

    The keyword switches turn families off for identities that hold only without them:
    ``ignored`` (ignore_index and ignored targets), ``weighted``, ``smoothed`` (label
    smoothing, cross_entropy only), ``allow_empty`` and ``uint8`` targets.
    """
    shape = draw(class_shapes(allow_empty=allow_empty))
    c = shape[class_dim(shape)]
    layout, x = draw(_layout_and_input(shape, logits))
    params: dict = {}
    ignore_index = DEFAULT_IGNORE_INDEX
    if ignored and draw(st.booleans()):
        ignore_index = draw(ignore_indices(c))
        params["ignore_index"] = ignore_index
    # torch accepts uint8 targets only for (C,) and (N, C) inputs; K-dim inputs reject them
    # (an error case, see lossproofs.error_cases).
    target_dtype = draw(st.sampled_from([np.int64, np.int64, np.uint8] if uint8 and len(shape) <= 2
                                        else [np.int64]))
    t = draw(index_targets(shape, ignore_index if ignored else None, target_dtype))
    weight = draw(class_weights(c)) if weighted else None
    if weight is not None:
        params["weight"] = weight
    params["reduction"] = draw(reductions())
    if function == "cross_entropy" and smoothed:
        eps = draw(label_smoothings())
        if eps:
            params["label_smoothing"] = eps
    tags = [
        "reduction", "weight" if weight is not None else None,
        "ignore_index" if ignored and ((t == ignore_index).any() or "ignore_index" in params)
        else None,
        "label_smoothing" if params.get("label_smoothing") else None,
        "unbatched" if len(shape) == 1 else None, "k-dim" if len(shape) > 2 else None,
        "empty" if 0 in shape else None, "single class" if c == 1 else None,
        None if layout == "contiguous" else "non-contiguous",
        "uint8 target" if target_dtype == np.uint8 else None,
    ]
    return Case(function, (x, t), params, _dtype(draw, dtype), layout, _tags(*tags))


@st.composite
def cross_entropy_probability_cases(draw, dtype: str | None = None) -> Case:
    """``cross_entropy`` with class-probability targets (the target has the input's shape)."""
    shape = draw(class_shapes())
    c = shape[class_dim(shape)]
    layout, x = draw(_layout_and_input(shape, logits))
    t = draw(probability_targets(shape))
    params: dict = {}
    weight = draw(class_weights(c))
    if weight is not None:
        params["weight"] = weight
    params["reduction"] = draw(reductions())
    eps = draw(label_smoothings())
    if eps:
        params["label_smoothing"] = eps
    tags = ["probability target", "reduction", "weight" if weight is not None else None,
            "label_smoothing" if eps else None, "unbatched" if len(shape) == 1 else None,
            "k-dim" if len(shape) > 2 else None, "empty" if 0 in shape else None,
            None if layout == "contiguous" else "non-contiguous"]
    return Case("cross_entropy", (x, t), params, _dtype(draw, dtype), layout, _tags(*tags))


@st.composite
def cross_entropy_cases(draw, dtype: str | None = None) -> Case:
    """``cross_entropy`` with either kind of target."""
    if draw(st.booleans()):
        return draw(nll_loss_cases(dtype, function="cross_entropy"))
    return draw(cross_entropy_probability_cases(dtype))


def bce_probabilities(shape) -> st.SearchStrategy[np.ndarray]:
    """Probabilities in ``[0, 1]``, the exact endpoints (where log clamps at −100) included."""
    return hnp.arrays(np.float64, shape, elements=st.one_of(
        st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0])))


def bce_targets(shape) -> st.SearchStrategy[np.ndarray]:
    """Hard ``{0, 1}`` or soft ``[0, 1]`` targets."""
    return st.one_of(
        hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0])),
        float_arrays(shape, 0.0, 1.0))


def _bce_shape(draw) -> tuple[int, ...]:
    return tuple(draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))


@st.composite
def binary_cross_entropy_cases(draw, dtype: str | None = None) -> Case:
    """``binary_cross_entropy`` on 0-d to 3-d inputs, broadcast weights, all reductions."""
    shape = _bce_shape(draw)
    layout, p = draw(_layout_and_input(shape, bce_probabilities))
    y = draw(bce_targets(shape))
    params: dict = {}
    if draw(st.booleans()):
        params["weight"] = draw(float_arrays(draw(broadcast_shapes_into(shape)), 0.0, 3.0))
    params["reduction"] = draw(reductions())
    tags = ["reduction", "weight" if "weight" in params else None,
            "clamp" if ((p == 0) | (p == 1)).any() else None, "empty" if 0 in shape else None,
            None if layout == "contiguous" else "non-contiguous"]
    return Case("binary_cross_entropy", (p, y), params, _dtype(draw, dtype), layout, _tags(*tags))


@st.composite
def binary_cross_entropy_with_logits_cases(draw, dtype: str | None = None) -> Case:
    """``binary_cross_entropy_with_logits`` with broadcast weight and ``pos_weight``."""
    shape = _bce_shape(draw)
    layout, x = draw(_layout_and_input(shape, lambda s: float_arrays(s, -20.0, 20.0)))
    y = draw(bce_targets(shape))
    params: dict = {}
    if draw(st.booleans()):
        params["weight"] = draw(float_arrays(draw(broadcast_shapes_into(shape)), 0.0, 3.0))
    if shape and draw(st.booleans()):
        pw_shape = draw(st.sampled_from([(shape[-1],), (1,)]))
        params["pos_weight"] = draw(float_arrays(pw_shape, 0.0, 4.0))
    params["reduction"] = draw(reductions())
    tags = ["reduction", "weight" if "weight" in params else None,
            "pos_weight" if "pos_weight" in params else None, "empty" if 0 in shape else None,
            None if layout == "contiguous" else "non-contiguous"]
    return Case("binary_cross_entropy_with_logits", (x, y), params, _dtype(draw, dtype), layout,
                _tags(*tags))


def cases(function: str, dtype: str | None = None) -> st.SearchStrategy[Case]:
    """Every ordinary :class:`Case` of ``function`` (a name from ``lossproofs.reference``)."""
    if function in ("softmax", "log_softmax", "logsumexp"):
        return softmax_cases(function, dtype)
    return {
        "nll_loss": lambda: nll_loss_cases(dtype),
        "cross_entropy": lambda: cross_entropy_cases(dtype),
        "binary_cross_entropy": lambda: binary_cross_entropy_cases(dtype),
        "binary_cross_entropy_with_logits": lambda: binary_cross_entropy_with_logits_cases(dtype),
    }[function]()
