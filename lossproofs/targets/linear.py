"""torch's ``linear_cross_entropy`` as implementations under test: the reference path, every
chunked configuration, the ``nn`` module, a probe of the configurations that fall back, and the
error scales a matmul-fed loss is compared at.

Each implementation is a callable with the reference's signature
``fn(input, linear_weight, target, linear_bias=None, weight=None, reduction="mean",
ignore_index=None, label_smoothing=0.0)``; :func:`target` wraps one in a
:class:`~lossproofs.targets.Target` whose ``linear_cross_entropy`` it provides, so
``lossproofs.checks.call`` runs it on a :class:`~lossproofs.cases.Case`.

Chunked configurations (``nn.LinearCrossEntropyOptions``) are ``acc_policy`` × chunking:

- ``acc_policy`` ∈ :data:`ACC_POLICIES` and ``acc_dtype`` ∈ {None, float32} (float32 only
  changes anything for float16/bfloat16 input, the one mixed pair torch allows);
- chunking either by an explicit ``batch_chunk_size`` (``chunking_method=None``) of kind
  :data:`CHUNK_SIZES` — 1, a non-divisor of N (the last chunk is shorter) or at least N (one
  chunk) — chosen per call from the input's N, or by a ``chunking_method`` from
  :data:`CHUNKING_METHODS` (``batch_chunk_size=None``; torch rejects the two together when they
  disagree).

What the installed torch offers is read from it, not assumed of one release (see "what the
installed torch offers" below): whether it has ``F.linear_cross_entropy`` at all
(:data:`HAS_LINEAR_CROSS_ENTROPY`, torch ≥ 2.13), the ``acc_policy`` values and chunking methods
its ``LinearCrossEntropyOptions`` accepts (:data:`ACC_POLICIES`, :data:`CHUNKING_METHODS`; those
of :data:`KNOWN_ACC_POLICIES` it rejects are :data:`UNAVAILABLE_ACC_POLICIES`, with the release
that removed them), and which calls fall back to the reference path (:data:`FALLBACK_RULE`, a
table per release range citing torch's source).
"""

from __future__ import annotations

import re
import sys
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lossproofs import reference
from lossproofs.cases import Case
from lossproofs.families import TORCH, TORCH_CHUNKED, TORCH_EAGER
from lossproofs.implementation import Target
from lossproofs.registry import LOSSES, nn_linear_cross_entropy

FUNCTION = "linear_cross_entropy"
CHUNK_SIZES = ("1", "non-divisor", "at least N")
FALLBACK_WARNING = "linear_cross_entropy: ``options`` ignored"
SIGNATURE_DEFAULTS = dict(linear_bias=None, weight=None, reduction="mean", ignore_index=None,
                          label_smoothing=0.0)


# -- what the installed torch offers ------------------------------------------------------------
def _release(version: str) -> tuple[int, int]:
    """``(major, minor)`` of a torch version string (``"2.14.1+cu130"`` → ``(2, 14)``; a
    pre-release counts as its release)."""
    m = re.match(r"(\d+)\.(\d+)", str(version))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


TORCH_RELEASE = _release(torch.__version__)
HAS_LINEAR_CROSS_ENTROPY = (hasattr(F, "linear_cross_entropy")
                            and hasattr(nn, "LinearCrossEntropyOptions"))
MISSING_REASON = (f"torch {torch.__version__} has no F.linear_cross_entropy / "
                  "nn.LinearCrossEntropyOptions (added in torch 2.13)")

# Every acc_policy some torch release has accepted, in the order the suite lists them; the
# installed torch's are read from it (ACC_POLICIES below), these only name what to look for
# and what to report missing.
KNOWN_ACC_POLICIES = ("accurate", "balanced", "compact", "auto")
# What happened to a known policy in a later release: (release, what), cited from torch's source.
ACC_POLICY_CHANGES = {
    "balanced": ((2, 14), "removed in torch 2.14 (torch/nn/modules/"
                          "linear_cross_entropy_options.py: 2.13 accepts {'auto', 'accurate', "
                          "'balanced', 'compact'} in __post_init__, 2.14 has _VALID_ACC_POLICIES "
                          "= ('auto', 'accurate', 'compact'); 'compact' took over balanced's "
                          "weight-gradient scratch on non-CUDA mixed precision)"),
}
KNOWN_CHUNKING_METHODS = ("auto", "aspect_ratio", "aspect_ratio:2")


