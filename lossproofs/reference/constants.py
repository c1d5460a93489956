"""torch's constants that the references reproduce.

Where the reference deliberately does not do what torch does (a negative or NaN
``label_smoothing``, which torch silently treats as 0) is a ledger entry
(``lossproofs/ledger/torch.py``); the one surprising torch rejection it mirrors on purpose (uint8
targets with K-dim input) is the error case "uint8 target with K-dim input" of
:mod:`lossproofs.error_cases`.
"""

from __future__ import annotations

# torch's BCE constants (the −100 log clamp, the float32(1e-12) gradient floor) live with the
# other dtype facts; re-exported here for the reference.
from lossproofs.dtypes import BCE_EPSILON, BCE_LOG_CLAMP  # noqa: F401
