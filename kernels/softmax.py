"""Softmax and the losses: each loss kernel returns the sample's loss and writes its gradient.

All on 1-D arrays (a column vector's ``reshape(-1)``), one dtype per call; each loss is summed in
float64 whatever the dtype, as the compiled loops sum the seed's mse: each term rounded in the
dtype, then widened (``np.float64(...)`` says so, and keeps the sum in float64 when the kernels
run as Python under NUMBA_DISABLE_JIT, where ``0.0 + float32`` would stay float32).
"""

import numpy as np

from ._jit import jit
from .activation import exp
from .buffers import region

# fastcnn.functions' constants, repeated here because kernels never import fastcnn: PyTorch's
# BCELoss clamp of each log, and the floor of its backward's denominator (1e-12 as a float32).
# tests/test_kernels17.py checks that they equal fastcnn.functions'.
BCE_LOG_FLOOR = -100.0
BCE_EPSILON = float(np.float32(1e-12))


@jit
def _shifted_exp(x, out):
    """``out = exp(x - max(x))``; returns ``(max(x), sum(out))``, the sum in x's dtype in index
    order."""
    n = x.size
    m = x[0]
    for i in range(1, n):
        v = x[i]
        # NaN taken as the maximum, so that a NaN logit gives NaN everywhere, not a quiet 0.
        if v > m or v != v:
            m = v
    total = out.dtype.type(0)
    for i in range(n):
        e = exp(x[i] - m)
        out[i] = e
        total += e
    return m, total


@jit
def softmax(x, out):
    """``exp(x - max(x)) / sum(exp(x - max(x)))``: stable (every exponent <= 0, the sum >= 1)."""
    total = _shifted_exp(x, out)[1]
    for i in range(x.size):
        out[i] = out[i] / total


@jit
def log_softmax(x, out, log_out):
    """:func:`softmax` into ``out`` (the same values) and the stable log-softmax
    ``(x - max(x)) - log(sum(exp(x - max(x))))`` into ``log_out``, as the fused loss computes it."""
    m, total = _shifted_exp(x, out)
    log_total = np.log(total)
    for i in range(x.size):
        out[i] = out[i] / total
        log_out[i] = (x[i] - m) - log_total


@jit
def softmax_backward(y, d_output, out):
    """``y * (d_output - sum(d_output * y))`` given ``y = softmax(x)``: the Jacobian product
    (``fastcnn.reference.softmax_backward``)."""
    dot = out.dtype.type(0)
    for i in range(y.size):
        dot += d_output[i] * y[i]
    for i in range(y.size):
        out[i] = y[i] * (d_output[i] - dot)


@jit
def softmax_cross_entropy(logits, actual, probs, d_logits):
    """Softmax then cross-entropy, fused: returns ``-sum(actual * log_softmax(logits))`` (the
    log-sum-exp form, finite for logits of ±1000), writes ``probs = softmax(logits)`` and
    ``d_logits = probs - actual`` (exact, the reference's ``softmax_cross_entropy_backward``)."""
    m, total = _shifted_exp(logits, probs)
    log_total = np.log(total)
    loss = 0.0
    for i in range(logits.size):
        p = probs[i] / total
        probs[i] = p
        d_logits[i] = p - actual[i]
        loss += np.float64(actual[i] * ((logits[i] - m) - log_total))
    return -loss


@jit
def cross_entropy(predicted, actual, d_predicted):
    """Returns ``-sum(actual * log(predicted))`` (terms with a zero target count 0) and writes
    ``d_predicted = -actual / predicted`` (0 where ``actual`` is 0): ``fastcnn.cross_entropy`` and
    ``d_cross_entropy`` on probabilities that did not come from a fused Softmax."""
    zero = d_predicted.dtype.type(0)
    loss = 0.0
    for i in range(predicted.size):
        a = actual[i]
        if a != zero:
            loss += np.float64(a * np.log(predicted[i]))
            d_predicted[i] = -a / predicted[i]
        else:
            d_predicted[i] = zero
    return -loss


@jit
def binary_cross_entropy(predicted, actual, d_predicted):
    """Returns PyTorch's ``BCELoss`` (the mean of ``(y - 1) * max(log1p(-p), -100) - y *
    max(log(p), -100)``) and writes its gradient ``(p - y) / max((1 - p) * p, 1e-12) / size``
    (``fastcnn.binary_cross_entropy`` / ``d_binary_cross_entropy``)."""
    one = d_predicted.dtype.type(1)
    floor = d_predicted.dtype.type(BCE_LOG_FLOOR)
    epsilon = d_predicted.dtype.type(BCE_EPSILON)
    n = predicted.size
    size = d_predicted.dtype.type(n)
    total = 0.0
    for i in range(n):
        p, y = predicted[i], actual[i]
        # `floor if l < floor else l`: np.maximum's NaN propagation (a NaN p gives a NaN loss).
        log_p = np.log(p)
        log_p = floor if log_p < floor else log_p
        log_q = np.log1p(-p)
        log_q = floor if log_q < floor else log_q
        total += np.float64((y - one) * log_q - y * log_p)
        w = (one - p) * p
        d_predicted[i] = (p - y) / (epsilon if w < epsilon else w) / size
    return total / n


# --------------------------------------------------------------------------------------------------
# hooks of the compiled loops (a Softmax layer: no parameters; see kernels/_loops.py). Followed by
# the cross-entropy loss, the loops call softmax_cross_entropy on this layer's input instead of its
# backward hook (the registry's fused losses).


@jit(inline=True)
def forward(L, params, acts, scratch, partial):
    softmax(acts[L.x : L.x + L.in_size], acts[L.y : L.y + L.out_size])


@jit(inline=True)
def backward(L, params, gparams, acts, grads, scratch, rate, partial):
    y = acts[L.y : L.y + L.out_size]
    softmax_backward(y, grads[L.y : L.y + L.out_size], grads[L.x : L.x + L.in_size])


@jit(inline=True)
def forward_batch(L, params, acts, scratch, capacity, n):
    x, y = region(acts, L.x, L.in_size, capacity, n), region(acts, L.y, L.out_size, capacity, n)
    for b in range(n):
        softmax(x[b], y[b])


@jit(inline=True)
def backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    y = region(acts, L.y, L.out_size, capacity, n)
    g = region(grads, L.y, L.out_size, capacity, n)
    d_x = region(grads, L.x, L.in_size, capacity, n)
    for b in range(n):
        softmax_backward(y[b], g[b], d_x[b])
