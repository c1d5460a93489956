"""Training-level equivalence (issue 6): the harness, its data loaders and the --quick run.

The central assertion: training the seed's network with ``CrossEntropyLoss`` and with
``LogSoftmax + NLLLoss`` in lockstep gives bitwise identical losses, gradients and parameters at
every step of the ``--quick`` run (``BITWISE_RUNS``). Around it, tests that show the harness can
see a difference when there is one, and independent checks of its data loading and ULP counting.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import struct
import sys

import numpy as np
import pytest
import torch

from benchmarks import training_equivalence as te
from benchmarks._digit_data import DigitData, load_mnist_dir, load_sklearn_digits, read_idx
from benchmarks._progress import PlainProgress, progress_bar
from benchmarks._render import json_safe

# ---------------------------------------------------------------------------------------------
# The --quick run: one test, so that `pytest -n 2` never trains it twice (a module fixture would
# run once per xdist worker). Each check below is a separate function named in its failures.


def test_quick_run(tmp_path):
    out = tmp_path / "quick"
    # --quick defaults to one thread: under `pytest -n 2` on two cores, two torch threads per
    # worker oversubscribe the CPU and slow the run several-fold; bitwise equality does not
    # depend on the count (_check_reports_carry_the_environment checks the default).
    assert te.main(["--quick", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    _check_reports_carry_the_environment(out, results)
    _check_advertised_length(results)
    for run in te.BITWISE_RUNS[1:]:
        _check_bitwise_equal_at_every_step(results, run)
    _check_naive_run_recorded_consistently(results)
    _check_first_loss_against_an_independent_replay(results)


def _check_reports_carry_the_environment(out, results):
    assert results["environment"]["torch"] == torch.__version__
    assert results["environment"]["device"] == "cpu"
    assert results["environment"]["torch_num_threads"] == 1
    markdown = (out / "results.md").read_text(encoding="utf-8")
    assert "## Environment" in markdown and torch.__version__ in markdown
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # the PNG is optional; its absence is reported, not an error
        assert results["loss_curves_png"] is None
    else:
        assert (out / "loss_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _check_advertised_length(results):
    assert results["total_steps"] == te.QUICK_STEPS
    assert results["steps"]["step"] == list(range(1, te.QUICK_STEPS + 1))
    assert results["initial_parameters_bitwise_equal"] is True


def _check_bitwise_equal_at_every_step(results, run):
    """CrossEntropyLoss vs LogSoftmax + NLLLoss: the central claim (BITWISE_RUNS)."""
    record = results["steps"]["comparisons"][run]
    for key in ("loss_bitwise", "grads_bitwise", "params_bitwise"):
        first = te.first_false(record[key], results["steps"]["step"])
        assert first is None, f"{run} vs {te.REFERENCE_RUN}: {key} first false at step {first}"
    assert set(record["loss_ulp"]) == {0}
    assert set(record["same_input_loss_ulp"]) == {0}
    assert results["steps"]["loss"][run] == results["steps"]["loss"][te.REFERENCE_RUN]
    for epoch in results["epochs"]:
        assert epoch["param_diff"][run] == {"max_abs": 0.0, "bitwise": True}, epoch
        assert epoch["test_accuracy"][run] == epoch["test_accuracy"][te.REFERENCE_RUN], epoch


def _check_naive_run_recorded_consistently(results):
    """The third run is measured, not assumed: its flags agree with its distances."""
    record = results["steps"]["comparisons"]["naive_log_softmax"]
    assert len(record["loss_ulp"]) == te.QUICK_STEPS
    for ulp, bitwise, absdiff in zip(record["loss_ulp"], record["loss_bitwise"],
                                     record["loss_abs_diff"]):
        assert (ulp == 0) == bitwise == (absdiff == 0)
    assert all(math.isfinite(v) for v in results["steps"]["loss"]["naive_log_softmax"])


def _check_first_loss_against_an_independent_replay(results):
    """Step 1 recomputed outside the harness: same seed → same weights and first batch."""
    seed = results["config"]["seed"]
    data = load_sklearn_digits()
    torch.manual_seed(seed)
    model = te.build_seed_network()
    first_batch = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed))
    first_batch = first_batch[:results["config"]["batch_size"]]
    logits = model(data.x_train[first_batch])
    expected = torch.nn.functional.cross_entropy(logits, data.y_train[first_batch]).item()
    assert results["steps"]["loss"][te.REFERENCE_RUN][0] == expected


def test_cross_entropy_is_built_from_the_same_two_autograd_nodes():
    """Why bitwise holds: cross_entropy (index targets, no smoothing) records the very nodes
    LogSoftmax + NLLLoss record. If torch ever fuses it into one kernel this fails first, and
    the bitwise claim must be re-measured (a fused kernel may round differently)."""
    z = torch.randn(4, 10, requires_grad=True)
    t = torch.tensor([0, 3, 9, 1])

    def chain(loss):
        node, names = loss.grad_fn, []
        while node is not None and node.next_functions:
            names.append(type(node).__name__)
            node = node.next_functions[0][0]
        return names

    composed = torch.nn.NLLLoss()(torch.nn.LogSoftmax(dim=1)(z), t)
    assert chain(torch.nn.CrossEntropyLoss()(z, t)) == chain(composed)
    assert chain(composed) == ["NllLossBackward0", "LogSoftmaxBackward0"]


# ---------------------------------------------------------------------------------------------
# The harness can fail: a difference of one rounding is seen at once


def _small_digits(n_train: int = 96) -> DigitData:
    d = load_sklearn_digits()
    return DigitData(d.name, d.x_train[:n_train], d.y_train[:n_train], d.x_test, d.y_test,
                     d.source)


def test_a_one_ulp_perturbation_is_reported_at_step_one(monkeypatch):
    def perturbed():
        ce = torch.nn.CrossEntropyLoss()
        # One float32 ULP up at the loss (x·(1+2⁻²³) rounds to nextafter(x, +inf) for x > 0).
        return lambda z, t: ce(z, t) * (1 + 2.0**-23)

    monkeypatch.setitem(te.RUNS, "perturbed", te.RunSpec("perturbed", "CE·(1+2⁻²³)", perturbed))
    config = te.TrainingConfig(epochs=1, max_steps=3)
    with te.deterministic_torch(torch.device("cpu"), threads=1):
        result = te.train_lockstep(_small_digits(), config, ["cross_entropy", "perturbed"])
    summary = result["summary"]["perturbed"]
    assert summary["first_loss_divergence_step"] == 1
    assert summary["first_grad_divergence_step"] == 1
    assert summary["first_param_divergence_step"] == 1
    assert result["steps"]["comparisons"]["perturbed"]["loss_ulp"][0] == 1
    assert result["steps"]["comparisons"]["perturbed"]["same_input_loss_ulp"][0] == 1
    assert result["epochs"][-1]["param_diff"]["perturbed"]["max_abs"] > 0


def test_the_same_criterion_twice_is_bitwise_equal(monkeypatch):
    """Control: the harness itself is deterministic (equal runs stay bitwise equal)."""
    monkeypatch.setitem(te.RUNS, "cross_entropy_again",
                        te.RunSpec("cross_entropy_again", "CE", te.RUNS["cross_entropy"]
                                   .make_criterion))
    config = te.TrainingConfig(epochs=2)
    with te.deterministic_torch(torch.device("cpu"), threads=1):
        result = te.train_lockstep(_small_digits(), config,
                                   ["cross_entropy", "cross_entropy_again"])
    assert result["summary"]["cross_entropy_again"]["all_bitwise"] is True
    assert result["total_steps"] == 2 * math.ceil(96 / config.batch_size)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: the CUDA lockstep "
                    "run needs one (the CPU run above covers the same assertion)")
def test_cross_entropy_and_log_softmax_nll_are_bitwise_equal_on_cuda():
    config = te.TrainingConfig(epochs=3)
    with te.deterministic_torch(torch.device("cuda"), None):
        result = te.train_lockstep(load_sklearn_digits(), config, list(te.BITWISE_RUNS), "cuda")
    summary = result["summary"][te.BITWISE_RUNS[1]]
    assert summary["all_bitwise"], summary


# ---------------------------------------------------------------------------------------------
# ULP distance, checked against NumPy's nextafter


@pytest.mark.parametrize("start", [1.0, -1.0, 0.0, 1e-40, -1e-40, 3.0e38, 2.5e-3])
@pytest.mark.parametrize("direction", [np.inf, -np.inf])
def test_ulp_distance_counts_nextafter_steps(start, direction):
    x = np.float32(start)
    for k in range(1, 6):
        x = np.nextafter(x, np.float32(direction))
        assert te.float32_ulp_distance(float(np.float32(start)), float(x)) == k
        assert te.float32_ulp_distance(float(x), float(np.float32(start))) == k


def test_ulp_distance_special_values():
    assert te.float32_ulp_distance(0.0, -0.0) == 0
    assert te.float32_ulp_distance(math.inf, float(np.finfo(np.float32).max)) == 1
    assert te.float32_ulp_distance(math.nan, 1.0) is None


# ---------------------------------------------------------------------------------------------
# Data: the IDX parser and the two loaders


def _idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
             np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32,
                                   np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trips(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    payload = _idx_bytes(array)
    path = tmp_path / "tiny-idx3"
    path.write_bytes(gzip.compress(payload) if compress else payload)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_read_idx_rejects_bad_files(tmp_path):
    good = _idx_bytes(np.zeros((2, 3), dtype=np.uint8))
    cases = {"bad-magic": b"\x01" + good[1:], "unknown-type": good[:2] + b"\x07" + good[3:],
             "truncated": good[:-1], "short-header": good[:6]}
    for name, payload in cases.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(ValueError, match=name):
            read_idx(tmp_path / name)


def _write_fake_mnist(directory, n_train=5, n_test=3, gz=True):
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for i, (name, array) in enumerate(arrays.items()):
        payload = _idx_bytes(array)
        if gz and i % 2 == 0:  # a mix of compressed and plain files
            (directory / (name + ".gz")).write_bytes(gzip.compress(payload))
        else:
            (directory / name).write_bytes(payload)
    return arrays


def test_load_mnist_dir_normalises_with_training_statistics(tmp_path):
    arrays = _write_fake_mnist(tmp_path / "mnist")
    data = load_mnist_dir(tmp_path / "mnist")
    train = arrays["train-images-idx3-ubyte"].reshape(5, -1) / 255.0
    mean, std = train.mean(), train.std()
    np.testing.assert_allclose(data.x_train.numpy(), (train - mean) / std, rtol=1e-5, atol=1e-6)
    test = arrays["t10k-images-idx3-ubyte"].reshape(3, -1) / 255.0
    np.testing.assert_allclose(data.x_test.numpy(), (test - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(data.y_train.numpy(), arrays["train-labels-idx1-ubyte"])
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64


def test_load_mnist_dir_names_the_missing_file(tmp_path):
    _write_fake_mnist(tmp_path / "mnist", gz=False)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist_dir(tmp_path / "mnist")


def test_mnist_option_runs_end_to_end(tmp_path):
    _write_fake_mnist(tmp_path / "mnist", n_train=70)
    out = tmp_path / "out"
    assert te.main(["--mnist", str(tmp_path / "mnist"), "--epochs", "1", "--out", str(out),
                    "--no-progress", "--no-naive"]) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["data"]["name"] == "mnist" and results["total_steps"] == 2
    assert set(results["runs"]) == {"cross_entropy", "log_softmax_nll"}


def test_sklearn_digits_split_is_fixed_disjoint_and_normalised():
    a, b = load_sklearn_digits(), load_sklearn_digits()
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.x_train.shape[1] == 28 * 28 and a.x_test.shape[1] == 28 * 28
    assert len(a.y_train) + len(a.y_test) == 1797
    assert set(a.y_train.tolist()) == set(range(10)) == set(a.y_test.tolist())
    x = a.x_train.double()
    assert abs(float(x.mean())) < 1e-6 and abs(float(x.std(unbiased=False)) - 1) < 1e-6
    # no image of the test split also sits in the training split
    train_rows = {tuple(r) for r in a.x_train.numpy().round(5).tolist()}
    assert not any(tuple(r) in train_rows for r in a.x_test.numpy().round(5).tolist())


# ---------------------------------------------------------------------------------------------
# Command line: refusals and clear errors


@pytest.mark.parametrize(("argv", "needle"), [
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--epochs", "two"], "--epochs must be an integer, got 'two'"),
    (["--logit-scale", "-1"], "--logit-scale must be finite and > 0, got '-1'"),
    (["--threads", "0"], "--threads must be at least 1, got 0"),
    (["--device", "tpu"], "invalid choice: 'tpu'"),
])
def test_bad_arguments_are_named(capsys, argv, needle):
    with pytest.raises(SystemExit) as info:
        te.main(argv)
    assert info.value.code == 2
    assert needle in capsys.readouterr().err


def test_missing_mnist_directory_is_named(capsys, tmp_path):
    with pytest.raises(SystemExit):
        te.main(["--mnist", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert "nowhere" in capsys.readouterr().err


def test_existing_results_are_not_overwritten(capsys, tmp_path):
    (tmp_path / "results.json").write_text("{}", encoding="utf-8")
    assert te.main(["--quick", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "results.json").read_text(encoding="utf-8") == "{}"
    assert not (tmp_path / "results.md").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present, so --device "
                    "cuda runs instead of refusing")
def test_cuda_without_a_device_exits_with_a_clear_message(capsys, tmp_path):
    assert te.main(["--device", "cuda", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "no CUDA device" in err
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# Progress bar, JSON safety, restored global state


def test_plain_progress_reports_every_tenth():
    stream = io.StringIO()
    bar = PlainProgress(total=50, desc="x", stream=stream)
    for _ in range(50):
        bar.update()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10 and lines[-1].startswith("x: 50/50 (100%)")


def test_progress_falls_back_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `import tqdm` raise ImportError
    assert type(progress_bar(10, "x")) is PlainProgress


def test_json_safe_replaces_non_finite_floats():
    assert json_safe({"a": [math.inf, -math.inf, math.nan, 1.5]}) == {
        "a": ["inf", "-inf", "nan", 1.5]}


def test_deterministic_block_restores_global_state():
    before = (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads())
    with te.deterministic_torch(torch.device("cpu"), threads=1):
        assert torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == 1
    assert (torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()) == before
