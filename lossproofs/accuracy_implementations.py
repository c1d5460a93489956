"""The implementations the accuracy report compares, each run on one problem in its dtype.

Each takes a problem and returns ``(forward, gradient or None)`` as float64 arrays, computed in
the problem's dtype, or None where it does not apply: torch fused (``torch.nn.functional``),
torch composed ``nll_loss(log_softmax)``, the NumPy reference (float64 only), scipy.special
(float64 and float32, forward only) and the named naive formulations of :mod:`lossproofs.naive`.
:func:`run_callable` is how the accuracy properties call the implementation under test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lossproofs import naive
from lossproofs.strategies import extreme


def _tensor(a: Any, dtype: str, grad: bool = False) -> torch.Tensor:
    t = torch.tensor(np.array(a, dtype=np.float64)).to(getattr(torch, dtype))  # a copy
    return t.requires_grad_(grad)


def _torch_args(problem: dict[str, Any]) -> tuple[torch.Tensor, list[Any], dict[str, Any]]:
    dtype = problem["dtype"]
    x = _tensor(problem["input"], dtype, grad=True)
    args: list[Any] = []
    if problem["target"] is not None:
        t = problem["target"]
        args.append(torch.as_tensor(t) if t.dtype == np.int64 else _tensor(t, dtype))
    kwargs = dict(problem["kwargs"])
    for key in ("weight", "pos_weight"):
        if key in kwargs:
            kwargs[key] = _tensor(kwargs[key], dtype)
    return x, args, kwargs


def run_callable(fn: Callable[..., torch.Tensor], problem: dict[str, Any]):
    """Call a ``torch.nn.functional``-style ``fn`` on a problem in its dtype; return the
    forward value and the input gradient (for the problem's ``grad``) as float64 arrays."""
    x, args, kwargs = _torch_args(problem)
    if problem["function"] in extreme.SOFTMAX_FAMILY:
        out = fn(x, kwargs.pop("dim"), **kwargs)
    else:
        out = fn(x, *args, **kwargs)
    g = _tensor(np.broadcast_to(problem["grad"], tuple(out.shape)), problem["dtype"])
    (grad,) = torch.autograd.grad(out, x, g)
    return out.detach().double().numpy(), grad.double().numpy()


def _torch_fused(name: str):
    fn = torch.logsumexp if name == "logsumexp" else getattr(F, name)
    return lambda problem: run_callable(fn, problem)


def _torch_composed(problem: dict[str, Any]):
    """``nll_loss(log_softmax(x))``: the unfused cross-entropy (no label smoothing)."""
    if problem["kwargs"].get("label_smoothing", 0.0) > 0:
        return None

    def composed(x, t, weight=None, reduction="mean", **_):
        return F.nll_loss(F.log_softmax(x, 1), t, weight=weight, reduction=reduction)

    return run_callable(composed, problem)


def _reference(name: str):
    def run(problem: dict[str, Any]):
        if problem["dtype"] != "float64":
            return None  # a float64 implementation: measured in float64 only
        from lossproofs import reference

        args = [problem["input"]] + ([problem["target"]] if problem["target"] is not None
                                     else [])
        kwargs = dict(problem["kwargs"])
        fwd = np.asarray(getattr(reference, name)(*args, **kwargs), dtype=np.float64)
        grad = getattr(reference, name + "_backward")(
            np.broadcast_to(problem["grad"], fwd.shape), *args, **kwargs)
        return fwd, np.asarray(grad, dtype=np.float64)

    return run


def _scipy(name: str):
    import scipy.special as sp

    def run(problem: dict[str, Any]):
        if problem["dtype"] not in ("float64", "float32"):
            return None  # scipy computes in the array's NumPy dtype; it has no half types
        x = problem["input"].astype(problem["dtype"])
        if name == "binary_cross_entropy_with_logits":
            if problem["dtype"] != "float64":
                return None
            k = problem["kwargs"]
            y = problem["target"]
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
    def run(problem: dict[str, Any]):
        if problem["kwargs"].get("label_smoothing", 0.0) > 0:
            return None
        return run_callable(fn, problem)

    return run


def implementations(function: str) -> dict[str, Callable[[dict[str, Any]], Any]]:
    """Named implementations of ``function``, in report column order."""
    impls: dict[str, Callable[[dict[str, Any]], Any]] = {"torch": _torch_fused(function)}
    if function == "cross_entropy":
        impls["torch composed nll_loss(log_softmax)"] = _torch_composed
    impls["reference (NumPy float64)"] = _reference(function)
    if function in ("softmax", "log_softmax", "logsumexp", "binary_cross_entropy_with_logits"):
        impls["scipy.special"] = _scipy(function)
    for name, (imitates, fn) in naive.NAIVE.items():
        if imitates == function:
            impls[f"naive {name}"] = _naive(fn)
    return impls
