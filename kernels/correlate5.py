"""The 5 x 5 convolution's fast path (LeNet's filters): a register-blocked valid cross-correlation,
the full convolution of an output gradient through the same loop, and zero padding / cropping.

Kept apart from ``conv.py`` (the generic tap loop and the 3 x 3 kernel) because it is one filter
size's specialisation, chosen by the caller on ``filter_size == 5``, as ``_correlate3_rows`` is on
3; ``pad2d``/``crop2d`` live here because the padded convolution is where they are needed.
"""

from ._jit import jit


@jit(inline=True)
def _taps5(k):
    """The 25 taps of a 5 x 5 filter, row by row, as a tuple (kept in registers by the loop)."""
    return (
        k[0, 0],
        k[0, 1],
        k[0, 2],
        k[0, 3],
        k[0, 4],
        k[1, 0],
        k[1, 1],
        k[1, 2],
        k[1, 3],
        k[1, 4],
        k[2, 0],
        k[2, 1],
        k[2, 2],
        k[2, 3],
        k[2, 4],
        k[3, 0],
        k[3, 1],
        k[3, 2],
        k[3, 3],
        k[3, 4],
        k[4, 0],
        k[4, 1],
        k[4, 2],
        k[4, 3],
        k[4, 4],
    )


@jit(inline=True)
def _taps5_flipped(k):
    """:func:`_taps5` of the filter turned by 180 degrees (``k[::-1, ::-1]``): the valid
    correlation with these taps is the full convolution with ``k``."""
    return (
        k[4, 4],
        k[4, 3],
        k[4, 2],
        k[4, 1],
        k[4, 0],
        k[3, 4],
        k[3, 3],
        k[3, 2],
        k[3, 1],
        k[3, 0],
        k[2, 4],
        k[2, 3],
        k[2, 2],
        k[2, 1],
        k[2, 0],
        k[1, 4],
        k[1, 3],
        k[1, 2],
        k[1, 1],
        k[1, 0],
        k[0, 4],
        k[0, 3],
        k[0, 2],
        k[0, 1],
        k[0, 0],
    )


@jit(inline=True)
def _dot5(r0, r1, r2, r3, r4, b, taps):
    """One output of the 5 x 5 valid correlation: ``sum(r_u[b + v] * taps[5u + v])``, the
    products summed in the order u, v."""
    (
        k00,
        k01,
        k02,
        k03,
        k04,
        k10,
        k11,
        k12,
        k13,
        k14,
        k20,
        k21,
        k22,
        k23,
        k24,
        k30,
        k31,
        k32,
        k33,
        k34,
        k40,
        k41,
        k42,
        k43,
        k44,
    ) = taps
    t = r0[b] * k00
    t += r0[b + 1] * k01
    t += r0[b + 2] * k02
    t += r0[b + 3] * k03
    t += r0[b + 4] * k04
    t += r1[b] * k10
    t += r1[b + 1] * k11
    t += r1[b + 2] * k12
    t += r1[b + 3] * k13
    t += r1[b + 4] * k14
    t += r2[b] * k20
    t += r2[b + 1] * k21
    t += r2[b + 2] * k22
    t += r2[b + 3] * k23
    t += r2[b + 4] * k24
    t += r3[b] * k30
    t += r3[b + 1] * k31
    t += r3[b + 2] * k32
    t += r3[b + 3] * k33
    t += r3[b + 4] * k34
    t += r4[b] * k40
    t += r4[b + 1] * k41
    t += r4[b + 2] * k42
    t += r4[b + 3] * k43
    t += r4[b + 4] * k44
    return t


@jit(inline=True)
def _correlate5(x, taps, base, out):
    """``out = base + correlate2d(x, taps as 5 x 5, "valid")``, each output's 25 products summed
    in the order u, v, then ``base`` added. The one copy of the loop; inlined, so a caller that
    passes ``out`` as ``base`` gives LLVM one pointer for both (see :func:`correlate5_rows`).

    One output row per pass. Two or four rows per pass (two or four addition chains to
    interleave, shared row loads) measured no faster at LeNet's sizes, four slower (25 taps and
    four accumulators spill the registers).
    """
    oh, ow = out.shape
    for a in range(oh):
        r0, r1, r2, r3, r4 = x[a], x[a + 1], x[a + 2], x[a + 3], x[a + 4]
        base_row, out_row = base[a], out[a]
        for b in range(ow):
            out_row[b] = _dot5(r0, r1, r2, r3, r4, b, taps) + base_row[b]


