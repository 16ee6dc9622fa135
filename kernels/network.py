"""A whole network's per-sample SGD loop in one compiled call.

The network arrives as a program: ``spec`` is a record array (:data:`LAYER`), one record per
layer, read by field name (``spec[l].op``, ``spec[l].in_size``...). Every layer's parameters live in
one flat buffer ``params`` (weights or filters at ``spec[l].weights``, biases at
``spec[l].biases``); activations and gradients in the flat buffers ``acts`` and ``grads``, layer
``l``'s input at ``spec[l].x`` and its output at ``spec[l].y``. Every argument is an array or a
number whatever the network's length, so each entry point compiles once per dtype (the per-sample
loops once per dtype and ``fastcnn._compiled.kinds`` of layers, at most four), never per length.
A Reshape is no operation on flat buffers, so it never appears.

``partial`` is None on one thread. With threads it is scratch of shape (blocks, widest dense
input), and the large dense layers run on the parallel kernels. The one-thread entry points are
cached; the threaded ones compile in each process (see ``_jit.jit``). ``partial is None`` is
decided when Numba compiles, so the cached code never contains a parallel kernel.

``_forward``, ``_backward`` and ``_train`` are inlined into the entry points (``inline=True``):
compiled as functions of their own, each would make LLVM optimise every kernel below it once
more, which cost about a third of a cold start. So are the small helpers ``_copy``, ``_widen``
and ``_wide_scratch`` (0.7 s of a cold start, measured). Inlining the larger kernels too made it
slower (Numba's inliner re-types what it inlines: 4.9 -> 6.5 s), and a kernel with fast-math
flags cannot be inlined at all (the flags are per function).
"""

import numpy as np

from ._jit import jit
from .activation import sigmoid, sigmoid_backward
from .batch import (
    conv_forward_batch,
    conv_gradient_batch,
    conv_input_gradient_batch,
    dense_forward_batch,
    dense_input_gradient_batch,
    dense_sgd_batch,
    mse_batch,
    sgd_apply,
)
from .conv import conv_backward_sgd, conv_forward, conv_sgd
from .dense import (
    _backward_rows,
    _forward_rows,
    dense_backward_sgd_blocks,
    dense_forward_blocks,
    dense_sgd,
)

CONV = 0
LINEAR = 1
SIGMOID = 2

# One layer of a program. Sizes count values; offsets index the flat buffers. A field a layer
# does not use is 0 (an activation has no parameters, a dense layer no image sizes).
LAYER = np.dtype(
    [
        ("op", np.int64),  # CONV, LINEAR, SIGMOID...
        ("in_size", np.int64),
        ("out_size", np.int64),
        ("x", np.int64),  # offset of the layer's input in acts/grads
        ("y", np.int64),  # offset of its output
        ("weights", np.int64),  # offset of its weights (filters) in params
        ("biases", np.int64),  # offset of its biases in params
        ("depth", np.int64),  # a convolution's input (depth, height, width) and filters
        ("height", np.int64),
        ("width", np.int64),
        ("filter_size", np.int64),
        ("filter_count", np.int64),
        ("stride", np.int64),  # a dense layer's weights row stride in params, >= in_size
    ],
    align=True,
)

# Dense layers with fewer weights than this stay on one thread: starting a parallel region costs
# a few microseconds, more than a small layer takes.
PARALLEL_MIN_WEIGHTS = 1 << 16


@jit(inline=True)
def _copy(a, out):
    """``out[:] = a`` for 1-D arrays of one size, as a loop: an array-to-array assignment makes
    Numba compile its broadcast check, whose error message pulls in seconds of string code."""
    for i in range(a.size):
        out[i] = a[i]


@jit(inline=True)
def _conv_dims(layer):
    """A convolution record's input (depth, height, width), filter size and count, and output
    height and width."""
    s = layer.filter_size
    h, wd = layer.height, layer.width
    return layer.depth, h, wd, s, layer.filter_count, h - s + 1, wd - s + 1


