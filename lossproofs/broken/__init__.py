"""Deliberately broken implementations: the evidence that the suite has teeth.

Each module here is a user module (``--target module:lossproofs.broken.<name>``) that takes
torch's functions and redefines ONE of them with a realistic bug a kernel author could make:
an unstable formulation, a wrong reduction denominator, a wrong gradient behind a correct
forward, a smoothing term applied to the wrong elements, a missing bounds check. The module's
docstring says what the bug is, which real bug report it is modelled on, and which tests
should catch it.

Every module is also its own bug-free twin: with ``LOSSPROOFS_BROKEN_CONTROL=1`` in the
environment, the module's ``control()`` branches (:func:`lossproofs.broken._common.control`,
or ``buggy()`` for the switch-based kernels) turn its bug, marked ``# BUG``, off and the
function is computed correctly, every other line (argument checks, dtype handling,
reductions, the hand-written backward) unchanged. A test that fails on the broken module and
passes on its twin caught the bug; one that fails on both caught an artifact of the module's
harness, not the bug.

:data:`CATALOGUE` is the same information as data. ``lossproofs/suite/test_teeth.py`` runs the
relevant part of the suite against every entry (through :mod:`lossproofs.broken.teeth`) and
asserts that the suite fails, in the tests listed in ``catchers``, with the suite's own
assertion rather than an import error or a crash, and that the twin passes those tests;
``python -m lossproofs report --teeth --out docs/conformance --overwrite`` writes the same run
as a table (docs/conformance/teeth.md, with the example at which each test first failed).

The ``linear_*`` modules (a hand-written chunked ``linear_cross_entropy``,
:mod:`lossproofs.broken._linear_chunked`) are run on ``test_linear_cross_entropy.py``
(:data:`LINEAR_FILES`), the file that proves that function.
"""

from __future__ import annotations

from dataclasses import dataclass

from lossproofs.registry import LOSSES

# Test files a teeth run draws from; the ``keyword`` of each entry's function narrows them.
FAST_FILES = ("test_forward.py", "test_gradients.py",
              "test_special_values.py", "test_errors.py",
              "test_identities.py")
ACCURACY_FILES = ("test_accuracy.py",)
# linear_cross_entropy's properties (values and three gradients, the identity with
# cross_entropy(linear(x)), the autograd contract) live in one file of their own.
LINEAR_FILES = ("test_linear_cross_entropy.py",)

# pytest -k expressions selecting the tests of one function: each function's declared keyword.
FUNCTION_KEYWORDS = {name: loss.keyword for name, loss in LOSSES.items()}

# Not run against broken modules, because they do not use the target at all: the
# test_reference_* tests, and test_linear_cross_entropy.py's own checks that import the broken
# linear modules and their correct chunked kernel directly, whatever --target is. (The ledger's
# tests, test_divergences.py, pin torch's own departures and are not among the files a teeth
# run draws from.)
EXCLUDED_KEYWORDS = ("test_reference", "test_broken_chunked_implementation_is_caught",
                     "test_retain_graph_bug_escapes_a_single_backward",
                     "test_a_correct_chunked_implementation_passes")


@dataclass(frozen=True)
class BrokenImplementation:
    """One broken module: ``function`` is the one it breaks; ``catchers`` are fnmatch patterns
    of test ids (``file::test[params]``), each of which must match at least one failing test."""

    module: str
    function: str
    bug: str
    modelled_on: tuple[str, ...]
    catchers: tuple[str, ...]
    accuracy: bool = False  # also run the (slower, mpmath) accuracy properties
    test_files: tuple[str, ...] = FAST_FILES  # the suite files the run draws from

    @property
    def target(self) -> str:
        return f"module:lossproofs.broken.{self.module}"

    @property
    def files(self) -> tuple[str, ...]:
        return self.test_files + (ACCURACY_FILES if self.accuracy else ())

    @property
    def keyword(self) -> str:
        excluded = " and ".join(f"not {k}" for k in EXCLUDED_KEYWORDS)
        return f"{FUNCTION_KEYWORDS[self.function]} and {excluded}"


