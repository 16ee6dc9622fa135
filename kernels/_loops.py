"""The compiled loops, written by ``fastcnn._codegen`` from the registry: do not edit by hand;
``python -m fastcnn._codegen`` rewrites this file, and ``tests/test_registry.py`` fails when it is
stale.

The network arrives as a program (``fastcnn._compiled.Program``): ``spec``, one record per layer
(``L.op`` indexes :data:`KINDS`; sizes, offsets into the flat buffers, the kind's own ``dims``),
and flat buffers: ``params`` (every parameter), ``gparams`` (their gradients, laid out alike),
``acts`` and ``grads`` (activations and their gradients; layer ``l``'s input at ``L.x``, its output
at ``L.y``), ``scratch`` (each record's from ``L.scratch``). Every argument is an array, a number
or a flag (True, or None for a kind the network lacks, which removes its branches when Numba
compiles), so an entry point compiles once per dtype and set of kinds, never per network length.

``partial`` is None on one thread; with threads it is scratch (blocks, widest dense input) for the
dense kinds' parallel kernels. ``train_sgd_threads`` compiles in every process (parallel code is
never cached; see ``_jit.jit``). The loops are inlined into the entry points: compiled as
functions of their own, each would make LLVM optimise every kernel below it once more.
"""

import numpy as np

from ._jit import jit
from .activation import sigmoid as sigmoid__kernel, sigmoid_backward as sigmoid__kernel_backward
from .buffers import copy, region
from .conv import backward as conv__backward, backward_batch as conv__backward_batch, backward_first as conv__backward_first, backward_first_batch as conv__backward_first_batch, forward as conv__forward, forward_batch as conv__forward_batch
from .conv_gemm import backward_batch as conv_padded5__backward_batch, backward_batch as conv_padded__backward_batch, backward_first_batch as conv_padded5__backward_first_batch, backward_first_batch as conv_padded__backward_first_batch, forward_batch as conv_padded5__forward_batch, forward_batch as conv_padded__forward_batch
from .conv_padded import backward as conv_padded__backward, backward5 as conv_padded5__backward, backward_first as conv_padded5__backward_first, backward_first as conv_padded__backward_first, forward as conv_padded__forward, forward5 as conv_padded5__forward
from .dense import backward as dense__backward, backward_batch as dense__backward_batch, backward_first as dense__backward_first, backward_first_batch as dense__backward_first_batch, backward_first_sgd as dense__backward_first_sgd, backward_first_sgd_batch as dense__backward_first_sgd_batch, backward_sgd as dense__backward_sgd, backward_sgd_batch as dense__backward_sgd_batch, forward as dense__forward, forward_batch as dense__forward_batch
from .losses import mse as loss__mse
from .optim import optimizer_step
from .pointwise import leaky_relu as leaky_relu__kernel, leaky_relu_backward as leaky_relu__kernel_backward, relu as relu__kernel, relu_backward as relu__kernel_backward, tanh as tanh__kernel, tanh_backward as tanh__kernel_backward
from .pool import avg_backward as avgpool__backward, avg_backward_batch as avgpool__backward_batch, avg_forward as avgpool__forward, avg_forward_batch as avgpool__forward_batch, max_backward as maxpool__backward, max_backward_batch as maxpool__backward_batch, max_forward as maxpool__forward, max_forward_batch as maxpool__forward_batch
from .sgd import sgd_step
from .softmax import backward as softmax__backward, backward_batch as softmax__backward_batch, binary_cross_entropy as loss__binary_cross_entropy, cross_entropy as loss__cross_entropy, forward as softmax__forward, forward_batch as softmax__forward_batch, softmax_cross_entropy as loss__cross_entropy__softmax

KINDS = ('conv', 'conv_padded', 'conv_padded5', 'dense', 'sigmoid', 'relu', 'tanh', 'leaky_relu', 'maxpool', 'avgpool', 'softmax')
LOSSES = ('mse', 'cross_entropy', 'cross_entropy__softmax', 'binary_cross_entropy')


@jit(inline=True)
def _sigmoid_forward(L, params, acts, scratch, partial):
    sigmoid__kernel(acts[L.x : L.x + L.in_size], acts[L.y : L.y + L.out_size])


