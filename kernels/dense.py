"""The dense (linear) layer: ``weights @ x + biases``, its backward pass fused with SGD, and its
hooks in the compiled loops (``kernels/_loops.py``).

Written for the memory system: at MNIST size (100 x 3380) ``weights`` is 2.7 MB in float64, so one
sample's forward and backward passes are three streams over it (read; read and write) and cost
what the cache hierarchy delivers, not what the arithmetic costs. Each pass therefore walks
**eight rows of ``weights`` at a time**: one load of ``x[i]`` (and one load and store of
``d_input[i]``) serves eight rows, independent accumulators keep the FMA units busy, and no
temporary array is made. Rows left over take one-row loops (and, in the backward passes, a
four-row pass first).

Numerics. ``dense_forward`` reassociates its sums (``@jit(reassociate=True)``) so that LLVM can
split each row's dot product across vector lanes; it differs from ``np.dot`` in the last bits
only. The backward kernels use no fast-math flag at all: ``d_input[i]`` is summed over the rows
first to last from zero, exactly as a one-row-at-a-time loop does, and every update is rounded as
the seed's ``w - (g * x) * rate`` (``g * x`` first, then ``* rate``, then the subtraction). The FMA
contraction flag ("contract") is not used: it would fuse the update into
``fma(-(g * x), rate, w)`` and round once less than the seed, and the forward pass already runs at
OpenBLAS ``gemv``'s speed without it (memory, not arithmetic, is the limit). The fused backward
pass is the one place arithmetic shows: three products a weight (``g * x``, ``* rate``,
``w * g`` for ``d_input``), which keep the multiply ports busy for about as long as the memory
takes; an FMA would still occupy a multiply port, and the seed's rounding needs all three
products.

Padded rows. Every kernel here reads a row's length from ``x`` (n = len(x)), not from ``weights``,
which may be (m, s) with s > n: rows padded to whole 64-byte lines, as the compiled network loop
keeps them (``fastcnn._compiled.Program``), so that every row starts on a line. In float32 a row
of 3,380 values is 211.25 lines, and rows starting mid-line made every vector load of three rows
in four straddle two lines (the README's Speed section has the figures). The padding is never
read or written.

Two-thread versions. Both split the rows of ``weights`` into the same contiguous blocks, whose
boundaries fall on multiples of eight rows, so each core touches the same half of ``weights`` in
the forward and in the backward pass (in float32 a half, 0.68 MB at MNIST size, stays in one
core's 1 MB L2 from sample to sample; splitting the backward by columns instead, which needs no
cross-thread sum, was no faster than one thread for that reason). ``dense_forward_blocks``
is bit-identical to ``dense_forward``. ``dense_backward_sgd_blocks`` updates ``weights`` and
``biases`` bit-identically too; its ``d_input`` is the per-block sums added in block order, so
it is repeatable for a given number of blocks and differs from one thread's only in the last bits.
Block 0 sums into ``d_input`` itself and block ``t`` into ``partial[t]``: the two rows that
threads write concurrently live in different arrays, so they share no cache line.
"""

import numpy as np
from numba import prange

from ._jit import jit
from .blas import gemm_update
from .buffers import region


