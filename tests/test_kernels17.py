"""Issue 17's Numba kernels (kernels/pointwise.py, softmax.py, pool.py, correlate5.py) against the
reference maths of fastcnn.functions / fastcnn.reference, float64 and float32, over hypothesis
shapes, and on the edge cases: ties, odd sizes, logits of ±1000, NaN, zero targets.

No torch needed: the reference itself is checked against torch in tests/test_functions17.py.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import signal

from fastcnn import functions, reference
from fastcnn.kernels import correlate5, losses, pointwise, pool, softmax

from .support import DTYPES, TANH_ULPS, seeds, tolerance, ulps

POINTWISE = {
    "relu": (functions.relu, reference.relu_backward),
    "tanh": (functions.tanh, reference.tanh_backward),
    "leaky_relu": (functions.leaky_relu, reference.leaky_relu_backward),
}
# relu and leaky relu are one comparison or one product per element: the kernel and NumPy round
# alike, so they must agree bit for bit. tanh is another implementation of np.tanh (TANH_ULPS).
EXACT = {"relu", "leaky_relu"}

shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=12)


def draw_array(rng, shape, dtype, scale=3.0):
    x = rng.normal(0.0, scale, shape).astype(dtype)
    x.reshape(-1)[rng.integers(0, x.size)] = 0  # the kink
    return x


def assert_close(actual, expected, dtype, what):
    np.testing.assert_allclose(actual, expected, **tolerance(dtype), err_msg=what)


# --------------------------------------------------------------------------------------------------
# pointwise


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", POINTWISE)
@given(shape=shapes, seed=seeds)
def test_pointwise_matches_reference(name, dtype, shape, seed):
    # Catches an activation kernel or backward pass that differs from the function pair it
    # replaces (a slope, a mask read from the wrong side of 0, 1 - y instead of 1 - y * y), on
    # arrays of any shape (the flat views) and in either dtype.
    f, backward = POINTWISE[name]
    rng = np.random.default_rng(seed)
    x = draw_array(rng, shape, dtype)
    g = rng.normal(size=shape).astype(dtype)
    y, d = np.empty_like(x), np.empty_like(x)
    getattr(pointwise, name)(x, y)
    getattr(pointwise, f"{name}_backward")(x, y, g, d)
    expected_y, expected_d = f(x), backward(x, g)
    if name in EXACT:
        np.testing.assert_array_equal(y, expected_y, err_msg=f"[{name}]")
        np.testing.assert_array_equal(d, expected_d, err_msg=f"[{name}_backward]")
    else:
        np.testing.assert_allclose(y, expected_y, **ulps(dtype, TANH_ULPS), err_msg=f"[{name}]")
        assert_close(d, expected_d, dtype, f"[{name}_backward]")


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_accuracy(dtype):
    # Catches a vectorised tanh that drifts from np.tanh beyond TANH_ULPS anywhere: near 0 (the
    # polynomial), at the switch to the exp form (1/8, cancellation), in the tails (exp clamped),
    # at ±0, ±inf and tiny values, with the sign of zero kept.
    rng = np.random.default_rng(17)
    edges = [0.0, -0.0, 0.125, -0.125, np.nextafter(0.125, 0), 19.1, 22.0, 23.0, 1e-300, 5e-324]
    x = np.concatenate(
        [rng.normal(0.0, s, 20_000) for s in (1e-3, 0.05, 0.2, 1.0, 3.0, 30.0)]
        + [np.linspace(-25, 25, 100_001), edges, [np.inf, -np.inf]]
    ).astype(dtype)
    out = np.empty_like(x)
    pointwise.tanh(x, out)
    np.testing.assert_allclose(out, np.tanh(x), **ulps(dtype, TANH_ULPS))
    np.testing.assert_array_equal(np.signbit(out[x == 0]), np.signbit(x[x == 0]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", POINTWISE)
def test_pointwise_keeps_nan(name, dtype):
    # Catches a kernel that turns NaN into 0 (`x if x > 0 else 0`), hiding a diverged run.
    x = np.array([np.nan, -1.0, 1.0], dtype)
    y = np.empty_like(x)
    getattr(pointwise, name)(x, y)
    assert np.isnan(y[0]) and not np.isnan(y[1:]).any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_pointwise_derivatives_at_zero(dtype):
    # Catches the kernels' derivative at exactly 0 taken from the other side than PyTorch's
    # autograd (relu: 0, leaky relu: 0.01), with the slope rounded to the dtype.
    x = np.zeros(2, dtype)
    y, g, d = np.empty_like(x), np.ones(2, dtype), np.empty_like(x)
    pointwise.relu(x, y)
    pointwise.relu_backward(x, y, g, d)
    np.testing.assert_array_equal(d, [0, 0])
    pointwise.leaky_relu(x, y)
    pointwise.leaky_relu_backward(x, y, g, d)
    np.testing.assert_array_equal(d, np.full(2, 0.01, dtype))


# --------------------------------------------------------------------------------------------------
# softmax and the losses


def column(rng, n, dtype, scale=3.0):
    return rng.normal(0.0, scale, n).astype(dtype)


def soft(rng, n, dtype):
    y = rng.uniform(0.0, 1.0, n)
    return (y / y.sum()).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@given(n=st.integers(1, 30), seed=seeds, scale=st.sampled_from([0.1, 3.0, 300.0]))
def test_softmax_matches_reference(dtype, n, seed, scale):
    # Catches a softmax or Jacobian product that differs from the reference (a missing max
    # shift overflows at scale 300; a wrong sum in the backward).
    rng = np.random.default_rng(seed)
    x, g = column(rng, n, dtype, scale), column(rng, n, dtype, 1.0)
    s, d = np.empty_like(x), np.empty_like(x)
    softmax.softmax(x, s)
    softmax.softmax_backward(s, g, d)
    expected_s, _ = reference.softmax_forward(x)
    assert_close(s, expected_s, dtype, "[softmax]")
    assert_close(d, reference.softmax_backward(expected_s, g), dtype, "[softmax_backward]")


@pytest.mark.parametrize("dtype", DTYPES)
@given(n=st.integers(1, 30), seed=seeds, scale=st.sampled_from([0.1, 3.0, 1000.0]))
def test_softmax_cross_entropy_matches_reference(dtype, n, seed, scale):
    # Catches a fused kernel whose loss is not the per-layer path's log-sum-exp value, whose
    # probabilities differ, or whose logit gradient is not probs - actual to the last bit.
    rng = np.random.default_rng(seed)
    x, y = column(rng, n, dtype, scale), soft(rng, n, dtype)
    probs, d = np.empty_like(x), np.empty_like(x)
    loss = softmax.softmax_cross_entropy(x, y, probs, d)
    s = reference.softmax_layer_forward(x.reshape(n, 1))
    expected = functions.cross_entropy(s, y.reshape(n, 1).astype(np.float64))
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, expected, **tolerance(dtype), err_msg="[loss]")
    assert_close(probs, np.asarray(s).reshape(n), dtype, "[probs]")
    np.testing.assert_array_equal(d, probs - y, err_msg="[d_logits] is not probs - actual")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_extreme_logits(dtype):
    # Catches NaN or inf from the fused kernel at logits of ±1000 (exp overflow without the max
    # shift, log(0) of an underflowed probability), and a loss off from log-sum-exp by hand.
    x = np.array([1000.0, -1000.0, 0.0], dtype)
    for target in range(3):
        y = np.zeros(3, dtype)
        y[target] = 1
        probs, d = np.empty_like(x), np.empty_like(x)
        loss = softmax.softmax_cross_entropy(x, y, probs, d)
        assert np.all(np.isfinite(probs)) and np.all(np.isfinite(d))
        np.testing.assert_allclose(loss, 1000.0 - float(x[target]), rtol=1e-6)
        np.testing.assert_array_equal(d, probs - y)


@pytest.mark.parametrize("dtype", DTYPES)
@given(n=st.integers(1, 20), seed=seeds, zeros=st.booleans())
def test_cross_entropy_kernel_matches_functions(dtype, n, seed, zeros):
    # Catches the unfused cross-entropy kernel differing from cross_entropy / d_cross_entropy,
    # or counting a zero target's term (0 * log(0) must be 0, not NaN).
    rng = np.random.default_rng(seed)
    p = soft(rng, n, dtype)
    y = soft(rng, n, np.float64)
    if zeros and n > 1:
        y[0] = 0
        y /= y.sum()
        p[0] = 0
    y = y.astype(dtype)
    d = np.empty_like(p)
    loss = softmax.cross_entropy(p, y, d)
    np.testing.assert_allclose(loss, functions.cross_entropy(p, y), **tolerance(dtype))
    np.testing.assert_array_equal(d, np.asarray(functions.d_cross_entropy(p, y)))


@pytest.mark.parametrize("dtype", DTYPES)
@given(n=st.integers(1, 20), seed=seeds)
def test_binary_cross_entropy_kernel_matches_functions(dtype, n, seed):
    # Catches a BCE kernel differing from binary_cross_entropy / its gradient, including the
    # clamps at p = 0 and 1 (inf or NaN instead of PyTorch's -100 and 1e-12 floors).
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 1.0, n).astype(dtype)
    p[rng.integers(0, n)] = rng.choice([0.0, 1.0])
    y = rng.uniform(0.0, 1.0, n).astype(dtype)
    d = np.empty_like(p)
    # log(0) = -inf, clamped: silent in compiled code, a NumPy-scalar warning when the kernels run
    # as Python (NUMBA_DISABLE_JIT=1, the coverage run).
    with np.errstate(divide="ignore"):
        loss = softmax.binary_cross_entropy(p, y, d)
    np.testing.assert_allclose(loss, functions.binary_cross_entropy(p, y), **tolerance(dtype))
    assert_close(d, functions.d_binary_cross_entropy(p, y), dtype, "[d_binary_cross_entropy]")


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses_keep_nan(dtype):
    # Catches a loss kernel that hides a NaN prediction (a max written `a if a > b else b`), or the
    # NaN log of a probability below 0.
    p = np.array([np.nan, 0.5], dtype)
    y = np.array([1.0, 0.0], dtype)
    d = np.empty_like(p)
    assert np.isnan(softmax.binary_cross_entropy(p, y, d)) and np.isnan(d[0])
    assert np.isnan(softmax.cross_entropy(p, y, d))
    assert np.isnan(softmax.softmax_cross_entropy(p, y, np.empty_like(p), d))
    assert np.isnan(losses.mse(p, y, d))
    # A probability below 0 (PyTorch raises) has no log: NaN, not a loss clamped to look finite.
    with np.errstate(invalid="ignore"):  # NumPy scalars warn when the kernels run as Python
        assert np.isnan(softmax.binary_cross_entropy(np.array([-0.5], dtype), y[:1], d[:1]))


@pytest.mark.parametrize("dtype", DTYPES)
@given(n=st.integers(1, 30), seed=seeds)
def test_mse_kernel_is_the_compiled_loops(dtype, n, seed):
    # Catches the mse kernel drifting from the seed's d_mse by a bit, or from the compiled loops'
    # loss (squares rounded in the dtype, summed in float64 in index order, divided by size).
    rng = np.random.default_rng(seed)
    p, y = column(rng, n, dtype), column(rng, n, dtype)
    d = np.empty_like(p)
    loss = losses.mse(p, y, d)
    np.testing.assert_array_equal(d, functions.d_mse(p, y))
    total = 0.0
    for square in ((y - p) * (y - p)).astype(np.float64):
        total += square
    assert loss == total / n
    np.testing.assert_allclose(loss, functions.mse(p, y), **tolerance(dtype))


def test_loss_constants_match_functions():
    # Catches the kernels' copies of PyTorch's BCE constants drifting from fastcnn.functions'.
    assert softmax.BCE_LOG_FLOOR == functions.BCE_LOG_FLOOR
    assert softmax.BCE_EPSILON == functions.BCE_EPSILON


# --------------------------------------------------------------------------------------------------
# pooling


@st.composite
def pool_cases(draw, max_side=14):
    size = draw(st.integers(1, 5))
    stride = draw(st.integers(1, 6))
    height = draw(st.integers(size, max_side))
    width = draw(st.integers(size, max_side))
    depth = draw(st.integers(1, 4))
    return depth, height, width, size, stride


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["max", "avg"])
@given(case=pool_cases(), seed=seeds, ties=st.booleans())
def test_pool_matches_reference(kind, dtype, case, seed, ties):
    # Catches a pooling kernel that differs from the reference: a window off by one, odd sizes
    # not floored, overlapping windows (stride < size) not adding up, d_input not overwritten,
    # and (small integers, so windows tie) a tie not given to the first maximum.
    depth, height, width, size, stride = case
    rng = np.random.default_rng(seed)
    if ties:
        x = rng.integers(0, 3, (depth, height, width)).astype(dtype)
    else:
        x = rng.normal(size=(depth, height, width)).astype(dtype)
    shape = reference.pool_output_shape(x.shape, size, stride)
    g = rng.normal(size=shape).astype(dtype)
    out = np.empty(shape, dtype)
    d_input = np.full(x.shape, np.nan, dtype)  # stale values must not survive
    getattr(pool, f"{kind}pool_forward")(x, size, stride, out)
    getattr(pool, f"{kind}pool_backward")(x, g, size, stride, d_input)
    expected = getattr(reference, f"{kind}pool_forward")(x, size, stride)
    expected_d = getattr(reference, f"{kind}pool_backward")(x, g, size, stride)
    if kind == "max":
        # The same values picked and added in the same (i, j) order: bit for bit.
        np.testing.assert_array_equal(out, expected, err_msg="[output]")
        np.testing.assert_array_equal(d_input, expected_d, err_msg="[d_input]")
    else:
        assert_close(out, expected, dtype, "[output]")
        assert_close(d_input, expected_d, dtype, "[d_input]")


def test_maxpool_kernel_ties_go_to_the_first_maximum():
    # Catches the kernel's tie rule (>= instead of >: the last maximum) by hand, without relying on
    # the reference's np.argmax.
    x = np.array([[[1.0, 3.0, 3.0], [3.0, 0.0, 3.0], [2.0, 3.0, 1.0]]])
    g = np.array([[[10.0, 20.0], [30.0, 40.0]]])
    d = np.empty_like(x)
    pool.maxpool_backward(x, g, 2, 1, d)
    np.testing.assert_array_equal(d, [[[0.0, 30.0, 0.0], [30.0, 0.0, 40.0], [0.0, 0.0, 0.0]]])


def test_maxpool_kernel_nan_is_the_maximum():
    # Catches a NaN inside a window being skipped (the window's max would look finite).
    x = np.array([[[1.0, np.nan], [5.0, 2.0]]])
    out = np.empty((1, 1, 1))
    pool.maxpool_forward(x, 2, 2, out)
    assert np.isnan(out[0, 0, 0])


# --------------------------------------------------------------------------------------------------
# the 5 x 5 fast path, padding and cropping


@st.composite
def image_cases(draw, max_side=20):
    height = draw(st.integers(5, max_side))
    width = draw(st.integers(5, max_side))
    return height, width


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=image_cases(), seed=seeds, alias=st.booleans())
def test_correlate5_rows_matches_scipy(dtype, case, seed, alias):
    # Catches a 5 x 5 register kernel that is not base + correlate2d(x, k, "valid"): a tap in the
    # wrong place, a flipped filter, a row offset, and base aliasing out (the accumulation over
    # input channels) reading already-written outputs.
    height, width = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(height, width)).astype(dtype)
    k = rng.normal(size=(5, 5)).astype(dtype)
    base = rng.normal(size=(height - 4, width - 4)).astype(dtype)
    expected = base + signal.correlate2d(x, k, "valid")
    out = base if alias else np.empty_like(base)
    correlate5.correlate5_rows(x, k, base, out)
    assert_close(out, expected, dtype, "[correlate5_rows]")


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=image_cases(), seed=seeds, alias=st.booleans())
def test_correlate5_wide_is_correlate5_rows(dtype, case, seed, alias):
    # Catches the flat-row variant differing from correlate5_rows by a bit (it promises the same
    # operations in the same order): a window offset by one row, a wrong scratch length, the
    # discarded columns copied into out, stale scratch contents read.
    height, width = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(height, width)).astype(dtype)
    k = rng.normal(size=(5, 5)).astype(dtype)
    base = rng.normal(size=(height - 4, width - 4)).astype(dtype)
    expected = np.empty_like(base)
    correlate5.correlate5_rows(x, k, base, expected)
    wide = np.full((height - 5) * width + width - 4, np.nan, dtype)
    out = base if alias else np.empty_like(base)
    correlate5.correlate5_wide(x, k, base, wide, out)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@given(case=image_cases(max_side=14), seed=seeds)
def test_convolve5_full_add_matches_scipy(dtype, case, seed):
    # Catches the input-gradient path not being out += convolve2d(g, k, "full"): an unflipped
    # filter (a correlation), or padding of the wrong width; and its flat-row variant differing.
    height, width = case
    rng = np.random.default_rng(seed)
    g = rng.normal(size=(1, height - 4, width - 4)).astype(dtype)
    k = rng.normal(size=(5, 5)).astype(dtype)
    gp = np.empty((1, height + 4, width + 4), dtype)
    correlate5.pad2d(g, 4, gp)
    out = rng.normal(size=(height, width)).astype(dtype)
    start = out.copy()
    expected = out + signal.convolve2d(g[0], k, "full")
    correlate5.convolve5_full_add(gp[0], k, out)
    assert_close(out, expected, dtype, "[convolve5_full_add]")
    # The flat-row variant: the same operations, the same bits.
    wide = np.full((height + 3) * (width + 4) + width, np.nan, dtype)
    correlate5.convolve5_full_wide(gp[0], k, wide, start)
    np.testing.assert_array_equal(start, out, err_msg="[convolve5_full_wide]")


@pytest.mark.parametrize("dtype", DTYPES)
@given(
    shape=hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=9),
    p=st.integers(0, 4),
    seed=seeds,
)
def test_pad2d_crop2d_match_reference(dtype, shape, p, seed):
    # Catches padding on some sides only, a stale border left in a reused buffer, and a crop
    # offset by one: pad2d is reference.pad bit for bit, crop2d its inverse.
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype(dtype)
    padded = np.full((shape[0], shape[1] + 2 * p, shape[2] + 2 * p), np.nan, dtype)
    correlate5.pad2d(x, p, padded)
    np.testing.assert_array_equal(padded, reference.pad(x, p))
    cropped = np.empty_like(x)
    correlate5.crop2d(padded, p, cropped)
    np.testing.assert_array_equal(cropped, x)
    np.testing.assert_array_equal(cropped, reference.crop(reference.pad(x, p), p))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", ["filter", "pixel"])
def test_lenet_convolutions_from_kernels(dtype, bias):
    # Catches the pieces not composing into the padded convolution the layers will build from
    # them: LeNet's conv1 (1 -> 6 @5x5, 28x28 padded 2) and conv2 (6 -> 16 @5x5 on 14x14),
    # forward and input gradient, against reference.conv_forward_padded / conv_gradient_padded.
    rng = np.random.default_rng(5)
    for depth, side, count, p in ((1, 28, 6, 2), (6, 14, 16, 0)):
        x = rng.uniform(0.0, 1.0, (depth, side, side)).astype(dtype)
        filters = rng.normal(0.0, 0.2, (count, depth, 5, 5)).astype(dtype)
        o = side + 2 * p - 4
        biases = rng.normal(size=(count, 1, 1) if bias == "filter" else (count, o, o))
        biases = biases.astype(dtype)
        xp = np.empty((depth, side + 2 * p, side + 2 * p), dtype)
        correlate5.pad2d(x, p, xp)
        out = np.empty((count, o, o), dtype)
        for i in range(count):
            out[i] = biases[i]  # broadcast per-filter biases (the layer's job)
            for j in range(depth):
                correlate5.correlate5_rows(xp[j], filters[i, j], out[i], out[i])
        assert_close(out, reference.conv_forward_padded(x, filters, biases, p), dtype, "[forward]")
        g = rng.normal(size=(count, o, o)).astype(dtype)
        gp = np.empty((count, o + 8, o + 8), dtype)
        correlate5.pad2d(g, 4, gp)
        d_padded = np.zeros_like(xp)
        for i in range(count):
            for j in range(depth):
                correlate5.convolve5_full_add(gp[i], filters[i, j], d_padded[j])
        d_input = np.empty_like(x)
        correlate5.crop2d(d_padded, p, d_input)
        expected = reference.conv_gradient_padded(x, filters, biases.shape, g, p)[0]
        assert_close(d_input, expected, dtype, "[d_input]")
