"""Valid cross-correlation and full convolution, and the convolution layer built from them."""

from ._jit import jit


@jit
def _correlate2d_valid_add(x, k, out):
    """``out += signal.correlate2d(x, k, "valid")``; x (H, W), k (kh, kw), out (H-kh+1, W-kw+1)."""
    kh, kw = k.shape
    oh, ow = out.shape
    # Filter taps outermost, output columns innermost: the inner loop is a contiguous axpy that
    # vectorises without reordering any sum.
    for u in range(kh):
        for v in range(kw):
            tap = k[u, v]
            for i in range(oh):
                for j in range(ow):
                    out[i, j] += x[i + u, j + v] * tap


@jit
def _convolve2d_full_add(g, k, out):
    """``out += signal.convolve2d(g, k, "full")``; g (h, w), k (kh, kw), out (h+kh-1, w+kw-1)."""
    kh, kw = k.shape
    gh, gw = g.shape
    for u in range(kh):
        for v in range(kw):
            tap = k[u, v]
            for i in range(gh):
                for j in range(gw):
                    out[i + u, j + v] += g[i, j] * tap


@jit
def correlate2d_valid(x, k, out):
    """``signal.correlate2d(x, k, "valid")``; x (H, W), k (kh, kw), out (H-kh+1, W-kw+1)."""
    out[:] = 0
    _correlate2d_valid_add(x, k, out)


@jit
def convolve2d_full(g, k, out):
    """``signal.convolve2d(g, k, "full")``; g (h, w), k (kh, kw), out (h+kh-1, w+kw-1)."""
    out[:] = 0
    _convolve2d_full_add(g, k, out)


@jit
def conv_forward(x, filters, biases, out):
    """``out[i] = biases[i] + sum_j correlate2d(x[j], filters[i, j], "valid")``.

    x (depth, H, W), filters (count, depth, s, s), biases and out (count, H-s+1, W-s+1).
    """
    count, depth = filters.shape[0], filters.shape[1]
    oh, ow = out.shape[1], out.shape[2]
    for i in range(count):
        # A loop, not `out[i] = biases[i]`: an array assignment makes Numba compile its broadcast
        # check, whose error message costs seconds of compile on a cold cache.
        for a in range(oh):
            for b in range(ow):
                out[i, a, b] = biases[i, a, b]
        for j in range(depth):
            _correlate2d_valid_add(x[j], filters[i, j], out[i])


@jit
def conv_sgd(x, filters, biases, d_output, rate, row):
    """``filters[i, j] -= correlate2d(x[j], d_output[i], "valid") * rate``, ``biases -= d_output * rate``.

    x (depth, H, W), filters (count, depth, s, s), biases and d_output (count, H-s+1, W-s+1);
    ``row`` is scratch of shape (W-s+1,).
    """
    count, depth, s = filters.shape[0], filters.shape[1], filters.shape[2]
    oh, ow = d_output.shape[1], d_output.shape[2]
    for i in range(count):
        g = d_output[i]
        for j in range(depth):
            f = filters[i, j]
            xj = x[j]
            for u in range(s):
                for v in range(s):
                    # d_filter[u, v] = sum_{a,b} x[u+a, v+b] g[a, b], summed down each column b
                    # first so the inner loop vectorises without a reassociation flag.
                    row[:] = 0
                    for a in range(oh):
                        for b in range(ow):
                            row[b] += xj[u + a, v + b] * g[a, b]
                    f[u, v] -= row.sum() * rate
        b_i = biases[i]
        for a in range(oh):
            for b in range(ow):
                b_i[a, b] -= g[a, b] * rate


@jit
def conv_backward_sgd(x, filters, biases, d_output, rate, d_input, row):
    """The convolution layer's backward pass fused with its SGD step, in place.

    ``d_input[j] = sum_i convolve2d(d_output[i], filters[i, j], "full")`` from the filters as they
    were, then the update of :func:`conv_sgd`. d_input (depth, H, W), the rest as there.
    """
    count, depth = filters.shape[0], filters.shape[1]
    d_input[:] = 0
    for i in range(count):
        for j in range(depth):
            _convolve2d_full_add(d_output[i], filters[i, j], d_input[j])
    conv_sgd(x, filters, biases, d_output, rate, row)
