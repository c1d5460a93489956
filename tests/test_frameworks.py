"""The framework targets themselves (lossproofs.frameworks): dtype and device of values and
gradients, a few hand-computed values, the declarations, and every findings record.

Each framework's tests skip, with the reason, when its package (or, for tinygrad, clang) is
missing.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch

from lossproofs.frameworks import FAMILIES, FRAMEWORK_MODULES
from lossproofs.frameworks.findings import FINDINGS
from lossproofs.targets import FUNCTIONS

FRAMEWORKS = tuple(FRAMEWORK_MODULES)
PACKAGES = {"jax": "optax", "tensorflow": "tensorflow", "tinygrad": "tinygrad"}
DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16)
MANTISSA_BITS = {torch.float64: 52, torch.float32: 23, torch.float16: 10, torch.bfloat16: 7}
KINDS = {"divergence", "silent acceptance of bad input", "convention"}
RECORD_KEYS = {"framework", "function", "framework_function", "name", "dtype", "args",
               "framework_result", "mathematical_result", "direction", "kind", "upstream",
               "why"}


def load(framework: str):
    """The framework's target module, or a skip naming what is missing."""
    pytest.importorskip(PACKAGES[framework],
                        reason=f"{framework} is not installed (pip install {framework})")
    if framework == "jax":
        pytest.importorskip("jax", reason="jax is not installed (pip install jax)")
    try:
        return importlib.import_module(FRAMEWORK_MODULES[framework])
    except ImportError as e:  # e.g. tinygrad without clang, Keras on another backend
        pytest.skip(f"{framework} target unavailable: {e}")


def functions(module) -> list[str]:
    return [name for name in FUNCTIONS if callable(getattr(module, name, None))]


