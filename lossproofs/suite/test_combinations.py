"""Every parameter combination, by construction: one property per combination.

Ordinary draws reach a combination by chance; here each is its own parametrisation
(:data:`lossproofs.strategies.INDEX_TARGET_COMBINATIONS`: reduction × class weight × which
``ignore_index`` (the default −100, another negative, a real class, past the classes) × label
smoothing, for ``nll_loss`` (without smoothing, which it lacks) and index-target
``cross_entropy``; :data:`~lossproofs.strategies.PROBABILITY_TARGET_COMBINATIONS`: reduction ×
weight × smoothing for probability targets, which have no ``ignore_index``). Every index-target
draw holds at least one kept and one ignored target — asserted, not hoped for — so ``mean`` with
weights and some targets ignored, where denominators go wrong, runs in every dtype.

Forward and gradient in one property (each draw is cheap; a failure names which). Few examples
per combination (``COMBINATION_EXAMPLES``): the combinations multiply, and the ordinary
properties draw the same families at random besides.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lossproofs import strategies
from lossproofs.cases import DTYPES
from lossproofs.suite._support import (
    assert_forward_agrees,
    assert_gradients_agree,
    require,
    require_declared,
)

COMBINATION_EXAMPLES = max(2, settings.default.max_examples // 50)
SEEDS = st.integers(0, 2**32 - 1)


def _index_params():
    for function in ("nll_loss", "cross_entropy"):
        for reduction, weight, ignore_kind, smoothing in strategies.INDEX_TARGET_COMBINATIONS:
            if function == "nll_loss" and smoothing:
                continue
            yield pytest.param(function, reduction, weight, ignore_kind, smoothing,
                               id=f"{function}-{reduction}-{'weight' if weight else 'no_weight'}"
                                  f"-ignore_{ignore_kind}"
                                  f"{'-smoothing' if smoothing else ''}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("function", "reduction", "weight", "ignore_kind", "smoothing"),
                         list(_index_params()))
@settings(max_examples=COMBINATION_EXAMPLES)
@given(data=st.data(), seed=SEEDS)
def test_index_target_combination(impl, function, reduction, weight, ignore_kind, smoothing,
                                  dtype, data, seed):
    require(impl, function)
    require_declared(impl, function, reduction=reduction, weight=weight, ignore_index=True,
                     label_smoothing=smoothing)
    case = data.draw(strategies.nll_loss_cases(
        dtype, function, reduction=reduction, weight=weight, ignore="partial",
        ignore_kind=ignore_kind, smoothing=smoothing, exclude=impl.declared_out(function)),
        label="case")
    t, ignore_index = case.arrays[1], case.params["ignore_index"]
    assert (t == ignore_index).any() and (t != ignore_index).any(), "kept and ignored targets"
    assert case.params["reduction"] == reduction and ("weight" in case.params) == weight
    assert bool(case.params.get("label_smoothing")) == smoothing
    assert_forward_agrees(impl, case)
    assert_gradients_agree(impl, case, seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("reduction", "weight", "smoothing"), [
    pytest.param(r, w, s, id=f"{r}-{'weight' if w else 'no_weight'}{'-smoothing' if s else ''}")
    for r, w, s in strategies.PROBABILITY_TARGET_COMBINATIONS])
@settings(max_examples=COMBINATION_EXAMPLES)
@given(data=st.data(), seed=SEEDS)
def test_probability_target_combination(impl, reduction, weight, smoothing, dtype, data, seed):
    require(impl, "cross_entropy")
    require_declared(impl, "cross_entropy", reduction=reduction, weight=weight,
                     label_smoothing=smoothing, probability_target=True)
    case = data.draw(strategies.cross_entropy_probability_cases(
        dtype, reduction=reduction, weight=weight, smoothing=smoothing,
        exclude=impl.declared_out("cross_entropy")), label="case")
    assert case.arrays[1].dtype.kind == "f" and case.arrays[1].shape == case.arrays[0].shape
    assert case.params["reduction"] == reduction and ("weight" in case.params) == weight
    assert bool(case.params.get("label_smoothing")) == smoothing
    assert np.isfinite(case.arrays[1]).all()
    assert_forward_agrees(impl, case)
    assert_gradients_agree(impl, case, seed, wrt_target=True)
