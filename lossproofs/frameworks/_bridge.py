"""The torch ↔ framework bridge shared by the framework targets.

A framework target is a user module (see ``lossproofs.targets.user_module``) whose functions take
CPU torch tensors, as the suite passes them, and compute with another framework's own functions.
:func:`bridged` runs one framework computation as a ``torch.autograd.Function``:

- forward converts each tensor to the framework's array **in the tensor's own dtype**
  (float64, float32, float16, bfloat16; integer targets stay integer), calls the framework, and
  when torch needs a gradient also records the framework's own VJP (``jax.vjp``,
  ``tf.GradientTape``, tinygrad's ``Tensor.gradient``);
- backward hands ``grad_output`` (in the output's dtype) to that VJP and returns its result,
  for the input and for a floating target alike.

Nothing is computed in torch: the value and the gradients are the framework's. Exceptions the
framework raises propagate unchanged. There is no double backward (the VJP is a framework
computation torch cannot differentiate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch


def tensor_to_numpy(t: torch.Tensor) -> np.ndarray:
    """``t`` as a C-contiguous NumPy array of the same dtype, exactly.

    bfloat16 becomes ``ml_dtypes.bfloat16`` (the type JAX and TensorFlow use); the bits are
    copied, never converted.
    """
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().copy().view(ml_dtypes.bfloat16)
    return t.numpy().copy()


def numpy_to_tensor(a: Any) -> torch.Tensor:
    """A NumPy array (or scalar) as a torch tensor of the same dtype; ``ml_dtypes.bfloat16``
    becomes ``torch.bfloat16`` bit for bit."""
    a = np.array(a, copy=True)
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


class Framework:
    """What the bridge needs from a framework: array conversion and a VJP.

    ``value_and_vjp(fn, arrays, wrt)`` runs ``fn(*arrays)`` and returns ``(value, vjp)`` where
    ``vjp(g)`` gives the gradient for each index in ``wrt`` (an array or None), or ``vjp`` is
    None when ``wrt`` is empty.
    """

    name = "framework"

    def to_array(self, t: torch.Tensor) -> Any:
        raise NotImplementedError

    def to_tensor(self, a: Any) -> torch.Tensor:
        raise NotImplementedError

    def value_and_vjp(self, fn: Callable[..., Any], arrays: list[Any], wrt: Sequence[int]):
        raise NotImplementedError


class _Bridge(torch.autograd.Function):
    @staticmethod
    def forward(ctx, framework: Framework, fn, *tensors):
        arrays = [framework.to_array(t) for t in tensors]
        wrt = [i for i, t in enumerate(tensors)
               if t.is_floating_point() and ctx.needs_input_grad[2 + i]]
        value, vjp = framework.value_and_vjp(fn, arrays, wrt)
        out = framework.to_tensor(value)
        ctx.framework, ctx.vjp, ctx.wrt = framework, vjp, wrt
        ctx.dtypes = [t.dtype for t in tensors]
        ctx.mark_non_differentiable(*[t for t in tensors if not t.is_floating_point()])
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        grads: list[torch.Tensor | None] = [None] * len(ctx.dtypes)
        if ctx.vjp is not None:
            g = ctx.framework.to_array(grad_output)
            for i, gi in zip(ctx.wrt, ctx.vjp(g)):
                if gi is not None:
                    grads[i] = ctx.framework.to_tensor(gi)
        return (None, None, *grads)


def bridged(framework: Framework, fn: Callable[..., Any], *tensors: torch.Tensor) -> torch.Tensor:
    """``fn(*arrays)`` computed by ``framework`` on ``tensors`` (converted in their own dtypes),
    as a torch tensor whose gradient is the framework's VJP. Keyword arguments and tensors that
    are not to be differentiated (class weights, ``pos_weight``) belong in ``fn``'s closure."""
    for t in tensors:
        if t.device.type != "cpu":
            raise ValueError(f"the {framework.name} bridge takes CPU tensors, got {t.device}")
    return _Bridge.apply(framework, fn, *tensors)


def check_reduction(reduction: str) -> None:
    """torch's message for an unknown reduction; the framework never sees the value."""
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def not_provided(target: str, declared: dict[str, dict[str, str]], function: str,
                 family: str) -> NotImplementedError:
    """The error a framework module raises for a parameter it declares it does not provide
    (the suite does not draw such cases; a direct caller is told why)."""
    return NotImplementedError(f"{target} target: {function} {family}: "
                               f"{declared[function][family]}")


def refuse_not_provided(target: str, declared: dict[str, dict[str, str]], function: str, *,
                        weight=None, ignore_index: int = -100, label_smoothing: float = 0.0,
                        pos_weight=None) -> None:
    """Raise :func:`not_provided` for the first parameter given a non-default value that
    ``declared`` (the module's ``NOT_PROVIDED``) lists for ``function``: such a call is
    refused, never composed by hand around the framework's function."""
    given = {"weight": weight is not None, "ignore_index": ignore_index != -100,
             "label_smoothing": bool(label_smoothing), "pos_weight": pos_weight is not None}
    for family, is_given in given.items():
        if is_given and family in declared.get(function, {}):
            raise not_provided(target, declared, function, family)


def reduced(loss, reduction: str, total: Callable[[Any], Any], mean: Callable[[Any], Any]):
    """torch's ``reduction`` (checked first with :func:`check_reduction`) of a per-element
    ``loss`` with the framework's own ``total`` (sum) and ``mean``."""
    if reduction == "none":
        return loss
    return total(loss) if reduction == "sum" else mean(loss)


def softmax_family(framework: Framework, softmax: Callable[[Any, Any], Any],
                   log_softmax: Callable[[Any, Any], Any],
                   logsumexp: Callable[[Any, Any, bool], Any]):
    """torch-signature ``softmax(input, dim, dtype=None)``, ``log_softmax`` and
    ``logsumexp(input, dim, keepdim=False)`` computed by the framework's own
    ``softmax(array, axis)``, ``log_softmax(array, axis)`` and
    ``logsumexp(array, axis, keepdims)``; ``dtype=`` casts the input first, as torch does."""

    def softmax_(input, dim, dtype=None):
        x = input if dtype is None else input.to(dtype)
        return bridged(framework, lambda a: softmax(a, dim), x)

    def log_softmax_(input, dim, dtype=None):
        x = input if dtype is None else input.to(dtype)
        return bridged(framework, lambda a: log_softmax(a, dim), x)

    def logsumexp_(input, dim, keepdim=False):
        return bridged(framework, lambda a: logsumexp(a, dim, keepdim), input)

    for fn, name in ((softmax_, "softmax"), (log_softmax_, "log_softmax"),
                     (logsumexp_, "logsumexp")):
        fn.__name__ = fn.__qualname__ = name
    return softmax_, log_softmax_, logsumexp_
