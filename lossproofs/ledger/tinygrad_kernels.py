"""tinygrad's departures that come from the kernels it generates rather than the formula its
loss functions write down, as ledger entries of the ``tinygrad`` family (part of
:data:`lossproofs.ledger.frameworks.ENTRIES`). Found on tinygrad 0.14.0 (CPU device, clang 14)
by reducing the accuracy report's failing problems and reading the kernels ``DEBUG=4`` prints:

- its row sum is one float32 accumulator, added to term by term (the softmax family's
  Σ exp(x − m) over a long row loses accuracy that pairwise summation keeps);
- in float16 and bfloat16 its cross_entropy forms the one-hot product that float32 rewrites
  into a gather (NaN from −inf·0 where a class is masked);
- its emulated bfloat16 row max over more than 32 elements does not compile;
- its exp is exp2(x·log₂e), whose relative error grows with |x|.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from lossproofs.cases import Case
from lossproofs.ledger.predicates import bce_logits_gradient_beyond_accuracy
from lossproofs.ledger.record import Divergence
from lossproofs.tolerances import eps

TINYGRAD = "tinygrad"  # the family of the built-in target (lossproofs.targets.framework)


def _tinygrad_half_one_hot_masked(case: Case, direction: str):
    """Rows of a float16 or bfloat16 cross_entropy with class indices (no label smoothing) that
    hold a −inf logit at a class other than the target: tinygrad forms −inf·0 there."""
    if (direction != "forward" or case.function != "cross_entropy"
            or case.dtype not in ("float16", "bfloat16") or case.params.get("label_smoothing")):
        return False
    (x, t), params = case.reference_args()
    if t.dtype.kind not in "iu":
        return False
    axis = 0 if x.ndim == 1 else 1
    classes = np.arange(x.shape[axis]).reshape((-1,) + (1,) * (x.ndim - axis - 1))
    hit = np.any(np.isneginf(x) & (classes != np.expand_dims(t, axis)), axis=axis)
    return hit if params.get("reduction", "mean") == "none" else bool(hit.any())



def _tinygrad_emulated_bf16_max(case: Case, direction: str):
    """A bfloat16 row max over more than 32 elements (softmax, log_softmax and logsumexp over
    ``dim``, cross_entropy over the class dim): tinygrad's emulated max raises."""
    if case.function not in _ROW_MAX_FUNCTIONS or case.dtype != "bfloat16":
        return False
    (x, *_), params = case.reference_args()
    if x.ndim == 0:
        return False
    if case.function == "cross_entropy":
        dims: tuple = (0 if x.ndim == 1 else 1,)
    else:
        dim = params.get("dim", -1)
        dims = dim if isinstance(dim, tuple) else (dim,)
    return int(np.prod([x.shape[d] for d in dims])) > 32


_ROW_MAX_FUNCTIONS = ("softmax", "log_softmax", "logsumexp", "cross_entropy")


def _tinygrad_exp_large_argument(case: Case, direction: str):
    """BCE-with-logits input-gradient elements whose smaller sigmoid term, an exponential of
    −|x|, carries tinygrad's exp error (relative up to ~0.75·|x|·ε, counted here as |x|·ε)
    beyond the accuracy bound."""
    return bce_logits_gradient_beyond_accuracy(
        case, direction,
        lambda x, small, terms: eps(case.dtype) * (np.abs(x) * small + terms / 2))


# One float32 row of C = 512 logits, 0 and 511 × −17.5: e^−17.5 = 2.5e-8 is below half an ulp
# of 1, so a running sum that starts at 1 drops every later term.
_LONG_ROW = Case("softmax", (np.array([[0.0] + [-17.5] * 511]),), {"dim": 1}, "float32",
                 sources={"input": "np.array([[0.0] + [-17.5] * 511])"})
_ONE_ACCUMULATOR = (
    "tinygrad 0.14's CPU kernel adds the row's S = Σ exp(x − m) term by term into one float32 "
    "accumulator: an error up to (C − 1)·u, not ~⌈log₂ C⌉·u, and terms small against the "
    "running sum lose their low bits all in one direction. Here S = 1 + 1.28e-5 comes back 1: "
    "softmax's largest element 1, not 0.9999872 (13.5 ulps above the fair floor, bound 4); "
    "log_softmax, logsumexp and its gradient 6.7 ulps (bound 2). On the accuracy report's "
    "float32 rows (C = 4437 to 8932) S is 34 to 48 ε low: softmax 4.47 ulps, log_softmax 3.32, "
    "the logsumexp gradient 3.09. torch, JAX and TensorFlow pass this row. Not the cause: exp "
    "as exp2(x·log₂e) (≤ 0.72·|x − m|·ε there, inside the floor) and softmax's e·(1/S)")