def _options_rejects(**kwargs) -> str | None:
    """torch's ValueError message when ``nn.LinearCrossEntropyOptions(**kwargs)`` is rejected,
    else None."""
    try:
        nn.LinearCrossEntropyOptions(**kwargs)
    except ValueError as exc:
        return str(exc)
    return None


def _acc_policy_candidates() -> list[str]:
    """Names to try: the known ones, the ``acc_policy`` field's ``Literal`` annotation, torch's
    own list where it has one (``_VALID_ACC_POLICIES``, torch ≥ 2.14) and the names its
    ValueError for an invalid policy lists (``expected one of 'auto', ...``, torch ≥ 2.14)."""
    names = list(KNOWN_ACC_POLICIES)
    cls = nn.LinearCrossEntropyOptions
    try:
        hint = typing.get_type_hints(cls).get("acc_policy")
    except Exception:  # an annotation this Python cannot evaluate: the other sources remain
        hint = next((f.type for f in fields(cls) if f.name == "acc_policy"), None)
    if typing.get_origin(hint) is typing.Literal:
        names += [a for a in typing.get_args(hint) if isinstance(a, str)]
    module = sys.modules.get(cls.__module__)
    names += [a for a in getattr(module, "_VALID_ACC_POLICIES", ()) if isinstance(a, str)]
    message = _options_rejects(acc_policy="lossproofs-not-a-policy") or ""
    _, _, listed = message.partition("expected one of")
    names += re.findall(r"'([^']+)'", listed)
    return list(dict.fromkeys(names))


def _offered() -> tuple[tuple[str, ...], dict[str, str], tuple[str, ...], dict[str, str]]:
    if not HAS_LINEAR_CROSS_ENTROPY:
        return ((), dict.fromkeys(KNOWN_ACC_POLICIES, MISSING_REASON), (),
                dict.fromkeys(KNOWN_CHUNKING_METHODS, MISSING_REASON))
    policies, missing = [], {}
    for name in _acc_policy_candidates():
        why = _options_rejects(acc_policy=name)
        if why is None:
            policies.append(name)
            continue
        if name not in KNOWN_ACC_POLICIES:
            continue
        since, what = ACC_POLICY_CHANGES.get(name, ((99, 0), ""))
        missing[name] = (what if TORCH_RELEASE >= since else
                         f"torch {torch.__version__} rejects it: ValueError: {why}")
    methods, missing_methods = [], {}
    for name in KNOWN_CHUNKING_METHODS:
        why = _options_rejects(chunking_method=name)
        if why is None:
            methods.append(name)
        else:
            missing_methods[name] = f"torch {torch.__version__} rejects it: ValueError: {why}"
    return tuple(policies), missing, tuple(methods), missing_methods


# ACC_POLICIES: the acc_policy values the installed torch accepts (2.13: accurate, balanced,
# compact, auto; 2.14: accurate, compact, auto); UNAVAILABLE_ACC_POLICIES: the known ones it
# rejects, each with why. The same for CHUNKING_METHODS.
ACC_POLICIES, UNAVAILABLE_ACC_POLICIES, CHUNKING_METHODS, UNAVAILABLE_CHUNKING_METHODS = (
    _offered())


@dataclass(frozen=True)
class FallbackRule:
    """When the chunked path hands a call to the reference path with a warning, in one range of
    torch releases (``since`` on, until the next rule's). In every release so far: a K-dim
    weight, ``label_smoothing != 0``, a reduction outside {mean, sum, none}, or a target that is
    neither int64 class indices nor (where ``probability_targets`` says so) a chunkable
    probability target: of the input's dtype, ``reduction`` mean or sum, not requiring grad."""

    since: tuple[int, int]
    probability_targets: bool
    source: str


