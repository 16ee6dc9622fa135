"""fastcnn <-> PyTorch (fastcnn/interop.py): the torch module computes ``predict_batch``; the round
trip fastcnn -> torch -> fastcnn is bit-identical; torch-built modules convert; a module or
layer without an equivalent is one clear error; without torch, the module imports and says which
extra to install."""

import subprocess
import sys

import numpy as np
import pytest

from fastcnn import Activation, Convolution, Linear, Network, d_sigmoid
from fastcnn.interop import InteropError, from_torch, to_torch
from fastcnn.models import mnist_cnn

from .zoo import NETWORKS

torch = pytest.importorskip("torch")

DTYPES = (np.float32, np.float64)
# torch sums in another order than fastcnn's kernels (float32: seen 1e-6 on the MNIST CNN).
TORCH_TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def torch_predict(module, xs):
    with torch.no_grad():
        return module(torch.from_numpy(xs)).numpy()


def as_torch_input(network, xs):
    """predict_batch's (N, *input_shape) with a column (n, 1) as (N, n)."""
    shape = network.input_shape
    return xs.reshape(len(xs), shape[0]) if len(shape) == 2 and shape[1] == 1 else xs


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NETWORKS)
def test_to_torch_computes_predict_batch(name, dtype):
    # Catches transposed weights, a bias on the wrong axis, a reshape in the wrong order, and a
    # module in another dtype than the network.
    network = NETWORKS[name](dtype)
    module = to_torch(network)
    assert {p.dtype for p in module.parameters()} == {getattr(torch, np.dtype(dtype).name)}
    xs = np.random.default_rng(5).random((6, *network.input_shape)).astype(dtype)
    got = torch_predict(module, as_torch_input(network, xs)).reshape(6, -1)
    want = network.predict_batch(xs)
    np.testing.assert_allclose(got, want, rtol=0, atol=TORCH_TOL[np.dtype(dtype)], err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", NETWORKS)
def test_round_trip_is_bit_identical(name, dtype):
    # Catches a parameter rounded through another dtype, a layer lost or added on the way, and
    # a shape that changes.
    network = NETWORKS[name](dtype)
    back = from_torch(to_torch(network), network.input_shape)
    assert repr(back) == repr(network)
    for before, after in zip(network.layers, back.layers, strict=True):
        assert before.get_config() == after.get_config()
        for (key, a), (key_b, b) in zip(
            before.named_parameters().items(), after.named_parameters().items(), strict=True
        ):
            assert key == key_b and a.dtype == b.dtype
            np.testing.assert_array_equal(a, b, err_msg=f"{name} {key}")
    xs = np.random.default_rng(2).random((5, *network.input_shape)).astype(dtype)
    np.testing.assert_array_equal(back.predict_batch(xs), network.predict_batch(xs))


def test_mnist_module_layout():
    module = to_torch(mnist_cnn(rng=0))
    kinds = [type(m).__name__ for m in module]
    assert kinds == [
        "Conv2d",
        "PixelBias",
        "Sigmoid",
        "Flatten",
        "Linear",
        "Sigmoid",
        "Linear",
        "Sigmoid",
    ]
    assert module[0].bias is None and tuple(module[1].bias.shape) == (5, 26, 26)
    out = torch_predict(module, np.zeros((3, 1, 28, 28)))
    assert out.shape == (3, 10) and out.dtype == np.float64


def test_from_torch_reads_a_torch_built_network():
    # A Conv2d with torch's per-filter bias: a Convolution with bias="filter".
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3),
        torch.nn.Sigmoid(),
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Identity()),
        torch.nn.Linear(3 * 6 * 6, 4),
        torch.nn.Sigmoid(),
    ).double()
    network = from_torch(module, (1, 8, 8))
    assert [type(layer).__name__ for layer in network.layers] == [
        "Convolution",
        "Activation",
        "Reshape",
        "Linear",
        "Activation",
    ]
    assert network.layers[0].bias == "filter"
    np.testing.assert_array_equal(network.layers[0].biases.ravel(), module[0].bias.detach().numpy())
    xs = np.random.default_rng(0).random((4, 1, 8, 8))
    np.testing.assert_allclose(network.predict_batch(xs), torch_predict(module, xs), atol=1e-12)