_GH = "https://github.com/"
_FWD = "test_forward.py::test_forward_matches_reference[{}-*]"
_GRAD = "test_gradients.py::test_input_gradient_matches_closed_form[{}-*]"
_TGRAD = "test_gradients.py::test_target_gradient_matches_closed_form[{}-*]"
_SPECIAL = "test_special_values.py::test_implementation_special_value[{}-{}]"
_ERROR = "test_errors.py::test_implementation_rejects[{}-{}]"
_LINEAR = "test_linear_cross_entropy.py::"
# The forward and the three gradients with a random grad_output, every dtype (4 × 30 draws).
# The identity with cross_entropy(linear(x)) usually fails too, but it is not listed: its 25
# derandomized draws cluster, and with some pools of the package's literal constants they held
# no case of the bug (seen for the dropped tail and grad_output[0]).
_LINEAR_VALUES = (_LINEAR + "test_values_and_gradients_match_reference[*]",)

CATALOGUE: tuple[BrokenImplementation, ...] = (
    BrokenImplementation(
        "unshifted_softmax", "softmax", "exp(x)/Σexp(x) without subtracting the row max",
        (_GH + "uTensor/uTensor/issues/175", _GH + "dotnet/machinelearning/issues/3648"),
        ("test_accuracy.py::test_softmax_is_within_its_ulp_bound_on_extreme_inputs",
         _SPECIAL.format("softmax", "+inf logit")), accuracy=True),
    BrokenImplementation(
        "log_of_softmax", "log_softmax", "log(softmax(x)): the log of an underflowed probability",
        (_GH + "deeplearning4j/nd4j/issues/2822", _GH + "tracel-ai/burn/issues/315"),
        ("test_accuracy.py::test_log_softmax_is_within_its_ulp_bound_on_extreme_inputs",),
        accuracy=True),
    BrokenImplementation(
        "ce_mean_over_count", "cross_entropy",
        "mean divides by the number of targets, not Σ w[t] over the kept targets",
        (_GH + "eladhoffer/utils.pytorch/issues/4", _GH + "EleutherAI/bergson/pull/344"),
        (_FWD.format("cross_entropy"),)),
    BrokenImplementation(
        "ce_smoothing_counts_ignored", "cross_entropy",
        "label-smoothing term not masked at ignore_index",
        (_GH + "pytorch/pytorch/issues/73205", _GH + "linkedin/Liger-Kernel/pull/198"),
        (_FWD.format("cross_entropy"),
         _SPECIAL.format("cross_entropy", "all targets ignored, none"))),
    BrokenImplementation(
        "ce_smoothing_unweighted", "cross_entropy",
        "label-smoothing term not weighted by the class weights w_c",
        (_GH + "linkedin/Liger-Kernel/pull/420", _GH + "pytorch/pytorch/issues/69339"),
        (_FWD.format("cross_entropy"),)),
    BrokenImplementation(
        "ce_smoothing_other_classes", "cross_entropy",
        "smoothing mass ε/(C−1) on the other classes instead of ε/C on all",
        (_GH + "k2-fsa/icefall/issues/107", _GH + "pytorch/pytorch/issues/7455"),
        (_FWD.format("cross_entropy"),
         "test_identities.py::test_label_smoothing_is_cross_entropy_on_smoothed_targets*")),
    BrokenImplementation(
        "ce_backward_unscaled", "cross_entropy",
        "correct forward; backward misses the 1/Σw[t] of reduction='mean'",
        (_GH + "linkedin/Liger-Kernel/pull/140", _GH + "linkedin/Liger-Kernel/pull/230"),
        (_GRAD.format("cross_entropy"),
         "test_identities.py::test_cross_entropy_gradient_is_softmax_minus_one_hot*")),
    BrokenImplementation(
        "ce_backward_ignores_grad_output", "cross_entropy",
        "correct forward; backward uses grad_output[0] for every element",
        (_GH + "linkedin/Liger-Kernel/issues/968", _GH + "linkedin/Liger-Kernel/pull/1298"),
        (_GRAD.format("cross_entropy"),)),
    BrokenImplementation(
        "bce_unclamped", "binary_cross_entropy",
        "log p and log(1−p) not clamped at −100: inf/NaN at p = 0 or 1",
        (_GH + "kuangliu/pytorch-retinanet/issues/17", _GH + "pytorch/pytorch/issues/751"),
        (_FWD.format("binary_cross_entropy"),
         _SPECIAL.format("binary_cross_entropy", "p at 0 and 1, log clamped at -100"))),
    BrokenImplementation(
        "bce_with_logits_of_sigmoid", "binary_cross_entropy_with_logits",
        "BCE of sigmoid(x): log(1 − σ(x)) cancels, then is log 0",
        (_GH + "pytorch/pytorch/issues/751", _GH + "pytorch/pytorch/pull/2221"),
        (_FWD.format("binary_cross_entropy_with_logits"),
         _SPECIAL.format("binary_cross_entropy_with_logits", "saturated logits, finite"))),
    BrokenImplementation(
        "bce_with_logits_thresholded_pos_weight", "binary_cross_entropy_with_logits",
        "pos_weight multiplies the whole loss where target > 0.5 (wrong for soft targets)",
        (_GH + "pytorch/pytorch/issues/82496", _GH + "pytorch/pytorch/issues/65702"),
        (_FWD.format("binary_cross_entropy_with_logits"),
         _TGRAD.format("binary_cross_entropy_with_logits"))),
    BrokenImplementation(
        "nll_clamps_targets", "nll_loss",
        "out-of-range class indices clamped into [0, C) instead of raising",
        (_GH + "pytorch/pytorch/issues/5296", _GH + "tensorflow/tensorflow/issues/3739"),
        (_ERROR.format("nll_loss", "target out of bounds"),
         _ERROR.format("nll_loss", "negative target that is not ignore_index"))),
    BrokenImplementation(
        "linear_chunk_tail_dropped", "linear_cross_entropy",
        "chunk loop over N // chunk full chunks: the remainder rows are dropped",
        (_GH + "NX-AI/mlstm_kernels/pull/3", _GH + "eth-easl/mixtera/pull/55"),
        _LINEAR_VALUES, test_files=LINEAR_FILES),
    BrokenImplementation(
        "linear_sum_of_chunk_means", "linear_cross_entropy",
        "mean is the sum of each chunk's own mean (about num_chunks times too large)",
        (_GH + "NVIDIA-NeMo/Automodel/issues/3803", _GH + "NVIDIA-NeMo/Automodel/pull/3804"),
        _LINEAR_VALUES, test_files=LINEAR_FILES),
    BrokenImplementation(
        "linear_grad_output_first_element", "linear_cross_entropy",
        "reduction='none' backward scales every row by grad_output[0]",
        (_GH + "linkedin/Liger-Kernel/pull/1298", _GH + "linkedin/Liger-Kernel/issues/968"),
        _LINEAR_VALUES, test_files=LINEAR_FILES),
    BrokenImplementation(
        "linear_grad_output_twice", "linear_cross_entropy",
        "sum/mean backward multiplies the precomputed gradients by grad_output twice",
        (_GH + "linkedin/Liger-Kernel/pull/1298", _GH + "linkedin/Liger-Kernel/pull/1222"),
        _LINEAR_VALUES, test_files=LINEAR_FILES),
    BrokenImplementation(
        "linear_retain_mutates_saved", "linear_cross_entropy",
        "backward scales its saved gradients in place: a second backward is wrong and "
        "changes the first one's results",
        (_GH + "pytorch/pytorch/pull/181574", _GH + "Dao-AILab/quack/pull/209"),
        (_LINEAR + "test_repeated_backward_leaves_earlier_gradients_right",),
        test_files=LINEAR_FILES),
)

BY_MODULE = {b.module: b for b in CATALOGUE}
