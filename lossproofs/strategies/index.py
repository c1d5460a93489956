"""Ordinary strategies of the index-target losses: ``nll_loss`` and ``cross_entropy`` with class
indices (``ignore_index`` kinds with kept and ignored targets together, class weights, label
smoothing, uint8 targets, K-dim and unbatched inputs) and with class probabilities (the helpers
are :mod:`lossproofs.strategies`')."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from lossproofs.cases import Case
from lossproofs.strategies.basics import (
    DEFAULT_IGNORE_INDEX,
    IGNORE_STRATA,
    LOGIT_BOUND,
    SINGLE_CLASS_SHARE,
    _choice,
    _dtype,
    _expanded,
    _layout_for,
    _reduction,
    _row_tags,
    _stratum,
    _tags,
    class_dim,
    class_shapes,
    class_weight_arrays,
    ignore_indices,
    ignored_share,
    index_targets,
    label_smoothings,
    positive_label_smoothings,
    probability_targets,
    row_stratum,
    row_values,
    target_shape,
)


@st.composite
def nll_loss_cases(draw, dtype: str | None = None, function: str = "nll_loss", *,
                   ignored: bool = True, weighted: bool = True, smoothed: bool = True,
                   allow_empty: bool = False, uint8: bool = True,
                   reduction: str | None = None, weight: bool | None = None,
                   ignore: str | None = None, smoothing: bool | None = None,
                   ignore_kind: str | None = None,
                   shape: tuple[int, ...] | None = None,
                   exclude: frozenset[str] = frozenset()) -> Case:
    """``nll_loss`` (or index-target ``cross_entropy``) over every parameter family.

    The keyword switches turn families off for identities that hold only without them:
    ``ignored`` (ignore_index and ignored targets), ``weighted``, ``smoothed`` (label
    smoothing, cross_entropy only) and ``uint8`` targets. ``allow_empty`` is accepted for
    compatibility; ordinary draws are never empty (see :mod:`.degenerate`).

    The combination arguments fix one family each instead of drawing it: ``reduction``,
    ``weight`` (True: a class weight, False: none), ``ignore`` (``"partial"``: an
    ``ignore_index`` with at least one kept and one ignored target, ``"all"``, ``"none"``, or
    ``"absent"``: no ignore_index argument and no ignored target) and ``smoothing`` (True: label
    smoothing in (0, 1], False: none), ``ignore_kind`` (which ``ignore_index``: one of
    ``IGNORE_KINDS``). ``shape`` fixes the input's shape.

    ``exclude`` names families never drawn (what a target declares it does not provide,
    :mod:`lossproofs.declarations`): ``weight``, ``ignore_index``, ``label_smoothing``,
    ``uint8 target``, ``k-dim``, ``unbatched``, ``single class``, ``non-contiguous`` and
    ``reduction:<r>``; a combination argument that asks for one of them wins (the tests that
    pass one skip first for a target that declares it out).
    """
    del allow_empty
    ignored = ignored and "ignore_index" not in exclude
    weighted = weighted and "weight" not in exclude
    smoothed = smoothed and "label_smoothing" not in exclude
    uint8 = uint8 and "uint8 target" not in exclude
    force_partial = ignore == "partial"
    if shape is None:
        single = (not force_partial and "single class" not in exclude and _stratum(
            draw, ("single class", SINGLE_CLASS_SHARE), default="") == "single class")
        shape = draw(class_shapes(allow_unbatched="unbatched" not in exclude,
                                  allow_kdim="k-dim" not in exclude,
                                  min_classes=1 if single else 2))
        if single:
            shape = tuple(1 if i == class_dim(shape) else d for i, d in enumerate(shape))
        if force_partial and int(np.prod(target_shape(shape))) < 2:
            shape = (2, *shape) if len(shape) == 1 else (max(2, shape[0]), *shape[1:])
    cd = class_dim(shape)
    c = shape[cd]
    layout = _layout_for(draw, shape, cd, exclude)
    stratum = row_stratum(draw)
    x = draw(row_values(shape, cd, -LOGIT_BOUND, LOGIT_BOUND, stratum))
    params: dict = {}
    # torch accepts uint8 targets only for (C,) and (N, C) inputs; K-dim inputs reject them
    # (an error case, see lossproofs.error_cases).
    uint8 = uint8 and len(shape) <= 2 and ignore_kind not in ("default", "negative")
    target_dtype = draw(st.sampled_from([np.int64, np.int64, np.uint8] if uint8
                                        else [np.int64]))
    ignore_index = DEFAULT_IGNORE_INDEX
    use_ignore = (ignore in ("partial", "all", "none") if ignore is not None
                  else ignored and _choice(draw, (True, False)))
    if use_ignore:
        ignore_index = draw(ignore_indices(c, uint8=target_dtype == np.uint8, kind=ignore_kind))
        params["ignore_index"] = ignore_index
        t = draw(index_targets(shape, ignore_index, target_dtype,
                               ignored=ignore if ignore in IGNORE_STRATA else None))
    else:
        t = draw(index_targets(shape, None, target_dtype))
    if layout == "expanded":
        x = _expanded(x)  # the target keeps its values; Case.torch_args slices it instead
    if weight is None:
        weight = weighted and _choice(draw, (True, False))
    w = draw(class_weight_arrays(c)) if weight else None
    if w is not None:
        params["weight"] = w
    params["reduction"] = (reduction if reduction is not None
                           else _reduction(draw, exclude))
    eps = 0.0
    if function == "cross_entropy" and (smoothing if smoothing is not None else smoothed):
        eps = draw(positive_label_smoothings() if smoothing else label_smoothings())
        if eps:
            params["label_smoothing"] = eps
    share = ignored_share(t, ignore_index) if use_ignore else "absent"
    tags = [
        "reduction", f"reduction:{params['reduction']}",
        "weight" if w is not None else None,
        "ignore_index" if use_ignore else None, f"ignore:{share}",
        "label_smoothing" if eps else None,
        "unbatched" if len(shape) == 1 else None, "k-dim" if len(shape) > 2 else None,
        "single class" if c == 1 else None, _row_tags(stratum),
        None if layout == "contiguous" else "non-contiguous", f"layout:{layout}",
        "uint8 target" if target_dtype == np.uint8 else None,
    ]
    return Case(function, (x, t), params, _dtype(draw, dtype), layout, _tags(*tags))


@st.composite
def cross_entropy_probability_cases(draw, dtype: str | None = None, *,
                                    reduction: str | None = None, weight: bool | None = None,
                                    smoothing: bool | None = None,
                                    exclude: frozenset[str] = frozenset()) -> Case:
    """``cross_entropy`` with class-probability targets (the target has the input's shape).

    ``reduction``, ``weight`` and ``smoothing`` fix a family instead of drawing it, and
    ``exclude`` names families never drawn, as in :func:`nll_loss_cases`.
    """
    single = ("single class" not in exclude and _stratum(
        draw, ("single class", SINGLE_CLASS_SHARE), default="") == "single class")
    shape = draw(class_shapes(allow_unbatched="unbatched" not in exclude,
                              allow_kdim="k-dim" not in exclude,
                              min_classes=1 if single else 2))
    if single:
        shape = tuple(1 if i == class_dim(shape) else d for i, d in enumerate(shape))
    cd = class_dim(shape)
    c = shape[cd]
    layout = _layout_for(draw, shape, cd, exclude)
    stratum = row_stratum(draw)
    x = draw(row_values(shape, cd, -LOGIT_BOUND, LOGIT_BOUND, stratum))
    t = draw(probability_targets(shape))
    if layout == "expanded":
        x = _expanded(x)
    params: dict = {}
    if weight is None:
        weight = "weight" not in exclude and _choice(draw, (True, False))
    w = draw(class_weight_arrays(c)) if weight else None
    if w is not None:
        params["weight"] = w
    params["reduction"] = (reduction if reduction is not None
                           else _reduction(draw, exclude))
    if smoothing is None and "label_smoothing" in exclude:
        eps = 0.0
    elif smoothing is None:
        eps = draw(label_smoothings())
    else:
        eps = draw(positive_label_smoothings()) if smoothing else 0.0
    if eps:
        params["label_smoothing"] = eps
    tags = ["probability target", "reduction", f"reduction:{params['reduction']}",
            "weight" if w is not None else None,
            "label_smoothing" if eps else None, "unbatched" if len(shape) == 1 else None,
            "k-dim" if len(shape) > 2 else None, "single class" if c == 1 else None,
            _row_tags(stratum), None if layout == "contiguous" else "non-contiguous",
            f"layout:{layout}"]
    return Case("cross_entropy", (x, t), params, _dtype(draw, dtype), layout, _tags(*tags))


@st.composite
def cross_entropy_cases(draw, dtype: str | None = None,
                        exclude: frozenset[str] = frozenset()) -> Case:
    """``cross_entropy`` with either kind of target (class indices only when ``probability
    target`` is in ``exclude``); ``exclude`` as in :func:`nll_loss_cases`."""
    if "probability target" in exclude or draw(st.booleans()):
        return draw(nll_loss_cases(dtype, function="cross_entropy", exclude=exclude))
    return draw(cross_entropy_probability_cases(dtype, exclude=exclude))
