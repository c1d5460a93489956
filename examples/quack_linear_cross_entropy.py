"""quack's chunked linear cross-entropy (CuTe DSL, Hopper/Blackwell GPUs) as a lossproofs user
module.

On a machine with a supported GPU (quack's README: H100, B200/B300 or RTX 50) and
``pip install quack-kernels``:

    PYTHONPATH=examples lossproofs test --target module:quack_linear_cross_entropy \\
        -k linear_cross_entropy

``linear_cross_entropy`` has ``torch.nn.functional.linear_cross_entropy``'s signature and calls
``quack.linear_cross_entropy.chunked_linear_cross_entropy(x, weight, target, chunk_size=4096,
ignore_index=-100, reduction="mean")`` on the GPU; the loss comes back to the CPU in the input's
dtype. That function takes ``(B·L, d)`` rows, a ``(V, d)`` weight and ``(B·L,)`` class indices,
reduces by ``mean`` or ``sum`` only, and has no bias, class weights or label smoothing
(``NOT_PROVIDED``); its cross-entropy kernel takes float16, bfloat16 and float32 (float64 is
refused here with that reason). Its GEMMs use TMA, so it asserts ``B·L % 8 == 0``; the adapter
pads every dimension to a multiple of 8, exactly (:func:`padded`):

- rows: extra rows of zeros whose target is ``ignore_index`` (loss 0, gradient 0; ``mean``
  divides by the kept targets, which the padding does not add to);
- features: extra columns of zeros (``x·w`` unchanged: each added term is ``0·0``);
- classes: extra classes whose logit is exactly ``MASK_LOGIT`` = −2¹⁵ through one more feature
  column (1 in every row of ``x``, 0 for the real classes, −2¹⁵ for the padding ones), so their
  probability ``exp(−2¹⁵ − lse)`` is 0 in float32 whenever the largest real logit exceeds
  about −32 600: they change neither the log-sum-exp nor any gradient.

The padding is torch operations on the caller's tensors, so autograd slices the gradients back.
With the suite's batches (N ≤ 7) one chunk runs. quack's backward scales the gradients it saved
in the forward in place (``dx.mul_``); Dao-AILab/quack PR #209 (open) reports that a second
backward through one graph then fails: the suite's retain_graph test is expected to show it.

Without the package or a GPU there is no ``linear_cross_entropy`` here, and the suite skips its
tests with the reason (``UNSUPPORTED_CHECKS["linear_cross_entropy"]``). Not run by this project
yet: the machine that wrote it has no GPU.
"""

from __future__ import annotations

import torch

try:  # a checkout: ``module:examples.quack_linear_cross_entropy``
    from examples import _fused_linear_ce as glue
except ImportError:  # the file copied next to _fused_linear_ce.py
    import _fused_linear_ce as glue

KERNEL = "quack.linear_cross_entropy", "chunked_linear_cross_entropy"
INSTALL = "pip install quack-kernels"
DEVICE = "cuda"
ALIGN = 8  # quack asserts B·L % 8 == 0 (TMA): rows, features and classes are padded to this
MASK_LOGIT = -(2.0**15)  # exact in float16 and bfloat16; exp(MASK_LOGIT − lse) = 0 in float32

__version__ = glue.version("quack-kernels")

_NO = "quack's chunked_linear_cross_entropy has no "
NOT_PROVIDED: dict[str, dict[str, str]] = {
    "linear_cross_entropy": {
        "linear_bias": _NO + "bias argument",
        "weight": _NO + "class weights",
        "label_smoothing": _NO + "label smoothing",
        "probability target": _NO + "probability targets (targets are class indices)",
        "k-dim": _NO + "K-dimensional weight: it is (V, d)",
        "reduction:none": "quack's chunked_linear_cross_entropy reduces by mean or sum only "
                          "(it raises ValueError for 'none')",
    },
}
CONVENTIONS: dict[str, dict[str, str]] = {}
DTYPES = (torch.float16, torch.bfloat16, torch.float32)  # quack/cross_entropy.py asserts these


def _round_up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def padded(x: torch.Tensor, w: torch.Tensor, t: torch.Tensor, ignore_index: int):
    """``(x', w', t')`` with every dimension a multiple of :data:`ALIGN` and the same loss and
    (sliced back by autograd) the same gradients; see the module docstring."""
    n, d = x.shape
    v = w.shape[0]
    n_pad, v_pad = _round_up(n) - n, _round_up(v) - v
    mask_column = v_pad > 0  # one more feature carries the padding classes' logit
    d_pad = _round_up(d + mask_column) - d
    x, w = torch.nn.functional.pad(x, (0, d_pad)), torch.nn.functional.pad(w, (0, d_pad))
    if mask_column:
        # x'[:, d] = 1 and w'[real, d] = 0: the real logits gain one exact 0·… = 0 term.
        x = torch.cat([x[:, :d], torch.ones_like(x[:, :1]), x[:, d + 1:]], dim=1)
        # the padding classes: w'[c, d] = −2¹⁵, every other entry 0, so z_c = −2¹⁵ exactly
        extra = torch.zeros(v_pad, w.shape[1], dtype=w.dtype, device=w.device)
        extra[:, d] = MASK_LOGIT
        w = torch.cat([w, extra])
    # the padding rows: x = 0 and target ignore_index, so loss 0 and gradient 0
    x = torch.nn.functional.pad(x, (0, 0, 0, n_pad))
    t = torch.cat([t, t.new_full((n_pad,), ignore_index)])
    return x, w, t


def adapter(kernel, device: str = DEVICE):
    """torch's ``linear_cross_entropy`` on top of ``kernel`` (quack's function, or a stand-in
    with its signature) run on ``device``."""

    def linear_cross_entropy(input, linear_weight, target, linear_bias=None, weight=None,
                             reduction="mean", ignore_index=None, label_smoothing=0.0):
        glue.check_provided("quack", NOT_PROVIDED["linear_cross_entropy"],
                            linear_bias=linear_bias is not None, weight=weight is not None,
                            label_smoothing=label_smoothing != 0,
                            **{"probability target": target.is_floating_point(),
                               "k-dim": linear_weight.dim() > 2,
                               "reduction:none": reduction == "none"})
        if input.dtype not in DTYPES:
            raise NotImplementedError(f"quack: {input.dtype}: its cross-entropy kernel takes "
                                      f"{', '.join(map(str, DTYPES))} only")
        ignore = glue.ignore_index_of(ignore_index)
        x, t = glue.as_batch(input, target)
        x, w, t = glue.on_device(device, x, linear_weight, t)
        loss = kernel(*padded(x, w, t, ignore), ignore_index=ignore, reduction=reduction)
        return glue.result(loss, input, reduction)

    return linear_cross_entropy


UNSUPPORTED_CHECKS: dict[str, str] = dict(glue.OUT_OF_RANGE_CHECKS)
glue.export(globals(), KERNEL, INSTALL, adapter)
