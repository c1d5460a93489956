"""The implementations the accuracy report compares, each run on one problem in its dtype.

Each takes a problem (a :class:`~lossproofs.cases.Case` carrying its ``grad_output``) and
returns ``(forward, gradient or None)`` as float64 arrays, computed in the problem's dtype, or
None where it does not apply: torch fused (``torch.nn.functional``), torch composed
``nll_loss(log_softmax)``, the NumPy reference (float64 only), scipy.special (float64 and
float32, forward only) and the named naive formulations of :mod:`lossproofs.naive`.
:func:`run_callable` is how the accuracy properties call the implementation under test, and
:func:`implementations` puts any :class:`~lossproofs.targets.Target` in torch's place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lossproofs import naive, reference
from lossproofs.cases import Case
from lossproofs.dtypes import torch_dtype
from lossproofs.error_model import rounded_inputs
from lossproofs.strategies import extreme
from lossproofs.targets import Target


def run_callable(fn: Callable[..., torch.Tensor], case: Case):
    """Call a ``torch.nn.functional``-style ``fn`` on a case in its dtype; return the forward
    value and the input gradient (for the case's ``grad_output``) as float64 arrays."""
    tensors, kwargs = case.torch_args(requires_grad=(True,))
    x = tensors[0]
    if case.function in extreme.SOFTMAX_FAMILY:
        out = fn(x, kwargs.pop("dim"), **kwargs)
    else:
        out = fn(x, *tensors[1:], **kwargs)
    if case.grad_output is not None and tuple(out.shape) != np.shape(case.grad_output) and \
            np.ndim(case.grad_output):
        # the problem's grad_output has the shape of the correct result
        raise AssertionError(
            f"{case.function} returned a result of shape {tuple(out.shape)}, expected "
            f"{np.shape(case.grad_output)} (arguments {_describe(case)})")
    g = torch.from_numpy(np.broadcast_to(np.asarray(case.grad_output, dtype=np.float64),
                                         tuple(out.shape)).copy()).to(torch_dtype(case.dtype))
    (grad,) = torch.autograd.grad(out, x, g)
    return out.detach().double().cpu().numpy(), grad.double().cpu().numpy()


def _describe(case: Case) -> str:
    shapes = ", ".join(str(a.shape) for a in case.arrays)
    params = {k: (v.shape if isinstance(v, np.ndarray) else v) for k, v in case.params.items()}
    return f"of shapes {shapes}, {params}"


def _fused(fn: Callable[..., torch.Tensor]):
    return lambda case: run_callable(fn, case)


def _torch_composed(case: Case):
    """``nll_loss(log_softmax(x))``: the unfused cross-entropy (no label smoothing)."""
    if case.params.get("label_smoothing", 0.0) > 0:
        return None

    def composed(x, t, weight=None, reduction="mean", **_):
        return F.nll_loss(F.log_softmax(x, 1), t, weight=weight, reduction=reduction)

    return run_callable(composed, case)


def _reference(name: str):
    def run(case: Case):
        if case.dtype != "float64":
            return None  # a float64 implementation: measured in float64 only
        arrays, params, g = rounded_inputs(case)
        fwd = np.asarray(getattr(reference, name)(*arrays, **params), dtype=np.float64)
        grad = getattr(reference, name + "_backward")(np.broadcast_to(g, fwd.shape), *arrays,
                                                      **params)
        return fwd, np.asarray(grad, dtype=np.float64)

    return run


def _scipy(name: str):
    import scipy.special as sp

    def run(case: Case):
        if case.dtype not in ("float64", "float32"):
            return None  # scipy computes in the array's NumPy dtype; it has no half types
        arrays, k, _ = rounded_inputs(case)
        x = arrays[0].astype(case.dtype)
        if name == "binary_cross_entropy_with_logits":
            if case.dtype != "float64":
                return None
            y = arrays[1]
            pw = k.get("pos_weight", 1.0)
            w = k.get("weight", 1.0)
            # ℓ = −[pw·y·log σ(x) + (1−y)·log σ(−x)]·w with scipy's log_expit.
            loss = -(pw * y * sp.log_expit(x) + (1 - y) * sp.log_expit(-x)) * w
            red = k.get("reduction", "mean")
            fwd = loss if red == "none" else (loss.sum() if red == "sum" else loss.mean())
            return np.asarray(fwd, dtype=np.float64), None
        fn = {"softmax": sp.softmax, "log_softmax": sp.log_softmax,
              "logsumexp": sp.logsumexp}[name]
        return np.asarray(fn(x, axis=1), dtype=np.float64), None

    return run


def _naive(fn: Callable[..., torch.Tensor]):
    def run(case: Case):
        if case.params.get("label_smoothing", 0.0) > 0:
            return None
        return run_callable(fn, case)

    return run


def implementations(function: str, target: Target | None = None
                    ) -> dict[str, Callable[[Case], Any]]:
    """Named implementations of ``function``, in report column order.

    The first is the implementation under test: ``target``'s ``function``, named by the target
    (default: ``torch.nn.functional``, named ``"torch"``; absent where the target lacks the
    function); the others are the comparisons, the same for every target.
    """
    impls: dict[str, Callable[[Case], Any]] = {}
    if target is None:
        impls["torch"] = _fused(torch.logsumexp if function == "logsumexp"
                                else getattr(F, function))
    elif target.get(function) is not None:
        impls[target.name] = _fused(target.get(function))
    if function == "cross_entropy":
        impls["torch composed nll_loss(log_softmax)"] = _torch_composed
    impls["reference (NumPy float64)"] = _reference(function)
    if function in ("softmax", "log_softmax", "logsumexp", "binary_cross_entropy_with_logits"):
        impls["scipy.special"] = _scipy(function)
    for name, (imitates, fn) in naive.NAIVE.items():
        if imitates == function:
            impls[f"naive {name}"] = _naive(fn)
    return impls
