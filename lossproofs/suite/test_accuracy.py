"""Accuracy against the exact oracle: the properties of issue 3.

- Wherever the exact result is finite and representable in the dtype, the implementation under
  test (and, in float64, the NumPy reference) is finite and within ``ulp_bound`` of it, counted
  by :func:`lossproofs.error_model.floored_ulps` — on extreme strata, with ``hypothesis.target``
  steering toward the largest error and the worst inputs pinned with ``@example``.
- Gradients at saturation are exact where the mathematics says so, never NaN from inf − inf.
- The named naive formulations FAIL the same property (the suite can see instability).
- Where torch is off beyond a fair bound: ledger entries (lossproofs/ledger/accuracy.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, event, example, given, settings, target
from hypothesis import strategies as st

from lossproofs import accuracy, error_model, ledger, naive, oracle
from lossproofs.accuracy_implementations import implementations, run_callable
from lossproofs.cases import Case
from lossproofs.strategies import extreme
from lossproofs.tolerances import ulp_bound

# mpmath-heavy: each example costs 5–50 ms of oracle time (two evaluations at 160 and 320
# bits) on problems kept small here (C ≤ 16, batches ≤ 48); at the profile's full count
# (100 in `ci`) the seven properties take about 20 s on one core, so no reduction is needed.
EXAMPLES = settings.default.max_examples
PROPERTY_STRATA = {f: tuple(s for s in extreme.strata_for(f) if s != "large_C")
                   for f in accuracy.FUNCTIONS}


def _call(impl, name: str):
    fn = impl.get(name)
    if fn is None:
        pytest.skip(impl.missing_reason(name))
    return fn


def _violations(problem, result) -> dict[str, float]:
    """Largest floored-ulp error per direction and its bound; {} if within bounds."""
    exact = error_model.exact(problem)
    floors = error_model.error_floors(problem)
    out = {}
    for i, direction in enumerate(("forward", "gradient")):
        if result[i] is None:
            continue
        err = error_model.floored_ulps(result[i], exact[i], floors[i], problem.dtype)
        worst = float(err.max()) if err.size else 0.0
        if worst > ulp_bound(problem.function, problem.dtype, direction):
            out[direction] = worst
    return out


def _problems(function: str):
    return st.sampled_from(extreme.DTYPES).flatmap(
        lambda dtype: extreme.strategy(function, dtype, PROPERTY_STRATA[function],
                                       max_classes=16, max_batch=48))


def _make_property(function: str):
    @settings(max_examples=EXAMPLES)
    @given(problem=_problems(function))
    def check(impl, problem):
        if error_model.intermediate_overflow(problem):
            # Torch forms a term beyond the dtype's max before reducing: the named strict
            # xfails test_low_precision_*_overflows_intermediate pin this behaviour.
            event("skipped: intermediate overflow")
            return
        # what the target declares it does not provide is taken out of the problem
        problem = extreme.restrict(problem, impl.declared_out(function))
        if problem is None:
            event("set aside: the problem is about a family the target declares out")
            assume(False)
        fn = _call(impl, function)
        result = run_callable(fn, problem)
        exact = error_model.exact(problem)
        floors = error_model.error_floors(problem)
        for i, direction in enumerate(("forward", "gradient")):
            # what a ledger entry of the target's families explains is set aside, named
            aside = ledger.set_aside(impl, problem, direction, np.shape(exact[i]), accuracy=True)
            actual = result[i]
            if aside:
                event(f"set aside ({direction}): {aside.names}")
                if aside.whole:
                    continue
                actual = np.where(aside.mask, exact[i], actual)
            err = error_model.floored_ulps(actual, exact[i], floors[i], problem.dtype)
            worst = float(err.max()) if err.size else 0.0
            target(min(worst, 1e6), label=f"{direction} ulps")
            bound = ulp_bound(function, problem.dtype, direction)
            assert worst <= bound, (
                f"{function} {direction} in {problem.dtype} is {worst:.3g} ulps from the "
                f"exact answer (bound {bound}) on {problem!r}")
        if problem.dtype == "float64":
            fwd, grad = implementations(function)["reference (NumPy float64)"](problem)
            assert not _violations(problem, (fwd, grad)), f"reference off on {problem!r}"

    for pinned in accuracy.PINNED:
        if pinned.function == function:
            check = example(problem=pinned)(check)
    check.__name__ = f"test_{function}_is_within_its_ulp_bound_on_extreme_inputs"
    return check


for _function in accuracy.FUNCTIONS:
    _test = _make_property(_function)
    globals()[_test.__name__] = _test
del _function, _test


# ---------------------------------------------------------------------------- saturation


@pytest.mark.parametrize("dtype", extreme.DTYPES)
@pytest.mark.parametrize("logits", [[0.0, -1e4, -1e4], [5e3, -5e3, float("-inf")],
                                    [60000.0, 0.0, -60000.0]])
def test_saturated_cross_entropy_gradient_is_exactly_softmax_minus_one_hot(impl, dtype, logits):
    """A dominating class: p rounds to exactly 1 and 0, so the gradient is exactly
    (0, −1, 0)-style one-hot differences in every dtype — never NaN from inf − inf."""
    if dtype == "float16" and max(abs(v) for v in logits if np.isfinite(v)) > 65504:
        pytest.skip("logit not representable in float16")
    x = extreme.round_to(np.array([logits]), dtype)
    problem = Case("cross_entropy", (x, np.array([1])), {"reduction": "sum"}, dtype=dtype,
                   grad_output=np.array(1.0))
    # a target that does not provide "sum" is asked for the mean of the one row: the same answer
    problem = extreme.restrict(problem, impl.declared_out("cross_entropy"))
    if problem is None:
        pytest.skip(f"{impl.name}: the case is about a family it declares out")
    _, grad = run_callable(_call(impl, "cross_entropy"), problem)
    _, exact = error_model.exact(problem)
    assert np.all(np.isfinite(grad)), grad
    assert np.array_equal(grad, extreme.round_to(exact, dtype)), (grad, exact)
    assert exact[0, 1] == -1.0 and exact[0, 0] == 1.0


@pytest.mark.parametrize("dtype", extreme.DTYPES)
def test_masked_rows_give_finite_gradients(impl, dtype):
    """Partial −inf masks: exact zeros (softmax), −inf (log_softmax), finite gradients."""
    x = extreme.round_to(np.array([[3.0, float("-inf"), 1.0], [float("-inf"), 0.0,
                                                              float("-inf")]]), dtype)
    g = extreme.round_to(np.array([[0.5, -1.0, 0.25], [1.0, -0.5, 2.0]]), dtype)
    for name in ("softmax", "log_softmax"):
        problem = Case(name, (x,), {"dim": 1}, dtype=dtype, grad_output=g)
        fwd, grad = run_callable(_call(impl, name), problem)
        exact_fwd, exact_grad = error_model.exact(problem)
        assert np.all(np.isfinite(grad)), (name, grad)
        assert np.array_equal(np.isneginf(fwd), np.isneginf(exact_fwd))
        err = error_model.floored_ulps(grad, exact_grad, error_model.error_floors(problem)[1],
                                       dtype)
        assert np.all(err <= ulp_bound(name, dtype, "gradient")), (name, grad, exact_grad)


# ---------------------------------------------------------------------------- naive formulas

# (naive name, function, dtype, strata searched): each must be caught on these fixed seeds.
NAIVE_SEARCH = [
    ("log_of_softmax", "log_softmax", "float32", ("large_gap", "near_overflow")),
    ("unshifted_softmax", "softmax", "float32", ("near_overflow", "huge")),
    ("unshifted_logsumexp", "logsumexp", "float32", ("near_overflow", "huge")),
    ("cross_entropy_of_softmax", "cross_entropy", "float32", ("large_gap", "huge")),
    ("bce_of_sigmoid", "binary_cross_entropy_with_logits", "float32",
     ("huge_logits", "near_0_1")),
    ("bce_with_logits_naive_softplus", "binary_cross_entropy_with_logits", "float32",
     ("huge_logits", "near_0_1")),
]


def test_every_naive_formulation_is_searched():
    assert {n for n, *_ in NAIVE_SEARCH} == set(naive.NAIVE)


@pytest.mark.parametrize(("name", "function", "dtype", "strata"), NAIVE_SEARCH,
                         ids=[n for n, *_ in NAIVE_SEARCH])
def test_the_property_catches_each_naive_formulation(impl, name, function, dtype, strata):
    """The same property FAILS on the naive formula, on inputs where torch passes it: the
    evidence that the fused/stable forms are more stable, and that the suite sees it. A check
    of the suite itself, run against the built-in targets only (a user module that is itself
    naive would make it read like a bug of the suite)."""
    if impl.name.startswith("module:"):
        pytest.skip(f"{impl.name}: a check of the suite itself (that the accuracy property "
                    "catches naive formulas), run without --target")
    imitated, fn = naive.NAIVE[name]
    assert imitated == function
    caught = None
    for s_index, stratum in enumerate(strata):
        rng = np.random.default_rng([2024, s_index])
        for _ in range(6):
            problem = extreme.sample(rng, function, stratum, dtype, max_classes=16,
                                     max_batch=32)
            problem.params.pop("label_smoothing", None)
            if error_model.intermediate_overflow(problem) or impl.excluded_arguments(
                    function, problem.params):  # not drawn for a target that lacks them
                continue
            bad = _violations(problem, run_callable(fn, problem))
            if bad and not _violations(problem, run_callable(
                    _call(impl, function), problem)):
                caught = (stratum, bad)
                break
        if caught:
            break
    assert caught, f"the ulp property did not catch naive {name} on {strata}"


# ---------------------------------------------------------------------------- pinned cases
# Where torch is off beyond a fair bound, the case is a ledger entry (lossproofs/ledger/
# accuracy.py), run by test_divergences.py through error_model.check_accuracy.


def test_reference_sigmoid_is_accurate():
    """Regression: σ(x) was exp(logsigmoid(x)), 6 ulps off at x = −10 and ~350 at x = −700."""
    problem = Case("binary_cross_entropy_with_logits",
                   (np.array([-10.0, -700.0]), np.array([0.0, 0.0])), {"reduction": "none"},
                   grad_output=np.array([1.0, 1.0]))
    ref = implementations(problem.function)["reference (NumPy float64)"](problem)
    assert not _violations(problem, ref)


@pytest.mark.parametrize("name", [
    "float16 nll_loss mean overflows an intermediate sum",
    "float16 label smoothing overflows an intermediate sum",
    "float16 binary_cross_entropy mean gradient overflows an intermediate",
])
def test_pinned_intermediate_overflows_are_what_the_property_skips(name):
    """The ulp property skips intermediate overflow; the ledger's examples must be such cases,
    with a representable exact answer (else they would test nothing)."""
    entry = ledger.divergence(name)
    assert error_model.intermediate_overflow(entry.example)
    k = ("forward", "gradient").index(entry.direction)
    assert oracle.representable(error_model.exact(entry.example)[k], entry.example.dtype).all()


# ---------------------------------------------------------------------------- the command


def test_accuracy_command_writes_report_with_environment_and_refuses_overwrite(tmp_path):
    args = ["--quick", "--functions", "binary_cross_entropy_with_logits", "--per-stratum", "1",
            "--out",
            str(tmp_path)]
    assert accuracy.main(args) == 0
    import json

    report = json.loads((tmp_path / "accuracy.json").read_text())
    assert report["environment"]["torch"] == torch.__version__
    assert {r["implementation"] for r in report["rows"]} >= {"torch", "scipy.special"}
    md = (tmp_path / "accuracy.md").read_text()
    assert "## Machine" in md and report["environment"]["cpu_model"] in md
    with pytest.raises(FileExistsError, match=r"accuracy\.json"):
        accuracy.main(args)
    assert accuracy.main([*args, "--overwrite"]) == 0


def test_accuracy_command_rejects_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        accuracy.main(["--per-stratum", "0", "--out", str(tmp_path)])
    assert "--per-stratum must be ≥ 1, got 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_accuracy_command_measures_another_target_in_torchs_place(tmp_path):
    """``--target nn`` measures the torch.nn modules where torch's functional stood, keeps the
    comparison rows, and names the target; a function the target lacks is reported missing."""
    args = ["--quick", "--functions", "binary_cross_entropy_with_logits", "logsumexp",
            "--per-stratum", "1", "--target", "nn", "--out", str(tmp_path)]
    assert accuracy.main(args) == 0
    import json

    report = json.loads((tmp_path / "accuracy.json").read_text())
    assert report["target"]["name"] == "nn" and report["settings"]["target"] == "nn"
    names = {r["implementation"] for r in report["rows"]}
    assert "nn" in names and "torch" not in names and "scipy.special" in names
    assert not any(r["implementation"] == "nn" and r["function"] == "logsumexp"
                   for r in report["rows"])
    assert "logsumexp" in report["missing"]
    md = (tmp_path / "accuracy.md").read_text()
    assert "Implementation under test: **`nn`**" in md and "Not provided: logsumexp" in md


def test_accuracy_command_rejects_an_unknown_target(tmp_path, capsys):
    with pytest.raises(SystemExit):
        accuracy.main(["--target", "no_such_target", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert "--target" in err and "no_such_target: unknown target" in err
    assert not any(tmp_path.iterdir())
