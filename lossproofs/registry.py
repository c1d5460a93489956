"""Every function under test, declared once: the registry the whole suite derives from.

One :class:`Loss` per function (in the spirit of PyTorch's OpInfo, without its size) says what
the suite knows about it: its torch counterpart and ``nn`` module, its float64 reference and
closed-form gradients, its exact oracle, its ordinary and extreme input strategies, its error
and special-value cases, its tolerance and ULP rows, its error-floor model, and which identity
and second-order checks apply. Every list of functions (the targets', the tests', the reports',
the teeth's) is :data:`FUNCTION_NAMES` or a filter of :data:`LOSSES`.

A missing piece is an error when this module is imported, never a silent default:
:func:`_check_complete` looks each one up. Adding a loss means writing its reference (with
tests), its oracle, its strategy and one :class:`Loss` entry here — and the import tells you
what else is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from lossproofs import oracle, reference, strategies
from lossproofs.cases import DTYPES, Case
from lossproofs.declarations import ARGUMENTS, DECLARABLE
from lossproofs.error_cases import ERROR_CASES
from lossproofs.oracle import linear as linear_oracle
from lossproofs.special_cases import SPECIAL_CASES
from lossproofs.strategies import extreme
from lossproofs.strategies.linear import linear_cross_entropy_cases
from lossproofs.tolerances import TOLERANCES, ULP_BOUNDS

DIRECTIONS = ("forward", "gradient")
# Argument families: which inputs a function takes, hence which error-floor model, which
# extreme strata and which parameter families apply.
KINDS = ("softmax", "index", "binary", "linear")
# The exact oracle's module per kind (default: lossproofs.oracle).
_ORACLE_MODULES = {"linear": linear_oracle}


def _piece(key: str, optional: bool = False, doc: str = "") -> Any:
    """A read-only :class:`Loss` attribute: the piece ``key`` that :func:`_check_complete` looked
    up once (``optional``: None where the function has none)."""
    if optional:
        return property(lambda self: self.resolved.get(key), doc=doc or None)
    return property(lambda self: self.resolved[key], doc=doc or None)


@dataclass(frozen=True)
class Loss:
    """What the suite knows about one function.

    - ``name``: the name in :mod:`lossproofs.reference`, :mod:`lossproofs.oracle` and
      ``torch.nn.functional`` (``torch.logsumexp`` for ``logsumexp``).
    - ``kind``: ``"softmax"`` (one array and a ``dim``), ``"index"`` (logits and class-index
      or class-probability targets) or ``"binary"`` (probabilities or logits and a target of
      the same shape): selects the error-floor model and the extreme strata.
    - ``torch``: torch's functional form; ``nn``: the same call through the ``torch.nn`` module
      API, or None with ``nn_missing`` saying why.
    - ``reduces``: takes a ``reduction``; ``differentiable_target``: differentiable in a
      floating target (``<name>_target_backward`` exists); ``has_hvp``: a closed-form
      Hessian-vector product ``<name>_hvp`` exists.
    - ``coupled_gradient``: gradient elements share terms across the array (softmax's Σ, a
      mean's denominator), so their absolute error scales with the largest of them; otherwise
      each element is compared on its own.
    - ``keyword``: a pytest ``-k`` expression selecting this function's tests (names overlap:
      ``cross_entropy`` is part of ``binary_cross_entropy``).
    - ``arguments``: the names of the positional array arguments (what a reproduction calls
      them); ``gradient_arguments``: the arguments whose gradients are checked (``"target"``
      is added for floating targets of a ``differentiable_target``).
    - ``generic_checks``: False when the generic per-function tests (test_forward,
      test_gradients, test_second_order, test_degenerate, test_accuracy, the accuracy report's
      extreme strata) cannot run it yet, with ``generic_missing`` saying why and where its
      own tests are; every other list of functions still includes it.
    - ``strategy``: the ordinary :class:`~lossproofs.cases.Case` strategy ``strategy(dtype)``
      when it is not :func:`lossproofs.strategies.cases`'.
    """

    name: str
    kind: str
    torch: Callable[..., Any]
    keyword: str
    nn: Callable[..., Any] | None = None
    nn_missing: str = ""
    reduces: bool = True
    differentiable_target: bool = False
    has_hvp: bool = False
    coupled_gradient: bool = True
    arguments: tuple[str, ...] = ("input", "target")
    gradient_arguments: tuple[str, ...] = ("input",)
    generic_checks: bool = True
    generic_missing: str = ""
    strategy: Callable[..., st.SearchStrategy[Case]] | None = None
    resolved: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- the pieces, looked up once by _check_complete ------------------------------------------
    reference = _piece("reference")
    backward = _piece("backward")
    target_backward = _piece("target_backward", optional=True)
    hvp = _piece("hvp", optional=True)
    oracle = _piece("oracle")
    oracle_backward = _piece("oracle_backward")
    strata = _piece("strata", doc="The extreme-input strata of :mod:`lossproofs.strategies."
                                  "extreme` for this function.")

    def cases(self, dtype: str | None = None,
              exclude: frozenset[str] = frozenset()) -> st.SearchStrategy[Case]:
        """The ordinary :class:`~lossproofs.cases.Case` strategy (any dtype when None), never
        drawing the families in ``exclude`` (:mod:`lossproofs.declarations`)."""
        if self.strategy is not None:
            return self.strategy(dtype, exclude=frozenset(exclude))
        return strategies.cases(self.name, dtype, exclude)


# -- the nn module API in functional signatures ---------------------------------------------------
def _nn_softmax(input, dim, dtype=None):
    return torch.nn.Softmax(dim)(input if dtype is None else input.to(dtype))


def _nn_log_softmax(input, dim, dtype=None):
    return torch.nn.LogSoftmax(dim)(input if dtype is None else input.to(dtype))


def _nn_nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    return torch.nn.NLLLoss(weight=weight, ignore_index=ignore_index, reduction=reduction)(
        input, target)


def _nn_cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean",
                      label_smoothing=0.0):
    return torch.nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_index,
                                     reduction=reduction, label_smoothing=label_smoothing)(
        input, target)


def _nn_binary_cross_entropy(input, target, weight=None, reduction="mean"):
    return torch.nn.BCELoss(weight=weight, reduction=reduction)(input, target)


def _nn_binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean",
                                         pos_weight=None):
    return torch.nn.BCEWithLogitsLoss(weight=weight, reduction=reduction,
                                      pos_weight=pos_weight)(input, target)


def nn_linear_cross_entropy(options=None) -> Callable[..., Any]:
    """``nn.LinearCrossEntropyLoss`` in the functional signature: a module is built per call
    with the arguments' shapes, and the caller's ``linear_weight``/``linear_bias`` are swapped
    in for its parameters (``torch.func.functional_call``), so gradients reach the caller's
    tensors. The module stores the weight flat, ``(C·P, in)``, as its forward expects.
    ``options(input)`` gives the chunked path's options (None: the reference path)."""
    def linear_cross_entropy(input, linear_weight, target, linear_bias=None, weight=None,
                             reduction="mean", ignore_index=None, label_smoothing=0.0):
        num_classes, *out_features, in_features = linear_weight.shape
        module = torch.nn.LinearCrossEntropyLoss(
            in_features, num_classes, out_features=tuple(out_features),
            bias=linear_bias is not None,
            # the caller's tensors replace the parameters: an integer weight is bad input for
            # the forward to reject, not for the module's constructor
            dtype=linear_weight.dtype if linear_weight.is_floating_point() else None,
            reduction=reduction,
            weight=weight, ignore_index=ignore_index, label_smoothing=label_smoothing,
            options=None if options is None else options(input))
        params = {"linear.weight": linear_weight.reshape(-1, in_features)}
        if linear_bias is not None:
            params["linear.bias"] = linear_bias.reshape(-1)
        return torch.func.functional_call(module, params, (input, target))
    linear_cross_entropy.__qualname__ = "nn"
    return linear_cross_entropy


