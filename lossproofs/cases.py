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

from lossproofs.dtypes import DTYPES, torch_dtype  # noqa: F401  (DTYPES re-exported)

LAYOUTS = ("contiguous", "transposed", "sliced", "expanded")

# Argument names that hold floating tensors (converted to the case's dtype).
_FLOAT_KWARGS = ("weight", "pos_weight")


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

    # -- tensors an implementation sees ------------------------------------------------------
    def torch_args(self, requires_grad: tuple[bool, ...] = ()) -> tuple[list[torch.Tensor], dict]:
        """Positional tensors (the input in the case's layout) and keyword arguments.

        ``requires_grad[i]`` marks positional tensor ``i`` as a leaf requiring grad. A
        non-contiguous input is made a leaf *with* its layout (the layout of a leaf survives
        ``requires_grad_``), so gradients are taken with respect to exactly that tensor.
        """
        tensors = []
        for i, a in enumerate(self.arrays):
            rg = i < len(requires_grad) and requires_grad[i]
            layout = self.layout if i == 0 else "contiguous"
            t = torch.from_numpy(np.array(a, copy=True))
            if t.is_floating_point():
                t = t.to(torch_dtype(self.dtype))
            t = lay_out(t, layout)
            if rg:
                # A view is not a leaf; detach keeps its strides, so the leaf has the layout.
                t = t.detach().requires_grad_(True)
            tensors.append(t)
        kwargs = {}
        for k, v in self.params.items():
            if k in _FLOAT_KWARGS and v is not None:
                kwargs[k] = torch.from_numpy(np.array(v, copy=True)).to(torch_dtype(self.dtype))
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
    def reproduction(self) -> str:
        """A copy-pasteable script that runs this case through torch and the reference."""
        names = ("input", "target")
        lines = ["import numpy as np, torch", "import torch.nn.functional as F",
                 "from lossproofs import reference"]
        for name, a in zip(names, self.arrays):
            lines.append(f"{name} = {_array_literal(a)}")
        kw = []
        for k, v in self.params.items():
            if isinstance(v, np.ndarray):
                lines.append(f"{k} = {_array_literal(v)}")
                kw.append(f"{k}={k}")
            else:
                kw.append(f"{k}={v!r}")
        args = ", ".join(list(names[: len(self.arrays)]) + kw)
        dt = f"torch.{self.dtype}"
        conv = [f"t_{n} = torch.from_numpy({n})"
                + (f".to({dt})" if a.dtype.kind == "f" else "")
                for n, a in zip(names, self.arrays)]
        conv += [f"t_{k} = torch.from_numpy({k}).to({dt})" for k, v in self.params.items()
                 if isinstance(v, np.ndarray)]
        targs = ", ".join([f"t_{n}" for n in names[: len(self.arrays)]]
                          + [f"{k}=t_{k}" if isinstance(v, np.ndarray) else f"{k}={v!r}"
                             for k, v in self.params.items()])
        fn = "torch.logsumexp" if self.function == "logsumexp" else f"F.{self.function}"
        lines += conv
        if self.layout != "contiguous":
            lines.insert(3, "from lossproofs.cases import lay_out")
            lines.append(f"t_input = lay_out(t_input, {self.layout!r})  # same values, "
                         "non-contiguous memory")
        lines.append(f"print({fn}({targs}))")
        lines.append(f"print(reference.{self.function}({args}))  # float64, inputs as given")
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:
        # hypothesis prints falsifying examples with this hook: show the reproduction.
        printer.text(repr(self))

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a.shape}:{a.dtype.name}" for a in self.arrays)
        params = {k: (v.shape if isinstance(v, np.ndarray) else v) for k, v in self.params.items()}
        return (f"Case({self.function}, arrays=[{shapes}], params={params}, dtype={self.dtype}, "
                f"layout={self.layout}, tags={sorted(self.tags)})\n--- reproduction ---\n"
                f"{self.reproduction()}")