def _one_accumulator(function: str, direction: str) -> Divergence:
    grad = np.ones(1) if function == "logsumexp" else np.ones((1, 512))
    return Divergence(
        f"tinygrad sums a row's exponentials in one float32 accumulator ({function} {direction})",
        function, "accuracy", replace(_LONG_ROW, function=function, grad_output=grad),
        _ONE_ACCUMULATOR, families=frozenset({TINYGRAD}), direction=direction)


ENTRIES: tuple[Divergence, ...] = (
    Divergence(
        "tinygrad's exp loses relative accuracy for large |x| (BCE-with-logits gradient)",
        "binary_cross_entropy_with_logits", "accuracy",
        Case("binary_cross_entropy_with_logits", (np.array([-100.0]), np.array([0.0])),
             {"reduction": "sum"}, grad_output=np.array(1.0)),
        "tinygrad evaluates exp(x) as exp2(x·log₂e): the product x·log₂e is rounded at the "
        "spacing of |x|·1.44, an absolute error that exp2 turns into a relative one of up to "
        "~0.72·|x|·ε (measured on Tensor.exp in float64: 8 ulps at x = −30, 75 at −100, 49 at "
        "−707). BCE-with-logits' gradient for y = 0 is σ(x) ≈ e^x for x ≪ 0, so it carries that "
        "error: 75 ulps at x = −100 (bound 4), 49 at the accuracy property's x = −707; torch, "
        "JAX and TensorFlow are within a few ulps there (found by this suite's accuracy "
        "property, tinygrad 0.14.0 CPU; no upstream issue found)", families=frozenset({TINYGRAD}),
        direction="gradient", affected=_tinygrad_exp_large_argument,
        near_miss=Case("binary_cross_entropy_with_logits", (np.array([-1.0]), np.array([0.0])),
                       {"reduction": "sum"}, grad_output=np.array(1.0))),
    *(_one_accumulator(f, d) for f, d in (("softmax", "forward"), ("log_softmax", "forward"),
                                           ("logsumexp", "forward"), ("logsumexp", "gradient"))),
    Divergence(
        "tinygrad half-precision cross_entropy is NaN where a class is masked", "cross_entropy",
        "forward",
        Case("cross_entropy", (np.array([[0.0, -np.inf, 1.0], [2.0, 0.5, -1.0]]),
                               np.array([0, 2])), {"reduction": "none"}, "float16"),
        "Tensor.cross_entropy one-hot encodes class indices and sums −log_softmax(x)·onehot over "
        "the classes; in float32 and float64 a graph rewrite turns that into a gather of the "
        "target's log-probability, but in float16 and bfloat16 the kernel forms every product "
        "(to sum them in float32), and a class masked with a −inf logit gives −inf·0 = NaN: the "
        "loss log(1 + e) = 1.313 of logits [0, −inf, 1], target 0, comes back NaN (torch: "
        "1.313), as does any reduction over that row", families=frozenset({TINYGRAD}),
        affected=_tinygrad_half_one_hot_masked,
        near_miss=Case("cross_entropy", (np.array([[0.0, -np.inf, 1.0], [2.0, 0.5, -1.0]]),
                                         np.array([0, 2])), {"reduction": "none"}, "float32")),
    Divergence(
        "tinygrad's emulated bfloat16 max over more than 32 elements raises", "softmax",
        "forward", Case("softmax", (np.zeros((1, 33)),), {"dim": 1}, "bfloat16"),
        "where clang cannot compile __bf16 (clang 14 here) the adapter runs bfloat16 with "
        "tinygrad's EMULATED_DTYPES=bfloat16, and there the row max of softmax, log_softmax, "
        "logsumexp and cross_entropy over more than 32 elements fails to compile: "
        "`with Context(DEV='CPU', EMULATED_DTYPES='bfloat16'): Tensor(np.zeros(33, "
        "np.float32)).cast(dtypes.bfloat16).max().realize()` raises RuntimeError (UOp "
        "verification failed on Ops.AFTER, a CAST float → float); 32 elements, and a sum over "
        "256, work. With a clang that compiles __bf16 the example may pass: strict mode then "
        "reports XPASS, and the entry is to be narrowed or removed",
        families=frozenset({TINYGRAD}), raises=RuntimeError, affected=_tinygrad_emulated_bf16_max,
        near_miss=Case("softmax", (np.zeros((1, 32)),), {"dim": 1}, "bfloat16"),
        also_functions=_ROW_MAX_FUNCTIONS[1:]),
)
