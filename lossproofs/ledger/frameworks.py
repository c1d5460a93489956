"""The other frameworks' departures from the mathematics that the suite's checks expose, as
ledger entries of their families (``jax``, ``tensorflow``, ``tinygrad``: the built-in targets of
:mod:`lossproofs.frameworks`), so that the suite xfails them by name and the reports list them as
known failures. Found by the conformance reports (``lossproofs report --target <framework>``)
on jax 0.10.2 / optax 0.2.8, tensorflow-cpu 2.21.0 / keras 3.15.1 and tinygrad 0.14.0 (x86-64
CPU); the probes with each framework's exact results are
:mod:`lossproofs.frameworks.findings`.

- :data:`SHARED`: torch entries whose example the framework gets wrong too, each with the
  framework's own mechanism; :func:`lossproofs.ledger._entries` adds the framework's family to
  them (torch must still fail them, and the framework now may).
- :data:`ENTRIES`: the framework's own. An ``"error type"`` entry is bad input the framework
  accepts without an error; its ``covers`` names every error case of the same mechanism.
  tinygrad's entries that come from its generated kernels are in
  :mod:`lossproofs.ledger.tinygrad_kernels`.
- Two entries are the adapters' declared ``clamp`` conventions (``CONVENTIONS``) made visible
  element by element, where a probability is not exactly 0 or 1 (so the case carries no
  ``clamp`` tag) but the convention still decides the value; they say so in their names.
"""

from __future__ import annotations

import numpy as np

from lossproofs import reference
from lossproofs.cases import Case
from lossproofs.dtypes import smallest_subnormal, tiny
from lossproofs.error_cases import ERROR_CASES
from lossproofs.ledger.predicates import BCEWL, bce_logits_gradient_beyond_accuracy, spacing
from lossproofs.ledger.record import Divergence
from lossproofs.ledger.tinygrad_kernels import ENTRIES as TINYGRAD_KERNEL_ENTRIES
from lossproofs.tolerances import eps, tolerance, ulp_bound

JAX, TENSORFLOW, TINYGRAD = "jax", "tensorflow", "tinygrad"
OPTAX_896 = "https://github.com/google-deepmind/optax/issues/896"
OPTAX_1020 = "https://github.com/google-deepmind/optax/issues/1020"
OPTAX_1185 = "https://github.com/google-deepmind/optax/issues/1185"
JAX_40386 = "https://github.com/jax-ml/jax/issues/40386"
TINYGRAD_17822 = "https://github.com/tinygrad/tinygrad/pull/17822"

# torch entry name → {framework: how the framework gets the same example wrong}
SHARED: dict[str, dict[str, str]] = {
    "BCE-with-logits at +inf logit with target 1": {
        JAX: "optax: −y·log σ(x) − (1 − y)·log σ(−x) with (1 − y)·log σ(−inf) = 0·(−inf)",
        TENSORFLOW: "tf.nn: max(x, 0) − x·y = inf − inf",
        TINYGRAD: "both log-sigmoid terms are formed: 0·(−inf)",
    },
    "BCE-with-logits at -inf logit with target 0": {
        JAX: "optax: y·log σ(−inf) = 0·(−inf)",
        TENSORFLOW: "tf.nn: −x·y = −(−inf)·0",
        TINYGRAD: "both log-sigmoid terms are formed: 0·(−inf)",
    },
    "BCE-with-logits at -inf logit with target 1": {
        TINYGRAD: "its log-sigmoid of −inf is itself NaN",
    },
    "cross_entropy with zero probability on a masked class": {
        JAX: f"optax: −Σ t·log_softmax(x) with 0·(−inf) ({OPTAX_896}, closed)",
        TENSORFLOW: "the fused kernel multiplies the zero label by −inf",
        TINYGRAD: "−Σ t·log_softmax(x) with 0·(−inf)",
    },
    "logsumexp in float16 sums exp(x − max) in float16": {
        JAX: "jax.nn.logsumexp sums exp(x − max) in float16 too",
        TENSORFLOW: "tf.reduce_logsumexp sums in float16 too",
        TINYGRAD: "Tensor.logsumexp sums in float16 too",
    },
    "log_softmax loses relative accuracy for a dominant class": {
        JAX: "jax.nn.log_softmax also takes log, not log1p, of Σ exp(x − m)",
        TENSORFLOW: "tf.nn.log_softmax also takes log, not log1p, of Σ exp(x − m)",
        TINYGRAD: "Tensor.log_softmax also takes log, not log1p, of Σ exp(x − m)",
    },
    "cross_entropy of a confident correct prediction is 0": {
        JAX: "optax forms logsumexp(x) − x[t]: 1 + e^−40 rounds to 1",
        TENSORFLOW: "the sparse kernel's log Σ exp(x − m) rounds to 0",
        TINYGRAD: "−log_softmax at the target rounds to 0",
    },
    "sigmoid gradient flushes subnormal results to 0": {
        JAX: "jax.nn.sigmoid's gradient, and XLA's CPU mode flushes subnormal results to 0",
        TENSORFLOW: "the gradient σ(x) − y is flushed to 0 likewise",
    },
    "binary_cross_entropy_with_logits of a confidently right logit is 0": {
        TINYGRAD: "log(1 + e^−|x|) with log, not log1p: 1 + 4.2e-18 rounds to 1",
    },
    "nll_loss mean rounds the sum of losses to the dtype before dividing": {
        TENSORFLOW: "tf.reduce_mean sums the float16 losses in float16 before dividing",
    },
    "binary_cross_entropy float16 gradient at p = 0 or 1": {
        TENSORFLOW: "Keras' clip to [1e-7, 1 − 1e-7] rounds to [0, 1] in float16, so the "
                    "gradient at p = 0 or 1 is 0·inf",
        TINYGRAD: "no clamp: the gradient at p = 0 or 1 divides by 0",
    },
    "binary_cross_entropy float16 gradient rounds grad·(p − y) to float16 first": {
        TENSORFLOW: "Keras' autodiff forms y·(1/p) in float16: 1/p overflows at p = 2⁻²³",
    },
    "nll_loss mean divides by a total weight that overflows the dtype": {
        TINYGRAD: "Tensor.nll_loss sums the weights in float16 too",
    },
    "float16 nll_loss mean overflows an intermediate sum": {
        TINYGRAD: "Tensor.nll_loss sums w[t]·ℓ in float16 too",
    },
}


