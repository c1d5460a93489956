"""linear_cross_entropy: the LM head's matmul and cross_entropy in one call; values, the three
parameter gradients, and the gradient with respect to a probability target.

Mirrors ``torch.nn.functional.linear_cross_entropy`` (new in torch 2.13). What torch 2.13.0 does,
as probed (``help``, ``inspect.getsource`` of ``torch/nn/functional.py`` and
``torch/nn/modules/linear_cross_entropy{,_options}.py``, and calls):

Semantics
    ``linear_cross_entropy(input, linear_weight, target, *, linear_bias=None, weight=None,
    reduction="mean", ignore_index=None, label_smoothing=0.0, options=None)`` equals
    ``cross_entropy(z, target, weight, ignore_index, reduction, label_smoothing)`` with logits
    ``z = linear(input, linear_weight.reshape(C·P, in), linear_bias.reshape(C·P))`` reshaped
    to ``(*batch, C, d1..dK)``, ``P = d1···dK``; i.e. ``z[n, c, k] = Σ_i input[n, i]·W[c, k, i]
    + b[c, k]``. ``ignore_index=None`` (the default) means −100.
Shapes
    ``input`` ``(in,)`` (unbatched) or ``(N, in)`` — never more dims; ``linear_weight``
    ``(C, in)`` or ``(C, d1..dK, in)`` (a K-dim weight makes a K-dim loss and needs batched
    input); ``linear_bias`` ``(C,)`` or ``(C, d1..dK)``, exactly ``linear_weight.shape[:-1]``;
    ``target`` class indices of the logits' shape without the class dim (``()``, ``(1,)`` for
    unbatched, ``(N,)``, ``(N, d1..dK)``), or probabilities of the logits' shape (detected by
    ``target.shape == logits_shape``); ``weight`` ``(C,)``. Output: ``none`` the target's
    shape without C (0-d unbatched), else 0-d.
Errors (RuntimeError unless said): input dim not 1 or 2 ("expected input with dimensionality 1
    or 2, got 3"); ``linear_weight`` with < 2 dims; unequal in_features; a bias not of shape
    ``linear_weight.shape[:-1]``; a K-dim weight with unbatched input; any explicit
    ``ignore_index`` (even −100) with a probability target ("ignore_index cannot be specified
    when target contains probabilities" — stricter than cross_entropy, which accepts negative
    values); ``linear_weight``/``linear_bias`` of another dtype than the input (from ``linear``);
    then every cross_entropy error on the logits (IndexError for an out-of-range target,
    ValueError for a batch mismatch or a bad reduction, NotImplementedError for integer input,
    TypeError for a float ``ignore_index``, ...).
The chunked path (``options=nn.LinearCrossEntropyOptions(...)``, not mirrored here — it is an
implementation under test; see :mod:`lossproofs.targets.linear`)
    Runs only for ``reduction`` in none/sum/mean, ``label_smoothing == 0``, an int64 target
    (so no probability or uint8 target), ``out_features == ()`` (no K-dim weight or bias) and
    outside ``torch.jit.trace``; otherwise it warns (UserWarning "linear_cross_entropy:
    ``options`` ignored; chunked path needs ...") and takes the reference path. A negative
    ``label_smoothing`` also warns (it is ``!= 0``), then cross_entropy silently uses 0.
    ``acc_policy`` ∈ accurate/balanced/compact/auto (auto on CPU: accurate for fp16/bf16,
    else compact), ``chunking_method`` "auto", "aspect_ratio[:k]" or None, ``batch_chunk_size``
    (``min(size, N)``; combined with a chunking method that disagrees: ValueError), ``acc_dtype``
    (None: float32 for half types under "auto", else the input's dtype; float32 with fp16/bf16
    input is the only mixed pair). mean/sum: the loss *and* all gradients are computed in the
    forward and the backward multiplies them by ``grad_output`` in place; a second backward
    raises RuntimeError ("chunked backward called twice") unless ``allow_retain_graph=True``.
    ``none``: a separate op whose backward recomputes the gradients (retain_graph always works).
    ``create_graph=True`` silently yields a gradient without ``grad_fn`` (no double backward);
    forward-mode AD silently yields no tangent; ``torch.func.grad`` raises RuntimeError.
    The chunked path skips most of the reference path's argument checks (see the divergence
    tests in ``tests/test_linear_cross_entropy.py``).

Conventions as in :mod:`lossproofs.reference`: float64 whatever the input dtype, 0-d arrays for
reductions, torch's exception types with messages that name the argument and its value.
"""

