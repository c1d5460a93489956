"""Apple's Cut Cross-Entropy (``cut_cross_entropy.linear_cross_entropy``) as a lossproofs user
module.

On a machine with a CUDA GPU (Ampere or newer; the package also needs Triton) and the package
(``pip install "cut-cross-entropy @ git+https://github.com/apple/ml-cross-entropy.git"``):

    PYTHONPATH=examples lossproofs test --target module:cce_linear_cross_entropy \\
        -k linear_cross_entropy

``linear_cross_entropy`` has ``torch.nn.functional.linear_cross_entropy``'s signature and calls
the package's public function ``linear_cross_entropy(e, c, targets, bias=None,
ignore_index=-100, softcap=None, reduction="mean", ..., impl=...)`` with the classifier ``c``
the ``(V, D)`` linear weight, on the GPU; the loss comes back to the CPU in the input's dtype.
``impl`` is :data:`IMPL`, from ``LOSSPROOFS_CCE_IMPL`` (default ``cce``, the package's default:
its gradient filter skips the entries of the gradient below ``filter_eps="auto"``; ``cce_exact``
turns the filter off; ``torch_compile`` runs without a GPU). An unbatched ``(D,)`` input is
passed as one row (the package's ``shift`` check reads ``targets.size(-1)``, which a 0-d target
does not have). The package has no class weights, no label smoothing, no probability targets
and no K-dim classifier (``NOT_PROVIDED``).

The module is not named ``cut_cross_entropy``: with ``PYTHONPATH=examples`` it would shadow
the package it wraps.

Without the package (or, for the ``cce*`` implementations, a GPU) there is no
``linear_cross_entropy`` here, and the suite skips its tests with the reason
(``UNSUPPORTED_CHECKS["linear_cross_entropy"]``). Not run by this project yet: the machine that
wrote it has no GPU.
"""

from __future__ import annotations

import os

try:  # a checkout: ``module:examples.cce_linear_cross_entropy``
    from examples import _fused_linear_ce as glue
except ImportError:  # the file copied next to _fused_linear_ce.py
    import _fused_linear_ce as glue

KERNEL = "cut_cross_entropy", "linear_cross_entropy"
INSTALL = 'pip install "cut-cross-entropy @ git+https://github.com/apple/ml-cross-entropy.git"'
# The package's implementations: "cce" (its default), "cce_exact", "cce_kahan",
# "cce_kahan_full_c", "cce_kahan_full_e", "torch_compile" (CPU too).
IMPL = os.environ.get("LOSSPROOFS_CCE_IMPL", "cce")
DEVICE = "cpu" if IMPL == "torch_compile" else "cuda"

__version__ = f"{glue.version('cut-cross-entropy')}, impl={IMPL}"

_NO = "cut_cross_entropy.linear_cross_entropy has no "
NOT_PROVIDED: dict[str, dict[str, str]] = {
    "linear_cross_entropy": {
        "weight": _NO + "class-weight parameter",
        "label_smoothing": _NO + "label_smoothing parameter",
        "probability target": _NO + "probability targets (targets are class indices)",
        "k-dim": _NO + "K-dimensional classifier: c is (NumClasses, D)",
    },
}
CONVENTIONS: dict[str, dict[str, str]] = {}


def adapter(kernel, device: str = DEVICE, impl: str = IMPL):
    """torch's ``linear_cross_entropy`` on top of ``kernel`` (the package's function, or a
    stand-in with its signature) run on ``device`` with implementation ``impl``."""

    def linear_cross_entropy(input, linear_weight, target, linear_bias=None, weight=None,
                             reduction="mean", ignore_index=None, label_smoothing=0.0):
        glue.check_provided("cut_cross_entropy", NOT_PROVIDED["linear_cross_entropy"],
                            weight=weight is not None, label_smoothing=label_smoothing != 0,
                            **{"probability target": target.is_floating_point(),
                               "k-dim": linear_weight.dim() > 2})
        e, t = glue.as_batch(input, target)
        e, c, t, b = glue.on_device(device, e, linear_weight, t, linear_bias)
        loss = kernel(e, c, t, bias=b, ignore_index=glue.ignore_index_of(ignore_index),
                      reduction=reduction, impl=impl)
        return glue.result(loss, input, reduction)

    return linear_cross_entropy


UNSUPPORTED_CHECKS: dict[str, str] = dict(glue.OUT_OF_RANGE_CHECKS) if DEVICE == "cuda" else {}
glue.export(globals(), KERNEL, INSTALL, adapter, needs_cuda=DEVICE == "cuda")
