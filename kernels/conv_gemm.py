"""The padded convolution's mini-batch path as matrix products (kind ``"conv_padded"``'s batch
hooks): per sample, one BLAS ``gemm`` of the filters with the input's wide columns for the forward
pass, one for the filters' gradient and one for the columns' gradient, folded back onto the input.

Why: a 5 x 5 filter over depth 6 is 150 products an output, which BLAS does at close to a core's
peak on (count, 150) x (150, pixels) matrices, where a loop over taps streams the input 150 times.
The per-sample loop keeps the direct loops (``conv_padded.py``): one sample's matrices are too
small for BLAS to pay for its calls. Sums run in BLAS's order, not the reference's (float64 within
1e-12, as every kernel here).

Wide columns: over the padded input ``xp`` (depth, Hp, Wp) flattened, the window of tap
``(j, u, v)`` for output ``(a, c)`` is ``xp[j, a + u, c + v]``, at flat index ``j*Hp*Wp + u*Wp + v
+ (a*Wp + c)``. So the row of the columns for tap (j, u, v) is one contiguous run of the flat input,
``length = (oh - 1) * Wp + ow`` values long, if each output row is taken as wide as an input row:
column ``a * Wp + c`` for c < ow is output (a, c), the ``Wp - ow`` columns after it are not
outputs. Building the columns is then ``depth * s * s`` copies of one run each (an im2col of
(a, c) pairs was ow-long copies: 3x slower at LeNet's 10 x 10 outputs), the products carry the
few extra columns (36 % more at LeNet's second layer), and the output gradient is widened with
zeros in them, so they add nothing to any gradient.
"""

import numpy as np

from ._jit import jit
from .buffers import region
from .conv_padded import COUNT, DEPTH, HEIGHT, PADDING, PER_FILTER, SIZE, WIDTH
from .correlate5 import crop2d, pad2d


@jit
def wide_columns(xp, s, length, col):
    """``col[(j * s + u) * s + v] = xp.flat[j*Hp*Wp + u*Wp + v :][:length]`` (see the module's
    docstring); xp (depth, Hp, Wp) C-contiguous, col (depth * s * s, length)."""
    depth, hp, wp = xp.shape
    flat = xp.reshape(-1)
    for j in range(depth):
        for u in range(s):
            for v in range(s):
                start = j * hp * wp + u * wp + v
                src = flat[start : start + length]
                row = col[(j * s + u) * s + v]
                for q in range(length):
                    row[q] = src[q]


@jit
def fold_columns(d_col, s, length, d_xp):
    """The transpose of :func:`wide_columns`: ``d_xp`` (depth, Hp, Wp) = the sum of every entry of
    ``d_col`` onto the input value its column read."""
    depth, hp, wp = d_xp.shape
    flat = d_xp.reshape(-1)
    for k in range(flat.size):
        flat[k] = 0
    for j in range(depth):
        for u in range(s):
            for v in range(s):
                start = j * hp * wp + u * wp + v
                dst = flat[start : start + length]
                row = d_col[(j * s + u) * s + v]
                for q in range(length):
                    dst[q] += row[q]


@jit
def _geometry(L):
    """(depth, H, W), (depth, Hp, Wp), s, count, p, oh, ow, k = depth * s * s, the columns'
    length, per-filter biases."""
    d, h, w = L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH]
    s, c, p = L.dims[SIZE], L.dims[COUNT], L.dims[PADDING]
    hp, wp = h + 2 * p, w + 2 * p
    oh, ow = hp - s + 1, wp - s + 1
    length = (oh - 1) * wp + ow
    return (d, h, w), (d, hp, wp), s, c, p, oh, ow, d * s * s, length, L.dims[PER_FILTER] == 1


@jit
def _buffers(L, scratch):
    """The record's scratch, from its start: the padded input, the columns, the widened output
    gradient (zero between its rows: only its outputs' columns are ever written), the columns'
    gradient, the padded input's gradient, one sample's filter gradient transposed;
    ``fastcnn/layers/conv.py`` sizes it."""
    _, xps, _s, count, _, _, _, k, length, _ = _geometry(L)
    padded = xps[0] * xps[1] * xps[2]
    a = L.scratch
    b = a + padded
    c = b + k * length
    d = c + count * length
    e = d + k * length
    xp = scratch[a:b].reshape(xps)
    col = scratch[b:c].reshape((k, length))
    g_wide = scratch[c:d].reshape((count, length))
    d_col = scratch[d:e].reshape((k, length))
    d_xp = scratch[e : e + padded].reshape(xps)
    d_filters_t = scratch[e + padded : e + padded + k * count].reshape((k, count))
    return xp, col, g_wide, d_col, d_xp, d_filters_t


