"""One call of a loss, described as data: arrays, parameters, dtype and memory layout.

A :class:`Case` is what the strategies draw and what every generic test runs. It knows how to
build the torch tensors an implementation sees (in a dtype, with a contiguous or non-contiguous
layout), how to evaluate the float64 reference on exactly the values those tensors hold (the
inputs *after* rounding to the dtype), and how to print itself as a copy-pasteable reproduction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lossproofs.declarations import ARGUMENTS
from lossproofs.dtypes import DTYPES, torch_dtype  # noqa: F401  (DTYPES re-exported)

LAYOUTS = ("contiguous", "transposed", "sliced", "expanded")

# How reproductions call the implementation under test, as (import lines, qualifier of the
# function name): one element, replaced by the suite plugin with its target's
# (``Target.reproduce``), since hypothesis prints a falsifying case with its repr alone.
REPRODUCE_WITH: list[tuple[str, str]] = [("import torch.nn.functional as F", "F.")]

# Argument names that hold floating tensors (converted to the case's dtype).
_FLOAT_KWARGS = ("weight", "pos_weight", "linear_bias")


def lay_out(t: torch.Tensor, layout: str) -> torch.Tensor:
    """Return a tensor equal to ``t`` in value, with the requested memory layout.

    - ``contiguous``: ``t`` itself.
    - ``transposed``: the values stored with the dimension order reversed, viewed back.
    - ``sliced``: every other element of a buffer twice as long in the last dimension.
    - ``expanded``: a single slice broadcast along dim 0 (stride 0); only valid when every
      slice along dim 0 is equal, which the ``expanded`` strategies guarantee.
    """
    if layout == "contiguous" or t.dim() == 0:
        return t
    if layout == "transposed":
        perm = tuple(reversed(range(t.dim())))
        return t.permute(perm).contiguous().permute(perm)
    if layout == "sliced":
        big = torch.zeros((*t.shape[:-1], 2 * t.shape[-1]), dtype=t.dtype)
        big[..., ::2] = t
        return big[..., ::2]
    if layout == "expanded":
        if t.shape[0] == 0:
            return t
        if not bool((t == t[:1]).all()):
            raise ValueError("layout 'expanded' needs equal slices along dim 0")
        return t[:1].expand(t.shape)
    raise ValueError(f"unknown layout {layout!r}: expected one of {LAYOUTS}")


def layout_for(t: torch.Tensor, layout: str) -> str:
    """The layout a case's ``layout`` gives one of its tensors: the requested one when it makes
    ``t`` non-contiguous, else ``sliced`` (which does whenever ``t`` has two or more elements);
    ``contiguous`` for tensors of fewer than two elements, which no layout makes non-contiguous.

    ``transposed`` needs two dimensions longer than 1, ``expanded`` equal slices along a dim 0
    of two or more (a case's input has them; its target and weights usually do not).
    """
    if layout == "contiguous" or t.numel() < 2:
        return "contiguous"
    if layout == "transposed" and sum(d > 1 for d in t.shape) < 2:
        return "sliced"
    if layout == "expanded" and (t.shape[0] < 2 or not bool((t == t[:1]).all())):
        return "sliced"
    return layout


def lay_out_like_case(t: torch.Tensor, layout: str) -> torch.Tensor:
    """``t`` in the layout a case's ``layout`` gives it (:func:`layout_for`); raises
    ``AssertionError`` if a non-contiguous layout left it contiguous (so a case never claims a
    layout its tensors do not have)."""
    laid = lay_out(t, layout_for(t, layout))
    if layout != "contiguous" and t.numel() >= 2 and laid.is_contiguous():
        raise AssertionError(f"layout {layout!r} left a tensor of shape {tuple(t.shape)} "
                             "contiguous")
    return laid


def _array_literal(a: np.ndarray) -> str:
    # repr of Python floats round-trips exactly, so the reproduction is bit-exact.
    return f"np.array({a.tolist()!r}, dtype=np.{a.dtype.name})"


@dataclass
class Case:
    """Arguments of one call: ``function(*arrays, **params)`` run in ``dtype``.

    ``arrays`` are the positional array arguments (``input`` and, for losses, ``target``), in
    float64 (floating) or int64/uint8 (index targets). ``params`` holds the keyword arguments,
    arrays among them. ``tags`` name the parameter families this case exercises (used to group
    results in the conformance report).
    """

    function: str
    arrays: tuple[np.ndarray, ...]
    params: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float64"
    layout: str = "contiguous"
    tags: frozenset[str] = frozenset()
    # The upstream gradient (float64, broadcastable to the output), for cases that carry their
    # own, as the accuracy strata do; None where a test draws it.
    grad_output: np.ndarray | None = None
    # Python expressions that rebuild large arrays (argument name → expression), printed by the
    # reproduction instead of a literal of 10⁵ numbers; set by lossproofs.strategies.large.
    sources: dict[str, str] = field(default_factory=dict)

    # -- tensors an implementation sees ------------------------------------------------------
    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        """``a`` as a contiguous tensor, floating values in the case's dtype."""
        t = torch.from_numpy(np.array(a, copy=True))
        return t.to(torch_dtype(self.dtype)) if t.is_floating_point() else t

    def torch_args(self, requires_grad: tuple[bool, ...] = ()) -> tuple[list[torch.Tensor], dict]:
        """Positional tensors and keyword arguments, every tensor of two or more elements in the
        case's layout (:func:`layout_for`: the target and weights too; a non-contiguous layout is
        checked to be non-contiguous).

        ``requires_grad[i]`` marks positional tensor ``i`` as a leaf requiring grad. A
        non-contiguous input is made a leaf *with* its layout (the layout of a leaf survives
        ``requires_grad_``), so gradients are taken with respect to exactly that tensor.
        """
        tensors = []
        for i, a in enumerate(self.arrays):
            rg = i < len(requires_grad) and requires_grad[i]
            t = lay_out_like_case(self._tensor(a), self.layout)
            if rg:
                # A view is not a leaf; detach keeps its strides, so the leaf has the layout.
                t = t.detach().requires_grad_(True)
            tensors.append(t)
        kwargs = {}
        for k, v in self.params.items():
            if k in _FLOAT_KWARGS and v is not None:
                kwargs[k] = lay_out_like_case(self._tensor(v), self.layout)
            else:
                kwargs[k] = v
        return tensors, kwargs

    # -- what the reference sees ---------------------------------------------------------------
    def rounded(self, a: Any) -> Any:
        """``a`` as the implementation sees it, back in float64 (floats rounded to the dtype)."""
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            return torch.from_numpy(a).to(torch_dtype(self.dtype)).double().numpy()
        return a

    def reference_args(self) -> tuple[tuple[np.ndarray, ...], dict]:
        """The arrays and params with floating values rounded to the dtype (exact in float64)."""
        arrays = tuple(self.rounded(a) for a in self.arrays)
        params = {k: self.rounded(v) if k in _FLOAT_KWARGS else v
                  for k, v in self.params.items()}
        return arrays, params

    # -- reporting -----------------------------------------------------------------------------
    def reproduction(self, target=None) -> str:
        """A copy-pasteable script that runs this case through ``target`` (the implementation
        under test: :data:`REPRODUCE_WITH` when None, torch.nn.functional by default) and through
        the float64 reference."""
        setup, qualifier = REPRODUCE_WITH[0] if target is None else target.reproduce
        names = ARGUMENTS.get(self.function, ("input", "target"))
        lines = ["import numpy as np, torch", *setup.splitlines(),
                 "from lossproofs import reference"]
        if self.sources:
            lines.append("import lossproofs.strategies.large")

        def value(name, a):
            return self.sources.get(name) or _array_literal(a)

        for name, a in zip(names, self.arrays):
            lines.append(f"{name} = {value(name, a)}")
        kw = []
        for k, v in self.params.items():
            if isinstance(v, np.ndarray):
                lines.append(f"{k} = {value(k, v)}")
                kw.append(f"{k}={k}")
            else:
                kw.append(f"{k}={v!r}")
        args = ", ".join(list(names[: len(self.arrays)]) + kw)
        dt = f"torch.{self.dtype}"
        tensors = [(n, a) for n, a in zip(names, self.arrays)] + [
            (k, v) for k, v in self.params.items() if isinstance(v, np.ndarray)]
        for n, a in tensors:
            lines.append(f"t_{n} = torch.from_numpy({n})"
                         + (f".to({dt})" if a.dtype.kind == "f" else ""))
        laid = [(n, layout_for(self._tensor(a), self.layout)) for n, a in tensors]
        laid = [(n, lay) for n, lay in laid if lay != "contiguous"]
        if laid:
            lines.insert(1, "from lossproofs.cases import lay_out")
        for n, lay in laid:
            lines.append(f"t_{n} = lay_out(t_{n}, {lay!r})  # same values, non-contiguous memory")
        targs = ", ".join([f"t_{n}" for n in names[: len(self.arrays)]]
                          + [f"{k}=t_{k}" if isinstance(v, np.ndarray) else f"{k}={v!r}"
                             for k, v in self.params.items()])
        fn = f"{qualifier}{self.function}"
        if fn == "F.logsumexp":
            fn = "torch.logsumexp"  # torch.nn.functional has no logsumexp
        lines.append(f"print({fn}({targs}))  # the implementation under test")
        lines.append(f"print(reference.{self.function}({args}))  # float64, inputs as given")
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:
        # hypothesis prints falsifying examples with this hook: show the reproduction.
        printer.text(repr(self))

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a.shape}:{a.dtype.name}" for a in self.arrays)
        params = {k: (v.shape if isinstance(v, np.ndarray) else v) for k, v in self.params.items()}
        return (f"Case({self.function}, arrays=[{shapes}], params={params}, dtype={self.dtype}, "
                f"layout={self.layout}, tags={sorted(self.tags)}"
                + ("" if self.grad_output is None
                   else f", grad_output={np.shape(self.grad_output)}")
                + f")\n--- reproduction ---\n"
                f"{self.reproduction()}")
