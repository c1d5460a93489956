"""What the strategies actually draw: variety asserted on samples, not assumed.

Each ordinary strategy is sampled in ``RUNS`` seeded hypothesis runs of ``PER_RUN`` draws
(generation only, as the ci profile generates), pooled: one run's draws cluster (hypothesis
replays and mutates its own examples, so a 5 % stratum is drawn 0 or 14 times in a run of 100),
and which clusters a run holds moves with any edit to the package's sources (the ci profile's
constant pool is pinned to them), so shares and extremes are asserted on the pool, where they
follow the strategies' declared shares and ranges, and bounds on every draw. The pool must be
non-trivial: no empty input, few single-element or constant-row draws (only the named strata),
kept and ignored targets together, every reduction, non-contiguous layouts that really are
non-contiguous for every array argument, and the largest ordinary sizes reached, none exceeded.
The combination strategies must hold their guarantee in every draw, and the size tier must
reach its sizes in every dtype.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

from lossproofs import strategies
from lossproofs.cases import DTYPES, Case
from lossproofs.dtypes import max_finite, smallest_subnormal
from lossproofs.strategies import class_dim
from lossproofs.strategies.degenerate import degenerate_cases
from lossproofs.strategies.large import LONG_BATCHES, STRATA, VOCABULARIES, large_cases
from lossproofs.strategies.sampling import sample

# Seeded runs pooled per strategy, and draws per run (each run's first draw is hypothesis'
# simplest example, so runs are not made shorter).
RUNS = 8
PER_RUN = 50
SAMPLE = RUNS * PER_RUN
FUNCTIONS = ("softmax", "log_softmax", "logsumexp", "nll_loss", "cross_entropy",
             "binary_cross_entropy", "binary_cross_entropy_with_logits")
# Upper bounds on trivial draws, in percent of the sample: the named strata's shares (see
# lossproofs.strategies) with room for chance.
MAX_SINGLE_ELEMENT = 5
MAX_CONSTANT_ROWS = 15
MAX_ALL_ZERO = 3


def pooled(strategy, runs: int = RUNS, per_run: int = PER_RUN) -> list:
    """The draws of ``runs`` seeded samples (seeds 0, 1, ...) of ``per_run`` draws each."""
    return [drawn for seed in range(runs) for drawn in sample(strategy, per_run, seed)]


_SAMPLES: dict[tuple[str, str], list[Case]] = {}


def ordinary(function: str, dtype: str = "float32") -> list[Case]:
    key = (function, dtype)
    if key not in _SAMPLES:
        _SAMPLES[key] = pooled(strategies.cases(function, dtype))
    return _SAMPLES[key]


def reduced_axes(case: Case) -> tuple[int, ...] | None:
    """The dimensions the function reduces over (softmax family: ``dim``; losses: the class
    dim), or None for the elementwise BCEs."""
    x = case.arrays[0]
    if case.function in ("softmax", "log_softmax", "logsumexp"):
        dim = case.params["dim"]
        return tuple(d % x.ndim for d in (dim if isinstance(dim, tuple) else (dim,)))
    if case.function in ("nll_loss", "cross_entropy"):
        return (class_dim(x.shape),)
    return None


def constant_rows(case: Case) -> bool:
    """Every slice the function reduces over holds one value (the whole array for BCEs)."""
    x = case.arrays[0]
    axes = reduced_axes(case)
    if axes is None:
        return bool((x == x.flat[0]).all())
    first = x[tuple(slice(0, 1) if i in axes else slice(None) for i in range(x.ndim))]
    return bool((x == first).all())


def percent(count: int, total: int) -> float:
    return 100.0 * count / total


@pytest.mark.parametrize("function", FUNCTIONS)
def test_ordinary_draws_are_not_trivial(function):
    cases = ordinary(function)
    n = len(cases)
    assert n == SAMPLE
    assert all(0 not in c.arrays[0].shape and c.arrays[0].ndim >= 1 for c in cases), \
        "ordinary draws have at least one element per dimension (empty: test_degenerate)"
    single = sum(c.arrays[0].size == 1 for c in cases)
    constant = sum(constant_rows(c) for c in cases)
    zero = sum(not c.arrays[0].any() for c in cases if "constant rows" not in c.tags)
    assert percent(single, n) <= MAX_SINGLE_ELEMENT, f"{single} single-element draws of {n}"
    assert percent(constant, n) <= MAX_CONSTANT_ROWS, f"{constant} constant-row draws of {n}"
    assert percent(zero, n) <= MAX_ALL_ZERO, f"{zero} all-zero draws of {n}"
    # Constant rows occur only where a named stratum says so.
    for c in cases:
        if constant_rows(c) and c.arrays[0].size > 1:
            assert {"constant rows", "ties", "single class"} & c.tags, c.tags


# Functions drawn by the same strategy code (softmax_cases): their row strata are one stratum.
SAME_STRATEGY = {f: family for family in (("softmax", "log_softmax", "logsumexp"),
                                           ("nll_loss", "cross_entropy"))
                 for f in family}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_named_strata_are_reached(function):
    """Each named stratum is drawn in the pool (for functions that share a strategy — the
    softmax family, nll_loss and index-target cross_entropy — by their pools together)."""
    tags = collections.Counter(t for f in SAME_STRATEGY.get(function, (function,))
                               for c in ordinary(f) for t in c.tags)
    tags.update(t for c in ordinary(function) for t in c.tags if t == "tuple dim")
    expected = {"constant rows"}
    if function not in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
        expected |= {"ties"}
    if function == "logsumexp":
        expected |= {"tuple dim"}
    missing = expected - set(tags)
    assert not missing, f"{function}: strata never drawn: {missing} ({dict(tags)})"


def test_single_class_stratum_is_reached():
    """C = 1 (a small share: one class makes every loss trivially 0) in the class-dimension
    functions' samples taken together; test_degenerate lists it explicitly besides."""
    assert any("single class" in c.tags for f in FUNCTIONS[:5] for c in ordinary(f))


