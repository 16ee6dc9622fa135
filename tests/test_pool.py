"""MaxPool and AvgPool on every path: the layer's Numba kernels against its reference (the
notebook-style NumPy of fastcnn.reference), and networks with pooling trained on the compiled
per-sample and mini-batch loops against the per-layer reference path."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastcnn
from fastcnn import (
    Activation,
    AvgPool,
    Convolution,
    Linear,
    MaxPool,
    Network,
    Reshape,
    _compiled,
    d_mse,
    d_relu,
    d_sigmoid,
    mse,
    relu,
    sigmoid,
)

from .support import DTYPES, seeds, tolerance

POOLS = [MaxPool, AvgPool]


def per_layer_mse(predicted, actual):
    # Not `fastcnn.mse` itself, so Network.train takes the per-layer path with the same numbers.
    return mse(predicted, actual)


@st.composite
def pool_cases(draw):
    # The window first, then an image at least as large, so every draw is a valid layer.
    size = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 4))
    depth = draw(st.integers(1, 3))
    height = draw(st.integers(size, size + 7))
    width = draw(st.integers(size, size + 7))
    return (depth, height, width), size, stride


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("pool", POOLS, ids=lambda p: p.__name__)
@given(case=pool_cases(), seed=seeds)
def test_pool_kernels_match_reference(pool, dtype, case, seed):
    # Catches a window at the wrong offset, an output size that does not floor as PyTorch's, a
    # backward that overwrites where overlapping windows (stride < size) must add up, and ties
    # going to another than the first maximum (the inputs are rounded to make ties common).
    shape, size, stride = case
    rng = np.random.default_rng(seed)
    x = np.round(rng.uniform(-2, 2, shape) * 2).astype(dtype) / dtype(2)
    fast, ref = pool(shape, size, stride), pool(shape, size, stride, backend="scipy")
    out, expected = fast.forward_prop(x), ref.forward_prop(x)
    assert out.shape == expected.shape == fast.output_shape
    assert fast.output_shape[1:] == (
        (shape[1] - size) // stride + 1,
        (shape[2] - size) // stride + 1,
    )
    np.testing.assert_allclose(out, expected, **tolerance(dtype), err_msg="forward")
    g = rng.standard_normal(fast.output_shape).astype(dtype)
    np.testing.assert_allclose(
        fast.backward_prop(g, 0.1),
        ref.backward_prop(g, 0.1),
        **tolerance(dtype),
        err_msg="backward",
    )


def test_maxpool_ties_go_to_the_first_maximum():
    # Catches the last (or any other) maximum taking a tied window's gradient, as PyTorch does not.
    layer = MaxPool((1, 2, 4), 2)
    x = np.array([[[1.0, 3.0, 5.0, 5.0], [3.0, 3.0, 5.0, 5.0]]])
    assert layer.forward_prop(x).tolist() == [[[3.0, 5.0]]]
    d = layer.backward_prop(np.array([[[10.0, 20.0]]]), 0.1)
    assert d.tolist() == [[[0.0, 10.0, 20.0, 0.0], [0.0, 0.0, 0.0, 0.0]]]


def pooled_network(pool, dtype, backend="numba", seed=0):
    rng = np.random.RandomState(seed)
    options = dict(rng=rng, dtype=dtype, init="xavier", backend=backend)
    return Network(
        [
            Convolution((1, 9, 9), 3, 2, **options),
            Activation(relu, d_relu, backend=backend),
            pool((2, 7, 7), 2, backend=backend),  # 7 is odd: the last row and column drop out
            Reshape((2, 3, 3), (18, 1)),
            Linear(18, 4, **options),
            Activation(sigmoid, d_sigmoid, backend=backend),
        ]
    )


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("pool", POOLS, ids=lambda p: p.__name__)
def test_compiled_loops_train_pooling_as_the_reference_path(pool, batch_size):
    # Catches a pooling branch missing from a compiled loop (the network would fall back to the
    # per-layer path: the program check below), hooks that read the wrong region of the batch
    # buffers, and gradients routed differently from the reference.
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (12, 1, 9, 9))
    y = np.eye(4)[rng.integers(0, 4, 12)].reshape(12, 4, 1)
    compiled = pooled_network(pool, np.float64)
    reference = pooled_network(pool, np.float64, backend="scipy")
    assert _compiled.program(compiled.layers, padded=batch_size == 1) is not None
    a = compiled.train(x, y, mse, d_mse, 3, 0.5, verbose=False, batch_size=batch_size)
    b = reference.train(x, y, per_layer_mse, d_mse, 3, 0.5, verbose=False, batch_size=batch_size)
    np.testing.assert_allclose(a, b, **tolerance(np.float64))
    for la, lb in zip(compiled.layers, reference.layers, strict=True):
        for p, q in zip(la.parameters(), lb.parameters(), strict=True):
            np.testing.assert_allclose(p, q, **tolerance(np.float64))
    expected = np.stack([reference.predict(v).ravel() for v in x])
    np.testing.assert_allclose(compiled.predict_batch(x), expected, **tolerance(np.float64))


@pytest.mark.parametrize("pool", POOLS, ids=lambda p: p.__name__)
def test_pooling_in_model_files(pool, tmp_path):
    # Catches a pooling layer a model file cannot hold, or whose stride reads back as another.
    net = Network([pool((2, 6, 6), 3, stride=2), Reshape((2, 2, 2), (8, 1))])
    net.save(tmp_path / "m.npz")
    loaded = fastcnn.load(tmp_path / "m.npz")
    assert (
        repr(loaded.layers[0]) == repr(net.layers[0]) == f"{pool.__name__}((2, 6, 6), 3, stride=2)"
    )
    x = np.arange(72.0).reshape(2, 6, 6)
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))


def test_pool_larger_than_its_input_is_one_clear_error():
    # Catches a window larger than the image reaching a kernel, which would read past the input.
    with pytest.raises(
        ValueError,
        match=r"MaxPool: size=5 is larger than the input image 4x6 of input_shape \(3, 4, 6\); it must be at most 4\.",
    ):
        MaxPool((3, 4, 6), 5)
    with pytest.raises(ValueError, match=r"input_shape must have 3 dimensions, got \(4, 6\)"):
        AvgPool((4, 6), 2)
    layer = MaxPool((1, 4, 4))
    with pytest.raises(ValueError, match=r"expected shape \(1, 4, 4\)"):
        layer.forward_prop(np.zeros((1, 5, 5)))


@pytest.mark.parametrize("size, stride", [(2, 2), (3, 2), (2, 1)])
def test_maxpool_nan_and_ties_match_the_reference(size, stride):
    # The 2x2 fast path and the general loop keep one rule: the first maximum in row-major order
    # wins a tie, and a NaN counts as the maximum (the first NaN), as np.argmax (the reference).
    rng = np.random.default_rng(7)
    x = rng.integers(0, 3, (3, 7, 9)).astype(np.float64)  # odd: a row and a column in no window
    x[0, 0, 1] = x[1, 3, 3] = x[1, 3, 2] = x[2, 6, 7] = x[2, 5, 8] = np.nan
    fast, ref = MaxPool(x.shape, size, stride), MaxPool(x.shape, size, stride, backend="scipy")
    np.testing.assert_array_equal(fast.forward_prop(x), ref.forward_prop(x))
    g = rng.standard_normal(fast.output_shape)
    np.testing.assert_array_equal(fast.backward_prop(g, 0.1), ref.backward_prop(g, 0.1))
