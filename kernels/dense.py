"""The dense (linear) layer: ``weights @ x + biases`` and its backward pass fused with SGD.

Written for the memory system: at MNIST size (100 x 3380) ``weights`` is 2.7 MB in float64, so one
sample's forward and backward passes are three streams over it (read; read and write) and cost
what the cache hierarchy delivers, not what the arithmetic costs. Each pass therefore walks
**four rows of ``weights`` at a time**: one load of ``x[i]`` (and one load and store of
``d_input[i]``) serves four rows, four independent accumulators keep the FMA units busy, and no
temporary array is made. Rows left over (``m % 4``) take a one-row loop.

Numerics. ``dense_forward`` reassociates its sums (``@jit(reassociate=True)``) so that LLVM can
split each row's dot product across vector lanes; it differs from ``np.dot`` in the last bits
only. The backward kernels use no fast-math flag at all: ``d_input[i]`` is summed over the rows
first to last, exactly as a one-row-at-a-time loop does, and every update is rounded as the
seed's ``w - (g * x) * rate`` (``g * x`` first, then ``* rate``, then the subtraction). The FMA
contraction flag ("contract") is not used: it would fuse the update into
``fma(-(g * x), rate, w)`` and round once less than the seed, and the forward pass already runs at
OpenBLAS ``gemv``'s speed without it (memory, not arithmetic, is the limit).

Two-thread versions. ``dense_forward_blocks`` gives each thread a contiguous block of rows whose
boundaries fall on multiples of four rows, so every row is summed by the same code as in
``dense_forward``: the result is bit-identical to the one-thread kernel. The fused backward splits
the *columns* instead of the rows: each thread owns ``d_input[c0:c1]`` and ``weights[:, c0:c1]``,
sums ``d_input`` over all rows in the one-thread order, and nothing is summed across threads; the
result is bit-identical to ``dense_backward_sgd`` for any number of blocks. Column boundaries fall
on multiples of 16 elements (64 bytes in float32, two cache lines in float64): where a row of
``weights`` starts on a cache line, no two threads write the same line; otherwise (n * itemsize
not a multiple of 64, as at MNIST size) they share at most one line per row, at the boundary.
"""

from numba import prange

from ._jit import jit

# Column blocks of the two-thread backward start on multiples of this many elements: a 64-byte
# cache line holds 16 float32 or 8 float64, so threads never share a line of what they write.
COLUMN_ALIGN = 16


@jit(reassociate=True)
def _forward_rows(weights, x, biases, out, start, stop):
    """``out[start:stop] = weights[start:stop] @ x + biases[start:stop]``, four rows per pass."""
    n = weights.shape[1]
    zero = out.dtype.type(0)
    o = start
    while o + 4 <= stop:
        w0, w1, w2, w3 = weights[o], weights[o + 1], weights[o + 2], weights[o + 3]
        a0 = a1 = a2 = a3 = zero
        for i in range(n):
            xi = x[i, 0]
            a0 += w0[i] * xi
            a1 += w1[i] * xi
            a2 += w2[i] * xi
            a3 += w3[i] * xi
        out[o, 0] = a0 + biases[o, 0]
        out[o + 1, 0] = a1 + biases[o + 1, 0]
        out[o + 2, 0] = a2 + biases[o + 2, 0]
        out[o + 3, 0] = a3 + biases[o + 3, 0]
        o += 4
    while o < stop:
        w0 = weights[o]
        a0 = zero
        for i in range(n):
            a0 += w0[i] * x[i, 0]
        out[o, 0] = a0 + biases[o, 0]
        o += 1


@jit(reassociate=True)
def dense_forward(weights, x, biases, out):
    """``np.dot(weights, x) + biases``; weights (m, n), x (n, 1), biases and out (m, 1)."""
    _forward_rows(weights, x, biases, out, 0, weights.shape[0])


