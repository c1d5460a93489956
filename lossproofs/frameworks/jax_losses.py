"""JAX and optax loss functions (jax.nn, optax) on the CPU, in the input's dtype.

Run the suite on it with ``--target module:lossproofs.frameworks.jax_losses``. Values are
``jax.nn.softmax``, ``jax.nn.log_softmax``, ``jax.nn.logsumexp``,
``optax.softmax_cross_entropy_with_integer_labels`` (class-index targets),
``optax.softmax_cross_entropy`` (class-probability targets) and
``optax.sigmoid_binary_cross_entropy``, each with the class axis passed as ``axis``; the ``sum``
and ``mean`` reductions are ``jnp.sum``/``jnp.mean`` of the per-example loss. Gradients are
``jax.vjp``. float64 needs ``jax_enable_x64``, which importing this module turns on (a
process-wide JAX setting). JAX has no ``nll_loss`` and no probability-input binary
cross-entropy, so those are absent.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)  # else float64 arrays silently become float32

import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from lossproofs.frameworks._bridge import (  # noqa: E402
    Framework,
    bridged,
    check_reduction,
    numpy_to_tensor,
    reduced,
    refuse_not_provided,
    softmax_family,
    tensor_to_numpy,
)

__version__ = f"jax {jax.__version__}, optax {optax.__version__}"
DEVICE = "cpu"
UNSUPPORTED_CHECKS = {
    "second order": "the bridge applies jax.vjp in a torch.autograd.Function backward, which "
                    "torch cannot differentiate again (no double backward)",
    # Bad input by torch's rules that this framework accepts by its own documented convention
    # (not a divergence: the mathematics is defined there); the error tests skip them.
    "error:int32 index target": "convention: JAX's default integer type is int32; any integer "
                                "class index is accepted",
    "error:uint8 target with K-dim input": "convention: optax takes class indices of any "
                                           "integer dtype, for any number of dims",
    "error:int64 target with the input's shape": "convention: a target of the input's shape is "
                                                 "taken as label weights (optax."
                                                 "softmax_cross_entropy), integer or not",
    "error:integer input": "convention: jax.nn.softmax/log_softmax promote integer input to "
                           "float (optax's cross-entropy rejects it)",
}

_CPU = jax.devices("cpu")[0]

# Parameter families (lossproofs.frameworks.FAMILIES) not provided: {function: {family: why}}.
NOT_PROVIDED: dict[str, dict[str, str]] = {
    **{name: {"0-d": f"jax.nn.{name}(x, axis=0) of a 0-d array raises ValueError (axis 0 is "
                     "out of bounds), where torch treats dim 0/-1 of a scalar as the scalar"}
       for name in ("softmax", "log_softmax", "logsumexp")},
    "cross_entropy": {
        "weight": "optax.softmax_cross_entropy(_with_integer_labels) has no class weights",
        "ignore_index": "optax's cross-entropy has no ignore_index (its `where` mask zeroes "
                        "masked rows but a mean over kept targets would be hand-composed)",
        "label_smoothing": "optax's cross-entropy has no label_smoothing parameter "
                           "(optax.smooth_labels is a separate transform of one-hot targets)",
    },
    "binary_cross_entropy_with_logits": {
        "weight": "optax.sigmoid_binary_cross_entropy has no per-element weight",
        "pos_weight": "optax.sigmoid_binary_cross_entropy has no pos_weight",
    },
}
# Conventions that differ from torch's on purpose: {function: {family: what the framework does}}.
CONVENTIONS: dict[str, dict[str, str]] = {}


class _Jax(Framework):
    name = "jax"

    def to_array(self, t):
        return jax.device_put(tensor_to_numpy(t), _CPU)

    def to_tensor(self, a):
        return numpy_to_tensor(jax.device_get(a))

    def value_and_vjp(self, fn, arrays, wrt):
        if not wrt:
            return fn(*arrays), None

        def partial(*diff):
            full = list(arrays)
            for i, d in zip(wrt, diff):
                full[i] = d
            return fn(*full)

        value, vjp = jax.vjp(partial, *[arrays[i] for i in wrt])
        return value, vjp


FRAMEWORK = _Jax()


def _reduce(loss, reduction):
    return reduced(loss, reduction, jnp.sum, jnp.mean)


def _class_axis(ndim: int) -> int:
    return 0 if ndim == 1 else 1


softmax, log_softmax, logsumexp = softmax_family(
    FRAMEWORK, lambda a, dim: jax.nn.softmax(a, axis=dim),
    lambda a, dim: jax.nn.log_softmax(a, axis=dim),
    lambda a, dim, keepdim: jax.nn.logsumexp(a, axis=dim, keepdims=keepdim))


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    refuse_not_provided("jax", NOT_PROVIDED, "cross_entropy", weight=weight,
                        ignore_index=ignore_index, label_smoothing=label_smoothing)
    check_reduction(reduction)
    axis = _class_axis(input.ndim)
    if input.shape == target.shape:
        def fn(x, t):
            return _reduce(optax.softmax_cross_entropy(x, t, axis=axis), reduction)
    else:
        def fn(x, t):
            return _reduce(optax.softmax_cross_entropy_with_integer_labels(x, t, axis=axis),
                           reduction)
    return bridged(FRAMEWORK, fn, input, target)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    refuse_not_provided("jax", NOT_PROVIDED, "binary_cross_entropy_with_logits", weight=weight,
                        pos_weight=pos_weight)
    check_reduction(reduction)
    return bridged(FRAMEWORK, lambda x, y: _reduce(optax.sigmoid_binary_cross_entropy(x, y),
                                                   reduction), input, target)