@jit(inline=True)
def _rows(params, layer):
    """A dense layer's weights as (out_size, stride): rows padded to ``layer.stride`` values (see
    ``kernels.dense``); the per-sample kernels read the first ``in_size`` of each."""
    return params[layer.weights : layer.weights + layer.out_size * layer.stride].reshape(
        (layer.out_size, layer.stride)
    )


@jit(inline=True)
def _forward(spec, params, acts, partial):
    for l in range(spec.size):
        layer = spec[l]
        x = acts[layer.x : layer.x + layer.in_size]
        y = acts[layer.y : layer.y + layer.out_size]
        b = params[layer.biases : layer.biases + layer.out_size]
        if layer.op == CONV:
            d, h, wd, s, c, oh, ow = _conv_dims(layer)
            conv_forward(
                x.reshape((d, h, wd)),
                params[layer.weights : layer.biases].reshape((c, d, s, s)),
                b.reshape((c, oh, ow)),
                y.reshape((c, oh, ow)),
            )
        elif layer.op == LINEAR:
            n, m = layer.in_size, layer.out_size
            args = (_rows(params, layer), x.reshape((n, 1)), b.reshape((m, 1)), y.reshape((m, 1)))
            # The row kernels themselves, here and in _backward, not their one-line wrappers
            # dense_forward and dense_backward_sgd: each would be one more function to compile.
            if partial is None:
                _forward_rows(*args, 0, m)
            elif m * n >= PARALLEL_MIN_WEIGHTS:
                dense_forward_blocks(*args, partial.shape[0])
            else:
                _forward_rows(*args, 0, m)
        else:
            sigmoid(x, y)


@jit(inline=True)
def _backward(spec, params, acts, grads, rate, partial, inner_conv, first_dense):
    """Backward from the last layer's output gradient; the first layer's input gradient is never
    needed. ``inner_conv`` and ``first_dense`` (``fastcnn._compiled.kinds``) leave out, when Numba
    compiles, the branches for layers the program does not have."""
    for l in range(spec.size - 1, -1, -1):
        layer = spec[l]
        x = acts[layer.x : layer.x + layer.in_size]
        g_in = grads[layer.x : layer.x + layer.in_size]
        g_out = grads[layer.y : layer.y + layer.out_size]
        b = params[layer.biases : layer.biases + layer.out_size]
        if layer.op == CONV:
            d, h, wd, s, c, oh, ow = _conv_dims(layer)
            xc = x.reshape((d, h, wd))
            f = params[layer.weights : layer.biases].reshape((c, d, s, s))
            bc = b.reshape((c, oh, ow))
            gc = g_out.reshape((c, oh, ow))
            if inner_conv is None or l == 0:  # None: every convolution is a first layer
                conv_sgd(xc, f, bc, gc, rate)
            else:
                conv_backward_sgd(xc, f, bc, gc, rate, g_in.reshape((d, h, wd)))
        elif layer.op == LINEAR:
            n, m = layer.in_size, layer.out_size
            args = (
                _rows(params, layer),
                b.reshape((m, 1)),
                x.reshape((n, 1)),
                g_out.reshape((m, 1)),
                rate,
            )
            if partial is not None and m * n >= PARALLEL_MIN_WEIGHTS:
                # Each core updates the rows it read in the forward pass, a first layer's too
                # (its input gradient, computed alongside, is never read): updated by the other
                # core instead, those rows crossed between the cores' caches every sample, and
                # a dense-first network ran 3x slower on two threads than on one (measured).
                dense_backward_sgd_blocks(*args, g_in.reshape((n, 1)), partial)
            elif first_dense is None:  # no dense layer is a first layer
                _backward_rows(*args, g_in.reshape((n, 1)), 0, m)
            elif l == 0:
                dense_sgd(*args)
            else:
                _backward_rows(*args, g_in.reshape((n, 1)), 0, m)
        elif l > 0:
            sigmoid_backward(acts[layer.y : layer.y + layer.out_size], g_out, g_in)


