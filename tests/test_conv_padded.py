"""Convolution(..., padding=p, bias="pixel" | "filter") on every path: the layer's Numba kernels
(kernels/conv_padded.py) against its reference (fastcnn.reference's padded convolution) and
PyTorch's autograd, finite differences, networks trained on the compiled per-sample (one and two
threads) and mini-batch loops against the per-layer reference path, model files old and new, and
the messages of bad arguments."""

import json
import zipfile

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastcnn
import fastcnn.io
from fastcnn import (
    Activation,
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
from fastcnn.kernels import conv_padded

from .support import AUTOGRAD, DTYPES, FD, FD_STEP, parameters, seeds, tolerance

BIASES = ("pixel", "filter")
# The compiled loops against the per-layer reference path over a few epochs of SGD, float64: the
# same formulas summed in other orders (SciPy's correlate2d against the tap loops), ~1e-15 per
# operation, growing along the run; a wrong update or a misplaced pixel is off by 1e-3 or more.
RUN_F64 = dict(rtol=1e-9, atol=1e-10)
# float32 against the float64 reference: float32's eps is 1.2e-7 and a few hundred steps of
# rounding grow it; a real error is far above 1e-3.
RUN_F32 = dict(rtol=2e-3, atol=2e-3)


def per_layer_mse(predicted, actual):
    # Not `fastcnn.mse` itself, so Network.train takes the per-layer path with the same numbers.
    return mse(predicted, actual)


@st.composite
def conv_cases(draw, max_side=8):
    """(input_shape, filter_size, count, padding, bias): the filter size and padding first, so the
    padded image bounds the image from below and every draw is a valid layer."""
    size = draw(st.integers(1, 6))
    padding = draw(st.integers(0, 5))
    low = max(1, size - 2 * padding)
    height = draw(st.integers(low, max(low, max_side)))
    width = draw(st.integers(low, max(low, max_side)))
    depth = draw(st.integers(1, 3))
    count = draw(st.integers(1, 3))
    bias = draw(st.sampled_from(BIASES))
    return (depth, height, width), size, count, padding, bias


def pair(shape, size, count, padding, bias, dtype=np.float64, seed=0):
    """The layer on the Numba backend and on the reference path, with the same weights."""
    fast = Convolution(shape, size, count, padding=padding, bias=bias, dtype=dtype, rng=seed)
    ref = Convolution(
        shape, size, count, padding=padding, bias=bias, dtype=dtype, rng=seed, backend="scipy"
    )
    return fast, ref


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(case=conv_cases(), seed=seeds)
def test_layer_matches_reference(dtype, case, seed):
    # Catches a kernel that pads on one side only, reads the unpadded input in the filter
    # gradient, forgets to crop the input gradient or to sum per-filter bias gradients over the
    # pixels, or steps the parameters differently from the reference path's SGD.
    shape, size, count, padding, bias = case
    fast, ref = pair(shape, size, count, padding, bias, dtype, seed % 1000)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape).astype(dtype)
    tol = tolerance(dtype)
    out, expected = fast.forward_prop(x), ref.forward_prop(x)
    assert out.shape == expected.shape == fast.output_shape
    np.testing.assert_allclose(out, expected, **tol, err_msg="[output]")
    g = rng.normal(size=fast.output_shape).astype(dtype)
    (d_fast, grads_fast), (d_ref, grads_ref) = fast.gradient(g), ref.gradient(g)
    np.testing.assert_allclose(d_fast, d_ref, **tol, err_msg="[d_input]")
    for name, a, b in zip(("d_filters", "d_biases"), grads_fast, grads_ref, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype == np.dtype(dtype), name
        np.testing.assert_allclose(a, b, **tol, err_msg=f"[{name}]")
    np.testing.assert_allclose(fast.backward_prop(g, 0.1), d_ref, **tol, err_msg="[backward]")
    ref.backward_prop(g, 0.1)
    for name in ("filters", "biases"):
        a, b = getattr(fast, name), getattr(ref, name)
        np.testing.assert_allclose(a, b, **tol, err_msg=f"[updated {name}]")


@pytest.mark.parametrize("bias", BIASES)
@pytest.mark.parametrize("size, padding", [(5, 2), (3, 1), (2, 3), (5, 0), (4, 1), (5, 4), (5, 5)])
def test_layer_matches_torch_autograd(size, padding, bias):
    # Catches a layer that is not torch's conv2d(padding=p) plus a bias per filter or per pixel:
    # the forward pass and every gradient, through the layer's public methods.
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(size * 10 + padding)
    shape = (2, 7, 6)
    layer = Convolution(shape, size, 3, padding=padding, bias=bias, rng=1)
    x = rng.normal(size=shape)
    y = layer.forward_prop(x)
    g = rng.normal(size=y.shape)
    d_input, (d_filters, d_biases) = layer.gradient(g)
    tx = torch.tensor(x[None], requires_grad=True)
    tf = torch.tensor(layer.filters, requires_grad=True)
    tb = torch.tensor(layer.biases, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tf, padding=padding)[0] + tb
    (ty * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(y, ty.detach().numpy(), **AUTOGRAD, err_msg="[output]")
    np.testing.assert_allclose(d_input, tx.grad[0].numpy(), **AUTOGRAD, err_msg="[d_input]")
    np.testing.assert_allclose(d_filters, tf.grad.numpy(), **AUTOGRAD, err_msg="[d_filters]")
    np.testing.assert_allclose(d_biases, tb.grad.numpy(), **AUTOGRAD, err_msg="[d_biases]")


@pytest.mark.parametrize("bias", BIASES)
def test_layer_finite_differences(bias):
    # Catches Numba gradients that are not the derivatives of the Numba forward pass (for the
    # input, the filters and either bias shape), whatever the reference says.
    rng = np.random.default_rng(5)
    layer = Convolution((2, 5, 4), 3, 2, padding=2, bias=bias, rng=3)
    x = rng.normal(size=(2, 5, 4))
    g = rng.normal(size=layer.output_shape)
    layer.forward_prop(x)
    d_input, (d_filters, d_biases) = layer.gradient(g)

    def numeric(array):
        out = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            values = []
            for step in (FD_STEP, -FD_STEP):
                array[index] = saved + step
                values.append(float(np.sum(layer.forward_prop(x) * g)))
            array[index] = saved
            out[index] = (values[0] - values[1]) / (2 * FD_STEP)
        return out

    np.testing.assert_allclose(d_input, numeric(x), **FD, err_msg="[d_input]")
    np.testing.assert_allclose(d_filters, numeric(layer.filters), **FD, err_msg="[d_filters]")
    np.testing.assert_allclose(d_biases, numeric(layer.biases), **FD, err_msg="[d_biases]")


def test_defaults_are_the_notebooks_convolution():
    # Catches the new options changing the notebook's layer: its shapes, its draws from the
    # global state, its kind on the compiled loops (the notebook's "conv", so its cold start and
    # numbers stay), its repr and its bits through the per-layer Numba path.
    np.random.seed(3)
    filters = np.random.randn(5, 1, 3, 3) - 0.5
    biases = np.random.randn(5, 26, 26) - 0.5
    np.random.seed(3)
    layer = Convolution((1, 28, 28), 3, 5)
    np.testing.assert_array_equal(layer.filters, filters)
    np.testing.assert_array_equal(layer.biases, biases)
    assert (layer.padding, layer.bias) == (0, "pixel")
    assert repr(layer) == "Convolution((1, 28, 28), 3, 5)"
    assert layer._compiled().kind == "conv"
    assert Convolution((1, 28, 28), 3, 5, padding=1)._compiled().kind == "conv_padded"
    assert Convolution((1, 28, 28), 3, 5, bias="filter")._compiled().kind == "conv_padded"
    assert Convolution((1, 28, 28), 5, 5)._compiled().kind == "conv_padded5"
    assert Convolution((1, 28, 28), 5, 5, padding=5)._compiled().kind == "conv_padded"


@pytest.mark.parametrize("init", ["notebook", "xavier", "he"])
def test_initial_draws_per_filter(init):
    # Catches per-filter biases drawn in the per-pixel shape (a different stream of draws after
    # the filters) or not zero under xavier/he, and fans that depend on the padding.
    layer = Convolution((2, 6, 6), 5, 3, padding="same", bias="filter", rng=7, init=init)
    assert layer.padding == 2 and layer.output_shape == (3, 6, 6)
    assert layer.biases.shape == (3, 1, 1)
    draws = np.random.RandomState(7)
    if init == "notebook":
        np.testing.assert_array_equal(layer.filters, draws.randn(3, 2, 5, 5) - 0.5)
        np.testing.assert_array_equal(layer.biases, draws.randn(3, 1, 1) - 0.5)
    else:
        fans = 2 * 25 + (3 * 25 if init == "xavier" else 0)
        np.testing.assert_array_equal(layer.filters, draws.randn(3, 2, 5, 5) * np.sqrt(2 / fans))
        np.testing.assert_array_equal(layer.biases, np.zeros((3, 1, 1)))


# --------------------------------------------------------------------------------------------------
# the compiled loops


def padded_network(
    dtype=np.float64, backend="numba", first=(5, 2, "filter"), second=(3, 1, "pixel"), threads=1
):
    """conv(first) + relu + maxpool + conv(second) + sigmoid + dense + sigmoid on 8x8 images."""
    rng = np.random.RandomState(4)
    options = dict(rng=rng, dtype=dtype, init="he", backend=backend)
    size, padding, bias = first
    conv1 = Convolution((1, 8, 8), size, 3, padding=padding, bias=bias, **options)
    pool = MaxPool(conv1.output_shape, 2, backend=backend)
    size, padding, bias = second
    conv2 = Convolution(pool.output_shape, size, 4, padding=padding, bias=bias, **options)
    n = int(np.prod(conv2.output_shape))
    return Network(
        [
            conv1,
            Activation(relu, d_relu, backend=backend),
            pool,
            conv2,
            Activation(sigmoid, d_sigmoid, backend=backend),
            Reshape(conv2.output_shape, (n, 1)),
            Linear(n, 3, **options),
            Activation(sigmoid, d_sigmoid, backend=backend),
        ],
        num_threads=threads,
    )


def data(n=40, seed=2):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 1, 8, 8))
    y = np.eye(3)[rng.integers(0, 3, n)].reshape(n, 3, 1)
    return x, y