def _torch_logsumexp(input, dim, keepdim=False):
    # torch.nn.functional has no logsumexp; torch.logsumexp is its functional form.
    return torch.logsumexp(input, dim, keepdim=keepdim)


LOSSES: dict[str, Loss] = {loss.name: loss for loss in (
    Loss("softmax", "softmax", F.softmax, "(softmax and not log_softmax)", nn=_nn_softmax,
         reduces=False),
    Loss("log_softmax", "softmax", F.log_softmax, "log_softmax", nn=_nn_log_softmax,
         reduces=False),
    Loss("logsumexp", "softmax", _torch_logsumexp, "logsumexp",
         nn_missing="torch.nn has no LogSumExp module", reduces=False),
    Loss("nll_loss", "index", F.nll_loss, "nll_loss", nn=_nn_nll_loss),
    Loss("cross_entropy", "index", F.cross_entropy,
         "(cross_entropy and not binary_cross_entropy and not linear_cross_entropy)",
         nn=_nn_cross_entropy,
         differentiable_target=True, has_hvp=True),
    Loss("binary_cross_entropy", "binary", F.binary_cross_entropy,
         "(binary_cross_entropy and not with_logits)", nn=_nn_binary_cross_entropy,
         differentiable_target=True, coupled_gradient=False),
    Loss("binary_cross_entropy_with_logits", "binary", F.binary_cross_entropy_with_logits,
         "binary_cross_entropy_with_logits", nn=_nn_binary_cross_entropy_with_logits,
         differentiable_target=True, has_hvp=True, coupled_gradient=False),
    # options=None (the default) is torch's reference path, linear then cross_entropy; the
    # chunked path is the built-in target "chunked" (lossproofs.targets).
    # torch < 2.13 has no F.linear_cross_entropy: its tests then skip with that reason
    # (lossproofs.targets.linear.MISSING_REASON) instead of the import failing.
    Loss("linear_cross_entropy", "linear", getattr(F, "linear_cross_entropy", None),
         "linear_cross_entropy",
         nn=nn_linear_cross_entropy(), differentiable_target=True,
         arguments=("input", "linear_weight", "target"),
         gradient_arguments=("input", "linear_weight", "linear_bias"),
         generic_checks=False,
         generic_missing="the generic checks compare one input gradient at the error model's "
                         "floors; linear_cross_entropy has three gradients compared at the "
                         "matmul's error scales (checks.linear_error_scales) by "
                         "lossproofs/suite/test_linear_cross_entropy.py, and its accuracy "
                         "against the exact oracle is lossproofs.oracle.linear's study",
         strategy=linear_cross_entropy_cases),
)}