@jit(inline=True)
def _train(spec, params, acts, grads, xs, ys, rate, partial, inner_conv, first_dense, losses):
    last = spec[spec.size - 1]
    out = acts[last.y : last.y + last.out_size]
    g = grads[last.y : last.y + last.out_size]
    first = spec[0]
    x = acts[first.x : first.x + first.in_size]
    size = out.size
    two = out.dtype.type(2)
    for k in range(xs.shape[0]):
        _copy(xs[k], x)
        _forward(spec, params, acts, partial)
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
        _backward(spec, params, acts, grads, rate, partial, inner_conv, first_dense)
    return xs.shape[0]


@jit
def train_mse_sgd(spec, params, acts, grads, xs, ys, rate, inner_conv, first_dense, losses):
    """Seed's ``Network.train`` inner loop with ``mse``/``d_mse``, over samples ``xs``/``ys``.

    xs (N, input size), ys (N, output size), losses (N,) receives each sample's loss;
    ``inner_conv, first_dense`` are ``fastcnn._compiled.kinds(spec)``. Returns N, or the index of
    the first sample whose loss is not finite, before that sample's update.
    """
    return _train(spec, params, acts, grads, xs, ys, rate, None, inner_conv, first_dense, losses)


@jit(cache=False)
def train_mse_sgd_threads(
    spec, params, acts, grads, xs, ys, rate, partial, inner_conv, first_dense, losses
):
    """:func:`train_mse_sgd` with the large dense layers split into ``len(partial)`` blocks run
    on ``numba.get_num_threads()`` threads; ``partial`` is scratch (blocks, widest dense input)."""
    return _train(spec, params, acts, grads, xs, ys, rate, partial, inner_conv, first_dense, losses)


# --------------------------------------------------------------------------------------------------
# mini-batches: the same program, every buffer region holding a whole batch
#
# ``acts`` and ``grads`` are then ``capacity`` times as long as for one sample: the region of a
# layer whose per-sample offset is ``o`` and size ``s`` starts at ``o * capacity`` and holds the
# batch's rows (n, s) one after the other, so a dense layer's batch is a C-contiguous matrix that
# BLAS multiplies in one call, and a shorter last batch uses the region's first rows.


@jit(inline=True)
def _region(buffer, offset, size, capacity, n):
    """The (n, size) rows of a batch region (see above), as a C-contiguous matrix."""
    start = offset * capacity
    return buffer[start : start + n * size].reshape((n, size))


@jit(inline=True)
def _forward_batch(spec, params, acts, capacity, n):
    for l in range(spec.size):
        layer = spec[l]
        x = _region(acts, layer.x, layer.in_size, capacity, n)
        y = _region(acts, layer.y, layer.out_size, capacity, n)
        w = params[layer.weights : layer.biases]
        b = params[layer.biases : layer.biases + layer.out_size]
        if layer.op == CONV:
            d, h, wd, s, c, oh, ow = _conv_dims(layer)
            conv_forward_batch(
                x.reshape((n, d, h, wd)),
                w.reshape((c, d, s, s)),
                b.reshape((c, oh, ow)),
                y.reshape((n, c, oh, ow)),
            )
        elif layer.op == LINEAR:
            m, k = layer.out_size, layer.in_size
            dense_forward_batch(x, w.reshape((m, k)), b, y)
        else:
            sigmoid(x.reshape(-1), y.reshape(-1))


