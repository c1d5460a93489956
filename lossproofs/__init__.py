"""lossproofs: citable evidence that loss functions are what they claim to be.

Subpackages and modules, one job each:

- :mod:`lossproofs.reference`: float64 NumPy references with ``torch.nn.functional``'s
  names, arguments and errors, and their closed-form gradients.
- :mod:`lossproofs.strategies`: hypothesis strategies for logits, targets, weights, shapes.
- :mod:`lossproofs.tolerances`: the one tolerance table, per dtype, with justifications.
- :mod:`lossproofs.targets`: the implementation under test (torch functional by default).
- :mod:`lossproofs.environment`: what every written result records about its machine.
"""

__version__ = "0.1.0"
