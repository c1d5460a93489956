"""cross_entropy that spreads the smoothing mass ε over the C − 1 other classes.

Bug: the smoothed target is ``(1−ε)·onehot + ε/(C−1)·(1 − onehot)`` (another convention in
circulation) where torch's ``label_smoothing`` means ``(1−ε)·onehot + ε/C`` on every class.
Modelled on: k2-fsa/icefall#107 (ESPnet-style LabelSmoothing uses K − 1, not K, and disagrees
with torch's) and the ``smoothing / (classes - 1)`` recipe in pytorch/pytorch#7455.
Should be caught by: the forward property for cross_entropy with label_smoothing, and the
identity "label smoothing == cross entropy on smoothed probability targets".
"""

from lossproofs.broken._common import control, version
from lossproofs.broken._smoothed_ce import smoothed_cross_entropy
from lossproofs.broken._torch import *  # noqa: F403  (torch for every other function)

__version__ = version()


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    return smoothed_cross_entropy(input, target, weight, ignore_index, reduction,
                                  label_smoothing, other_classes_only=not control())  # BUG