FALLBACK_RULES = (
    FallbackRule((2, 13), False,
                 "torch 2.13.0 torch/nn/functional.py:3882 (linear_cross_entropy): `if options "
                 "is not None and (out_features or reduction not in {'mean', 'sum', 'none'} or "
                 "label_smoothing != 0.0 or target.dtype != torch.int64 or "
                 "torch.jit.is_tracing())` warns and runs the reference path"),
    FallbackRule((2, 14), True,
                 "torch 2.14.1 torch/nn/functional.py:3896-3908 (linear_cross_entropy): "
                 "`chunkable_prob_target = (target_contains_probabilities and reduction in "
                 "{'mean', 'sum'} and target.dtype == input.dtype and not (target.requires_grad "
                 "and torch.is_grad_enabled()))`; the fallback's dtype clause became "
                 "`(target.dtype != torch.int64 and not chunkable_prob_target)`"),
)
# The rule of the installed torch: the last one whose range it is in (a torch newer than the
# table gets the newest rule; test_fallback_probe_matches_the_rule checks it against what the
# installed torch does). None without F.linear_cross_entropy.
FALLBACK_RULE = (next((r for r in reversed(FALLBACK_RULES) if TORCH_RELEASE >= r.since), None)
                 if HAS_LINEAR_CROSS_ENTROPY else None)
PROBABILITY_TARGETS_CHUNK = bool(FALLBACK_RULE and FALLBACK_RULE.probability_targets)


def torch_offers() -> dict[str, Any]:
    """What the installed torch offers of ``linear_cross_entropy``, as read above (for reports
    and the pytest header)."""
    return {"torch": str(torch.__version__), "linear_cross_entropy": HAS_LINEAR_CROSS_ENTROPY,
            "acc_policies": list(ACC_POLICIES), "unavailable_acc_policies":
            dict(UNAVAILABLE_ACC_POLICIES), "chunking_methods": list(CHUNKING_METHODS),
            "probability_targets_chunk": PROBABILITY_TARGETS_CHUNK,
            "fallback_rule": None if FALLBACK_RULE is None else FALLBACK_RULE.source}


def chunk_size(kind: str, n: int) -> int:
    """The ``batch_chunk_size`` of ``kind`` for a batch of ``n`` rows (unbatched input: n = 1).

    ``"non-divisor"`` is the smallest k ≥ 2 that does not divide n (so the last chunk is
    shorter and at least two chunks run); for n ≤ 2 none exists below n and it is n + 1.
    A positive decimal integer is that size, whatever n.
    """
    if kind.isdigit() and int(kind) >= 1:
        return int(kind)
    if kind == "at least N":
        return n + 3
    if kind == "non-divisor":
        return next((k for k in range(2, n) if n % k), n + 1)
    raise ValueError(f"unknown chunk size kind {kind!r}: expected one of {CHUNK_SIZES}")


@dataclass(frozen=True)
class ChunkedConfig:
    """One chunked configuration. ``chunk`` is a kind from :data:`CHUNK_SIZES` (explicit
    ``batch_chunk_size``) or None (``chunking_method`` picks it)."""

    acc_policy: str = "accurate"
    chunk: str | None = "non-divisor"
    chunking_method: str | None = None
    acc_dtype: str | None = None
    allow_retain_graph: bool = False

    @property
    def name(self) -> str:
        how = f"chunk={self.chunk}" if self.chunk else f"method={self.chunking_method}"
        extra = (f",acc_dtype={self.acc_dtype}" if self.acc_dtype else "") + (
            ",retain" if self.allow_retain_graph else "")
        return f"chunked[{self.acc_policy},{how}{extra}]"

    def options(self, n: int, dtype: torch.dtype = torch.float64
                ) -> nn.LinearCrossEntropyOptions:
        """The options object for a batch of ``n`` rows of ``dtype``. A float32 ``acc_dtype``
        applies to float16/bfloat16 input only (torch rejects it with any other dtype)."""
        mixed = self.acc_dtype is not None and dtype in (torch.float16, torch.bfloat16)
        return nn.LinearCrossEntropyOptions(
            allow_retain_graph=self.allow_retain_graph,
            batch_chunk_size=chunk_size(self.chunk, n) if self.chunk else None,
            chunking_method=None if self.chunk else self.chunking_method,
            acc_policy=self.acc_policy,
            acc_dtype=getattr(torch, self.acc_dtype) if mixed else None,
        )


def all_configurations() -> list[ChunkedConfig]:
    """Every acc_policy × (explicit chunk size | chunking method) × acc_dtype."""
    out = []
    for policy in ACC_POLICIES:
        for acc_dtype in (None, "float32"):
            out += [ChunkedConfig(policy, kind, None, acc_dtype) for kind in CHUNK_SIZES]
            out += [ChunkedConfig(policy, None, m, acc_dtype) for m in CHUNKING_METHODS]
    return out


