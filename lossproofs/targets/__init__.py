"""The implementation under test: one indirection between the suite and what it proves.

Every test reaches the functions it checks through a :class:`Target`, never by calling torch
directly, so the whole suite can be pointed at another implementation (``--target`` /
``LOSSPROOFS_TARGET``). A target exposes ``torch.nn.functional``-style callables that take and
return CPU tensors (a device target moves them, differentiably, so autograd still reaches the
caller's leaf tensors).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lossproofs.declarations import InvalidDeclaration, validate
from lossproofs.error_cases import ERROR_CASES
from lossproofs.families import TORCH, TORCH_CHUNKED, TORCH_COMPILE, TORCH_CUDA, TORCH_EAGER
from lossproofs.frameworks import FRAMEWORK_MODULES
from lossproofs.implementation import FUNCTIONS, Target
from lossproofs.registry import LOSSES
from lossproofs.targets import linear as L

EAGER_FAMILIES = frozenset({TORCH, TORCH_EAGER})


def torch_functional() -> Target:
    """torch.nn.functional on the CPU: the default implementation under test."""
    fns = {name: spec.torch for name, spec in LOSSES.items()}
    return Target("torch", fns, EAGER_FAMILIES, description="torch.nn.functional on CPU")


def torch_modules() -> Target:
    """The ``torch.nn`` module API (``nn.CrossEntropyLoss(...)(input, target)`` and so on),
    wrapped in functional signatures. ``logsumexp`` has no module and is reported missing."""
    fns = {name: spec.nn for name, spec in LOSSES.items() if spec.nn is not None}
    notes = {name: spec.nn_missing for name, spec in LOSSES.items() if spec.nn is None}
    return Target("nn", fns, EAGER_FAMILIES,
                  description="torch.nn modules (nn.CrossEntropyLoss, ...) on CPU", notes=notes)


def torch_compiled() -> Target:
    """``torch.compile`` of each functional (inductor, dynamic shapes), on the CPU."""
    import torch._dynamo

    # Hypothesis draws many shapes and parameter combinations; without a larger cache the
    # compiler falls back to eager after a few recompilations and the target stops being tested.
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 512)
    base = torch_functional()
    fns = {name: torch.compile(fn, dynamic=True) for name, fn in base.functions.items()}
    return Target("compile", fns, frozenset({TORCH, TORCH_COMPILE}),
                  description="torch.compile(torch.nn.functional.*) on CPU",
                  version=f"torch {torch.__version__} (inductor)",
                  notes={"second order": "torch.compile raises 'torch.compile with aot_autograd "
                                         "does not currently support double backward'"})


# Checks that cannot run on CUDA: an out-of-range class index there is a device-side assert,
# which leaves the CUDA context unusable for the rest of the process instead of raising.
CUDA_UNSUPPORTED = {
    "error:target out of bounds":
        "on CUDA an out-of-range target is a device-side assert that poisons the CUDA "
        "context, not a catchable IndexError",
    "error:BCE input outside [0, 1]":
        "on CUDA BCE's range check is a device-side assert, not a catchable RuntimeError",
    "error:BCE target outside [0, 1]":
        "on CUDA BCE's range check is a device-side assert, not a catchable RuntimeError",
}


def _on_device(fn: Callable[..., Any], device: str) -> Callable[..., Any]:
    def moved(*args, **kwargs):
        # .to() is differentiable, so gradients flow back to the caller's CPU leaves.
        args = [a.to(device) if isinstance(a, torch.Tensor) else a for a in args]
        kwargs = {k: v.to(device) if isinstance(v, torch.Tensor) else v
                  for k, v in kwargs.items()}
        return fn(*args, **kwargs).to("cpu")

    moved.__name__ = getattr(fn, "__name__", "moved")
    return moved


def torch_cuda() -> Target:
    """torch.nn.functional on the first CUDA device; tensors move there and back."""
    if not torch.cuda.is_available():
        raise RuntimeError("target 'cuda' needs a CUDA device, and torch sees none")
    base = torch_functional()
    fns = {name: _on_device(fn, "cuda") for name, fn in base.functions.items()}
    return Target("cuda", fns, EAGER_FAMILIES | {TORCH_CUDA}, device="cuda",
                  description=f"torch.nn.functional on {torch.cuda.get_device_name(0)}",
                  version=f"torch {torch.__version__}, CUDA {torch.version.cuda}",
                  notes=dict(CUDA_UNSUPPORTED))


def torch_chunked(spec: str | None = None) -> Target:
    """torch's chunked ``linear_cross_entropy`` (``F.linear_cross_entropy(..., options=...)``):
    ``chunked`` is the representative configuration (accurate policy, an explicit
    ``batch_chunk_size`` that does not divide N, so the last chunk is shorter);
    ``chunked:<acc_policy>,<chunking_method>,<batch_chunk_size>[,<acc_dtype>]`` any one, with
    ``none`` for an unset field and a batch_chunk_size that is a positive integer,
    ``non-divisor`` or ``at-least-N`` (e.g. ``chunked:compact,none,1``,
    ``chunked:auto,aspect_ratio,none``). It provides linear_cross_entropy only."""
    config = L.ChunkedConfig() if spec is None else _chunked_config(spec)
    notes = {name: f"target 'chunked' is torch's chunked linear_cross_entropy only; "
                   f"{name} has no chunked path" for name in FUNCTIONS if name != L.FUNCTION}
    notes["second order"] = ("the chunked path documents higher-order AD as unsupported: "
                             "create_graph=True gives gradients without a grad_fn")
    if not config.allow_retain_graph:
        notes["retain_graph"] = (
            "documented: with allow_retain_graph=False the chunked path's mean/sum gradients "
            "are computed in forward and scaled in place, so a second backward raises "
            "(lossproofs/suite/test_linear_torch_paths.py runs configurations that allow it)")
    # Bad input the chunked path rejects with another exception type than the reference path
    # (or accepts) is a ledger entry of this family (lossproofs.ledger.known_error_type), run
    # by test_divergences.py; the error tests skip it, naming the entry.
    return Target(f"chunked:{spec}" if spec else "chunked",
                  {L.FUNCTION: L.chunked(config)},
                  frozenset({TORCH, TORCH_EAGER, TORCH_CHUNKED}),
                  description=f"torch.nn.functional.linear_cross_entropy, {config.name}",
                  notes=notes)


def _chunked_config(spec: str):
    fields = [None if f.strip().lower() in ("none", "") else f.strip() for f in spec.split(",")]
    if len(fields) not in (3, 4):
        raise ValueError(f"chunked:{spec}: expected <acc_policy>,<chunking_method>,"
                         "<batch_chunk_size>[,<acc_dtype>]")
    policy, method, chunk = fields[:3]
    acc_dtype = fields[3] if len(fields) == 4 else None
    if policy not in L.ACC_POLICIES:
        raise ValueError(f"chunked:{spec}: acc_policy {policy!r} is not one of "
                         f"{L.ACC_POLICIES}")
    if chunk is not None:
        chunk = "at least N" if chunk.lower() == "at-least-n" else chunk
        if chunk not in L.CHUNK_SIZES and not (chunk.isdigit() and int(chunk) >= 1):
            raise ValueError(f"chunked:{spec}: batch_chunk_size {chunk!r} is not a positive "
                             "integer, non-divisor or at-least-N")
    if method is not None and method not in L.CHUNKING_METHODS:
        raise ValueError(f"chunked:{spec}: chunking_method {method!r} is not one of "
                         f"{L.CHUNKING_METHODS}")
    if (chunk is None) == (method is None):
        raise ValueError(f"chunked:{spec}: give exactly one of chunking_method and "
                         "batch_chunk_size (torch rejects the two together)")
    if acc_dtype not in (None, "float32"):
        raise ValueError(f"chunked:{spec}: acc_dtype {acc_dtype!r}: only float32 (or none)")
    return L.ChunkedConfig(policy, chunk, method, acc_dtype)


def _import_user_module(path: str):
    """Import ``path``: a dotted module name, found on ``sys.path`` or else in the current
    directory (as ``python -m`` would), or a ``.py`` file's path. Returns ``(module, how to
    import it in a reproduction)``; a clear error says where it looked."""
    if path.endswith(".py") or os.sep in path or "/" in path:
        file = Path(path).expanduser().resolve()
        if not file.is_file():
            raise ModuleNotFoundError(f"no such file: {file}")
        name = file.stem
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        spec.loader.exec_module(module)
        setup = (f"import sys; sys.path.insert(0, {str(file.parent)!r})\n"
                 f"import {name}")
        return module, setup, name
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as first:
        if first.name != path.split(".")[0] and not path.startswith(f"{first.name}."):
            raise  # the module was found; something it imports was not
        cwd = os.getcwd()
        module = None
        if cwd not in sys.path and "" not in sys.path:
            sys.path.insert(0, cwd)  # the caller's directory, as `python -m` and pytest do
            try:
                module = importlib.import_module(path)
            except ModuleNotFoundError:
                sys.path.remove(cwd)
        if module is None:
            raise ModuleNotFoundError(
                f"{first} (looked on sys.path and in the current directory {cwd}; give a "
                f"file as --target module:path/to/{path.replace('.', '/')}.py or set "
                "PYTHONPATH)", name=first.name) from first
    return module, f"import {path}", path


def user_module(path: str) -> Target:
    """A user's module whose functions follow ``torch.nn.functional``'s names and signatures
    (tensors in, tensors out, autograd for the gradient tests): ``package.module`` (on
    ``sys.path`` or in the current directory) or ``path/to/file.py``. Any subset of
    :data:`FUNCTIONS` may be present; the others are reported missing. Its declarations
    (``NOT_PROVIDED``, ``CONVENTIONS``, ``UNSUPPORTED_CHECKS``) are checked against the known
    functions, families and checks (:func:`lossproofs.declarations.validate`)."""
    module, setup, qualifier = _import_user_module(path)
    fns = {name: getattr(module, name) for name in FUNCTIONS
           if callable(getattr(module, name, None))}
    notes = {name: f"module {path!r} does not define {name}()" for name in FUNCTIONS
             if name not in fns}
    version = getattr(module, "__version__", "unversioned")
    device = getattr(module, "DEVICE", "cpu")
    not_provided = dict(getattr(module, "NOT_PROVIDED", {}))
    conventions = dict(getattr(module, "CONVENTIONS", {}))
    unsupported = dict(getattr(module, "UNSUPPORTED_CHECKS", {}))
    validate(f"module {path!r}", not_provided, conventions, unsupported,
             {case.check_name for case in ERROR_CASES})
    notes.update(unsupported)
    # A module may say which implementation family it belongs to (e.g. a thin wrapper of torch's
    # kernels), so that the ledger's divergences of that family are expected of it.
    families = frozenset(getattr(module, "TARGET_FAMILIES", ()))
    return Target(f"module:{path}", fns, families, device=device, version=f"{path} {version}",
                  description=(module.__doc__ or path).strip().splitlines()[0], notes=notes,
                  not_provided=not_provided, conventions=conventions,
                  torch_exceptions=bool(getattr(module, "RAISES_TORCH_EXCEPTIONS", False)),
                  reproduce=(setup, f"{qualifier}."))


def framework(name: str) -> Callable[[], Target]:
    """The built-in target of another framework (``jax``, ``tensorflow``, ``tinygrad``): its own
    loss functions in the input's dtype, gradients through its own autodiff
    (:mod:`lossproofs.frameworks`); a clear error when the framework is not installed."""

    def make() -> Target:
        try:
            target = user_module(FRAMEWORK_MODULES[name])
        except ImportError as e:
            raise RuntimeError(
                f"target {name!r} needs {name} installed (pip install 'lossproofs[{name}]'): "
                f"{e}") from e
        target.name = name
        target.families = frozenset({name})
        return target

    return make


BUILTIN_TARGETS: dict[str, Callable[[], Target]] = {
    "torch": torch_functional,
    "nn": torch_modules,
    "compile": torch_compiled,
    "cuda": torch_cuda,
    "chunked": torch_chunked,
    "jax": framework("jax"),
    "tensorflow": framework("tensorflow"),
    "tinygrad": framework("tinygrad"),
}


def get_target(spec: str | None = None) -> Target:
    """Resolve a target: a built-in name (default ``torch``), ``module:package.module``, or a
    bare dotted module path."""
    spec = spec or "torch"
    if spec in BUILTIN_TARGETS or spec.startswith("chunked:"):
        target = (BUILTIN_TARGETS[spec]() if spec in BUILTIN_TARGETS
                  else torch_chunked(spec.removeprefix("chunked:")))
        if spec != "torch":  # a reproduction rebuilds the same target
            # (named impl: "target" is an argument's name in the reproduction)
            target.reproduce = ("from lossproofs.targets import get_target\n"
                                f"impl = get_target({spec!r})", "impl.")
        return target
    path = spec.removeprefix("module:")
    if spec.startswith("module:") or "." in path or path.isidentifier():
        try:
            return user_module(path)
        except ModuleNotFoundError as e:
            raise ValueError(
                f"unknown target {spec!r}: not one of {sorted(BUILTIN_TARGETS)} and not an "
                f"importable module ({e})") from e
        except InvalidDeclaration as e:
            raise ValueError(f"target {spec!r}: {e}") from e
    raise ValueError(f"unknown target {spec!r}: expected one of {sorted(BUILTIN_TARGETS)} "
                     "or module:package.module")
