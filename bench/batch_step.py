"""Prototype (not library code) of one mini-batch SGD step of the notebook's MNIST network, kernel
by kernel, on the kernels the compiled mini-batch loop calls: where the time goes.

The network: Convolution((1, 28, 28), 3, 5), Sigmoid, Reshape, Linear(3380, 100), Sigmoid,
Linear(100, 10), Sigmoid, mse. One step over a batch of B samples: the forward pass of the whole
batch, the per-sample mse and its gradient, the backward pass summing parameter gradients over the
batch, then every parameter moves by ``rate`` times the mean gradient (:func:`sgd_apply`), the
semantics of PyTorch's ``MSELoss()`` + ``SGD``.

:func:`oracle_step` is the same step from the notebook's own NumPy/SciPy expressions, per sample,
gradients averaged; :func:`check` compares the two.
"""

from dataclasses import dataclass
from time import perf_counter

import numpy as np
from scipy import signal

from fastcnn.functions import d_mse, d_sigmoid, mse, sigmoid
from fastcnn.kernels import activation, conv, dense, losses, sgd
from fastcnn.kernels._jit import jit
from fastcnn.layers.conv import wide_size

DEPTH, SIDE, SIZE, COUNT, HIDDEN, CLASSES = 1, 28, 3, 5, 100, 10
OUT = SIDE - SIZE + 1
FLAT = COUNT * OUT * OUT  # 3380
WIDE = wide_size(SIDE, SIDE, SIZE)  # the filter gradient's widened scratch


@dataclass
class Params:
    filters: np.ndarray  # (5, 1, 3, 3)
    conv_biases: np.ndarray  # (5, 26, 26)
    w1: np.ndarray  # (100, 3380)
    b1: np.ndarray  # (100, 1)
    w2: np.ndarray  # (10, 100)
    b2: np.ndarray  # (10, 1)

    def arrays(self):
        return (self.filters, self.conv_biases, self.w1, self.b1, self.w2, self.b2)

    def copy(self):
        return Params(*(a.copy() for a in self.arrays()))


# The stages as the loops' hooks run them, one call each.
@jit
def _conv_forward_batch(xs, filters, biases, out):
    for b in range(xs.shape[0]):
        conv.conv_forward(xs[b], filters, biases, out[b])


@jit
def _dense_forward_batch(xs, weights, biases, out):
    scratch = np.empty(weights.shape[0] * xs.shape[0], out.dtype)
    dense.dense_forward_batch(xs, weights, biases, out, scratch)


_dense_input_gradient_batch = dense.dense_input_gradient_batch


@jit
def _dense_gradient_batch(xs, d_outputs, d_weights, d_biases):
    np.dot(d_outputs.T, xs, d_weights)
    db = d_biases.reshape(-1)
    db[:] = 0
    for b in range(d_outputs.shape[0]):
        for i in range(db.size):
            db[i] += d_outputs[b, i]


@jit
def _mse_batch(predicted, actual, out, d_outputs):
    for b in range(predicted.shape[0]):
        out[b] = losses.mse(predicted[b], actual[b], d_outputs[b])


@jit
def _conv_gradient_batch(xs, d_outputs, d_filters, d_biases):
    wide = np.zeros(WIDE, xs.dtype)
    for b in range(xs.shape[0]):
        conv.conv_gradient_add(xs[b], d_outputs[b], d_filters, d_biases, wide)


@jit
def _sgd_apply(params, grads, count, rate):
    sgd.sgd_step(params.reshape(-1), grads.reshape(-1), count, rate)


def init(dtype, seed=0):
    """Parameters drawn as the notebook draws them (standard normal), in ``dtype``."""
    rng = np.random.default_rng(seed)
    shapes = [(COUNT, DEPTH, SIZE, SIZE), (COUNT, OUT, OUT), (HIDDEN, FLAT), (HIDDEN, 1)]
    shapes += [(CLASSES, HIDDEN), (CLASSES, 1)]
    return Params(*(rng.standard_normal(s).astype(dtype) for s in shapes))