@jit(inline=True)
def _sigmoid_backward(L, params, gparams, acts, grads, scratch, rate, partial):
    sigmoid__kernel_backward(acts[L.x : L.x + L.in_size], acts[L.y : L.y + L.out_size], grads[L.y : L.y + L.out_size], grads[L.x : L.x + L.in_size])


@jit(inline=True)
def _sigmoid_forward_batch(L, params, acts, scratch, capacity, n):
    sigmoid__kernel(acts[L.x * capacity : L.x * capacity + n * L.in_size], acts[L.y * capacity : L.y * capacity + n * L.out_size])


@jit(inline=True)
def _sigmoid_backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    sigmoid__kernel_backward(acts[L.x * capacity : L.x * capacity + n * L.in_size], acts[L.y * capacity : L.y * capacity + n * L.out_size], grads[L.y * capacity : L.y * capacity + n * L.out_size], grads[L.x * capacity : L.x * capacity + n * L.in_size])


@jit(inline=True)
def _relu_forward(L, params, acts, scratch, partial):
    relu__kernel(acts[L.x : L.x + L.in_size], acts[L.y : L.y + L.out_size])


@jit(inline=True)
def _relu_backward(L, params, gparams, acts, grads, scratch, rate, partial):
    relu__kernel_backward(acts[L.x : L.x + L.in_size], acts[L.y : L.y + L.out_size], grads[L.y : L.y + L.out_size], grads[L.x : L.x + L.in_size])


@jit(inline=True)
def _relu_forward_batch(L, params, acts, scratch, capacity, n):
    relu__kernel(acts[L.x * capacity : L.x * capacity + n * L.in_size], acts[L.y * capacity : L.y * capacity + n * L.out_size])


@jit(inline=True)
def _relu_backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    relu__kernel_backward(acts[L.x * capacity : L.x * capacity + n * L.in_size], acts[L.y * capacity : L.y * capacity + n * L.out_size], grads[L.y * capacity : L.y * capacity + n * L.out_size], grads[L.x * capacity : L.x * capacity + n * L.in_size])


@jit(inline=True)
def _tanh_forward(L, params, acts, scratch, partial):
    tanh__kernel(acts[L.x : L.x + L.in_size], acts[L.y : L.y + L.out_size])


@jit(inline=True)
def _tanh_backward(L, params, gparams, acts, grads, scratch, rate, partial):
    tanh__kernel_backward(acts[L.x : L.x + L.in_size], acts[L.y : L.y + L.out_size], grads[L.y : L.y + L.out_size], grads[L.x : L.x + L.in_size])


@jit(inline=True)
def _tanh_forward_batch(L, params, acts, scratch, capacity, n):
    tanh__kernel(acts[L.x * capacity : L.x * capacity + n * L.in_size], acts[L.y * capacity : L.y * capacity + n * L.out_size])


@jit(inline=True)
def _tanh_backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    tanh__kernel_backward(acts[L.x * capacity : L.x * capacity + n * L.in_size], acts[L.y * capacity : L.y * capacity + n * L.out_size], grads[L.y * capacity : L.y * capacity + n * L.out_size], grads[L.x * capacity : L.x * capacity + n * L.in_size])


@jit(inline=True)
def _leaky_relu_forward(L, params, acts, scratch, partial):
    leaky_relu__kernel(acts[L.x : L.x + L.in_size], acts[L.y : L.y + L.out_size])


@jit(inline=True)
def _leaky_relu_backward(L, params, gparams, acts, grads, scratch, rate, partial):
    leaky_relu__kernel_backward(acts[L.x : L.x + L.in_size], acts[L.y : L.y + L.out_size], grads[L.y : L.y + L.out_size], grads[L.x : L.x + L.in_size])


@jit(inline=True)
def _leaky_relu_forward_batch(L, params, acts, scratch, capacity, n):
    leaky_relu__kernel(acts[L.x * capacity : L.x * capacity + n * L.in_size], acts[L.y * capacity : L.y * capacity + n * L.out_size])


@jit(inline=True)
def _leaky_relu_backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    leaky_relu__kernel_backward(acts[L.x * capacity : L.x * capacity + n * L.in_size], acts[L.y * capacity : L.y * capacity + n * L.out_size], grads[L.y * capacity : L.y * capacity + n * L.out_size], grads[L.x * capacity : L.x * capacity + n * L.in_size])