def shared_families(name: str) -> frozenset[str]:
    """The frameworks that share torch's entry ``name`` (empty for any other entry)."""
    return frozenset(SHARED.get(name, {}))


def _error(function: str, case_name: str):
    return next(e for e in ERROR_CASES if e.function == function and e.name == case_name)


def _silently_accepts(name: str, family: str, reason: str, cases: tuple[tuple[str, str], ...],
                      upstream: str = "", also: tuple[str, ...] = ()) -> Divergence:
    """Bad input ``family`` (and the families ``also``) accept without an error: the first of
    ``cases`` ((function, error case name) pairs) is the example, all are covered."""
    bad = _error(*cases[0])
    example = Case(bad.function, tuple(np.asarray(a) for a in bad.args), dict(bad.kwargs))
    return Divergence(name, bad.function, "error type", example, reason, upstream,
                      frozenset({family, *also}), AssertionError, expected=bad,
                      covers=tuple(f"error:{f}:{n}" for f, n in cases))


def _index_cases(*functions: str) -> tuple[tuple[str, str], ...]:
    return tuple((f, n) for f in functions
                 for n in ("target out of bounds", "negative target that is not ignore_index"))


# -- predicates ---------------------------------------------------------------------------------
def _small_logit_label_gradient(case: Case, direction: str):
    """The BCE-with-logits label gradient −x·g where |x| < 1/4: optax's and tinygrad's
    log σ(−x) − log σ(x) has an absolute error of ~ε·log 2, beyond the bound (16 ε to 4 ε of
    |x|) there; TensorFlow's subnormal logits (denormals are zero) lie inside."""
    if direction != "gradient" or case.function != BCEWL:
        return False
    (x, _), _ = case.reference_args()
    return np.abs(x) < 0.25


def _optax_label_logit_after_logsumexp(case: Case, direction: str):
    """The rows (or, reduced, the scalar) of an index-target cross-entropy where rounding
    logsumexp(x) and x[t] at their own size, half an ulp of each, can exceed the accuracy
    bound in ulps of the loss."""
    if direction != "forward" or case.function != "cross_entropy" or len(case.arrays) < 2 or (
            case.arrays[1].shape == case.arrays[0].shape):
        return False
    (x, t), params = case.reference_args()
    cd = 0 if x.ndim == 1 else 1
    lse = reference.logsumexp(x, cd)
    picked = np.take_along_axis(x, np.expand_dims(np.clip(t, 0, x.shape[cd] - 1), cd), cd)
    picked = np.squeeze(picked, cd)
    half_ulps = (spacing(lse, case.dtype) + spacing(picked, case.dtype)) / 2
    loss = np.abs(lse - picked)
    bound = ulp_bound("cross_entropy", case.dtype, "forward")

    def ulp(v):
        return np.maximum(eps(case.dtype) * v / 2, smallest_subnormal(case.dtype))

    if params.get("reduction", "mean") in ("sum", "mean"):
        return bool(np.sum(half_ulps) > bound * ulp(np.sum(loss)))
    return half_ulps > bound * ulp(loss)


def _tf_half_logsumexp_non_last_axis(case: Case, direction: str):
    """A float16 logsumexp over axes that exclude the last one: TensorFlow adds Σ exp(x − m)
    term by term in float16, a relative error in Σ (so an absolute one in the result) of up to
    (n − 1)·2⁻¹¹ for n terms; the output elements where that exceeds the bound."""
    if direction != "forward" or case.function != "logsumexp" or case.dtype != "float16":
        return False
    (x,), params = case.reference_args()
    dim = params["dim"]
    dims = tuple(d % x.ndim for d in (dim if isinstance(dim, tuple) else (dim,))) if x.ndim else ()
    if not dims or x.ndim - 1 in dims:
        return False
    n = int(np.prod([x.shape[d] for d in dims]))
    lse = np.abs(reference.logsumexp(x, dim, keepdim=params.get("keepdim", False)))
    tol = tolerance("float16", "forward")
    return (n - 1) * 2.0**-11 > tol.atol * np.maximum(1.0, lse) + tol.rtol * lse


