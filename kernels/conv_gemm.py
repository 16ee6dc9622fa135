"""The padded convolution's mini-batch path as matrix products (kind ``"conv_padded"``'s batch
hooks): each sample's input unrolled into columns (``im2col``), one BLAS ``gemm`` of the filters
with them for the forward pass, one for the filters' gradient (summed over the batch by gemm's own
``beta = 1``) and one for the columns' gradient, folded back into the input's (``col2im``).

Why: a 5 x 5 filter over depth 6 is 150 products an output, which BLAS does at close to a core's
peak on (count, 150) x (150, pixels) matrices, where a loop over taps streams the input 150 times.
The per-sample loop keeps the direct loops (``conv_padded.py``): one sample's matrices are too
small for BLAS to pay for its calls. Sums run in BLAS's order, not the reference's (float64 within
1e-12, as every kernel here).

Shapes: x (depth, H, W), the record's padding ``p`` read as zeros around it (never stored); a
filter of size s over the padded input gives (oh, ow) = (H + 2p - s + 1, W + 2p - s + 1) outputs;
columns (depth * s * s, oh * ow), row ``(j * s + u) * s + v`` holding ``x[j, a + u - p, c + v - p]``
at column ``a * ow + c``, the filters (count, depth, s, s) read as (count, depth * s * s).
"""

import numpy as np

from ._jit import jit
from .blas import gemm_update
from .buffers import region
from .conv_padded import COUNT, DEPTH, HEIGHT, PADDING, PER_FILTER, SIZE, WIDTH


@jit
def im2col(x, s, p, oh, ow, col):
    """``col`` (depth * s * s, oh * ow) = the columns of ``x`` (see the module's docstring)."""
    depth, height, width = x.shape
    zero = col.dtype.type(0)
    for j in range(depth):
        for u in range(s):
            for v in range(s):
                row = col[(j * s + u) * s + v]
                # Output columns c whose input column c + v - p lies inside a row: [lo, hi).
                lo = min(ow, max(0, p - v))
                hi = max(lo, min(ow, width + p - v))
                for a in range(oh):
                    out = row[a * ow : (a + 1) * ow]
                    i = a + u - p
                    if i < 0 or i >= height:
                        for c in range(ow):
                            out[c] = zero
                        continue
                    for c in range(lo):
                        out[c] = zero
                    # Both sides as slices indexed from 0: an index such as `c + v - p` could be
                    # negative, and Numba's wraparound check on it stops LLVM vectorising the copy.
                    inside = out[lo:hi]
                    src = x[j, i, lo + v - p : hi + v - p]
                    for c in range(hi - lo):
                        inside[c] = src[c]
                    for c in range(hi, ow):
                        out[c] = zero


@jit
def im2row(x, s, p, oh, ow, rows):
    """``rows`` (oh * ow, depth * s * s) = the transpose of :func:`im2col`'s columns, C-contiguous:
    the filters' gradient ``g @ rows`` is then a plain gemm (with im2col's transposed columns BLAS
    ran at half the speed, measured at LeNet's second layer)."""
    depth, height, width = x.shape
    zero = rows.dtype.type(0)
    for a in range(oh):
        for c in range(ow):
            row = rows[a * ow + c]
            left = c - p
            for j in range(depth):
                for u in range(s):
                    out = row[(j * s + u) * s : (j * s + u + 1) * s]
                    i = a + u - p
                    if i < 0 or i >= height or left < 0 or left + s > width:
                        for v in range(s):
                            col = left + v
                            inside = 0 <= i < height and 0 <= col < width
                            out[v] = x[j, i, col] if inside else zero
                        continue
                    src = x[j, i, left : left + s]
                    for v in range(s):
                        out[v] = src[v]


@jit
def col2im(col, s, p, oh, ow, d_x):
    """``d_x`` (depth, H, W) = the sum of every column entry onto the input value it was read
    from (the transpose of :func:`im2col`; entries that read the padding are dropped)."""
    depth, height, width = d_x.shape
    flat = d_x.reshape(-1)
    for k in range(flat.size):
        flat[k] = 0
    for j in range(depth):
        for u in range(s):
            for v in range(s):
                row = col[(j * s + u) * s + v]
                lo = min(ow, max(0, p - v))
                hi = max(lo, min(ow, width + p - v))
                for a in range(oh):
                    i = a + u - p
                    if i < 0 or i >= height:
                        continue
                    dst = d_x[j, i, lo + v - p : hi + v - p]
                    src = row[a * ow + lo : a * ow + hi]
                    for c in range(hi - lo):
                        dst[c] += src[c]


