"""The dense (linear) layer: ``weights @ x + biases`` and its backward pass fused with SGD."""

from numba import prange

from ._jit import jit


@jit(reassociate=True)
def dense_forward(weights, x, biases, out):
    """``np.dot(weights, x) + biases``; weights (m, n), x (n, 1), biases and out (m, 1)."""
    m, n = weights.shape
    for o in range(m):
        acc = out.dtype.type(0)
        w = weights[o]
        for i in range(n):
            acc += w[i] * x[i, 0]
        out[o, 0] = acc + biases[o, 0]


@jit
def dense_sgd(weights, biases, x, d_output, rate):
    """``weights -= (d_output @ x.T) * rate`` and ``biases -= d_output * rate``, rounded as the seed.

    For a first layer, whose input gradient nobody reads. Shapes as :func:`dense_backward_sgd`.
    """
    m, n = weights.shape
    for o in range(m):
        g = d_output[o, 0]
        w = weights[o]
        for i in range(n):
            w[i] -= g * x[i, 0] * rate
        biases[o, 0] -= g * rate


@jit
def dense_backward_sgd(weights, biases, x, d_output, rate, d_input):
    """The dense layer's backward pass fused with its SGD step, in one pass over ``weights``.

    ``d_input = weights.T @ d_output`` from the weights as they were, then
    ``weights -= (d_output @ x.T) * rate`` and ``biases -= d_output * rate``, each update rounded
    as the seed's ``w - (g * x) * rate``. weights (m, n), biases and d_output (m, 1), x and d_input
    (n, 1).
    """
    m, n = weights.shape
    d_input[:] = 0
    # Rows first to last, like dense_forward. Walking them last to first (to reuse what forward
    # left in cache) measured 2-4x slower here: the vectoriser or prefetcher loses on it.
    for o in range(m):
        g = d_output[o, 0]
        w = weights[o]
        for i in range(n):
            d_input[i, 0] += w[i] * g
            w[i] -= g * x[i, 0] * rate
        biases[o, 0] -= g * rate


# Two-thread versions. Each thread owns a contiguous block of rows of ``weights``, so no two
# threads write the same element; the input gradient is summed per block into ``partial`` and the
# blocks are then added in a fixed order, so a run is repeatable for a given number of blocks
# (its last bits differ from the one-block kernels above, whose sum runs over all rows at once).


@jit(reassociate=True, parallel=True)
def dense_forward_blocks(weights, x, biases, out, blocks):
    """:func:`dense_forward` with the rows split into ``blocks`` parallel blocks."""
    m, n = weights.shape
    for t in prange(blocks):
        for o in range(t * m // blocks, (t + 1) * m // blocks):
            acc = out.dtype.type(0)
            w = weights[o]
            for i in range(n):
                acc += w[i] * x[i, 0]
            out[o, 0] = acc + biases[o, 0]


@jit(parallel=True)
def dense_backward_sgd_blocks(weights, biases, x, d_output, rate, d_input, partial):
    """:func:`dense_backward_sgd` with the rows split into ``len(partial)`` parallel blocks.

    ``partial`` is C-contiguous scratch of shape (blocks, at least n).
    """
    m, n = weights.shape
    blocks = partial.shape[0]
    for t in prange(blocks):
        p = partial[t, :n]
        p[:] = 0
        for o in range(t * m // blocks, (t + 1) * m // blocks):
            g = d_output[o, 0]
            w = weights[o]
            for i in range(n):
                p[i] += w[i] * g
                w[i] -= g * x[i, 0] * rate
            biases[o, 0] -= g * rate
    for i in range(n):
        acc = partial[0, i]
        for t in range(1, blocks):
            acc += partial[t, i]
        d_input[i, 0] = acc
