"""The padded convolution with per-pixel or per-filter biases (``Convolution(..., padding=p,
bias=...)``, issue 17): its kernels and its hooks in the compiled loops (kind ``"conv_padded"``).

The layer pads its input once (``correlate5.pad2d``) and everything below works on the padded
input ``xp`` (depth, H + 2p, W + 2p): the forward pass is the notebook's valid correlation of
``xp``, the filter gradient correlates ``xp`` with the output gradient, and the input gradient is
the full convolution cropped back by ``p`` (the padding's zeros are constants). With ``p = 0`` the
caller passes the input itself as ``xp``. The notebook's own kind (``conv.py``) is untouched, so
its networks compile and run exactly as before.
"""

from ._jit import jit
from .buffers import region
from .conv import (
    _convolve2d_full_add,
    _correlate2d_valid_accumulate,
    _correlate2d_valid_add,
    _correlate3_rows,
    _widen,
)
from .correlate5 import crop2d, pad2d

# The kind's own slots of a compiled layer record's ``dims`` (fastcnn/layers/conv.py fills them):
# the input (depth, height, width) before padding, the filter size and count, the padding, and
# whether the biases are one per filter (1) or one per output pixel (0).
DEPTH, HEIGHT, WIDTH, SIZE, COUNT, PADDING, PER_FILTER = range(7)


@jit
def _fill_biases(biases, i, out):
    """``out = biases[i]``, or ``biases[i, 0, 0]`` everywhere for per-filter biases (count, 1, 1);
    a (1, 1) output reads the same value either way."""
    oh, ow = out.shape
    if biases.shape[1] * biases.shape[2] == 1:
        b = biases[i, 0, 0]
        for a in range(oh):
            for c in range(ow):
                out[a, c] = b
    else:
        for a in range(oh):
            for c in range(ow):
                out[a, c] = biases[i, a, c]


@jit
def conv_padded_forward(xp, filters, biases, out):
    """``out[i] = biases[i] + sum_j correlate2d(xp[j], filters[i, j], "valid")``.

    xp (depth, Hp, Wp) the padded input, filters (count, depth, s, s), biases (count, oh, ow) or
    (count, 1, 1) broadcast over the pixels, out (count, Hp-s+1, Wp-s+1).
    """
    count, depth, s = filters.shape[0], filters.shape[1], filters.shape[2]
    for i in range(count):
        o = out[i]
        _fill_biases(biases, i, o)
        for j in range(depth):
            if s == 3:
                _correlate3_rows(xp[j], filters[i, j], o, o)
            else:
                _correlate2d_valid_add(xp[j], filters[i, j], o)


@jit
def conv_padded_input_gradient(d_output, filters, p, d_xp, d_input):
    """``d_input[j] = sum_i convolve2d(d_output[i], filters[i, j], "full")``, cropped by ``p``.

    d_output (count, oh, ow), filters (count, depth, s, s), d_xp scratch (depth, oh+s-1, ow+s-1)
    (the padded input's shape; it may be ``d_input`` itself when p == 0), d_input (depth, H, W).
    """
    count, depth = filters.shape[0], filters.shape[1]
    flat = d_xp.reshape(-1)
    zero = flat.dtype.type(0)
    for a in range(flat.size):
        flat[a] = zero
    for i in range(count):
        for j in range(depth):
            _convolve2d_full_add(d_output[i], filters[i, j], d_xp[j])
    if p > 0:
        crop2d(d_xp, p, d_input)


@jit
def conv_padded_gradient_add(xp, d_output, d_filters, d_biases, wide):
    """``d_filters[i, j] += correlate2d(xp[j], d_output[i], "valid")`` and ``d_biases +=
    d_output`` (per-pixel) or ``d_biases[i] += sum(d_output[i])`` (per-filter, (count, 1, 1)).

    xp (depth, Hp, Wp) the padded input, wide zeroed scratch of ``(oh - 1) * Wp + ow`` values
    (see ``conv._widen``); a batch's samples are added one after the other.
    """
    count, depth = d_filters.shape[0], d_filters.shape[1]
    width = xp.shape[2]
    per_filter = d_biases.shape[1] * d_biases.shape[2] == 1
    for i in range(count):
        g = d_output[i]
        _widen(g, width, wide)
        for j in range(depth):
            _correlate2d_valid_accumulate(xp[j], wide, d_filters[i, j])
        g_flat = g.reshape(-1)
        if per_filter:
            total = g_flat.dtype.type(0)
            for a in range(g_flat.size):
                total += g_flat[a]
            d_biases[i, 0, 0] += total
        else:
            d_b = d_biases[i].reshape(-1)
            for a in range(g_flat.size):
                d_b[a] += g_flat[a]


# --------------------------------------------------------------------------------------------------
# hooks of the compiled loops: one layer record ``L`` and the flat buffers (see kernels/_loops.py).
# A record's scratch: the filter gradient's widened rows (zeroed once, see conv._widen), then with
# padding the input gradient's padded d_xp and, per sample of a batch, the padded input xp, which
# the forward pass writes and the backward pass reads.


