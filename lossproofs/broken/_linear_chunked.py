"""A hand-written chunked ``linear_cross_entropy`` (the design of torch's chunked path, Liger-
Kernel's FusedLinearCrossEntropy and quack's chunked linear CE: the batch is processed in
chunks of :data:`CHUNK` rows, the logits of one chunk at a time; for sum/mean the three
gradients are computed in the forward and the backward only scales them by ``grad_output``),
with switches for the bugs of the ``linear_*`` broken modules. Without a switch it is correct.

Supported directly: class-index (int64) targets, ``(N, in)`` or ``(in,)`` input, a 2-D weight,
``(C,)`` bias, class weights, ``ignore_index`` and the three reductions. Everything else
(probability targets, label smoothing, a K-dim weight, uint8 targets) goes to torch's reference
path, as torch's chunked path does. Arithmetic in float32 for half types, else in the input's
dtype; results in the input's dtype.

Bugs (``bugs=`` a set of these names):

- ``"drop tail"``: the chunk loop runs over ``N // CHUNK`` full chunks only; the remainder rows
  contribute neither loss nor gradient (while the mean still divides by all kept targets).
- ``"sum of chunk means"``: ``mean`` is the sum of each chunk's own mean.
- ``"grad_output[0]"``: for ``reduction="none"`` every row's gradient is scaled by the first
  element of ``grad_output``.
- ``"grad_output twice"``: for sum/mean the precomputed gradients are multiplied by
  ``grad_output`` twice.
- ``"mutate saved"``: for sum/mean the backward scales the saved gradients in place and returns
  them, so a second backward (``retain_graph=True``) scales them again, and the gradient the
  first backward returned changes under the caller's feet.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lossproofs.broken._common import buggy

CHUNK = 2  # rows per chunk: N = 2..7 in the strategies gives 1..4 chunks, odd N a shorter tail


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, t, weight, reduction, ignore_index, bugs):
        acc = _acc(x.dtype)
        n, _ = x.shape
        xa, wa = x.to(acc), w.to(acc)
        ba = None if b is None else b.to(acc)
        kept = t != ignore_index
        safe = torch.where(kept, t, torch.zeros_like(t))
        wt = (torch.ones(n, dtype=acc) if weight is None else weight.to(acc)[safe]) * kept
        denominator = wt.sum() if reduction == "mean" else torch.ones((), dtype=acc)
        losses = torch.zeros(n, dtype=acc)
        grad_z = torch.zeros(n, w.shape[0], dtype=acc)  # per unit upstream gradient
        end = n - n % CHUNK if "drop tail" in bugs else n  # BUG when "drop tail"
        chunk_sums = []
        for start in range(0, end, CHUNK):
            stop = min(start + CHUNK, n)
            z = xa[start:stop] @ wa.T
            if ba is not None:
                z = z + ba
            lse = torch.logsumexp(z, dim=1)
            ell = wt[start:stop] * (lse - z.gather(1, safe[start:stop, None])[:, 0])
            losses[start:stop] = ell
            p = torch.softmax(z, dim=1)
            onehot = F.one_hot(safe[start:stop], w.shape[0]).to(acc)
            g = wt[start:stop, None] * (p - onehot)
            if "sum of chunk means" in bugs and reduction == "mean":
                chunk_denominator = wt[start:stop].sum()
                chunk_sums.append(ell.sum() / chunk_denominator)  # BUG
                g = g / chunk_denominator
            elif reduction == "mean":
                # Ignored rows hold exactly 0 whatever the denominator (as the reference: a
                # zero total weight makes the kept rows 0/0 = NaN, never the ignored ones).
                g = torch.where(kept[start:stop, None], g / denominator, 0)
            grad_z[start:stop] = g
        if reduction == "none":
            out = losses
        elif "sum of chunk means" in bugs and reduction == "mean":
            out = torch.stack(chunk_sums).sum() if chunk_sums else losses.sum() / denominator
        else:
            out = losses.sum() / denominator
        ctx.reduction, ctx.bugs = reduction, bugs
        ctx.has_bias = b is not None
        ctx.dtypes = (x.dtype, w.dtype, None if b is None else b.dtype)
        if reduction == "none":
            ctx.save_for_backward(xa, wa, grad_z)
        else:
            # Precompute the three gradients (what chunking is for), scaled in backward.
            ctx.grads = [grad_z @ wa, grad_z.T @ xa, grad_z.sum(0) if b is not None else None]
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        bugs = ctx.bugs
        if ctx.reduction == "none":
            xa, wa, grad_z = ctx.saved_tensors
            g = grad_output.to(grad_z.dtype)
            if "grad_output[0]" in bugs:
                g = g.reshape(-1)[0].expand(g.shape)  # BUG
            gz = grad_z * g[:, None]
            grads = [gz @ wa, gz.T @ xa, gz.sum(0) if ctx.has_bias else None]
        else:
            g = grad_output.to(ctx.grads[0].dtype)
            if "mutate saved" in bugs:
                grads = [None if v is None else v.mul_(g) for v in ctx.grads]  # BUG: in place
            else:
                grads = [None if v is None else v * g for v in ctx.grads]
            if "grad_output twice" in bugs:
                grads = [None if v is None else v * g for v in grads]  # BUG
        gx, gw, gb = (None if v is None else (v if "mutate saved" in bugs else v.to(d))
                      for v, d in zip(grads, ctx.dtypes))
        return gx, gw, gb, None, None, None, None, None


def chunked_linear_cross_entropy(input, linear_weight, target, linear_bias=None, weight=None,
                                 reduction="mean", ignore_index=None, label_smoothing=0.0, *,
                                 bugs=frozenset()):
    """``F.linear_cross_entropy``'s signature; see the module docstring."""
    supported = (target.dtype == torch.int64 and label_smoothing == 0.0
                 and linear_weight.dim() == 2 and input.dim() in (1, 2)
                 and reduction in ("none", "sum", "mean")
                 and target.shape == input.shape[:-1])
    if not supported:
        return F.linear_cross_entropy(
            input, linear_weight, target, linear_bias=linear_bias, weight=weight,
            reduction=reduction, ignore_index=ignore_index, label_smoothing=label_smoothing)
    if input.shape[-1] != linear_weight.shape[-1]:
        raise RuntimeError("expected equal input and linear_weight last dimensions")
    unbatched = input.dim() == 1
    x = input.unsqueeze(0) if unbatched else input
    t = target.reshape(1) if unbatched else target
    out = _ChunkedLinearCrossEntropy.apply(
        x, linear_weight, linear_bias, t, weight, reduction,
        -100 if ignore_index is None else ignore_index, frozenset(bugs))
    return out.reshape(()) if unbatched and reduction == "none" else out


def with_bug(bug: str):
    """A broken module's ``linear_cross_entropy``: the chunked kernel with ``bug`` switched on
    (off in a control run, see :func:`lossproofs.broken._common.buggy`)."""
    def linear_cross_entropy(input, linear_weight, target, linear_bias=None, weight=None,
                             reduction="mean", ignore_index=None, label_smoothing=0.0):
        return chunked_linear_cross_entropy(
            input, linear_weight, target, linear_bias, weight, reduction, ignore_index,
            label_smoothing, bugs=buggy(bug))

    return linear_cross_entropy
