"""Kernels over a mini-batch: every array has a leading batch axis B, as the samples of one SGD step.

Gradients and updates are apart: the gradient kernels sum the per-sample gradients of a batch into
caller-allocated arrays, and :func:`sgd_apply` then moves a parameter by ``rate`` times their mean.
The one exception is a dense layer's weights, which :func:`dense_sgd_batch` moves inside the
matrix product that sums their gradient (``blas.gemm_update``): that gradient is the size of the
weights, and writing it only to read it back was a pass over the largest array of the network.
The activation kernels of ``activation.py`` (``sigmoid``, ``sigmoid_backward``) already take arrays
of any shape, (B, n) included, so there is no batched copy of them here.

The dense kernels call BLAS through Numba's ``np.dot(a, b, out)`` (SciPy's OpenBLAS, reached through
``scipy.linalg.cython_blas``); it runs on as many threads as that OpenBLAS is set to, which
``threadpoolctl.threadpool_limits`` controls from Python like NumPy's own BLAS.
"""

import numpy as np

from ._jit import jit
from .blas import gemm_update
from .conv import (
    _convolve2d_full_add,
    _correlate2d_valid_sgd,
    _wide_scratch,
    _widen,
    conv_forward,
)


@jit
def conv_forward_batch(xs, filters, biases, out):
    """``out[b] = conv_forward(xs[b], filters, biases)`` for every b; the same numbers bit for bit.

    xs (B, depth, H, W), filters (count, depth, s, s), biases (count, H-s+1, W-s+1),
    out (B, count, H-s+1, W-s+1).
    """
    for b in range(xs.shape[0]):
        conv_forward(xs[b], filters, biases, out[b])


@jit
def conv_gradient_batch(xs, d_outputs, d_filters, d_biases):
    """``d_filters[i, j] += sum_b correlate2d(xs[b, j], d_outputs[b, i], "valid")``,
    ``d_biases += sum_b d_outputs[b]``: the batch's summed parameter gradients, accumulated.

    xs (B, depth, H, W), d_outputs (B, count, H-s+1, W-s+1), d_filters (count, depth, s, s),
    d_biases (count, H-s+1, W-s+1). Each sample's filter gradient is summed by
    ``conv._correlate2d_valid_sgd``, as ``conv.conv_sgd`` sums it, and added to the sums sample
    after sample: with B = 1 and zeroed accumulators the result is bit for bit the gradient
    ``conv_sgd`` applies.
    """
    batch = xs.shape[0]
    count, depth = d_filters.shape[0], d_filters.shape[1]
    minus_one = d_filters.dtype.type(-1)  # f - t * -1 is f + t exactly
    width = xs.shape[3]
    gw = _wide_scratch(d_outputs[0, 0], width)
    # Sample outermost: one sample's input and output gradient (16 kB in float32) stay in L1
    # while all its taps and its bias gradient are summed.
    for k in range(batch):
        for i in range(count):
            g = d_outputs[k, i]
            _widen(g, width, gw)
            for j in range(depth):
                _correlate2d_valid_sgd(xs[k, j], gw, d_filters[i, j], minus_one)
            # One loop over the whole (contiguous) image, not 26-value rows: the same sums.
            d_b = d_biases[i].reshape(-1)
            g_flat = g.reshape(-1)
            for a in range(g_flat.size):
                d_b[a] += g_flat[a]


@jit
def conv_input_gradient_batch(d_outputs, filters, d_inputs):
    """``d_inputs[b, j] = sum_i convolve2d(d_outputs[b, i], filters[i, j], "full")`` for every b.

    d_outputs (B, count, H-s+1, W-s+1), filters (count, depth, s, s), d_inputs (B, depth, H, W),
    overwritten. Same order of sums as ``conv.conv_backward_sgd``, so each sample's rows are its
    ``d_input`` bit for bit.
    """
    count, depth = filters.shape[0], filters.shape[1]
    d_inputs[:] = 0
    for b in range(d_outputs.shape[0]):
        for i in range(count):
            for j in range(depth):
                _convolve2d_full_add(d_outputs[b, i], filters[i, j], d_inputs[b, j])


@jit
def dense_forward_batch(xs, weights, biases, out):
    """``out = xs @ weights.T + biases.T``: each row is ``np.dot(weights, x) + biases`` for one x.

    xs (B, n), weights (m, n), biases of m elements ((m, 1) as the layer keeps them, or (m,)),
    out (B, m). One BLAS GEMM into scratch holding ``out.T``, then out = its transpose + biases.
    """
    # weights @ xs.T, not xs @ weights.T straight into out: the same product, which OpenBLAS on
    # two threads splits better, 5-20 % faster at B = 32-64 on the MNIST layer (measured: float32
    # B = 32 6.5 -> 5.1 us a sample, float64 B = 64 10.9 -> 9.0 us); on one thread the two run
    # alike. Transposing the small (m, B) result back costs well under 1 % of that.
    yt = np.empty((weights.shape[0], xs.shape[0]), out.dtype)
    np.dot(weights, xs.T, yt)
    bf = biases.reshape(-1)
    for b in range(out.shape[0]):
        o = out[b]
        for i in range(o.size):
            o[i] = yt[i, b] + bf[i]


