"""Training-level equivalence: is ``CrossEntropyLoss`` the same as ``LogSoftmax + NLLLoss``
over a whole training run, not just per call?

The seed's network (fully connected 784-512-256-128-64-10, ReLU between layers, none after the
last) is trained in lockstep several times from one initial ``state_dict`` on one shuffled data
order, each run with a different criterion on the logits ``z`` (``(N, 10)``) and labels ``t``
(``(N,)``):

- ``cross_entropy``: ``nn.CrossEntropyLoss()(z, t)`` — the reference;
- ``log_softmax_nll``: ``nn.NLLLoss()(nn.LogSoftmax(dim=1)(z), t)``, mathematically
  ``mean_i −(z_{i,t_i} − log Σ_c exp z_{i,c})``, the same function;
- ``naive_log_softmax``: ``nn.NLLLoss()(log(softmax(z, 1)), t)``, equal in exact arithmetic
  but rounded differently, and ``−inf`` once ``softmax`` underflows to 0 (a logit gap above
  ≈ 103 in float32, since ``exp(−103.3)`` is below the smallest subnormal).

Each step records every run's loss, its distance to the reference's loss (absolute and in
float32 ULP), and whether the loss, the gradients and the updated parameters are bitwise equal
to the reference's; to tell a formula's own rounding from a drifting trajectory it also records
the ULP distance of each criterion evaluated on the *reference's* logits ("same input"). Each
epoch records the largest parameter difference and the test accuracy.

Run ``python -m benchmarks.training_equivalence [--quick] [--epochs N] [--device cpu|cuda]
[--out DIR] [--mnist DIR] [--overwrite]``; it writes ``results.json``, ``results.md`` and
``loss_curves.png``, each with the environment block, and never replaces an existing result
unless ``--overwrite`` is given.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks._bitwise import (
    _all_bitwise_equal,
    _bitwise_equal,
    first_false,
    float32_ulp_distance,
    parameter_difference,
)
from benchmarks._digit_data import DigitData, load_mnist_dir, load_sklearn_digits, sklearn_missing
from benchmarks._progress import progress_bar
from benchmarks._render import MATPLOTLIB_MISSING, announce, json_safe
from benchmarks._training_report import findings, plot_loss_curves, render_markdown
from lossproofs.environment import (
    claim_output,
    default_output_dir,
    environment,
    write_json,
    write_text,
)

KIND = "training_equivalence"
LAYER_SIZES = (784, 512, 256, 128, 64, 10)
"""The seed's fully connected network."""

QUICK_STEPS = 300
"""``--quick`` stops every run after this many optimizer steps (13 epochs of the digits data,
a third of an MNIST epoch): enough for the CI test, a few seconds on two CPU cores."""

DEFAULT_EPOCHS = 10
"""The seed's log reports 97% MNIST test accuracy after 10 epochs."""

REFERENCE_RUN = "cross_entropy"

BITWISE_RUNS = ("cross_entropy", "log_softmax_nll")
"""Runs the CI test requires to be bitwise equal at every step, on every device.

Justification (measured, see docs/training_equivalence.md): in torch the composite
``cross_entropy`` for class-index targets without smoothing *is* ``nll_loss(log_softmax(z, 1),
t)`` — the same two kernels, forward and backward — so no rounding differs between the runs and
no float32 tolerance is needed. A tolerance would only hide a change of that implementation."""

OUTPUT_FILES = ("results.json", "results.md", "loss_curves.png")


# ---------------------------------------------------------------------------------------------
# The runs


Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class RunSpec:
    """One training run: a ``name`` (JSON key), a ``formula`` for reports and its criterion.

    ``make_criterion()`` returns ``f(logits (N, C) float, target (N,) int64) -> 0-d loss``.
    """

    name: str
    formula: str
    make_criterion: Callable[[], Criterion]


def _cross_entropy() -> Criterion:
    return nn.CrossEntropyLoss()


