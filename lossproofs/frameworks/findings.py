"""Divergences from the mathematics found by running the suite and small probes against the
framework targets (``lossproofs.frameworks.*_losses``).

Each record is reproducible through the target module of its framework: call
``<module>.<function>(input, target, **kwargs)`` on tensors of ``dtype`` built from ``args``
(``input``, optional ``target`` and ``target_dtype``, ``kwargs``; for a gradient record,
``grad_output`` and ``wrt``; a list ``dim`` is a tuple of dims), and the framework returns
``framework_result`` (``"raises <ExceptionType>"`` where it raises). The value the
mathematics gives is ``mathematical_result`` (a string where the input is invalid and the only
right answer is an error), derived in ``why``. ``tests/test_frameworks.py`` re-runs every record
and fails when the framework stops diverging (so a fix upstream shows up).

Keys: framework, function (the target module's torch-named function), framework_function (the
framework's own function the target calls), name, dtype, args, framework_result,
mathematical_result, direction ("forward" | "gradient"), kind ("divergence" | "silent acceptance
of bad input" | "convention"), upstream (an existing upstream issue or pull request, else ""),
why. Versions observed: jax 0.10.2 / optax 0.2.8, tensorflow-cpu 2.21.0 / keras 3.15.1,
tinygrad 0.14.0, all on an x86-64 CPU.
"""

from __future__ import annotations

INF = float("inf")
NAN = float("nan")
LOG2 = 0.6931471805599453

OPTAX_1020 = "https://github.com/google-deepmind/optax/issues/1020"
OPTAX_1185 = "https://github.com/google-deepmind/optax/issues/1185"
OPTAX_896 = "https://github.com/google-deepmind/optax/issues/896"
KERAS_377 = "https://github.com/keras-team/keras/issues/377"
TINYGRAD_PR17822 = "https://github.com/tinygrad/tinygrad/pull/17822"


def finding(framework: str, function: str, framework_function: str, name: str, dtype: str,
            args: dict, framework_result, mathematical_result, *, why: str,
            direction: str = "forward", kind: str = "divergence", upstream: str = "") -> dict:
    """One record, with the keys the module docstring describes."""
    return {"framework": framework, "function": function,
            "framework_function": framework_function, "name": name, "dtype": dtype,
            "args": args, "framework_result": framework_result,
            "mathematical_result": mathematical_result, "direction": direction, "kind": kind,
            "upstream": upstream, "why": why}


