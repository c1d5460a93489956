"""Bad inputs, as data: every class of input torch rejects, with the exception type it raises.

One generic test runs each :class:`ErrorCase` through the implementation under test and the
reference: both must reject it with ``exception``, and the reference's message must name the
offending ``argument``. Arrays keep their NumPy dtype when they become tensors (an ``int32``
target stays ``torch.int32``), because the dtype is often what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

_X = np.array([[0.5, -1.0, 2.0, 0.0], [1.0, 0.25, -0.5, 3.0], [0.0, 0.0, 1.0, -2.0]])
_T = np.array([0, 3, 1])
_P = np.array([[0.2, 0.7], [0.9, 0.1]])
_Y = np.array([[0.0, 1.0], [1.0, 0.0]])
# linear_cross_entropy: input (N, in) = (4, 3), linear_weight (C, in) = (5, 3), targets (N,)
_LX = np.array([[0.5, -1.0, 2.0], [1.0, 0.25, -0.5], [0.0, 0.75, 1.0], [-1.5, 0.5, 0.25]])
_LW = np.array([[1.0, 0.0, -0.5], [0.25, 1.5, 0.0], [-1.0, 0.5, 0.5], [0.0, -0.25, 1.0],
                [0.5, 0.5, -1.0]])
_LT = np.array([0, 4, 2, 1])


@dataclass(frozen=True)
class ErrorCase:
    """``function(*args, **kwargs)`` must raise ``exception``; ``argument`` is the culprit.

    ``check`` is the name a target can declare unsupported (see ``Target.unsupported``), for
    rejections that are not catchable exceptions on some devices.
    """

    name: str
    function: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    exception: type[BaseException] = RuntimeError
    argument: str = "input"
    check: str = ""

    def torch_args(self) -> tuple[list[Any], dict[str, Any]]:
        def conv(v):
            return torch.from_numpy(np.array(v, copy=True)) if isinstance(v, np.ndarray) else v
        return [conv(a) for a in self.args], {k: conv(v) for k, v in self.kwargs.items()}

    @property
    def check_name(self) -> str:
        return f"error:{self.check or self.name}"


_LOSSES_WITH_REDUCTION = (
    ("nll_loss", (_X, _T)), ("cross_entropy", (_X, _T)),
    ("binary_cross_entropy", (_P, _Y)), ("binary_cross_entropy_with_logits", (_P, _Y)),
)

ERROR_CASES: tuple[ErrorCase, ...] = (
    # -- class-index targets (nll_loss and cross_entropy alike) ------------------------------
    *(case for fn in ("nll_loss", "cross_entropy") for case in (
        ErrorCase("target out of bounds", fn, (_X, np.array([0, 4, 1])),
                  exception=IndexError, argument="target"),
        ErrorCase("negative target that is not ignore_index", fn, (_X, np.array([0, -1, 1])),
                  exception=IndexError, argument="target", check="target out of bounds"),
        ErrorCase("int32 index target", fn, (_X, _T.astype(np.int32)), argument="target"),
        ErrorCase("float index target of another shape", fn, (_X, _T.astype(np.float64)),
                  argument="target"),
        ErrorCase("integer input", fn, (_X.astype(np.int64), _T),
                  exception=NotImplementedError),
        ErrorCase("batch size mismatch", fn, (_X, _T[:2]), exception=ValueError,
                  argument="target"),
        ErrorCase("spatial size mismatch", fn,
                  (np.zeros((2, 3, 5)), np.zeros((2, 4), dtype=np.int64)), argument="target"),
        ErrorCase("uint8 target with K-dim input", fn,
                  (np.zeros((2, 3, 4)), np.zeros((2, 4), dtype=np.uint8)), argument="target"),
        ErrorCase("2-D index target for 2-D input", fn, (_X, np.zeros((3, 2), dtype=np.int64)),
                  argument="target"),
        # nll_loss says so; cross_entropy first fails to find the class dim 1.
        ErrorCase("0-d input", fn, (np.array(1.0), np.array(0) if fn == "nll_loss" else _T[:1]),
                  exception=ValueError if fn == "nll_loss" else IndexError),
        ErrorCase("(C,) input with a target of size 2", fn, (_X[0], _T[:2]),
                  exception=ValueError, argument="target"),
        ErrorCase("weight of the wrong size", fn, (_X, _T), {"weight": np.ones(3)},
                  argument="weight"),
        ErrorCase("2-D weight", fn, (_X, _T), {"weight": np.ones((1, 4))}, argument="weight"),
        ErrorCase("weight dtype differs from input", fn, (_X, _T),
                  {"weight": np.ones(4, dtype=np.float32)}, argument="weight"),
    )),
    # -- cross_entropy only -------------------------------------------------------------------
    ErrorCase("int64 target with the input's shape", "cross_entropy",
              (_X, np.zeros((3, 4), dtype=np.int64)), argument="target"),
    ErrorCase("probability target with ignore_index >= 0", "cross_entropy",
              (_X, np.full((3, 4), 0.25)), {"ignore_index": 1}, argument="ignore_index"),
    ErrorCase("label_smoothing above 1", "cross_entropy", (_X, _T), {"label_smoothing": 1.5},
              argument="label_smoothing"),
    ErrorCase("label_smoothing above 1, probability target", "cross_entropy",
              (_X, np.full((3, 4), 0.25)), {"label_smoothing": 1.5},
              argument="label_smoothing"),
    # -- every loss: the reduction name ------------------------------------------------------
    *(ErrorCase("unknown reduction", fn, args, {"reduction": "avg"}, exception=ValueError,
                argument="reduction") for fn, args in _LOSSES_WITH_REDUCTION),
    # -- binary cross-entropy ----------------------------------------------------------------
    ErrorCase("BCE input outside [0, 1]", "binary_cross_entropy",
              (np.array([[0.2, 1.5], [0.9, 0.1]]), _Y)),
    ErrorCase("BCE input is NaN", "binary_cross_entropy",
              (np.array([[0.2, np.nan], [0.9, 0.1]]), _Y), check="BCE input outside [0, 1]"),
    ErrorCase("BCE target outside [0, 1]", "binary_cross_entropy",
              (_P, np.array([[0.0, 2.0], [1.0, 0.0]])), argument="target"),
    ErrorCase("BCE shape mismatch", "binary_cross_entropy", (_P, _Y[0]), exception=ValueError,
              argument="target"),
    ErrorCase("BCE weight larger than the target", "binary_cross_entropy", (_P[0], _Y[0]),
              {"weight": np.ones((2, 2))}, argument="weight"),
    ErrorCase("BCE weight that does not broadcast", "binary_cross_entropy", (_P, _Y),
              {"weight": np.ones(3)}, argument="weight"),
    ErrorCase("BCE-with-logits shape mismatch", "binary_cross_entropy_with_logits",
              (_P, _Y[0]), exception=ValueError, argument="target"),
    ErrorCase("BCE-with-logits weight that does not broadcast",
              "binary_cross_entropy_with_logits", (_P, _Y), {"weight": np.ones(3)},
              argument="weight"),
    ErrorCase("BCE-with-logits pos_weight that does not broadcast",
              "binary_cross_entropy_with_logits", (_P, _Y), {"pos_weight": np.ones(3)},
              argument="pos_weight"),
    ErrorCase("BCE-with-logits pos_weight larger than the input",
              "binary_cross_entropy_with_logits", (_P[0], _Y[0]),
              {"pos_weight": np.ones((2, 2))}, argument="pos_weight"),
    # -- softmax family ----------------------------------------------------------------------
    *(case for fn in ("softmax", "log_softmax") for case in (
        ErrorCase("dim out of range", fn, (_X, 2), exception=IndexError, argument="dim"),
        ErrorCase("integer input", fn, (_T, 0), exception=NotImplementedError),
    )),
    ErrorCase("dim out of range", "logsumexp", (_X, 2), exception=IndexError, argument="dim"),
    # -- linear_cross_entropy: torch's reference path (linear, then cross_entropy) ------------
    *(ErrorCase(name, "linear_cross_entropy", args, kwargs, exception, argument)
      for name, args, kwargs, exception, argument in (
          ("0-d input", (np.array(_LX[0, 0]), _LW, _LT), {}, RuntimeError, "input"),
          ("in_features mismatch", (_LX, _LW[:, :2], _LT), {}, RuntimeError, "linear_weight"),
          ("bias of the wrong shape", (_LX, _LW, _LT), {"linear_bias": np.zeros(4)},
           RuntimeError, "linear_bias"),
          ("linear_weight of another dtype", (_LX, _LW.astype(np.float32), _LT), {},
           RuntimeError, "linear_weight"),
          ("int32 target", (_LX, _LW, _LT.astype(np.int32)), {}, RuntimeError, "target"),
          ("unknown reduction", (_LX, _LW, _LT), {"reduction": "avg"}, ValueError,
           "reduction"),
          ("target out of bounds", (_LX, _LW, np.array([0, 4, 9, 1])), {}, IndexError,
           "target"),
          ("negative target that is not ignore_index", (_LX, _LW, np.array([0, 4, -3, 1])), {},
           IndexError, "target"),
          ("target shorter than the batch", (_LX, _LW, _LT[:3]), {}, ValueError, "target"),
          ("target longer than the batch", (_LX, _LW, np.concatenate([_LT, _LT])), {},
           ValueError, "target"),
          ("class weight too short", (_LX, _LW, _LT), {"weight": np.ones(4)}, RuntimeError,
           "weight"),
          ("class weight too long", (_LX, _LW, _LT), {"weight": np.ones(6)}, RuntimeError,
           "weight"),
          ("class weight of another dtype", (_LX, _LW, _LT),
           {"weight": np.ones(5, dtype=np.float32)}, RuntimeError, "weight"),
          ("bias of another dtype", (_LX, _LW, _LT),
           {"linear_bias": np.zeros(5, dtype=np.float32)}, RuntimeError, "linear_bias"),
          ("float ignore_index", (_LX, _LW, _LT), {"ignore_index": 1.0}, TypeError,
           "ignore_index"),
          ("integer input", (_LX.astype(np.int64), _LW.astype(np.int64), _LT), {},
           NotImplementedError, "input"),
      )),
)
