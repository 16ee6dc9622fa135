"""Two-thread kernels for the first three layers of a network like the notebook's MNIST CNN:
``Convolution -> sigmoid -> (flatten) -> Linear``, each pass run as ONE parallel region.

Splitting the large dense layer by rows (``dense.py``'s ``*_blocks`` kernels) leaves the
convolution, its sigmoid and a cross-thread sum of the input gradient on one core, and costs a
parallel region per pass over the weights. Here the split follows the convolution's filters
instead: group ``t`` owns filters ``f0:f1``, their output maps, those maps' sigmoids, and the
columns of ``weights`` that read them. In the forward pass each group computes its filters, their
sigmoids and its columns' share of ``weights @ act``; the shares are then added in group order. In
the backward pass each group computes its columns' share of ``d_act = weights.T @ d_output``
(which needs no other group's columns), updates those columns, takes its maps' sigmoid gradient
and updates its filters: no cross-thread sum at all, and each core keeps touching the same columns
of ``weights`` (in float32, half of the MNIST matrix stays in its L2 from sample to sample).

Numbers: every update and every input gradient is computed with the one-thread kernels' operations
in their order, so they are bit-identical to one thread's given the same inputs; the forward
output is a sum of per-group dot products, which differs from one thread's in the last bits and
is repeatable for a given number of groups.
"""

from numba import prange

from ._jit import jit
from .activation import sigmoid, sigmoid_backward
from .conv import conv_forward, conv_sgd


@jit(reassociate=True)
def _forward_columns(weights, act, i0, share):
    """``share[o] = weights[o, i0:i0 + len(act)] @ act`` for every row ``o``, four rows per pass;
    ``act`` (k,) contiguous. The loops start at 0 so that LLVM vectorises them."""
    m = weights.shape[0]
    k = act.size
    zero = share.dtype.type(0)
    o = 0
    while o + 4 <= m:
        w0 = weights[o, i0 : i0 + k]
        w1 = weights[o + 1, i0 : i0 + k]
        w2 = weights[o + 2, i0 : i0 + k]
        w3 = weights[o + 3, i0 : i0 + k]
        a0 = a1 = a2 = a3 = zero
        for i in range(k):
            xi = act[i]
            a0 += w0[i] * xi
            a1 += w1[i] * xi
            a2 += w2[i] * xi
            a3 += w3[i] * xi
        share[o], share[o + 1], share[o + 2], share[o + 3] = a0, a1, a2, a3
        o += 4
    while o < m:
        w0 = weights[o, i0 : i0 + k]
        acc = zero
        for i in range(k):
            acc += w0[i] * act[i]
        share[o] = acc
        o += 1


@jit
def _backward_columns(weights, act, d_output, rate, i0, d_act):
    """On the columns ``i0:i0 + len(act)`` of ``weights``: ``d_act = weights[:, cols].T @
    d_output`` from the weights as they were, then ``weights[:, cols] -= (d_output @ act.T) *
    rate``, both in the operations and order of ``dense._backward_rows`` (bit-identical)."""
    m = weights.shape[0]
    k = act.size
    o = 0
    while o + 4 <= m:
        w0 = weights[o, i0 : i0 + k]
        w1 = weights[o + 1, i0 : i0 + k]
        w2 = weights[o + 2, i0 : i0 + k]
        w3 = weights[o + 3, i0 : i0 + k]
        g0, g1, g2, g3 = d_output[o, 0], d_output[o + 1, 0], d_output[o + 2, 0], d_output[o + 3, 0]
        if o == 0:
            for i in range(k):
                xi = act[i]
                d = w0[i] * g0
                d += w1[i] * g1
                d += w2[i] * g2
                d += w3[i] * g3
                d_act[i] = d
                w0[i] -= g0 * xi * rate
                w1[i] -= g1 * xi * rate
                w2[i] -= g2 * xi * rate
                w3[i] -= g3 * xi * rate
        else:
            for i in range(k):
                xi = act[i]
                d = d_act[i]
                d += w0[i] * g0
                d += w1[i] * g1
                d += w2[i] * g2
                d += w3[i] * g3
                d_act[i] = d
                w0[i] -= g0 * xi * rate
                w1[i] -= g1 * xi * rate
                w2[i] -= g2 * xi * rate
                w3[i] -= g3 * xi * rate
        o += 4
    if m < 4:
        for i in range(k):
            d_act[i] = 0
    while o < m:
        w0 = weights[o, i0 : i0 + k]
        g0 = d_output[o, 0]
        for i in range(k):
            d_act[i] += w0[i] * g0
            w0[i] -= g0 * act[i] * rate
        o += 1


@jit
def _add_shares(shares, biases, out):
    """``out = (shares[0] + shares[1] + ...) + biases``, added in group order (no reassociation
    flag here: the order is what makes a run repeatable)."""
    m = out.shape[0]
    for o in range(m):
        acc = shares[0, o]
        for t in range(1, shares.shape[0]):
            acc += shares[t, o]
        out[o, 0] = acc + biases[o, 0]


@jit(parallel=True)
def conv_dense_forward_split(x, filters, conv_biases, conv_out, act, weights, biases, out, scratch):
    """``act = sigmoid(conv(x))`` and ``out = weights @ act.ravel() + biases`` in
    ``len(scratch)`` parallel groups of filters.

    x (depth, H, W), filters (c, depth, s, s), conv_biases, conv_out and act (c, oh, ow), weights
    (m, c * oh * ow), biases and out (m, 1); ``scratch`` (groups, at least m) receives each
    group's share of ``weights @ act``.
    """
    c = filters.shape[0]
    per_map = act.shape[1] * act.shape[2]
    m = weights.shape[0]
    groups = scratch.shape[0]
    for t in prange(groups):
        f0, f1 = t * c // groups, (t + 1) * c // groups
        conv_forward(x, filters[f0:f1], conv_biases[f0:f1], conv_out[f0:f1])
        sigmoid(conv_out[f0:f1], act[f0:f1])
        _forward_columns(weights, act[f0:f1].reshape(-1), f0 * per_map, scratch[t, :m])
    _add_shares(scratch[:, :m], biases, out)


@jit(parallel=True)
def conv_dense_backward_split(
    x, filters, conv_biases, act, weights, biases, d_output, rate, d_act, d_conv, scratch
):
    """The backward pass and SGD step of the layers of :func:`conv_dense_forward_split`, from
    the dense layer's output gradient ``d_output`` (m, 1), in the same groups.

    ``d_act`` and ``d_conv`` (c, oh, ow) receive the gradients of the sigmoid's output and input;
    ``scratch`` (groups, at least ow) gives each group its convolution row scratch. The
    convolution is the network's first layer: its input gradient is never needed.
    """
    c = filters.shape[0]
    per_map = act.shape[1] * act.shape[2]
    ow = act.shape[2]
    groups = scratch.shape[0]
    for t in prange(groups):
        f0, f1 = t * c // groups, (t + 1) * c // groups
        _backward_columns(
            weights,
            act[f0:f1].reshape(-1),
            d_output,
            rate,
            f0 * per_map,
            d_act[f0:f1].reshape(-1),
        )
        sigmoid_backward(act[f0:f1], d_act[f0:f1], d_conv[f0:f1])
        conv_sgd(x, filters[f0:f1], conv_biases[f0:f1], d_conv[f0:f1], rate, scratch[t, :ow])
    for o in range(weights.shape[0]):
        biases[o, 0] -= d_output[o, 0] * rate