def _log_softmax_nll() -> Criterion:
    log_softmax, nll = nn.LogSoftmax(dim=1), nn.NLLLoss()
    return lambda logits, target: nll(log_softmax(logits), target)


def _naive_log_softmax() -> Criterion:
    nll = nn.NLLLoss()
    # log(softmax(z)): rounds softmax to float32 first, then takes the log; −inf where the
    # probability underflows to 0 (log_softmax instead computes (z − max) − log Σ exp(z − max)).
    return lambda logits, target: nll(torch.log(torch.softmax(logits, dim=1)), target)


RUNS: dict[str, RunSpec] = {
    spec.name: spec for spec in (
        RunSpec("cross_entropy", "nn.CrossEntropyLoss()(z, t)", _cross_entropy),
        RunSpec("log_softmax_nll", "nn.NLLLoss()(nn.LogSoftmax(dim=1)(z), t)", _log_softmax_nll),
        RunSpec("naive_log_softmax", "nn.NLLLoss()(torch.log(torch.softmax(z, 1)), t)",
                _naive_log_softmax),
    )
}


def build_seed_network() -> nn.Sequential:
    """784-512-256-128-64-10, ReLU between the linear layers, raw logits out; default init."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(LAYER_SIZES)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(LAYER_SIZES) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class TrainingConfig:
    """The seed's optimisation settings, plus the experiment's controls.

    ``max_steps`` (None: no cap) stops every run after that many optimizer steps;
    ``logit_scale`` multiplies the logits before every criterion (1: the seed's setting).
    """

    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.5
    seed: int = 1
    max_steps: int | None = None
    logit_scale: float = 1.0


# ---------------------------------------------------------------------------------------------
# The experiment


@contextmanager
def deterministic_torch(device: torch.device, threads: int | None) -> Iterator[None]:
    """Deterministic algorithms (and a fixed thread count) for the block; restored afterwards.

    On CUDA, deterministic cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` set before cuBLAS starts;
    it is set to ``:4096:8`` unless the caller chose a value.
    """
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled())
    previous_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.set_num_threads(previous_threads)


def _evaluate(model: nn.Module, data: DigitData, logit_scale: float) -> tuple[float, float]:
    """Test accuracy and mean test cross-entropy (the common yardstick for every run)."""
    model.eval()
    with torch.no_grad():
        logits = model(data.x_test) * logit_scale
        accuracy = (logits.argmax(dim=1) == data.y_test).double().mean()
        loss = nn.functional.cross_entropy(logits, data.y_test)
        values = torch.stack([accuracy, loss.double()]).tolist()
    model.train()
    return values[0], values[1]


def train_lockstep(data: DigitData, config: TrainingConfig, run_names: Sequence[str],
                   device: str | torch.device = "cpu", progress=None) -> dict[str, Any]:
    """Train one copy of the seed network per run in ``run_names``, step for step together.

    Every copy starts from the same ``state_dict`` (drawn once after ``torch.manual_seed(seed)``)
    and sees the same batches: one permutation per epoch from a ``torch.Generator`` seeded with
    ``seed``, shared by all runs (the seed's ``DataLoader(shuffle=True)``, last batch kept).
    The first name is the reference the others are compared with. Returns the per-step and
    per-epoch measurements (plain Python values, ready for JSON).
    """
    device = torch.device(device)
    if not run_names or len(set(run_names)) != len(run_names):
        raise ValueError(f"run_names must be distinct and non-empty, got {list(run_names)}")
    unknown = [n for n in run_names if n not in RUNS]
    if unknown:
        raise ValueError(f"unknown run {unknown[0]!r}; choose from {sorted(RUNS)}")
    n_train = len(data.y_train)
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)

    torch.manual_seed(config.seed)
    initial_state = {k: v.clone() for k, v in build_seed_network().state_dict().items()}
    models, optimizers, criteria = {}, {}, {}
    for name in run_names:
        model = build_seed_network()
        model.load_state_dict(initial_state)
        models[name] = model.to(device)
        optimizers[name] = torch.optim.SGD(model.parameters(), lr=config.lr,
                                           momentum=config.momentum)
        criteria[name] = RUNS[name].make_criterion()
    data = data.to(device)
    reference, others = run_names[0], list(run_names[1:])
    initial_equal = all(parameter_difference(models[reference], models[o])["bitwise"]
                        for o in others)

    steps: dict[str, Any] = {"step": [], "epoch": [], "loss": {n: [] for n in run_names},
                             "comparisons": {o: {"loss_abs_diff": [], "loss_ulp": [],
                                                 "same_input_loss_ulp": [],
                                                 "loss_bitwise": [], "grads_bitwise": [],
                                                 "params_bitwise": []} for o in others}}
    epochs: list[dict[str, Any]] = []
    order_generator = torch.Generator().manual_seed(config.seed)
    progress = progress if progress is not None else progress_bar(total_steps, "", True)
    step = 0
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        if step >= total_steps:
            break
        permutation = torch.randperm(n_train, generator=order_generator).to(device)
        for start in range(0, n_train, config.batch_size):
            if step >= total_steps:
                break
            index = permutation[start:start + config.batch_size]
            x, y = data.x_train[index], data.y_train[index]
            losses, logits = {}, {}
            for name in run_names:
                optimizers[name].zero_grad(set_to_none=True)
                logits[name] = models[name](x)
                if config.logit_scale != 1.0:
                    logits[name] = logits[name] * config.logit_scale
                losses[name] = criteria[name](logits[name], y)
                losses[name].backward()
            with torch.no_grad():  # per-call agreement on the reference's own logits
                same_input = [criteria[o](logits[reference].detach(), y) for o in others]
            grads = {n: [p.grad for p in models[n].parameters()] for n in run_names}
            grads_equal = {o: _all_bitwise_equal(grads[reference], grads[o]) for o in others}
            losses_equal = {o: _bitwise_equal(losses[reference].detach(), losses[o].detach())
                            for o in others}
            for name in run_names:
                optimizers[name].step()
            params_equal = {o: _all_bitwise_equal(list(models[reference].parameters()),
                                                  list(models[o].parameters())) for o in others}
            loss_values = torch.stack([losses[n].detach() for n in run_names]).tolist()
            same_input_values = torch.stack(same_input).tolist() if others else []
            step += 1
            steps["step"].append(step)
            steps["epoch"].append(epoch)
            for name, value in zip(run_names, loss_values):
                steps["loss"][name].append(value)
            ref_value = loss_values[0]
            for o, value, same in zip(others, loss_values[1:], same_input_values):
                record = steps["comparisons"][o]
                record["same_input_loss_ulp"].append(float32_ulp_distance(same, ref_value))
                record["loss_abs_diff"].append(abs(value - ref_value))
                record["loss_ulp"].append(float32_ulp_distance(value, ref_value))
                record["loss_bitwise"].append(losses_equal[o])
                record["grads_bitwise"].append(grads_equal[o])
                record["params_bitwise"].append(params_equal[o])
            progress.update(1)
        evaluation = {n: _evaluate(models[n], data, config.logit_scale) for n in run_names}
        epochs.append({
            "epoch": epoch, "steps_done": step,
            "partial": step % steps_per_epoch != 0,  # stopped by max_steps mid-epoch
            "test_accuracy": {n: evaluation[n][0] for n in run_names},
            "test_loss": {n: evaluation[n][1] for n in run_names},
            "param_diff": {o: parameter_difference(models[reference], models[o]) for o in others},
        })
        progress.set_postfix_str(" ".join(f"{n}={evaluation[n][0]:.3f}" for n in run_names))
    wall_s = time.perf_counter() - started
    progress.close()
    return {
        "steps_per_epoch": steps_per_epoch, "total_steps": step, "wall_s": wall_s,
        "reference": reference, "initial_parameters_bitwise_equal": initial_equal,
        "steps": steps, "epochs": epochs,
        "summary": _summarise(steps, epochs, run_names, reference),
    }


def _summarise(steps: dict[str, Any], epochs: list[dict[str, Any]],
               run_names: Sequence[str], reference: str) -> dict[str, Any]:
    step_numbers = steps["step"]
    summary: dict[str, Any] = {}
    for name in run_names:
        nonfinite = [s for s, v in zip(step_numbers, steps["loss"][name]) if not math.isfinite(v)]
        summary[name] = {
            "first_nonfinite_loss_step": nonfinite[0] if nonfinite else None,
            "final_test_accuracy": epochs[-1]["test_accuracy"][name] if epochs else None,
        }
    for other, record in steps["comparisons"].items():
        ulps = [u for u in record["loss_ulp"] if u is not None]
        same_input_ulps = [u for u in record["same_input_loss_ulp"] if u is not None]
        summary[other].update({
            "steps": len(step_numbers),
            "steps_loss_bitwise": sum(record["loss_bitwise"]),
            "all_bitwise": all(record["loss_bitwise"]) and all(record["grads_bitwise"])
            and all(record["params_bitwise"]),
            "first_loss_divergence_step": first_false(record["loss_bitwise"], step_numbers),
            "first_grad_divergence_step": first_false(record["grads_bitwise"], step_numbers),
            "first_param_divergence_step": first_false(record["params_bitwise"], step_numbers),
            "max_loss_ulp": max(ulps) if ulps else None,
            "median_loss_ulp": float(np.median(ulps)) if ulps else None,
            "max_same_input_loss_ulp": max(same_input_ulps) if same_input_ulps else None,
            "median_same_input_loss_ulp": (float(np.median(same_input_ulps))
                                           if same_input_ulps else None),
            "max_loss_abs_diff": max(record["loss_abs_diff"], default=0.0),
            "final_max_param_abs_diff": epochs[-1]["param_diff"][other]["max_abs"],
            "max_test_accuracy_diff": max(
                abs(e["test_accuracy"][other] - e["test_accuracy"][reference])
                for e in epochs),
        })
    return summary


# ---------------------------------------------------------------------------------------------
# Command line


def _positive(name: str, kind: type = int) -> Callable[[str], Any]:
    """argparse type: an ``int`` ≥ 1 or a finite ``float`` > 0, or a usage error naming the
    option and the value."""
    noun, bound = ("an integer", "at least 1") if kind is int else ("a number", "finite and > 0")

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {noun}, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            shown = value if kind is int else repr(text)
            raise argparse.ArgumentTypeError(f"{name} must be {bound}, got {shown}")
        return value
    return parse


def build_parser(prog: str = "python -m benchmarks.training_equivalence"
                 ) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train the seed's MNIST MLP in lockstep with CrossEntropyLoss, "
                    "LogSoftmax+NLLLoss and naive log(softmax); compare them step by step.")
    parser.add_argument("--quick", action="store_true",
                        help=f"stop after {QUICK_STEPS} optimizer steps (the CI run)")
    parser.add_argument("--epochs", type=_positive("--epochs"), default=None,
                        help=f"epochs to train (default {DEFAULT_EPOCHS}; with --quick, as many "
                             f"as {QUICK_STEPS} steps need)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default results/training_equivalence/<time>-<dev>)")
    parser.add_argument("--overwrite", action="store_true",
                        help="allow replacing results already in --out")
    parser.add_argument("--mnist", type=Path, default=None,
                        help="directory with the MNIST IDX files (default: scikit-learn digits)")
    parser.add_argument("--seed", type=int, default=TrainingConfig.seed,
                        help="seed of the initial weights and the shuffle order")
    parser.add_argument("--threads", type=_positive("--threads"), default=None,
                        help="torch CPU threads (default: 1 with --quick, where a second "
                             "thread can only be oversubscribed on a busy CI machine and "
                             "bitwise equality does not depend on the count; otherwise "
                             "torch's choice; recorded either way)")
    parser.add_argument("--logit-scale", type=_positive("--logit-scale", float), default=1.0,
                        help="multiply the logits by this before every criterion (shows where "
                             "naive log(softmax) breaks)")
    parser.add_argument("--no-naive", action="store_true",
                        help="skip the third, naive log(softmax) run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def run_experiment(args: argparse.Namespace) -> dict[str, Any]:
    """Load data, train in lockstep, return the results with their environment block."""
    device = torch.device(args.device)
    data = load_mnist_dir(args.mnist) if args.mnist is not None else load_sklearn_digits()
    steps_per_epoch = math.ceil(len(data.y_train) / TrainingConfig.batch_size)
    epochs = args.epochs
    if epochs is None:
        epochs = math.ceil(QUICK_STEPS / steps_per_epoch) if args.quick else DEFAULT_EPOCHS
    config = TrainingConfig(epochs=epochs, seed=args.seed, logit_scale=args.logit_scale,
                            max_steps=QUICK_STEPS if args.quick else None)
    run_names = [n for n in RUNS if not (args.no_naive and n == "naive_log_softmax")]
    total = min(epochs * steps_per_epoch, config.max_steps or epochs * steps_per_epoch)
    threads = args.threads if args.threads is not None or not args.quick else 1
    with deterministic_torch(device, threads):
        progress = progress_bar(total, f"training {len(run_names)} runs on {device.type}",
                                disable=args.no_progress, unit="step")
        measured = train_lockstep(data, config, run_names, device, progress)
        env = environment(str(device))  # inside the block: records the thread count used
    return {
        "experiment": KIND,
        "environment": env,
        "config": {**asdict(config), "quick": args.quick, "deterministic_algorithms": True,
                   "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
                   "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                   "float32_matmul_precision": torch.get_float32_matmul_precision()},
        "data": {"name": data.name, **data.source},
        "network": {"layers": list(LAYER_SIZES), "activation": "ReLU between layers, none "
                    "after the last", "parameters": sum(p.numel() for p in
                                                        build_seed_network().parameters())},
        "runs": {n: RUNS[n].formula for n in run_names},
        **measured,
    }


def main(argv: list[str] | None = None,
         prog: str = "python -m benchmarks.training_equivalence") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"error: --device cuda requested but no CUDA device is available "
              f"(torch {torch.__version__}, built with CUDA {torch.version.cuda}); "
              "run with --device cpu", file=sys.stderr)
        return 2
    if args.mnist is not None and not args.mnist.is_dir():
        parser.error(f"--mnist {str(args.mnist)!r} is not a directory")
    if args.mnist is None and (why := sklearn_missing()) is not None:
        print(f"error: {why}", file=sys.stderr)  # before any output directory is made
        return 2
    out_dir = args.out if args.out is not None else default_output_dir(KIND, args.device)
    try:
        for name in OUTPUT_FILES:  # refuse before training, not after minutes of it
            claim_output(out_dir / name, overwrite=args.overwrite)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = run_experiment(args)
    png = out_dir / "loss_curves.png"
    claim_output(png, overwrite=args.overwrite)
    results["loss_curves_png"] = png.name if plot_loss_curves(results, png) else None
    if results["loss_curves_png"] is None:
        results["notes"] = [MATPLOTLIB_MISSING]
        announce(MATPLOTLIB_MISSING)
    write_json(out_dir / "results.json", json_safe(results), overwrite=args.overwrite)
    write_text(out_dir / "results.md", render_markdown(results), overwrite=args.overwrite)
    for line in findings(results):
        print(line)
    print(f"wrote {out_dir / 'results.json'}, {out_dir / 'results.md'}"
          + (f", {png}" if results["loss_curves_png"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
