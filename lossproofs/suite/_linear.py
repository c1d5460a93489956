"""What the ``linear_cross_entropy`` suite modules share (``test_linear_cross_entropy.py``: the
target under test and the teeth; ``test_linear_torch_paths.py``: torch's own paths and options):
example counts, torch's paths and representative chunked configurations as targets, the
fixtures, and the checks of values, gradients and the retained-graph contract against the
reference (also used by ``tests/test_kernel_adapters.py``).

Tolerances come from :func:`lossproofs.tolerances.tolerance` through
:func:`lossproofs.checks.compare`, at :func:`lossproofs.checks.linear_error_scales`
(first-order error propagation through the matmul: ``|x|·|W|`` terms). Example counts: the
properties set ``max_examples`` below the profile's (see :data:`EXAMPLES`) so that each file
stays within about 20 s at ``CI=true``; each example runs a whole forward and backward plus the
reference's, and the per-dtype properties multiply by four.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, event, settings
from hypothesis import strategies as st

from lossproofs import checks, ledger, reference
from lossproofs.cases import Case
from lossproofs.checks import compare, linear_error_scales
from lossproofs.families import TORCH
from lossproofs.strategies.linear import (
    chunked_path_cases,
    linear_cross_entropy_cases,
)
from lossproofs.suite._support import require
from lossproofs.targets import linear as L

FUNCTION = L.FUNCTION
# Examples per property (the profile's count caps these: dev 25, ci 100).
EXAMPLES = {"per dtype": 30, "identity": 25, "contract": 20, "teeth": 60}
GRADS = L.GRADIENTS
FROZEN = {"nothing frozen": GRADS, "input frozen": ("linear_weight", "linear_bias"),
          "weight frozen": ("input", "linear_bias")}
CONFIGS = L.representative_configurations()
CHUNKED = {c.name: L.chunked(c) for c in CONFIGS}
# torch's paths as Targets (the chunked ones of the torch-chunked family: the ledger's chunked
# divergences are set aside for them as for --target chunked)
PATHS = {"reference path": L.target(L.reference_path(), "reference path"),
         **{c.name: L.chunked_target(c) for c in CONFIGS},
         "nn": L.target(L.nn_module(), "nn"),
         "nn " + CONFIGS[1].name: L.chunked_target(CONFIGS[1], module=True)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tensors here are tiny: with intra-op threads on a loaded machine each kernel waits
    milliseconds for the thread pool (measured 2.9 ms against 2 µs per cross_entropy call with
    2 threads on 2 busy cores), which would dominate the file's time. Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def linear(impl):
    """The target's linear_cross_entropy (skips with its reason when it has none, and for
    torch's own targets when the installed torch has no ``F.linear_cross_entropy``)."""
    require(impl, FUNCTION)
    if TORCH in impl.families and not L.HAS_LINEAR_CROSS_ENTROPY:
        pytest.skip(f"{impl.name}: {L.MISSING_REASON}")
    return impl.get(FUNCTION)


@pytest.fixture(scope="module")
def torch_paths(impl):
    """For tests about torch's own paths and options: torch-family targets only, on a torch
    that has ``F.linear_cross_entropy`` (torch ≥ 2.13; else skipped with that reason)."""
    if TORCH not in impl.families:
        pytest.skip(f"{impl.name}: about torch's linear_cross_entropy paths and options "
                    "(torch-family targets only)")
    if not L.HAS_LINEAR_CROSS_ENTROPY:
        pytest.skip(L.MISSING_REASON)


def _examples(kind: str):
    return settings(max_examples=min(EXAMPLES[kind], settings().max_examples))


# -- checks (plain functions: the properties and the teeth run them) -----------------------------
def _check(actual, expected, case: Case, kind: str, what: str, scale: float) -> None:
    c = compare(actual, expected, case.dtype, kind, scale)
    if not c.ok:
        raise AssertionError(c.message(what, np.asarray(actual), np.asarray(expected)))


_quiet = L._quiet


def _settle(outcome) -> None:
    """As the generic properties: record and set aside what a known divergence covers as a
    whole, fail with the check's message."""
    if outcome.divergences:
        event(f"set aside: {outcome.divergences}")
    assume(outcome.status != "set aside")
    outcome.raise_for_failure()