from __future__ import annotations

import numpy as np

from lossproofs import _validation as v
from lossproofs.reference._kernels import _ERRSTATE
from lossproofs.reference.cross_entropy import (
    cross_entropy,
    cross_entropy_backward,
    cross_entropy_target_backward,
)

DEFAULT_IGNORE_INDEX = -100


def _linear_plan(input, linear_weight, target, linear_bias, weight, ignore_index):
    """Validate a call as torch does and form the float64 logits ``z = x·Wᵀ + b``."""
    x = v.as_array(input, "input")
    w_lin = v.as_array(linear_weight, "linear_weight")
    t = v.as_array(target, "target")
    b = None if linear_bias is None else v.as_array(linear_bias, "linear_bias")
    if ignore_index is not None:
        ignore_index = v.check_int(ignore_index, "ignore_index")
    logits_shape, probabilities = v.check_linear_cross_entropy(x, w_lin, t, b, ignore_index)
    v.check_linear_dtypes(x, w_lin, b)
    n_classes = w_lin.shape[0]
    if weight is not None:
        # cross_entropy compares the class weight's dtype with the logits' (= input's) dtype for
        # index targets; the logits here are float64, so compare with the input's dtype first.
        weight = v.check_class_weight(weight, n_classes, x.dtype,
                                      check_dtype=not probabilities)
        weight = weight.astype(np.float64)
    # The K-dim weight (C, d1..dK, in) is a (C·P, in) matrix whose rows are the logits of one
    # (class, position) pair; torch reshapes it the same way (row-major, C outermost).
    in_features = x.shape[-1]
    w2 = w_lin.astype(np.float64).reshape(int(np.prod(w_lin.shape[:-1])), in_features)
    with np.errstate(**_ERRSTATE):
        # z = x·Wᵀ (+ b): the matmul in float64, one row of logits per batch element.
        z = x.astype(np.float64) @ w2.T
        if b is not None:
            z = z + b.astype(np.float64).reshape(-1)
    z = z.reshape(logits_shape)
    return dict(x=x, w2=w2, w_shape=w_lin.shape, b=b, t=t, z=z, weight=weight,
                ignore_index=DEFAULT_IGNORE_INDEX if ignore_index is None else ignore_index,
                probabilities=probabilities)


def _ce_kwargs(plan, reduction, label_smoothing) -> dict:
    return dict(weight=plan["weight"], ignore_index=plan["ignore_index"], reduction=reduction,
                label_smoothing=label_smoothing)


def linear_cross_entropy(input, linear_weight, target, linear_bias=None, weight=None,
                         reduction="mean", ignore_index=None, label_smoothing=0.0) -> np.ndarray:
    """Cross entropy of the logits ``z = input·linear_weightᵀ + linear_bias``; float64.

    ``input`` ``(in,)`` or ``(N, in)``; ``linear_weight`` ``(C, in)`` or ``(C, d1..dK, in)``
    (K-dim: logits ``(N, C, d1..dK)``, batched input only); ``linear_bias`` ``(C, d1..dK)``.
    ``target``, ``weight``, ``reduction``, ``label_smoothing`` as
    :func:`~lossproofs.reference.cross_entropy`; ``ignore_index=None`` (the default) means −100
    for class-index targets and must stay None for probability targets (RuntimeError), as
    torch. The logits are formed exactly as float64 products summed in float64 (the matmul's
    own rounding is ≤ in·2⁻⁵³ relative, far below any low-precision dtype under test).
    Special values: those of cross_entropy on ``z`` (an inf in ``input`` or the weights gives
    inf or NaN logits, and so NaN rows).
    """
    plan = _linear_plan(input, linear_weight, target, linear_bias, weight, ignore_index)
    return cross_entropy(plan["z"], plan["t"], **_ce_kwargs(plan, reduction, label_smoothing))


