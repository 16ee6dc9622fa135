"""Max- and average-pooling over (depth, h, w) inputs, windows ``size`` x ``size`` every ``stride``.

Output (depth, (h - size) // stride + 1, (w - size) // stride + 1): only whole windows, as
PyTorch's pooling without padding. The backward passes overwrite ``d_input`` and add up where
windows overlap (stride < size). The batched forms are a loop over the batch axis.
"""

from ._jit import jit
from .buffers import region


@jit(inline=True)
def _first_max(x, c, top, left, size):
    """(row, column) of the first maximum of ``x[c, top:top+size, left:left+size]`` in row-major
    order (PyTorch's tie rule: a later equal value does not win); a NaN counts as the maximum, the
    first NaN winning, as np.argmax."""
    best = x[c, top, left]
    row, col = top, left
    for u in range(size):
        for v in range(size):
            value = x[c, top + u, left + v]
            if value > best or (value != value and best == best):
                best = value
                row, col = top + u, left + v
    return row, col


@jit(inline=True)
def _first_of_four(a, b, c, d):
    """(value, position 0-3) of the first maximum of a, b, c, d, by :func:`_first_max`'s rule."""
    best, k = a, 0
    if b > best or (b != b and best == best):
        best, k = b, 1
    if c > best or (c != c and best == best):
        best, k = c, 2
    if d > best or (d != d and best == best):
        best, k = d, 3
    return best, k


@jit
def maxpool_forward(x, size, stride, out):
    """``out[c, i, j] = max(x[c, i*stride : i*stride+size, j*stride : j*stride+size])``."""
    if size == 2 and stride == 2:
        # LeNet's pooling: two input rows a pass and the window's four values in registers, in
        # place of the general loop's index arithmetic per value (3x faster measured).
        for c in range(out.shape[0]):
            for i in range(out.shape[1]):
                r0, r1, o = x[c, 2 * i], x[c, 2 * i + 1], out[c, i]
                for j in range(out.shape[2]):
                    o[j] = _first_of_four(r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1])[0]
        return
    for c in range(out.shape[0]):
        for i in range(out.shape[1]):
            for j in range(out.shape[2]):
                row, col = _first_max(x, c, i * stride, j * stride, size)
                out[c, i, j] = x[c, row, col]


@jit
def maxpool_backward(x, d_output, size, stride, d_input):
    """``d_input``: each ``d_output[c, i, j]`` added at its window's first maximum, recomputed
    from ``x`` (no index buffer); every other element 0."""
    d_input[:] = 0
    if size == 2 and stride == 2:  # windows do not overlap: each gradient lands alone
        for c in range(d_output.shape[0]):
            for i in range(d_output.shape[1]):
                r0, r1, g = x[c, 2 * i], x[c, 2 * i + 1], d_output[c, i]
                d0, d1 = d_input[c, 2 * i], d_input[c, 2 * i + 1]
                for j in range(d_output.shape[2]):
                    k = _first_of_four(r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1])[1]
                    row = d0 if k < 2 else d1
                    row[2 * j + (k & 1)] = g[j]
        return
    for c in range(d_output.shape[0]):
        for i in range(d_output.shape[1]):
            for j in range(d_output.shape[2]):
                row, col = _first_max(x, c, i * stride, j * stride, size)
                d_input[c, row, col] += d_output[c, i, j]


@jit
def avgpool_forward(x, size, stride, out):
    """``out[c, i, j] = sum(window) / size**2``, the window summed row by row in x's dtype."""
    count = out.dtype.type(size * size)
    for c in range(out.shape[0]):
        for i in range(out.shape[1]):
            for j in range(out.shape[2]):
                total = out.dtype.type(0)
                for u in range(size):
                    for v in range(size):
                        total += x[c, i * stride + u, j * stride + v]
                out[c, i, j] = total / count