FINDINGS: list[dict] = [
    # -- JAX / optax ------------------------------------------------------------------------
    finding(
        "jax", "cross_entropy", "optax.softmax_cross_entropy_with_integer_labels",
        "integer-label cross-entropy subtracts the label logit after logsumexp "
        "(495 ulps in float64)",
        "float64", {"input": [[707.0, 707.0]], "target": [0], "kwargs": {"reduction": "none"}},
        [0.6931471805598903],
        [LOG2],
        upstream=OPTAX_1020,
        why="With two equal logits the loss is log 2 = 0.6931471805599453 whatever their size. "
            "optax forms logsumexp(x) − x[t] (log_normalizers − label_logits): logsumexp is "
            "707.693…, rounded to the float64 spacing at 707 (1.1e-13), and the subtraction "
            "of 707 keeps that rounding error, 5.5e-14 = 495 ulps of the result. Shifting by "
            "the row max before the logsumexp (as optax.softmax_cross_entropy, via "
            "jax.nn.log_softmax, and torch do) gives log 2 to 0.2 ulp. The error grows with "
            "the logit's magnitude (1553 ulps at logits 1e4). optax#1020 reported the same "
            "mechanism for bfloat16 and is closed; the float64/float16 loss persists in 0.2.8."),
    finding(
        "jax", "cross_entropy", "optax.softmax_cross_entropy_with_integer_labels",
        "integer-label cross-entropy 0.8 % off in float16 at logits 100",
        "float16", {"input": [[100.0, 100.0]], "target": [0], "kwargs": {"reduction": "none"}},
        [0.6875],
        [LOG2],
        upstream=OPTAX_1020,
        why="Exact loss log 2 (float16: 0.6934). logsumexp([100, 100]) = 100.693 rounds to "
            "100.6875 in float16 (spacing 0.0625 at 100); minus x[t] = 100 leaves 0.6875, "
            "0.8 % (11.6 float16 ulps) low. optax.softmax_cross_entropy with the one-hot "
            "target and torch return 0.6934."),
    finding(
        "jax", "cross_entropy", "optax.softmax_cross_entropy_with_integer_labels",
        "integer-label cross-entropy 28 % off in bfloat16 at logits 100",
        "bfloat16", {"input": [[100.0, 100.0]], "target": [0], "kwargs": {"reduction": "none"}},
        [0.5],
        [LOG2],
        upstream=OPTAX_1020,
        why="Exact loss log 2 (bfloat16: 0.6914). logsumexp = 100.693 rounds to 100.5 in "
            "bfloat16 (spacing 0.5 at 100), so logsumexp − x[t] = 0.5: 28 % low. This is the "
            "bfloat16 quantisation of optax#1020 (closed), still present in optax 0.2.8."),
    finding(
        "jax", "cross_entropy", "optax.softmax_cross_entropy_with_integer_labels",
        "label −1 silently selects the last class",
        "float32", {"input": [[1.0, 2.0, 3.0]], "target": [-1], "kwargs": {"reduction": "none"}},
        [0.40760597586631775],
        "error: -1 is not a class index in [0, 3)",
        kind="silent acceptance of bad input", upstream=OPTAX_1185,
        why="A class index must lie in [0, C). optax gathers the label logit with "
            "jnp.take_along_axis, whose negative indices count from the end, so label −1 "
            "returns the loss of class C − 1 (0.4076 = logsumexp([1, 2, 3]) − 3): a "
            "plausible, wrong loss with no error. Labels ≥ C give NaN instead (also without "
            "error; optax#1185, closed: XLA has no runtime error mechanism). torch raises "
            "IndexError for both."),
    finding(
        "jax", "cross_entropy", "optax.softmax_cross_entropy_with_integer_labels",
        "label ≥ C gives NaN without an error",
        "float32", {"input": [[1.0, 2.0, 3.0]], "target": [3], "kwargs": {"reduction": "none"}},
        [NAN],
        "error: 3 is not a class index in [0, 3)",
        kind="silent acceptance of bad input", upstream=OPTAX_1185,
        why="A class index must lie in [0, C). jnp.take_along_axis fills out-of-bounds "
            "gathers with NaN, so the loss is NaN and no error is raised; in a mean over a "
            "batch one bad label turns the whole loss into NaN with nothing naming the "
            "cause. torch raises IndexError('Target 3 is out of bounds.')."),
    finding(
        "jax", "log_softmax", "jax.nn.log_softmax",
        "log_softmax of a dominant class is exactly 0 (log where log1p is needed)",
        "float64", {"input": [0.0, -40.0], "kwargs": {"dim": 0}},
        [0.0, -40.0],
        [-4.248354255291589e-18, -40.0],
        why="log_softmax(x)_0 = −log(1 + e^−40) = −4.248354255291589e-18, a normal float64. "
            "jax.nn.log_softmax computes (x − max) − log(Σ exp(x − max)); the sum is "
            "1 + 4.2e-18, which rounds to 1, and log(1) = 0, so every digit is lost. "
            "log1p(Σ_{j≠argmax} exp(x_j − max)) keeps full relative accuracy. torch has the "
            "same behaviour (pytorch#113708); jax#40384 reports the related lost gradient "
            "component."),
    finding(
        "jax", "cross_entropy", "optax.softmax_cross_entropy_with_integer_labels",
        "cross-entropy of a confident correct prediction is exactly 0",
        "float32", {"input": [[0.0, -20.0]], "target": [0], "kwargs": {"reduction": "none"}},
        [0.0],
        [2.0611536203143807e-09],
        why="CE = log(1 + e^−20) = 2.0611536e-9, a normal float32. logsumexp([0, −20]) = "
            "0 + log(1 + 2.1e-9), and 1 + 2.1e-9 rounds to 1 in float32, so logsumexp is 0 "
            "and 0 − x[t] = 0: the whole loss of a confident prediction vanishes (log where "
            "log1p is needed). torch returns 0 too (pytorch#113708)."),
    finding(
        "jax", "cross_entropy", "optax.softmax_cross_entropy",
        "probability target with zero mass on a −inf (masked) logit gives NaN",
        "float64", {"input": [[0.0, -INF, 1.0]], "target": [[0.5, 0.0, 0.5]],
                    "target_dtype": "input", "kwargs": {"reduction": "none"}},
        [NAN],
        [0.8132616875182228],
        upstream=OPTAX_896,
        why="CE = −Σ_c t_c log p_c with the convention 0·log 0 = 0 (the masked class has "
            "p = 0 and t = 0): log(1 + e) − 0.5·1 = 0.8132616875182228. optax computes "
            "−(labels * log_softmax).sum(), and 0 · (−inf) = NaN. optax#896 reported this and "
            "is closed; in optax 0.2.8 the docstring points to "
            "optax.safe_softmax_cross_entropy for −inf logits instead. torch gives NaN too."),
    finding(
        "jax", "binary_cross_entropy_with_logits", "optax.sigmoid_binary_cross_entropy",
        "BCE-with-logits is NaN at a saturated correct logit (x = ±inf)",
        "float64", {"input": [INF, -INF], "target": [1.0, 0.0], "target_dtype": "input",
                    "kwargs": {"reduction": "none"}},
        [NAN, NAN],
        [0.0, 0.0],
        why="ℓ = −y log σ(x) − (1 − y) log σ(−x) tends to 0 when x → +inf with y = 1 (and "
            "x → −inf with y = 0). optax evaluates −labels·log_sigmoid(x) − (1 − "
            "labels)·log_sigmoid(−x), and the zero coefficient times log_sigmoid(∓inf) = "
            "−inf is 0·(−inf) = NaN. torch does the same (pytorch#102894)."),
    # -- TensorFlow / Keras -------------------------------------------------------------------
    finding(
        "tensorflow", "binary_cross_entropy_with_logits",
        "tf.nn.weighted_cross_entropy_with_logits",
        "gradient at logit exactly 0 drops the log-sigmoid term",
        "float64", {"input": [0.0, 0.0, 0.0], "target": [1.0, 0.0, 0.5], "target_dtype": "input",
                    "kwargs": {"reduction": "none", "pos_weight": [2.0]},
                    "grad_output": [1.0, 1.0, 1.0], "wrt": "input"},
        [0.0, 1.0, 0.5],
        [-1.0, 0.5, -0.25],
        direction="gradient",
        why="ℓ = (1 − y)·x + lw·softplus(−x) with lw = 1 + (q − 1)·y, so ∂ℓ/∂x = (1 − y) − "
            "lw·σ(−x), which at x = 0 is (1 − y) − lw/2: −1, 0.5, −0.25 for (y, q) = (1, 2), "
            "(0, 2), (0.5, 2). TensorFlow writes softplus(−x) as log1p(exp(−|x|)) + "
            "relu(−x) and differentiates it by autodiff; at x = 0 both d|x|/dx = sign(0) = 0 "
            "and relu'(0) = 0, so the term's derivative (−1/2) is lost and the gradient is "
            "just 1 − y. A logit of exactly 0 is common (zero-initialised last layers, "
            "padding). The forward value is right; tf.nn.sigmoid_cross_entropy_with_logits "
            "(q = 1) has the correct gradient at 0. Same mechanism as the torch bug fixed in "
            "pytorch PR #2195."),
    finding(
        "tensorflow", "binary_cross_entropy", "keras.ops.binary_crossentropy",
        "float16: p = 1 gives NaN (y = 1) and inf (y = 0); the 1 − ε clip rounds to 1",
        "float16", {"input": [1.0, 1.0], "target": [1.0, 0.0], "target_dtype": "input",
                    "kwargs": {"reduction": "none"}},
        [NAN, INF],
        [0.0, INF],
        upstream=KERAS_377,
        why="At p = 1, y = 1 the loss is −log 1 − 0·log 0 = 0 (0·log 0 = 0). Keras clips p "
            "to [ε, 1 − ε] with ε = 1e-7 to keep both logs finite, but in float16 (and "
            "bfloat16) 1 − 1e-7 rounds to 1, so the clip does nothing: log(1 − p) = −inf, "
            "0·(−inf) = NaN, and at y = 0 the loss is inf where Keras' own convention gives "
            "−log ε ≈ 16.1 (float32 returns 15.94). keras#377 reported the same epsilon "
            "rounding for float32 in 2015."),
    finding(
        "tensorflow", "binary_cross_entropy", "keras.ops.binary_crossentropy",
        "float16 gradient is NaN for small p with target 0",
        "float16", {"input": [1e-05], "target": [0.0], "target_dtype": "input",
                    "kwargs": {"reduction": "none"}, "grad_output": [1.0], "wrt": "input"},
        [NAN],
        [1.0000100137],
        direction="gradient",
        why="∂ℓ/∂p = (p − y)/(p(1 − p)) = 1/(1 − p) ≈ 1.00001 for y = 0. Keras evaluates "
            "−[y·log p + (1 − y)·log(1 − p)] and autodiff forms y·(1/p) for the first term: "
            "1/p = 99864 overflows float16 (max 65504) to inf, and 0·inf = NaN. Every p "
            "below 1/65504 ≈ 1.5e-5 (but above the clip ε) gives a NaN gradient with a "
            "target of 0, poisoning a whole mixed-precision update."),
    finding(
        "tensorflow", "binary_cross_entropy", "keras.ops.binary_crossentropy",
        "float16 loss of a small p with target 0 is −0.0 (log(1 − p), not log1p(−p))",
        "float16", {"input": [0.0001], "target": [0.0], "target_dtype": "input",
                    "kwargs": {"reduction": "none"}},
        [-0.0],
        [0.00010002159592616078],
        why="ℓ = −log(1 − p) = 1.0002e-4 for p = 1.0002e-4 (the float16 value of 1e-4). "
            "Keras computes log(1 − p) with 1 − p rounded first: in float16 1 − 1e-4 = 1, so "
            "the loss is −0.0, every digit lost (bfloat16 loses p up to 1e-3). torch uses "
            "log1p(−p) and returns 1.0002e-4."),
    finding(
        "tensorflow", "log_softmax", "tf.nn.log_softmax",
        "log_softmax of a dominant class is exactly 0 (log where log1p is needed)",
        "float64", {"input": [0.0, -40.0], "kwargs": {"dim": 0}},
        [0.0, -40.0],
        [-4.248354255291589e-18, -40.0],
        why="log_softmax(x)_0 = −log(1 + e^−40) = −4.248354255291589e-18. tf.nn.log_softmax "
            "subtracts log Σ exp(x − max) = log(1 + 4.2e-18) = log(1) = 0, losing every digit; "
            "log1p of the sum without the max term would keep them. torch has the same "
            "behaviour (pytorch#113708)."),
    finding(
        "tensorflow", "binary_cross_entropy_with_logits", "tf.nn.sigmoid_cross_entropy_with_logits",
        "BCE-with-logits is NaN at x = ±inf",
        "float64", {"input": [INF, -INF, INF], "target": [1.0, 0.0, 0.0], "target_dtype": "input",
                    "kwargs": {"reduction": "none"}},
        [NAN, NAN, NAN],
        [0.0, 0.0, INF],
        why="ℓ = max(x, 0) − x·y + log(1 + e^−|x|) tends to 0 at (x, y) = (+inf, 1) and "
            "(−inf, 0), and to +inf at (+inf, 0). TensorFlow evaluates max(x, 0) − x·y as "
            "inf − inf = NaN, and at (+inf, 0) x·0 = NaN. torch is NaN at the first two "
            "(pytorch#102894) but returns inf at the third."),
    finding(
        "tensorflow", "cross_entropy", "tf.nn.softmax_cross_entropy_with_logits",
        "probability target with zero mass on a −inf (masked) logit gives NaN",
        "float64", {"input": [[0.0, -INF, 1.0]], "target": [[0.5, 0.0, 0.5]],
                    "target_dtype": "input", "kwargs": {"reduction": "none"}},
        [NAN],
        [0.8132616875182228],
        why="With 0·log 0 = 0 for the masked class, CE = log(1 + e) − 0.5 = "
            "0.8132616875182228. The fused kernel multiplies the zero label by the −inf "
            "log-probability: NaN. torch gives NaN too."),
    finding(
        "tensorflow", "cross_entropy", "tf.nn.softmax_cross_entropy_with_logits",
        "gradient for a target row not summing to 1 is softmax − t, not the loss's "
        "gradient",
        "float64", {"input": [[0.0, 1.0]], "target": [[0.5, 1.0]], "target_dtype": "input",
                    "kwargs": {"reduction": "none"}, "grad_output": [1.0], "wrt": "input"},
        [-0.2310585786300049, -0.2689414213699951],
        [-0.09658786794500729, 0.0965878679450074],
        direction="gradient", kind="convention",
        why="The forward value −Σ_c t_c log p_c is computed for any t (0.96989 here), and its "
            "gradient is p·Σ_c t_c − t = (−0.0966, 0.0966). TensorFlow's fused kernel "
            "returns softmax − t, which is that gradient only when Σ_c t_c = 1; its docstring "
            "says each row of labels must be a valid probability distribution, 'if they are "
            "not, the computation of the gradient will be incorrect'. So value and gradient "
            "disagree silently for unnormalised or partially masked soft targets (torch and "
            "optax differentiate the value they return)."),
    finding(
        "tensorflow", "binary_cross_entropy_with_logits", "tf.nn.sigmoid_cross_entropy_with_logits",
        "max(x, 0) − x·y cancels for a large logit and a soft target (14 ulps in "
        "float32)",
        "float32", {"input": [86.0], "target": [0.9567310810089111], "target_dtype": "input",
                    "kwargs": {"reduction": "none"}},
        [3.72113037109375],
        [3.7211270332336426],
        why="ℓ = (1 − y)·x + log1p(e^−|x|) for x > 0: here 86·(1 − 0.95673108) + 4.4e-38 = "
            "3.72112703. TensorFlow evaluates max(x, 0) − x·y, i.e. 86 − 82.2789, and the "
            "product x·y is rounded at the spacing of 82 (7.6e-6) before the subtraction, "
            "so the result is 14 float32 ulps off. (1 − y)·x is exact up to one rounding "
            "because 1 − y is exact for y in [0.5, 1] (Sterbenz); torch returns 3.7211270."),
    # -- tinygrad --------------------------------------------------------------------------------
    finding(
        "tinygrad", "logsumexp", "Tensor.logsumexp",
        "logsumexp is NaN on a row that is all −inf or holds +inf",
        "float32", {"input": [[-INF, -INF], [INF, 0.0]], "kwargs": {"dim": 1}},
        [NAN, NAN],
        [-INF, INF],
        upstream=TINYGRAD_PR17822,
        why="log Σ exp(x) is −inf for an all −inf row (log 0) and +inf for a row holding "
            "+inf. Tensor.logsumexp subtracts the row max unconditionally: −inf − (−inf) and "
            "inf − inf are NaN. tinygrad PR #17822 (merged after 0.14.0) shifts by 0 when the "
            "max is not finite for the all −inf case."),
    finding(
        "tinygrad", "cross_entropy", "Tensor.cross_entropy",
        "out-of-range class indices silently give a loss of 0",
        "float32", {"input": [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], "target": [3, -1],
                    "kwargs": {"reduction": "none"}},
        [-0.0, -0.0],
        "error: 3 and -1 are not class indices in [0, 3)",
        kind="silent acceptance of bad input",
        why="A class index must lie in [0, C). Tensor.cross_entropy one-hot encodes the "
            "target by comparison with arange(C); an index outside [0, C) matches no class, "
            "the one-hot row is all zeros and the loss is −0.0, a perfect-looking loss with "
            "zero gradient, so a bad label silently stops training on that sample. torch "
            "raises IndexError."),
    finding(
        "tinygrad", "nll_loss", "Tensor.nll_loss",
        "out-of-range class indices silently give a loss of 0",
        "float32", {"input": [[-1.0, -2.0, -3.0], [-1.0, -2.0, -3.0]], "target": [3, -1],
                    "kwargs": {"reduction": "none"}},
        [-0.0, -0.0],
        "error: 3 and -1 are not class indices in [0, 3)",
        kind="silent acceptance of bad input",
        why="Tensor.nll_loss gathers the log-probability with Tensor.gather, which returns 0 "
            "for an index outside [0, C) instead of raising, so the loss is −0.0 and the "
            "sample still counts in the mean's denominator. torch raises IndexError."),
    finding(
        "tinygrad", "binary_cross_entropy", "Tensor.binary_crossentropy",
        "BCE is NaN when p equals the target at 0 or 1",
        "float32", {"input": [0.0, 1.0], "target": [0.0, 1.0], "target_dtype": "input",
                    "kwargs": {"reduction": "none"}},
        [NAN, NAN],
        [0.0, 0.0],
        why="ℓ = −y log p − (1 − y) log(1 − p) with 0·log 0 = 0 is exactly 0 for a perfect "
            "prediction (p = y ∈ {0, 1}). Tensor.binary_crossentropy has no clamp and no "
            "xlogy: at p = y = 0 the first term is −0·log 0 = 0·inf = NaN (likewise at "
            "p = y = 1), and the gradients are NaN. torch clamps each log at −100 and returns "
            "0."),
    finding(
        "tinygrad", "binary_cross_entropy_with_logits", "Tensor.binary_crossentropy_logits",
        "BCE-with-logits is NaN at x = ±inf",
        "float32", {"input": [INF, -INF, -INF], "target": [1.0, 0.0, 1.0],
                    "target_dtype": "input", "kwargs": {"reduction": "none"}},
        [NAN, NAN, NAN],
        [0.0, 0.0, INF],
        why="ℓ = −y log σ(x) − (1 − y) log σ(−x) tends to 0 at (x, y) = (+inf, 1) and "
            "(−inf, 0) and to +inf at (−inf, 1). tinygrad evaluates both logsigmoid terms, "
            "and the zero coefficient times logsigmoid(∓inf) = −inf is NaN; at (−inf, 1) "
            "its logsigmoid itself is NaN. torch gives NaN for all three (pytorch#102894)."),
    finding(
        "tinygrad", "nll_loss", "Tensor.nll_loss",
        "weighted mean over a zero total weight returns the unweighted loss "
        "(batch of one)",
        "float32", {"input": [[-1.5, -2.0]], "target": [0],
                    "kwargs": {"reduction": "mean", "weight": [0.0, 1.0]}},
        [1.5],
        [NAN],
        why="The weighted mean Σ −w[t_i]·x[i, t_i] / Σ w[t_i] is 0/0 when every used weight "
            "is 0: undefined, NaN in torch and in IEEE arithmetic. tinygrad returns 1.5 = "
            "−x[0, 0], the unweighted loss, and the gradient [−1, 0] instead of NaN: its "
            "graph rewriter simplifies (a·b)/b to a without the b ≠ 0 condition (plain "
            "tinygrad: (Tensor([3.])*Tensor([0.])).sum()/Tensor([0.]).sum() is 3.0). With "
            "two or more samples the sum is not simplified and the result is NaN, so the "
            "answer depends on the batch size. Related tinygrad#12409 (no NaN spec)."),
    finding(
        "tinygrad", "nll_loss", "Tensor.nll_loss",
        "mean over only ignored targets is −0.0 for a batch of one",
        "float32", {"input": [[-1.5, -2.0]], "target": [-100],
                    "kwargs": {"reduction": "mean", "ignore_index": -100}},
        [-0.0],
        [NAN],
        why="With every target ignored the mean is 0/0 (no kept targets): NaN in torch. "
            "tinygrad's masked_weight = w·(Y ≠ ignore_index) is 0 and the same (a·b)/b → a "
            "rewrite leaves −gather(x)·… = −0.0 for a batch of one (NaN for two or more), "
            "so an all-padding batch of one contributes a silent 0 to the loss."),
    finding(
        "tinygrad", "logsumexp", "Tensor.logsumexp",
        "logsumexp over a tuple of dims with keepdim=False raises TypeError",
        "float64", {"input": [[-5.0], [5.0]], "kwargs": {"dim": [0, 1], "keepdim": False}},
        "raises TypeError",
        5.000045398899217,
        why="logsumexp over both dims of [[−5], [5]] is 5 + log1p(e^−10) = 5.0000453989. "
            "Tensor.logsumexp accepts a tuple axis (keepdim=True works) but with "
            "keepdim=False it calls m.squeeze(axis) with the tuple, and squeeze raises "
            "TypeError: '<=' not supported between instances of 'int' and 'tuple'."),
]
