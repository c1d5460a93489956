"""Argument checking for :mod:`lossproofs.reference`, kept apart from the mathematics.

Every check raises the exception *type* torch 2.13 raises for the same input (so a test can
assert that the reference and torch reject the same things the same way) and a message that
names the offending argument and its value, reusing torch's wording where torch already has it
(``"Target 4 is out of bounds."``). The one deliberate divergence — a negative or NaN
``label_smoothing``, which torch silently treats as 0 (pytorch#134767) — is an entry of the
divergence ledger (``lossproofs/ledger/torch.py``).

Nothing here computes a loss; each function either returns a normalised argument or raises.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

REDUCTIONS = ("none", "mean", "sum")

# NumPy dtype name -> the name torch prints for the matching torch dtype.
TORCH_DTYPE_NAMES = {
    "bool": "Bool",
    "uint8": "Byte",
    "int8": "Char",
    "int16": "Short",
    "int32": "Int",
    "int64": "Long",
    "uint16": "UInt16",
    "uint32": "UInt32",
    "uint64": "UInt64",
    "float16": "Half",
    "float32": "Float",
    "float64": "Double",
    "complex64": "ComplexFloat",
    "complex128": "ComplexDouble",
}

# Class-index target dtypes torch's nll_loss kernels accept (Long and Byte).
INDEX_TARGET_DTYPES = ("int64", "uint8")


def torch_dtype_name(dtype) -> str:
    """torch's printed name for a NumPy dtype (``int32`` -> ``Int``); the NumPy name otherwise."""
    name = np.dtype(dtype).name
    return TORCH_DTYPE_NAMES.get(name, name)


