"""Valid cross-correlation and full convolution, and the convolution layer built from them."""

import numpy as np

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
def _correlate3_rows(x, k, base, out):
    """``out = base + signal.correlate2d(x, k, "valid")`` for a 3 x 3 ``k``; ``base`` may be ``out``.

    x (H, W), k (3, 3), base and out (H-2, W-2). The nine taps stay in registers and each output
    sums its products in the order u, v (row by row), then adds ``base``: one pass over the output
    instead of nine. Written for the notebook's 3 x 3 filters (2-3x faster than the generic loop).
    """
    oh, ow = out.shape
    k00, k01, k02 = k[0, 0], k[0, 1], k[0, 2]
    k10, k11, k12 = k[1, 0], k[1, 1], k[1, 2]
    k20, k21, k22 = k[2, 0], k[2, 1], k[2, 2]
    for a in range(oh):
        r0, r1, r2 = x[a], x[a + 1], x[a + 2]
        base_row, out_row = base[a], out[a]
        for b in range(ow):
            t = r0[b] * k00
            t += r0[b + 1] * k01
            t += r0[b + 2] * k02
            t += r1[b] * k10
            t += r1[b + 1] * k11
            t += r1[b + 2] * k12
            t += r2[b] * k20
            t += r2[b + 1] * k21
            t += r2[b + 2] * k22
            out_row[b] = t + base_row[b]


@jit
def conv_forward(x, filters, biases, out):
    """``out[i] = biases[i] + sum_j correlate2d(x[j], filters[i, j], "valid")``.

    x (depth, H, W), filters (count, depth, s, s), biases and out (count, H-s+1, W-s+1).
    """
    count, depth, s = filters.shape[0], filters.shape[1], filters.shape[2]
    oh, ow = out.shape[1], out.shape[2]
    for i in range(count):
        if s == 3:
            _correlate3_rows(x[0], filters[i, 0], biases[i], out[i])
            for j in range(1, depth):
                _correlate3_rows(x[j], filters[i, j], out[i], out[i])
            continue
        # A loop, not `out[i] = biases[i]`: an array assignment makes Numba compile its broadcast
        # check, whose error message costs seconds of compile on a cold cache.
        for a in range(oh):
            for b in range(ow):
                out[i, a, b] = biases[i, a, b]
        for j in range(depth):
            _correlate2d_valid_add(x[j], filters[i, j], out[i])


@jit(inline=True)
def _wide_scratch(g, width):
    """Zeroed scratch for :func:`_widen` of an output gradient ``g`` (oh, ow) against rows
    ``width`` long."""
    oh, ow = g.shape
    gw = np.empty((oh - 1) * width + ow, g.dtype)
    for p in range(gw.size):
        gw[p] = 0
    return gw


@jit(inline=True)
def _widen(g, width, gw):
    """``g`` (oh, ow) copied into rows as wide as the layer's input: ``gw[a * width + b] = g[a, b]``,
    into scratch from :func:`_wide_scratch`, whose last ``width - ow`` columns of every row but
    the last stay zero (nothing else writes them, so they are zeroed once, not per filter: half
    the time of a widening, measured).

    A filter's gradient is a dot product of g with a shifted window of the input for each tap.
    Against widened rows every window is one contiguous run of the flat input, so each tap is a
    single dot product of ``gw.size`` values, not oh dot products of ow (26 values at MNIST size:
    mostly vector remainders); 2-3x faster. Callers widen each filter's g once, for all channels.
    """
    oh, ow = g.shape
    for a in range(oh):
        g_row, wide_row = g[a], gw[a * width : a * width + ow]
        for b in range(ow):
            wide_row[b] = g_row[b]


@jit(reassociate=True)
def _correlate2d_valid_sgd(x, gw, f, rate):
    """``f -= signal.correlate2d(x, g, "valid") * rate``: a filter's gradient (x the layer's input
    channel, g its output gradient, given widened by :func:`_widen`) applied in place; x (H, W)
    C-contiguous, f (s, s).

    The one place the filter gradient is summed: ``conv_sgd`` passes the learning rate,
    ``gradient.conv_backward`` and ``batch.conv_gradient_batch`` pass ``-1`` (in f's dtype) to a
    zeroed or accumulating ``f`` (``f - t * -1`` is ``f + t`` exactly), so all three agree bit for bit.
    """
    width = x.shape[1]
    length = gw.size
    s = f.shape[1]
    xf = x.reshape(-1)
    zero = gw.dtype.type(0)
    for u in range(s):
        # Three taps v, v+1, v+2 per pass (one load of gw for three products), each a reassociated
        # dot product, which LLVM splits across vector lanes: the order of a sum of products is
        # free here (the scipy oracle sums in yet another order; float64 within 1e-12). Windows
        # as slices, not `xf[o + p]`: Numba's negative-index check on `o + p` made LLVM gather.
        v = 0
        while v + 3 <= s:
            o = u * width + v
            x0, x1, x2 = xf[o : o + length], xf[o + 1 : o + 1 + length], xf[o + 2 : o + 2 + length]
            t0, t1, t2 = zero, zero, zero
            for p in range(length):
                gp = gw[p]
                t0 += x0[p] * gp
                t1 += x1[p] * gp
                t2 += x2[p] * gp
            f[u, v] -= t0 * rate
            f[u, v + 1] -= t1 * rate
            f[u, v + 2] -= t2 * rate
            v += 3
        while v < s:
            o = u * width + v
            x0 = xf[o : o + length]
            t0 = zero
            for p in range(length):
                t0 += x0[p] * gw[p]
            f[u, v] -= t0 * rate
            v += 1


@jit
def conv_sgd(x, filters, biases, d_output, rate):
    """``filters[i, j] -= correlate2d(x[j], d_output[i], "valid") * rate``, ``biases -= d_output * rate``.

    x (depth, H, W), filters (count, depth, s, s), biases and d_output (count, H-s+1, W-s+1).
    """
    count, depth = filters.shape[0], filters.shape[1]
    oh, ow = d_output.shape[1], d_output.shape[2]
    gw = _wide_scratch(d_output[0], x.shape[2])
    for i in range(count):
        g = d_output[i]
        _widen(g, x.shape[2], gw)
        for j in range(depth):
            _correlate2d_valid_sgd(x[j], gw, filters[i, j], rate)
        b_i = biases[i]
        for a in range(oh):
            for b in range(ow):
                b_i[a, b] -= g[a, b] * rate


@jit
def conv_backward_sgd(x, filters, biases, d_output, rate, d_input):
    """The convolution layer's backward pass fused with its SGD step, in place.

    ``d_input[j] = sum_i convolve2d(d_output[i], filters[i, j], "full")`` from the filters as they
    were, then the update of :func:`conv_sgd`. d_input (depth, H, W), the rest as there.
    """
    count, depth = filters.shape[0], filters.shape[1]
    d_input[:] = 0
    for i in range(count):
        for j in range(depth):
            _convolve2d_full_add(d_output[i], filters[i, j], d_input[j])
    conv_sgd(x, filters, biases, d_output, rate)