@jit
def _columns(L, scratch, x):
    """Sample ``x``'s wide columns in the scratch (padding it first)."""
    xs, _, s, _, p, _, _, _, length, _ = _geometry(L)
    xp, col, _, _, _, _ = _buffers(L, scratch)
    x = x.reshape(xs)
    if p > 0:
        pad2d(x, p, xp)
        wide_columns(xp, s, length, col)
    else:
        wide_columns(x, s, length, col)
    return col


@jit(inline=True)
def forward_batch(L, params, acts, scratch, capacity, n):
    _, xps, _, count, _, oh, ow, k, _length, per_filter = _geometry(L)
    wp = xps[2]
    filters = params[L.p0 : L.p1].reshape((count, k))
    biases = params[L.p1 : L.p_end]
    x = region(acts, L.x, L.in_size, capacity, n)
    y = region(acts, L.y, L.out_size, capacity, n)
    _, _, g_wide, _, _, _ = _buffers(L, scratch)
    for b in range(n):
        col = _columns(L, scratch, x[b])
        # The wide outputs, in the gradient's scratch (the backward pass writes it afresh); the
        # columns between output rows are then left untouched, as the gradient needs them zero.
        np.dot(filters, col, g_wide)
        out = y[b].reshape((count, oh, ow))
        for i in range(count):
            for a in range(oh):
                src, dst = g_wide[i, a * wp : a * wp + ow], out[i, a]
                if per_filter:
                    bias = biases[i]
                    for c in range(ow):
                        dst[c] = src[c] + bias
                else:
                    own = biases[(i * oh + a) * ow : (i * oh + a + 1) * ow]
                    for c in range(ow):
                        dst[c] = src[c] + own[c]
    # Zero the widened rows' gaps again: the forward pass wrote non-outputs there.
    for i in range(count):
        for a in range(oh - 1):
            gap = g_wide[i, a * wp + ow : (a + 1) * wp]
            for c in range(gap.size):
                gap[c] = 0


@jit
def _widen(g, count, oh, ow, wp, g_wide):
    """Sample's output gradient (count * oh * ow,) into the wide rows (gaps untouched, zero)."""
    for i in range(count):
        for a in range(oh):
            src = g[(i * oh + a) * ow : (i * oh + a + 1) * ow]
            dst = g_wide[i, a * wp : a * wp + ow]
            for c in range(ow):
                dst[c] = src[c]


@jit(inline=True)
def backward_first_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    """The batch's summed filter and bias gradients: one gemm a sample, accumulating."""
    _, xps, _, count, _, oh, ow, k, _, per_filter = _geometry(L)
    pixels = oh * ow
    d_filters = gparams[L.p0 : L.p1].reshape((count, k))
    d_biases = gparams[L.p1 : L.p_end]
    for q in range(L.p0, L.p_end):
        gparams[q] = 0
    x = region(acts, L.x, L.in_size, capacity, n)
    g = region(grads, L.y, L.out_size, capacity, n)
    _, _, g_wide, _, _, d_filters_t = _buffers(L, scratch)
    for b in range(n):
        col = _columns(L, scratch, x[b])
        _widen(g[b], count, oh, ow, xps[2], g_wide)
        # As its transpose, (k, length) @ (length, count): BLAS ran g_wide @ col.T, the long
        # operand transposed, at 0.6x the speed (LeNet's second layer, float32).
        np.dot(col, g_wide.T, d_filters_t)
        for i in range(count):
            row = d_filters[i]
            for q in range(k):
                row[q] += d_filters_t[q, i]
        g_b = g[b]
        for i in range(count):
            row = g_b[i * pixels : (i + 1) * pixels]
            if per_filter:
                total = row.dtype.type(0)
                for q in range(pixels):
                    total += row[q]
                d_biases[i] += total
            else:
                own = d_biases[i * pixels : (i + 1) * pixels]
                for q in range(pixels):
                    own[q] += row[q]


@jit(inline=True)
def backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    xs, xps, s, count, p, oh, ow, k, length, _ = _geometry(L)
    filters = params[L.p0 : L.p1].reshape((count, k))
    g = region(grads, L.y, L.out_size, capacity, n)
    d_x = region(grads, L.x, L.in_size, capacity, n)
    _, _, g_wide, d_col, d_xp, _ = _buffers(L, scratch)
    for b in range(n):
        _widen(g[b], count, oh, ow, xps[2], g_wide)
        np.dot(filters.T, g_wide, d_col)
        if p > 0:
            fold_columns(d_col, s, length, d_xp)
            crop2d(d_xp, p, d_x[b].reshape(xs))
        else:
            fold_columns(d_col, s, length, d_x[b].reshape(xs))
    backward_first_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
