"""The suite follows the torch it runs on: what ``F.linear_cross_entropy`` offers is read from
the installed torch (:mod:`lossproofs.targets.linear`), and what changed between releases is
reported by name, never dropped in silence.

- every ``acc_policy`` a torch release has had (:data:`~lossproofs.targets.linear.
  KNOWN_ACC_POLICIES`) is either offered by the installed torch, and then runs and agrees with
  the reference path, or a strict xfail naming why it is not (``balanced``: removed in torch
  2.14);
- the policies and chunking methods are what torch's own ``LinearCrossEntropyOptions``
  accepts, and a torch that rejects a known policy is reported with its reason (checked here
  against a stand-in options class, so this runs on any release);
- the fallback rule is the table's entry for the installed release;
- a torch without ``F.linear_cross_entropy`` (< 2.13) gets empty policy lists and the reason.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest
import torch

from lossproofs.targets import linear as L

needs_linear_ce = pytest.mark.skipif(not L.HAS_LINEAR_CROSS_ENTROPY, reason=L.MISSING_REASON)


def _policy_param(policy: str):
    why = L.UNAVAILABLE_ACC_POLICIES.get(policy)
    marks = [] if why is None else [pytest.mark.xfail(
        strict=True, raises=ValueError,
        reason=f"torch {torch.__version__}: acc_policy {policy!r} {why}")]
    return pytest.param(policy, id=policy, marks=marks)


@needs_linear_ce
@pytest.mark.parametrize("policy", [_policy_param(p) for p in L.KNOWN_ACC_POLICIES])
def test_each_known_acc_policy_runs_or_is_reported_missing(policy):
    """A known policy the installed torch has runs the chunked path (no fallback warning) and
    agrees with the reference path; one it does not have is rejected by torch's own options
    class (the strict xfail's ValueError) and listed with the reason."""
    options = torch.nn.LinearCrossEntropyOptions(acc_policy=policy, batch_chunk_size=2,
                                                 chunking_method=None)
    assert policy in L.ACC_POLICIES
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 3, 1, 2, -100])
    out, warned = L.call_recording_warnings(torch.nn.functional.linear_cross_entropy, x, w, t,
                                            options=options)
    assert not warned
    torch.testing.assert_close(out, torch.nn.functional.linear_cross_entropy(x, w, t))


@needs_linear_ce
def test_the_policies_are_what_torchs_options_accept():
    """ACC_POLICIES is every candidate torch's ``LinearCrossEntropyOptions`` accepts, and
    torch's own list where it keeps one (``_VALID_ACC_POLICIES``, torch ≥ 2.14)."""
    import torch.nn.modules.linear_cross_entropy_options as options_module

    assert set(L.ACC_POLICIES) | set(L.UNAVAILABLE_ACC_POLICIES) >= set(L.KNOWN_ACC_POLICIES)
    assert not set(L.ACC_POLICIES) & set(L.UNAVAILABLE_ACC_POLICIES)
    own = getattr(options_module, "_VALID_ACC_POLICIES", None)
    if own is not None:
        assert set(L.ACC_POLICIES) == set(own)
    for policy in L.ACC_POLICIES:
        torch.nn.LinearCrossEntropyOptions(acc_policy=policy)
    for method in L.CHUNKING_METHODS:
        torch.nn.LinearCrossEntropyOptions(chunking_method=method)
    assert set(L.CHUNKING_METHODS) | set(L.UNAVAILABLE_CHUNKING_METHODS) == set(
        L.KNOWN_CHUNKING_METHODS)
    offered = L.representative_configurations()
    assert {c.acc_policy for c in offered} == set(L.ACC_POLICIES)
    assert {c.chunk for c in offered} - {None} == set(L.CHUNK_SIZES)
    assert {c.chunking_method for c in offered} - {None} == set(L.CHUNKING_METHODS)


