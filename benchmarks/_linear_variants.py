"""What ``benchmarks.linear_cross_entropy`` times, built in each worker process: the shapes of a
language model's head (N tokens × hidden D → V classes) and the formulations of its loss.

Variants (each takes hidden states ``x`` (N × D), the head's weight ``W`` (V × D) and targets):

- ``unfused``: ``F.cross_entropy(x @ Wᵀ, t)``, the N × V logits materialised (how most training
  code computes it, and the baseline every ratio divides by);
- ``reference``: ``F.linear_cross_entropy(x, W, t)`` with ``options=None`` (torch ≥ 2.13: linear,
  then cross_entropy, inside one function);
- ``chunked[<policy>]``: ``F.linear_cross_entropy`` with
  ``nn.LinearCrossEntropyOptions(acc_policy=<policy>)`` for each of accurate, balanced, compact,
  auto (torch's default ``chunking_method`` and ``batch_chunk_size``): logits formed a chunk of
  rows at a time, the backward computed during the forward. A policy the installed torch does
  not have (``balanced`` from torch 2.14) is excluded with the reason
  (:data:`lossproofs.targets.linear.UNAVAILABLE_ACC_POLICIES`), so the records keep one shape
  across releases;
- ``compiled``: ``torch.compile`` of the unfused form (``dynamic=False``; compile time excluded
  from the timings, listed separately);
- ``liger``: Liger-Kernel's ``LigerFusedLinearCrossEntropyLoss`` where it is installed and the
  device is CUDA (a Triton kernel), else excluded with the reason;
- ``matmul``: ``x @ Wᵀ`` alone, no gradient: the compute yardstick of the roofline (one matmul
  of 2·N·D·V floating-point operations, measured in the same worker as the variants).

``forward`` runs under ``torch.no_grad()`` (what evaluation pays); ``forward+backward`` returns
the loss and the gradients with respect to ``x`` and ``W``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks._measure import Point, Prepared
from benchmarks._memory import peak_bytes
from benchmarks._variants import check_agreement
from lossproofs.targets import linear as linear_targets

UNFUSED = "unfused"
REFERENCE = "reference"
# Every acc_policy a torch release has had, and any new one the installed torch offers; the
# installed torch's are linear_targets.ACC_POLICIES (read from torch, not assumed).
POLICIES = tuple(dict.fromkeys((*linear_targets.KNOWN_ACC_POLICIES,
                                *linear_targets.ACC_POLICIES)))
CHUNKED = tuple(f"chunked[{p}]" for p in POLICIES)
COMPILED = "compiled"
LIGER = "liger"
MATMUL = "matmul"
VARIANTS = (UNFUSED, REFERENCE, *CHUNKED, COMPILED, LIGER, MATMUL)
LABELS = {
    UNFUSED: "F.cross_entropy(x @ Wᵀ)",
    REFERENCE: "F.linear_cross_entropy (options=None)",
    **{v: f"F.linear_cross_entropy chunked, acc_policy={p}" for v, p in zip(CHUNKED, POLICIES,
                                                                           strict=True)},
    COMPILED: "torch.compile(F.cross_entropy(x @ Wᵀ))",
    LIGER: "Liger-Kernel LigerFusedLinearCrossEntropyLoss",
    MATMUL: "x @ Wᵀ alone (roofline yardstick)",
}
LOSS_VARIANTS = VARIANTS[:-1]
RATIO_PAIRS = tuple((v, UNFUSED) for v in LOSS_VARIANTS[1:])
PASSES = ("forward", "forward+backward")
MATMULS_PER_PASS = {"forward": 1, "forward+backward": 3}
"""Matmuls of the N × D × V shape a pass needs: logits = x Wᵀ; backward also dx = g W and
dW = gᵀ x (each 2·N·D·V floating-point operations)."""
IGNORED_SHARE = 0.125


@dataclass(frozen=True)
class LinearCase:
    """N tokens of hidden size D, a vocabulary of V classes, in ``dtype`` on ``device``."""

    device: str
    dtype: str
    N: int
    D: int
    V: int
    group: str = "sweep"  # "sweep": one of a V sweep at fixed (dtype, N, D), plotted against V
    with_compile: bool = True

    def __post_init__(self) -> None:
        for name in ("N", "D", "V"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"LinearCase: {name} must be a positive int, got {value!r}")
        if self.dtype not in ("float32", "float64", "float16", "bfloat16"):
            raise ValueError(f"LinearCase: dtype must be a floating dtype name, got "
                             f"{self.dtype!r}")

    @property
    def element_size(self) -> int:
        return torch.tensor([], dtype=getattr(torch, self.dtype)).element_size()

    @property
    def logits_bytes(self) -> int:
        """Bytes of the N × V logits in the input's dtype: what the chunked path avoids."""
        return self.N * self.V * self.element_size

    @property
    def inputs_bytes(self) -> int:
        """x (N × D) and W (V × D) in the dtype, int64 targets (N)."""
        return (self.N + self.V) * self.D * self.element_size + 8 * self.N

    def gradients_bytes(self, pass_: str) -> int:
        """What the pass must return besides the loss: dx and dW for forward+backward."""
        return (self.N + self.V) * self.D * self.element_size if pass_ != "forward" else 0

    def flops(self, pass_: str) -> int:
        """Floating-point operations of the pass's matmuls (2·N·D·V each)."""
        return MATMULS_PER_PASS[pass_] * 2 * self.N * self.D * self.V

    def key(self, pass_: str) -> str:
        return f"{self.device} {self.dtype} N={self.N} D={self.D} V={self.V} {pass_}"


