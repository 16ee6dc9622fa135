"""The padded convolution's mini-batch kernels (kernels/conv_gemm.py): the columns of im2col times
the filters are the reference convolution, and col2im is im2col's transpose (adjoint test), over
hypothesis-drawn depths, sizes, filter sizes and paddings."""

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


@given(case=cases(), seed=seeds)
def test_im2col_times_filters_is_the_convolution(case, seed):
    # Catches a column at the wrong offset, padding read from outside the row or left unzeroed
    # (the column buffer is filled with garbage first), and a tap order other than (j, u, v).
    (depth, height, width), s, p, count = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((depth, height, width))
    filters = rng.standard_normal((count, depth, s, s))
    oh, ow = height + 2 * p - s + 1, width + 2 * p - s + 1
    col = np.full((depth * s * s, oh * ow), np.nan)
    conv_gemm.im2col(x, s, p, oh, ow, col)
    out = (filters.reshape(count, -1) @ col).reshape(count, oh, ow)
    expected = reference.conv_forward_padded(x, filters, np.zeros((count, 1, 1)), p)
    np.testing.assert_allclose(out, expected, **F64)


@given(case=cases(), seed=seeds)
def test_col2im_is_the_transpose_of_im2col(case, seed):
    # <col2im(c), x> == <c, im2col(x)> for random c and x: col2im adds every entry onto the value
    # im2col read it from, and drops the padding's. Catches an overwrite where entries add up.
    (depth, height, width), s, p, _ = case
    rng = np.random.default_rng(seed)
    oh, ow = height + 2 * p - s + 1, width + 2 * p - s + 1
    x = rng.standard_normal((depth, height, width))
    c = rng.standard_normal((depth * s * s, oh * ow))
    col = np.empty_like(c)
    conv_gemm.im2col(x, s, p, oh, ow, col)
    d_x = np.full_like(x, np.nan)
    conv_gemm.col2im(c, s, p, oh, ow, d_x)
    np.testing.assert_allclose(np.sum(d_x * x), np.sum(c * col), rtol=1e-12, atol=1e-12)


@given(case=cases(), seed=seeds)
def test_im2row_is_im2col_transposed(case, seed):
    (depth, height, width), s, p, _ = case
    x = np.random.default_rng(seed).standard_normal((depth, height, width))
    oh, ow = height + 2 * p - s + 1, width + 2 * p - s + 1
    col = np.empty((depth * s * s, oh * ow))
    rows = np.full((oh * ow, depth * s * s), np.nan)
    conv_gemm.im2col(x, s, p, oh, ow, col)
    conv_gemm.im2row(x, s, p, oh, ow, rows)
    assert np.array_equal(rows, col.T)
