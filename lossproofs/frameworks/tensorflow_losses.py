"""TensorFlow 2 loss functions (tf.nn, keras.ops) on the CPU, in the input's dtype.

Run the suite on it with ``--target module:lossproofs.frameworks.tensorflow_losses``. Values are
``tf.nn.softmax``, ``tf.nn.log_softmax``, ``tf.reduce_logsumexp``,
``tf.nn.sparse_softmax_cross_entropy_with_logits`` (class-index targets; it wants the class axis
last, so K-dim and batched inputs are transposed with ``tf.transpose`` first),
``tf.nn.softmax_cross_entropy_with_logits`` (class-probability targets, ``axis`` = the class
axis), ``keras.ops.binary_crossentropy`` (elementwise; Keras 3 on its TensorFlow backend),
``tf.nn.sigmoid_cross_entropy_with_logits`` and, with ``pos_weight``,
``tf.nn.weighted_cross_entropy_with_logits``. The ``sum`` and ``mean`` reductions are
``tf.reduce_sum``/``tf.reduce_mean`` of the per-element loss. Gradients are
``tf.GradientTape``. TensorFlow has no ``nll_loss``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from lossproofs.frameworks._bridge import (
    Framework,
    bridged,
    check_reduction,
    numpy_to_tensor,
    reduced,
    refuse_not_provided,
    softmax_family,
    tensor_to_numpy,
)

if keras.config.backend() != "tensorflow":
    raise ImportError(f"the tensorflow target needs Keras on its TensorFlow backend, "
                      f"KERAS_BACKEND selects {keras.config.backend()!r}")

__version__ = f"tensorflow {tf.__version__}, keras {keras.__version__}"
DEVICE = "cpu"
UNSUPPORTED_CHECKS = {
    "second order": "the bridge applies tf.GradientTape.gradient in a torch.autograd.Function "
                    "backward, which torch cannot differentiate again (no double backward)",
    # Bad input by torch's rules that this framework accepts by its own documented convention
    # (not a divergence: the mathematics is defined there); the error tests skip them.
    "error:int32 index target": "convention: tf.nn.sparse_softmax_cross_entropy_with_logits "
                                "takes int32 or int64 labels",
    "error:int64 target with the input's shape": "convention: a target of the input's shape is "
                                                 "taken as label weights (softmax_cross_entropy"
                                                 "_with_logits casts integer labels)",
}

# Parameter families (lossproofs.frameworks.FAMILIES) not provided: {function: {family: why}}.
NOT_PROVIDED: dict[str, dict[str, str]] = {
    "cross_entropy": {
        "weight": "tf.nn.(sparse_)softmax_cross_entropy_with_logits has no class weights",
        "ignore_index": "tf.nn.sparse_softmax_cross_entropy_with_logits has no ignore_index",
        "label_smoothing": "tf.nn.softmax_cross_entropy_with_logits has no label_smoothing "
                           "(Keras' CategoricalCrossentropy has, on one-hot targets only)",
        "uint8 target": "tf.nn.sparse_softmax_cross_entropy_with_logits takes int32/int64 "
                        "labels only (InvalidArgumentError for uint8)",
    },
    "binary_cross_entropy": {
        "weight": "keras.ops.binary_crossentropy has no per-element weight (Keras' "
                  "sample_weight belongs to the Loss classes and reduces differently)",
    },
    "binary_cross_entropy_with_logits": {
        "weight": "tf.nn.sigmoid_cross_entropy_with_logits has no per-element weight",
    },
}
# Conventions that differ from torch's on purpose: {function: {family: what the framework does}}.
CONVENTIONS: dict[str, dict[str, str]] = {
    "binary_cross_entropy": {
        "clamp": "keras.ops.binary_crossentropy clips p to [ε, 1 − ε] with ε = "
                 "keras.config.epsilon() = 1e-7 (computed in the input's dtype) before the "
                 "logs, where torch clamps each log at −100; the clip also zeroes the gradient "
                 "outside [ε, 1 − ε]",
    },
    "cross_entropy": {
        "probability target": "tf.nn.softmax_cross_entropy_with_logits requires each target row "
                              "to be a probability distribution: its gradient is softmax − t, "
                              "the loss's gradient p·Σt − t only when Σt = 1 (documented: 'if "
                              "they are not, the computation of the gradient will be "
                              "incorrect'); the value is −Σ t·log p for any t",
    },
}


class _TensorFlow(Framework):
    name = "tensorflow"

    def to_array(self, t):
        with tf.device("/CPU:0"):
            return tf.constant(tensor_to_numpy(t))

    def to_tensor(self, a):
        return numpy_to_tensor(a.numpy())

    def value_and_vjp(self, fn, arrays, wrt):
        with tf.device("/CPU:0"):
            if not wrt:
                return fn(*arrays), None
            with tf.GradientTape(persistent=True) as tape:
                for i in wrt:
                    tape.watch(arrays[i])
                value = fn(*arrays)

        def vjp(g):
            with tf.device("/CPU:0"):
                return tape.gradient(value, [arrays[i] for i in wrt], output_gradients=g,
                                     unconnected_gradients=tf.UnconnectedGradients.ZERO)

        return value, vjp


FRAMEWORK = _TensorFlow()


def _reduce(loss, reduction):
    return reduced(loss, reduction, tf.reduce_sum, tf.reduce_mean)


softmax, log_softmax, logsumexp = softmax_family(
    FRAMEWORK, lambda a, dim: tf.nn.softmax(a, axis=dim),
    lambda a, dim: tf.nn.log_softmax(a, axis=dim),
    lambda a, dim, keepdim: tf.reduce_logsumexp(a, axis=dim, keepdims=keepdim))


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    refuse_not_provided("tensorflow", NOT_PROVIDED, "cross_entropy", weight=weight,
                        ignore_index=ignore_index, label_smoothing=label_smoothing)
    check_reduction(reduction)
    axis = 0 if input.ndim == 1 else 1
    if input.shape == target.shape:
        def fn(x, t):
            return _reduce(tf.nn.softmax_cross_entropy_with_logits(labels=t, logits=x,
                                                                   axis=axis), reduction)
    else:
        # The sparse op has no axis argument: the class axis must be last.
        perm = [0, *range(2, input.ndim), 1] if input.ndim > 1 else [0]

        def fn(x, t):
            return _reduce(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=t, logits=tf.transpose(x, perm)), reduction)
    return bridged(FRAMEWORK, fn, input, target)


def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    refuse_not_provided("tensorflow", NOT_PROVIDED, "binary_cross_entropy", weight=weight)
    check_reduction(reduction)
    return bridged(FRAMEWORK, lambda p, y: _reduce(keras.ops.binary_crossentropy(y, p),
                                                   reduction), input, target)


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                     pos_weight=None):
    refuse_not_provided("tensorflow", NOT_PROVIDED, "binary_cross_entropy_with_logits",
                        weight=weight)
    check_reduction(reduction)
    if pos_weight is None:
        def fn(x, y):
            return _reduce(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=x),
                           reduction)
    else:
        pw = FRAMEWORK.to_array(pos_weight)

        def fn(x, y):
            return _reduce(tf.nn.weighted_cross_entropy_with_logits(labels=y, logits=x,
                                                                    pos_weight=pw), reduction)
    return bridged(FRAMEWORK, fn, input, target)