@jit
def _shapes(L):
    """The record's padded input, filters, output and biases shapes, and its padding."""
    d, h, w, s, c = L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH], L.dims[SIZE], L.dims[COUNT]
    p = L.dims[PADDING]
    hp, wp = h + 2 * p, w + 2 * p
    os_ = (c, hp - s + 1, wp - s + 1)
    bs = (c, 1, 1) if L.dims[PER_FILTER] == 1 else os_
    return (d, hp, wp), (c, d, s, s), os_, bs, p


@jit
def _wide_size(L):
    _, _, os_, _, p = _shapes(L)
    return (os_[1] - 1) * (L.dims[WIDTH] + 2 * p) + os_[2]


@jit
def _parameters(L, params):
    _, fs, _, bs, _ = _shapes(L)
    return params[L.p0 : L.p1].reshape(fs), params[L.p1 : L.p_end].reshape(bs)


@jit
def _zero_gradient(L, gparams):
    region_ = gparams[L.p0 : L.p_end]
    for i in range(region_.size):
        region_[i] = 0


@jit
def _scratch(L, scratch):
    """(wide, d_xp as a flat region, the start of the per-sample xp regions)."""
    xps, _, _, _, _ = _shapes(L)
    start = L.scratch
    wide = scratch[start : start + _wide_size(L)]
    size = xps[0] * xps[1] * xps[2]
    d_xp = scratch[start + wide.size : start + wide.size + size]
    return wide, d_xp, start + wide.size + size


@jit
def _padded(L, scratch, x, b):
    """Sample ``b``'s padded input, a region of the scratch (the forward pass writes it); ``x``
    (depth, H, W) itself without padding."""
    xps, _, _, _, p = _shapes(L)
    if p == 0:
        return x
    _, _, first = _scratch(L, scratch)
    size = xps[0] * xps[1] * xps[2]
    return scratch[first + b * size : first + (b + 1) * size].reshape(xps)


@jit
def _forward_one(L, params, scratch, x, y, b):
    _, _, os_, _, p = _shapes(L)
    filters, biases = _parameters(L, params)
    xp = _padded(L, scratch, x, b)
    if p > 0:
        pad2d(x, p, xp)
    conv_padded_forward(xp, filters, biases, y.reshape(os_))


@jit
def _gradient_one(L, gparams, scratch, x, g, b):
    _, _, os_, _, _ = _shapes(L)
    d_filters, d_biases = _parameters(L, gparams)
    wide, _, _ = _scratch(L, scratch)
    conv_padded_gradient_add(_padded(L, scratch, x, b), g.reshape(os_), d_filters, d_biases, wide)


@jit
def _input_gradient_one(L, params, scratch, g, d_x):
    xps, _, os_, _, p = _shapes(L)
    filters, _ = _parameters(L, params)
    _, d_xp, _ = _scratch(L, scratch)
    d_x = d_x.reshape((L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH]))
    target = d_xp.reshape(xps) if p > 0 else d_x
    conv_padded_input_gradient(g.reshape(os_), filters, p, target, d_x)


@jit(inline=True)
def forward(L, params, acts, scratch, partial):
    x = acts[L.x : L.x + L.in_size].reshape((L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH]))
    _forward_one(L, params, scratch, x, acts[L.y : L.y + L.out_size], 0)


@jit(inline=True)
def backward_first(L, params, gparams, acts, grads, scratch, rate, partial):
    """The parameters' gradient only: a first layer's input gradient is never read."""
    _zero_gradient(L, gparams)
    x = acts[L.x : L.x + L.in_size].reshape((L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH]))
    _gradient_one(L, gparams, scratch, x, grads[L.y : L.y + L.out_size], 0)


@jit(inline=True)
def backward(L, params, gparams, acts, grads, scratch, rate, partial):
    g = grads[L.y : L.y + L.out_size]
    _input_gradient_one(L, params, scratch, g, grads[L.x : L.x + L.in_size])
    backward_first(L, params, gparams, acts, grads, scratch, rate, partial)


@jit(inline=True)
def forward_batch(L, params, acts, scratch, capacity, n):
    x = region(acts, L.x, L.in_size, capacity, n)
    y = region(acts, L.y, L.out_size, capacity, n)
    xs = (L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH])
    for b in range(n):
        _forward_one(L, params, scratch, x[b].reshape(xs), y[b], b)


@jit(inline=True)
def backward_first_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    """The batch's summed parameter gradients, sample after sample."""
    _zero_gradient(L, gparams)
    x = region(acts, L.x, L.in_size, capacity, n)
    g = region(grads, L.y, L.out_size, capacity, n)
    xs = (L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH])
    for b in range(n):
        _gradient_one(L, gparams, scratch, x[b].reshape(xs), g[b], b)


@jit(inline=True)
def backward_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate):
    g = region(grads, L.y, L.out_size, capacity, n)
    d_x = region(grads, L.x, L.in_size, capacity, n)
    for b in range(n):
        _input_gradient_one(L, params, scratch, g[b], d_x[b])
    backward_first_batch(L, params, gparams, acts, grads, scratch, capacity, n, rate)