REPRESENTATIVE = (
    ChunkedConfig("accurate", "1"),
    ChunkedConfig("accurate", "non-divisor", acc_dtype="float32"),
    ChunkedConfig("balanced", "at least N"),
    ChunkedConfig("balanced", "non-divisor", acc_dtype="float32"),
    ChunkedConfig("compact", "non-divisor"),
    ChunkedConfig("compact", "1", acc_dtype="float32"),
    ChunkedConfig("auto", None, "auto"),
    ChunkedConfig("accurate", None, "aspect_ratio"),
    ChunkedConfig("compact", None, "aspect_ratio:2", acc_dtype="float32"),
)


def available(config: ChunkedConfig) -> ChunkedConfig:
    """``config`` if the installed torch has its acc_policy, else the same chunking with
    ``"compact"`` (``balanced``'s successor in torch 2.14) or the first policy it has."""
    if config.acc_policy in ACC_POLICIES or not ACC_POLICIES:
        return config
    return replace(config, acc_policy="compact" if "compact" in ACC_POLICIES
                   else ACC_POLICIES[0])


def representative_configurations() -> list[ChunkedConfig]:
    """A set that covers every acc_policy the installed torch has, every chunk-size kind and
    every chunking method at least once, with and without a float32 accumulator (what the
    per-dtype properties run). A configuration of a policy the torch lacks keeps its chunking
    under :func:`available`'s substitute (so "at least N" stays covered); any policy the list
    does not name is added with a non-divisor chunk."""
    out = [available(c) for c in REPRESENTATIVE
           if available(c).chunking_method in (None, *CHUNKING_METHODS)]
    out += [ChunkedConfig(p, "non-divisor") for p in ACC_POLICIES
            if p not in {c.acc_policy for c in out}]
    return list(dict.fromkeys(out))


# -- the callables ------------------------------------------------------------------------------
def _batch(input: torch.Tensor) -> int:
    return input.shape[0] if input.dim() == 2 else 1


def reference_path() -> Callable[..., torch.Tensor]:
    """``F.linear_cross_entropy(..., options=None)``: linear, then cross_entropy."""
    def linear_cross_entropy(input, linear_weight, target, linear_bias=None, weight=None,
                             reduction="mean", ignore_index=None, label_smoothing=0.0):
        return F.linear_cross_entropy(
            input, linear_weight, target, linear_bias=linear_bias, weight=weight,
            reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing,
            options=None)
    linear_cross_entropy.__qualname__ = "reference_path"
    return linear_cross_entropy


def chunked(config: ChunkedConfig) -> Callable[..., torch.Tensor]:
    """``F.linear_cross_entropy(..., options=config.options(N))``, N from the input per call.
    Fallback warnings pass through to the caller."""
    def linear_cross_entropy(input, linear_weight, target, linear_bias=None, weight=None,
                             reduction="mean", ignore_index=None, label_smoothing=0.0):
        return F.linear_cross_entropy(
            input, linear_weight, target, linear_bias=linear_bias, weight=weight,
            reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing,
            options=config.options(_batch(input), input.dtype))
    linear_cross_entropy.__qualname__ = config.name
    return linear_cross_entropy


def nn_module(config: ChunkedConfig | None = None) -> Callable[..., torch.Tensor]:
    """``nn.LinearCrossEntropyLoss`` in the functional signature
    (:func:`lossproofs.registry.nn_linear_cross_entropy`), on ``config``'s chunked path (the
    reference path when None)."""
    fn = nn_linear_cross_entropy(
        None if config is None else lambda input: config.options(_batch(input), input.dtype))
    fn.__qualname__ = "nn" + ("" if config is None else f"[{config.name}]")
    return fn


def target(fn: Callable[..., torch.Tensor], name: str | None = None,
           families: frozenset[str] = frozenset()):
    """A :class:`~lossproofs.implementation.Target` providing ``linear_cross_entropy`` = ``fn``, of
    ``families`` (whose ledger divergences are then expected of it)."""
    return Target(name or getattr(fn, "__qualname__", "linear"), {FUNCTION: fn}, families,
                  description=f"torch.nn.functional.linear_cross_entropy ({name or fn})")


