"""The implementations of cross-entropy that the benchmark compares, and the inputs they share.

Every variant computes the same scalar, ``mean_i ℓ_i`` with ``ℓ_i = −log softmax(x_i)[t_i]``
(or its probability-target / ignore_index / label-smoothing form, see
``/work/shared/TORCH_SEMANTICS.md``), for logits ``x`` of shape ``(N, C)``:

- fused: ``F.cross_entropy`` and ``nn.CrossEntropyLoss`` (one ATen op: log_softmax + nll);
- composed: ``F.nll_loss(F.log_softmax(x, 1))`` and ``nn.NLLLoss()(nn.LogSoftmax(dim=1)(x))``;
- naive: ``nll_loss(log(softmax(x)))`` (materialises the probabilities, loses accuracy when a
  probability underflows);
- compiled: ``torch.compile(F.cross_entropy)``;
- reference: ``lossproofs.reference.cross_entropy`` (and ``cross_entropy_backward``) on NumPy
  arrays, float64 inside (CPU only).

A variant is a zero-argument callable for one pass: ``forward`` returns the loss,
``forward+backward`` returns ``∂loss/∂x`` through ``torch.autograd.grad`` (so no ``.grad``
accumulation kernel is timed). The logits always require grad, so ``forward`` is the
training-mode forward (it saves what backward needs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks._measure import Point, Prepared
from benchmarks._memory import peak_bytes

FORWARD = "forward"
FORWARD_BACKWARD = "forward+backward"
PASSES = (FORWARD, FORWARD_BACKWARD)

TARGET_KINDS = ("index", "probability", "ignore_index", "label_smoothing")
IGNORE_INDEX = -100
IGNORED_FRACTION = 0.1
LABEL_SMOOTHING = 0.1

FUSED_F = "F.cross_entropy"
FUSED_NN = "nn.CrossEntropyLoss"
COMPOSED_F = "F.nll_loss(F.log_softmax)"
COMPOSED_NN = "nn.NLLLoss(nn.LogSoftmax)"
NAIVE = "nll_loss(log(softmax))"
COMPILED = "torch.compile(F.cross_entropy)"
REFERENCE = "reference (NumPy)"

VARIANTS: dict[str, str] = {  # name -> kind
    FUSED_F: "fused", FUSED_NN: "fused", COMPOSED_F: "composed", COMPOSED_NN: "composed",
    NAIVE: "naive", COMPILED: "compiled", REFERENCE: "reference",
}

# Paired ratios reported with a confidence interval: (numerator, denominator).
RATIO_PAIRS: tuple[tuple[str, str], ...] = (
    (FUSED_F, COMPOSED_F), (FUSED_NN, COMPOSED_NN), (COMPILED, FUSED_F), (NAIVE, FUSED_F),
    (REFERENCE, FUSED_F),
)

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
          "float16": torch.float16}


@dataclass(frozen=True)
class BenchmarkCase:
    """One cross-entropy benchmark point: a ``(N, C)`` logits shape, dtype, target kind and
    device, and which optional variants the grid's budget allows for it."""

    device: str
    dtype: str
    N: int
    C: int
    targets: str = "index"
    group: str = "named"  # "named" shapes, the C "sweep" at fixed N, or an "extra" case
    with_compile: bool = True
    with_reference: bool = True

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.targets not in TARGET_KINDS:
            raise ValueError(f"targets must be one of {TARGET_KINDS}, got {self.targets!r}")
        if self.N < 1 or self.C < 1:
            raise ValueError(f"N and C must be positive, got N={self.N}, C={self.C}")

    @property
    def itemsize(self) -> int:
        return torch.empty((), dtype=DTYPES[self.dtype]).element_size()

    @property
    def logits_bytes(self) -> int:
        return self.N * self.C * self.itemsize

    def target_bytes(self) -> int:
        """Bytes of the target tensor: int64 indices, or an ``(N, C)`` probability tensor."""
        return self.logits_bytes if self.targets == "probability" else self.N * 8

    def min_bytes(self, pass_: str) -> int:
        """The least a pass must move: forward reads the N·C logits (and the targets) once;
        forward+backward also writes the N·C gradient."""
        moved = self.logits_bytes + self.target_bytes()
        return moved + (self.logits_bytes if pass_ == FORWARD_BACKWARD else 0)

    def label(self) -> str:
        return f"{self.N}×{self.C}"

    def key(self, pass_: str) -> str:
        """The measurement point's unique key for one pass."""
        return f"{self.device} {self.dtype} {self.label()} {self.targets} {pass_}"


