"""The padded convolution with per-pixel or per-filter biases (``Convolution(..., padding=p,
bias=...)``, issue 17): its kernels and its hooks in the compiled loops (kind ``"conv_padded"``,
and ``"conv_padded5"`` for 5 x 5 filters with padding up to 4).

The layer pads its input once (``correlate5.pad2d``) and everything below works on the padded
input ``xp`` (depth, H + 2p, W + 2p): the forward pass is the notebook's valid correlation of
``xp``, the filter gradient correlates ``xp`` with the output gradient, and the input gradient is
the full convolution cropped back by ``p`` (the padding's zeros are constants). With ``p = 0`` the
caller passes the input itself as ``xp``. The notebook's own kind (``conv.py``) is untouched, so
its networks compile and run exactly as before.
"""

from ._jit import jit
from .conv import (
    _convolve2d_full_add,
    _correlate2d_valid_accumulate,
    _correlate2d_valid_add,
    _correlate3_rows,
    _widen,
)
from .correlate5 import correlate5_accumulate, crop2d, pad2d

# The kind's own slots of a compiled layer record's ``dims`` (fastcnn/layers/conv.py fills them):
# the input (depth, height, width) before padding, the filter size and count, the padding, and
# whether the biases are one per filter (1) or one per output pixel (0).
DEPTH, HEIGHT, WIDTH, SIZE, COUNT, PADDING, PER_FILTER = range(7)


@jit(inline=True)
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
def scratch_sizes(depth, height, width, size, count, padding):
    """The values of scratch a layer of these sizes needs, as ``(wide_g, d_xp, gp, wide5, xp)``:
    the filter gradient's widened rows (zeroed once, see ``conv._widen``); the padded input
    gradient of the generic path; the output gradient padded for the 5 x 5 input gradient and the
    flat rows both 5 x 5 kernels write (``correlate5_wide``); and one padded input (per sample).
    Called from Python too (``.py_func``), so the layer and the hooks agree on one layout."""
    hp, wp = height + 2 * padding, width + 2 * padding
    oh, ow = hp - size + 1, wp - size + 1
    wide_g = (oh - 1) * wp + ow
    padded = depth * hp * wp
    xp = padded if padding > 0 else 0
    # Any 5 x 5 forward pass runs correlate5_accumulate over the padded input's flat rows.
    wide5 = (oh - 1) * wp + ow if size == 5 else 0
    # _fast5's test written out: Python calls this function's py_func, and a call of the
    # dispatcher from there would compile it (a cold start's fraction of a second).
    if not (size == 5 and padding <= 4):
        return wide_g, xp, 0, wide5, xp
    q = 4 - padding  # the output gradient padded by q: its valid correlation is d_input itself
    gh, gw = oh + 2 * q, ow + 2 * q
    return wide_g, 0, count * gh * gw, max(wide5, (height - 1) * gw + width), xp


@jit(inline=True)
def _fast5(size, padding):
    """Whether the 5 x 5 kernels of ``correlate5.py`` serve a layer (padding beyond 4 would crop
    into the full convolution's interior: the generic path)."""
    return size == 5 and padding <= 4


@jit
def conv_padded_forward(xp, filters, biases, wide5, out):
    """``out[i] = biases[i] + sum_j correlate2d(xp[j], filters[i, j], "valid")``.

    xp (depth, Hp, Wp) the padded input, filters (count, depth, s, s), biases (count, oh, ow) or
    (count, 1, 1) broadcast over the pixels, out (count, Hp-s+1, Wp-s+1); wide5 scratch of
    :func:`scratch_sizes`' ``wide5`` values for 5 x 5 filters (``correlate5.correlate5_accumulate``;
    unread otherwise).
    """
    _forward(xp, filters, biases, wide5, out)


@jit(inline=True)
def _forward(xp, filters, biases, wide5, out):
    if filters.shape[2] == 5:
        _forward5(xp, filters, biases, wide5, out)
        return
    count, depth, s = filters.shape[0], filters.shape[1], filters.shape[2]
    for i in range(count):
        o = out[i]
        _fill_biases(biases, i, o)
        for j in range(depth):
            if s == 3:
                _correlate3_rows(xp[j], filters[i, j], o, o)
            else:
                _correlate2d_valid_add(xp[j], filters[i, j], o)