def chunked_target(config: ChunkedConfig, module: bool = False):
    """``config``'s chunked path (through ``nn.LinearCrossEntropyLoss`` with ``module``) as a
    Target of the torch-chunked family, so the ledger's chunked divergences are set aside."""
    fn = nn_module(config) if module else chunked(config)
    return target(fn, fn.__qualname__, frozenset({TORCH, TORCH_EAGER, TORCH_CHUNKED}))


# -- running a case ---------------------------------------------------------------------------
# The differentiable arguments (the registry's Loss.gradient_arguments); "target" too for
# probability targets.
GRADIENTS = LOSSES[FUNCTION].gradient_arguments
GRADIENT_NAMES = (*GRADIENTS, "target")


def tensors(case: Case, requires_grad: frozenset[str] = frozenset()):
    """``(args, kwargs, leaves)`` for a linear_cross_entropy case: every tensor (the
    linear_weight, linear_bias, target and class weight too) in the case's layout and floating
    tensors in its dtype, as :meth:`Case.torch_args` makes them; ``leaves[name]`` the leaf
    tensors requiring grad for the names in ``requires_grad`` (from :data:`GRADIENT_NAMES`;
    absent ones are skipped). A leaf keeps its tensor's layout (``detach`` keeps strides)."""
    (x, w, t), kwargs = case.torch_args()
    leaves = {}
    named = {"input": x, "linear_weight": w, "target": t, "linear_bias": kwargs.get("linear_bias")}
    for name in requires_grad:
        tensor = named.get(name)
        if tensor is None or not tensor.is_floating_point():
            continue
        leaf = tensor.detach().requires_grad_(True)
        leaves[name] = leaf
        named[name] = leaf
    if "linear_bias" in kwargs:
        kwargs["linear_bias"] = named["linear_bias"]
    return (named["input"], named["linear_weight"], named["target"]), kwargs, leaves


def reference_args(case: Case) -> tuple[tuple[np.ndarray, ...], dict]:
    """The arrays and params as the implementation sees them (rounded to the dtype), float64
    (``linear_bias`` included: :meth:`Case.reference_args`)."""
    return case.reference_args()


def forward(fn, case: Case) -> tuple[np.ndarray, np.ndarray]:
    """``(actual, expected)`` forward values, float64."""
    args, kwargs, _ = tensors(case)
    out = fn(*args, **kwargs)
    arrays, params = reference_args(case)
    expected = np.asarray(reference.linear_cross_entropy(*arrays, **params), dtype=np.float64)
    return out.detach().to(torch.float64).numpy(), expected


def gradients(fn, case: Case, seed: int, wrt: tuple[str, ...] = ("input", "linear_weight",
                                                                 "linear_bias")):
    """Autograd gradients of ``fn`` with a random ``grad_output`` (rounded to the dtype) against
    the reference's closed forms, for the names in ``wrt`` that the case has (a frozen tensor is
    simply not in ``wrt``). Returns ``(grad_output, [(name, actual, expected), ...])``."""
    args, kwargs, leaves = tensors(case, frozenset(wrt))
    out = fn(*args, **kwargs)
    g = case.rounded(np.random.default_rng(seed).uniform(-2.0, 2.0, size=tuple(out.shape)))
    names = [n for n in wrt if n in leaves]
    grads = torch.autograd.grad(out, [leaves[n] for n in names],
                                torch.from_numpy(g).to(out.dtype), allow_unused=True)
    arrays, params = reference_args(case)
    gi, gw, gb = reference.linear_cross_entropy_backward(g, *arrays, **params)
    expected = {"input": gi, "linear_weight": gw, "linear_bias": gb}
    if "target" in names:
        expected["target"] = reference.linear_cross_entropy_target_backward(g, *arrays, **params)
    results = []
    for name, actual in zip(names, grads):
        e = np.asarray(expected[name], dtype=np.float64)
        a = np.zeros_like(e) if actual is None else actual.detach().to(torch.float64).numpy()
        results.append((name, a, e))
    return g, results


