"""Each function under test, described once: its strategy, reference, gradients and arguments.

Generic tests (and the conformance report) iterate over :data:`SPECS` instead of repeating
themselves per loss, in the spirit of PyTorch's OpInfo, without its size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hypothesis import strategies as st

from lossproofs import strategies
from lossproofs.cases import Case


@dataclass(frozen=True)
class FunctionSpec:
    """What the suite knows about one function.

    - ``name``: the name in ``lossproofs.reference`` and in ``torch.nn.functional``.
    - ``cases(dtype)``: hypothesis strategy of ordinary :class:`Case` s.
    - ``differentiable_target``: the loss is differentiable in a *floating* target
      (``<name>_target_backward`` exists in the reference).
    - ``reduces``: takes a ``reduction`` argument.
    - ``has_hvp``: the reference has a closed-form Hessian-vector product ``<name>_hvp``.
    - ``coupled_gradient``: gradient elements share terms across the array (softmax's Σ, the
      mean's denominator), so their absolute error scales with the largest of them; otherwise
      each element depends on its own input alone and is compared on its own.
    """

    name: str
    cases: Callable[[str | None], st.SearchStrategy[Case]]
    differentiable_target: bool = False
    reduces: bool = True
    has_hvp: bool = False
    coupled_gradient: bool = True

    @property
    def backward_name(self) -> str:
        return f"{self.name}_backward"

    @property
    def target_backward_name(self) -> str:
        return f"{self.name}_target_backward"


def _cases(name: str) -> Callable[[str | None], st.SearchStrategy[Case]]:
    return lambda dtype=None: strategies.cases(name, dtype)


SPECS: dict[str, FunctionSpec] = {
    spec.name: spec
    for spec in (
        FunctionSpec("softmax", _cases("softmax"), reduces=False),
        FunctionSpec("log_softmax", _cases("log_softmax"), reduces=False),
        FunctionSpec("logsumexp", _cases("logsumexp"), reduces=False),
        FunctionSpec("nll_loss", _cases("nll_loss")),
        FunctionSpec("cross_entropy", _cases("cross_entropy"), differentiable_target=True,
                     has_hvp=True),
        FunctionSpec("binary_cross_entropy", _cases("binary_cross_entropy"),
                     differentiable_target=True, coupled_gradient=False),
        FunctionSpec("binary_cross_entropy_with_logits",
                     _cases("binary_cross_entropy_with_logits"), differentiable_target=True,
                     has_hvp=True, coupled_gradient=False),
    )
}

FUNCTION_NAMES = tuple(SPECS)