FUNCTION_NAMES: tuple[str, ...] = tuple(LOSSES)


class IncompleteDeclaration(ImportError):
    """A registered function lacks a piece the suite needs (raised at import)."""


def _required(loss: Loss, module: Any, attribute: str, what: str) -> Any:
    value = getattr(module, attribute, None)
    if not callable(value):
        raise IncompleteDeclaration(
            f"{loss.name}: {what} {module.__name__}.{attribute} is missing")
    return value


def _check_complete(loss: Loss) -> None:
    """Look up every piece of ``loss``; raise :class:`IncompleteDeclaration` for a missing one."""
    if loss.kind not in KINDS:
        raise IncompleteDeclaration(f"{loss.name}: kind {loss.kind!r} is not one of {KINDS}")
    if loss.nn is None and not loss.nn_missing:
        raise IncompleteDeclaration(f"{loss.name}: no nn module and no nn_missing reason")
    if not loss.generic_checks and not loss.generic_missing:
        raise IncompleteDeclaration(
            f"{loss.name}: generic_checks=False without a generic_missing reason")
    if loss.arguments != ARGUMENTS.get(loss.name):
        raise IncompleteDeclaration(
            f"{loss.name}: arguments {loss.arguments} differ from lossproofs.declarations."
            f"ARGUMENTS ({ARGUMENTS.get(loss.name)})")
    if loss.gradient_arguments[:1] != ("input",):
        raise IncompleteDeclaration(
            f"{loss.name}: gradient_arguments {loss.gradient_arguments} must start with 'input'")
    r = loss.resolved
    r["reference"] = _required(loss, reference, loss.name, "reference")
    r["backward"] = _required(loss, reference, f"{loss.name}_backward", "closed-form gradient")
    for flag, suffix in ((loss.differentiable_target, "target_backward"),
                         (loss.has_hvp, "hvp")):
        present = callable(getattr(reference, f"{loss.name}_{suffix}", None))
        if flag and not present:
            raise IncompleteDeclaration(
                f"{loss.name}: declared with a {suffix} but reference.{loss.name}_{suffix} "
                "is missing")
        if present and not flag:
            raise IncompleteDeclaration(
                f"{loss.name}: reference.{loss.name}_{suffix} exists but the declaration "
                "does not say so")
        if flag:
            r[suffix] = getattr(reference, f"{loss.name}_{suffix}")
    exact = _ORACLE_MODULES.get(loss.kind, oracle)
    r["oracle"] = _required(loss, exact, loss.name, "exact oracle")
    r["oracle_backward"] = _required(loss, exact, f"{loss.name}_backward", "exact gradient")
    try:
        loss.cases()
        r["strata"] = (tuple(linear_oracle.strata()) if loss.kind == "linear"
                       else tuple(extreme.strata_for(loss.name)))
    except (KeyError, ValueError) as e:
        raise IncompleteDeclaration(f"{loss.name}: no input strategy ({e!r})") from e
    for dtype in DTYPES:
        for direction in DIRECTIONS:
            if (dtype, direction) not in TOLERANCES:
                raise IncompleteDeclaration(f"no tolerance row for ({dtype}, {direction})")
            if (loss.name, dtype, direction) not in ULP_BOUNDS:
                raise IncompleteDeclaration(
                    f"{loss.name}: no ULP bound for ({dtype}, {direction})")
    for cases, what in ((ERROR_CASES, "error case"), (SPECIAL_CASES, "special-value case")):
        if not any(c.function == loss.name for c in cases):
            raise IncompleteDeclaration(f"{loss.name}: no {what}")