def test_from_torch_keeps_float32():
    module = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Sigmoid())
    network = from_torch(module, (4, 1))
    assert network.layers[0].dtype == np.float32
    xs = np.random.default_rng(0).random((3, 4, 1)).astype(np.float32)
    np.testing.assert_allclose(
        network.predict_batch(xs), torch_predict(module, xs[..., 0]), atol=1e-6
    )


@pytest.mark.parametrize(
    ("module", "input_shape", "message"),
    [
        (
            torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ELU()),
            (4, 1),
            r"^module 1 \(ELU\(alpha=1.0\)\): torch module ELU has no fastcnn equivalent; "
            r"from_torch knows Conv2d, Linear, Sigmoid, ReLU, Tanh, LeakyReLU, MaxPool2d, "
            r"AvgPool2d, Softmax, Flatten, Unflatten, Identity and fastcnn.interop.PixelBias$",
        ),
        (
            torch.nn.Conv2d(1, 2, 3, stride=2),
            (1, 8, 8),
            r"^module 0 \(Conv2d\(.*\)\): fastcnn's Convolution has square filters, stride 1, "
            r"the same zero padding on every side, dilation 1 and groups 1, but this Conv2d has "
            r"stride=\(2, 2\)$",
        ),
        (
            torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Linear(6, 2)),
            (1, 8, 8),
            r"^module 1 \(Linear.*\): expects 6 inputs in a row, but the value before it has "
            r"shape \(2, 6, 6\) \(add nn.Flatten\(\)\)$",
        ),
        (
            torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.Conv2d(1, 2, 1)),
            (4, 1),
            r"^module 1 .*: expects 1 input channels, but the value before it has shape \(2, 1\)",
        ),
    ],
    ids=["elu", "stride", "linear after conv", "conv after linear"],
)
def test_from_torch_errors_name_the_module(module, input_shape, message):
    with pytest.raises(InteropError, match=message):
        from_torch(module, input_shape)


def test_to_torch_errors_name_the_layer():
    class Custom(Linear):
        pass

    with pytest.raises(
        InteropError,
        match=r"^layer 0 \(Linear\(4, 2\)\): no torch equivalent for layer type 'Custom'; fastcnn.interop.TO_TORCH knows Convolution, Linear, Activation, Reshape, MaxPool, AvgPool, Softmax$",
    ):
        to_torch(Network([Custom(4, 2)]))

    def relu(x):
        return np.maximum(x, 0)

    with pytest.raises(
        InteropError,
        match=r"^layer 1 \(Activation\(relu, d_sigmoid\)\): a model file can hold only",
    ):
        to_torch(Network([Linear(4, 2), Activation(relu, d_sigmoid)]))


def test_pixel_bias_round_trips_alone():
    # A PixelBias without its Conv2d has no meaning in fastcnn: one clear error.
    from fastcnn.interop import PixelBias

    with pytest.raises(InteropError, match=r"a PixelBias must follow a Conv2d"):
        from_torch(torch.nn.Sequential(PixelBias((1, 4, 4))), (1, 4, 4))
    conv = Convolution((1, 4, 4), 3, 1)
    assert isinstance(to_torch(Network([conv]))[1], PixelBias)


@pytest.mark.slow
def test_without_torch_the_module_imports_and_names_the_extra():
    # Catches an import of torch at module level (fastcnn.interop must import without it).
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import fastcnn.interop as interop\n"
        "from fastcnn.models import mnist_cnn\n"
        "try:\n"
        "    interop.to_torch(mnist_cnn(rng=0))\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == (
        "fastcnn.interop needs PyTorch: pip install 'fastcnn[torch]' (a CPU build of torch, "
        "e.g. torch==2.13.0)\n"
    )