@pytest.mark.parametrize("function", FUNCTIONS[3:])
def test_every_reduction_is_drawn_and_tagged(function):
    tags = collections.Counter(t for c in ordinary(function) for t in c.tags)
    for reduction in strategies.REDUCTIONS:
        assert tags[f"reduction:{reduction}"] >= SAMPLE // 20, dict(tags)
    for c in ordinary(function):
        assert f"reduction:{c.params['reduction']}" in c.tags


def distinct(cases: list[Case]) -> list[Case]:
    """The sample without repeats (hypothesis replays and mutates earlier draws, so a run
    holds some case several times)."""
    seen: dict[str, Case] = {}
    for c in cases:
        seen.setdefault(repr(c), c)
    return list(seen.values())


@pytest.mark.parametrize("function", ["nll_loss", "cross_entropy"])
def test_kept_and_ignored_targets_share_the_batch(function):
    cases = [c for c in distinct(ordinary(function)) if "ignore_index" in c.params
             and c.arrays[1].shape != c.arrays[0].shape]
    assert len(cases) >= SAMPLE // 10
    partial = [c for c in cases if c.arrays[1].size >= 2
               and (c.arrays[1] == c.params["ignore_index"]).any()
               and (c.arrays[1] != c.params["ignore_index"]).any()]
    multi = [c for c in cases if c.arrays[1].size >= 2]
    # "all" and "none" ignored are named strata of 5 % each; hypothesis' replays of earlier
    # draws inflate them within a run, hence 60 %, not 90 % (test_combinations
    # guarantees kept and ignored targets in every one of its draws).
    assert percent(len(partial), len(multi)) >= 60, f"{len(partial)} of {len(multi)}"
    # The combination that breaks denominators: mean, class weights, some targets ignored.
    weighted_mean = [c for c in partial if c.params["reduction"] == "mean"
                     and "weight" in c.params]
    assert weighted_mean, "mean with weight and some targets ignored is drawn"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_non_contiguous_layouts_are_non_contiguous_for_every_argument(function):
    cases = ordinary(function)
    laid = [c for c in cases if c.layout != "contiguous"]
    assert percent(len(laid), len(cases)) >= 40
    arguments = collections.Counter()
    for c in laid:
        tensors, kwargs = c.torch_args()
        named = list(zip(("input", "target"), tensors)) + [
            (k, v) for k, v in kwargs.items() if hasattr(v, "is_contiguous")]
        for name, t in named:
            if t.numel() >= 2:
                assert not t.is_contiguous(), (name, c)
                arguments[name] += 1
    expected = {"input"} | ({"target"} if function not in FUNCTIONS[:3] else set()) | (
        {"weight"} if function in FUNCTIONS[3:] else set())
    assert expected <= set(arguments), f"non-contiguous arguments reached: {dict(arguments)}"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_ordinary_sizes_reach_the_bounds(function):
    """The pool reaches the largest ordinary sizes; no draw exceeds them."""
    cases = ordinary(function)
    if function in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
        assert max(c.arrays[0].size for c in cases) >= 48
        return
    extents = [max(c.arrays[0].shape[a] for a in reduced_axes(c)) for c in cases]
    assert strategies.MAX_CLASSES - 1 <= max(extents) <= strategies.MAX_CLASSES
    if function in ("nll_loss", "cross_entropy"):
        batches = [c.arrays[0].shape[0] for c in cases if c.arrays[0].ndim >= 2]
        assert strategies.MAX_BATCH - 1 <= max(batches) <= strategies.MAX_BATCH
        assert any(c.arrays[0].ndim == 5 for c in cases), "3 spatial dims reached"


