"""The example adapters of GPU fused linear cross-entropy kernels in examples/:
``liger_linear_cross_entropy.py`` (Liger-Kernel), ``cce_linear_cross_entropy.py`` (Apple's Cut
Cross-Entropy) and ``quack_linear_cross_entropy.py`` (quack).

Where the library or a CUDA GPU is missing (this project's machines and CI) each module still
imports, defines no ``linear_cross_entropy`` and gives the reason, so the suite's
linear_cross_entropy tests skip with it: checked here in-process and through the documented
command. Their declarations must parse as the suite reads them. And the glue between torch's
signature and each library's (unbatched input as one row, ``ignore_index=None`` as -100,
the device round trip, quack's padding to multiples of 8) is run through the suite's own
values-and-gradients check with a stand-in for each kernel: a plain torch function with the
library's documented signature and the constraints the glue exists for (quack asserts
multiples of 8), so what is tested is the adapter, not the kernel. The kernels themselves run
only on a GPU machine (README, "Testing your own implementation").
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from examples import _fused_linear_ce as glue
from lossproofs.conformance_run import FAMILIES
from lossproofs.dtypes import REDUCTIONS
from lossproofs.error_cases import ERROR_CASES
from lossproofs.registry import FUNCTION_NAMES
from lossproofs.strategies.linear import linear_cross_entropy_cases
from lossproofs.suite._linear import check_values_and_gradients
from lossproofs.suite._support import require
from lossproofs.targets import Target, get_target
from lossproofs.targets.linear import FUNCTION, SIGNATURE_DEFAULTS

REPO = Path(__file__).resolve().parents[1]
ADAPTERS = {  # module → the distribution whose absence is a reason to skip
    "liger_linear_cross_entropy": "liger_kernel",
    "cce_linear_cross_entropy": "cut_cross_entropy",
    "quack_linear_cross_entropy": "quack",
}
KNOWN_FAMILIES = {f for f in FAMILIES if f not in ("all", "reduction")} | {
    f"reduction:{r}" for r in REDUCTIONS}
ERROR_CHECKS = {e.check_name for e in ERROR_CASES if e.function == FUNCTION}


def _module(name: str):
    return importlib.import_module(f"examples.{name}")


def _unavailable(module) -> str | None:
    return module.UNSUPPORTED_CHECKS.get(FUNCTION)


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request):
    return _module(request.param)


# -- the module contract ------------------------------------------------------------------------
def test_declarations_parse_as_the_suite_reads_them(adapter):
    assert adapter.__doc__.strip().splitlines()[0] and isinstance(adapter.__version__, str)
    assert adapter.DEVICE in ("cpu", "cuda")
    for table in (adapter.NOT_PROVIDED, adapter.CONVENTIONS):
        assert set(table) <= set(FUNCTION_NAMES)
        for families in table.values():
            for family, reason in families.items():
                assert family in KNOWN_FAMILIES, f"unknown parameter family {family!r}"
                assert isinstance(reason, str) and reason.strip()
    for check, reason in adapter.UNSUPPORTED_CHECKS.items():
        assert check in ERROR_CHECKS or check == FUNCTION, f"unknown check {check!r}"
        assert isinstance(reason, str) and reason.strip()
    target = get_target(f"module:examples.{adapter.__name__.rsplit('.', 1)[1]}")
    assert target.not_provided == adapter.NOT_PROVIDED
    assert target.device == adapter.DEVICE


def test_the_adapter_has_torchs_signature(adapter):
    params = inspect.signature(adapter.adapter(lambda *a, **k: None, "cpu")).parameters
    expected = {"input": inspect.Parameter.empty, "linear_weight": inspect.Parameter.empty,
                "target": inspect.Parameter.empty, **SIGNATURE_DEFAULTS}
    assert {n: p.default for n, p in params.items()} == expected


def test_the_docstring_gives_the_command_that_runs_it(adapter):
    name = adapter.__name__.rsplit(".", 1)[1]
    assert f"lossproofs test --target module:{name}" in adapter.__doc__


def test_the_declared_kernel_is_in_the_library_it_names(adapter):
    module, attribute = adapter.KERNEL
    assert module.split(".")[0] == ADAPTERS[adapter.__name__.rsplit(".", 1)[1]]
    assert attribute and adapter.INSTALL.startswith("pip install")


# -- where the library or the GPU is missing ------------------------------------------------------
def test_missing_kernel_skips_with_the_reason(adapter):
    reason = _unavailable(adapter)
    if reason is None:
        pytest.skip(f"{adapter.__name__}: the kernel is available here, the suite runs it")
    package = ADAPTERS[adapter.__name__.rsplit(".", 1)[1]]
    if importlib.util.find_spec(package) is None:
        assert adapter.INSTALL in reason
    if adapter.DEVICE == "cuda" and not torch.cuda.is_available():
        assert "a CUDA GPU" in reason
    with pytest.raises(AttributeError, match=r"unavailable: .*needs"):
        adapter.linear_cross_entropy  # noqa: B018  (the attribute access is what is tested)
    target = get_target(f"module:examples.{adapter.__name__.rsplit('.', 1)[1]}")
    assert target.get(FUNCTION) is None
    with pytest.raises(pytest.skip.Exception, match="needs"):
        require(target, FUNCTION)


def test_the_documented_command_skips_cleanly_without_the_kernel(tmp_path):
    """The README's command, from outside the checkout: every linear_cross_entropy test
    skips with the reason, nothing fails or errors (one adapter: the mechanism is shared)."""
    name = "quack_linear_cross_entropy"
    if _unavailable(_module(name)) is None:
        pytest.skip(f"{name}: the kernel is available here, the suite runs it")
    env = {**os.environ, "PYTHONPATH": str(REPO / "examples")}
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "lossproofs", "test", "--target", f"module:{name}",
         "-k", "test_values_and_gradients_match_reference or test_repeated_backward_leaves",
         "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    summary = out.strip().splitlines()[-1]
    assert proc.returncode == 0 and re.search(r"\b5 skipped\b", summary), out[-3000:]
    assert not re.search(r"passed|failed|error", summary), summary
    skips = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert sum(int(re.match(r"SKIPPED \[(\d+)\]", line).group(1)) for line in skips) == 5
    assert all("quack.linear_cross_entropy.chunked_linear_cross_entropy needs" in line
               for line in skips), out[-3000:]


# -- the glue, with a stand-in for each kernel -----------------------------------------------------
def _liger_stand_in(input, weight, target, bias=None, ce_weight=None, ignore_index=-100,
                    lse_square_scale=0.0, label_smoothing=0.0, reduction="mean"):
    assert input.dim() == 2 and target.dim() == 1 and lse_square_scale == 0.0
    return F.cross_entropy(F.linear(input, weight, bias), target, weight=ce_weight,
                           ignore_index=ignore_index, label_smoothing=label_smoothing,
                           reduction=reduction)


def _cce_stand_in(e, c, targets, bias=None, ignore_index=-100, softcap=None, reduction="mean",
                  impl="cce"):
    assert e.size()[:-1] == targets.size() and c.dim() == 2 and softcap is None
    targets.size(-1)  # the package's shift check: an IndexError for a 0-d target
    return F.cross_entropy(F.linear(e, c, bias), targets, ignore_index=ignore_index,
                           reduction=reduction)


def _quack_stand_in(x, weight, target, chunk_size=4096, ignore_index=-100, reduction="mean"):
    if reduction not in ("mean", "sum"):
        raise ValueError(f"Invalid reduction: {reduction}")
    assert x.shape[0] % 8 == 0 and x.shape[1] % 8 == 0 and weight.shape[0] % 8 == 0, (
        f"quack's GEMMs need multiples of 8, got x {tuple(x.shape)}, weight "
        f"{tuple(weight.shape)}")
    return F.cross_entropy(x @ weight.T, target, ignore_index=ignore_index, reduction=reduction)


STAND_INS = {"liger_linear_cross_entropy": _liger_stand_in,
             "cce_linear_cross_entropy": _cce_stand_in,
             "quack_linear_cross_entropy": _quack_stand_in}


def _provided_cases(module):
    """The cases ``module`` declares it provides (its families off in the strategy itself, so
    that hypothesis does not filter most draws away), in the dtypes it takes."""
    families = module.NOT_PROVIDED[FUNCTION]
    declared = Target(module.__name__, {}, not_provided=module.NOT_PROVIDED)
    dtypes = getattr(module, "DTYPES", None)
    return linear_cross_entropy_cases(
        probabilities=False if "probability target" in families else None,
        smoothed="label_smoothing" not in families, weighted="weight" not in families,
        biased="linear_bias" not in families, allow_kdim="k-dim" not in families,
    ).filter(lambda c: declared.excluded(c) is None
             and (dtypes is None or getattr(torch, c.dtype) in dtypes))


@pytest.mark.parametrize("name", sorted(STAND_INS))
@settings(max_examples=15)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_the_glue_computes_torchs_function(name, data, seed):
    """Through a stand-in kernel, the adapter passes the suite's values-and-gradients check on
    every case its module declares it provides (unbatched, ignore_index, dtypes, layouts)."""
    module = _module(name)
    case = data.draw(_provided_cases(module), label="case")
    check_values_and_gradients(module.adapter(STAND_INS[name], "cpu"), case, seed)


@pytest.mark.parametrize("name", sorted(STAND_INS))
def test_parameters_not_provided_are_refused_with_the_reason(name):
    module = _module(name)
    fn = module.adapter(STAND_INS[name], "cpu")
    x, w, t = torch.zeros(2, 3), torch.zeros(4, 3), torch.tensor([0, 1])
    probabilities = torch.full((2, 4), 0.25)
    calls = {"weight": dict(weight=torch.ones(4)), "label_smoothing": dict(label_smoothing=0.1),
             "linear_bias": dict(linear_bias=torch.zeros(4)),
             "reduction:none": dict(reduction="none")}
    for family, reason in module.NOT_PROVIDED[FUNCTION].items():
        with pytest.raises(NotImplementedError, match=family) as info:
            if family == "probability target":
                fn(x, w, probabilities)
            elif family == "k-dim":
                fn(x, torch.zeros(4, 2, 3), t)
            else:
                fn(x, w, t, **calls[family])
        assert reason in str(info.value)


def test_quack_padding_keeps_the_logits_and_masks_the_padding_classes():
    quack = _module("quack_linear_cross_entropy")
    rng = np.random.default_rng(0)
    # small integers: every product and sum is exact, so the logits must be equal bitwise
    x, w = (torch.from_numpy(rng.integers(-4, 5, size=s).astype(np.float64))
            for s in ((5, 3), (6, 3)))
    t = torch.tensor([0, 5, -100, 2, 1])
    xp, wp, tp = quack.padded(x, w, t, -100)
    assert xp.shape == (8, 8) and wp.shape == (8, 8) and tp.shape == (8,)
    z = xp @ wp.T
    assert torch.equal(z[:5, :6], x @ w.T)
    assert torch.all(z[:5, 6:] == quack.MASK_LOGIT)  # 1·(−2¹⁵) plus exact zeros
    assert torch.equal(tp, torch.tensor([0, 5, -100, 2, 1, -100, -100, -100]))
    for dtype in (torch.float16, torch.bfloat16):
        assert torch.tensor(quack.MASK_LOGIT, dtype=dtype).item() == quack.MASK_LOGIT
    assert torch.exp(torch.tensor(quack.MASK_LOGIT + 32600.0)).item() == 0.0  # float32


def test_quack_refuses_a_dtype_its_kernel_does_not_take():
    fn = _module("quack_linear_cross_entropy").adapter(_quack_stand_in, "cpu")
    with pytest.raises(NotImplementedError, match=r"torch\.float64"):
        fn(torch.zeros(2, 3, dtype=torch.float64), torch.zeros(4, 3, dtype=torch.float64),
           torch.tensor([0, 1]))


# -- the shared loader ----------------------------------------------------------------------------
def test_load_names_what_is_missing():
    kernel, reason = glue.load("math", "sqrt", "pip install nothing", needs_cuda=False)
    assert kernel(4.0) == 2.0 and reason is None
    kernel, reason = glue.load("no_such_kernel_package", "f", "pip install no-such",
                               needs_cuda=False)
    assert kernel is None and "pip install no-such" in reason
    if not torch.cuda.is_available():
        kernel, reason = glue.load("math", "sqrt", "pip install nothing")
        assert kernel is None and "a CUDA GPU" in reason and "pip install" not in reason