@jit
def avgpool_backward(x, d_output, size, stride, d_input):
    """``d_input``: each ``d_output[c, i, j] / size**2`` added to every element of its window;
    ``x`` is not read (the signature of :func:`maxpool_backward`)."""
    d_input[:] = 0
    count = d_input.dtype.type(size * size)
    for c in range(d_output.shape[0]):
        for i in range(d_output.shape[1]):
            for j in range(d_output.shape[2]):
                share = d_output[c, i, j] / count
                for u in range(size):
                    for v in range(size):
                        d_input[c, i * stride + u, j * stride + v] += share


# --------------------------------------------------------------------------------------------------
# hooks of the compiled loops (kernels/_loops.py): one layer record ``L`` and the flat buffers. The
# pooling kinds' own slots of a record's ``dims`` (fastcnn/layers/pool.py fills them):
DEPTH, HEIGHT, WIDTH, SIZE, STRIDE = range(5)


@jit(inline=True)
def _shapes(L):
    """The record's input and output shapes, window size and stride."""
    d, h, w = L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH]
    s, t = L.dims[SIZE], L.dims[STRIDE]
    return (d, h, w), (d, (h - s) // t + 1, (w - s) // t + 1), s, t


@jit(inline=True)
def max_forward(L, params, acts, scratch, partial):
    xs, os_, s, t = _shapes(L)
    x = acts[L.x : L.x + L.in_size].reshape(xs)
    maxpool_forward(x, s, t, acts[L.y : L.y + L.out_size].reshape(os_))


@jit(inline=True)
def max_backward(L, params, gparams, acts, grads, scratch, rate, partial):
    xs, os_, s, t = _shapes(L)
    x = acts[L.x : L.x + L.in_size].reshape(xs)
    g = grads[L.y : L.y + L.out_size].reshape(os_)
    maxpool_backward(x, g, s, t, grads[L.x : L.x + L.in_size].reshape(xs))


@jit(inline=True)
def max_forward_batch(L, params, acts, scratch, capacity, n):
    xs, os_, s, t = _shapes(L)
    x, y = region(acts, L.x, L.in_size, capacity, n), region(acts, L.y, L.out_size, capacity, n)
    for b in range(n):
        maxpool_forward(x[b].reshape(xs), s, t, y[b].reshape(os_))


@jit(inline=True)
def max_backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    xs, os_, s, t = _shapes(L)
    x = region(acts, L.x, L.in_size, capacity, n)
    g = region(grads, L.y, L.out_size, capacity, n)
    d_x = region(grads, L.x, L.in_size, capacity, n)
    for b in range(n):
        maxpool_backward(x[b].reshape(xs), g[b].reshape(os_), s, t, d_x[b].reshape(xs))


@jit(inline=True)
def avg_forward(L, params, acts, scratch, partial):
    xs, os_, s, t = _shapes(L)
    x = acts[L.x : L.x + L.in_size].reshape(xs)
    avgpool_forward(x, s, t, acts[L.y : L.y + L.out_size].reshape(os_))


@jit(inline=True)
def avg_backward(L, params, gparams, acts, grads, scratch, rate, partial):
    xs, os_, s, t = _shapes(L)
    x = acts[L.x : L.x + L.in_size].reshape(xs)
    g = grads[L.y : L.y + L.out_size].reshape(os_)
    avgpool_backward(x, g, s, t, grads[L.x : L.x + L.in_size].reshape(xs))


@jit(inline=True)
def avg_forward_batch(L, params, acts, scratch, capacity, n):
    xs, os_, s, t = _shapes(L)
    x, y = region(acts, L.x, L.in_size, capacity, n), region(acts, L.y, L.out_size, capacity, n)
    for b in range(n):
        avgpool_forward(x[b].reshape(xs), s, t, y[b].reshape(os_))


@jit(inline=True)
def avg_backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    xs, os_, s, t = _shapes(L)
    x = region(acts, L.x, L.in_size, capacity, n)
    g = region(grads, L.y, L.out_size, capacity, n)
    d_x = region(grads, L.x, L.in_size, capacity, n)
    for b in range(n):
        avgpool_backward(x[b].reshape(xs), g[b].reshape(os_), s, t, d_x[b].reshape(xs))
