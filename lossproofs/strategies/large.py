"""The size tier: inputs of realistic size, where blocked kernels and low-precision accumulation
go wrong, drawn for ``lossproofs/suite/test_large.py``.

Ordinary draws (:mod:`lossproofs.strategies`) stay small so that hundreds of examples per
property are cheap; here each draw is big and a property sees only a few. Every stratum is named
(``STRATA`` lists them per function) and chosen by the test's parametrisation, so each one runs in
CI, in every dtype:

- ``vocabulary``: language-model vocabularies, ``C`` in :data:`VOCABULARIES` (2¹⁵, and sizes that
  are not multiples of any block size: 2¹⁵ + 3, GPT-2's 50257, 65599 > float16's 65504), with
  near-equal logits half of the time, so that Σ exp(x − max) ≈ C exceeds float16's range;
- ``long batch``: :data:`LONG_BATCHES` rows of a few classes (beyond 2¹² every half-precision
  accumulator stagnates: 2048 + 1 rounds to 2048 in float16, 256 + 1 to 256 in bfloat16, so a sum
  accumulated in half is off by far more than the bound; 70001 rows exceed float16's largest
  finite value as a count);
- ``k-dim``: K-dim inputs with large spatial extent (129 × 67 and 257 × 255 positions);
- ``non-last dim``: softmax-family reductions over a long dimension that is not the last;
- ``total weight``: class (or BCE) weights near the dtype's largest finite value, so the total
  weight Σ w[t] (and Σ w·ℓ) lies beyond it while the weighted mean is representable (float64:
  near its largest finite value, not beyond, where the float64 reference itself overflows);
- ``weight range``: weights log-uniform over the dtype's whole range, from its smallest subnormal
  to a value whose sum over the batch stays finite.

Values come from a seeded NumPy generator (hypothesis draws the shape, the stratum's choices and
the seed: drawing 10⁶ elements one by one is neither possible nor useful). A case's ``sources``
rebuild its arrays with :func:`seeded_array`, so a failure prints a short reproduction.
The reference is the float64 NumPy one (the mpmath oracle is far too slow at this size).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from lossproofs.cases import Case
from lossproofs.dtypes import max_finite, smallest_subnormal
from lossproofs.strategies import DEFAULT_IGNORE_INDEX, LOGIT_BOUND, REDUCTIONS, record

# 2¹⁵ (a block-size multiple, the common case), 2¹⁵ + 3 (a prime: no block size divides it),
# GPT-2's 50257 and 65599 (beyond float16's 65504 as a count).
VOCABULARIES = (32768, 32771, 50257, 65599)
# Beyond 2¹² half-precision accumulation stagnates; 70001 also exceeds float16's largest finite
# value (65504) as a count.
LONG_BATCHES = (4099, 70001)
# Classes per row in the long-batch strata: odd, not a multiple of any vector width.
FEW_CLASSES = (3, 11)
SPATIAL = ((129, 67), (257, 255))
LAYOUTS = ("contiguous", "sliced", "transposed")

STRATA: dict[str, tuple[str, ...]] = {
    "softmax": ("vocabulary", "long batch", "non-last dim"),
    "log_softmax": ("vocabulary", "long batch", "non-last dim"),
    "logsumexp": ("vocabulary", "long batch", "non-last dim"),
    "nll_loss": ("vocabulary", "long batch", "k-dim", "total weight", "weight range"),
    "cross_entropy": ("vocabulary", "long batch", "k-dim", "total weight", "weight range",
                      "probability vocabulary", "probability long batch"),
    "binary_cross_entropy": ("long batch", "k-dim", "total weight", "weight range"),
    "binary_cross_entropy_with_logits": ("long batch", "k-dim", "total weight", "weight range"),
}


def seeded_array(shape, seed: int, kind: str, lo: float = 0.0, hi: float = 1.0,
                 classes: int = 0, ignore_index: int = DEFAULT_IGNORE_INDEX,
                 ignored: bool = True) -> np.ndarray:
    """A reproducible array of ``shape`` from ``numpy.random.default_rng(seed)``.

    ``kind``: ``uniform`` (float64 in ``[lo, hi]``), ``log-uniform`` (``2**u`` with ``u`` uniform
    in ``[log2 lo, log2 hi]``), ``targets`` (int64 classes in ``[0, classes)``, a quarter of
    them ``ignore_index``, the first kept and the second ignored; none with ``ignored=False``),
    ``soft`` (rows along dim 1 (dim 0 for 1-d) that are probability distributions).
    """
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    if kind == "uniform":
        return rng.uniform(lo, hi, shape)
    if kind == "log-uniform":
        return np.exp2(rng.uniform(np.log2(lo), np.log2(hi), shape))
    if kind == "targets":
        t = rng.integers(0, classes, shape, dtype=np.int64)
        if not ignored:
            return t
        flat = t.reshape(-1)
        flat[rng.random(flat.size) < 0.25] = ignore_index
        if flat.size >= 2:
            flat[0] = 0 if ignore_index != 0 else 1
            flat[1] = ignore_index
        return flat.reshape(shape)
    if kind == "soft":
        raw = rng.uniform(0.0, 1.0, shape) + 1e-3
        axis = 0 if len(shape) == 1 else 1
        return raw / raw.sum(axis=axis, keepdims=True)
    raise ValueError(f"unknown kind {kind!r}")


class _Builder:
    """Collects seeded arrays and the expressions that rebuild them."""

    def __init__(self, seed: int):
        self.seed = seed
        self.sources: dict[str, str] = {}

    def array(self, name: str, shape, kind: str, **kw) -> np.ndarray:
        seed = self.seed + len(self.sources)
        args = ", ".join([repr(tuple(shape)), str(seed), repr(kind)]
                         + [f"{k}={v!r}" for k, v in kw.items()])
        self.sources[name] = f"lossproofs.strategies.large.seeded_array({args})"
        return seeded_array(shape, seed, kind, **kw)


def _logit_range(draw) -> tuple[float, float, str]:
    """Logits over the ordinary range, or near-equal (Σ exp(x − max) ≈ C)."""
    if draw(st.booleans()):
        return -0.01, 0.01, "flat logits"
    return -LOGIT_BOUND, LOGIT_BOUND, "spread logits"


def _layout(draw, exclude) -> str:
    return "contiguous" if "non-contiguous" in exclude else draw(st.sampled_from(LAYOUTS))


def _reduction(draw, exclude) -> str:
    return draw(st.sampled_from(tuple(r for r in REDUCTIONS
                                      if f"reduction:{r}" not in exclude)))


def _tags(*names: str | None) -> frozenset[str]:
    tags = frozenset(["large", *(n for n in names if n)])
    record(*sorted(tags))
    return tags


@st.composite
def _softmax_case(draw, function: str, stratum: str, dtype: str, exclude) -> Case:
    b = _Builder(draw(st.integers(0, 2**31)))
    lo, hi, spread = _logit_range(draw)
    if stratum == "vocabulary":
        shape, dim = (draw(st.integers(1, 4)), draw(st.sampled_from(VOCABULARIES))), -1
    elif stratum == "long batch":
        shape, dim = (draw(st.sampled_from(LONG_BATCHES)), draw(st.sampled_from(FEW_CLASSES))), 1
    else:  # non-last dim: a long reduced dimension with a short one after it
        shape = (draw(st.integers(1, 2)), draw(st.sampled_from(VOCABULARIES)), 3)
        dim = 1
    x = b.array("input", shape, "uniform", lo=lo, hi=hi)
    params: dict = {"dim": dim}
    if function == "logsumexp":
        if stratum == "long batch" and "tuple dim" not in exclude and draw(st.booleans()):
            params["dim"] = (0, 1)  # reduce everything: one sum of N·C terms
        params["keepdim"] = draw(st.booleans())
    layout = _layout(draw, exclude)
    return Case(function, (x,), params, dtype, layout,
                _tags(stratum, spread, f"layout:{layout}",
                      None if layout == "contiguous" else "non-contiguous",
                      "tuple dim" if isinstance(params["dim"], tuple) else None),
                sources=b.sources)


def _index_shape(draw, stratum: str) -> tuple[int, ...]:
    if stratum in ("vocabulary", "probability vocabulary"):
        return (draw(st.integers(2, 6)), draw(st.sampled_from(VOCABULARIES)))
    if stratum in ("long batch", "probability long batch"):
        return (draw(st.sampled_from(LONG_BATCHES)), draw(st.sampled_from(FEW_CLASSES)))
    if stratum == "k-dim":
        return (draw(st.integers(1, 2)), draw(st.sampled_from(FEW_CLASSES)),
                *draw(st.sampled_from(SPATIAL)))
    if stratum == "total weight":
        return (draw(st.sampled_from((4099, 8209))), draw(st.sampled_from((7, 1000))))
    # weight range: a moderate batch whose weights carry the stratum
    return (draw(st.sampled_from((64, 1031))), draw(st.sampled_from((7, 1000))))


def _class_weight(draw, b: _Builder, stratum: str, dtype: str, c: int, rows: int,
                  exclude=frozenset()):
    """The class weight of a stratum (None: no weight argument)."""
    top = max_finite(dtype)
    if stratum == "total weight":
        # Each w·ℓ within range (ℓ ≤ 64 here: |logit| ≤ 10, C ≤ 1000), the batch's total
        # weight beyond it (≥ 4099 rows × max/1024); float64: near its largest value but the
        # total within range, where the float64 reference itself does not overflow.
        hi = top / (64 * rows) if dtype == "float64" else top / 1024
        return b.array("weight", (c,), "uniform", lo=hi / 2, hi=hi)
    if stratum == "weight range":
        # From the smallest subnormal to a weight whose batch total stays finite.
        return b.array("weight", (c,), "log-uniform", lo=smallest_subnormal(dtype),
                       hi=top / (4 * rows))
    if "weight" not in exclude and draw(st.booleans()):
        return b.array("weight", (c,), "uniform", lo=2.0**-10, hi=3.0)
    return None


@st.composite
def _index_case(draw, function: str, stratum: str, dtype: str, ignored: bool,
                exclude) -> Case:
    b = _Builder(draw(st.integers(0, 2**31)))
    shape = _index_shape(draw, stratum)
    c = shape[1]
    lo, hi, spread = _logit_range(draw)
    x = b.array("input", shape, "uniform", lo=lo, hi=hi)
    tshape = (shape[0], *shape[2:])
    # ``ignored`` is named only when False, so the default's reproduction line is unchanged
    t = b.array("target", tshape, "targets", classes=c, ignore_index=DEFAULT_IGNORE_INDEX,
                **({} if ignored else {"ignored": False}))
    rows = int(np.prod(tshape))
    params: dict = {}
    w = _class_weight(draw, b, stratum, dtype, c, rows, exclude)
    if w is not None:
        params["weight"] = w
    params["reduction"] = _reduction(draw, exclude)
    if (function == "cross_entropy" and "label_smoothing" not in exclude
            and draw(st.booleans())):
        params["label_smoothing"] = draw(st.sampled_from((0.1, 1.0)))
    layout = _layout(draw, exclude)
    tags = _tags(stratum, spread, f"reduction:{params['reduction']}", "reduction",
                 *(("ignore_index", "ignore:partial") if ignored else ()),
                 "weight" if w is not None else None,
                 "label_smoothing" if params.get("label_smoothing") else None,
                 "k-dim" if len(shape) > 2 else None, f"layout:{layout}",
                 None if layout == "contiguous" else "non-contiguous")
    return Case(function, (x, t), params, dtype, layout, tags, sources=b.sources)


@st.composite
def _probability_case(draw, stratum: str, dtype: str, exclude) -> Case:
    b = _Builder(draw(st.integers(0, 2**31)))
    shape = _index_shape(draw, stratum)
    lo, hi, spread = _logit_range(draw)
    x = b.array("input", shape, "uniform", lo=lo, hi=hi)
    t = b.array("target", shape, "soft")
    params: dict = {}
    if "weight" not in exclude and draw(st.booleans()):
        params["weight"] = b.array("weight", (shape[1],), "uniform", lo=2.0**-10, hi=3.0)
    params["reduction"] = _reduction(draw, exclude)
    if "label_smoothing" not in exclude and draw(st.booleans()):
        params["label_smoothing"] = draw(st.sampled_from((0.1, 1.0)))
    layout = _layout(draw, exclude)
    tags = _tags(stratum, spread, "probability target", "reduction",
                 f"reduction:{params['reduction']}", "weight" if "weight" in params else None,
                 "label_smoothing" if params.get("label_smoothing") else None,
                 f"layout:{layout}", None if layout == "contiguous" else "non-contiguous")
    return Case("cross_entropy", (x, t), params, dtype, layout, tags, sources=b.sources)


@st.composite
def _bce_case(draw, function: str, stratum: str, dtype: str, exclude) -> Case:
    b = _Builder(draw(st.integers(0, 2**31)))
    if stratum == "long batch":
        shape: tuple[int, ...] = (draw(st.sampled_from(LONG_BATCHES)) * 3,)
    elif stratum == "k-dim":
        shape = (2, 3, *draw(st.sampled_from(SPATIAL)))
    else:
        shape = (draw(st.sampled_from((64, 1031))), 7)
    if function == "binary_cross_entropy":
        x = b.array("input", shape, "uniform", lo=0.0, hi=1.0)
    else:
        x = b.array("input", shape, "uniform", lo=-20.0, hi=20.0)
    y = b.array("target", shape, "uniform", lo=0.0, hi=1.0)
    params: dict = {}
    top = max_finite(dtype)
    n = int(np.prod(shape))
    if stratum == "total weight":
        # Each w·ℓ within range (ℓ ≤ 100: BCE's log clamp; ≤ 100 with pos_weight ≤ 4 for
        # logits ≤ 20), Σ w·ℓ over the batch beyond it; float64: its total within range.
        hi = top / (128 * n) if dtype == "float64" else top / 128
        params["weight"] = b.array("weight", shape[-1:], "uniform", lo=hi / 2, hi=hi)
    elif stratum == "weight range":
        params["weight"] = b.array("weight", shape, "log-uniform", lo=smallest_subnormal(dtype),
                                   hi=top / (128 * n))
    elif "weight" not in exclude and draw(st.booleans()):
        params["weight"] = b.array("weight", shape[-1:], "uniform", lo=0.0, hi=3.0)
    if (function == "binary_cross_entropy_with_logits" and "pos_weight" not in exclude
            and draw(st.booleans())):
        params["pos_weight"] = b.array("pos_weight", shape[-1:], "uniform", lo=0.0, hi=4.0)
    params["reduction"] = _reduction(draw, exclude)
    layout = _layout(draw, exclude)
    tags = _tags(stratum, "reduction", f"reduction:{params['reduction']}",
                 "weight" if "weight" in params else None,
                 "pos_weight" if "pos_weight" in params else None, f"layout:{layout}",
                 None if layout == "contiguous" else "non-contiguous")
    return Case(function, (x, y), params, dtype, layout, tags, sources=b.sources)


def large_cases(function: str, stratum: str, dtype: str, ignored: bool = True,
                exclude: frozenset[str] = frozenset()) -> st.SearchStrategy[Case]:
    """Cases of ``function`` in the named size ``stratum`` (one of ``STRATA[function]``);
    class-index targets hold ignored entries unless ``ignored=False`` or ``ignore_index`` is in
    ``exclude``. Families in ``exclude`` (what a target declares it does not provide) are not
    drawn, but for the one a stratum is about (:data:`STRATUM_FAMILIES`: the test skips it)."""
    if stratum not in STRATA[function]:
        raise ValueError(f"{function} has no large stratum {stratum!r}: {STRATA[function]}")
    exclude = frozenset(exclude)
    if function in ("softmax", "log_softmax", "logsumexp"):
        return _softmax_case(function, stratum, dtype, exclude)
    if stratum.startswith("probability"):
        return _probability_case(stratum.removeprefix("probability "), dtype, exclude)
    if function in ("nll_loss", "cross_entropy"):
        return _index_case(function, stratum, dtype,
                           ignored and "ignore_index" not in exclude, exclude)
    return _bce_case(function, stratum, dtype, exclude)


# The family every case of a stratum carries: a target that declares it not provided cannot
# run the stratum at all.
STRATUM_FAMILIES: dict[str, str] = {
    "total weight": "weight", "weight range": "weight", "k-dim": "k-dim",
    "probability vocabulary": "probability target",
    "probability long batch": "probability target",
}