def _grad_logits(grad_output, plan, reduction, label_smoothing) -> np.ndarray:
    """∂/∂z, the cross_entropy reference's closed form at the logits."""
    return cross_entropy_backward(grad_output, plan["z"], plan["t"],
                                  **_ce_kwargs(plan, reduction, label_smoothing))


def linear_cross_entropy_backward(grad_output, input, linear_weight, target, linear_bias=None,
                                  weight=None, reduction="mean", ignore_index=None,
                                  label_smoothing=0.0):
    """``(grad_input, grad_linear_weight, grad_linear_bias)`` of ``Σ grad_output ⊙ loss``; float64.

    With ``G = ∂loss/∂z`` from :func:`~lossproofs.reference.cross_entropy_backward` (laid out as
    ``(N, C·P)``, one row per batch element) and ``z = x·W2ᵀ + b`` (``W2`` the weight as a
    ``(C·P, in)`` matrix), the chain rule for a matmul gives
    ``grad_input = G·W2`` (``(N, in)``: each logit's gradient times its weight row),
    ``grad_linear_weight = Gᵀ·x`` (``(C·P, in)``, reshaped to ``linear_weight``'s shape),
    ``grad_linear_bias = Σ_n G[n]`` (reshaped to the bias' shape; ``None`` without a bias).
    Unbatched input is the ``N = 1`` case. Shapes equal the arguments'. ``grad_output`` has
    the forward output's shape. Gradients w.r.t. parameters a caller froze are still returned:
    freezing changes nothing in the others (no term couples them).
    """
    plan = _linear_plan(input, linear_weight, target, linear_bias, weight, ignore_index)
    g_z = _grad_logits(grad_output, plan, reduction, label_smoothing)
    x = plan["x"].astype(np.float64)
    x_rows = x.reshape(-1, x.shape[-1])              # (N, in); unbatched: (1, in)
    g_rows = g_z.reshape(x_rows.shape[0], plan["w2"].shape[0])  # (N, C·P): one element a row
    with np.errstate(**_ERRSTATE):
        # ∂L/∂x[n, i] = Σ_j G[n, j]·W2[j, i]  (z[n, j] = Σ_i x[n, i]·W2[j, i] + b[j])
        grad_input = (g_rows @ plan["w2"]).reshape(x.shape)
        # ∂L/∂W2[j, i] = Σ_n G[n, j]·x[n, i]
        grad_weight = (g_rows.T @ x_rows).reshape(plan["w_shape"])
        # ∂L/∂b[j] = Σ_n G[n, j]
        grad_bias = None if plan["b"] is None else np.sum(g_rows, axis=0).reshape(plan["b"].shape)
    return grad_input, grad_weight, grad_bias


def linear_cross_entropy_logits_backward(grad_output, input, linear_weight, target,
                                         linear_bias=None, weight=None, reduction="mean",
                                         ignore_index=None, label_smoothing=0.0) -> np.ndarray:
    """``∂loss/∂z`` at the logits, shape ``(*batch, C, d1..dK)``: what every chunk must form
    before its two matmuls (used by the error scales and the accuracy study)."""
    plan = _linear_plan(input, linear_weight, target, linear_bias, weight, ignore_index)
    return _grad_logits(grad_output, plan, reduction, label_smoothing)


def linear_cross_entropy_target_backward(grad_output, input, linear_weight, target,
                                         linear_bias=None, weight=None, reduction="mean",
                                         ignore_index=None, label_smoothing=0.0) -> np.ndarray:
    """∂/∂target for a probability target: cross_entropy's ``−lp·w·(1−ε)·s_i`` at the logits;
    float64, the target's shape. Class-index targets have no gradient: TypeError."""
    plan = _linear_plan(input, linear_weight, target, linear_bias, weight, ignore_index)
    return cross_entropy_target_backward(grad_output, plan["z"], plan["t"],
                                         **_ce_kwargs(plan, reduction, label_smoothing))