def _jax_logaddexp_jvp(case: Case, direction: str):
    """optax's gradient: up to ulp(|x|) + ε/2 relative to each of its two terms (the
    exponent's rounding, measured: 32 ulps of σ(30) in float64, and half an ulp for exp and
    the sum)."""
    return bce_logits_gradient_beyond_accuracy(
        case, direction,
        lambda x, small, terms: (spacing(x, case.dtype) + eps(case.dtype) / 2) * terms)


def _xla_subnormal_probability(case: Case, direction: str):
    """softmax gradient elements whose probability is subnormal in the dtype (XLA, and
    TensorFlow, on the CPU flush it to 0, and with it p·(g − Σ p·g))."""
    if direction != "gradient" or case.function != "softmax":
        return False
    (x,), params = case.reference_args()
    with np.errstate(all="ignore"):
        p = reference.softmax(x, params["dim"])
    return (p > 0) & (p < tiny(case.dtype))


def _tf_weighted_gradient_at_zero(case: Case, direction: str):
    """tf.nn.weighted_cross_entropy_with_logits (the adapter's call when pos_weight is given)
    loses the log-sigmoid term's derivative at a logit of exactly 0."""
    if direction != "gradient" or case.function != BCEWL or "pos_weight" not in case.params:
        return False
    (x, _), _ = case.reference_args()
    return x == 0.0


def _keras_clip(case: Case, direction: str):
    """Elements outside Keras' clip [1e-7, 1 − 1e-7] (in the dtype), where the adapters'
    declared clamp conventions (Keras' clip, tinygrad's none) decide the value instead of
    torch's clamp of the log at −100 (a superset of where tinygrad's unclamped log differs)."""
    if case.function != "binary_cross_entropy":
        return False
    (p, _), _ = case.reference_args()
    eps = case.rounded(np.array([1e-7]))[0]
    # in float16 and bfloat16 1 − 1e-7 rounds to 1, so p = 1 is not clipped at all
    return (p < eps) | (p > case.rounded(np.array([1.0 - eps]))[0]) | (p >= 1.0)


def _tinygrad_log_not_log1p(case: Case, direction: str):
    """tinygrad's log(1 + e^−|x|) has an absolute error of about half an ulp of 1, beyond the
    bound (16 ε to 4 ε relative) on a loss below about 1/4 (the logit agrees with the
    target): the elements whose exact loss is that small."""
    if direction != "forward" or case.function != BCEWL:
        return False
    (x, y), params = case.reference_args()
    pw = params.get("pos_weight")
    lw = 1.0 + (0.0 if pw is None else np.broadcast_to(pw, y.shape) - 1.0) * y
    with np.errstate(over="ignore"):
        loss = (1 - y) * x + lw * (np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0))
    return np.abs(loss) < 0.25


def _tinygrad_single_row_zero_weight_mean(case: Case, direction: str):
    """nll_loss mean over one row whose target is ignored or weighs 0: tinygrad's rewrite
    (a·b)/b → a returns the unweighted loss (or −0.0) instead of 0/0."""
    if case.function != "nll_loss" or case.params.get("reduction", "mean") != "mean":
        return False
    (x, t), params = case.reference_args()
    if x.ndim < 2 or x.shape[0] != 1 or np.prod(t.shape) != 1:
        return False
    cls = int(np.ravel(t)[0])
    kept = cls != params.get("ignore_index", -100)
    w = params.get("weight")
    weight = (1.0 if w is None else float(w[cls])) if kept and 0 <= cls < x.shape[1] else 0.0
    return weight == 0.0


def _bce_log_one_minus_p(case: Case, direction: str):
    """log(1 − p) with 1 − p rounded first: an absolute error of up to (1 − y)·ε/2 in the loss,
    beyond the bound k·ε·|ℓ| where (1 − y) > k·|ℓ| (with a factor 2 to spare); k is the
    smaller of the tolerance table's (16 for float64 and float32, 4 for the half types) and the
    accuracy bound in ulps; for a reduced result, summed."""
    if direction != "forward" or case.function != "binary_cross_entropy":
        return False
    (p, y), params = case.reference_args()
    with np.errstate(divide="ignore", invalid="ignore"):
        loss = np.abs(np.where(y > 0, -y * np.log(p), 0.0)
                      + np.where(y < 1, -(1 - y) * np.log1p(-p), 0.0))
    # the ordinary checks' bound, or the accuracy bound in ulps where that is tighter (the
    # accuracy properties set this entry's elements aside too)
    k = min(tolerance(case.dtype, "forward").rtol / eps(case.dtype),
            ulp_bound("binary_cross_entropy", case.dtype, "forward"))
    if params.get("reduction", "mean") in ("sum", "mean"):
        return bool(np.sum(1 - y) > k * np.sum(loss))
    return (1 - y) > k * loss