# -- small inputs per function --------------------------------------------------------------
def example(name: str, dtype: torch.dtype):
    """``(args, kwargs, differentiable positions)`` of a small ordinary call of ``name``."""
    x = torch.tensor([[0.2, 0.1, -0.1], [1.5, -0.5, 0.25]], dtype=torch.float64).to(dtype)
    if name in ("softmax", "log_softmax"):
        return (x,), {"dim": 1}, (0,)
    if name == "logsumexp":
        return (x,), {"dim": 1}, (0,)
    if name == "nll_loss":
        return (torch.log_softmax(x.double(), 1).to(dtype), torch.tensor([0, 2])), {}, (0,)
    if name == "cross_entropy":
        return (x, torch.tensor([0, 2])), {}, (0,)
    p = torch.tensor([0.2, 0.7, 0.5], dtype=torch.float64).to(dtype)
    y = torch.tensor([0.0, 1.0, 0.25], dtype=torch.float64).to(dtype)
    if name == "binary_cross_entropy":
        return (p, y), {}, (0, 1)
    return (p * 4 - 2, y), {}, (0, 1)  # binary_cross_entropy_with_logits


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_values_and_gradients_in_input_dtype_on_cpu(framework, dtype):
    module = load(framework)
    assert module.DEVICE == "cpu"
    for name in functions(module):
        args, kwargs, diff = example(name, dtype)
        args = tuple(a.clone().requires_grad_(i in diff) for i, a in enumerate(args))
        out = getattr(module, name)(*args, **kwargs)
        assert out.dtype == dtype and out.device.type == "cpu", (name, out.dtype, out.device)
        assert torch.isfinite(out).all(), (name, out)
        leaves = [args[i] for i in diff]
        grads = torch.autograd.grad(out, leaves, torch.ones_like(out))
        for i, g in zip(diff, grads):
            assert g is not None and g.dtype == dtype and g.device.type == "cpu", (name, i)
            assert g.shape == args[i].shape and torch.isfinite(g).all(), (name, i, g)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_hand_computed_values(framework):
    module = load(framework)
    f64 = torch.float64
    have = set(functions(module))
    # the tutorial's example: log(e^0.2 + e^0.1 + e^-0.1) - 0.2
    tutorial = math.log(math.exp(0.2) + math.exp(0.1) + math.exp(-0.1)) - 0.2
    if "cross_entropy" in have:
        x = torch.tensor([[0.2, 0.1, -0.1]], dtype=f64, requires_grad=True)
        loss = module.cross_entropy(x, torch.tensor([0]))
        assert loss.item() == pytest.approx(tutorial, rel=1e-14)
        (g,) = torch.autograd.grad(loss, x)
        p = np.exp([0.2, 0.1, -0.1]) / np.exp([0.2, 0.1, -0.1]).sum()
        np.testing.assert_allclose(g.numpy()[0], p - [1, 0, 0], rtol=1e-13)
        soft = module.cross_entropy(x.detach(), torch.tensor([[0.5, 0.5, 0.0]], dtype=f64),
                                    reduction="sum")
        lse = tutorial + 0.2
        assert soft.item() == pytest.approx(lse - 0.15, rel=1e-14)
    if "softmax" in have:
        s = module.softmax(torch.tensor([0.0, math.log(3.0)], dtype=f64), dim=0)
        np.testing.assert_allclose(s.numpy(), [0.25, 0.75], rtol=1e-15)
    if "logsumexp" in have:
        v = module.logsumexp(torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=f64), dim=1)
        np.testing.assert_allclose(v.numpy(), [math.log(2), 1 + math.log(2)], rtol=1e-15)
    if "nll_loss" in have:
        v = module.nll_loss(torch.tensor([[-1.0, -2.0], [-3.0, -4.0]], dtype=f64),
                            torch.tensor([1, 0]), reduction="sum")
        assert v.item() == 5.0
    if "binary_cross_entropy" in have:
        v = module.binary_cross_entropy(torch.tensor([0.5, 0.25], dtype=f64),
                                        torch.tensor([1.0, 0.0], dtype=f64), reduction="none")
        np.testing.assert_allclose(v.numpy(), [math.log(2), -math.log(0.75)], rtol=1e-6)
    if "binary_cross_entropy_with_logits" in have:
        x = torch.tensor([0.0, 2.0], dtype=f64, requires_grad=True)
        v = module.binary_cross_entropy_with_logits(x, torch.tensor([1.0, 0.0], dtype=f64))
        expected = (math.log(2) + math.log1p(math.exp(2.0))) / 2
        assert v.item() == pytest.approx(expected, rel=1e-14)
        (g,) = torch.autograd.grad(v, x)
        sig2 = 1 / (1 + math.exp(-2.0))
        np.testing.assert_allclose(g.numpy(), [(0.5 - 1) / 2, sig2 / 2], rtol=1e-14)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_declarations_name_known_families_and_defined_functions(framework):
    module = load(framework)
    defined = set(functions(module))
    assert module.__version__ and module.__doc__.strip().splitlines()[0]
    assert "second order" in module.UNSUPPORTED_CHECKS
    for table in (module.NOT_PROVIDED, module.CONVENTIONS):
        assert isinstance(table, dict)
        for function, families in table.items():
            assert function in defined, f"{function} is declared but not defined"
            for family, text in families.items():
                assert family in FAMILIES, f"{function}: unknown family {family!r}"
                assert isinstance(text, str) and text.strip()
    overlap = {(f, fam) for f, fams in module.NOT_PROVIDED.items() for fam in fams} & {
        (f, fam) for f, fams in module.CONVENTIONS.items() for fam in fams}
    assert not overlap, f"declared both not provided and a convention: {overlap}"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_not_provided_parameters_are_refused_not_composed(framework):
    module = load(framework)
    for function, families in module.NOT_PROVIDED.items():
        if "weight" not in families:
            continue
        args, kwargs, _ = example(function, torch.float64)
        c = args[0].shape[1] if function in ("nll_loss", "cross_entropy") else args[0].shape[-1]
        with pytest.raises(NotImplementedError, match="weight"):
            getattr(module, function)(*args, **kwargs,
                                      weight=torch.ones(c, dtype=torch.float64))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_no_double_backward(framework):
    module = load(framework)
    name = "cross_entropy" if "cross_entropy" in functions(module) else functions(module)[0]
    args, kwargs, _ = example(name, torch.float64)
    x = args[0].clone().requires_grad_()
    (g,) = torch.autograd.grad(getattr(module, name)(x, *args[1:], **kwargs), x,
                               create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(g.sum(), x)


def test_framework_exceptions_propagate_unchanged():
    tf_module = None
    try:
        tf_module = load("tensorflow")
    except pytest.skip.Exception:
        pass
    if tf_module is not None:
        import tensorflow as tf

        x = torch.zeros(2, 3, dtype=torch.float32)
        with pytest.raises(tf.errors.InvalidArgumentError):  # uint8 labels: not translated
            tf_module.cross_entropy(x, torch.tensor([0, 1], dtype=torch.uint8))
        with pytest.raises(tf.errors.InvalidArgumentError):  # out of range: TF raises on CPU
            tf_module.cross_entropy(x, torch.tensor([0, 3]))
    try:
        jax_module = load("jax")
    except pytest.skip.Exception:
        if tf_module is None:
            raise
        return
    with pytest.raises(ValueError, match="out of bounds"):  # jax's own message for 0-d
        jax_module.softmax(torch.tensor(1.0, dtype=torch.float64), dim=0)


# -- findings ----------------------------------------------------------------------------------
def ulp(value: float, dtype: torch.dtype) -> float:
    """The spacing of ``dtype`` at ``value`` (subnormal spacing near 0)."""
    finfo = torch.finfo(dtype)
    bits = MANTISSA_BITS[dtype]
    magnitude = max(abs(value), finfo.tiny)
    return 2.0 ** (math.floor(math.log2(magnitude)) - bits)


def same(actual: float, expected: float, dtype: torch.dtype, ulps: float = 4.0) -> bool:
    if math.isnan(expected) or math.isnan(actual):
        return math.isnan(expected) and math.isnan(actual)
    if math.isinf(expected) or math.isinf(actual):
        return actual == expected
    if actual == 0.0 and expected == 0.0:
        return math.copysign(1.0, actual) == math.copysign(1.0, expected)
    return abs(actual - expected) <= ulps * ulp(expected, dtype)


def run_record(module, record) -> np.ndarray:
    """The framework's value (or gradient) on the record's inputs, as float64."""
    a = record["args"]
    dtype = getattr(torch, record["dtype"])
    tensors = [torch.tensor(a["input"], dtype=torch.float64).to(dtype)]
    if "target" in a:
        if a.get("target_dtype") == "input":
            tensors.append(torch.tensor(a["target"], dtype=torch.float64).to(dtype))
        else:
            tensors.append(torch.tensor(a["target"], dtype=torch.int64))
    kwargs = {k: (torch.tensor(v, dtype=torch.float64).to(dtype)
                  if k in ("weight", "pos_weight") else v)
              for k, v in a.get("kwargs", {}).items()}
    if isinstance(kwargs.get("dim"), list):
        kwargs["dim"] = tuple(kwargs["dim"])
    fn = getattr(module, record["function"])
    if record["direction"] == "gradient":
        leaf = tensors[0 if a["wrt"] == "input" else 1].requires_grad_()
        out = fn(*tensors, **kwargs)
        g = torch.tensor(a["grad_output"], dtype=torch.float64).to(out.dtype)
        (result,) = torch.autograd.grad(out, leaf, g)
    else:
        result = fn(*tensors, **kwargs)
    return result.detach().to(torch.float64).numpy()


def test_findings_are_well_formed():
    names = set()
    for r in FINDINGS:
        assert set(r) == RECORD_KEYS, r.get("name")
        assert r["framework"] in FRAMEWORKS and r["function"] in FUNCTIONS
        assert r["kind"] in KINDS and r["direction"] in ("forward", "gradient")
        assert r["dtype"] in ("float64", "float32", "float16", "bfloat16")
        assert r["upstream"] == "" or r["upstream"].startswith("https://github.com/")
        assert len(r["why"]) > 80 and r["name"]
        assert (r["framework"], r["function"], r["name"]) not in names
        names.add((r["framework"], r["function"], r["name"]))
        if r["kind"] == "silent acceptance of bad input":
            assert isinstance(r["mathematical_result"], str)
        elif isinstance(r["framework_result"], str):
            assert r["framework_result"].startswith("raises ")
        else:
            assert np.shape(r["framework_result"]) == np.shape(r["mathematical_result"])


@pytest.mark.parametrize("record", FINDINGS,
                         ids=[f"{r['framework']}-{r['function']}-{r['dtype']}-{i}"
                              for i, r in enumerate(FINDINGS)])
def test_finding_still_reproduces(record):
    """The framework still returns what was observed, and that still is not the mathematical
    result: this fails once the framework is fixed (then update or remove the record)."""
    module = load(record["framework"])
    dtype = getattr(torch, record["dtype"])
    if isinstance(record["framework_result"], str):  # "raises TypeError"
        with pytest.raises(Exception) as info:
            run_record(module, record)
        assert type(info.value).__name__ == record["framework_result"].removeprefix("raises ")
        return
    actual = np.atleast_1d(run_record(module, record)).ravel()
    observed = np.atleast_1d(np.asarray(record["framework_result"], dtype=np.float64)).ravel()
    assert actual.shape == observed.shape
    matches = [same(float(a), float(o), dtype) for a, o in zip(actual, observed)]
    assert all(matches), f"{record['name']}: now {actual.tolist()}, observed {observed.tolist()}"
    if isinstance(record["mathematical_result"], str):
        return  # bad input accepted without an error: returning at all is the divergence
    math_result = np.atleast_1d(np.asarray(record["mathematical_result"],
                                           dtype=np.float64)).ravel()
    agree = [same(float(a), float(m), dtype) for a, m in zip(actual, math_result)]
    assert not all(agree), f"{record['name']}: now agrees with the mathematics {actual}"


# -- the shared bridge helpers (no framework needed) --------------------------------------------
def test_refuse_not_provided_names_the_first_declared_parameter_given():
    from lossproofs.frameworks._bridge import refuse_not_provided

    declared = {"cross_entropy": {"weight": "no class weights", "label_smoothing": "none"}}
    refuse_not_provided("t", declared, "cross_entropy")  # defaults: nothing refused
    refuse_not_provided("t", declared, "cross_entropy", ignore_index=3)  # not declared
    with pytest.raises(NotImplementedError, match="t target: cross_entropy weight: no class"):
        refuse_not_provided("t", declared, "cross_entropy", weight=torch.ones(2),
                            label_smoothing=0.1)
    with pytest.raises(NotImplementedError, match="label_smoothing"):
        refuse_not_provided("t", declared, "cross_entropy", label_smoothing=0.1)
    refuse_not_provided("t", declared, "binary_cross_entropy", weight=torch.ones(2))


def test_reduced_applies_torchs_reduction_with_the_frameworks_sum_and_mean():
    from lossproofs.frameworks._bridge import reduced

    loss = np.array([1.0, 2.0, 6.0])
    assert reduced(loss, "none", np.sum, np.mean) is loss
    assert reduced(loss, "sum", np.sum, np.mean) == 9.0
    assert reduced(loss, "mean", np.sum, np.mean) == 3.0


# -- the conformance report honours declared capabilities -----------------------------------------
def test_report_does_not_run_special_values_or_ledger_examples_a_target_does_not_provide():
    from lossproofs import conformance_run
    from lossproofs.targets import torch_functional

    impl = torch_functional()
    impl.families = frozenset()  # judged as a framework: torch's ledger entries must pass
    impl.not_provided = {"cross_entropy": {"label_smoothing": "declared for this test"}}
    report = conformance_run.build(impl, ("cross_entropy",), ("float64",), n=2)
    smoothing_specials = [e for e in report.special_values if e["case"] in (
        "masked class with label smoothing", "all targets ignored, none")]
    assert smoothing_specials and all(e["status"] == "not provided" and "label_smoothing"
                                      in e["detail"] for e in smoothing_specials)
    negative = next(e for e in report.errors
                    if e["case"] == "cross_entropy accepts a negative label_smoothing")
    assert negative["status"] == "not provided"
    assert any(e["status"] == "pass" for e in report.special_values)


# -- docs/frameworks.md ------------------------------------------------------------------------
def test_frameworks_page_is_current():
    from lossproofs import frameworks_page as page

    path = page.REPOSITORY / "docs" / "frameworks.md"
    text = path.read_text(encoding="utf-8")
    assert f"{page.START}\n{page.render()}{page.END}" in text, (
        "docs/frameworks.md is not what the committed reports, the ledger and the findings "
        "give; regenerate it with `python -m lossproofs.frameworks_page --update "
        "docs/frameworks.md`")


def test_frameworks_page_cells_separate_failures_known_and_not_provided():
    from lossproofs.frameworks_page import _agreement, _ulps

    cell = {"cases": 12, "passed": 9, "failed": 1, "known": 2, "not_provided": 3}
    assert _agreement(cell, None) == "✗ 9/12 (1 fail, 2 known, 3 n/p)"
    assert _agreement({**cell, "failed": 0, "passed": 10}, None) == "✓ 10/12 (2 known, 3 n/p)"
    assert _agreement({**cell, "cases": 0}, None) == "not provided (3)"
    assert _agreement(None, "no nll_loss") == "not provided"
    summary = {"fair": {"n": 5, "max": 7.5}, "bound": 4}
    assert _ulps(summary) == "7.5 ✗" and _ulps({**summary, "bound": 8}) == "7.5"
    assert _ulps({"fair": {"n": 0}}) == "–"


def test_committed_framework_reports_have_no_unexplained_red_cell():
    """Every failure in the committed framework reports is classified: the conformance verdict
    counts no failing check (what remains is not provided, a declared convention, or known by
    a named ledger entry of the framework's family), and each accuracy row beyond its bound has
    a named divergence of the family on that function and direction."""
    import json

    from lossproofs import frameworks_page as page

    for column, family, conformance_dir, accuracy_dir in page.FRAMEWORKS[1:]:
        path = page.REPOSITORY / conformance_dir / "conformance.json"
        if not path.exists():
            pytest.skip(f"no committed conformance report for {column}")
        conformance = json.loads(path.read_text(encoding="utf-8"))
        assert conformance["verdict"] == "conforms", (column, conformance["verdict"])
        path = page.REPOSITORY / accuracy_dir / "accuracy.json"
        if path.exists():
            accuracy = json.loads(path.read_text(encoding="utf-8"))
            for function, dtype, direction, worst in page.red_accuracy_rows(accuracy, column):
                assert page.explanations(family, function, direction), (
                    column, function, dtype, direction, worst)