def point(case: LinearCase, pass_: str, compile_enabled: bool, backend: str) -> Point:
    return Point(key=case.key(pass_), params={"case": asdict(case), "pass": pass_,
                                              "compile": compile_enabled, "backend": backend})


# -- in the worker ---------------------------------------------------------------------------
_CACHE: dict[str, Any] = {}


def make_inputs(case: LinearCase) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hidden states, head weight and targets (1/8 ignored), seeded; logits of a few units
    (x and W scaled by D^(−1/4) each, so x·w has unit variance), as a trained head's."""
    g = torch.Generator().manual_seed(0)
    dt = getattr(torch, case.dtype)
    x = (torch.randn(case.N, case.D, generator=g) / case.D ** 0.25).to(case.device, dt)
    w = (torch.randn(case.V, case.D, generator=g) / case.D ** 0.25).to(case.device, dt)
    t = torch.randint(0, case.V, (case.N,), generator=g)
    t[torch.rand(case.N, generator=g) < IGNORED_SHARE] = -100
    return x, w, t.to(case.device)


def _unfused(x: torch.Tensor, w: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(x @ w.T, t)


def _loss_functions(case: LinearCase, compile_enabled: bool, backend: str,
                    ) -> tuple[dict[str, Callable[..., torch.Tensor]], dict[str, tuple[str, str]]]:
    """Variant → ``loss(x, w, t)``, and the excluded variants with their reasons."""
    fns: dict[str, Callable[..., torch.Tensor]] = {UNFUSED: _unfused}
    excluded: dict[str, tuple[str, str]] = {}
    if linear_targets.HAS_LINEAR_CROSS_ENTROPY:
        fns[REFERENCE] = lambda x, w, t: F.linear_cross_entropy(x, w, t)
        for variant, policy in zip(CHUNKED, POLICIES, strict=True):
            if policy not in linear_targets.ACC_POLICIES:
                excluded[variant] = ("skipped", f"torch {torch.__version__} has no acc_policy "
                                     f"{policy!r}: "
                                     + linear_targets.UNAVAILABLE_ACC_POLICIES.get(policy, ""))
                continue
            try:  # a policy torch lists but rejects here excludes its variant, not the point
                options = torch.nn.LinearCrossEntropyOptions(acc_policy=policy)
            except (TypeError, ValueError) as exc:
                excluded[variant] = ("error", f"{type(exc).__name__}: {exc}")
                continue
            fns[variant] = (lambda o: lambda x, w, t: F.linear_cross_entropy(x, w, t,
                                                                              options=o))(options)
    else:
        for variant in (REFERENCE, *CHUNKED):
            excluded[variant] = ("skipped", linear_targets.MISSING_REASON)
    if not compile_enabled:
        excluded[COMPILED] = ("skipped", "torch.compile disabled (--no-compile)")
    elif not case.with_compile:
        excluded[COMPILED] = ("skipped", "torch.compile not run for this case (grid budget)")
    else:
        try:
            fns[COMPILED] = torch.compile(_unfused, dynamic=False, backend=backend)
        except Exception as exc:  # the compiler stack missing or broken on this machine
            excluded[COMPILED] = ("skipped", f"torch.compile unavailable: {type(exc).__name__}: "
                                             f"{exc}")
    liger, why = _liger(case.device)
    if liger is None:
        excluded[LIGER] = ("skipped", why)
    else:
        fns[LIGER] = liger
    return fns, excluded


def _liger(device: str) -> tuple[Callable[..., torch.Tensor] | None, str]:
    """Liger-Kernel's fused linear cross-entropy as ``loss(x, w, t)``, or why there is none."""
    if not device.startswith("cuda"):
        return None, "Liger-Kernel's fused linear cross-entropy is a Triton kernel: CUDA only"
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
    except ImportError as exc:
        return None, f"liger-kernel is not installed ({exc}); pip install liger-kernel"
    module = LigerFusedLinearCrossEntropyLoss(ignore_index=-100, reduction="mean")
    return (lambda x, w, t: module(w, x, t)), ""  # Liger's order: (weight, input, target)


def _call(fn: Callable[..., torch.Tensor], pass_: str, x: torch.Tensor, w: torch.Tensor,
          t: torch.Tensor) -> Callable[[], Any]:
    if pass_ == "forward":
        def forward():
            with torch.no_grad():
                return fn(x, w, t)
        return forward
    xg = x.detach().requires_grad_(True)
    wg = w.detach().requires_grad_(True)

    def forward_backward():
        loss = fn(xg, wg, t)
        gx, gw = torch.autograd.grad(loss, (xg, wg))
        return loss.detach(), gx, gw
    return forward_backward


def setup_point(params: dict[str, Any], repeat: int) -> Prepared:
    """:class:`benchmarks._measure.Prepared` for one case and pass. Every repeat times the
    compiled variant's first call (its compile, from the on-disk cache after the first worker);
    the first repeat also checks each variant's loss against the unfused one and measures
    its peak memory."""
    case = LinearCase(**params["case"])
    pass_ = params["pass"]
    if _CACHE.get("case") != case:
        _CACHE.clear()
        _CACHE.update(case=case, inputs=make_inputs(case))
    x, w, t = _CACHE["inputs"]
    fns, excluded = _loss_functions(case, params.get("compile", True),
                                    params.get("backend", "inductor"))
    out = Prepared(calls={v: _call(fn, pass_, x, w, t) for v, fn in fns.items()},
                   excluded=excluded)
    out.calls[MATMUL] = _matmul(x, w)
    if COMPILED in out.calls:
        start = time.perf_counter()
        try:
            out.calls[COMPILED]()
        except Exception as exc:  # a compiler failure excludes the variant, with the reason
            del out.calls[COMPILED]
            out.excluded[COMPILED] = ("error", f"{type(exc).__name__}: {str(exc)[:200]}")
        else:
            out.info[COMPILED] = {"compile_s": time.perf_counter() - start}
    if repeat == 0:
        _check_agreement(case, out)
        for name, fn in out.calls.items():
            peak, method = peak_bytes(fn, case.device)
            out.info.setdefault(name, {}).update(peak_bytes=peak, peak_method=method)
    return out


def _matmul(x: torch.Tensor, w: torch.Tensor) -> Callable[[], torch.Tensor]:
    def matmul():
        with torch.no_grad():
            return x @ w.T
    return matmul


def _loss_of(value: Any) -> Any:
    return value[0] if isinstance(value, tuple) else value


def _check_agreement(case: LinearCase, prepared: Prepared) -> None:
    """Every variant's loss must be the unfused one's within the dtype's agreement bound (a
    guard that the timed calls compute the same thing, not an accuracy claim: the suite
    makes those); a variant that raises is excluded with its error."""
    check_agreement(prepared, UNFUSED, case.device, case.dtype, torch.float64,
                    key="max_rel_diff_vs_unfused", skip=(MATMUL,), value=_loss_of)
