"""Layer gradients without the SGD step: what the fused ``*_backward_sgd`` kernels compute before
they update, summed in the same order, so ``gradient`` then ``p -= g * rate`` gives their numbers."""

from ._jit import jit
from .conv import _convolve2d_full_add, _correlate2d_valid_sgd, _wide_scratch, _widen


@jit
def dense_backward(weights, x, d_output, d_weights, d_input):
    """``d_weights = d_output @ x.T``, ``d_input = weights.T @ d_output``.

    weights and d_weights (m, n), x and d_input (n, 1), d_output (m, 1).
    """
    m, n = weights.shape
    d_input[:] = 0
    for o in range(m):
        g = d_output[o, 0]
        w = weights[o]
        dw = d_weights[o]
        for i in range(n):
            d_input[i, 0] += w[i] * g
            dw[i] = g * x[i, 0]


@jit
def conv_backward(x, filters, d_output, d_filters, d_input):
    """``d_filters[i, j] = correlate2d(x[j], d_output[i], "valid")``,
    ``d_input[j] = sum_i convolve2d(d_output[i], filters[i, j], "full")``.

    x and d_input (depth, H, W), filters and d_filters (count, depth, s, s), d_output
    (count, H-s+1, W-s+1). Summed as ``conv_sgd`` does (the same helper,
    ``conv._correlate2d_valid_sgd``).
    """
    count, depth, s = filters.shape[0], filters.shape[1], filters.shape[2]
    d_input[:] = 0
    for i in range(count):
        for j in range(depth):
            _convolve2d_full_add(d_output[i], filters[i, j], d_input[j])
    minus_one = d_filters.dtype.type(-1)
    gw = _wide_scratch(d_output[0], x.shape[2])
    for i in range(count):
        _widen(d_output[i], x.shape[2], gw)
        for j in range(depth):
            f = d_filters[i, j]
            for u in range(s):
                for v in range(s):
                    f[u, v] = 0
            _correlate2d_valid_sgd(x[j], gw, f, minus_one)