@jit
def dense_input_gradient_batch(d_outputs, weights, d_inputs):
    """``d_inputs = d_outputs @ weights``: each row is ``weights.T @ d_output`` for one sample.

    d_outputs (B, m), weights (m, n), d_inputs (B, n), overwritten. One BLAS GEMM.
    """
    np.dot(d_outputs, weights, d_inputs)


@jit
def dense_gradient_batch(xs, d_outputs, d_weights, d_biases):
    """``d_weights = d_outputs.T @ xs``, ``d_biases = d_outputs.sum(0)``: the batch's summed
    parameter gradients, overwritten (not accumulated: a dense layer has one GEMM per batch).

    xs (B, n), d_outputs (B, m), d_weights (m, n), d_biases of m elements ((m, 1) or (m,)).
    """
    np.dot(d_outputs.T, xs, d_weights)
    _bias_sums(d_outputs, d_biases)


@jit
def dense_sgd_batch(xs, d_outputs, weights, d_biases, count, rate):
    """``weights -= (d_outputs.T @ xs) * (rate / count)`` in one BLAS gemm that adds its product to
    ``weights`` (no gradient matrix is made), and ``d_biases = d_outputs.sum(0)``, for
    :func:`sgd_apply` to apply with the other sums.

    Shapes as :func:`dense_gradient_batch`. The weights' step is rounded as BLAS rounds
    ``w + alpha * t`` with ``alpha = -(rate / count)``, not as ``sgd_apply``'s
    ``w - (t / count) * rate``: the same mean gradient to the last bits.
    """
    gemm_update(d_outputs.T, xs, weights, -(rate / count))
    _bias_sums(d_outputs, d_biases)


@jit
def _bias_sums(d_outputs, d_biases):
    """``d_biases = d_outputs.sum(0)``, summed sample after sample; d_biases of m elements."""
    db = d_biases.reshape(-1)
    db[:] = 0
    for b in range(d_outputs.shape[0]):
        g = d_outputs[b]
        for i in range(g.size):
            db[i] += g[i]


@jit
def mse_batch(predicted, actual, losses, d_outputs):
    """``losses[b] = mse(predicted[b], actual[b])``, ``d_outputs[b] = d_mse(predicted[b], actual[b])``.

    predicted, actual and d_outputs (B, m); losses (B,) float64. Each loss is summed in float64 as
    ``np.mean`` does; ``d_mse = 2 * (predicted - actual) / m`` as the seed writes it. A caller that
    wants PyTorch's ``MSELoss()`` (the mean over the batch) takes ``losses.mean()``; its gradient is
    the mean of these rows, which :func:`sgd_apply` takes at the end.
    """
    m = predicted.shape[1]
    two = d_outputs.dtype.type(2)
    size = d_outputs.dtype.type(m)
    for b in range(predicted.shape[0]):
        p = predicted[b]
        y = actual[b]
        total = 0.0
        for i in range(m):
            e = y[i] - p[i]
            total += e * e
        losses[b] = total / m
        g = d_outputs[b]
        for i in range(m):
            g[i] = two * (p[i] - y[i]) / size


@jit
def sgd_apply(params, grad_sums, count, rate):
    """``params -= (grad_sums / count) * rate``: one SGD step by the mean of ``count`` gradients.

    params and grad_sums of one shape and dtype, C-contiguous; count a positive integer; each
    operation rounded in the parameters' dtype. This is the scipy oracle's ``p -= mean_grad * rate``
    with ``mean_grad = grad_sums / count``, and PyTorch's ``p.add_(grad, alpha=-lr)`` (``p - lr * grad``,
    the same product) given the same mean gradient. PyTorch's own ``grad`` differs in its last bits:
    ``MSELoss()`` folds ``1 / B`` into the loss gradient before the sums instead of dividing after.
    With ``count = 1`` this is the seed's ``p -= g * rate`` bit for bit (``g / 1`` is exact).
    """
    pf = params.reshape(-1)
    gf = grad_sums.reshape(-1)
    n = pf.dtype.type(count)
    r = pf.dtype.type(rate)
    for i in range(pf.size):
        pf[i] -= (gf[i] / n) * r
