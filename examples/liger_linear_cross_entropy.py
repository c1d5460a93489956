"""Liger-Kernel's fused linear cross-entropy (Triton, CUDA) as a lossproofs user module.

On a machine with a CUDA GPU and ``pip install liger-kernel``:

    PYTHONPATH=examples lossproofs test --target module:liger_linear_cross_entropy \\
        -k linear_cross_entropy

``linear_cross_entropy`` has ``torch.nn.functional.linear_cross_entropy``'s signature and calls
Liger-Kernel's public functional API,
``liger_kernel.transformers.functional.liger_fused_linear_cross_entropy(input, weight, target,
bias, ce_weight, ignore_index, lse_square_scale, label_smoothing, reduction, ...)`` (no z-loss,
no softcap: plain cross-entropy), on the GPU; the loss comes back to the CPU in the input's
dtype (Liger returns float32). Liger takes a ``(BT, H)`` input, a ``(V, H)`` weight and ``(BT,)``
class indices: an unbatched ``(H,)`` input is passed as one row; probability targets and K-dim
weights it does not take (``NOT_PROVIDED``). Class weights, ``ignore_index``, label smoothing
and the three reductions are passed through.

Without the package or a GPU there is no ``linear_cross_entropy`` here, and the suite skips its
tests with the reason (``UNSUPPORTED_CHECKS["linear_cross_entropy"]``). Not run by this project
yet: the machine that wrote it has no GPU.
"""

from __future__ import annotations

try:  # a checkout: ``module:examples.liger_linear_cross_entropy``
    from examples import _fused_linear_ce as glue
except ImportError:  # the file copied next to _fused_linear_ce.py
    import _fused_linear_ce as glue

KERNEL = "liger_kernel.transformers.functional", "liger_fused_linear_cross_entropy"
INSTALL = "pip install liger-kernel"
DEVICE = "cuda"

__version__ = glue.version("liger-kernel")

NOT_PROVIDED: dict[str, dict[str, str]] = {
    "linear_cross_entropy": {
        "probability target": "Liger's fused linear cross-entropy takes class indices only "
                              "(target: (BT,), values in [0, V-1])",
        "k-dim": "Liger's weight is (V, H): no K-dimensional linear_weight",
    },
}
CONVENTIONS: dict[str, dict[str, str]] = {}


def adapter(kernel, device: str = DEVICE):
    """torch's ``linear_cross_entropy`` on top of ``kernel`` (Liger's functional, or a stand-in
    with its signature) run on ``device``."""

    def linear_cross_entropy(input, linear_weight, target, linear_bias=None, weight=None,
                             reduction="mean", ignore_index=None, label_smoothing=0.0):
        glue.check_provided("Liger-Kernel", NOT_PROVIDED["linear_cross_entropy"],
                            **{"probability target": target.is_floating_point(),
                               "k-dim": linear_weight.dim() > 2})
        x, t = glue.as_batch(input, target)
        x, w, t, b, class_weight = glue.on_device(device, x, linear_weight, t, linear_bias,
                                                  weight)
        loss = kernel(x, w, t, b, ce_weight=class_weight,
                      ignore_index=glue.ignore_index_of(ignore_index),
                      label_smoothing=label_smoothing, reduction=reduction)
        return glue.result(loss, input, reduction)

    return linear_cross_entropy


UNSUPPORTED_CHECKS: dict[str, str] = dict(glue.OUT_OF_RANGE_CHECKS)
glue.export(globals(), KERNEL, INSTALL, adapter)