@jit(inline=True)
def _step(spec, params, gparams, count, rate):
    """The SGD step of every parameter whose hook left it to the loop (not fused)."""
    for l in range(spec.size):
        L = spec[l]
        if L.step_stop > L.step_start:
            start, stop = L.step_start, L.step_stop
            sgd_step(params[start:stop], gparams[start:stop], count, rate)


@jit
def _opt_step(spec, params, gparams, count, opt, index):
    """Step ``index`` of the chunk by an optimizer, over every parameter (no hook fused a step):
    ``opt = (code, hyper, lrs, taken, s1, s2)``, the optimizer's code and hyper-parameters
    (``kernels.optim.optimizer_step``), each step's learning rate, the steps taken before the
    chunk, and its state buffers laid out as ``params`` (empty when unused)."""
    code, hyper, lrs, taken, s1, s2 = opt
    lr = lrs[index]
    for l in range(spec.size):
        L = spec[l]
        if L.step_stop > L.step_start:
            a, b = L.step_start, L.step_stop
            optimizer_step(
                params[a:b], gparams[a:b], count, s1[a:b], s2[a:b], code, hyper, lr, taken + index
            )


@jit
def train_sgd(
    spec, params, gparams, acts, grads, scratch, xs, ys, rate, loss, losses, opt, conv, conv_first, conv_inner, conv_padded, conv_padded_first, conv_padded_inner, conv_padded5, conv_padded5_first, conv_padded5_inner, dense, dense_first, dense_inner, sigmoid, sigmoid_inner, relu, relu_inner, tanh, tanh_inner, leaky_relu, leaky_relu_inner, maxpool, maxpool_inner, avgpool, avgpool_inner, softmax, softmax_inner, loss_mse, loss_cross_entropy, loss_cross_entropy__softmax, loss_binary_cross_entropy
):
    """The seed's ``Network.train`` inner loop (per-sample SGD) over samples ``xs``/``ys``.

    xs (N, input size), ys (N, output size); ``loss`` indexes :data:`LOSSES`; losses (N,) receives
    each sample's loss. ``opt`` None: the seed's SGD by ``rate``; else an optimizer (see
    :func:`_opt_step`; ``rate`` unused) steps after every sample. Returns N, or the index of the
    first sample whose loss is not finite, before that sample's update.
    """
    last = spec[spec.size - 1]
    out = acts[last.y : last.y + last.out_size]
    g = grads[last.y : last.y + last.out_size]
    lx = acts[last.x : last.x + last.in_size]
    lg = grads[last.x : last.x + last.in_size]
    first = spec[0]
    x = acts[first.x : first.x + first.in_size]
    for k in range(xs.shape[0]):
        copy(xs[k], x)
        for l in range(spec.size):
            L = spec[l]
            op = L.op
            if op == 0:  # conv
                if conv is not None:
                    conv__forward(L, params, acts, scratch, None)
            elif op == 1:  # conv_padded
                if conv_padded is not None:
                    conv_padded__forward(L, params, acts, scratch, None)
            elif op == 2:  # conv_padded5
                if conv_padded5 is not None:
                    conv_padded5__forward(L, params, acts, scratch, None)
            elif op == 3:  # dense
                if dense is not None:
                    dense__forward(L, params, acts, scratch, None)
            elif op == 4:  # sigmoid
                if sigmoid is not None:
                    _sigmoid_forward(L, params, acts, scratch, None)
            elif op == 5:  # relu
                if relu is not None:
                    _relu_forward(L, params, acts, scratch, None)
            elif op == 6:  # tanh
                if tanh is not None:
                    _tanh_forward(L, params, acts, scratch, None)
            elif op == 7:  # leaky_relu
                if leaky_relu is not None:
                    _leaky_relu_forward(L, params, acts, scratch, None)
            elif op == 8:  # maxpool
                if maxpool is not None:
                    maxpool__forward(L, params, acts, scratch, None)
            elif op == 9:  # avgpool
                if avgpool is not None:
                    avgpool__forward(L, params, acts, scratch, None)
            elif op == 10:  # softmax
                if softmax is not None:
                    softmax__forward(L, params, acts, scratch, None)
        value = np.nan
        skip = 0
        if loss == 0 and loss_mse is not None:
            value = loss__mse(out, ys[k], g)
        if loss == 1 and loss_cross_entropy is not None:
            value = loss__cross_entropy(out, ys[k], g)
        if loss == 2 and loss_cross_entropy__softmax is not None:
            value = loss__cross_entropy__softmax(lx, ys[k], out, lg)
            skip = 1
        if loss == 3 and loss_binary_cross_entropy is not None:
            value = loss__binary_cross_entropy(out, ys[k], g)
        if not np.isfinite(value):
            return k
        losses[k] = value
        for l in range(spec.size - 1 - skip, -1, -1):
            L = spec[l]
            op = L.op
            if op == 0:  # conv
                if l == 0:
                    if conv_first is not None:
                        conv__backward_first(L, params, gparams, acts, grads, scratch, rate, None)
                elif conv_inner is not None:
                    conv__backward(L, params, gparams, acts, grads, scratch, rate, None)
            elif op == 1:  # conv_padded
                if l == 0:
                    if conv_padded_first is not None:
                        conv_padded__backward_first(L, params, gparams, acts, grads, scratch, rate, None)
                elif conv_padded_inner is not None:
                    conv_padded__backward(L, params, gparams, acts, grads, scratch, rate, None)
            elif op == 2:  # conv_padded5
                if l == 0:
                    if conv_padded5_first is not None:
                        conv_padded5__backward_first(L, params, gparams, acts, grads, scratch, rate, None)
                elif conv_padded5_inner is not None:
                    conv_padded5__backward(L, params, gparams, acts, grads, scratch, rate, None)
            elif op == 3:  # dense
                if l == 0:
                    if dense_first is not None:
                        if opt is None:
                            dense__backward_first_sgd(L, params, gparams, acts, grads, scratch, rate, None)
                        else:
                            dense__backward_first(L, params, gparams, acts, grads, scratch, rate, None)
                elif dense_inner is not None:
                    if opt is None:
                        dense__backward_sgd(L, params, gparams, acts, grads, scratch, rate, None)
                    else:
                        dense__backward(L, params, gparams, acts, grads, scratch, rate, None)
            elif op == 4:  # sigmoid
                if l > 0 and sigmoid_inner is not None:
                    _sigmoid_backward(L, params, gparams, acts, grads, scratch, rate, None)
            elif op == 5:  # relu
                if l > 0 and relu_inner is not None:
                    _relu_backward(L, params, gparams, acts, grads, scratch, rate, None)
            elif op == 6:  # tanh
                if l > 0 and tanh_inner is not None:
                    _tanh_backward(L, params, gparams, acts, grads, scratch, rate, None)
            elif op == 7:  # leaky_relu
                if l > 0 and leaky_relu_inner is not None:
                    _leaky_relu_backward(L, params, gparams, acts, grads, scratch, rate, None)
            elif op == 8:  # maxpool
                if l > 0 and maxpool_inner is not None:
                    maxpool__backward(L, params, gparams, acts, grads, scratch, rate, None)
            elif op == 9:  # avgpool
                if l > 0 and avgpool_inner is not None:
                    avgpool__backward(L, params, gparams, acts, grads, scratch, rate, None)
            elif op == 10:  # softmax
                if l > 0 and softmax_inner is not None:
                    softmax__backward(L, params, gparams, acts, grads, scratch, rate, None)
        if opt is None:
            _step(spec, params, gparams, 1, rate)
        else:
            _opt_step(spec, params, gparams, 1, opt, k)
    return xs.shape[0]


