"""Valid cross-correlation and full convolution, the convolution layer built from them, and the
layer's hooks in the compiled loops (``kernels/_loops.py``).

Gradients and updates are apart: :func:`conv_gradient_add` sums a sample's filter and bias
gradients into arrays laid out as the parameters, :func:`conv_input_gradient` takes the input
gradient, and the SGD step is ``kernels.sgd.sgd_step`` over the parameters' flat region.
"""

from ._jit import jit
from .buffers import region

# The convolution's own slots of a compiled layer record's ``dims`` (fastcnn/layers/conv.py
# fills them): the input (depth, height, width), the filter size and count.
DEPTH, HEIGHT, WIDTH, SIZE, COUNT = range(5)


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
    instead of nine (the notebook's 3 x 3 filters; see the README's Speed section).
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
def _widen(g, width, gw):
    """``g`` (oh, ow) copied into rows as wide as the layer's input: ``gw[a * width + b] = g[a, b]``.

    ``gw`` is caller-made zeroed scratch of ``(oh - 1) * width + ow`` values. Its last ``width - ow``
    columns of every row but the last are never written, so they stay zero, and are zeroed once
    per scratch buffer instead of once per filter.

    A filter's gradient is a dot product of g with a shifted window of the input for each tap.
    Against widened rows every window is one contiguous run of the flat input, so each tap is a
    single dot product of ``gw.size`` values, not oh dot products of ow (26 values at MNIST size:
    mostly vector remainders). Callers widen each filter's g once, for all channels.
    """
    oh, ow = g.shape
    for a in range(oh):
        g_row, wide_row = g[a], gw[a * width : a * width + ow]
        for b in range(ow):
            wide_row[b] = g_row[b]


@jit(reassociate=True)
def _correlate2d_valid_accumulate(x, gw, f):
    """``f += signal.correlate2d(x, g, "valid")``: one sample's gradient of a filter (x the
    layer's input channel, g its output gradient, given widened by :func:`_widen`) added to ``f``;
    x (H, W) C-contiguous, f (s, s). The one place a filter gradient is summed."""
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
            f[u, v] += t0
            f[u, v + 1] += t1
            f[u, v + 2] += t2
            v += 3
        while v < s:
            o = u * width + v
            x0 = xf[o : o + length]
            t0 = zero
            for p in range(length):
                t0 += x0[p] * gw[p]
            f[u, v] += t0
            v += 1


@jit
def conv_gradient_add(x, d_output, d_filters, d_biases, wide):
    """``d_filters[i, j] += correlate2d(x[j], d_output[i], "valid")``, ``d_biases += d_output``.

    x (depth, H, W), d_output and d_biases (count, H-s+1, W-s+1), d_filters (count, depth, s, s),
    wide zeroed scratch of ``(oh - 1) * W + ow`` values (see :func:`_widen`). Zeroed sums get one sample's gradients (0 + t
    is t exactly); a batch's samples are added one after the other.
    """
    count, depth = d_filters.shape[0], d_filters.shape[1]
    width = x.shape[2]
    for i in range(count):
        g = d_output[i]
        _widen(g, width, wide)
        for j in range(depth):
            _correlate2d_valid_accumulate(x[j], wide, d_filters[i, j])
        # One loop over the whole (contiguous) image, not its short rows: the same sums.
        d_b = d_biases[i].reshape(-1)
        g_flat = g.reshape(-1)
        for a in range(g_flat.size):
            d_b[a] += g_flat[a]


@jit
def conv_input_gradient(d_output, filters, d_input):
    """``d_input[j] = sum_i convolve2d(d_output[i], filters[i, j], "full")``, summed over ``i``
    in order as the notebook does. d_output (count, H-s+1, W-s+1), filters (count, depth, s, s),
    d_input (depth, H, W), overwritten."""
    count, depth = filters.shape[0], filters.shape[1]
    d_input[:] = 0
    for i in range(count):
        for j in range(depth):
            _convolve2d_full_add(d_output[i], filters[i, j], d_input[j])


# --------------------------------------------------------------------------------------------------
# hooks of the compiled loops: one layer record ``L`` and the flat buffers (see kernels/_loops.py)


@jit
def _shapes(L):
    """The record's input, filters and output shapes."""
    d, h, w, s, c = L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH], L.dims[SIZE], L.dims[COUNT]
    return (d, h, w), (c, d, s, s), (c, h - s + 1, w - s + 1)


@jit
def _parameters(L, params):
    """The filters and the biases of record ``L`` in a buffer laid out as ``params``."""
    _, fs, os_ = _shapes(L)
    return params[L.p0 : L.p1].reshape(fs), params[L.p1 : L.p_end].reshape(os_)


@jit
def _zero_gradient(L, gparams):
    region = gparams[L.p0 : L.p_end]
    for i in range(region.size):
        region[i] = 0


@jit(inline=True)
def forward(L, params, acts, scratch, partial):
    xs, _, os_ = _shapes(L)
    filters, biases = _parameters(L, params)
    x = acts[L.x : L.x + L.in_size].reshape(xs)
    conv_forward(x, filters, biases, acts[L.y : L.y + L.out_size].reshape(os_))


@jit(inline=True)
def backward_first(L, params, gparams, acts, grads, scratch, rate, partial):
    """The parameters' gradient only: a first layer's input gradient is never read."""
    xs, _, os_ = _shapes(L)
    d_filters, d_biases = _parameters(L, gparams)
    _zero_gradient(L, gparams)
    x = acts[L.x : L.x + L.in_size].reshape(xs)
    g = grads[L.y : L.y + L.out_size].reshape(os_)
    conv_gradient_add(x, g, d_filters, d_biases, scratch[L.scratch : L.scratch_end])


@jit(inline=True)
def backward(L, params, gparams, acts, grads, scratch, rate, partial):
    xs, _, os_ = _shapes(L)
    filters, _ = _parameters(L, params)
    g = grads[L.y : L.y + L.out_size].reshape(os_)
    conv_input_gradient(g, filters, grads[L.x : L.x + L.in_size].reshape(xs))
    backward_first(L, params, gparams, acts, grads, scratch, rate, partial)


@jit(inline=True)
def forward_batch(L, params, acts, scratch, capacity, n):
    xs, _, os_ = _shapes(L)
    filters, biases = _parameters(L, params)
    x = region(acts, L.x, L.in_size, capacity, n)
    y = region(acts, L.y, L.out_size, capacity, n)
    for b in range(n):
        conv_forward(x[b].reshape(xs), filters, biases, y[b].reshape(os_))


@jit(inline=True)
def backward_first_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    """The batch's summed parameter gradients, sample after sample (one sample's input and output
    gradient stay in L1 while all its taps and its bias gradient are summed)."""
    xs, _, os_ = _shapes(L)
    d_filters, d_biases = _parameters(L, gparams)
    _zero_gradient(L, gparams)
    x = region(acts, L.x, L.in_size, capacity, n)
    g = region(grads, L.y, L.out_size, capacity, n)
    wide = scratch[L.scratch : L.scratch_end]
    for b in range(n):
        conv_gradient_add(x[b].reshape(xs), g[b].reshape(os_), d_filters, d_biases, wide)


@jit(inline=True)
def backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    xs, _, os_ = _shapes(L)
    filters, _ = _parameters(L, params)
    g = region(grads, L.y, L.out_size, capacity, n)
    d_x = region(grads, L.x, L.in_size, capacity, n)
    for b in range(n):
        conv_input_gradient(g[b].reshape(os_), filters, d_x[b].reshape(xs))
    backward_first_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
