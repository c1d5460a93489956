"""The Case machinery: layouts keep values, and a failure's reproduction script really runs."""

import numpy as np
import pytest
import torch

from lossproofs.cases import LAYOUTS, Case, lay_out


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