# -- the combination strategies -----------------------------------------------------------------
@pytest.mark.parametrize(("reduction", "weight", "ignore_kind", "smoothing"),
                         strategies.INDEX_TARGET_COMBINATIONS)
def test_index_combinations_hold_their_guarantee_in_every_draw(reduction, weight, ignore_kind,
                                                               smoothing):
    cases = sample(strategies.nll_loss_cases(
        None, "cross_entropy", reduction=reduction, weight=weight, ignore="partial",
        ignore_kind=ignore_kind, smoothing=smoothing), 20)
    for c in cases:
        t, ignore_index = c.arrays[1], c.params["ignore_index"]
        assert (t == ignore_index).any() and (t != ignore_index).any()
        assert c.params["reduction"] == reduction and ("weight" in c.params) == weight
        assert bool(c.params.get("label_smoothing")) == smoothing
        kind = {-100: "default", -1: "negative"}.get(ignore_index)
        c_count = c.arrays[0].shape[class_dim(c.arrays[0].shape)]
        kind = kind or ("class" if 0 <= ignore_index < c_count else "beyond")
        assert kind == ignore_kind


# -- degenerate and large ------------------------------------------------------------------------
@pytest.mark.parametrize("function", FUNCTIONS)
def test_degenerate_cases_cover_empty_and_single_element(function):
    cases = degenerate_cases(function, "float32")
    sizes = {c.arrays[0].size for c in cases}
    assert {0, 1} <= sizes
    if function in FUNCTIONS[3:]:
        assert {c.params["reduction"] for c in cases} == set(strategies.REDUCTIONS)


LARGE_DRAWS = 4
LARGE_RUNS = 4  # seeded runs pooled where the largest size must be reached


@pytest.mark.parametrize(("function", "stratum"),
                         [(f, s) for f, strata in STRATA.items() for s in strata])
def test_large_strata_reach_their_sizes(function, stratum):
    """Every draw is of the tier's size; the pool of runs reaches its largest long batch."""
    cases = pooled(large_cases(function, stratum, "float32"), LARGE_RUNS, LARGE_DRAWS)
    assert all("large" in c.tags and stratum.removeprefix("probability ") in c.tags
               for c in cases)
    shapes = [c.arrays[0].shape for c in cases]
    if stratum.endswith("vocabulary") or stratum == "non-last dim":
        assert min(max(s) for s in shapes) >= min(VOCABULARIES)
    if stratum.endswith("long batch"):
        assert min(max(s) for s in shapes) >= min(LONG_BATCHES)
        assert max(max(s) for s in shapes) >= max(LONG_BATCHES)
    if stratum == "k-dim":
        assert min(int(np.prod(s[2:])) for s in shapes) >= 129 * 67
    for c in cases:
        assert c.sources and "input" in c.sources  # reproductions rebuild the arrays


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("function", ["nll_loss", "cross_entropy"])
def test_large_total_weight_is_beyond_the_dtype_and_weights_span_its_range(function, dtype):
    for c in sample(large_cases(function, "total weight", dtype), LARGE_DRAWS):
        (_, t), params = c.reference_args()
        kept = t != params.get("ignore_index", -100)
        total = float(np.sum(params["weight"][t[kept]]))
        if dtype == "float64":  # near its largest value; the float64 reference must not overflow
            assert max_finite(dtype) / 2**14 < total < max_finite(dtype)
        else:
            assert total > max_finite(dtype)
    weights = np.concatenate([c.params["weight"] for c in sample(
        large_cases(function, "weight range", dtype), LARGE_DRAWS)])
    assert weights.min() < strategies.MIN_WEIGHT  # tiny weights, which ordinary draws lack
    span = np.log2(weights.max()) - np.log2(weights.min())
    assert span >= 0.5 * (np.log2(max_finite(dtype)) - np.log2(smallest_subnormal(dtype)))