@dataclasses.dataclass(frozen=True)
class _Options214:
    """A stand-in for torch 2.14's ``LinearCrossEntropyOptions``: ``balanced`` rejected, the
    valid names listed in the ValueError, plus a policy no release has had."""

    allow_retain_graph: bool = False
    batch_chunk_size: int | None = None
    chunking_method: str | None = "auto"
    acc_policy: Literal["accurate", "compact", "auto", "newer"] = "auto"
    acc_dtype: torch.dtype | None = None

    def __post_init__(self):
        valid = ("auto", "accurate", "compact", "newer")
        if self.acc_policy not in valid:
            raise ValueError(f"invalid acc_policy: {self.acc_policy!r}; expected one of "
                             f"{', '.join(map(repr, valid))}")
        if self.chunking_method not in (None, "auto", "aspect_ratio", "aspect_ratio:2"):
            raise ValueError(f"invalid chunking_method: {self.chunking_method!r}")


@pytest.mark.parametrize("release, why", [((2, 14), "removed in torch 2.14"),
                                          ((2, 13), "rejects it: ValueError: invalid acc_policy")])
def test_a_policy_torch_rejects_is_reported_with_the_reason(monkeypatch, release, why):
    """Read from a stand-in options class: ``balanced`` rejected is "removed in torch 2.14" on
    2.14 or later, and torch's own message on a release the change table does not explain; a
    policy only torch lists (``newer``) is offered."""
    monkeypatch.setattr(torch.nn, "LinearCrossEntropyOptions", _Options214, raising=False)
    monkeypatch.setattr(L, "HAS_LINEAR_CROSS_ENTROPY", True)
    monkeypatch.setattr(L, "TORCH_RELEASE", release)
    policies, missing, methods, missing_methods = L._offered()
    assert policies == ("accurate", "compact", "auto", "newer")
    assert list(missing) == ["balanced"] and why in missing["balanced"]
    assert methods == L.KNOWN_CHUNKING_METHODS and not missing_methods


def test_without_linear_cross_entropy_nothing_is_offered_and_the_reason_is_given(monkeypatch):
    monkeypatch.setattr(L, "HAS_LINEAR_CROSS_ENTROPY", False)
    policies, missing, methods, _ = L._offered()
    assert policies == () and methods == ()
    assert set(missing) == set(L.KNOWN_ACC_POLICIES)
    assert all("added in torch 2.13" in why for why in missing.values())
    assert "2.13" in L.MISSING_REASON


@pytest.mark.parametrize("version, release", [("2.14.1+cu130", (2, 14)), ("2.13.0+cpu", (2, 13)),
                                              ("2.15.0a0+git1234", (2, 15)), ("2.1.2", (2, 1))])
def test_release_of_a_version_string(version, release):
    assert L._release(version) == release


@needs_linear_ce
def test_the_fallback_rule_is_the_tables_entry_for_this_release():
    """FALLBACK_RULE is the newest rule whose release the installed torch has reached (each
    cites the source lines it was read from); test_fallback_probe_matches_the_rule
    (lossproofs/suite/test_linear_torch_paths.py) checks it against what torch does."""
    rules = sorted(L.FALLBACK_RULES, key=lambda r: r.since)
    reached = [r for r in rules if L.TORCH_RELEASE >= r.since]
    assert L.FALLBACK_RULE is reached[-1]
    assert all("torch/nn/functional.py" in r.source for r in rules)
    assert L.PROBABILITY_TARGETS_CHUNK == (L.TORCH_RELEASE >= (2, 14))
    assert ("probability target" in L.expected_fallbacks()) == (not L.PROBABILITY_TARGETS_CHUNK)


def test_the_fallback_rules_differ_in_probability_targets():
    """torch 2.13 hands every probability target back; torch 2.14 keeps mean and sum of a
    target that does not require grad."""
    old, new = (next(r for r in L.FALLBACK_RULES if r.since == v) for v in ((2, 13), (2, 14)))
    assert L.expected_fallbacks(new) == L.expected_fallbacks(old) - {
        "probability target", "probability target, reduction sum"}