def make_inputs(case: BenchmarkCase, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Standard-normal logits ``(N, C)`` requiring grad, and the case's targets.

    index / label_smoothing: uniform class indices; ignore_index: the same with about 10 % set
    to ``IGNORE_INDEX`` (at least one kept, so the mean is finite); probability: rows of
    ``softmax`` of standard-normal noise, in the logits' dtype. Drawn on the case's device
    (a 4096 × 131072 draw on the host would cost seconds per case).
    """
    device = torch.device(case.device)
    gen = torch.Generator(device=device).manual_seed(seed)
    dtype = DTYPES[case.dtype]
    x = torch.randn(case.N, case.C, generator=gen, device=device).to(dtype)
    x.requires_grad_(True)
    if case.targets == "probability":
        t = torch.softmax(torch.randn(case.N, case.C, generator=gen, device=device), dim=1)
        return x, t.to(dtype)
    t = torch.randint(0, case.C, (case.N,), generator=gen, device=device)
    if case.targets == "ignore_index":
        drop = torch.rand(case.N, generator=gen, device=device) < IGNORED_FRACTION
        drop[0] = False
        t[drop] = IGNORE_INDEX
    return x, t


def _loss_functions(case: BenchmarkCase,
                    ) -> dict[str, Callable[[torch.Tensor, torch.Tensor], Any]]:
    """The torch-side variants as ``loss(x, t)`` for the case's target kind."""
    eps, C = LABEL_SMOOTHING, case.C
    if case.targets == "probability":
        nn_log_softmax = nn.LogSoftmax(dim=1)
        fused_nn = nn.CrossEntropyLoss()
        return {
            FUSED_F: lambda x, t: F.cross_entropy(x, t),
            FUSED_NN: lambda x, t: fused_nn(x, t),
            # ℓ_i = −Σ_c t_ic · log_softmax(x_i)_c, mean over the N rows.
            COMPOSED_F: lambda x, t: -(t * F.log_softmax(x, dim=1)).sum(1).mean(),
            COMPOSED_NN: lambda x, t: -(t * nn_log_softmax(x)).sum(1).mean(),
            NAIVE: lambda x, t: -(t * torch.log(F.softmax(x, dim=1))).sum(1).mean(),
        }
    if case.targets == "label_smoothing":
        nn_log_softmax, nn_nll = nn.LogSoftmax(dim=1), nn.NLLLoss()
        fused_nn = nn.CrossEntropyLoss(label_smoothing=eps)

        def smoothed(lp: torch.Tensor, t: torch.Tensor, nll: Callable[..., Any]) -> Any:
            # (1−ε)·nll + (ε/C)·mean_i(−Σ_c lp_ic): no weights and no ignored targets here.
            return (1 - eps) * nll(lp, t) - (eps / C) * lp.sum(1).mean()

        return {
            FUSED_F: lambda x, t: F.cross_entropy(x, t, label_smoothing=eps),
            FUSED_NN: lambda x, t: fused_nn(x, t),
            COMPOSED_F: lambda x, t: smoothed(F.log_softmax(x, dim=1), t, F.nll_loss),
            COMPOSED_NN: lambda x, t: smoothed(nn_log_softmax(x), t, nn_nll),
            NAIVE: lambda x, t: smoothed(torch.log(F.softmax(x, dim=1)), t, F.nll_loss),
        }
    ignore = IGNORE_INDEX  # index and ignore_index cases: torch's default ignore_index is -100
    nn_log_softmax, nn_nll = nn.LogSoftmax(dim=1), nn.NLLLoss(ignore_index=ignore)
    fused_nn = nn.CrossEntropyLoss(ignore_index=ignore)
    return {
        FUSED_F: lambda x, t: F.cross_entropy(x, t, ignore_index=ignore),
        FUSED_NN: lambda x, t: fused_nn(x, t),
        COMPOSED_F: lambda x, t: F.nll_loss(F.log_softmax(x, dim=1), t, ignore_index=ignore),
        COMPOSED_NN: lambda x, t: nn_nll(nn_log_softmax(x), t),
        NAIVE: lambda x, t: F.nll_loss(torch.log(F.softmax(x, dim=1)), t, ignore_index=ignore),
    }


def _fused_kwargs(case: BenchmarkCase) -> dict[str, Any]:
    if case.targets == "label_smoothing":
        return {"label_smoothing": LABEL_SMOOTHING}
    if case.targets == "probability":
        return {}
    return {"ignore_index": IGNORE_INDEX}


@dataclass
class VariantCalls:
    """Callables per variant for one case and pass, and the variants that cannot run."""

    calls: dict[str, Callable[[], Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> reason
    compile_s: float | None = None


def _reference_loss(case: BenchmarkCase) -> tuple[Callable[..., Any] | None, str | None]:
    """``lossproofs.reference.cross_entropy`` or the reason it cannot be used here."""
    if not case.with_reference:
        return None, "NumPy reference not run for this case (grid budget)"
    if not case.device.startswith("cpu"):
        return None, "the NumPy reference runs on CPU only"
    if case.dtype == "bfloat16":
        return None, "NumPy has no bfloat16"
    try:
        from lossproofs.reference import cross_entropy
    except ImportError as exc:
        return None, f"lossproofs.reference.cross_entropy is not importable ({exc})"
    return cross_entropy, None


def build_compiled(case: BenchmarkCase, enabled: bool = True, backend: str = "inductor",
                   ) -> tuple[Callable[..., Any] | None, str | None]:
    """``torch.compile(F.cross_entropy)`` for one case, or the reason there is none.

    Dynamo's cache is reset per case and shapes are static, so every case gets kernels
    specialised to its own ``(N, C)`` and no case hits the recompile limit. Compilation itself
    happens lazily on the first call (see :func:`prepare`).
    """
    if not enabled:
        return None, "torch.compile disabled (--no-compile)"
    if not case.with_compile:
        return None, "torch.compile not run for this case (grid budget)"
    try:
        import torch._dynamo

        torch._dynamo.reset()
        return torch.compile(F.cross_entropy, dynamic=False, backend=backend), None
    except Exception as exc:  # the compiler stack missing or broken on this machine
        return None, f"torch.compile unavailable: {type(exc).__name__}: {exc}"


def prepare(case: BenchmarkCase, pass_: str, x: torch.Tensor, t: torch.Tensor, *,
            compiled: Callable[..., Any] | None = None, compiled_reason: str | None = None,
            only: tuple[str, ...] | None = None) -> VariantCalls:
    """The zero-argument callables of every variant for ``case`` and ``pass_``.

    ``compiled`` comes from :func:`build_compiled` (``compiled_reason`` says why it is None).
    Its first call here compiles (forward graph, or the backward too for forward+backward), so
    that timing later excludes compile time; those seconds are returned in ``compile_s``.
    ``only`` restricts the variants by name.
    """
    if pass_ not in PASSES:
        raise ValueError(f"pass must be one of {PASSES}, got {pass_!r}")
    prepared = VariantCalls()
    losses: dict[str, Callable[..., Any]] = dict(_loss_functions(case))
    if compiled is not None:
        losses[COMPILED] = compiled
    else:
        prepared.skipped[COMPILED] = compiled_reason or "torch.compile not requested"

    fused_kwargs = _fused_kwargs(case)
    for name, loss in losses.items():
        if only is not None and name not in only:
            continue
        kwargs = fused_kwargs if name == COMPILED else {}
        if pass_ == FORWARD:
            prepared.calls[name] = (lambda loss=loss, kwargs=kwargs: loss(x, t, **kwargs))
        else:
            prepared.calls[name] = (
                lambda loss=loss, kwargs=kwargs: torch.autograd.grad(loss(x, t, **kwargs), x)[0])

    if COMPILED in prepared.calls:
        start = time.perf_counter()
        try:
            prepared.calls[COMPILED]()
            if x.is_cuda:
                torch.cuda.synchronize()
            prepared.compile_s = time.perf_counter() - start
        except Exception as exc:  # inductor needs a C++ compiler on CPU, triton on GPU
            if "out of memory" in str(exc):
                raise
            del prepared.calls[COMPILED]
            prepared.skipped[COMPILED] = (
                f"torch.compile failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")

    if only is None or REFERENCE in only:
        reference, reason = _reference_loss(case)
        if reference is None:
            prepared.skipped[REFERENCE] = reason or "unavailable"
        else:
            xn = x.detach().cpu().numpy()
            tn = t.detach().cpu().numpy()
            ref_kwargs = _fused_kwargs(case)
            if pass_ == FORWARD:
                prepared.calls[REFERENCE] = lambda: reference(xn, tn, **ref_kwargs)
            else:
                from lossproofs.reference import cross_entropy_backward

                def forward_backward() -> Any:
                    # What a NumPy user runs: the loss, then its closed-form input gradient.
                    reference(xn, tn, **ref_kwargs)
                    return cross_entropy_backward(1.0, xn, tn, **ref_kwargs)

                prepared.calls[REFERENCE] = forward_backward
    return prepared


def as_tensor(value: Any, device: str = "cpu", dtype: torch.dtype = torch.float64,
              ) -> torch.Tensor:
    """A variant's output (tensor or NumPy array) as a ``dtype`` tensor on ``device``, for the
    agreement check (kept on the device: a 4096 × 131072 gradient is 2 GB)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(device=device, dtype=dtype)
    return torch.as_tensor(value).to(device=device, dtype=dtype)


def agreement_tolerance(dtype: str) -> float:
    """Relative bound ``max|a − b| ≤ tol · max(|b|, 1e-30)`` for a variant vs ``F.cross_entropy``.

    Not an accuracy claim (the test suite makes those): only a guard that the variants being
    timed compute the same thing. float32 composed/naive forms differ from the fused op by a
    few ulp of the summed loss; half-precision intermediates by a few of their ulp.
    """
    return {"float64": 1e-10, "float32": 1e-4}.get(dtype, 5e-2)


# ---------------------------------------------------------------------------------------------
# The measurement core's setup (runs in each worker process; see benchmarks._measure)


def point(case: BenchmarkCase, pass_: str, compile_enabled: bool = True,
          compile_backend: str = "inductor") -> Point:
    """The measurement point for one case and pass."""
    return Point(case.key(pass_), {"case": asdict(case), "pass": pass_,
                                   "compile": compile_enabled, "backend": compile_backend})


_CACHE: dict[str, Any] = {}
"""The last case's inputs and compiled function in this worker: its two passes share them."""


def setup_point(params: dict[str, Any], repeat: int) -> Prepared:
    """:class:`benchmarks._measure.Prepared` for one point: the variants' callables; on the
    first repeat also each variant's agreement with ``F.cross_entropy`` and its peak memory.

    The first call of ``torch.compile`` (compilation) happens in :func:`prepare`, outside the
    timings; its seconds are recorded on the first repeat.
    """
    case = BenchmarkCase(**params["case"])
    pass_ = params["pass"]
    key = (case, params["compile"], params["backend"])
    if _CACHE.get("key") != key:
        _CACHE.clear()  # the previous case's tensors go by reference count (no gc pass: slow)
        x, t = make_inputs(case)
        compiled, reason = build_compiled(case, params["compile"], params["backend"])
        _CACHE.update(key=key, x=x, t=t, compiled=compiled, reason=reason)
    x, t = _CACHE["x"], _CACHE["t"]
    prep = prepare(case, pass_, x, t, compiled=_CACHE["compiled"],
                   compiled_reason=_CACHE["reason"])
    out = Prepared(calls=prep.calls, excluded={n: ("skipped", r) for n, r in prep.skipped.items()})
    if prep.compile_s is not None and repeat == 0:
        out.info[COMPILED] = {"compile_s": prep.compile_s}
    if repeat == 0:
        _check_agreement(case, out)
        for name, fn in out.calls.items():
            peak, method = peak_bytes(fn, case.device, numpy_variant=name == REFERENCE)
            out.info.setdefault(name, {}).update(peak_bytes=peak, peak_method=method)
    return out


def _check_agreement(case: BenchmarkCase, prepared: Prepared) -> None:
    """Every variant must compute what ``F.cross_entropy`` computes (float32 on the device, or
    float64 for float64 cases); one that raises is excluded as an error."""
    check_agreement(prepared, FUSED_F, case.device, case.dtype,
                    torch.float64 if case.dtype == "float64" else torch.float32,
                    key="max_rel_diff_vs_fused")


def check_agreement(prepared: Prepared, baseline: str, device: str, dtype: str,
                    compare_dtype: torch.dtype, *, key: str, skip: tuple[str, ...] = (),
                    value: Callable[[Any], Any] = lambda out: out) -> None:
    """Record in ``prepared.info`` each variant's largest difference from ``baseline``'s
    result relative to its largest magnitude (``key``) and whether it is within
    :func:`agreement_tolerance` (``agrees``); a variant that raises is excluded as an error
    (out of memory propagates). ``value`` picks what to compare from a call's return."""
    expected = as_tensor(value(prepared.calls[baseline]()), device, compare_dtype)
    scale = max(float(expected.abs().max()), 1e-30)
    tol = agreement_tolerance(dtype)
    for name in [n for n in prepared.calls if n not in skip]:
        try:
            got = as_tensor(value(prepared.calls[name]()), device, compare_dtype)
        except Exception as exc:
            if "out of memory" in str(exc):
                raise
            del prepared.calls[name]
            prepared.excluded[name] = ("error", f"{type(exc).__name__}: {str(exc)[:200]}")
            continue
        rel = float((got.reshape(expected.shape) - expected).abs().max()) / scale
        prepared.info.setdefault(name, {}).update({key: rel, "agrees": bool(rel <= tol)})
