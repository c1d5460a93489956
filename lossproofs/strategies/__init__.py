"""Hypothesis strategies for ordinary inputs (extreme inputs live in :mod:`.extreme`, inputs of
realistic size in :mod:`.large`, empty and single-element inputs in :mod:`.degenerate`).

Building blocks (shapes, logits, index targets with ``ignore_index`` sprinkled, class weights,
probability targets, BCE probabilities, dtypes, layouts) and, built from them, one strategy of
:class:`~lossproofs.cases.Case` per function: ``cases(function_name, dtype=...)``.

Ordinary inputs are bounded: logits in ``[-LOGIT_BOUND, LOGIT_BOUND]``, at most
``MAX_CLASSES`` classes and ``MAX_BATCH`` rows, so that tolerances can be stated once per dtype
(see :mod:`lossproofs.tolerances`) and a property stays cheap. Extremes are the job of
:mod:`.extreme`, size the job of :mod:`.large`.

What an ordinary draw is (measured by ``tests/test_strategies.py``):

- every dimension has at least one element and the reduced (class) dimension at least two,
  except in the small ``single class`` stratum; empty and single-element inputs have their own
  explicit tests (``lossproofs/suite/test_degenerate.py``);
- every element is drawn on its own (no ``fill``: hypothesis' arrays otherwise repeat one value),
  and rows along the class dimension are not constant, except in the named strata ``ties``
  (values from a set of three, so maxima tie) and ``constant rows``, each a small share;
- when an ``ignore_index`` is drawn, kept and ignored targets share the batch (``ignore:partial``)
  unless the small strata ``ignore:all`` or ``ignore:none`` are drawn;
- every array argument (input, target, weights) takes the drawn memory layout, and a
  non-contiguous layout is non-contiguous for each of them with two or more elements (asserted by
  :meth:`~lossproofs.cases.Case.torch_args`).

Each case's ``tags`` name its parameter families and strata, and each draw records them as
hypothesis events, so ``pytest --hypothesis-show-statistics`` shows what a property reached.
"""

from __future__ import annotations

from hypothesis import strategies as st

from lossproofs.cases import Case
from lossproofs.strategies.basics import (  # noqa: F401  (the package's names)
    ALL_IGNORED_SHARE,
    CONSTANT_ROWS_SHARE,
    DEFAULT_IGNORE_INDEX,
    HARD_FIRST_REDUCTIONS,
    IGNORE_KINDS,
    IGNORE_STRATA,
    LOGIT_BOUND,
    MAX_BATCH,
    MAX_CLASSES,
    MAX_KDIM_BATCH,
    MAX_KDIM_CLASSES,
    MAX_SPATIAL,
    MAX_SPATIAL_POSITIONS,
    MIN_WEIGHT,
    NONE_IGNORED_SHARE,
    REDUCTIONS,
    SINGLE_CLASS_SHARE,
    TIES_SHARE,
    _choice,
    _dtype,
    _expanded,
    _layout_for,
    _reduction,
    _row_tags,
    _stratum,
    _tags,
    _uniform,
    broadcast_shapes_into,
    class_dim,
    class_shapes,
    class_weight_arrays,
    class_weights,
    dtypes,
    float_arrays,
    ignore_indices,
    ignored_share,
    index_targets,
    label_smoothings,
    layouts,
    logits,
    positive_label_smoothings,
    probability_targets,
    record,
    reductions,
    row_stratum,
    row_values,
    softmax_cases,
    softmax_shapes,
    target_shape,
    vary_rows,
)
from lossproofs.strategies.binary import (
    CLAMP_SHARE,
    bce_probabilities,
    bce_shapes,
    bce_targets,
    binary_cross_entropy_cases,
    binary_cross_entropy_with_logits_cases,
)
from lossproofs.strategies.index import (
    cross_entropy_cases,
    cross_entropy_probability_cases,
    nll_loss_cases,
)


def cases(function: str, dtype: str | None = None,
          exclude: frozenset[str] = frozenset()) -> st.SearchStrategy[Case]:
    """Every ordinary :class:`Case` of ``function`` (a name from ``lossproofs.reference``),
    except those of the families in ``exclude`` (what a target declares it does not provide,
    :mod:`lossproofs.declarations`), which are never drawn."""
    exclude = frozenset(exclude)
    if function in ("softmax", "log_softmax", "logsumexp"):
        return softmax_cases(function, dtype, exclude)
    return {
        "nll_loss": lambda: nll_loss_cases(dtype, exclude=exclude),
        "cross_entropy": lambda: cross_entropy_cases(dtype, exclude),
        "binary_cross_entropy": lambda: binary_cross_entropy_cases(dtype, exclude),
        "binary_cross_entropy_with_logits":
            lambda: binary_cross_entropy_with_logits_cases(dtype, exclude),
    }[function]()


# The parameter combinations every property must reach, each exercised by
# lossproofs/suite/test_combinations.py (an explicit parametrisation, one property per
# combination): index targets with at least one kept and one ignored target in every draw;
# probability targets have no ignore_index (torch applies it to class indices only).
INDEX_TARGET_COMBINATIONS = tuple(
    (reduction, weight, ignore_kind, smoothing)
    for reduction in REDUCTIONS for weight in (False, True) for ignore_kind in IGNORE_KINDS
    for smoothing in (False, True))
PROBABILITY_TARGET_COMBINATIONS = tuple(
    (reduction, weight, smoothing)
    for reduction in REDUCTIONS for weight in (False, True) for smoothing in (False, True))


__all__ = [
    "CLAMP_SHARE",
    "bce_probabilities",
    "bce_shapes",
    "bce_targets",
    "binary_cross_entropy_cases",
    "binary_cross_entropy_with_logits_cases",
    "cross_entropy_cases",
    "cross_entropy_probability_cases",
    "nll_loss_cases",
]
