"""The padded convolution's mini-batch kernels (kernels/conv_gemm.py): the filters times the wide
columns are the reference convolution at the output columns, and fold_columns is wide_columns'
transpose (adjoint test), over hypothesis-drawn depths, sizes, filter sizes and paddings. (The
hooks themselves are trained against the reference path in tests/test_conv_padded.py.)"""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from fastcnn import reference
from fastcnn.kernels import conv_gemm

from .support import F64, seeds


@st.composite
def cases(draw):
    size = draw(st.integers(1, 6))
    padding = draw(st.integers(0, 3))
    depth = draw(st.integers(1, 4))
    # The padded input must hold one window at least.
    height = draw(st.integers(max(1, size - 2 * padding), size + 8))
    width = draw(st.integers(max(1, size - 2 * padding), size + 8))
    count = draw(st.integers(1, 4))
    return (depth, height, width), size, padding, count


def geometry(shape, s, p):
    _depth, height, width = shape
    hp, wp = height + 2 * p, width + 2 * p
    oh, ow = hp - s + 1, wp - s + 1
    return hp, wp, oh, ow, (oh - 1) * wp + ow


@given(case=cases(), seed=seeds)
def test_wide_columns_times_filters_is_the_convolution(case, seed):
    # Catches a run at the wrong offset or of the wrong length, and a tap order other than
    # (j, u, v) (the column buffer is NaN first: a value not written shows).
    shape, s, p, count = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    filters = rng.standard_normal((count, shape[0], s, s))
    _hp, wp, oh, ow, length = geometry(shape, s, p)
    col = np.full((shape[0] * s * s, length), np.nan)
    conv_gemm.wide_columns(reference.pad(x, p), s, length, col)
    wide = filters.reshape(count, -1) @ col
    out = np.stack([[wide[i, a * wp : a * wp + ow] for a in range(oh)] for i in range(count)])
    expected = reference.conv_forward_padded(x, filters, np.zeros((count, 1, 1)), p)
    np.testing.assert_allclose(out, expected, **F64)


@given(case=cases(), seed=seeds)
def test_fold_columns_is_the_transpose_of_wide_columns(case, seed):
    # <fold(c), xp> == <c, wide_columns(xp)> for random c and xp: every entry lands on the value
    # its column read, added (an overwrite where entries overlap would fail).
    shape, s, p, _ = case
    rng = np.random.default_rng(seed)
    hp, wp, _, _, length = geometry(shape, s, p)
    xp = rng.standard_normal((shape[0], hp, wp))
    c = rng.standard_normal((shape[0] * s * s, length))
    col = np.empty_like(c)
    conv_gemm.wide_columns(xp, s, length, col)
    d_xp = np.full_like(xp, np.nan)
    conv_gemm.fold_columns(c, s, length, d_xp)
    np.testing.assert_allclose(np.sum(d_xp * xp), np.sum(c * col), rtol=1e-12, atol=1e-12)