@jit
def correlate5_rows(x, k, base, out):
    """``out = base + signal.correlate2d(x, k, "valid")`` for a 5 x 5 ``k``; ``base`` may be ``out``.

    x (H, W), k (5, 5), base and out (H-4, W-4). The 25 taps stay in registers and each output
    sums its products in the order u, v (row by row), then adds ``base``: one pass over the output
    instead of 25 (``conv.py``'s ``_correlate3_rows`` for 5 x 5 filters).
    """
    taps = _taps5(k)
    # Two inlined copies of one loop. Given two arrays that might overlap, LLVM vectorises behind a
    # runtime overlap check and runs the scalar loop when base is out (the accumulation over
    # input channels): 4x slower at 28 x 28 (measured). Passing `out` twice lets it see one
    # pointer, so the vector loop always runs.
    if base.ctypes.data == out.ctypes.data:
        _correlate5(x, taps, out, out)
    else:
        _correlate5(x, taps, base, out)


@jit
def convolve5_full_add(gp, k, out):
    """``out += signal.convolve2d(g, k, "full")`` for a 5 x 5 ``k``, given ``gp``, the output
    gradient ``g`` (h, w) zero-padded by 4 on every side (h+8, w+8); out (h+4, w+4).

    A full convolution is the valid cross-correlation of the padded ``g`` with the flipped filter:
    :func:`_correlate5` with the taps read in reverse and ``base = out``. The padding's zeros cost
    products, but every row is one register-blocked pass instead of 25 passes over ``out``.
    """
    _correlate5(gp, _taps5_flipped(k), out, out)


@jit
def pad2d(x, p, out):
    """``np.pad(x, ((0, 0), (p, p), (p, p)))``: x (depth, h, w), out (depth, h+2p, w+2p), every
    element written (zeroed each call, so any buffer will do)."""
    # All of out zeroed, then the rows copied in: two loops for LLVM to vectorise instead of one
    # per border (half the machine code, which a cold start compiles in every loop holding it).
    flat = out.reshape(-1)
    zero = flat.dtype.type(0)
    for i in range(flat.size):
        flat[i] = zero
    depth, height, width = x.shape
    for c in range(depth):
        for i in range(height):
            source, row = x[c, i], out[c, i + p]
            for j in range(width):
                row[p + j] = source[j]


@jit
def crop2d(g, p, out):
    """``g[:, p:-p, p:-p]`` copied into ``out``: g (depth, H, W), out (depth, H-2p, W-2p); the
    input gradient of a padded convolution (the padding's zeros are constants)."""
    depth, height, width = out.shape
    for c in range(depth):
        for i in range(height):
            source, row = g[c, i + p], out[c, i]
            for j in range(width):
                row[j] = source[p + j]


@jit(inline=True)
def _correlate5_wide(x, taps, base, wide, out):
    """:func:`_correlate5` through flat rows (see :func:`correlate5_wide`); inlined, for the same
    reason."""
    oh, ow = out.shape
    width = x.shape[1]
    length = (oh - 1) * width + ow
    xf = x.reshape(-1)
    # Five row windows of the flat input, as slices (indices `q + o` with a run-time `o` would
    # keep Numba's negative-index check in the loop, which stops LLVM vectorising it).
    r0 = xf[0 : length + 4]
    r1 = xf[width : width + length + 4]
    r2 = xf[2 * width : 2 * width + length + 4]
    r3 = xf[3 * width : 3 * width + length + 4]
    r4 = xf[4 * width : 4 * width + length + 4]
    for q in range(length):
        wide[q] = _dot5(r0, r1, r2, r3, r4, q, taps)
    for a in range(oh):
        base_row, out_row = base[a], out[a]
        start = a * width
        for b in range(ow):
            out_row[b] = wide[start + b] + base_row[b]


@jit
def correlate5_wide(x, k, base, wide, out):
    """:func:`correlate5_rows` (the same operations, so the same bits) for narrow images, through
    ``wide``, a scratch of at least ``(H - 5) * W + W - 4`` elements: x (H, W) C-contiguous, k
    (5, 5), base and out (H-4, W-4); ``base`` may be ``out``.

    Rows of 10 outputs (LeNet's second convolution) are mostly vector remainders: with 8 float64
    lanes, 2 of every 10 outputs run scalar; with 16 float32 lanes all 10 do. Against the flat
    input, output ``(a, b)`` at ``wide[a * W + b]`` reads ``x.flat[a * W + b + u * W + v]``: one loop
    over every output row at once (and the ``W - ow`` columns between them, discarded), then a
    copy into ``out`` that adds ``base``.
    """
    taps = _taps5(k)
    if base.ctypes.data == out.ctypes.data:  # see correlate5_rows
        _correlate5_wide(x, taps, out, wide, out)
    else:
        _correlate5_wide(x, taps, base, wide, out)