for _loss in LOSSES.values():
    _check_complete(_loss)
if FUNCTION_NAMES != tuple(DECLARABLE):  # one order everywhere (reports seed by position)
    raise IncompleteDeclaration(f"the registry's functions {FUNCTION_NAMES} differ from "
                                f"lossproofs.declarations.DECLARABLE's {tuple(DECLARABLE)}")


def loss(name: str) -> Loss:
    """The declaration of ``name``; a clear error for a name that is not registered."""
    try:
        return LOSSES[name]
    except KeyError:
        raise KeyError(f"function {name!r} is not registered in lossproofs.registry: "
                       f"expected one of {FUNCTION_NAMES}") from None


def with_target_gradient() -> tuple[str, ...]:
    """Generic functions differentiable in a floating target (test_gradients)."""
    return tuple(n for n, spec in LOSSES.items()
                 if spec.differentiable_target and spec.generic_checks)


def with_hvp() -> tuple[str, ...]:
    return tuple(n for n, spec in LOSSES.items() if spec.has_hvp)


# The functions the generic per-function tests and the accuracy report run (see
# Loss.generic_checks); the others have their own test module.
GENERIC_FUNCTIONS: tuple[str, ...] = tuple(n for n, spec in LOSSES.items()
                                           if spec.generic_checks)
