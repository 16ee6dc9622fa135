"""fastcnn <-> PyTorch for every layer kind and activation fastcnn registers: the torch module
computes ``predict_batch`` (1e-12 float64, 1e-5 float32) over pool sizes, strides, image shapes
and activations; fastcnn -> torch -> fastcnn is bit-identical; torch's pooling and activation
modules with options fastcnn lacks are refused, the message naming the module and the option."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastcnn import Convolution, Linear, Network, Reshape
from fastcnn.interop import TO_TORCH, InteropError, from_torch, to_torch
from fastcnn.layers import AvgPool, MaxPool, Softmax
from fastcnn.registry import ACTIVATIONS, LAYERS

from .support import padded_convolutions
from .zoo import NETWORKS, activation, random_biases

torch = pytest.importorskip("torch")
nn = torch.nn

TORCH_TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
DTYPES = (np.float32, np.float64)
POOLS = (MaxPool, AvgPool)


def torch_predict(module, xs):
    with torch.no_grad():
        return module(torch.from_numpy(xs)).numpy().reshape(len(xs), -1)


def assert_same_network(a, b, msg=""):
    """The same layers, configs, parameters (bit for bit, dtype too)."""
    assert repr(a) == repr(b), msg
    for before, after in zip(a.layers, b.layers, strict=True):
        assert before.get_config() == after.get_config(), msg
        pa, pb = before.named_parameters(), after.named_parameters()
        assert list(pa) == list(pb), msg
        for key in pa:
            assert pa[key].dtype == pb[key].dtype, msg
            np.testing.assert_array_equal(pa[key], pb[key], err_msg=f"{msg} {key}")


def test_every_registered_kind_converts():
    # Catches a layer kind registered without a torch converter (the zoo check is test_onnx_kinds').
    assert set(LAYERS) <= set(TO_TORCH)
    for name in ACTIVATIONS:
        to_torch(Network([Linear(2, 2), activation(name)]))


@st.composite
def pooled(draw):
    size = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 4))
    depth = draw(st.integers(1, 3))
    height = draw(st.integers(size, size + 7))
    width = draw(st.integers(size, size + 7))
    pool = draw(st.sampled_from(POOLS))
    name = draw(st.sampled_from(sorted(ACTIVATIONS)))
    return pool, (depth, height, width), size, stride, name


def pooled_network(case, dtype, rng):
    """[Linear, Reshape from a column, pool, activation, Reshape to a column, Linear, activation]:
    a pool both after a reshaped column and before a flatten."""
    pool_cls, shape, size, stride, name = case
    pool = pool_cls(shape, size, stride)
    inputs, flat = 5, int(np.prod(pool.output_shape))
    options = dict(dtype=dtype, rng=rng, init="xavier")
    layers = [
        Linear(inputs, int(np.prod(shape)), **options),
        Reshape((int(np.prod(shape)), 1), shape),
        pool,
        activation(name),
        Reshape(pool.output_shape, (flat, 1)),
        Linear(flat, 3, **options),
        activation(name),
    ]
    random_biases(layers, rng)
    return Network(layers)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(case=pooled(), seed=st.integers(0, 2**16))
def test_pools_and_activations_both_ways(dtype, case, seed):
    # Catches stride taken as the window (or the reverse), torch's default stride (the window)
    # used where fastcnn's stride differs, ceil instead of floor, a lost or extra Flatten, an
    # activation read back as another one, and parameters rounded through another dtype.
    network = pooled_network(case, dtype, np.random.RandomState(seed))
    module = to_torch(network)
    xs = np.random.default_rng(seed).standard_normal((4, 5, 1)).astype(dtype)
    want = network.predict_batch(xs)
    got = torch_predict(module, xs[..., 0])
    np.testing.assert_allclose(got, want, rtol=0, atol=TORCH_TOL[np.dtype(dtype)])
    back = from_torch(module, network.input_shape)
    assert_same_network(network, back, repr(network))
    np.testing.assert_array_equal(back.predict_batch(xs), want)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NETWORKS)
def test_zoo_networks_on_signed_inputs(name, dtype):
    # test_interop.py feeds [0, 1); signed inputs reach a first pool's and activation's negative side.
    network = NETWORKS[name](dtype)
    xs = np.random.default_rng(11).standard_normal((7, *network.input_shape)).astype(dtype)
    shape = network.input_shape
    carried = xs.reshape(len(xs), shape[0]) if len(shape) == 2 and shape[1] == 1 else xs
    got = torch_predict(to_torch(network), carried)
    np.testing.assert_allclose(
        got, network.predict_batch(xs), rtol=0, atol=TORCH_TOL[np.dtype(dtype)], err_msg=name
    )


def test_torch_modules_written():
    network = Network(
        [
            MaxPool((2, 9, 8), 3, 2),
            activation("relu"),
            AvgPool((2, 4, 3), 2, 1),
            activation("tanh"),
            Reshape((2, 3, 2), (12, 1)),
            Linear(12, 4),
            activation("leaky_relu"),
        ]
    )
    module = to_torch(network)
    assert [type(m).__name__ for m in module] == [
        "MaxPool2d",
        "ReLU",
        "AvgPool2d",
        "Tanh",
        "Flatten",
        "Linear",
        "LeakyReLU",
    ]
    assert (module[0].kernel_size, module[0].stride) == (3, 2)
    assert (module[2].kernel_size, module[2].stride) == (2, 1)
    assert module[6].negative_slope == 0.01


def test_from_torch_reads_a_torch_built_pooling_network():
    # torch's own spellings: a tuple kernel, stride None (the window), inplace ReLU,
    # count_include_pad=False (no padding, so no effect), dim=-1 left alone.
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv2d(1, 3, 3),
        nn.ReLU(inplace=True),
        nn.MaxPool2d((2, 2)),
        nn.LeakyReLU(),
        nn.AvgPool2d(2, stride=(1, 1), count_include_pad=False),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(3 * 3 * 2, 4),
        nn.Sigmoid(),
    ).double()
    network = from_torch(module, (1, 10, 8))
    assert [repr(layer) for layer in network.layers[1:7]] == [
        "Activation(relu, d_relu)",
        "MaxPool((3, 8, 6), 2)",
        "Activation(leaky_relu, d_leaky_relu)",
        "AvgPool((3, 4, 3), 2, stride=1)",
        "Activation(tanh, d_tanh)",
        "Reshape((3, 3, 2), (18, 1))",
    ]
    xs = np.random.default_rng(0).standard_normal((5, 1, 10, 8))
    np.testing.assert_allclose(
        network.predict_batch(xs), torch_predict(module, xs), rtol=0, atol=1e-12
    )


MAX_LACKS = (
    r"fastcnn's MaxPool has square windows and strides, no padding, floor sizes "
    r"\(ceil_mode=False\), dilation 1 and no indices, but this MaxPool2d has "
)
AVG_LACKS = (
    r"fastcnn's AvgPool has square windows and strides, no padding, floor sizes "
    r"\(ceil_mode=False\) and the window's size as divisor \(divisor_override=None\), but this "
    r"AvgPool2d has "
)


@pytest.mark.parametrize(
    ("module", "input_shape", "message"),
    [
        (nn.MaxPool2d(2, ceil_mode=True), (1, 5, 5), MAX_LACKS + r"ceil_mode=True$"),
        (nn.MaxPool2d(2, padding=1), (1, 5, 5), MAX_LACKS + r"padding=1$"),
        (nn.MaxPool2d(2, dilation=2), (1, 5, 5), MAX_LACKS + r"dilation=2$"),
        (nn.MaxPool2d(2, return_indices=True), (1, 4, 4), MAX_LACKS + r"return_indices=True$"),
        (nn.MaxPool2d((2, 3), stride=2), (1, 6, 6), MAX_LACKS + r"kernel_size=\(2, 3\)$"),
        (
            nn.MaxPool2d(2, stride=(1, 2), padding=(0, 1)),
            (1, 6, 6),
            MAX_LACKS + r"stride=\(1, 2\), padding=\(0, 1\)$",
        ),
        (nn.AvgPool2d(2, padding=1), (1, 5, 5), AVG_LACKS + r"padding=1$"),
        (nn.AvgPool2d(2, ceil_mode=True), (1, 5, 5), AVG_LACKS + r"ceil_mode=True$"),
        (nn.AvgPool2d(2, divisor_override=3), (1, 4, 4), AVG_LACKS + r"divisor_override=3$"),
        (
            nn.Sequential(nn.Linear(4, 2), nn.LeakyReLU(0.2)),
            (4, 1),
            r"fastcnn's leaky_relu has slope 0.01 \(PyTorch's default\), but this LeakyReLU has "
            r"negative_slope=0.2$",
        ),
        (
            nn.Sequential(nn.Linear(4, 8), nn.MaxPool2d(2)),
            (4, 1),
            r"pools images \(channels, height, width\), but the value before it has shape "
            r"\(8, 1\) \(add nn.Unflatten\(1, \(channels, height, width\)\)\)$",
        ),
        (nn.AvgPool2d(4), (2, 3, 5), r"AvgPool: size=4 is larger than the input image 3x5"),
    ],
    ids=[
        "ceil_mode",
        "padding",
        "dilation",
        "return_indices",
        "non-square",
        "stride and padding",
        "avg padding",
        "avg ceil_mode",
        "divisor_override",
        "leaky slope",
        "pool after linear",
        "window too large",
    ],
)
def test_from_torch_refuses_what_fastcnn_lacks(module, input_shape, message):
    # Catches an option silently dropped (the network would compute something else), and a
    # message that does not say which module is at fault.
    index = len(module) - 1 if isinstance(module, nn.Sequential) else 0
    leaf = module[index] if isinstance(module, nn.Sequential) else module
    with pytest.raises(InteropError) as info:
        from_torch(module, input_shape)
    prefix = f"module {index} ({leaf!r}): "
    assert str(info.value).startswith(prefix)
    assert re.search(message, str(info.value)[len(prefix) :]), str(info.value)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_softmax_both_ways(dtype):
    # Catches a softmax over the batch axis, and dim=-1 (torch's usual spelling) refused.
    network = Network([Linear(3, 10, dtype=dtype, rng=0), Softmax()])
    module = to_torch(network)
    assert isinstance(module[-1], nn.Softmax) and module[-1].dim == 1
    xs = np.random.default_rng(0).standard_normal((6, 3, 1)).astype(dtype) * 400
    np.testing.assert_allclose(
        torch_predict(module, xs[..., 0]),
        network.predict_batch(xs),
        rtol=0,
        atol=TORCH_TOL[np.dtype(dtype)],
    )
    assert_same_network(network, from_torch(module, (3, 1)))
    module[-1] = nn.Softmax(dim=-1)
    assert_same_network(network, from_torch(module, (3, 1)))


@pytest.mark.parametrize(
    ("module", "input_shape", "message"),
    [
        (
            nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=0)),
            (3, 1),
            r"^module 1 \(Softmax\(dim=0\)\): fastcnn's Softmax is over the features of each sample "
            r"\(dim=1 of \(N, n\)\), but this Softmax has dim=0$",
        ),
        (
            nn.Sequential(nn.Linear(3, 4), nn.Softmax()),
            (3, 1),
            r"^module 1 \(Softmax\(dim=None\)\): .* but this Softmax has dim=None$",
        ),
        (
            nn.Sequential(nn.Conv2d(1, 2, 3), nn.Softmax(dim=1)),
            (1, 5, 5),
            r"^module 1 \(Softmax\(dim=1\)\): fastcnn's Softmax takes a column vector, but the "
            r"value before it has shape \(2, 3, 3\) \(add nn.Flatten\(\)\)$",
        ),
        (
            nn.Sequential(nn.Linear(3, 4), nn.LogSoftmax(dim=1)),
            (3, 1),
            r"^module 1 \(LogSoftmax\(dim=1\)\): torch module LogSoftmax has no fastcnn equivalent",
        ),
    ],
    ids=["dim 0", "dim None", "on an image", "log-softmax"],
)
def test_from_torch_refuses_other_softmaxes(module, input_shape, message):
    with pytest.raises(InteropError, match=message):
        from_torch(module, input_shape)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(case=padded_convolutions(), seed=st.integers(0, 2**16))
def test_padded_and_per_filter_convolutions_both_ways(dtype, case, seed):
    # Catches padding dropped or doubled, a per-filter bias turned into a PixelBias (or back
    # into per-pixel biases: the round trip would change the layer's config), and biases on the
    # wrong axis.
    shape, size, count, padding, bias = case
    rng = np.random.RandomState(seed)
    conv = Convolution(
        shape, size, count, padding=padding, bias=bias, dtype=dtype, rng=rng, init="xavier"
    )
    flat = int(np.prod(conv.output_shape))
    layers = [
        conv,
        activation("relu"),
        Reshape(conv.output_shape, (flat, 1)),
        Linear(flat, 3, dtype=dtype, rng=rng, init="xavier"),
    ]
    random_biases(layers, rng)
    network = Network(layers)
    module = to_torch(network)
    assert (module[0].bias is not None) == (bias == "filter")
    assert module[0].padding == (padding, padding)
    xs = np.random.default_rng(seed).standard_normal((3, *shape)).astype(dtype)
    want = network.predict_batch(xs)
    np.testing.assert_allclose(
        torch_predict(module, xs), want, rtol=0, atol=TORCH_TOL[np.dtype(dtype)]
    )
    back = from_torch(module, shape)
    assert_same_network(network, back, repr(network))
    np.testing.assert_array_equal(back.predict_batch(xs), want)


def test_from_torch_reads_torch_padding_and_biases():
    # torch's spellings of padding ("same", "valid", an int, a pair) and its bias=False.
    torch.manual_seed(0)
    cases = [
        (nn.Conv2d(2, 3, 5, padding="same"), (2, "filter")),
        (nn.Conv2d(2, 3, 3, padding="valid"), (0, "filter")),
        (nn.Conv2d(2, 3, 3, padding=1, bias=False), (1, "filter")),
        (nn.Conv2d(2, 3, 3, padding=(2, 2), padding_mode="zeros"), (2, "filter")),
        (nn.Conv2d(2, 3, 3, padding=0, padding_mode="reflect"), (0, "filter")),
    ]
    for conv, (padding, bias) in cases:
        conv = conv.double()
        network = from_torch(conv, (2, 7, 6))
        (layer,) = network.layers
        assert (layer.padding, layer.bias, layer.biases.shape) == (padding, bias, (3, 1, 1))
        want = 0 if conv.bias is None else conv.bias.detach().numpy()
        np.testing.assert_array_equal(layer.biases.ravel(), want * np.ones(3))
        xs = np.random.default_rng(0).standard_normal((4, 2, 7, 6))
        np.testing.assert_allclose(
            network.predict_batch(xs), torch_predict(conv, xs), rtol=0, atol=1e-12
        )


CONV_LACKS = (
    r"fastcnn's Convolution has square filters, stride 1, the same zero padding on every "
    r"side, dilation 1 and groups 1, but this Conv2d has "
)


@pytest.mark.parametrize(
    ("conv", "message"),
    [
        (nn.Conv2d(1, 2, 3, padding=(1, 2)), CONV_LACKS + r"padding=\(1, 2\)$"),
        (nn.Conv2d(1, 2, 4, padding="same"), CONV_LACKS + r"padding='same'$"),
        (
            nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"),
            CONV_LACKS + r"padding_mode='reflect'$",
        ),
        (
            nn.Conv2d(1, 2, 7),
            r"Convolution\(\(1, 5, 5\), 7, 2, bias=.filter.\): filter_size=7 is larger",
        ),
    ],
    ids=["uneven padding", "same on an even kernel", "reflect", "too large"],
)
def test_from_torch_refuses_other_convolutions(conv, message):
    with pytest.raises(InteropError, match=r"^module 0 \(Conv2d\(.*\)\): " + message):
        from_torch(conv, (1, 5, 5))