LAYOUTS = {
    "5x5 pad 2 filter, 3x3 pad 1 pixel": ((5, 2, "filter"), (3, 1, "pixel")),
    "5x5 pixel, 2x2 pad 2 filter": ((5, 0, "pixel"), (2, 2, "filter")),
    "4x4 pad 1 pixel, 5x5 pad 2 filter": ((4, 1, "pixel"), (5, 2, "filter")),
    # Padding beyond 4: the 5 x 5 forward kernel, the generic input gradient. (With the biases
    # the other way round, a ReLU or max-pool kink flips between the paths after ~60 of the 80
    # per-sample steps and the runs part by 1e-9: chaos, not a bug, as each step agreed to 2e-16.
    # Every layout here measured within 2e-13 of the reference at the end.)
    "5x5 pad 5 pixel, 5x5 pad 4 filter": ((5, 5, "pixel"), (5, 4, "filter")),
}


@pytest.mark.parametrize("batch_size", [1, 4, 32])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_compiled_loops_train_as_the_reference_path(layout, batch_size):
    # Catches a branch missing from a compiled loop (the network would fall back to the
    # per-layer path: the program check), hooks reading another sample's padded input from the
    # scratch (batch 4 and 32; 40 samples leave a short last batch), and trajectories leaving
    # the reference's: every epoch's loss and every parameter after 2 epochs, and predict_batch.
    first, second = LAYOUTS[layout]
    x, y = data()
    compiled = padded_network(first=first, second=second)
    reference = padded_network(backend="scipy", first=first, second=second)
    program = _compiled.program(compiled.layers, padded=batch_size == 1)
    assert program is not None
    assert "conv_padded" in {program.loops.KINDS[op] for op in program.spec["op"]}
    a = compiled.train(x, y, mse, d_mse, 2, 0.5, verbose=False, batch_size=batch_size)
    b = reference.train(x, y, per_layer_mse, d_mse, 2, 0.5, verbose=False, batch_size=batch_size)
    np.testing.assert_allclose(a, b, **RUN_F64, err_msg="[losses]")
    for name, p in parameters(compiled).items():
        np.testing.assert_allclose(p, parameters(reference)[name], **RUN_F64, err_msg=name)
    expected = np.stack([reference.predict(v).ravel() for v in x])
    np.testing.assert_allclose(compiled.predict_batch(x), expected, **RUN_F64, err_msg="[predict]")