@jit(cache=False)
def train_sgd_threads(
    spec, params, gparams, acts, grads, scratch, xs, ys, rate, loss, losses, opt, partial, conv, conv_first, conv_inner, conv_padded, conv_padded_first, conv_padded_inner, conv_padded5, conv_padded5_first, conv_padded5_inner, dense, dense_first, dense_inner, sigmoid, sigmoid_inner, relu, relu_inner, tanh, tanh_inner, leaky_relu, leaky_relu_inner, maxpool, maxpool_inner, avgpool, avgpool_inner, softmax, softmax_inner, loss_mse, loss_cross_entropy, loss_cross_entropy__softmax, loss_binary_cross_entropy
):
    """:func:`train_sgd` with the large dense layers split into ``len(partial)`` blocks run on
    ``numba.get_num_threads()`` threads."""
    last = spec[spec.size - 1]
    out = acts[last.y : last.y + last.out_size]
    g = grads[last.y : last.y + last.out_size]
    lx = acts[last.x : last.x + last.in_size]
    lg = grads[last.x : last.x + last.in_size]
    first = spec[0]
    x = acts[first.x : first.x + first.in_size]
    for k in range(xs.shape[0]):
        copy(xs[k], x)
        for l in range(spec.size):
            L = spec[l]
            op = L.op
            if op == 0:  # conv
                if conv is not None:
                    conv__forward(L, params, acts, scratch, partial)
            elif op == 1:  # conv_padded
                if conv_padded is not None:
                    conv_padded__forward(L, params, acts, scratch, partial)
            elif op == 2:  # conv_padded5
                if conv_padded5 is not None:
                    conv_padded5__forward(L, params, acts, scratch, partial)
            elif op == 3:  # dense
                if dense is not None:
                    dense__forward(L, params, acts, scratch, partial)
            elif op == 4:  # sigmoid
                if sigmoid is not None:
                    _sigmoid_forward(L, params, acts, scratch, partial)
            elif op == 5:  # relu
                if relu is not None:
                    _relu_forward(L, params, acts, scratch, partial)
            elif op == 6:  # tanh
                if tanh is not None:
                    _tanh_forward(L, params, acts, scratch, partial)
            elif op == 7:  # leaky_relu
                if leaky_relu is not None:
                    _leaky_relu_forward(L, params, acts, scratch, partial)
            elif op == 8:  # maxpool
                if maxpool is not None:
                    maxpool__forward(L, params, acts, scratch, partial)
            elif op == 9:  # avgpool
                if avgpool is not None:
                    avgpool__forward(L, params, acts, scratch, partial)
            elif op == 10:  # softmax
                if softmax is not None:
                    softmax__forward(L, params, acts, scratch, partial)
        value = np.nan
        skip = 0
        if loss == 0 and loss_mse is not None:
            value = loss__mse(out, ys[k], g)
        if loss == 1 and loss_cross_entropy is not None:
            value = loss__cross_entropy(out, ys[k], g)
        if loss == 2 and loss_cross_entropy__softmax is not None:
            value = loss__cross_entropy__softmax(lx, ys[k], out, lg)
            skip = 1
        if loss == 3 and loss_binary_cross_entropy is not None:
            value = loss__binary_cross_entropy(out, ys[k], g)
        if not np.isfinite(value):
            return k
        losses[k] = value
        for l in range(spec.size - 1 - skip, -1, -1):
            L = spec[l]
            op = L.op
            if op == 0:  # conv
                if l == 0:
                    if conv_first is not None:
                        conv__backward_first(L, params, gparams, acts, grads, scratch, rate, partial)
                elif conv_inner is not None:
                    conv__backward(L, params, gparams, acts, grads, scratch, rate, partial)
            elif op == 1:  # conv_padded
                if l == 0:
                    if conv_padded_first is not None:
                        conv_padded__backward_first(L, params, gparams, acts, grads, scratch, rate, partial)
                elif conv_padded_inner is not None:
                    conv_padded__backward(L, params, gparams, acts, grads, scratch, rate, partial)
            elif op == 2:  # conv_padded5
                if l == 0:
                    if conv_padded5_first is not None:
                        conv_padded5__backward_first(L, params, gparams, acts, grads, scratch, rate, partial)
                elif conv_padded5_inner is not None:
                    conv_padded5__backward(L, params, gparams, acts, grads, scratch, rate, partial)
            elif op == 3:  # dense
                if l == 0:
                    if dense_first is not None:
                        if opt is None:
                            dense__backward_first_sgd(L, params, gparams, acts, grads, scratch, rate, partial)
                        else:
                            dense__backward_first(L, params, gparams, acts, grads, scratch, rate, partial)
                elif dense_inner is not None:
                    if opt is None:
                        dense__backward_sgd(L, params, gparams, acts, grads, scratch, rate, partial)
                    else:
                        dense__backward(L, params, gparams, acts, grads, scratch, rate, partial)
            elif op == 4:  # sigmoid
                if l > 0 and sigmoid_inner is not None:
                    _sigmoid_backward(L, params, gparams, acts, grads, scratch, rate, partial)
            elif op == 5:  # relu
                if l > 0 and relu_inner is not None:
                    _relu_backward(L, params, gparams, acts, grads, scratch, rate, partial)
            elif op == 6:  # tanh
                if l > 0 and tanh_inner is not None:
                    _tanh_backward(L, params, gparams, acts, grads, scratch, rate, partial)
            elif op == 7:  # leaky_relu
                if l > 0 and leaky_relu_inner is not None:
                    _leaky_relu_backward(L, params, gparams, acts, grads, scratch, rate, partial)
            elif op == 8:  # maxpool
                if l > 0 and maxpool_inner is not None:
                    maxpool__backward(L, params, gparams, acts, grads, scratch, rate, partial)
            elif op == 9:  # avgpool
                if l > 0 and avgpool_inner is not None:
                    avgpool__backward(L, params, gparams, acts, grads, scratch, rate, partial)
            elif op == 10:  # softmax
                if l > 0 and softmax_inner is not None:
                    softmax__backward(L, params, gparams, acts, grads, scratch, rate, partial)
        if opt is None:
            _step(spec, params, gparams, 1, rate)
        else:
            _opt_step(spec, params, gparams, 1, opt, k)
    return xs.shape[0]