def check_target(target, case: Case, seed: int, wrt: tuple[str, ...] = GRADS) -> None:
    """Forward and the gradients in ``wrt`` (plus the target's for probability targets) of a
    Target against the reference, the target's known divergences set aside."""
    _settle(checks.check_linear_forward(target, case))
    _settle(checks.check_linear_gradients(target, case, seed, names=wrt))


def check_values_and_gradients(fn, case: Case, seed: int, wrt: tuple[str, ...] = GRADS) -> None:
    """The same for a bare callable, nothing set aside (the teeth's check)."""
    target = L.target(fn)
    checks.check_linear_forward(target, case, known=False).raise_for_failure()
    checks.check_linear_gradients(target, case, seed, known=False, names=wrt).raise_for_failure()


def _expected_gradients(case: Case, g: np.ndarray) -> dict[str, np.ndarray]:
    arrays, params = case.reference_args()
    gi, gw, gb = reference.linear_cross_entropy_backward(g, *arrays, **params)
    return {"input": gi, "linear_weight": gw, "linear_bias": gb}


def check_retain_graph(fn, case: Case, seed: int) -> None:
    """Two backward passes through one graph with different ``grad_output``s: each gives the
    gradients of its own ``grad_output``, and the first pass's results are left untouched."""
    args, kwargs, leaves = L.tensors(case, frozenset(GRADS))
    out = _quiet(fn, *args, **kwargs)
    names = [n for n in GRADS if n in leaves]
    rng = np.random.default_rng(seed)
    gs = [case.rounded(rng.uniform(-2.0, 2.0, size=tuple(out.shape))) for _ in range(2)]
    results, snapshots = [], []
    for g in gs:
        got = torch.autograd.grad(out, [leaves[n] for n in names],
                                  torch.from_numpy(g).to(out.dtype), retain_graph=True)
        results.append(got)
        snapshots.append([t.clone() for t in got])
    for got, snap in zip(results[:1], snapshots[:1]):
        for name, t, s in zip(names, got, snap):
            if not (torch.equal(t.isnan(), s.isnan()) and torch.equal(t.nan_to_num(),
                                                                     s.nan_to_num())):
                raise AssertionError(f"the first backward's {name} gradient changed when the "
                                     "graph was differentiated again")
    for g, got in zip(gs, results):
        expected = _expected_gradients(case, g)
        scales = linear_error_scales(case, g)
        for name, t in zip(names, got):
            _check(t.detach().double().numpy(), expected[name], case, "gradient",
                   f"{name} gradient of a repeated backward", scales[name])


def _set_aside_gradient(target, case: Case) -> bool:
    found = ledger.set_aside(target, case, "gradient", ())
    if found:
        event(f"set aside: {found.names}")
    return bool(found)


def _cases(dtype: str | None = None):
    """Every parameter family, and as often the cases the chunked path runs itself."""
    return st.one_of(linear_cross_entropy_cases(dtype), chunked_path_cases(dtype))


def _composed(input, linear_weight, target, linear_bias=None, weight=None, reduction="mean",
              ignore_index=None, label_smoothing=0.0):
    """``cross_entropy(linear(x))`` with the K-dim weight as a ``(C·P, in)`` matrix."""
    c, *out, d = linear_weight.shape
    z = F.linear(input, linear_weight.reshape(-1, d),
                 None if linear_bias is None else linear_bias.reshape(-1))
    z = z.reshape(*input.shape[:-1], c, *out)
    return F.cross_entropy(z, target, weight=weight, reduction=reduction,
                           ignore_index=-100 if ignore_index is None else ignore_index,
                           label_smoothing=label_smoothing)


def _values_and_grads(fn, case: Case, g_seed: int, names=GRADS):
    args, kwargs, leaves = L.tensors(case, frozenset(names))
    out = _quiet(fn, *args, **kwargs)
    g = case.rounded(np.random.default_rng(g_seed).uniform(-2, 2, size=tuple(out.shape)))
    names = [n for n in names if n in leaves]
    grads = torch.autograd.grad(out, [leaves[n] for n in names],
                                torch.from_numpy(g).to(out.dtype)) if names else ()
    return g, {"forward": out.detach(), **dict(zip(names, grads))}


def _within_rounding(a: dict, b: dict, case: Case, g: np.ndarray, what: str) -> None:
    scales = linear_error_scales(case, g)
    for name in a:
        kind = "forward" if name == "forward" else "gradient"
        _check(a[name].double().numpy(), b[name].double().numpy(), case, kind,
               f"{what}: {name}", scales[name])
