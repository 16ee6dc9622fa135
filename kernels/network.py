"""A whole network's per-sample SGD loop in one compiled call.

The network arrives as a program: ``ops[l]`` says what layer ``l`` is, ``dims[l]`` its sizes, and
``params`` holds each parametrised layer's two arrays (weights or filters, then biases) flattened.
Activations and gradients live in flat buffers ``acts[l]`` (layer ``l``'s input; ``acts[L]`` the
output) and ``grads[l]``. A Reshape is no operation on flat buffers, so it never appears.

``partial`` is None on one thread. With threads it is scratch of shape (blocks, widest dense
input), and the large dense layers run on the parallel kernels. The one-thread entry points are
cached; the threaded ones compile in each process (see ``_jit.jit``). ``partial is None`` is
decided when Numba compiles, so the cached code never contains a parallel kernel.
"""

import numpy as np

from ._jit import jit
from .activation import sigmoid, sigmoid_backward
from .conv import conv_backward_sgd, conv_forward, conv_sgd
from .dense import (
    dense_backward_sgd,
    dense_backward_sgd_blocks,
    dense_forward,
    dense_forward_blocks,
    dense_sgd,
)

CONV = 0  # dims: depth, height, width, filter_size, filter_count
LINEAR = 1  # dims: input_size, output_size
SIGMOID = 2

# Dense layers with fewer weights than this stay on one thread: starting a parallel region costs
# a few microseconds, more than a small layer takes.
PARALLEL_MIN_WEIGHTS = 1 << 16


@jit(cache=False)
def _forward(ops, dims, params, acts, partial):
    p = 0
    for l in range(ops.size):
        x, y = acts[l], acts[l + 1]
        if ops[l] == CONV:
            d, h, w, s, c = dims[l, 0], dims[l, 1], dims[l, 2], dims[l, 3], dims[l, 4]
            conv_forward(
                x.reshape((d, h, w)),
                params[p].reshape((c, d, s, s)),
                params[p + 1].reshape((c, h - s + 1, w - s + 1)),
                y.reshape((c, h - s + 1, w - s + 1)),
            )
            p += 2
        elif ops[l] == LINEAR:
            n, m = dims[l, 0], dims[l, 1]
            args = (
                params[p].reshape((m, n)),
                x.reshape((n, 1)),
                params[p + 1].reshape((m, 1)),
                y.reshape((m, 1)),
            )
            if partial is None:
                dense_forward(*args)
            elif m * n >= PARALLEL_MIN_WEIGHTS:
                dense_forward_blocks(*args, partial.shape[0])
            else:
                dense_forward(*args)
            p += 2
        else:
            sigmoid(x, y)


@jit(cache=False)
def _backward(ops, dims, params, acts, grads, rate, row, partial):
    """Backward from ``grads[L]``; the first layer's input gradient is never needed."""
    p = len(params)
    for l in range(ops.size - 1, -1, -1):
        x, g_out, g_in = acts[l], grads[l + 1], grads[l]
        if ops[l] == CONV:
            p -= 2
            d, h, w, s, c = dims[l, 0], dims[l, 1], dims[l, 2], dims[l, 3], dims[l, 4]
            shape_out = (c, h - s + 1, w - s + 1)
            args = (
                x.reshape((d, h, w)),
                params[p].reshape((c, d, s, s)),
                params[p + 1].reshape(shape_out),
                g_out.reshape(shape_out),
                rate,
            )
            if l == 0:
                conv_sgd(*args, row)
            else:
                conv_backward_sgd(*args, g_in.reshape((d, h, w)), row)
        elif ops[l] == LINEAR:
            p -= 2
            n, m = dims[l, 0], dims[l, 1]
            args = (
                params[p].reshape((m, n)),
                params[p + 1].reshape((m, 1)),
                x.reshape((n, 1)),
                g_out.reshape((m, 1)),
                rate,
            )
            if l == 0:
                dense_sgd(*args)
            elif partial is None:
                dense_backward_sgd(*args, g_in.reshape((n, 1)))
            elif m * n >= PARALLEL_MIN_WEIGHTS:
                dense_backward_sgd_blocks(*args, g_in.reshape((n, 1)), partial)
            else:
                dense_backward_sgd(*args, g_in.reshape((n, 1)))
        elif l > 0:
            sigmoid_backward(acts[l + 1], g_out, g_in)


@jit(cache=False)
def _train(ops, dims, params, acts, grads, xs, ys, rate, row, partial, losses):
    out = acts[len(acts) - 1]
    g = grads[len(grads) - 1]
    size = out.size
    two = out.dtype.type(2)
    for k in range(xs.shape[0]):
        acts[0][:] = xs[k]
        _forward(ops, dims, params, acts, partial)
        y = ys[k]
        # mse = np.mean(np.power(actual - predicted, 2)); summed in float64 as np.mean does.
        total = 0.0
        for i in range(size):
            e = y[i] - out[i]
            total += e * e
        loss = total / size
        if not np.isfinite(loss):
            return k
        losses[k] = loss
        for i in range(size):  # d_mse = 2 * (predicted - actual) / np.size(actual)
            g[i] = two * (out[i] - y[i]) / size
        _backward(ops, dims, params, acts, grads, rate, row, partial)
    return xs.shape[0]


@jit
def train_mse_sgd(ops, dims, params, acts, grads, xs, ys, rate, row, losses):
    """Seed's ``Network.train`` inner loop with ``mse``/``d_mse``, over samples ``xs``/``ys``.

    xs (N, input size), ys (N, output size), losses (N,) receives each sample's loss; ``row`` is
    scratch for the convolutions (as long as the widest output row). Returns N, or the index of
    the first sample whose loss is not finite, before that sample's update.
    """
    return _train(ops, dims, params, acts, grads, xs, ys, rate, row, None, losses)


@jit(cache=False)
def train_mse_sgd_threads(ops, dims, params, acts, grads, xs, ys, rate, row, partial, losses):
    """:func:`train_mse_sgd` with the large dense layers split into ``len(partial)`` blocks run
    on ``numba.get_num_threads()`` threads; ``partial`` is scratch (blocks, widest dense input)."""
    return _train(ops, dims, params, acts, grads, xs, ys, rate, row, partial, losses)


@jit
def predict_many(ops, dims, params, acts, xs, out):
    """``out[k] = network(xs[k])`` for every sample; shapes as :func:`train_mse_sgd`."""
    last = acts[len(acts) - 1]
    for k in range(xs.shape[0]):
        acts[0][:] = xs[k]
        _forward(ops, dims, params, acts, None)
        out[k] = last
