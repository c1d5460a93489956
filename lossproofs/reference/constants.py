"""torch's constants that the references reproduce, and where they deliberately differ."""

from __future__ import annotations

# torch's BCE constants (the −100 log clamp, the float32(1e-12) gradient floor) live with the
# other dtype facts; re-exported here for the reference.
from lossproofs.dtypes import BCE_EPSILON, BCE_LOG_CLAMP  # noqa: F401

DELIBERATE_DIVERGENCES: dict[str, dict[str, str]] = {
    "cross_entropy.label_smoothing": {
        "inputs": "label_smoothing < 0 or label_smoothing is NaN",
        "torch": "silently treated as label_smoothing = 0 (no error)",
        "reference": "ValueError naming label_smoothing and its value",
        "upstream": "https://github.com/pytorch/pytorch/issues/134767",
        "functions": "cross_entropy, cross_entropy_backward, cross_entropy_target_backward, "
                     "cross_entropy_hvp",
    },
}
"""Where the reference deliberately does NOT do what torch does, keyed by ``function.argument``.

Tests look up this table to record torch's behaviour as a strict xfail rather than a pass."""

MIRRORED_TORCH_QUIRKS: dict[str, dict[str, str]] = {
    "nll_loss.uint8_target_k_dim": {
        "inputs": "uint8 class-index target with an (N, C, d1..dk) input",
        "torch": "RuntimeError: expected scalar type Long but found Byte",
        "reference": "the same RuntimeError",
    },
}
"""Surprising torch rejections the reference reproduces on purpose (so tests agree on them)."""