@jit(reassociate=True)
def _forward_rows(weights, x, biases, out, start, stop):
    """``out[start:stop] = weights[start:stop, :n] @ x + biases[start:stop]`` (n = len(x); see
    the module's note on padded rows), last rows first: rows ``start`` onwards eight per pass, the
    rest (fewer than eight) one by one.

    Last first because the backward pass walks the rows first to last: the rows this pass reads
    last are the ones the backward pass (and, after it, the next sample's forward pass) reads
    first, while they are still in L2. Each row's sum is its own, so the order changes nothing in
    the result. (A four-row pass for the rest too, as the backward pass has, made no measurable
    difference here and cost half a second of a cold start; CHANGELOG 0.3.) A row's sum may
    be split across vector lanes differently in an eight-row and a one-row loop, so which loop
    takes a row depends only on its distance from ``start``, and the two-thread blocks start on
    multiples of eight."""
    n = x.shape[0]
    zero = out.dtype.type(0)
    whole = start + 8 * ((stop - start) // 8)  # rows start:whole go eight at a time
    o = stop
    while o > whole:
        o -= 1
        w0 = weights[o]
        acc = zero
        for i in range(n):
            acc += w0[i] * x[i, 0]
        out[o, 0] = acc + biases[o, 0]  # tests/test_cache.py edits this line
    o = whole
    while o > start:
        o -= 8
        w0, w1, w2, w3 = weights[o], weights[o + 1], weights[o + 2], weights[o + 3]
        w4, w5, w6, w7 = weights[o + 4], weights[o + 5], weights[o + 6], weights[o + 7]
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
        for i in range(n):
            xi = x[i, 0]
            a0 += w0[i] * xi
            a1 += w1[i] * xi
            a2 += w2[i] * xi
            a3 += w3[i] * xi
            a4 += w4[i] * xi
            a5 += w5[i] * xi
            a6 += w6[i] * xi
            a7 += w7[i] * xi
        for r, a in enumerate((a0, a1, a2, a3, a4, a5, a6, a7)):
            out[o + r, 0] = a + biases[o + r, 0]


@jit(reassociate=True)
def dense_forward(weights, x, biases, out):
    """``np.dot(weights, x) + biases``; weights (m, n) (or (m, s > n), padded rows), x (n, 1),
    biases and out (m, 1)."""
    _forward_rows(weights, x, biases, out, 0, weights.shape[0])


@jit
def _backward_rows(weights, biases, x, d_output, rate, d_input, start, stop):
    """:func:`dense_backward_sgd` on the rows ``start:stop``: ``d_input`` (n, 1) receives those
    rows' share of ``weights.T @ d_output``, summed first row to last; their weights and biases
    are updated. Eight rows per pass (then four, then one by one).

    ``d_input=None`` (a first layer, whose input gradient nobody reads) compiles a variant
    without it: Numba removes the ``d_input is not None`` branches when it compiles, so the
    update alone is one loop with the same roundings.
    """
    n = x.shape[0]
    if d_input is not None:
        zero = d_input.dtype.type(0)
        for i in range(n):
            d_input[i, 0] = zero
    gs = d_output[:, 0]
    o = start
    # Eight rows a pass, not four: each pass loads and stores all of d_input, which the stream of
    # weights keeps evicting from L1, and this pass is the busiest of all (three products a
    # weight). Each weight is loaded once, into a0..a7, and every store comes after the loads:
    # written as `d += w0[i] * g0` then `w0[i] -= ...`, LLVM reloaded the weights after storing
    # d_input (which it cannot prove is not one of them).
    while o + 8 <= stop:
        w0, w1, w2, w3 = weights[o], weights[o + 1], weights[o + 2], weights[o + 3]
        w4, w5, w6, w7 = weights[o + 4], weights[o + 5], weights[o + 6], weights[o + 7]
        g0, g1, g2, g3 = gs[o], gs[o + 1], gs[o + 2], gs[o + 3]
        g4, g5, g6, g7 = gs[o + 4], gs[o + 5], gs[o + 6], gs[o + 7]
        for i in range(n):
            xi = x[i, 0]
            a0, a1, a2, a3 = w0[i], w1[i], w2[i], w3[i]
            a4, a5, a6, a7 = w4[i], w5[i], w6[i], w7[i]
            w0[i] = a0 - g0 * xi * rate
            w1[i] = a1 - g1 * xi * rate
            w2[i] = a2 - g2 * xi * rate
            w3[i] = a3 - g3 * xi * rate
            w4[i] = a4 - g4 * xi * rate
            w5[i] = a5 - g5 * xi * rate
            w6[i] = a6 - g6 * xi * rate
            w7[i] = a7 - g7 * xi * rate
            if d_input is not None:
                d = d_input[i, 0]
                d += a0 * g0
                d += a1 * g1
                d += a2 * g2
                d += a3 * g3
                d += a4 * g4
                d += a5 * g5
                d += a6 * g6
                d += a7 * g7
                d_input[i, 0] = d
        o += 8
    if o + 4 <= stop:
        w0, w1, w2, w3 = weights[o], weights[o + 1], weights[o + 2], weights[o + 3]
        g0, g1, g2, g3 = gs[o], gs[o + 1], gs[o + 2], gs[o + 3]
        for i in range(n):
            xi = x[i, 0]
            a0, a1, a2, a3 = w0[i], w1[i], w2[i], w3[i]
            w0[i] = a0 - g0 * xi * rate
            w1[i] = a1 - g1 * xi * rate
            w2[i] = a2 - g2 * xi * rate
            w3[i] = a3 - g3 * xi * rate
            if d_input is not None:
                d = d_input[i, 0]
                d += a0 * g0
                d += a1 * g1
                d += a2 * g2
                d += a3 * g3
                d_input[i, 0] = d
        o += 4
    while o < stop:
        w0 = weights[o]
        g0 = gs[o]
        for i in range(n):
            a0 = w0[i]
            w0[i] = a0 - g0 * x[i, 0] * rate
            if d_input is not None:
                d_input[i, 0] += a0 * g0
        o += 1
    for o in range(start, stop):
        biases[o, 0] -= d_output[o, 0] * rate


@jit
def dense_sgd(weights, biases, x, d_output, rate):
    """``weights -= (d_output @ x.T) * rate`` and ``biases -= d_output * rate``, rounded as the seed.

    For a first layer, whose input gradient nobody reads. Shapes as :func:`dense_backward_sgd`.
    """
    _backward_rows(weights, biases, x, d_output, rate, None, 0, weights.shape[0])


@jit
def dense_backward_sgd(weights, biases, x, d_output, rate, d_input):
    """The dense layer's backward pass fused with its SGD step, in one pass over ``weights``.

    ``d_input = weights.T @ d_output`` from the weights as they were, then
    ``weights -= (d_output @ x.T) * rate`` and ``biases -= d_output * rate``, each update rounded
    as the seed's ``w - (g * x) * rate``. weights (m, n) (or padded rows, (m, s > n)), biases and
    d_output (m, 1), x and d_input (n, 1).
    """
    # Rows first to last, the opposite of dense_forward, so that each pass starts on the rows the
    # other left in cache (see _forward_rows). Reversed here instead, d_input's sum would run last
    # row to first.
    _backward_rows(weights, biases, x, d_output, rate, d_input, 0, weights.shape[0])


@jit
def dense_gradient(weights, x, d_output, d_weights, d_input):
    """``d_weights = d_output @ x.T``, ``d_input = weights.T @ d_output``, without an update:
    ``d_input`` summed first row to last from zero, as :func:`dense_backward_sgd` sums it.

    weights and d_weights (m, n) or padded rows (m, s > n), as the module's note says; x and
    d_input (n, 1), d_output (m, 1). ``d_input=None`` (a first layer) leaves it out.
    """
    m, n = weights.shape[0], x.shape[0]
    if d_input is not None:
        for i in range(n):
            d_input[i, 0] = 0
    for o in range(m):
        g = d_output[o, 0]
        w = weights[o]
        dw = d_weights[o]
        for i in range(n):
            if d_input is not None:
                d_input[i, 0] += w[i] * g
            dw[i] = g * x[i, 0]


@jit(reassociate=True, parallel=True)
def dense_forward_blocks(weights, x, biases, out, blocks):
    """:func:`dense_forward` with the rows split into ``blocks`` parallel blocks; bit-identical
    to it (block boundaries fall on multiples of eight rows)."""
    m = weights.shape[0]
    eights = m // 8
    for t in prange(blocks):
        start = 8 * (t * eights // blocks)
        stop = m if t == blocks - 1 else 8 * ((t + 1) * eights // blocks)
        _forward_rows(weights, x, biases, out, start, stop)


@jit(parallel=True)
def dense_backward_sgd_blocks(weights, biases, x, d_output, rate, d_input, partial):
    """:func:`dense_backward_sgd` with the rows split into ``len(partial)`` parallel blocks.

    ``partial`` is C-contiguous scratch of shape (blocks, at least n). Block 0 sums its rows'
    share of ``d_input`` into ``d_input`` itself, block ``t > 0`` into ``partial[t]``; the shares
    are then added in block order. One block gives the one-thread kernel's result bit for bit.
    """
    m, n = weights.shape[0], x.shape[0]
    blocks = partial.shape[0]
    eights = m // 8
    for t in prange(blocks):
        start = 8 * (t * eights // blocks)
        stop = m if t == blocks - 1 else 8 * ((t + 1) * eights // blocks)
        share = d_input if t == 0 else partial[t, :n].reshape((n, 1))
        _backward_rows(weights, biases, x, d_output, rate, share, start, stop)
    # Block by block, each a loop LLVM vectorises: an element-by-element loop over blocks runs
    # scalar, and took a third of the pass.
    for t in range(1, blocks):
        share = partial[t, :n]
        for i in range(n):
            d_input[i, 0] += share[i]


@jit
def dense_forward_batch(xs, weights, biases, out, scratch):
    """``out = xs @ weights.T + biases.T``: each row is ``np.dot(weights, x) + biases`` for one x.

    xs (B, n), weights (m, n), biases of m elements, out (B, m), scratch of at least m * B values.
    One BLAS GEMM into scratch holding ``out.T``, then out = its transpose + biases.
    """
    # weights @ xs.T, not xs @ weights.T straight into out: the same product, which OpenBLAS on
    # two threads splits better at B = 32-64 on the MNIST layer (on one thread the two run alike;
    # CHANGELOG 0.2). Transposing the small (m, B) result back costs well under 1 % of that.
    m, batch = weights.shape[0], xs.shape[0]
    yt = scratch[: m * batch].reshape((m, batch))
    np.dot(weights, xs.T, yt)
    bf = biases.reshape(-1)
    for b in range(batch):
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
def _bias_sums(d_outputs, d_biases):
    """``d_biases = d_outputs.sum(0)``, summed sample after sample; d_biases of m elements."""
    db = d_biases.reshape(-1)
    db[:] = 0
    for b in range(d_outputs.shape[0]):
        g = d_outputs[b]
        for i in range(g.size):
            db[i] += g[i]


@jit
def dense_gradient_batch(xs, d_outputs, d_weights, d_biases):
    """``d_weights = d_outputs.T @ xs``, ``d_biases = d_outputs.sum(0)``: the batch's summed
    parameter gradients, overwritten. xs (B, n), d_outputs (B, m), d_weights (m, n), d_biases of
    m elements. One BLAS GEMM."""
    np.dot(d_outputs.T, xs, d_weights)
    _bias_sums(d_outputs, d_biases)


@jit
def dense_sgd_batch(xs, d_outputs, weights, d_biases, count, rate):
    """``weights -= (d_outputs.T @ xs) * (rate / count)`` in one BLAS gemm that adds its product to
    ``weights`` (no gradient matrix is made), and ``d_biases = d_outputs.sum(0)``, summed sample
    after sample, for the SGD step to apply with the other sums.

    xs (B, n), d_outputs (B, m), weights (m, n), d_biases of m elements. The weights' step is
    rounded as BLAS rounds ``w + alpha * t`` with ``alpha = -(rate / count)``, not as the step
    kernel's ``w - (t / count) * rate``: the same mean gradient to the last bits.
    """
    gemm_update(d_outputs.T, xs, weights, -(rate / count))
    _bias_sums(d_outputs, d_biases)


# --------------------------------------------------------------------------------------------------
# hooks of the compiled loops: one layer record ``L`` and the flat buffers (see kernels/_loops.py).
# A dense layer's weights are (out_size, L.p0_stride) in params: rows padded to whole cache lines on
# the per-sample path, compact (stride = in_size) on the mini-batch path, where BLAS reads them.
#
# Dense layers with fewer weights than PARALLEL_MIN_WEIGHTS stay on one thread: starting a parallel
# region costs a few microseconds, more than a small layer takes.
PARALLEL_MIN_WEIGHTS = 1 << 16


@jit
def _rows(L, params):
    return params[L.p0 : L.p1].reshape((L.out_size, L.p0_stride))


@jit
def _column(buffer, start, size):
    return buffer[start : start + size].reshape((size, 1))


@jit(inline=True)
def forward(L, params, acts, scratch, partial):
    n, m = L.in_size, L.out_size
    w = _rows(L, params)
    x, y = _column(acts, L.x, n), _column(acts, L.y, m)
    b = _column(params, L.p1, m)
    # The row kernel itself, here and below, not its one-line wrapper dense_forward: each
    # wrapper would be one more function to compile.
    if partial is None:
        _forward_rows(w, x, b, y, 0, m)
    elif m * n >= PARALLEL_MIN_WEIGHTS:
        dense_forward_blocks(w, x, b, y, partial.shape[0])
    else:
        _forward_rows(w, x, b, y, 0, m)


@jit(inline=True)
def _backward_sgd(L, params, acts, grads, rate, partial, first):
    n, m = L.in_size, L.out_size
    w = _rows(L, params)
    b = _column(params, L.p1, m)
    x, g = _column(acts, L.x, n), _column(grads, L.y, m)
    d_x = _column(grads, L.x, n)
    if partial is not None and m * n >= PARALLEL_MIN_WEIGHTS:
        # Each core updates the rows it read in the forward pass, a first layer's too (its input
        # gradient, computed alongside, is never read): updated by the other core instead, those
        # rows crossed between the cores' caches every sample, and a dense-first network ran 3x
        # slower on two threads than on one.
        dense_backward_sgd_blocks(w, b, x, g, rate, d_x, partial)
    elif first is None:
        _backward_rows(w, b, x, g, rate, d_x, 0, m)
    else:
        _backward_rows(w, b, x, g, rate, None, 0, m)


@jit(inline=True)
def backward_sgd(L, params, gparams, acts, grads, scratch, rate, partial):
    """Input gradient and SGD step in one pass over the weights (the per-sample fast path)."""
    _backward_sgd(L, params, acts, grads, rate, partial, None)


@jit(inline=True)
def backward_first_sgd(L, params, gparams, acts, grads, scratch, rate, partial):
    _backward_sgd(L, params, acts, grads, rate, partial, True)


@jit(inline=True)
def forward_batch(L, params, acts, scratch, capacity, n):
    m, k = L.out_size, L.in_size
    x = region(acts, L.x, k, capacity, n)
    y = region(acts, L.y, m, capacity, n)
    w = params[L.p0 : L.p1].reshape((m, k))
    dense_forward_batch(x, w, params[L.p1 : L.p_end], y, scratch[L.scratch : L.scratch_end])


@jit(inline=True)
def backward_first_sgd_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    """The weights move in the gemm that sums their gradient; the biases' sums go to gparams."""
    m, k = L.out_size, L.in_size
    x = region(acts, L.x, k, capacity, n)
    g = region(grads, L.y, m, capacity, n)
    w = params[L.p0 : L.p1].reshape((m, k))
    dense_sgd_batch(x, g, w, gparams[L.p1 : L.p_end], n, rate)


@jit(inline=True)
def backward_sgd_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    m, k = L.out_size, L.in_size
    g = region(grads, L.y, m, capacity, n)
    w = params[L.p0 : L.p1].reshape((m, k))
    dense_input_gradient_batch(g, w, region(grads, L.x, k, capacity, n))  # before the step
    backward_first_sgd_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)


# Gradients apart from the step (the loops that do not fuse it, and the optimizers' loops): the
# weights' gradient is written into gparams, laid out as params, and the loop's step applies it.


@jit(inline=True)
def _gradient(L, params, gparams, acts, grads, d_x):
    n, m = L.in_size, L.out_size
    x, g = _column(acts, L.x, n), _column(grads, L.y, m)
    dense_gradient(_rows(L, params), x, g, _rows(L, gparams), d_x)
    d_b, gf = gparams[L.p1 : L.p_end], grads[L.y : L.y + m]
    for o in range(m):
        d_b[o] = gf[o]


@jit(inline=True)
def backward(L, params, gparams, acts, grads, scratch, rate, partial):
    _gradient(L, params, gparams, acts, grads, _column(grads, L.x, L.in_size))


@jit(inline=True)
def backward_first(L, params, gparams, acts, grads, scratch, rate, partial):
    _gradient(L, params, gparams, acts, grads, None)


@jit(inline=True)
def backward_first_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    m, k = L.out_size, L.in_size
    x = region(acts, L.x, k, capacity, n)
    g = region(grads, L.y, m, capacity, n)
    d_w = gparams[L.p0 : L.p1].reshape((m, k))
    dense_gradient_batch(x, g, d_w, gparams[L.p1 : L.p_end])


@jit(inline=True)
def backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    m, k = L.out_size, L.in_size
    g = region(grads, L.y, m, capacity, n)
    w = params[L.p0 : L.p1].reshape((m, k))
    dense_input_gradient_batch(g, w, region(grads, L.x, k, capacity, n))
    backward_first_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
