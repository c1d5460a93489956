"""The Case machinery: layouts keep values, and a failure's reproduction script really runs."""

import numpy as np
import pytest
import torch

from lossproofs.cases import LAYOUTS, Case, lay_out, lay_out_like_case, layout_for


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_keeps_values_and_changes_memory(layout):
    t = torch.arange(24.0).reshape(2, 3, 4)
    if layout == "expanded":
        t = t[:1].expand(2, 3, 4).contiguous()
    laid = lay_out(t, layout)
    assert torch.equal(laid, t)
    assert laid.is_contiguous() == (layout == "contiguous")


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
def test_reproduction_runs_and_prints_torch_then_reference(layout, capsys):
    case = Case("cross_entropy",
                (np.array([[0.25, -1.5, 2.0], [1.0, 0.5, -0.5]]), np.array([2, 0])),
                {"weight": np.array([1.0, 2.0, 0.5]), "reduction": "sum"}, "float64", layout)
    exec(case.reproduction(), {})  # the script a failing property prints
    torch_line, reference_line = capsys.readouterr().out.strip().splitlines()
    # torch prints 4 decimals: the two printed values agree to that precision.
    printed_torch = float(torch_line.removeprefix("tensor(").split(",")[0].rstrip(")"))
    assert abs(printed_torch - float(reference_line)) <= 5e-5
    if layout != "contiguous":
        assert "lay_out" in case.reproduction()


@pytest.mark.parametrize("layout", ["transposed", "sliced", "expanded"])
def test_every_array_argument_takes_a_non_contiguous_layout(layout):
    """The input, the target and the class weight all reach the implementation non-contiguous
    (the target and weight of an ``expanded`` case, whose slices differ, are sliced instead)."""
    x = np.array([[0.25, -1.5, 2.0], [0.25, -1.5, 2.0]])
    case = Case("cross_entropy", (x, np.array([2, 0])),
                {"weight": np.array([1.0, 2.0, 0.5]), "reduction": "sum"}, "float32", layout)
    (t_x, t_t), kwargs = case.torch_args((True,))
    for t in (t_x, t_t, kwargs["weight"]):
        assert not t.is_contiguous()
    assert torch.equal(t_t, torch.tensor([2, 0]))
    assert torch.equal(kwargs["weight"], torch.tensor([1.0, 2.0, 0.5]))


def test_layout_for_falls_back_to_sliced_and_leaves_single_elements_alone():
    assert layout_for(torch.zeros(2, 1), "transposed") == "sliced"
    assert layout_for(torch.tensor([1.0, 2.0]), "expanded") == "sliced"
    assert layout_for(torch.tensor([3.0]), "sliced") == "contiguous"
    assert layout_for(torch.tensor(3.0), "transposed") == "contiguous"
    assert not lay_out_like_case(torch.zeros(2, 1), "transposed").is_contiguous()


def test_a_layout_that_leaves_a_tensor_contiguous_is_an_error(monkeypatch):
    """A case never claims a layout its tensors lack: were layout_for to keep a tensor
    contiguous under a non-contiguous layout, torch_args would raise."""
    from lossproofs import cases

    monkeypatch.setattr(cases, "layout_for", lambda t, layout: "contiguous")
    with pytest.raises(AssertionError, match="left a tensor"):
        cases.lay_out_like_case(torch.zeros(2, 2), "sliced")


@pytest.mark.parametrize("layout", ["sliced", "expanded"])
def test_reproduction_rebuilds_every_non_contiguous_argument(layout, capsys):
    case = Case("nll_loss", (np.array([[0.5, -1.0], [0.5, -1.0]]), np.array([1, -100])),
                {"weight": np.array([0.5, 2.0]), "reduction": "mean"}, "float64", layout)
    script = case.reproduction()
    assert "t_target = lay_out(t_target, 'sliced')" in script
    assert "t_weight = lay_out(t_weight, 'sliced')" in script
    exec(script, {})
    torch_line, reference_line = capsys.readouterr().out.strip().splitlines()
    assert abs(float(torch_line.removeprefix("tensor(").split(",")[0].rstrip(")"))
               - float(reference_line)) <= 5e-5


def test_reproduction_uses_sources_for_large_arrays():
    x = np.arange(6.0).reshape(2, 3)
    case = Case("softmax", (x,), {"dim": 1}, "float64",
                sources={"input": "np.arange(6.0).reshape(2, 3)"})
    script = case.reproduction()
    assert "input = np.arange(6.0).reshape(2, 3)" in script
    assert "np.array([" not in script
