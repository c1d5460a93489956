"""The registry's completeness check: a function declared without one of its pieces is an error
at import that names the missing piece, never a silent default (lossproofs/registry.py)."""

from __future__ import annotations

import dataclasses

import pytest
import torch.nn.functional as F

from lossproofs import oracle, registry
from lossproofs.registry import LOSSES, IncompleteDeclaration, Loss, _check_complete


def _copy(registered: str, **changes) -> Loss:
    """A fresh (unchecked) copy of a registered declaration with ``changes``."""
    fields = {f.name: getattr(LOSSES[registered], f.name) for f in dataclasses.fields(Loss)
              if f.name != "resolved"}
    return Loss(**{**fields, **changes})


def test_every_registered_function_passes_the_check():
    for loss in LOSSES.values():
        _check_complete(_copy(loss.name))


@pytest.mark.parametrize(("changes", "message"), [
    ({"name": "scaled_log_softmax", "torch": F.log_softmax},
     "lossproofs.declarations.ARGUMENTS"),
    ({"kind": "ranking"}, "kind 'ranking' is not one of"),
    ({"nn": None, "nn_missing": ""}, "no nn module and no nn_missing reason"),
    ({"generic_checks": False, "generic_missing": ""}, "without a generic_missing reason"),
    ({"has_hvp": False}, "reference.cross_entropy_hvp exists but the declaration"),
    ({"differentiable_target": False}, "cross_entropy_target_backward exists but"),
    ({"gradient_arguments": ("target",)}, "must start with 'input'"),
])
def test_a_missing_or_inconsistent_piece_is_named(changes, message):
    with pytest.raises(IncompleteDeclaration, match=message.replace(".", r"\.")):
        _check_complete(_copy("cross_entropy", **changes))


def test_a_piece_the_modules_lack_is_named(monkeypatch):
    """Removing one piece (the exact oracle of softmax) fails the check, naming it."""
    monkeypatch.delattr(oracle, "softmax_backward")
    with pytest.raises(IncompleteDeclaration, match=r"exact gradient lossproofs\.oracle\."
                                                    r"softmax_backward is missing"):
        _check_complete(_copy("softmax"))


def test_a_missing_ulp_bound_is_named(monkeypatch):
    bounds = {k: v for k, v in registry.ULP_BOUNDS.items()
              if k != ("softmax", "bfloat16", "gradient")}
    monkeypatch.setattr(registry, "ULP_BOUNDS", bounds)
    with pytest.raises(IncompleteDeclaration, match=r"softmax: no ULP bound for \(bfloat16, "
                                                    r"gradient\)"):
        _check_complete(_copy("softmax"))