class Scratch:
    """Every activation, gradient and accumulator of a step for batches of up to ``size``."""

    def __init__(self, size, dtype):
        e = lambda *s: np.empty(s, dtype)  # noqa: E731
        self.a1, self.s1 = e(size, COUNT, OUT, OUT), e(size, COUNT, OUT, OUT)
        self.a2, self.s2 = e(size, HIDDEN), e(size, HIDDEN)
        self.a3, self.s3 = e(size, CLASSES), e(size, CLASSES)
        self.g3, self.g2, self.g1 = e(size, CLASSES), e(size, HIDDEN), e(size, COUNT, OUT, OUT)
        self.losses = np.empty(size)
        self.d_filters, self.d_conv_biases = e(COUNT, DEPTH, SIZE, SIZE), e(COUNT, OUT, OUT)
        self.d_w1, self.d_b1 = e(HIDDEN, FLAT), e(HIDDEN, 1)
        self.d_w2, self.d_b2 = e(CLASSES, HIDDEN), e(CLASSES, 1)


STAGES = (
    "conv forward",
    "sigmoids",
    "dense forward GEMMs",
    "loss",
    "dense weight-gradient GEMMs",
    "dense input-gradient GEMMs",
    "conv gradient",
    "sgd apply",
)


def step(p, s, xs, ys, rate, times=None):
    """One mini-batch step in Python, kernel by kernel; ``times[stage] += seconds`` when given.
    xs (B, 1, 28, 28), ys (B, 10), both C-contiguous in the parameters' dtype. Returns the mean loss.
    """
    n = xs.shape[0]
    a1, s1, a2, s2, a3, s3 = s.a1[:n], s.s1[:n], s.a2[:n], s.s2[:n], s.a3[:n], s.s3[:n]
    g3, g2, g1, losses = s.g3[:n], s.g2[:n], s.g1[:n], s.losses[:n]
    flat_s1, flat_g1 = s1.reshape(n, FLAT), g1.reshape(n, FLAT)
    clock = perf_counter()

    def lap(stage):
        nonlocal clock
        if times is not None:
            now = perf_counter()
            times[stage] += now - clock
            clock = now

    _conv_forward_batch(xs, p.filters, p.conv_biases, a1)
    lap("conv forward")
    activation.sigmoid(a1, s1)
    lap("sigmoids")
    _dense_forward_batch(flat_s1, p.w1, p.b1, a2)
    lap("dense forward GEMMs")
    activation.sigmoid(a2, s2)
    lap("sigmoids")
    _dense_forward_batch(s2, p.w2, p.b2, a3)
    lap("dense forward GEMMs")
    activation.sigmoid(a3, s3)
    lap("sigmoids")
    _mse_batch(s3, ys, losses, g3)
    lap("loss")
    activation.sigmoid_backward(a3, s3, g3, g3)
    lap("sigmoids")
    _dense_gradient_batch(s2, g3, s.d_w2, s.d_b2)
    lap("dense weight-gradient GEMMs")
    _dense_input_gradient_batch(g3, p.w2, g2)
    lap("dense input-gradient GEMMs")
    activation.sigmoid_backward(a2, s2, g2, g2)
    lap("sigmoids")
    _dense_gradient_batch(flat_s1, g2, s.d_w1, s.d_b1)
    lap("dense weight-gradient GEMMs")
    _dense_input_gradient_batch(g2, p.w1, flat_g1)
    lap("dense input-gradient GEMMs")
    activation.sigmoid_backward(a1, s1, g1, g1)
    lap("sigmoids")
    s.d_filters[:] = 0
    s.d_conv_biases[:] = 0
    _conv_gradient_batch(xs, g1, s.d_filters, s.d_conv_biases)
    lap("conv gradient")
    for param, grad in zip(p.arrays(), _grads(s), strict=True):
        _sgd_apply(param, grad, n, rate)
    lap("sgd apply")
    return losses.mean()


def _grads(s):
    return (s.d_filters, s.d_conv_biases, s.d_w1, s.d_b1, s.d_w2, s.d_b2)


