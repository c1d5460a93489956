"""Other frameworks' loss functions as lossproofs targets.

One user module per framework (``--target module:lossproofs.frameworks.jax_losses``,
``...tensorflow_losses``, ``...tinygrad_losses``), each computing with that framework's own
functions in the input's dtype on the CPU, gradients through its own autodiff (the bridge in
:mod:`._bridge`). Each module declares what it does not provide (``NOT_PROVIDED``) and where the
framework's convention differs from torch's on purpose (``CONVENTIONS``);
:mod:`.findings` lists the divergences from the mathematics found with them.

The modules import their framework on import: a missing package is an ``ImportError``.
"""

from __future__ import annotations

# The parameter families (case tags, and reduction:<value>) that a framework module's
# NOT_PROVIDED and CONVENTIONS may name.
FAMILIES = frozenset({
    "weight", "ignore_index", "label_smoothing", "probability target", "k-dim", "unbatched",
    "uint8 target", "pos_weight", "empty", "0-d", "single class", "non-contiguous",
    "reduction:none", "reduction:sum", "reduction:mean", "clamp",
})

FRAMEWORK_MODULES = {
    "jax": "lossproofs.frameworks.jax_losses",
    "tensorflow": "lossproofs.frameworks.tensorflow_losses",
    "tinygrad": "lossproofs.frameworks.tinygrad_losses",
}
