"""The building blocks of the ordinary strategies (shapes, logits, index targets, class weights,
probability targets, layouts, strata and their shares) and the softmax family's cases; the
index-target and binary losses' strategies build on them in their own modules, and
:mod:`lossproofs.strategies` puts them together (see its docstring for what a draw is)."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

from lossproofs.cases import DTYPES, LAYOUTS, Case

LOGIT_BOUND = 10.0
MAX_CLASSES = 12
MAX_BATCH = 8
MAX_SPATIAL = 4
# K-dim inputs: at most this many spatial positions per sample (keeps a draw ≤ 256 elements,
# each drawn on its own).
MAX_SPATIAL_POSITIONS = 8
MAX_KDIM_BATCH = 4
MAX_KDIM_CLASSES = 8
REDUCTIONS = ("none", "sum", "mean")
# Hypothesis draws a choice's first option far more often than its share (about half of all
# draws in a derandomized ci run: it tries the simplest value first and often), and shrinks
# towards it. The case strategies list the options whose combinations break denominators first
# (mean, a class weight, an ignore_index with kept and ignored targets), so that the surplus goes
# to the combination that matters, and strata to the norm ("varied" rows).
HARD_FIRST_REDUCTIONS = ("mean", "sum", "none")
DEFAULT_IGNORE_INDEX = -100

# Shares (in percent of draws) of the named strata that ordinary draws keep at a small share.
TIES_SHARE = 5
CONSTANT_ROWS_SHARE = 5
SINGLE_CLASS_SHARE = 3
ALL_IGNORED_SHARE = 5
NONE_IGNORED_SHARE = 5


def record(*tags: str) -> None:
    """Record each tag as a hypothesis event (shown by ``--hypothesis-show-statistics``); a
    no-op outside a hypothesis test (``strategy.example()``)."""
    for tag in tags:
        try:
            event(tag)
        except InvalidArgument:
            return


def _uniform(draw, n: int) -> int:
    """An integer in ``[0, n)``, uniformly distributed, shrinking towards 0.

    Hypothesis' own integers favour small and boundary values (``sampled_from`` of the three
    reductions drew "none" half the time), which starves strata given small shares; a seeded
    ``random.Random`` is uniform and, derandomized, reproducible. Seed 0 (the shrink target)
    gives 0."""
    seed = draw(st.integers(0, 2**32 - 1))
    return 0 if seed == 0 else random.Random(seed).randrange(n)


def _choice(draw, options):
    """One of ``options``, each about equally often; shrinks towards the first."""
    return options[_uniform(draw, len(options))]


def _stratum(draw, *named: tuple[str, int], default: str) -> str:
    """One of ``named`` strata with its share in percent, else ``default`` (the shrink target)."""
    r = _uniform(draw, 100)
    edge = 100
    for name, share in named:
        edge -= share
        if r >= edge:
            return name
    return default


def dtypes() -> st.SearchStrategy[str]:
    return st.sampled_from(DTYPES)


def layouts() -> st.SearchStrategy[str]:
    return st.sampled_from(LAYOUTS)


def reductions() -> st.SearchStrategy[str]:
    return st.sampled_from(REDUCTIONS)


def _reduction(draw, exclude: frozenset[str] = frozenset()) -> str:
    """One reduction (hard ones first, see HARD_FIRST_REDUCTIONS) not in ``exclude``."""
    kept = tuple(r for r in HARD_FIRST_REDUCTIONS if f"reduction:{r}" not in exclude)
    if not kept:
        raise ValueError("every reduction is excluded: nothing can be drawn "
                         "(lossproofs.declarations.drawable says so before drawing)")
    return _choice(draw, kept)


def float_arrays(shape, lo: float, hi: float) -> st.SearchStrategy[np.ndarray]:
    """float64 arrays of ``shape`` with finite elements in ``[lo, hi]``, each drawn on its own
    (``fill=nothing``: no array of one repeated value unless the elements happen to repeat)."""
    return hnp.arrays(np.float64, shape, elements=st.floats(lo, hi, allow_nan=False),
                      fill=st.nothing())


def logits(shape) -> st.SearchStrategy[np.ndarray]:
    """Finite logits in ``[-LOGIT_BOUND, LOGIT_BOUND]``."""
    return float_arrays(shape, -LOGIT_BOUND, LOGIT_BOUND)


def vary_rows(x: np.ndarray, axis: int, lo: float, hi: float) -> np.ndarray:
    """``x`` with every constant row along ``axis`` made non-constant: a ramp spanning a quarter
    of ``[lo, hi]`` is added to it and the result clipped to ``[lo, hi]`` (the two ends of the
    ramp stay distinct since the row's value lies in ``[lo, hi]``)."""
    if x.ndim == 0 or x.shape[axis] < 2 or x.size == 0:
        return x
    first = np.take(x, [0], axis=axis)
    constant = np.all(x == first, axis=axis, keepdims=True)
    if not constant.any():
        return x
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    span = (hi - lo) / 4
    ramp = np.linspace(-span, span, x.shape[axis]).reshape(shape)
    return np.where(constant, np.clip(x + ramp, lo, hi), x)


@st.composite
def row_values(draw, shape, axis: int, lo: float, hi: float, stratum: str) -> np.ndarray:
    """Values of ``shape`` in ``[lo, hi]`` for the named row stratum along ``axis``:
    ``varied`` (no constant row), ``ties`` (three distinct values: maxima tie) or
    ``constant rows``."""
    if stratum == "ties":
        levels = draw(st.lists(st.floats(lo, hi), min_size=3, max_size=3, unique=True))
        return draw(hnp.arrays(np.float64, shape, elements=st.sampled_from(levels),
                               fill=st.nothing()))
    if stratum == "constant rows":
        one = list(shape)
        one[axis] = 1
        row = draw(float_arrays(tuple(one), lo, hi))
        return np.broadcast_to(row, shape).copy()
    return vary_rows(draw(float_arrays(shape, lo, hi)), axis, lo, hi)


def row_stratum(draw) -> str:
    return _stratum(draw, ("ties", TIES_SHARE), ("constant rows", CONSTANT_ROWS_SHARE),
                    default="varied")


@st.composite
def class_shapes(draw, allow_unbatched: bool = True, allow_kdim: bool = True,
                 allow_empty: bool = False, min_classes: int = 2) -> tuple[int, ...]:
    """``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)`` with ``k`` in 1..3.

    Every dimension has at least one element (``allow_empty`` lets N be 0: the degenerate
    strategies' business, not the ordinary draws'). ``C ≥ min_classes``.
    """
    kinds = ["batched"] + (["unbatched"] if allow_unbatched else []) + (
        ["kdim"] if allow_kdim else [])
    kind = draw(st.sampled_from(kinds))
    low_n = 0 if allow_empty else 1
    if kind == "unbatched":
        return (draw(st.integers(min_classes, MAX_CLASSES)),)
    if kind == "kdim":
        n = draw(st.integers(low_n, MAX_KDIM_BATCH))
        c = draw(st.integers(min_classes, max(min_classes, MAX_KDIM_CLASSES)))
        k = draw(st.integers(1, 3))
        dims: list[int] = []
        for _ in range(k):
            room = MAX_SPATIAL_POSITIONS // max(1, int(np.prod(dims)))
            dims.append(draw(st.integers(1, max(1, min(MAX_SPATIAL, room)))))
        return (n, c, *dims)
    n = draw(st.integers(low_n, MAX_BATCH))
    return (n, draw(st.integers(min_classes, MAX_CLASSES)))


def class_dim(shape: tuple[int, ...]) -> int:
    """torch's class dimension: 0 for an unbatched ``(C,)`` input, else 1."""
    return 0 if len(shape) == 1 else 1


def target_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of an index target for an input of ``shape`` (the class dim removed)."""
    cd = class_dim(shape)
    return shape[:cd] + shape[cd + 1:]


IGNORE_KINDS = ("default", "negative", "class", "beyond")


@st.composite
def ignore_indices(draw, num_classes: int, uint8: bool = False, kind: str | None = None) -> int:
    """The default -100, another negative value, a real class, or a value past the classes
    (for uint8 targets only values a uint8 can hold); ``kind`` (one of ``IGNORE_KINDS``) picks
    one of the four."""
    values = {"default": DEFAULT_IGNORE_INDEX, "negative": -1,
              "class": draw(st.integers(0, num_classes - 1)), "beyond": num_classes + 2}
    if kind is not None:
        return values[kind]
    choices = [values["class"], values["beyond"]]
    if not uint8:
        choices = [DEFAULT_IGNORE_INDEX, -1, *choices]
    return draw(st.sampled_from(choices))


IGNORE_STRATA = ("partial", "all", "none")


@st.composite
def index_targets(draw, shape: tuple[int, ...], ignore_index: int | None,
                  dtype=np.int64, ignored: str | None = None) -> np.ndarray:
    """Class indices for an input of ``shape``.

    With an ``ignore_index``, ``ignored`` says which targets are ignored: ``partial`` (at least
    one kept and one ignored target when there are two or more), ``all`` or ``none``; drawn
    when None (``partial`` the norm). Kept targets never equal ``ignore_index``.
    """
    c = shape[class_dim(shape)]
    tshape = target_shape(shape)
    usable = ignore_index is not None and (dtype == np.int64 or 0 <= ignore_index <= 255)
    kept_classes = [k for k in range(c) if not (usable and k == ignore_index)]
    if not usable:
        return draw(hnp.arrays(dtype, tshape, elements=st.integers(0, c - 1), fill=st.nothing()))
    if ignored is None:
        ignored = _stratum(draw, ("all", ALL_IGNORED_SHARE), ("none", NONE_IGNORED_SHARE),
                           default="partial")
    if not kept_classes:
        ignored = "all"
    size = int(np.prod(tshape, dtype=np.int64))
    if ignored == "all":
        return np.full(tshape, ignore_index, dtype=dtype)
    kept = draw(hnp.arrays(np.int64, tshape, elements=st.sampled_from(kept_classes),
                           fill=st.nothing()))
    if ignored == "none":
        return kept.astype(dtype)
    mask = draw(hnp.arrays(np.bool_, tshape, fill=st.nothing()))
    if size >= 2:
        # Guarantee both: the first drawn position ignored, another kept.
        flat = mask.reshape(-1)
        first = draw(st.integers(0, size - 1))
        other = (first + draw(st.integers(1, size - 1))) % size
        flat[first], flat[other] = True, False
        mask = flat.reshape(tshape)
    return np.where(mask, ignore_index, kept).astype(dtype)


def ignored_share(target: np.ndarray, ignore_index: int) -> str:
    """Which targets are ignored: ``all``, ``none`` or ``partial`` (``none`` when empty)."""
    hit = target == ignore_index
    if hit.size and hit.all():
        return "all"
    return "partial" if hit.any() else "none"


# Ordinary class weights are 0 or at least MIN_WEIGHT: weights near the underflow threshold
# (where torch's w·x underflows and g/Σw overflows) are extreme inputs, pinned in
# the ledger (lossproofs/ledger) and drawn by the large tier (lossproofs.strategies.large).
MIN_WEIGHT = 2.0**-10


def class_weights(num_classes: int) -> st.SearchStrategy[np.ndarray | None]:
    """No weight, or a ``(C,)`` weight in ``{0} ∪ [MIN_WEIGHT, 3]``."""
    return st.one_of(st.none(), class_weight_arrays(num_classes))


def class_weight_arrays(num_classes: int) -> st.SearchStrategy[np.ndarray]:
    """A ``(C,)`` weight in ``{0} ∪ [MIN_WEIGHT, 3]``, elements drawn on their own."""
    return hnp.arrays(np.float64, (num_classes,),
                      elements=st.one_of(st.floats(MIN_WEIGHT, 3.0), st.just(0.0)),
                      fill=st.nothing())


@st.composite
def probability_targets(draw, shape: tuple[int, ...]) -> np.ndarray:
    """Class-probability targets of ``shape``: soft rows, one-hot rows, or unnormalised rows."""
    cd = class_dim(shape)
    kind = draw(st.sampled_from(["soft", "one_hot", "unnormalised"]))
    record(f"probability target:{kind}")
    if kind == "unnormalised":
        return draw(float_arrays(shape, 0.0, 1.0))
    if kind == "one_hot":
        c = shape[cd]
        idx = draw(hnp.arrays(np.int64, target_shape(shape), elements=st.integers(0, c - 1),
                              fill=st.nothing()))
        return np.moveaxis(np.eye(c)[idx], -1, cd) if idx.size else np.zeros(shape)
    raw = draw(float_arrays(shape, 0.0, 1.0)) + 1e-3
    return raw / raw.sum(axis=cd, keepdims=True)


def label_smoothings() -> st.SearchStrategy[float]:
    """0 (the default), 1 and values in between."""
    return st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))


def positive_label_smoothings() -> st.SearchStrategy[float]:
    """Label smoothing in ``(0, 1]``."""
    return st.one_of(st.just(1.0), st.floats(0.0, 1.0, exclude_min=True))


@st.composite
def broadcast_shapes_into(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to ``shape`` without enlarging it (trailing dims, 1 or equal)."""
    ndim = draw(st.integers(0, len(shape)))
    tail = shape[len(shape) - ndim:]
    return tuple(draw(st.sampled_from([1, d])) for d in tail)


def _layout_for(draw, shape: tuple[int, ...], axis: int | None,
                exclude: frozenset[str] = frozenset()) -> str:
    """A layout for an input of ``shape``; ``expanded`` (equal slices along dim 0) only where it
    leaves the rows along ``axis`` free to vary and dim 0 has two or more slices; contiguous
    when ``non-contiguous`` is in ``exclude``."""
    if "non-contiguous" in exclude:
        return "contiguous"
    layout = _choice(draw, LAYOUTS)
    if layout == "expanded" and (len(shape) < 2 or shape[0] < 2 or axis == 0):
        layout = "sliced"
    return layout


def _expanded(x: np.ndarray) -> np.ndarray:
    """``x`` with every slice along dim 0 equal to the first (for the expanded layout)."""
    return np.broadcast_to(x[:1], x.shape).copy()


def _dtype(draw, dtype):
    return draw(dtypes()) if dtype is None else dtype


def _tags(*names: str | None) -> frozenset[str]:
    tags = frozenset(n for n in names if n)
    record(*sorted(tags))
    return tags


def _row_tags(stratum: str) -> str | None:
    return None if stratum == "varied" else stratum


@st.composite
def softmax_shapes(draw, min_reduced: int = 2) -> tuple[tuple[int, ...], int]:
    """A 1-d to 4-d shape of at most 256 elements and a dim whose extent is ≥ ``min_reduced``."""
    ndim = draw(st.integers(1, 4))
    dim = draw(st.integers(-ndim, ndim - 1))
    max_extent = {1: 12, 2: 8, 3: 6, 4: 4}[ndim]
    shape = [draw(st.integers(1, max_extent)) for _ in range(ndim)]
    shape[dim] = max(shape[dim], min_reduced)
    return tuple(shape), dim


@st.composite
def softmax_cases(draw, function: str = "softmax", dtype: str | None = None,
                  exclude: frozenset[str] = frozenset()) -> Case:
    """``softmax``/``log_softmax``/``logsumexp`` on 1-d to 4-d inputs along a valid dim (for
    ``logsumexp`` also a tuple of dims); the reduced extent is ≥ 2 except in the ``single
    class`` stratum. Families in ``exclude`` (``single class``, ``tuple dim``,
    ``non-contiguous``) are not drawn."""
    single = ("single class" not in exclude and _stratum(
        draw, ("single class", SINGLE_CLASS_SHARE), default="") == "single class")
    shape, dim = draw(softmax_shapes(min_reduced=1 if single else 2))
    if single:
        shape = tuple(1 if i == dim % len(shape) else d for i, d in enumerate(shape))
    params: dict = {"dim": dim}
    tuple_dim = False
    if (function == "logsumexp" and len(shape) >= 2 and "tuple dim" not in exclude
            and draw(st.booleans())):
        others = [i for i in range(len(shape)) if i != dim % len(shape)]
        extra = draw(st.lists(st.sampled_from(others), min_size=1, max_size=len(others),
                              unique=True))
        params["dim"] = tuple(draw(st.permutations([dim, *extra])))
        tuple_dim = True
    axis = dim % len(shape)
    layout = _layout_for(draw, shape, axis, exclude)
    stratum = row_stratum(draw)
    x = draw(row_values(shape, axis, -LOGIT_BOUND, LOGIT_BOUND, stratum))
    if layout == "expanded":
        x = _expanded(x)
    if function == "logsumexp":
        params["keepdim"] = draw(st.booleans())
    tags = [None if layout == "contiguous" else "non-contiguous",
            "single class" if single else None, _row_tags(stratum),
            "tuple dim" if tuple_dim else None, f"layout:{layout}", f"ndim:{len(shape)}"]
    return Case(function, (x,), params, _dtype(draw, dtype), layout, _tags(*tags))