def _tuple_dims_without_keepdim(case: Case, direction: str):
    return (case.function == "logsumexp" and isinstance(case.params.get("dim"), tuple)
            and not case.params.get("keepdim", False))


def _keras_bce_gradient_cancels(case: Case, direction: str):
    """Keras' autodiff gradient −y/p + (1 − y)/(1 − p) of two rounded terms, where they nearly
    cancel (p ≈ y): its error ε·(y(1 − p) + (1 − y)p)/(p(1 − p)) beyond a quarter of the
    bound on (p − y)/(p(1 − p))."""
    if direction != "gradient" or case.function != "binary_cross_entropy":
        return False
    (p, y), _ = case.reference_args()
    k = tolerance(case.dtype, "gradient").rtol / eps(case.dtype)
    return y * (1 - p) + (1 - y) * p > 0.25 * k * np.abs(p - y)


def _tf_weighted_label_gradient_cancels(case: Case, direction: str):
    """TensorFlow's label gradient with pos_weight q, −x + (q − 1)·softplus(−x), where its two
    terms nearly cancel (large negative x): their rounding beyond a quarter of the bound."""
    if direction != "gradient" or case.function != BCEWL or "pos_weight" not in case.params:
        return False
    (x, _), params = case.reference_args()
    q = np.broadcast_to(params["pos_weight"], x.shape)
    softplus = np.logaddexp(0.0, -x)  # softplus(−x)
    k = tolerance(case.dtype, "gradient").rtol / eps(case.dtype)
    return np.abs(x) + np.abs(q - 1) * softplus > 0.25 * k * np.abs(-x + (q - 1) * softplus)


def _tf_soft_target_cancellation(case: Case, direction: str):
    """max(x, 0) − x·y rounded term by term: half an ulp of each term beyond a quarter of the
    bound on the loss's own terms |(1 − y)·x| + |log σ(x)| (without pos_weight, where the
    adapter calls sigmoid_cross_entropy_with_logits); for a reduced result, summed."""
    if direction != "forward" or case.function != BCEWL or "pos_weight" in case.params:
        return False
    (x, y), params = case.reference_args()
    k = tolerance(case.dtype, "forward").rtol / eps(case.dtype)
    tf_terms = 0.5 * (np.maximum(x, 0.0) + np.abs(x * y))
    own = np.abs((1 - y) * x) + np.logaddexp(0.0, -x)  # |(1 − y)·x| + |log σ(x)|
    if params.get("reduction", "mean") in ("sum", "mean"):
        return bool(np.sum(tf_terms) > 0.25 * k * np.sum(own))
    return tf_terms > 0.25 * k * own


def _tf_weighted_gradient_cancels(case: Case, direction: str):
    """TensorFlow's weighted input gradient (1 − y) − lw·σ(−x), lw = 1 + (q − 1)·y, rounded
    term by term where the two nearly cancel: beyond a quarter of the bound."""
    if direction != "gradient" or case.function != BCEWL or "pos_weight" not in case.params:
        return False
    (x, y), params = case.reference_args()
    lw = 1.0 + (np.broadcast_to(params["pos_weight"], x.shape) - 1.0) * y
    with np.errstate(over="ignore"):
        term = lw / (1.0 + np.exp(x))  # lw·σ(−x)
    k = tolerance(case.dtype, "gradient").rtol / eps(case.dtype)
    return np.abs(1 - y) + np.abs(term) > 0.25 * k * np.abs((1 - y) - term)


# the conformance report's case (tensorflow, float64): p = y in every element
_P_IS_Y = np.array([0.5983121749489936, 0.3, 0.057427104954850275, 0.8160149701928234,
                    0.12820024492537588, 0.846463637314478, 0.98, 0.3064868049419263])
_BCEWL_SMALL = (np.array([0.0, -1e-39, 3e-3, 0.5]), np.array([1.0, 0.25, 0.0, 1.0]))