@jit
def train_sgd_batch(
    spec, params, gparams, acts, grads, scratch, xs, ys, capacity, rate, loss, losses, opt, conv, conv_first, conv_inner, conv_padded, conv_padded_first, conv_padded_inner, conv_padded5, conv_padded5_first, conv_padded5_inner, dense, dense_first, dense_inner, sigmoid, sigmoid_inner, relu, relu_inner, tanh, tanh_inner, leaky_relu, leaky_relu_inner, maxpool, maxpool_inner, avgpool, avgpool_inner, softmax, softmax_inner, loss_mse, loss_cross_entropy, loss_cross_entropy__softmax, loss_binary_cross_entropy
):
    """Mini-batch SGD: each consecutive batch of ``capacity`` samples of ``xs``/``ys`` (the last may
    be shorter) moves ``params`` once by ``rate`` times the mean of its per-sample gradients, taken
    at the parameters before the batch (``opt``: an optimizer's step instead, as in
    :func:`train_sgd`).

    The buffers hold ``capacity`` samples (see ``kernels.buffers``); losses (N,) float64 receives
    each sample's loss. Returns N, or the first sample of the first batch holding a non-finite
    loss, before that batch's update.
    """
    last = spec[spec.size - 1]
    first = spec[0]
    total = xs.shape[0]
    for start in range(0, total, capacity):
        n = min(capacity, total - start)
        x = region(acts, first.x, first.in_size, capacity, n)
        for b in range(n):
            copy(xs[start + b], x[b])
        for l in range(spec.size):
            L = spec[l]
            op = L.op
            if op == 0:  # conv
                if conv is not None:
                    conv__forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 1:  # conv_padded
                if conv_padded is not None:
                    conv_padded__forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 2:  # conv_padded5
                if conv_padded5 is not None:
                    conv_padded5__forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 3:  # dense
                if dense is not None:
                    dense__forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 4:  # sigmoid
                if sigmoid is not None:
                    _sigmoid_forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 5:  # relu
                if relu is not None:
                    _relu_forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 6:  # tanh
                if tanh is not None:
                    _tanh_forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 7:  # leaky_relu
                if leaky_relu is not None:
                    _leaky_relu_forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 8:  # maxpool
                if maxpool is not None:
                    maxpool__forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 9:  # avgpool
                if avgpool is not None:
                    avgpool__forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 10:  # softmax
                if softmax is not None:
                    softmax__forward_batch(L, params, acts, scratch, capacity, n)
        out = region(acts, last.y, last.out_size, capacity, n)
        g = region(grads, last.y, last.out_size, capacity, n)
        lx = region(acts, last.x, last.in_size, capacity, n)
        lg = region(grads, last.x, last.in_size, capacity, n)
        finite = True
        for b in range(n):
            value = np.nan
            skip = 0
            if loss == 0 and loss_mse is not None:
                value = loss__mse(out[b], ys[start + b], g[b])
            if loss == 1 and loss_cross_entropy is not None:
                value = loss__cross_entropy(out[b], ys[start + b], g[b])
            if loss == 2 and loss_cross_entropy__softmax is not None:
                value = loss__cross_entropy__softmax(lx[b], ys[start + b], out[b], lg[b])
                skip = 1
            if loss == 3 and loss_binary_cross_entropy is not None:
                value = loss__binary_cross_entropy(out[b], ys[start + b], g[b])
            losses[start + b] = value
            finite = finite and np.isfinite(value)
        if not finite:
            return start
        for l in range(spec.size - 1 - skip, -1, -1):
            L = spec[l]
            op = L.op
            if op == 0:  # conv
                if l == 0:
                    if conv_first is not None:
                        conv__backward_first_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
                elif conv_inner is not None:
                    conv__backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
            elif op == 1:  # conv_padded
                if l == 0:
                    if conv_padded_first is not None:
                        conv_padded__backward_first_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
                elif conv_padded_inner is not None:
                    conv_padded__backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
            elif op == 2:  # conv_padded5
                if l == 0:
                    if conv_padded5_first is not None:
                        conv_padded5__backward_first_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
                elif conv_padded5_inner is not None:
                    conv_padded5__backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
            elif op == 3:  # dense
                if l == 0:
                    if dense_first is not None:
                        if opt is None:
                            dense__backward_first_sgd_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
                        else:
                            dense__backward_first_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
                elif dense_inner is not None:
                    if opt is None:
                        dense__backward_sgd_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
                    else:
                        dense__backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
            elif op == 4:  # sigmoid
                if l > 0 and sigmoid_inner is not None:
                    _sigmoid_backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
            elif op == 5:  # relu
                if l > 0 and relu_inner is not None:
                    _relu_backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
            elif op == 6:  # tanh
                if l > 0 and tanh_inner is not None:
                    _tanh_backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
            elif op == 7:  # leaky_relu
                if l > 0 and leaky_relu_inner is not None:
                    _leaky_relu_backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
            elif op == 8:  # maxpool
                if l > 0 and maxpool_inner is not None:
                    maxpool__backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
            elif op == 9:  # avgpool
                if l > 0 and avgpool_inner is not None:
                    avgpool__backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
            elif op == 10:  # softmax
                if l > 0 and softmax_inner is not None:
                    softmax__backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
        if opt is None:
            _step(spec, params, gparams, n, rate)
        else:
            _opt_step(spec, params, gparams, n, opt, start // capacity)
    return total


@jit
def predict_batch(spec, params, acts, scratch, xs, capacity, out, conv, conv_first, conv_inner, conv_padded, conv_padded_first, conv_padded_inner, conv_padded5, conv_padded5_first, conv_padded5_inner, dense, dense_first, dense_inner, sigmoid, sigmoid_inner, relu, relu_inner, tanh, tanh_inner, leaky_relu, leaky_relu_inner, maxpool, maxpool_inner, avgpool, avgpool_inner, softmax, softmax_inner):
    """``out[k] = network(xs[k])`` for every sample, ``capacity`` samples per forward pass (one
    GEMM per dense layer); the buffers as for :func:`train_sgd_batch`."""
    last = spec[spec.size - 1]
    first = spec[0]
    total = xs.shape[0]
    for start in range(0, total, capacity):
        n = min(capacity, total - start)
        x = region(acts, first.x, first.in_size, capacity, n)
        for b in range(n):
            copy(xs[start + b], x[b])
        for l in range(spec.size):
            L = spec[l]
            op = L.op
            if op == 0:  # conv
                if conv is not None:
                    conv__forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 1:  # conv_padded
                if conv_padded is not None:
                    conv_padded__forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 2:  # conv_padded5
                if conv_padded5 is not None:
                    conv_padded5__forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 3:  # dense
                if dense is not None:
                    dense__forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 4:  # sigmoid
                if sigmoid is not None:
                    _sigmoid_forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 5:  # relu
                if relu is not None:
                    _relu_forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 6:  # tanh
                if tanh is not None:
                    _tanh_forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 7:  # leaky_relu
                if leaky_relu is not None:
                    _leaky_relu_forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 8:  # maxpool
                if maxpool is not None:
                    maxpool__forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 9:  # avgpool
                if avgpool is not None:
                    avgpool__forward_batch(L, params, acts, scratch, capacity, n)
            elif op == 10:  # softmax
                if softmax is not None:
                    softmax__forward_batch(L, params, acts, scratch, capacity, n)
        y = region(acts, last.y, last.out_size, capacity, n)
        for b in range(n):
            copy(y[b], out[start + b])