@jit
def _backward_columns(weights, biases, x, d_output, rate, d_input, c0, c1, update_biases):
    """:func:`dense_backward_sgd` on the columns ``c0:c1`` of ``weights`` (and of ``x``,
    ``d_input``); the biases only when ``update_biases``."""
    # The loops run over slices that start at 0 rather than over range(c0, c1): with an unknown
    # start, LLVM gave up vectorising (its runtime overlap checks between the four rows, x and
    # d_input), and the kernel ran 3-7x slower (measured).
    m = weights.shape[0]
    k = c1 - c0
    xs = x[c0:c1]
    ds = d_input[c0:c1]
    o = 0
    while o + 4 <= m:
        w0, w1 = weights[o, c0:c1], weights[o + 1, c0:c1]
        w2, w3 = weights[o + 2, c0:c1], weights[o + 3, c0:c1]
        g0, g1, g2, g3 = d_output[o, 0], d_output[o + 1, 0], d_output[o + 2, 0], d_output[o + 3, 0]
        if o == 0:
            # d_input starts as the first row's term (0 + t == t), saving a pass that zeroes it.
            for i in range(k):
                xi = xs[i, 0]
                d = w0[i] * g0
                d += w1[i] * g1
                d += w2[i] * g2
                d += w3[i] * g3
                ds[i, 0] = d
                w0[i] -= g0 * xi * rate
                w1[i] -= g1 * xi * rate
                w2[i] -= g2 * xi * rate
                w3[i] -= g3 * xi * rate
        else:
            for i in range(k):
                xi = xs[i, 0]
                d = ds[i, 0]
                d += w0[i] * g0
                d += w1[i] * g1
                d += w2[i] * g2
                d += w3[i] * g3
                ds[i, 0] = d
                w0[i] -= g0 * xi * rate
                w1[i] -= g1 * xi * rate
                w2[i] -= g2 * xi * rate
                w3[i] -= g3 * xi * rate
        o += 4
    if m < 4:
        for i in range(k):
            ds[i, 0] = 0
    while o < m:
        w0 = weights[o, c0:c1]
        g0 = d_output[o, 0]
        for i in range(k):
            ds[i, 0] += w0[i] * g0
            w0[i] -= g0 * xs[i, 0] * rate
        o += 1
    if update_biases:
        for o in range(m):
            biases[o, 0] -= d_output[o, 0] * rate


@jit
def dense_sgd(weights, biases, x, d_output, rate):
    """``weights -= (d_output @ x.T) * rate`` and ``biases -= d_output * rate``, rounded as the seed.

    For a first layer, whose input gradient nobody reads. Shapes as :func:`dense_backward_sgd`.
    """
    m, n = weights.shape
    o = 0
    while o + 4 <= m:
        w0, w1, w2, w3 = weights[o], weights[o + 1], weights[o + 2], weights[o + 3]
        g0, g1, g2, g3 = d_output[o, 0], d_output[o + 1, 0], d_output[o + 2, 0], d_output[o + 3, 0]
        for i in range(n):
            xi = x[i, 0]
            w0[i] -= g0 * xi * rate
            w1[i] -= g1 * xi * rate
            w2[i] -= g2 * xi * rate
            w3[i] -= g3 * xi * rate
        o += 4
    while o < m:
        w0 = weights[o]
        g0 = d_output[o, 0]
        for i in range(n):
            w0[i] -= g0 * x[i, 0] * rate
        o += 1
    for o in range(m):
        biases[o, 0] -= d_output[o, 0] * rate


@jit
def dense_backward_sgd(weights, biases, x, d_output, rate, d_input):
    """The dense layer's backward pass fused with its SGD step, in one pass over ``weights``.

    ``d_input = weights.T @ d_output`` from the weights as they were, then
    ``weights -= (d_output @ x.T) * rate`` and ``biases -= d_output * rate``, each update rounded
    as the seed's ``w - (g * x) * rate``. weights (m, n), biases and d_output (m, 1), x and d_input
    (n, 1).
    """
    # Rows first to last, like dense_forward. Walking them last to first (to reuse what forward
    # left in cache) measured 2-4x slower with one-row loops: the vectoriser or prefetcher loses.
    _backward_columns(weights, biases, x, d_output, rate, d_input, 0, weights.shape[1], True)


@jit(reassociate=True, parallel=True)
def dense_forward_blocks(weights, x, biases, out, blocks):
    """:func:`dense_forward` with the rows split into ``blocks`` parallel blocks; bit-identical
    to it (block boundaries fall on multiples of four rows)."""
    m = weights.shape[0]
    quads = m // 4
    for t in prange(blocks):
        start = 4 * (t * quads // blocks)
        stop = m if t == blocks - 1 else 4 * ((t + 1) * quads // blocks)
        _forward_rows(weights, x, biases, out, start, stop)


@jit(parallel=True)
def dense_backward_sgd_blocks(weights, biases, x, d_output, rate, d_input, partial):
    """:func:`dense_backward_sgd` with the columns split into ``len(partial)`` parallel blocks;
    bit-identical to it for any number of blocks.

    ``partial`` only gives the number of blocks (its rows were scratch for per-block sums of
    ``d_input`` in an earlier row-split version; a column split needs none).
    """
    n = weights.shape[1]
    blocks = partial.shape[0]
    lines = (n + COLUMN_ALIGN - 1) // COLUMN_ALIGN
    for t in prange(blocks):
        c0 = min(n, COLUMN_ALIGN * (t * lines // blocks))
        c1 = min(n, COLUMN_ALIGN * ((t + 1) * lines // blocks))
        _backward_columns(weights, biases, x, d_output, rate, d_input, c0, c1, t == 0)
