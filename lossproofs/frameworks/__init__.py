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

from lossproofs.declarations import MEANING

# The parameter families a framework module's NOT_PROVIDED and CONVENTIONS may name: the one
# list of lossproofs.declarations (which also says which apply to which function).
FAMILIES = frozenset(MEANING)

FRAMEWORK_MODULES = {
    "jax": "lossproofs.frameworks.jax_losses",
    "tensorflow": "lossproofs.frameworks.tensorflow_losses",
    "tinygrad": "lossproofs.frameworks.tinygrad_losses",
}
