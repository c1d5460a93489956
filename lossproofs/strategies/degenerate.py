"""Empty and single-element inputs, listed explicitly (ordinary draws never produce them).

Every function's degenerate shapes, as :class:`~lossproofs.cases.Case` s for one dtype: empty
batches, empty class or spatial dimensions, 0-d inputs, a single element, a single class. Each
combination of reduction (and class weight for the losses) is listed, since an empty mean is
0/0 (NaN) and an empty sum 0 — exactly the values a kernel's empty fast path gets wrong.
``lossproofs/suite/test_degenerate.py`` checks each against the reference, forward and gradient.
"""

from __future__ import annotations

import numpy as np

from lossproofs.cases import Case

REDUCTIONS = ("none", "sum", "mean")


def _softmax_family(function: str, dtype: str) -> list[Case]:
    # (shape, dim): empty along the reduced dim, empty along another, 0-d, one element.
    shapes = [((0,), 0), ((0, 3), 1), ((3, 0), 1), ((2, 0, 3), -1), ((), 0), ((), -1),
              ((1,), 0), ((1, 1), 1), ((1, 1, 1), 0)]
    out = []
    for shape, dim in shapes:
        x = np.linspace(-1.5, 2.0, int(np.prod(shape))).reshape(shape)
        params: dict = {"dim": dim}
        if function == "logsumexp":
            for keepdim in (False, True):
                out.append(Case(function, (x,), {**params, "keepdim": keepdim}, dtype,
                                tags=_tags(shape)))
        else:
            out.append(Case(function, (x,), params, dtype, tags=_tags(shape)))
    return out


def _tags(shape: tuple[int, ...], *more: str) -> frozenset[str]:
    size = int(np.prod(shape))
    return frozenset(["empty" if size == 0 else "single element",
                      *(["0-d"] if shape == () else []), *more])


def _index_losses(function: str, dtype: str) -> list[Case]:
    # (input shape, target shape): empty batch, empty K-dim extent, one element (C = 1), an
    # unbatched single class, one row of one class with a spatial extent of 1.
    shapes = [((0, 3), (0,)), ((0, 3, 2), (0, 2)), ((2, 3, 0), (2, 0)), ((1, 1), (1,)),
              ((1,), ()), ((1, 1, 1), (1, 1))]
    out = []
    for shape, tshape in shapes:
        x = np.linspace(-1.5, 2.0, int(np.prod(shape))).reshape(shape)
        t = np.zeros(tshape, dtype=np.int64)
        c = shape[0 if len(shape) == 1 else 1]
        out += _each_reduction(function, (x, t), dtype, shape, (None, np.linspace(0.5, 2.0, c)))
    return out


def _probability_targets(dtype: str) -> list[Case]:
    out = []
    for shape in ((0, 3), (2, 3, 0), (1, 1), (1,)):
        x = np.linspace(-1.5, 2.0, int(np.prod(shape))).reshape(shape)
        out += _each_reduction("cross_entropy", (x, np.ones(shape)), dtype, shape, (None,),
                               "probability target")
    return out


def _binary(function: str, dtype: str) -> list[Case]:
    out = []
    for shape in ((0,), (2, 0), (), (1,), (1, 1)):
        size = int(np.prod(shape))
        x = np.linspace(0.25, 0.75, size).reshape(shape)
        if function == "binary_cross_entropy_with_logits":
            x = np.linspace(-2.0, 3.0, size).reshape(shape)
        y = np.linspace(0.0, 1.0, size).reshape(shape)
        out += _each_reduction(function, (x, y), dtype, shape, (None, np.full(shape[-1:], 1.5)))
    return out


def _each_reduction(function: str, arrays: tuple[np.ndarray, ...], dtype: str,
                    shape: tuple[int, ...], weights: tuple[np.ndarray | None, ...],
                    *tags: str) -> list[Case]:
    """One case per reduction and per weight in ``weights`` (None: no weight), tagged with the
    families it belongs to."""
    out = []
    for reduction in REDUCTIONS:
        for weight in weights:
            params: dict = {"reduction": reduction}
            if weight is not None:
                params["weight"] = weight
            out.append(Case(function, arrays, params, dtype,
                            tags=_tags(shape, *tags, f"reduction:{reduction}",
                                       *(["weight"] if weight is not None else []))))
    return out


def degenerate_cases(function: str, dtype: str) -> list[Case]:
    """Every empty and single-element case of ``function`` in ``dtype``."""
    if function in ("softmax", "log_softmax", "logsumexp"):
        return _softmax_family(function, dtype)
    if function == "nll_loss":
        return _index_losses(function, dtype)
    if function == "cross_entropy":
        return _index_losses(function, dtype) + _probability_targets(dtype)
    return _binary(function, dtype)