@pytest.mark.parametrize("batch_size", [1, 32])
def test_compiled_loops_float32(batch_size):
    # Catches the float32 loops going wrong (a float64 constant promoting a kernel, a scratch
    # region sized in the wrong dtype): near the float64 reference after 2 epochs.
    x, y = data()
    compiled = padded_network(np.float32)
    reference = padded_network(backend="scipy")
    a = compiled.train(x, y, mse, d_mse, 2, 0.5, verbose=False, batch_size=batch_size)
    b = reference.train(x, y, per_layer_mse, d_mse, 2, 0.5, verbose=False, batch_size=batch_size)
    np.testing.assert_allclose(a, b, **RUN_F32, err_msg="[losses]")
    for name, p in parameters(compiled).items():
        assert p.dtype == np.float32, name
        np.testing.assert_allclose(p, parameters(reference)[name], **RUN_F32, err_msg=name)


def test_two_threads_train_as_one():
    # Catches the two-thread loop lacking the padded kind or running it differently: the same
    # run as one thread's (the convolutions are not split, so bit for bit).
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has a single thread here")
    x, y = data(12)
    runs = []
    for threads in (1, 2):
        net = padded_network(threads=threads)
        losses = net.train(x, y, mse, d_mse, 2, 0.5, verbose=False)
        runs.append((losses, parameters(net)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for name, p in runs[0][1].items():
        np.testing.assert_array_equal(p, runs[1][1][name], err_msg=name)


# --------------------------------------------------------------------------------------------------
# model files


def test_model_file_round_trip(tmp_path):
    # Catches padding or bias lost in a model file (the layer would load with other shapes, or
    # not at all), and a repr that does not say them.
    net = padded_network()
    net.save(tmp_path / "m.npz")
    loaded = fastcnn.load(tmp_path / "m.npz")
    assert repr(loaded.layers[0]) == "Convolution((1, 8, 8), 5, 3, padding=2, bias='filter')"
    assert repr(loaded.layers[3]) == "Convolution((3, 4, 4), 3, 4, padding=1)"
    assert loaded.layers[0].get_config()["padding"] == 2
    x = data(3)[0]
    np.testing.assert_array_equal(loaded.predict_batch(x), net.predict_batch(x))


def _edit_architecture(path, edit):
    """Rewrite the architecture of the model file at ``path`` by ``edit(doc)``."""
    with zipfile.ZipFile(path) as archive:
        arrays = {n[:-4]: np.load(archive.open(n)) for n in archive.namelist()}
    doc = json.loads(arrays["architecture.json"].tobytes())
    edit(doc)
    arrays["architecture.json"] = np.frombuffer(json.dumps(doc).encode(), np.uint8)
    np.savez(path, **arrays)
    return doc


def test_model_files_of_the_notebooks_layer_are_todays(tmp_path):
    # Catches the notebook's convolution writing the new fields (files that today's release,
    # which requires the exact fields, could not read back) or a file without them, or with
    # them at their defaults, loading as another layer.
    net = Network([Convolution((1, 6, 6), 3, 2, rng=0), Reshape((2, 4, 4), (32, 1))])
    path = tmp_path / "old.npz"
    net.save(path)
    doc = _edit_architecture(path, lambda doc: None)
    assert {"padding", "bias"}.isdisjoint(doc["layers"][0])
    x = np.linspace(0, 1, 36).reshape(1, 6, 6)
    for spelled in (False, True):
        if spelled:
            _edit_architecture(path, lambda doc: doc["layers"][0].update(padding=0, bias="pixel"))
        loaded = fastcnn.load(path)
        assert repr(loaded.layers[0]) == "Convolution((1, 6, 6), 3, 2)"
        np.testing.assert_array_equal(loaded.predict(x), net.predict(x))


def test_model_file_bad_padding_is_named(tmp_path):
    # Catches a forged padding or bias in a file reaching the layer (or a kernel) unchecked.
    net = Network([Convolution((1, 6, 6), 3, 2, rng=0), Reshape((2, 4, 4), (32, 1))])
    for field, value, message in [
        ("padding", -1, "padding must be a non-negative integer or 'same', got -1"),
        ("bias", "row", "bias must be one of ('pixel', 'filter'), got 'row'"),
    ]:
        path = tmp_path / f"{field}.npz"
        net.save(path)
        _edit_architecture(path, lambda doc: doc["layers"][0].update({field: value}))  # noqa: B023
        with pytest.raises(fastcnn.io.ModelFileError) as info:
            fastcnn.load(path)
        assert str(info.value) == f"{path}: layer 0 (Convolution): {message}."


# --------------------------------------------------------------------------------------------------
# bad arguments


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(input_shape=(1, 6, 6), filter_size=4, filter_count=2, padding="same"),
            "Convolution((1, 6, 6), 4, 2, padding='same'): padding='same' needs an odd "
            "filter_size, got filter_size=4 for input_shape (1, 6, 6); give the padding as an "
            "int instead.",
        ),
        (
            dict(input_shape=(1, 6, 6), filter_size=3, filter_count=2, padding=-1),
            "Convolution((1, 6, 6), 3, 2, padding=-1): padding must be a non-negative integer "
            "or 'same', got -1.",
        ),
        (
            dict(input_shape=(1, 6, 6), filter_size=3, filter_count=2, padding=1.5),
            "Convolution((1, 6, 6), 3, 2, padding=1.5): padding must be a non-negative integer "
            "or 'same', got 1.5.",
        ),
        (
            dict(input_shape=(1, 6, 6), filter_size=3, filter_count=2, bias="channel"),
            "Convolution((1, 6, 6), 3, 2, bias='channel'): bias must be one of ('pixel', "
            "'filter'), got 'channel'.",
        ),
        (
            dict(input_shape=(2, 3, 4), filter_size=6, filter_count=2, padding=1),
            "Convolution((2, 3, 4), 6, 2, padding=1): filter_size=6 is larger than the input "
            "image 3x4 padded by 1 (5x6); it must be at most 5.",
        ),
    ],
)
def test_bad_arguments_are_one_clear_error(kwargs, message):
    # Catches a bad padding or bias surviving construction (a kernel would read out of bounds) or
    # refused without the layer, the values and the shapes; and nothing drawn before the refusal.
    state = np.random.get_state()[1].copy()
    with pytest.raises(ValueError) as info:
        Convolution(**kwargs)
    assert str(info.value) == message
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_padded_kernels_record_slots():
    # Catches the layer and its hooks disagreeing on the record's slots (dims), which would read
    # another layer's shapes: the slots fit a record and are distinct.
    from fastcnn.layers.base import DIMS

    slots = [
        conv_padded.DEPTH,
        conv_padded.HEIGHT,
        conv_padded.WIDTH,
        conv_padded.SIZE,
        conv_padded.COUNT,
        conv_padded.PADDING,
        conv_padded.PER_FILTER,
    ]
    assert sorted(slots) == list(range(len(slots))) and len(slots) <= DIMS


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("turned", [False, True])
@given(n=st.integers(1, 4), height=st.integers(5, 12), width=st.integers(5, 12), seed=seeds)
def test_correlate5_accumulate_is_correlate5_wide_per_channel(
    dtype, turned, n, height, width, seed
):
    # Catches the channel-summing 5 x 5 kernel reading a window off by a row or column, keeping
    # the wrong taps (unturned for the input gradient) or summing in another order than
    # correlate5_wide channel after channel (it promises the same bits), and its result not
    # being base + sum_c correlate2d(xs[c], ks[c]) (turned: ks[c, ::-1, ::-1]).
    from scipy import signal

    from fastcnn.kernels import correlate5

    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n, height, width)).astype(dtype)
    ks = rng.normal(size=(n, 5, 5)).astype(dtype)
    base = rng.normal(size=(height - 4, width - 4)).astype(dtype)
    wide = np.full(height * width, np.nan, dtype)
    out = base.copy()
    correlate5.correlate5_accumulate(xs, ks, turned, wide, out)
    chained = base.copy()
    for c in range(n):
        k = ks[c, ::-1, ::-1].copy() if turned else ks[c]
        correlate5.correlate5_wide(xs[c], k, chained, wide, chained)
    np.testing.assert_array_equal(out, chained)
    taps = ks[:, ::-1, ::-1] if turned else ks
    expected = base.astype(np.float64) + sum(
        signal.correlate2d(xs[c].astype(np.float64), taps[c].astype(np.float64), "valid")
        for c in range(n)
    )
    np.testing.assert_allclose(out, expected, **tolerance(dtype))