@jit
def _geometry(L):
    """(depth, H, W), s, count, p, oh, ow, k = depth * s * s, per-filter biases."""
    d, h, w = L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH]
    s, c, p = L.dims[SIZE], L.dims[COUNT], L.dims[PADDING]
    oh, ow = h + 2 * p - s + 1, w + 2 * p - s + 1
    return (d, h, w), s, c, p, oh, ow, d * s * s, L.dims[PER_FILTER] == 1


def scratch_size(depth, height, width, size, padding):
    """Scratch values the batch hooks use: the columns and their gradient, one sample's each."""
    oh, ow = height + 2 * padding - size + 1, width + 2 * padding - size + 1
    return 2 * depth * size * size * oh * ow


@jit
def _buffers(L, scratch, k, pixels):
    start = L.scratch
    col = scratch[start : start + k * pixels].reshape((k, pixels))
    d_col = scratch[start + k * pixels : start + 2 * k * pixels].reshape((k, pixels))
    return col, d_col


@jit(inline=True)
def forward_batch(L, params, acts, scratch, capacity, n):
    xs, s, count, p, oh, ow, k, per_filter = _geometry(L)
    pixels = oh * ow
    filters = params[L.p0 : L.p1].reshape((count, k))
    biases = params[L.p1 : L.p_end]
    x = region(acts, L.x, L.in_size, capacity, n)
    y = region(acts, L.y, L.out_size, capacity, n)
    col, _ = _buffers(L, scratch, k, pixels)
    for b in range(n):
        im2col(x[b].reshape(xs), s, p, oh, ow, col)
        out = y[b].reshape((count, pixels))
        np.dot(filters, col, out)
        for i in range(count):
            row = out[i]
            if per_filter:
                bias = biases[i]
                for q in range(pixels):
                    row[q] += bias
            else:
                own = biases[i * pixels : (i + 1) * pixels]
                for q in range(pixels):
                    row[q] += own[q]


@jit(inline=True)
def backward_first_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    """The batch's summed filter and bias gradients: one gemm a sample, accumulating."""
    xs, s, count, p, oh, ow, k, per_filter = _geometry(L)
    pixels = oh * ow
    d_filters = gparams[L.p0 : L.p1].reshape((count, k))
    d_biases = gparams[L.p1 : L.p_end]
    for q in range(L.p0, L.p_end):
        gparams[q] = 0
    x = region(acts, L.x, L.in_size, capacity, n)
    g = region(grads, L.y, L.out_size, capacity, n)
    col, _ = _buffers(L, scratch, k, pixels)
    # BLAS multiplies by the columns' transpose at half speed where they are wider than long
    # (LeNet's second layer: 150 x 100, 12 against 5.4 us a sample in float32); there the rows
    # are unrolled as their own C-contiguous matrix instead (in the columns' scratch).
    rows = col.reshape(-1)[: pixels * k].reshape((pixels, k))
    for b in range(n):
        g_b = g[b].reshape((count, pixels))
        if k > pixels:
            im2row(x[b].reshape(xs), s, p, oh, ow, rows)
            gemm_update(g_b, rows, d_filters, 1.0)
        else:
            im2col(x[b].reshape(xs), s, p, oh, ow, col)
            gemm_update(g_b, col.T, d_filters, 1.0)
        for i in range(count):
            row = g_b[i]
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
    xs, s, count, p, oh, ow, k, _ = _geometry(L)
    pixels = oh * ow
    filters = params[L.p0 : L.p1].reshape((count, k))
    g = region(grads, L.y, L.out_size, capacity, n)
    d_x = region(grads, L.x, L.in_size, capacity, n)
    _, d_col = _buffers(L, scratch, k, pixels)
    for b in range(n):
        np.dot(filters.T, g[b].reshape((count, pixels)), d_col)
        col2im(d_col, s, p, oh, ow, d_x[b].reshape(xs))
    backward_first_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