@jit(inline=True)
def _forward5(xp, filters, biases, wide5, out):
    """:func:`conv_padded_forward` for 5 x 5 filters."""
    for i in range(filters.shape[0]):
        o = out[i]
        _fill_biases(biases, i, o)
        # One compiled signature for this call and the input gradient's: a run-time flag (Numba
        # types a bare False as a literal of its own) and a strided slice of the filters, as
        # there; a literal and a contiguous filters[i] compiled the kernel a second time.
        correlate5_accumulate(xp, filters[i, ::1], bool(False), wide5, o)  # noqa: UP018


@jit
def conv_padded_input_gradient(d_output, filters, p, d_xp, gp, wide5, d_input):
    """``d_input[j] = sum_i convolve2d(d_output[i], filters[i, j], "full")``, cropped by ``p``.

    d_output (count, oh, ow), filters (count, depth, s, s), d_input (depth, H, W). Generic sizes:
    d_xp scratch (depth, oh+s-1, ow+s-1), the padded input's shape (``d_input`` itself when
    p == 0). 5 x 5 filters (:func:`_fast5`): gp scratch (count, oh+2q, ow+2q) for the output
    gradient padded by ``q = 4 - p``, whose valid correlation with the turned filters is the
    cropped full convolution (``correlate5.correlate5_accumulate`` over the filters ``i``, in
    order), and wide5 as for :func:`conv_padded_forward`.
    """
    _input_gradient(d_output, filters, p, d_xp, gp, wide5, d_input)


@jit(inline=True)
def _input_gradient(d_output, filters, p, d_xp, gp, wide5, d_input):
    count, depth, s = filters.shape[0], filters.shape[1], filters.shape[2]
    if _fast5(s, p):
        _input_gradient5(d_output, filters, p, gp, wide5, d_input)
        return
    _zero(d_xp)
    for i in range(count):
        for j in range(depth):
            _convolve2d_full_add(d_output[i], filters[i, j], d_xp[j])
    if p > 0:
        crop2d(d_xp, p, d_input)


@jit(inline=True)
def _input_gradient5(d_output, filters, p, gp, wide5, d_input):
    """:func:`conv_padded_input_gradient` for 5 x 5 filters and ``p <= 4`` (:func:`_fast5`)."""
    _zero(d_input)
    pad2d(d_output, 4 - p, gp)
    for j in range(filters.shape[1]):
        correlate5_accumulate(gp, filters[:, j], bool(True), wide5, d_input[j])  # noqa: UP018


@jit(inline=True)
def _zero(a):
    """``a[...] = 0``."""
    flat = a.reshape(-1)
    zero = flat.dtype.type(0)
    for i in range(flat.size):
        flat[i] = zero


@jit
def conv_padded_gradient_add(xp, d_output, d_filters, d_biases, wide):
    """``d_filters[i, j] += correlate2d(xp[j], d_output[i], "valid")`` and ``d_biases +=
    d_output`` (per-pixel) or ``d_biases[i] += sum(d_output[i])`` (per-filter, (count, 1, 1)).

    xp (depth, Hp, Wp) the padded input, wide zeroed scratch of ``(oh - 1) * Wp + ow`` values
    (see ``conv._widen``); a batch's samples are added one after the other.
    """
    _gradient_add(xp, d_output, d_filters, d_biases, wide)


@jit(inline=True)
def _gradient_add(xp, d_output, d_filters, d_biases, wide):
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
# A record's scratch: the fixed regions of scratch_sizes, then with padding the padded input xp,
# which the forward pass writes and the backward pass reads (the mini-batch hooks, in
# conv_gemm.py, lay out the same scratch their own way).


@jit
def _shapes(L):
    """The record's padded input, filters, output and biases shapes, and its padding."""
    d, h, w, s, c = L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH], L.dims[SIZE], L.dims[COUNT]
    p = L.dims[PADDING]
    hp, wp = h + 2 * p, w + 2 * p
    os_ = (c, hp - s + 1, wp - s + 1)
    bs = (c, 1, 1) if L.dims[PER_FILTER] == 1 else os_
    return (d, hp, wp), (c, d, s, s), os_, bs, p


@jit(inline=True)
def _sizes(L):
    d, h, w, s, c = L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH], L.dims[SIZE], L.dims[COUNT]
    return scratch_sizes(d, h, w, s, c, L.dims[PADDING])


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
    """The record's fixed scratch regions (see :func:`scratch_sizes`), flat: wide_g, d_xp, gp,
    wide5; and where the per-sample padded inputs start."""
    wide_g, d_xp, gp, wide5, _ = _sizes(L)
    a = L.scratch
    b, c, d = a + wide_g, a + wide_g + d_xp, a + wide_g + d_xp + gp
    return scratch[a:b], scratch[b:c], scratch[c:d], scratch[d : d + wide5], d + wide5