# -- the checks, with the target's known divergences set aside --------------------------------
def _quiet(fn, *args, **kwargs):
    """Call with the documented fallback warning silenced (the fallback tests check it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=FALLBACK_WARNING)
        return fn(*args, **kwargs)


def wrt(case: Case, names: tuple[str, ...] = GRADIENTS, frozen_target: bool = False
        ) -> tuple[str, ...]:
    """The gradients a check compares: ``names``, and the target's for probability targets
    unless ``frozen_target`` (a probability target that does not require grad: torch ≥ 2.14
    runs those on the chunked path)."""
    floating = case.arrays[2].dtype.kind == "f"
    return (*names, "target") if floating and not frozen_target else names


# -- fallbacks ----------------------------------------------------------------------------------
def documented_fallback(case: Case, target_requires_grad: bool = False) -> bool:
    """Whether the installed torch's chunked path warns and falls back to the reference path
    on ``case`` (:data:`FALLBACK_RULE`): always for label smoothing, a K-dim linear weight or a
    target that is not int64 class indices, except, from torch 2.14, a probability target with
    ``reduction`` mean or sum that does not require grad (:func:`tensors` makes it in the
    case's dtype, the input's, as torch requires)."""
    target_array = case.arrays[2]
    if case.params.get("label_smoothing", 0.0) != 0.0 or case.arrays[1].ndim > 2:
        return True
    if target_array.dtype == np.int64:
        return False
    if target_array.dtype.kind == "f" and PROBABILITY_TARGETS_CHUNK:
        return (case.params.get("reduction", "mean") not in ("mean", "sum")
                or target_requires_grad)
    return True


def call_recording_warnings(fn, *args, **kwargs) -> tuple[Any, list[str]]:
    """``fn(*args, **kwargs)`` and the messages of the fallback warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in caught if FALLBACK_WARNING in str(w.message)]


PROBE_FALLBACK_FAMILIES = {
    # family: falls back (under a rule whose probability_targets is False, True)
    "plain": (False, False), "bias, class weight, ignore_index": (False, False),
    "reduction none": (False, False), "unbatched": (False, False),
    "label smoothing": (True, True), "negative label smoothing": (True, True),
    "probability target": (True, False), "probability target, reduction sum": (True, False),
    "probability target, reduction none": (True, True),
    "probability target requiring grad": (True, True),
    "uint8 target": (True, True), "K-dim weight": (True, True),
}


def expected_fallbacks(rule: FallbackRule | None = None) -> set[str]:
    """The families of :func:`probe_fallbacks` that fall back under ``rule`` (the installed
    torch's by default)."""
    rule = rule or FALLBACK_RULE
    return {family for family, fallback in PROBE_FALLBACK_FAMILIES.items()
            if fallback[bool(rule and rule.probability_targets)]}


def probe_fallbacks(configs: list[ChunkedConfig] | None = None) -> list[dict]:
    """Which argument families make the chunked path fall back, per configuration: one record
    ``{config, family, warned}`` per pair, from one small call each (float64, N = 3)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, generator=g, dtype=torch.float64)
    w = torch.randn(4, 2, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 3, 1])
    p = torch.softmax(torch.randn(3, 4, generator=g, dtype=torch.float64), 1)
    families = {
        "plain": ((x, w, t), {}),
        "bias, class weight, ignore_index": (
            (x, w, t), dict(linear_bias=torch.zeros(4, dtype=torch.float64),
                            weight=torch.ones(4, dtype=torch.float64), ignore_index=3)),
        "reduction none": ((x, w, t), dict(reduction="none")),
        "unbatched": ((x[0], w, t[0]), {}),
        "label smoothing": ((x, w, t), dict(label_smoothing=0.1)),
        "negative label smoothing": ((x, w, t), dict(label_smoothing=-0.1)),
        "probability target": ((x, w, p), {}),
        "probability target, reduction sum": ((x, w, p), dict(reduction="sum")),
        "probability target, reduction none": ((x, w, p), dict(reduction="none")),
        "probability target requiring grad": ((x, w, p.clone().requires_grad_()), {}),
        "uint8 target": ((x, w, t.to(torch.uint8)), {}),
        "K-dim weight": ((x, w.reshape(2, 2, 2), torch.zeros(3, 2, dtype=torch.int64)), {}),
    }
    records = []
    for config in configs or representative_configurations():
        fn = chunked(config)
        for family, (args, kwargs) in families.items():
            _, warned = call_recording_warnings(fn, *args, **kwargs)
            records.append({"config": config.name, "family": family, "warned": bool(warned)})
    return records


def with_params(case: Case, **params) -> Case:
    """``case`` with some params replaced (None removes one)."""
    merged = {k: v for k, v in {**case.params, **params}.items() if v is not None}
    return replace(case, params=merged)
