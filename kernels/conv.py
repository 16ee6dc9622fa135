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


@jit(reassociate=True)
def _correlate2d_valid_sgd(x, g, f, rate):
    """``f -= signal.correlate2d(x, g, "valid") * rate``: a filter's gradient (x the layer's input
    channel, g its output gradient) applied in place; x (H, W), g (H-s+1, W-s+1), f (s, s).

    The one place the filter gradient is summed: ``conv_sgd`` passes the learning rate,
    ``gradient.conv_backward`` and ``batch.conv_gradient_batch`` pass ``-1`` (in f's dtype) to a
    zeroed or accumulating ``f`` (``f - t * -1`` is ``f + t`` exactly), so all three agree bit for bit.
    """
    oh, ow = g.shape
    s = f.shape[1]
    zero = x.dtype.type(0)
    for u in range(s):
        # Three taps v, v+1, v+2 per pass over the rows (one load of g for three products), each a
        # reassociated dot product, which LLVM splits across vector lanes: the order of a sum of
        # products is free here (the scipy oracle sums in yet another order; float64 within 1e-12).
        v = 0
        while v + 3 <= s:
            t0, t1, t2 = zero, zero, zero
            for a in range(oh):
                xr = x[u + a]
                gr = g[a]
                for b in range(ow):
                    gb = gr[b]
                    t0 += xr[v + b] * gb
                    t1 += xr[v + 1 + b] * gb
                    t2 += xr[v + 2 + b] * gb
            f[u, v] -= t0 * rate
            f[u, v + 1] -= t1 * rate
            f[u, v + 2] -= t2 * rate
            v += 3
        while v < s:
            t0 = zero
            for a in range(oh):
                xr = x[u + a]
                gr = g[a]
                for b in range(ow):
                    t0 += xr[v + b] * gr[b]
            f[u, v] -= t0 * rate
            v += 1


@jit
def conv_sgd(x, filters, biases, d_output, rate, row):
    """``filters[i, j] -= correlate2d(x[j], d_output[i], "valid") * rate``, ``biases -= d_output * rate``.

    x (depth, H, W), filters (count, depth, s, s), biases and d_output (count, H-s+1, W-s+1);
    ``row`` is scratch of shape (W-s+1,), unused (kept so the callers' signature stays).
    """
    count, depth = filters.shape[0], filters.shape[1]
    oh, ow = d_output.shape[1], d_output.shape[2]
    for i in range(count):
        g = d_output[i]
        for j in range(depth):
            _correlate2d_valid_sgd(x[j], g, filters[i, j], rate)
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