@jit(inline=True)
def _backward_batch(spec, params, acts, grads, sums, capacity, n, rate):
    """The batch's SGD step, from the last layer's output gradients: a dense layer's weights move
    in the gemm that sums their gradient (:func:`batch.dense_sgd_batch`), after its input gradient
    is taken; every other parameter's summed gradient goes to ``sums`` (laid out as ``params``) and
    moves by :func:`sgd_apply` at the end. The first layer's input gradient is never needed."""
    for l in range(spec.size - 1, -1, -1):
        layer = spec[l]
        x = _region(acts, layer.x, layer.in_size, capacity, n)
        g_in = _region(grads, layer.x, layer.in_size, capacity, n)
        g_out = _region(grads, layer.y, layer.out_size, capacity, n)
        w = params[layer.weights : layer.biases]
        d_w = sums[layer.weights : layer.biases]
        d_b = sums[layer.biases : layer.biases + layer.out_size]
        if layer.op == CONV:
            d, h, wd, s, c, oh, ow = _conv_dims(layer)
            for i in range(d_w.size):  # conv_gradient_batch adds into its sums
                d_w[i] = 0
            for i in range(d_b.size):
                d_b[i] = 0
            g = g_out.reshape((n, c, oh, ow))
            xs = x.reshape((n, d, h, wd))
            conv_gradient_batch(xs, g, d_w.reshape((c, d, s, s)), d_b.reshape((c, oh, ow)))
            if l > 0:
                conv_input_gradient_batch(g, w.reshape((c, d, s, s)), g_in.reshape((n, d, h, wd)))
        elif layer.op == LINEAR:
            m, k = layer.out_size, layer.in_size
            if l > 0:  # from the weights before this batch's step
                dense_input_gradient_batch(g_out, w.reshape((m, k)), g_in)
            dense_sgd_batch(x, g_out, w.reshape((m, k)), d_b, n, rate)
        elif l > 0:
            y = _region(acts, layer.y, layer.out_size, capacity, n)
            sigmoid_backward(y.reshape(-1), g_out.reshape(-1), g_in.reshape(-1))
    for l in range(spec.size):
        layer = spec[l]
        if layer.op == CONV:
            start = layer.weights
        elif layer.op == LINEAR:
            start = layer.biases  # its weights have moved already
        else:
            continue
        stop = layer.biases + layer.out_size
        sgd_apply(params[start:stop], sums[start:stop], n, rate)


@jit(inline=True)
def _forward_chunk(spec, params, acts, xs, start, capacity, n):
    """Samples ``start:start + n`` of ``xs`` into the first layer's batch region, then the
    forward pass of the whole batch."""
    first = spec[0]
    x = _region(acts, first.x, first.in_size, capacity, n)
    for b in range(n):
        _copy(xs[start + b], x[b])
    _forward_batch(spec, params, acts, capacity, n)


@jit
def train_mse_sgd_batch(spec, params, acts, grads, sums, xs, ys, capacity, rate, losses):
    """Mini-batch SGD with ``mse``: each consecutive batch of ``capacity`` samples of ``xs``/``ys``
    (the last may be shorter) moves ``params`` once by ``rate`` times the mean of its per-sample
    gradients, taken at the parameters before the batch.

    acts and grads hold ``capacity`` times the per-sample buffers; ``sums`` is scratch as long as
    ``params``; ``losses`` (N,) float64 receives each sample's mse. Returns N, or the first sample
    of the first batch holding a non-finite loss, before that batch's update.
    """
    last = spec[spec.size - 1]
    total = xs.shape[0]
    for start in range(0, total, capacity):
        n = min(capacity, total - start)
        _forward_chunk(spec, params, acts, xs, start, capacity, n)
        out = _region(acts, last.y, last.out_size, capacity, n)
        g = _region(grads, last.y, last.out_size, capacity, n)
        batch_losses = losses[start : start + n]
        mse_batch(out, ys[start : start + n], batch_losses, g)
        for b in range(n):
            if not np.isfinite(batch_losses[b]):
                return start
        _backward_batch(spec, params, acts, grads, sums, capacity, n, rate)
    return total


@jit
def predict_batch(spec, params, acts, xs, capacity, out):
    """``out[k] = network(xs[k])`` for every sample, ``capacity`` samples per forward pass (one
    GEMM per dense layer); ``acts`` as for :func:`train_mse_sgd_batch`."""
    last = spec[spec.size - 1]
    total = xs.shape[0]
    for start in range(0, total, capacity):
        n = min(capacity, total - start)
        _forward_chunk(spec, params, acts, xs, start, capacity, n)
        y = _region(acts, last.y, last.out_size, capacity, n)
        for b in range(n):
            _copy(y[b], out[start + b])