ENTRIES: tuple[Divergence, ...] = (
    # -- JAX / optax --------------------------------------------------------------------------
    Divergence(
        "optax integer-label cross-entropy subtracts the label logit after logsumexp",
        "cross_entropy", "accuracy",
        Case("cross_entropy", (np.array([[707.0, 707.0]]), np.array([0])),
             {"reduction": "none"}, grad_output=np.array([1.0])),
        "optax.softmax_cross_entropy_with_integer_labels forms logsumexp(x) − x[t]: logsumexp "
        "707.693… is rounded at the spacing of 707 (1.1e-13) and the subtraction keeps that "
        "error, so the loss log 2 comes back 495 ulps off in float64 (0.8 % in float16, 28 % "
        "in bfloat16 at logits 100); log_softmax's (x − m) − log Σ exp(x − m) has no such "
        "error (optax#1020 reported the bfloat16 case and is closed)", OPTAX_1020,
        frozenset({JAX}), floored=False, affected=_optax_label_logit_after_logsumexp,
        near_miss=Case("cross_entropy", (np.array([[0.0, 0.0]]), np.array([0])),
                       {"reduction": "none"}, grad_output=np.array([1.0]))),
    Divergence(
        "optax BCE-with-logits gradient differentiates logaddexp through exp(x − logaddexp)",
        BCEWL, "accuracy",
        Case(BCEWL, (np.array([30.0]), np.array([0.0])), {"reduction": "none"},
             grad_output=np.array([1.0])),
        "optax.sigmoid_binary_cross_entropy is −y·log σ(x) − (1 − y)·log σ(−x) with "
        "jax.nn.log_sigmoid = −softplus(−x) = −logaddexp(−x, 0), and jnp.logaddexp's JVP forms "
        "exp(a − logaddexp(a, 0)): the exponent is a difference of two numbers of size |x|, so "
        "its absolute error, up to ulp(|x|), becomes the gradient's relative error: at x = 30, "
        "y = 0 the gradient σ(30) is 32 ulps off in float64 (8 at x = 10, and 8 ulps of "
        "float32 at x = 5–15), where jax.nn.sigmoid(30) is exact: a backward that forms σ(x) − y "
        "directly, as torch's does, has no such error (found by this suite's accuracy property, "
        "JAX 0.10.2, optax 0.2.8; no upstream issue found)", families=frozenset({JAX}),
        direction="gradient",
        affected=_jax_logaddexp_jvp,
        near_miss=Case(BCEWL, (np.array([0.5]), np.array([0.0])), {"reduction": "none"},
                       grad_output=np.array([1.0]))),
    Divergence(
        "softmax's gradient is lost where a probability is subnormal (flushed)", "softmax",
        "accuracy",
        Case("softmax", (np.array([[709.0, 0.0]]),), {"dim": 1},
             grad_output=np.array([[0.7, -1.3]])),
        "XLA on the CPU flushes subnormal results to zero (jnp.exp(−709.0) is 0.0 in float64, "
        "and so is 1e-308·1.0), so softmax([709, 0]) = [1, 0] where the second probability is "
        "e^−709 = 1.2e-308, and the gradient p·(g − Σ p·g) of that class, −2.43e-308 (a normal "
        "number) here, comes back −0.0; at logits [700, 0] the probability is normal and the "
        "gradient right. TensorFlow on the CPU flushes likewise and gives the same zeros for "
        "tf.nn.softmax. jax#40386 reports a related loss of the other component at 37.4 "
        "(found by this suite's accuracy property, JAX 0.10.2 CPU)", JAX_40386,
        frozenset({JAX, TENSORFLOW}), direction="gradient", affected=_xla_subnormal_probability,
        near_miss=Case("softmax", (np.array([[700.0, 0.0]]),), {"dim": 1},
                       grad_output=np.array([[0.7, -1.3]]))),
    _silently_accepts(
        "class indices out of range are accepted without an error", JAX,
        "optax gathers the label logit with jnp.take_along_axis, which counts a negative label "
        "from the end (−1 is the last class: a plausible, wrong loss) and fills a label ≥ C "
        "with NaN (optax#1185, closed: XLA has no runtime error mechanism); tinygrad's "
        "Tensor.cross_entropy one-hot encodes the target by comparison with arange(C) and "
        "Tensor.nll_loss gathers with a mask, so an index outside [0, C) matches no class and "
        "contributes −0.0, a perfect-looking loss with zero gradient",
        _index_cases("cross_entropy", "nll_loss"), OPTAX_1185, also=(TINYGRAD,)),
    _silently_accepts(
        "BCE-with-logits broadcasts mismatched shapes", JAX,
        "optax.sigmoid_binary_cross_entropy and tinygrad broadcast logits and labels against "
        "each other: a (2, 2) input with a (2,) target gives a (2, 2) loss without an error; "
        "the familiar (N, 1) vs (N,) mistake returns an (N, N) loss",
        ((BCEWL, "BCE-with-logits shape mismatch"),), also=(TINYGRAD,)),
    Divergence(
        "BCE-with-logits label gradient is wrong for small logits", BCEWL, "gradient",
        Case(BCEWL, _BCEWL_SMALL, {"reduction": "none"}, "float32"),
        "the gradient with respect to the target is −x·g (torch forms it exactly). optax and "
        "tinygrad evaluate −y·log σ(x) − (1 − y)·log σ(−x), whose autodiff gives "
        "log σ(−x) − log σ(x): two rounded logarithms near −log 2 whose difference has an "
        "absolute error of ~ε·log 2, 100 % of −x for x = −1e-20 and beyond the bound below "
        "|x| ≈ 1/4; TensorFlow's CPU kernels treat a subnormal float32 logit (x = −1e-39) as 0 "
        "(denormals are zero), so its label gradient is 0 there. Matters for soft-label "
        "training (distillation)", families=frozenset({JAX, TENSORFLOW, TINYGRAD}),
        direction="gradient", affected=_small_logit_label_gradient, wrt_target=True,
        near_miss=Case(BCEWL, (np.array([0.5, -2.0]), np.array([1.0, 0.25])),
                       {"reduction": "none"}, "float32")),
    # -- TensorFlow / Keras ---------------------------------------------------------------------
    Divergence(
        "tf.nn.weighted_cross_entropy_with_logits gradient at logit exactly 0", BCEWL,
        "gradient",
        Case(BCEWL, (np.array([0.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.5])),
             {"reduction": "none", "pos_weight": np.array([2.0])}),
        "the loss (1 − y)·x + lw·softplus(−x), lw = 1 + (q − 1)·y, has the gradient (1 − y) − "
        "lw·σ(−x), (1 − y) − lw/2 at x = 0; TensorFlow writes softplus(−x) as "
        "log1p(exp(−|x|)) + relu(−x) and autodiff takes d|x|/dx = relu'(x) = 0 at 0, so the "
        "term's −lw/2 is lost and the gradient is 1 − y (a zero-initialised last layer starts "
        "there); sigmoid_cross_entropy_with_logits (q = 1) is right at 0",
        families=frozenset({TENSORFLOW}), direction="gradient",
        affected=_tf_weighted_gradient_at_zero,
        near_miss=Case(BCEWL, (np.array([0.5, -0.5, 1e-3]), np.array([1.0, 0.0, 0.5])),
                       {"reduction": "none", "pos_weight": np.array([2.0])})),
    Divergence(
        "BCE clamp conventions where p is not exactly 0 or 1 (declared)",
        "binary_cross_entropy", "forward",
        Case("binary_cross_entropy", (np.array([1e-60, 0.5]), np.array([1.0, 1.0])),
             {"reduction": "none"}),
        "the adapters' declared clamp conventions, where the case carries no clamp tag: at "
        "p = 1e-60, y = 1 the loss −log p is 138.2, torch and the reference clamp the log at "
        "−100 and give 100, Keras clips p to [1e-7, 1 − 1e-7] and gives −log 1e-7 = 16.1 (its "
        "clip also zeroes the gradient there), tinygrad does not clamp and gives 138.2. In "
        "float16 and bfloat16 Keras' 1 − 1e-7 rounds to 1, so at p = 1 its clip does nothing "
        "and the loss or gradient is NaN or inf (keras#377 reported the epsilon's rounding). "
        "Set aside: every p outside Keras' [1e-7, 1 − 1e-7], and p = 1",
        families=frozenset({TENSORFLOW, TINYGRAD}), affected=_keras_clip,
        near_miss=Case("binary_cross_entropy", (np.array([1e-6, 0.5]), np.array([1.0, 1.0])),
                       {"reduction": "none"})),
    Divergence(
        "BCE clamp conventions where p is not exactly 0 or 1, gradient (declared)",
        "binary_cross_entropy", "gradient",
        Case("binary_cross_entropy", (np.array([1e-60, 0.5]), np.array([1.0, 1.0])),
             {"reduction": "none"}),
        "the gradient side of the same declared conventions: at p = 1e-60, y = 1 torch and the "
        "reference divide by max(p(1 − p), 1e-12) and give −1e12·g, Keras' clip gives 0 and "
        "tinygrad's unclamped −y/p gives −1e60·g (the mathematics). Set aside: every p outside "
        "Keras' [1e-7, 1 − 1e-7], and p = 1", families=frozenset({TENSORFLOW, TINYGRAD}),
        direction="gradient", affected=_keras_clip,
        near_miss=Case("binary_cross_entropy", (np.array([1e-6, 0.5]), np.array([1.0, 1.0])),
                       {"reduction": "none"})),
    _silently_accepts(
        "binary_cross_entropy accepts probabilities outside [0, 1]", TENSORFLOW,
        "keras.ops.binary_crossentropy clips p into [ε, 1 − ε] (so p = 1.5 or NaN gives a "
        "finite loss) and never checks the target; tinygrad has no range check (p = 1.5 gives "
        "log(1 − p) = NaN, a target of 2 is used as written): no error where the loss is "
        "undefined",
        (("binary_cross_entropy", "BCE input outside [0, 1]"),
         ("binary_cross_entropy", "BCE input is NaN"),
         ("binary_cross_entropy", "BCE target outside [0, 1]")), also=(TINYGRAD,)),
    _silently_accepts(
        "BCE-with-logits broadcasts pos_weight over the input", TENSORFLOW,
        "tf.nn.weighted_cross_entropy_with_logits and tinygrad broadcast a (2, 2) pos_weight "
        "with a (2,) input to a (2, 2) loss without an error",
        ((BCEWL, "BCE-with-logits pos_weight larger than the input"),), also=(TINYGRAD,)),
    Divergence(
        "tf.reduce_logsumexp in float16 sums a non-last axis sequentially in float16",
        "logsumexp", "forward",
        Case("logsumexp", (np.zeros((4096, 2)),), {"dim": 0, "keepdim": False}, "float16"),
        "tf.reduce_logsumexp of a float16 input over an axis that is not the last adds "
        "exp(x − m) term by term in a float16 accumulator: once the running sum reaches 2048 a "
        "term of 1 is below half its ulp and is dropped, so 4096 zeros give log 2048 = 7.62 "
        "where the answer is log 4096 = 8.32; on the size tier's 32768 uniform logits in "
        "[−10, 10] the result is 17.22 where it is 17.43 (tf.reduce_sum of the exponentials "
        "equals a sequential float16 sum exactly); over the last axis the same values are right "
        "(found by this suite's size tier, TensorFlow 2.21 CPU; no upstream issue found)",
        families=frozenset({TENSORFLOW}), affected=_tf_half_logsumexp_non_last_axis,
        near_miss=Case("logsumexp", (np.zeros((2, 4096)),), {"dim": 1, "keepdim": False},
                       "float16")),
    # -- tinygrad -------------------------------------------------------------------------------
    Divergence(
        "tinygrad logsumexp is NaN on a row that is all −inf or holds +inf", "logsumexp",
        "special value", Case("logsumexp", (np.array([-np.inf, -np.inf]),), {"dim": 0}),
        "Tensor.logsumexp subtracts the row max unconditionally: −inf − (−inf) and inf − inf "
        "are NaN where the answers are −inf and +inf (tinygrad#17822 shifts by 0 for the "
        "all −inf row, merged after 0.14.0)", TINYGRAD_17822, frozenset({TINYGRAD}),
        expected=np.float64(-np.inf),
        covers=("special:logsumexp:all -inf", "special:logsumexp:+inf element",
                "special:logsumexp:+inf and -inf")),
    Divergence(
        "BCE-with-logits is NaN at +inf logit with target 0", BCEWL, "special value",
        Case(BCEWL, (np.array([np.inf]), np.array([0.0])), {"reduction": "none"}),
        "the loss (1 − y)·x − log σ(x) tends to +inf; TensorFlow's max(x, 0) − x·y is "
        "inf − inf·0 = NaN and tinygrad's zero coefficient times log σ(−inf) is 0·(−inf) "
        "(torch returns inf)", families=frozenset({TENSORFLOW, TINYGRAD}),
        expected=np.array([np.inf]),
        covers=("special:binary_cross_entropy_with_logits:+inf logit, target 0",)),
    Divergence(
        "tinygrad BCE-with-logits takes log, not log1p, of 1 + e^−|x|", BCEWL, "forward",
        Case(BCEWL, (np.array([10.57, 19.3]), np.array([1.0, 1.0])), {"reduction": "none"}),
        "Tensor.binary_crossentropy_logits adds log(1 + e^−|x|): where the logit agrees with "
        "the target the loss is that term alone, and 1 + e^−|x| rounds first, so the loss "
        "2.6e-5 at x = 10.57 is 8e-12 relative off in float64 and 0 in float16 (log1p keeps it "
        "to the last bit)", families=frozenset({TINYGRAD}), affected=_tinygrad_log_not_log1p,
        near_miss=Case(BCEWL, (np.array([1.0, -1.0]), np.array([1.0, 0.0])),
                       {"reduction": "none"})),
    Divergence(
        "tinygrad nll_loss mean over one row of zero weight is not 0/0", "nll_loss", "forward",
        Case("nll_loss", (np.array([[-1.5, -2.0]]), np.array([0])),
             {"reduction": "mean", "weight": np.array([0.0, 1.0])}),
        "the weighted mean Σ −w[t]·x / Σ w[t] is 0/0 (NaN in torch) when the only target "
        "weighs 0 or is ignored; tinygrad's graph rewrite simplifies (a·b)/b to a and returns "
        "the unweighted loss 1.5 (−0.0 when ignored), NaN again for two or more rows",
        families=frozenset({TINYGRAD}), affected=_tinygrad_single_row_zero_weight_mean,
        near_miss=Case("nll_loss", (np.array([[-1.5, -2.0]]), np.array([1])),
                       {"reduction": "mean", "weight": np.array([0.0, 1.0])})),
    _silently_accepts(
        "tinygrad losses broadcast or ignore mismatched shapes", TINYGRAD,
        "no shape check: a target of another batch or spatial size, a class weight of the "
        "wrong size and a BCE target of another shape broadcast (or are gathered from) without "
        "an error",
        (("nll_loss", "batch size mismatch"), ("nll_loss", "spatial size mismatch"),
         ("nll_loss", "weight of the wrong size"),
         ("binary_cross_entropy", "BCE shape mismatch"))),
    Divergence(
        "BCE takes log(1 − p), not log1p(−p)", "binary_cross_entropy", "forward",
        Case("binary_cross_entropy", (np.array([1e-5, 0.5]), np.array([0.0, 0.0])),
             {"reduction": "none"}),
        "Keras' binary_crossentropy and tinygrad's Tensor.binary_crossentropy evaluate "
        "−(1 − y)·log(1 − p) with 1 − p rounded first: at p = 1e-5, y = 0 the loss 1.000005e-5 "
        "comes back 4.6e-12 relative off in float64 (0.14 % in float32; in float16 a p of 1e-4 "
        "gives −0.0); torch and the reference use log1p(−p)",
        families=frozenset({TENSORFLOW, TINYGRAD}), affected=_bce_log_one_minus_p,
        near_miss=Case("binary_cross_entropy", (np.array([0.9, 0.8]), np.array([0.0, 0.0])),
                       {"reduction": "none"})),
    Divergence(
        "tinygrad logsumexp over a tuple of dims without keepdim raises TypeError",
        "logsumexp", "forward",
        Case("logsumexp", (np.array([[-5.0], [5.0]]),), {"dim": (0, 1), "keepdim": False}),
        "Tensor.logsumexp accepts a tuple of axes (keepdim=True works) but with keepdim=False "
        "it calls squeeze with the tuple, which raises TypeError ('<=' not supported between "
        "'int' and 'tuple') where the answer is 5 + log1p(e^−10)", families=frozenset({TINYGRAD}),
        raises=TypeError, affected=_tuple_dims_without_keepdim,
        near_miss=Case("logsumexp", (np.array([[-5.0], [5.0]]),), {"dim": (0, 1),
                                                                   "keepdim": True})),
    Divergence(
        "Keras' BCE gradient cancels where p is close to the target", "binary_cross_entropy",
        "gradient",
        Case("binary_cross_entropy", (_P_IS_Y, _P_IS_Y), {"reduction": "mean"}),
        "autodiff of −[y·log p + (1 − y)·log(1 − p)] gives −y/p + (1 − y)/(1 − p), two rounded "
        "terms of size ~1 that cancel where p ≈ y: at p = y = 0.598 the gradient is −1.7e-18 "
        "instead of 0 (a few ulps of 1 where the exact (p − y)/(p(1 − p)) is 0 or tiny); torch "
        "forms (p − y)/(p(1 − p))", families=frozenset({TENSORFLOW}), direction="gradient",
        affected=_keras_bce_gradient_cancels,
        near_miss=Case("binary_cross_entropy", (np.array([0.2]), np.array([0.9])),
                       {"reduction": "none"})),
    Divergence(
        "tf.nn.weighted_cross_entropy_with_logits label gradient cancels for negative logits",
        BCEWL, "gradient",
        Case(BCEWL, (np.array([-19.624728041600665, -10.489040594649842]),
                     np.array([1.0, 0.0])), {"reduction": "none", "pos_weight": np.array([0.0])}),
        "the gradient with respect to the target of (1 − y)·x + (1 + (q − 1)·y)·softplus(−x) is "
        "−x + (q − 1)·softplus(−x); TensorFlow's autodiff forms it from the two terms, which "
        "cancel for large negative x: at x = −19.6, q = 0 the gradient −log1p(e^x) = −2.3e-9 "
        "comes back 3.6e-7 relative off in float64 (x = −10.5 in float16: 0 instead of "
        "2.1e-5); tinygrad's log σ(−x) takes log(1 + e^x), losing the same digits",
        families=frozenset({TENSORFLOW, TINYGRAD}), direction="gradient",
        affected=_tf_weighted_label_gradient_cancels, wrt_target=True,
        near_miss=Case(BCEWL, (np.array([1.0, 2.0]), np.array([1.0, 0.0])),
                       {"reduction": "none", "pos_weight": np.array([0.0])})),
    Divergence(
        "tf.nn.sigmoid_cross_entropy_with_logits cancels max(x, 0) − x·y for a soft target",
        BCEWL, "forward",
        Case(BCEWL, (np.array([8.621676767828909, 0.5]), np.array([0.952040144419604, 0.5])),
             {"reduction": "none"}, "bfloat16"),
        "TensorFlow evaluates max(x, 0) − x·y + log1p(e^−|x|): for a large logit and a soft "
        "target x·y is rounded at its own spacing before the subtraction, so at x = 8.62, "
        "y = 0.952 the bfloat16 loss 0.4045 comes back 0.375 (7 % off), and at x = 86, "
        "y = 0.9567 the float32 loss 3.72113 is 14 ulps off; (1 − y)·x is exact to one "
        "rounding because 1 − y is exact for y in [0.5, 1]",
        families=frozenset({TENSORFLOW}), affected=_tf_soft_target_cancellation,
        near_miss=Case(BCEWL, (np.array([0.5, -1.0]), np.array([0.25, 0.5])),
                       {"reduction": "none"}, "bfloat16")),
    Divergence(
        "tf.nn.weighted_cross_entropy_with_logits gradient cancels (1 − y) − lw·σ(−x)", BCEWL,
        "gradient",
        Case(BCEWL, (np.array([-7.517119683369911, -7.3, -7.7]),
                     np.array([0.0238719819993154, 0.03, 0.02])),
             {"reduction": "none", "pos_weight": np.array([3.0630405668488505, 3.06, 3.06])},
             "bfloat16"),
        "with pos_weight q the input gradient is (1 − y) − lw·σ(−x), lw = 1 + (q − 1)·y, and "
        "TensorFlow's autodiff forms it from those two terms, which cancel where σ(−x) ≈ "
        "(1 − y)/lw: at x = −7.52, y = 0.024, q = 3.06 the float16 gradient is 0.9 % off "
        "(7 % in bfloat16); torch forms (q·y + 1 − y)·σ(x) − q·y, which has no cancellation "
        "there", families=frozenset({TENSORFLOW}), direction="gradient",
        affected=_tf_weighted_gradient_cancels, seed=2,
        near_miss=Case(BCEWL, (np.array([2.0]), np.array([1.0])),
                       {"reduction": "none", "pos_weight": np.array([3.0])}, "float16")),
    *TINYGRAD_KERNEL_ENTRIES,
)