def _shape_list(shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def as_array(value, argname: str) -> np.ndarray:
    """``np.asarray(value)``, with a TypeError naming the argument when NumPy cannot convert it."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{argname} must be array-like, got {value!r}: {exc}") from exc
    if array.dtype == object:
        raise TypeError(f"{argname} must be a numeric array, got {value!r} (object dtype)")
    return array


def is_real_floating(array: np.ndarray) -> bool:
    return bool(np.issubdtype(array.dtype, np.floating))


def check_reduction(reduction) -> str:
    """``reduction`` must be ``"none"``, ``"mean"`` or ``"sum"`` (ValueError, torch's wording)."""
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(
            f"{reduction} is not a valid value for reduction "
            f"(reduction={reduction!r}; expected one of {REDUCTIONS})"
        )
    return reduction


def check_floating_input(array: np.ndarray, kernel: str, argname: str = "input") -> None:
    """A non-floating ``input`` is a NotImplementedError in torch (no kernel for that dtype)."""
    if not is_real_floating(array):
        raise NotImplementedError(
            f'"{kernel}" not implemented for \'{torch_dtype_name(array.dtype)}\': '
            f"{argname} has dtype {array.dtype.name}; a floating dtype is required"
        )


def check_int(value, argname: str) -> int:
    """An integer argument (``ignore_index``, ``dim``); bools and floats are a TypeError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argname} must be an integer, got {argname}={value!r}")
    return int(value)


def normalize_dim(dim, ndim: int, argname: str = "dim") -> int:
    """Wrap a possibly negative ``dim`` into ``[0, ndim)``; a 0-d array accepts -1 and 0 as torch.

    Out of range is an IndexError with torch's wording.
    """
    dim = check_int(dim, argname)
    rank = max(ndim, 1)
    if not -rank <= dim < rank:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-rank}, {rank - 1}], "
            f"but got {dim}) for {argname}={dim} and an input of {ndim} dimension(s)"
        )
    return dim % rank


def normalize_dims(dim, ndim: int) -> tuple[int, ...]:
    """``dim`` for logsumexp: an int or a non-empty sequence of distinct ints, each in range."""
    if isinstance(dim, numbers.Integral) and not isinstance(dim, bool):
        return (normalize_dim(dim, ndim),)
    try:
        dims = tuple(dim)
    except TypeError:
        raise TypeError(f"dim must be an int or a tuple of ints, got dim={dim!r}") from None
    if not dims:
        # torch.logsumexp(x, ()) raises "output with shape [] doesn't match the broadcast shape".
        raise RuntimeError(f"dim must name at least one dimension, got dim={dim!r}")
    normalized = tuple(normalize_dim(d, ndim) for d in dims)
    for position, axis in enumerate(normalized):
        if axis in normalized[:position]:
            raise RuntimeError(
                f"dim {dims[position]} appears multiple times in the list of dims (dim={dim!r})"
            )
    return normalized


def check_label_smoothing(label_smoothing) -> float:
    """``label_smoothing`` must be a real number in ``[0, 1]``.

    Above 1 is a RuntimeError with torch's wording. Negative or NaN is a ValueError here, while
    torch silently treats it as 0 (pytorch#134767): the reference's one deliberate divergence.
    """
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real):
        raise TypeError(
            f"label_smoothing must be a real number, got label_smoothing={label_smoothing!r}"
        )
    value = float(label_smoothing)
    if math.isnan(value) or value < 0.0:
        raise ValueError(
            f"label_smoothing must be between 0.0 and 1.0, got label_smoothing={value!r} "
            "(torch silently treats negative or NaN smoothing as 0, pytorch#134767; "
            "the reference refuses it)"
        )
    if value > 1.0:
        raise RuntimeError(
            f"label_smoothing must be between 0.0 and 1.0. Got: {value} "
            f"(label_smoothing={value!r})"
        )
    return value


def check_class_weight(weight, n_classes: int, input_dtype, *, check_dtype: bool,
                       prefix: str = "") -> np.ndarray | None:
    """Class weights: ``None`` or a 1-D array of ``n_classes`` entries (RuntimeError otherwise).

    With class-index targets torch also requires ``weight.dtype == input.dtype`` (RuntimeError
    "expected scalar type Double but found Float"); with probability targets it does not.
    """
    if weight is None:
        return None
    weight = as_array(weight, "weight")
    if weight.ndim != 1 or weight.shape[0] != n_classes:
        raise RuntimeError(
            f"{prefix}weight tensor should be defined either for all {n_classes} classes or no "
            f"classes but got weight tensor of shape: {_shape_list(weight.shape)}"
        )
    if check_dtype and weight.dtype != input_dtype:
        raise RuntimeError(
            f"expected scalar type {torch_dtype_name(input_dtype)} but found "
            f"{torch_dtype_name(weight.dtype)} (weight dtype {weight.dtype.name} must equal "
            f"input dtype {np.dtype(input_dtype).name})"
        )
    return weight


def check_class_index_targets(input: np.ndarray, target: np.ndarray, weight,
                              ignore_index: int, kernel: str) -> np.ndarray | None:
    """Checks of torch's ``nll_loss_nd`` for ``input`` of shape ``(C,)`` or ``(N, C, d1..dk)``.

    In torch's order: rank of input, batch size, target rank / spatial shape, weight shape and
    dtype, target dtype, input dtype, then target values. uint8 targets are accepted only for
    ``(C,)`` and ``(N, C)`` inputs, as torch. Returns the checked weight.
    """
    if input.ndim < 1:
        raise ValueError(
            f"Expected 1 or more dimensions (got 0): input has shape {input.shape}"
        )
    if input.ndim != 1 and (target.ndim == 0 or input.shape[0] != target.shape[0]):
        target_batch = target.shape[0] if target.ndim else "none (0-d target)"
        raise ValueError(
            f"Expected input batch_size ({input.shape[0]}) to match target batch_size "
            f"({target_batch}). (input shape {input.shape}, target shape {target.shape})"
        )
    if input.ndim <= 2:
        if target.ndim > 1:
            raise RuntimeError(
                "0D or 1D target tensor expected, multi-target not supported "
                f"(target shape {target.shape} for input shape {input.shape})"
            )
        if input.ndim == 1 and target.size != 1:
            raise ValueError(
                "For 1D input, 1D target must have size 1, but got target size: "
                f"{target.size} (target shape {target.shape})"
            )
    else:
        expected = (input.shape[0], *input.shape[2:])
        if target.shape != expected:
            if input.ndim == 4 and target.ndim != 3:
                message = ("only batches of spatial targets supported (3D tensors) but got "
                           f"targets of dimension: {target.ndim}")
            elif input.ndim == 4:
                message = (f"size mismatch (got input: {_shape_list(input.shape)} , "
                           f"target: {_shape_list(target.shape)}")
            else:
                message = (f"Expected target size {_shape_list(expected)}, "
                           f"got {_shape_list(target.shape)}")
            raise RuntimeError(
                f"{message} (target shape {target.shape} must equal input shape {input.shape} "
                "without its class dimension 1)"
            )
    n_classes = input.shape[1] if input.ndim >= 2 else input.shape[0]
    weight = check_class_weight(weight, n_classes, input.dtype, check_dtype=True)
    if target.dtype.name not in INDEX_TARGET_DTYPES:
        raise RuntimeError(
            f"expected target dtype to be Long or Byte, but got "
            f"{torch_dtype_name(target.dtype)} (target dtype {target.dtype.name}; class-index "
            "targets must be int64 or uint8)"
        )
    check_floating_input(input, kernel)
    if input.ndim >= 3 and target.dtype != np.int64:
        # torch's K-dim kernels (nll_loss2d, and nll_loss_nd through them) take Long only.
        raise RuntimeError(
            f"expected scalar type Long but found {torch_dtype_name(target.dtype)} (target dtype "
            f"{target.dtype.name} is accepted only with (C,) or (N, C) input; input has shape "
            f"{input.shape})"
        )
    flat = target.reshape(-1).astype(np.int64)
    bad = (flat != ignore_index) & ((flat < 0) | (flat >= n_classes))
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        value = int(flat[position])
        raise IndexError(
            f"Target {value} is out of bounds. (target={value} at flat position {position}; "
            f"class indices must lie in [0, {n_classes - 1}] or equal "
            f"ignore_index={ignore_index})"
        )
    return weight


def check_probability_targets(input: np.ndarray, target: np.ndarray, weight,
                              ignore_index: int) -> np.ndarray | None:
    """Checks for class-probability targets (``target.shape == input.shape``).

    The target must be floating (RuntimeError), ``ignore_index`` negative (RuntimeError), the
    input at least 1-D (IndexError, from torch's ``log_softmax(input, 1)``) and floating
    (NotImplementedError). The weight dtype may differ from the input's. Returns the weight.
    """
    if not is_real_floating(target):
        raise RuntimeError(
            "Expected floating point type for target with class probabilities, got "
            f"{torch_dtype_name(target.dtype)} (target dtype {target.dtype.name} with the "
            f"input's shape {input.shape})"
        )
    if ignore_index >= 0:
        raise RuntimeError(
            "ignore_index is not supported for floating point target "
            f"(ignore_index={ignore_index}; it must be negative with probability targets)"
        )
    check_cross_entropy_input_rank(input)
    check_floating_input(input, "log_softmax_lastdim_kernel_impl")
    n_classes = input.shape[1] if input.ndim >= 2 else input.shape[0]
    return check_class_weight(weight, n_classes, input.dtype, check_dtype=False,
                              prefix="cross_entropy: ")


def check_cross_entropy_input_rank(input: np.ndarray) -> None:
    """cross_entropy takes ``log_softmax(input, 1)`` of a 0-d input first: IndexError in torch."""
    if input.ndim == 0:
        raise IndexError(
            "Dimension out of range (expected to be in range of [-1, 0], but got 1): "
            f"cross_entropy needs input with at least 1 dimension, got input of shape {input.shape}"
        )


def check_broadcasts_into(value: np.ndarray | None, argname: str, shape: tuple) -> None:
    """``value`` must broadcast to ``shape`` without enlarging it (RuntimeError, as torch)."""
    if value is None:
        return
    try:
        broadcast = np.broadcast_shapes(value.shape, shape)
    except ValueError:
        raise RuntimeError(
            f"{argname} of shape {_shape_list(value.shape)} does not broadcast to the loss's "
            f"shape {_shape_list(shape)}"
        ) from None
    if broadcast != tuple(shape):
        raise RuntimeError(
            f"output with shape {_shape_list(shape)} doesn't match the broadcast shape "
            f"{_shape_list(broadcast)} ({argname} of shape {_shape_list(value.shape)} would "
            "enlarge the output)"
        )


def check_bce(input: np.ndarray, target: np.ndarray, weight) -> np.ndarray | None:
    """torch's binary_cross_entropy checks, in its order; returns the weight as an array."""
    if target.shape != input.shape:
        raise ValueError(
            f"Using a target size ({target.shape}) that is different to the input size "
            f"({input.shape}) is deprecated. Please ensure they have the same size."
        )
    if weight is not None:
        weight = as_array(weight, "weight")
        check_broadcasts_into(weight, "weight", input.shape)
    if target.dtype != input.dtype:
        raise RuntimeError(
            f"Found dtype {torch_dtype_name(target.dtype)} but expected "
            f"{torch_dtype_name(input.dtype)} (target dtype {target.dtype.name} must equal "
            f"input dtype {input.dtype.name})"
        )
    check_floating_input(input, "binary_cross_entropy")
    for argname, array in (("input", input), ("target", target)):
        outside = ~((array >= 0) & (array <= 1))  # NaN fails both comparisons
        if outside.any():
            value = array.reshape(-1)[np.flatnonzero(outside.reshape(-1))[0]]
            raise RuntimeError(
                f"all elements of {argname} should be between 0 and 1 "
                f"({argname} holds {float(value)!r})"
            )
    return weight


def check_bce_with_logits(input: np.ndarray, target: np.ndarray, weight, pos_weight):
    """torch's binary_cross_entropy_with_logits checks; returns ``(weight, pos_weight)``."""
    if target.shape != input.shape:
        raise ValueError(
            f"Target size ({target.shape}) must be the same as input size ({input.shape})"
        )
    check_floating_input(input, "log_sigmoid_cpu")
    if not is_real_floating(target):
        raise RuntimeError(
            f"result type Double can't be cast to the desired output type "
            f"{torch_dtype_name(target.dtype)} (target dtype {target.dtype.name}; a floating "
            "target is required)"
        )
    if pos_weight is not None:
        pos_weight = as_array(pos_weight, "pos_weight")
        check_broadcasts_into(pos_weight, "pos_weight", input.shape)
    if weight is not None:
        weight = as_array(weight, "weight")
        check_broadcasts_into(weight, "weight", input.shape)
    return weight, pos_weight


def check_grad_output(grad_output, expected_shape: tuple, argname: str = "grad_output"):
    """``grad_output`` must have the forward output's shape (0-d for sum/mean); float64 out."""
    grad_output = as_array(grad_output, argname)
    if grad_output.shape != tuple(expected_shape):
        raise ValueError(
            f"{argname} has shape {grad_output.shape}, but the forward output has shape "
            f"{tuple(expected_shape)}"
        )
    return grad_output.astype(np.float64)


def check_same_shape(vector, shape: tuple, argname: str = "vector") -> np.ndarray:
    """An HVP direction must have the input's shape (ValueError)."""
    vector = as_array(vector, argname)
    if vector.shape != tuple(shape):
        raise ValueError(f"{argname} has shape {vector.shape}, but input has shape {tuple(shape)}")
    return vector.astype(np.float64)


# --- linear_cross_entropy ---------------------------------------------------------------------

def check_linear_cross_entropy(input: np.ndarray, linear_weight: np.ndarray,
                               target: np.ndarray, linear_bias, ignore_index):
    """torch's ``F.linear_cross_entropy`` wrapper checks, in its order (all RuntimeError).

    ``input`` 1-D ``(in,)`` or 2-D ``(N, in)``; ``linear_weight`` ``(C, d1..dK, in)`` with at
    least 2 dims and the input's last dim; ``linear_bias`` ``None`` or ``(C, d1..dK)``; a K-dim
    weight needs batched input; ``ignore_index`` must be ``None`` when the target holds
    probabilities (``target.shape`` equal to the logits' shape). Returns the logits' shape and
    whether the target holds probabilities.
    """
    if input.ndim < 1 or input.ndim > 2:
        raise RuntimeError(
            f"expected input with dimensionality 1 or 2, got {input.ndim} "
            f"(input shape {input.shape})"
        )
    if linear_weight.ndim < 2:
        raise RuntimeError(
            f"expected linear_weight with dimensionality at least 2, got {linear_weight.ndim} "
            f"(linear_weight shape {linear_weight.shape})"
        )
    if input.shape[-1] != linear_weight.shape[-1]:
        raise RuntimeError(
            "expected equal input and linear_weight last dimensions (in_features), got "
            f"{input.shape[-1]} and {linear_weight.shape[-1]}, respectively (input shape "
            f"{input.shape}, linear_weight shape {linear_weight.shape})"
        )
    num_classes, out_features = linear_weight.shape[0], tuple(linear_weight.shape[1:-1])
    if linear_bias is not None and tuple(linear_bias.shape) != (num_classes, *out_features):
        raise RuntimeError(
            f"expected linear_bias shape {(num_classes, *out_features)}, got "
            f"{tuple(linear_bias.shape)} (linear_bias must have linear_weight's shape without "
            "its last dimension)"
        )
    if out_features and input.ndim == 1:
        raise RuntimeError(
            f"K-dimensional loss defined by linear_weight shape {tuple(linear_weight.shape)} "
            f"requires batched input, (N, {input.shape[-1]}), got unbatched input with shape "
            f"{tuple(input.shape)}"
        )
    logits_shape = (*input.shape[:-1], num_classes, *out_features)
    probabilities = tuple(target.shape) == logits_shape
    if probabilities and ignore_index is not None:
        raise RuntimeError(
            "ignore_index cannot be specified when target contains probabilities "
            f"(ignore_index={ignore_index!r}; target shape {target.shape} equals the logits' "
            f"shape {logits_shape}, so it holds class probabilities)"
        )
    return logits_shape, probabilities


def check_linear_dtypes(input: np.ndarray, linear_weight: np.ndarray, linear_bias) -> None:
    """torch's ``linear``: ``linear_weight`` and ``linear_bias`` must have the input's dtype
    (RuntimeError); a non-floating input then fails in log_softmax (NotImplementedError)."""
    if linear_weight.dtype != input.dtype:
        raise RuntimeError(
            "expected m1 and m2 to have the same dtype, but got: "
            f"{torch_dtype_name(input.dtype)} != {torch_dtype_name(linear_weight.dtype)} "
            f"(input dtype {input.dtype.name}, linear_weight dtype {linear_weight.dtype.name})"
        )
    if linear_bias is not None and linear_bias.dtype != input.dtype:
        raise RuntimeError(
            "self and mat2 must have the same dtype, but got "
            f"{torch_dtype_name(linear_bias.dtype)} and {torch_dtype_name(input.dtype)} "
            f"(linear_bias dtype {linear_bias.dtype.name}, input dtype {input.dtype.name})"
        )
    check_floating_input(input, "log_softmax_lastdim_kernel_impl")