@jit
def convolve5_full_wide(gp, k, wide, out):
    """:func:`convolve5_full_add` (the same bits) through flat rows: ``out += convolve2d(g, k,
    "full")`` given ``gp``, ``g`` zero-padded by 4 (h+8, w+8), out (h+4, w+4), ``wide`` a scratch
    of at least ``(h + 3) * (w + 8) + w + 4`` elements."""
    _correlate5_wide(gp, _taps5_flipped(k), out, wide, out)


@jit
def correlate5_accumulate(xs, ks, turned, wide, out):
    """``out += sum_c signal.correlate2d(xs[c], ks[c], "valid")`` for 5 x 5 ``ks[c]``, each turned
    by 180 degrees (``ks[c, ::-1, ::-1]``: a full convolution of an output gradient padded by 4)
    when ``turned``; xs (n, H, W) C-contiguous, ks (n, 5, 5), out (H-4, W-4), wide a scratch of
    at least ``(H - 5) * W + W - 4`` elements.

    :func:`correlate5_wide` summed over channels without leaving the flat rows: ``out`` is copied
    into ``wide`` once, every channel adds its 25 products (summed in the order u, v) to it in
    turn, and ``wide`` is copied back, so the same operations in the same order as calling
    :func:`correlate5_wide` channel after channel with ``base = out`` (the same bits), but two
    passes over ``out``'s short rows per output channel instead of one per channel pair (1.6x
    faster at LeNet's 6 -> 16 in float32, measured).
    """
    oh, ow = out.shape
    width = xs.shape[2]
    length = (oh - 1) * width + ow
    for a in range(oh):
        start = a * width
        for b in range(ow):
            wide[start + b] = out[a, b]
    for c in range(xs.shape[0]):
        # The taps as 25 scalars, kept in registers by the loop, and the products written out in
        # :func:`_dot5`'s order: the same loop as through _taps5's tuple and _dot5, which cost
        # Numba ~0.8 s more to type and lower in a cold start (measured).
        k = ks[c, ::-1, ::-1] if turned else ks[c]
        k00 = k[0, 0]
        k01 = k[0, 1]
        k02 = k[0, 2]
        k03 = k[0, 3]
        k04 = k[0, 4]
        k10 = k[1, 0]
        k11 = k[1, 1]
        k12 = k[1, 2]
        k13 = k[1, 3]
        k14 = k[1, 4]
        k20 = k[2, 0]
        k21 = k[2, 1]
        k22 = k[2, 2]
        k23 = k[2, 3]
        k24 = k[2, 4]
        k30 = k[3, 0]
        k31 = k[3, 1]
        k32 = k[3, 2]
        k33 = k[3, 3]
        k34 = k[3, 4]
        k40 = k[4, 0]
        k41 = k[4, 1]
        k42 = k[4, 2]
        k43 = k[4, 3]
        k44 = k[4, 4]
        xf = xs[c].reshape(-1)
        # Row windows as slices, as in _correlate5_wide.
        r0 = xf[0 : length + 4]
        r1 = xf[width : width + length + 4]
        r2 = xf[2 * width : 2 * width + length + 4]
        r3 = xf[3 * width : 3 * width + length + 4]
        r4 = xf[4 * width : 4 * width + length + 4]
        for q in range(length):
            t = r0[q] * k00
            t += r0[q + 1] * k01
            t += r0[q + 2] * k02
            t += r0[q + 3] * k03
            t += r0[q + 4] * k04
            t += r1[q] * k10
            t += r1[q + 1] * k11
            t += r1[q + 2] * k12
            t += r1[q + 3] * k13
            t += r1[q + 4] * k14
            t += r2[q] * k20
            t += r2[q + 1] * k21
            t += r2[q + 2] * k22
            t += r2[q + 3] * k23
            t += r2[q + 4] * k24
            t += r3[q] * k30
            t += r3[q + 1] * k31
            t += r3[q + 2] * k32
            t += r3[q + 3] * k33
            t += r3[q + 4] * k34
            t += r4[q] * k40
            t += r4[q + 1] * k41
            t += r4[q + 2] * k42
            t += r4[q + 3] * k43
            t += r4[q + 4] * k44
            wide[q] = t + wide[q]
    for a in range(oh):
        start = a * width
        for b in range(ow):
            out[a, b] = wide[start + b]