@jit
def _padded(L, scratch, x):
    """The sample's padded input, a region of the scratch (the forward pass writes it); ``x``
    (depth, H, W) itself without padding."""
    xps, _, _, _, p = _shapes(L)
    if p == 0:
        return x
    first = _scratch(L, scratch)[4]
    size = xps[0] * xps[1] * xps[2]
    return scratch[first : first + size].reshape(xps)


@jit(inline=True)
def _forward_input(L, params, scratch, x):
    """The record's filters, biases and the sample's padded input (padded here), and its
    output's shape."""
    _, _, os_, _, p = _shapes(L)
    filters, biases = _parameters(L, params)
    xp = _padded(L, scratch, x)
    if p > 0:
        pad2d(x, p, xp)
    return xp, filters, biases, os_


@jit
def _forward_one(L, params, scratch, x, y):
    xp, filters, biases, os_ = _forward_input(L, params, scratch, x)
    _forward(xp, filters, biases, _scratch(L, scratch)[3], y.reshape(os_))


@jit
def _forward5_one(L, params, scratch, x, y):
    xp, filters, biases, os_ = _forward_input(L, params, scratch, x)
    _forward5(xp, filters, biases, _scratch(L, scratch)[3], y.reshape(os_))


@jit
def _gradient_one(L, gparams, scratch, x, g):
    _, _, os_, _, _ = _shapes(L)
    d_filters, d_biases = _parameters(L, gparams)
    wide = _scratch(L, scratch)[0]
    _gradient_add(_padded(L, scratch, x), g.reshape(os_), d_filters, d_biases, wide)


@jit
def _input_gradient_one(L, params, scratch, g, d_x):
    xps, _, os_, _, p = _shapes(L)
    filters, _ = _parameters(L, params)
    _, d_xp, gp, wide5, _ = _scratch(L, scratch)
    d_x = d_x.reshape((L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH]))
    q = 4 - p
    gps = (os_[0], os_[1] + 2 * q, os_[2] + 2 * q) if gp.size > 0 else (0, 0, 0)
    target = d_xp.reshape(xps) if d_xp.size > 0 else d_x
    _input_gradient(g.reshape(os_), filters, p, target, gp.reshape(gps), wide5, d_x)


@jit
def _input_gradient5_one(L, params, scratch, g, d_x):
    _, _, os_, _, p = _shapes(L)
    filters, _ = _parameters(L, params)
    _, _, gp, wide5, _ = _scratch(L, scratch)
    d_x = d_x.reshape((L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH]))
    q = 4 - p
    gp = gp.reshape((os_[0], os_[1] + 2 * q, os_[2] + 2 * q))
    _input_gradient5(g.reshape(os_), filters, p, gp, wide5, d_x)


@jit(inline=True)
def forward(L, params, acts, scratch, partial):
    x = acts[L.x : L.x + L.in_size].reshape((L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH]))
    _forward_one(L, params, scratch, x, acts[L.y : L.y + L.out_size])


@jit(inline=True)
def backward_first(L, params, gparams, acts, grads, scratch, rate, partial):
    """The parameters' gradient only: a first layer's input gradient is never read."""
    _zero_gradient(L, gparams)
    x = acts[L.x : L.x + L.in_size].reshape((L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH]))
    _gradient_one(L, gparams, scratch, x, grads[L.y : L.y + L.out_size])


@jit(inline=True)
def backward(L, params, gparams, acts, grads, scratch, rate, partial):
    g = grads[L.y : L.y + L.out_size]
    _input_gradient_one(L, params, scratch, g, grads[L.x : L.x + L.in_size])
    backward_first(L, params, gparams, acts, grads, scratch, rate, partial)


# Kind "conv_padded5": 5 x 5 filters, padding at most 4 (_fast5), LeNet's. The same arithmetic
# as the hooks above take for such a layer, without the branches of the other sizes, which a
# network of only such layers then never compiles.


@jit(inline=True)
def forward5(L, params, acts, scratch, partial):
    x = acts[L.x : L.x + L.in_size].reshape((L.dims[DEPTH], L.dims[HEIGHT], L.dims[WIDTH]))
    _forward5_one(L, params, scratch, x, acts[L.y : L.y + L.out_size])


@jit(inline=True)
def backward5(L, params, gparams, acts, grads, scratch, rate, partial):
    g = grads[L.y : L.y + L.out_size]
    _input_gradient5_one(L, params, scratch, g, grads[L.x : L.x + L.in_size])
    backward_first(L, params, gparams, acts, grads, scratch, rate, partial)
