"""Declarations are a contract: names are checked, declared-out families are never drawn, and a
module that provides only a subset has that subset checked in full (issue 18)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lossproofs import checks, declarations
from lossproofs.cases import Case
from lossproofs.declarations import DECLARABLE, InvalidDeclaration, case_families, validate
from lossproofs.registry import LOSSES
from lossproofs.strategies import extreme
from lossproofs.strategies.large import STRATA, STRATUM_FAMILIES, large_cases
from lossproofs.strategies.sampling import sample
from lossproofs.targets import get_target

# Families the ordinary strategies can draw (empty and 0-d inputs are the degenerate list's).
DRAWN = {f: tuple(fam for fam in fams if fam not in ("empty", "0-d"))
         for f, fams in DECLARABLE.items()}


# -- names are checked --------------------------------------------------------------------------
@pytest.mark.parametrize(("table", "message"), [
    ({"cross_entropy": {"label smoothing": "no"}}, "unknown family 'label smoothing'"),
    ({"cross_entropy": {"weights": "no"}}, "unknown family 'weights'"),
    ({"cross_entropy": {"pos_weight": "no"}}, "unknown family 'pos_weight'"),
    ({"crossentropy": {"weight": "no"}}, "unknown function 'crossentropy'"),
    ({"cross_entropy": {"weight": ""}}, "needs a reason"),
    ({"cross_entropy": ["weight"]}, "must be a dict"),
])
def test_unknown_names_are_rejected_with_the_valid_ones(table, message):
    with pytest.raises(InvalidDeclaration, match=message) as info:
        validate("module 'm'", table, {}, {})
    if "family" in message:
        assert "'label_smoothing'" in str(info.value) or "'weight'" in str(info.value)


def test_unknown_check_is_rejected_and_known_ones_accepted():
    with pytest.raises(InvalidDeclaration, match="unknown check 'second-order'"):
        validate("m", {}, {}, {"second-order": "x"})
    validate("m", {}, {}, {"second order": "x", "retain_graph": "y", "softmax": "missing",
                           "error:int32 index target": "z"}, {"error:int32 index target"})


def test_a_family_declared_both_ways_is_rejected():
    with pytest.raises(InvalidDeclaration, match="both"):
        validate("m", {"nll_loss": {"weight": "a"}}, {"nll_loss": {"weight": "b"}}, {})


def _module(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_a_misspelled_declaration_is_a_usage_error(tmp_path):
    path = _module(tmp_path, "misspelled", '''
        """A module with a typo in its declaration."""
        import torch.nn.functional as F
        cross_entropy = F.cross_entropy
        NOT_PROVIDED = {"cross_entropy": {"label smoothing": "not yet"}}
    ''')
    with pytest.raises(ValueError, match="unknown family 'label smoothing'"):
        get_target(f"module:{path}")


# -- the families of a case ------------------------------------------------------------------------
def test_families_are_read_from_the_content_of_a_hand_written_case():
    x = np.zeros((2, 3))
    assert "probability target" in case_families(
        Case("cross_entropy", (x, np.full((2, 3), 1 / 3)), {}))
    assert {"unbatched", "reduction:mean"} <= case_families(
        Case("cross_entropy", (np.zeros(3), np.array(1)), {}))
    assert "ignore_index" in case_families(
        Case("nll_loss", (x, np.array([0, -100])), {"reduction": "sum"}))
    assert "k-dim" in case_families(Case("nll_loss", (np.zeros((2, 3, 4)),
                                                      np.zeros((2, 4), dtype=np.int64)), {}))
    assert "clamp" in case_families(
        Case("binary_cross_entropy", (np.array([0.0, 0.5]), np.array([0.0, 1.0])), {}))
    assert "single class" in case_families(Case("softmax", (np.zeros((2, 1)),), {"dim": 1}))
    assert "tuple dim" in case_families(Case("logsumexp", (x,), {"dim": (0, 1)}))


# -- declared-out families are never drawn ---------------------------------------------------------
def _ordinary(function: str, exclude: frozenset[str], n: int) -> list[Case]:
    return sample(LOSSES[function].cases("float32", exclude=exclude), n, seed=7)


@pytest.mark.parametrize(("function", "family"),
                         [(f, fam) for f, fams in DRAWN.items() for fam in fams])
def test_the_strategies_never_draw_a_declared_out_family(function, family):
    cases = _ordinary(function, frozenset({family}), 40)
    assert len(cases) == 40
    assert not [c for c in cases if family in case_families(c)]


@pytest.mark.parametrize(("function", "family"),
                         [(f, fam) for f, fams in DRAWN.items() for fam in fams])
def test_without_the_declaration_the_family_is_drawn(function, family):
    """The other side of the property above: it is not vacuous."""
    if family == "single class" and function != "logsumexp":
        pytest.skip("a small stratum (3 %): drawn, but not reliably in 300 cases")
    cases = _ordinary(function, frozenset(), 300)
    assert any(family in case_families(c) for c in cases), family


def test_a_subset_module_draws_only_its_subset_with_every_draw_kept():
    """cross_entropy with the mean of (N, C) inputs and int64 class indices only."""
    out = frozenset(fam for fam in DECLARABLE["cross_entropy"] if fam != "reduction:mean")
    cases = _ordinary("cross_entropy", out, 60)
    assert len(cases) == 60
    for c in cases:
        assert case_families(c) <= {"reduction:mean"}, case_families(c)
        assert c.arrays[0].ndim == 2 and c.arrays[1].dtype == np.int64
    assert len({c.arrays[0].shape for c in cases}) > 5  # shapes still vary


@pytest.mark.parametrize("function", list(STRATA))
def test_the_size_tier_never_draws_a_declared_out_family(function):
    for stratum in STRATA[function]:
        for family in DRAWN[function]:
            if STRATUM_FAMILIES.get(stratum) == family:
                continue  # the whole stratum is about it: the test skips it
            exclude = frozenset({family})
            drawn = sample(large_cases(function, stratum, "float32", exclude=exclude), 6, 3)
            assert not [c for c in drawn if family in case_families(c)], (stratum, family)


def test_every_reduction_declared_out_is_said_before_drawing():
    out = frozenset(f"reduction:{r}" for r in declarations.REDUCTIONS)
    assert "every reduction" in declarations.drawable("nll_loss", out)
    assert declarations.drawable("softmax", out) is None


def test_extreme_problems_are_restricted_to_what_is_provided():
    rng = np.random.default_rng(1)
    out = frozenset({"weight", "label_smoothing", "reduction:none", "reduction:sum"})
    for _ in range(30):
        problem = extreme.sample(rng, "cross_entropy", "large_gap", "float32", max_classes=8,
                                 max_batch=8)
        kept = extreme.restrict(problem, out)
        assert kept is not None and not case_families(kept) & out
        assert np.shape(kept.grad_output) == ()


# -- a module of the user's -----------------------------------------------------------------------
SUBSET_MODULE = '''
    """cross_entropy only: the mean over (N, C) logits with int64 class indices."""
    import torch

    def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100,
                      reduce=None, reduction="mean", label_smoothing=0.0):
        if input.dim() != 2:
            raise ValueError(f"input must be (N, C), got {tuple(input.shape)}")
        if target.dtype != torch.int64:
            raise TypeError(f"target must be int64, got {target.dtype}")
        if not input.is_floating_point():
            raise TypeError(f"input must be floating, got {input.dtype}")
        if target.shape != input.shape[:1]:
            raise ValueError(f"target must be (N,), got {tuple(target.shape)}")
        if reduction != "mean":
            raise ValueError(f"reduction must be 'mean', got {reduction!r}")
        if bool(((target < 0) | (target >= input.shape[1])).any()):
            raise IndexError("target out of range")
        # half types accumulate in float32, as torch does
        x = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
        # log_softmax(x)_t = x_t − m − log Σ exp(x − m), m = max(x): no overflow
        m = x.max(dim=1, keepdim=True).values.detach()
        lse = m.squeeze(1) + torch.log(torch.exp(x - m).sum(dim=1))
        picked = x.gather(1, target.unsqueeze(1)).squeeze(1)
        return (lse - picked).mean().to(input.dtype)

    NOT_PROVIDED = {"cross_entropy": {f: "not written yet" for f in (
        "weight", "ignore_index", "label_smoothing", "probability target", "k-dim",
        "unbatched", "uint8 target", "single class", "reduction:none", "reduction:sum")}}
'''


def _run_suite(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CI": "true", "LOSSPROOFS_PROFILE": "ci"}
    return subprocess.run([sys.executable, "-m", "lossproofs", "test", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_a_module_providing_a_subset_passes_on_real_examples(tmp_path):
    """The supported subset is drawn in full: every example kept, no health check fails."""
    _module(tmp_path, "subset_losses", SUBSET_MODULE)
    summary = tmp_path / "summary.json"
    run = _run_suite(tmp_path, "--target", "module:subset_losses", "-q",
                     "-k", "cross_entropy and (test_forward or test_gradients or test_large "
                     "or test_degenerate)", "--hypothesis-show-statistics",
                     "--json", str(summary))
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "FailedHealthCheck" not in out and "Unsatisfiable" not in out
    assert "100 passing, 0 failing" in out  # the ci profile's full example count
    data = json.loads(summary.read_text())
    row = data["summary"]["rows"]["cross_entropy"]
    assert row["forward"]["status"] == "pass" and row["gradients"]["status"] == "pass"
    assert data["summary"]["verdicts"]["cross_entropy"] == "conforms"
    assert data["environment"]["torch"]


def test_a_module_is_found_from_the_current_directory_and_by_path(tmp_path):
    _module(tmp_path, "here_losses", '"""Found in the current directory."""\n')
    run = _run_suite(tmp_path, "--target", "module:here_losses", "--collect-only", "-q")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    run = _run_suite(tmp_path.parent, "--target", f"module:{tmp_path / 'here_losses.py'}",
                     "--collect-only", "-q")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    run = _run_suite(tmp_path, "--target", "module:nowhere_losses", "--collect-only", "-q")
    assert run.returncode == 4 and "current directory" in run.stderr


def test_an_undeclared_family_is_named_with_how_to_declare_it(tmp_path):
    """A module that ignores ignore_index raises on -100: the error says what to declare."""
    path = _module(tmp_path, "no_ignore", '''
        """Gathers every target, ignored or not."""
        import torch

        def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100,
                     reduce=None, reduction="mean"):
            return -input.gather(1, target.unsqueeze(1)).mean()
    ''')
    target = get_target(f"module:{path}")
    case = Case("nll_loss", (np.zeros((2, 3)), np.array([1, -100])),
                {"ignore_index": -100, "reduction": "mean"})
    with pytest.raises(RuntimeError) as info:
        checks.check_forward(target, case)
    note = "\n".join(getattr(info.value, "__notes__", []))
    assert "ignore_index" in note and "NOT_PROVIDED" in note and "'nll_loss'" in note


def test_a_reproduction_calls_the_module_under_test(tmp_path):
    path = _module(tmp_path, "repro_losses", '''
        """Delegates to torch."""
        import torch.nn.functional as F
        cross_entropy = F.cross_entropy
    ''')
    target = get_target(f"module:{path}")
    case = Case("cross_entropy", (np.array([[0.5, -1.0]]), np.array([1])), {})
    script = case.reproduction(target)
    assert "import repro_losses" in script and "repro_losses.cross_entropy(" in script
    exec(script, {})


def test_a_wrong_output_shape_is_reported_as_such():
    """A cross_entropy that ignores reduction='none' returns a scalar for a (2,) result."""
    c = checks.compare(np.zeros(()), np.zeros(2), "float64", "forward")
    assert not c.ok and c.message("cross_entropy forward", np.zeros(()), np.zeros(2)) == (
        "cross_entropy forward has the wrong shape: (), expected (2,)")


def test_a_built_in_targets_reproduction_runs():
    """A reproduction rebuilds a built-in target under a name no argument takes."""
    case = Case("cross_entropy", (np.array([[0.5, -1.0]]), np.array([[0.25, 0.75]])), {})
    script = case.reproduction(get_target("nn"))
    assert "impl = get_target('nn')" in script and "impl.cross_entropy(" in script
    exec(script, {})