@jit(cache=False)
def _epoch(filters, conv_biases, w1, b1, w2, b2, scratch, grads, xs, ys, size, rate, losses):
    """:func:`step` over consecutive batches of ``size`` (the last may be shorter), compiled."""
    a1, s1, a2, s2, a3, s3, g3, g2, g1 = scratch
    d_filters, d_conv_biases, d_w1, d_b1, d_w2, d_b2 = grads
    total = xs.shape[0]
    for start in range(0, total, size):
        n = min(size, total - start)
        x, y = xs[start : start + n], ys[start : start + n]
        flat_s1 = s1[:n].reshape((n, FLAT))
        flat_g1 = g1[:n].reshape((n, FLAT))
        _conv_forward_batch(x, filters, conv_biases, a1[:n])
        activation.sigmoid(a1[:n], s1[:n])
        _dense_forward_batch(flat_s1, w1, b1, a2[:n])
        activation.sigmoid(a2[:n], s2[:n])
        _dense_forward_batch(s2[:n], w2, b2, a3[:n])
        activation.sigmoid(a3[:n], s3[:n])
        _mse_batch(s3[:n], y, losses[start : start + n], g3[:n])
        activation.sigmoid_backward(a3[:n], s3[:n], g3[:n], g3[:n])
        _dense_gradient_batch(s2[:n], g3[:n], d_w2, d_b2)
        _dense_input_gradient_batch(g3[:n], w2, g2[:n])
        activation.sigmoid_backward(a2[:n], s2[:n], g2[:n], g2[:n])
        _dense_gradient_batch(flat_s1, g2[:n], d_w1, d_b1)
        _dense_input_gradient_batch(g2[:n], w1, flat_g1)
        activation.sigmoid_backward(a1[:n], s1[:n], g1[:n], g1[:n])
        d_filters[:] = 0
        d_conv_biases[:] = 0
        _conv_gradient_batch(x, g1[:n], d_filters, d_conv_biases)
        _sgd_apply(filters, d_filters, n, rate)
        _sgd_apply(conv_biases, d_conv_biases, n, rate)
        _sgd_apply(w1, d_w1, n, rate)
        _sgd_apply(b1, d_b1, n, rate)
        _sgd_apply(w2, d_w2, n, rate)
        _sgd_apply(b2, d_b2, n, rate)


def epoch(p, s, xs, ys, size, rate):
    """One epoch of compiled mini-batch steps; returns the per-sample losses (float64)."""
    losses = np.empty(xs.shape[0])
    scratch = (s.a1, s.s1, s.a2, s.s2, s.a3, s.s3, s.g3, s.g2, s.g1)
    _epoch(*p.arrays(), scratch, _grads(s), xs, ys, size, rate, losses)
    return losses


def oracle_step(p, xs, ys, rate):
    """The same step from the notebook's expressions, sample by sample, float64 sums; the mean
    gradient then applied as ``p -= mean_grad * rate``. Returns the per-sample losses."""
    sums = [np.zeros(a.shape) for a in p.arrays()]
    losses = []
    for x, y in zip(xs, ys, strict=True):
        y = y.reshape(CLASSES, 1)
        a1 = p.conv_biases.astype(np.float64)
        for i in range(COUNT):
            a1[i] += signal.correlate2d(x[0], p.filters[i, 0], "valid")
        h1 = sigmoid(a1).reshape(FLAT, 1)
        a2 = np.dot(p.w1, h1) + p.b1
        h2 = sigmoid(a2)
        a3 = np.dot(p.w2, h2) + p.b2
        h3 = sigmoid(a3)
        losses.append(mse(h3, y))
        g3 = d_mse(h3, y) * d_sigmoid(a3)
        sums[4] += np.dot(g3, h2.T)
        sums[5] += g3
        g2 = np.dot(p.w2.T, g3) * d_sigmoid(a2)
        sums[2] += np.dot(g2, h1.T)
        sums[3] += g2
        g1 = (np.dot(p.w1.T, g2).reshape(a1.shape)) * d_sigmoid(a1)
        for i in range(COUNT):
            sums[0][i, 0] += signal.correlate2d(x[0], g1[i], "valid")
        sums[1] += g1
    for param, total in zip(p.arrays(), sums, strict=True):
        param -= (total / len(xs) * rate).astype(param.dtype)
    return np.array(losses)


def check(dtype=np.float64, size=7, seed=1):
    """Largest absolute difference of losses and updated parameters, prototype vs oracle, after
    two steps (the second on a shorter batch) from the same start."""
    rng = np.random.default_rng(seed)
    xs = rng.uniform(0, 1, (size + 3, DEPTH, SIDE, SIDE)).astype(dtype)
    ys = np.eye(CLASSES, dtype=dtype)[rng.integers(0, CLASSES, size + 3)]
    p = init(dtype, seed)
    for a in p.arrays():
        a *= 0.1  # keep the sigmoids off their flat ends, where every gradient is ~0
    q = p.copy()
    losses = epoch(p, Scratch(size, dtype), xs, ys, size, 0.5)
    oracle = oracle_step(q, xs[:size], ys[:size], 0.5)
    oracle = np.concatenate([oracle, oracle_step(q, xs[size:], ys[size:], 0.5)])
    worst = max(float(np.abs(a - b).max()) for a, b in zip(p.arrays(), q.arrays(), strict=True))
    return float(np.abs(losses - oracle).max()), worst
