"""Layers: the Numba backend against the seed's SciPy backend from identical weights, one contract
test over every layer, seeding and initialisation, dtypes, user-supplied activations."""

import copy
import json

import numpy as np
import pytest
from hypothesis import given

import fastcnn
from fastcnn import Activation, Convolution, Linear, Network, Reshape, d_sigmoid, sigmoid
from fastcnn.layers import LAYERS
from fastcnn.models import mnist_cnn

from .support import (
    DTYPES,
    XOR_X,
    XOR_Y,
    conv_shapes,
    parameters,
    seeds,
    tolerance,
    xor_network,
)

RATE = 0.1


def d_tanh(x):
    return 1 - np.tanh(x) ** 2


def compare(fast, slow, x, g, dtype, rate=RATE):
    """Run forward and backward on both layers; assert output, input gradient and every updated
    parameter agree, each labelled."""
    tol = tolerance(dtype)
    # Linear and Convolution must have parameters (the helper fails on none); Activation has none.
    named = parameters(slow) if not isinstance(slow, Activation) else slow.named_parameters()
    for name in named:
        np.testing.assert_array_equal(
            getattr(fast, name),
            getattr(slow, name),
            err_msg=f"initial {name} differ between backends",
        )
    out_fast, out_slow = fast.forward_prop(x), slow.forward_prop(x)
    checks = [("forward", out_fast, out_slow)]
    d_fast, d_slow = fast.backward_prop(g, rate), slow.backward_prop(g, rate)
    checks.append(("d_input", d_fast, d_slow))
    checks += [(name, getattr(fast, name), value) for name, value in named.items()]
    for name, a, b in checks:
        assert a.dtype == b.dtype == dtype, f"[{name}] dtype numba {a.dtype}, scipy {b.dtype}"
        assert a.shape == b.shape, f"[{name}] shape numba {a.shape}, scipy {b.shape}"
        np.testing.assert_allclose(a, b, **tol, err_msg=f"[{name}] numba vs scipy, {fast!r}")


# --------------------------------------------------------------------------------------------------
# numba backend vs scipy backend


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(shape=conv_shapes(), seed=seeds)
def test_linear_backends_agree(dtype, shape, seed):
    # Catches Linear's Numba path differing from the seed's np.dot code in any output or update.
    # E.g. a missing transpose in d_input, d_input taken from updated weights, a lost bias update.
    n, m = shape.flat, shape.hidden
    fast = Linear(n, m, dtype=dtype, rng=seed)
    slow = Linear(n, m, dtype=dtype, rng=seed, backend="scipy")
    rng = np.random.default_rng(seed)
    compare(fast, slow, rng.uniform(0, 1, (n, 1)), rng.standard_normal((m, 1)), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(shape=conv_shapes(), seed=seeds)
def test_convolution_backends_agree(dtype, shape, seed):
    # Catches Convolution's Numba path differing from the seed's correlate2d/convolve2d loop.
    args = ((shape.depth, shape.height, shape.width), shape.size, shape.count)
    fast = Convolution(*args, dtype=dtype, rng=seed)
    slow = Convolution(*args, dtype=dtype, rng=seed, backend="scipy")
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, args[0])
    g = rng.standard_normal(fast.output_shape)
    compare(fast, slow, x, g, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@given(shape=conv_shapes(), seed=seeds)
def test_sigmoid_backends_agree(dtype, shape, seed):
    # Catches the sigmoid kernels differing from sigmoid/d_sigmoid, or turning float32 into float64.
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((shape.count, shape.height, shape.width)) * 6).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    compare(
        Activation(sigmoid, d_sigmoid), Activation(sigmoid, d_sigmoid, backend="scipy"), x, g, dtype
    )


@given(shape=conv_shapes(), seed=seeds)
def test_reshape_is_the_seed_reshape(shape, seed):
    # Catches a Reshape that is not np.reshape (a transpose, Fortran order) in either direction.
    layer = Reshape((shape.count, *shape.out_hw), (shape.flat, 1))
    x = np.random.default_rng(seed).standard_normal((shape.count, *shape.out_hw))
    out = layer.forward_prop(x)
    np.testing.assert_array_equal(out, np.reshape(x, (shape.flat, 1)), err_msg="[forward]")
    np.testing.assert_array_equal(layer.backward_prop(out, RATE), x, err_msg="[d_input]")


# --------------------------------------------------------------------------------------------------
# the contract every layer keeps


CONTRACT = [
    # (constructor call, what its repr must read, input shape)
    ("Linear(3, 2)", "Linear(3, 2)", (3, 1)),
    ("Linear(3, 2, backend='scipy')", "Linear(3, 2, backend='scipy')", (3, 1)),
    ("Linear(4, 3, dtype=np.float32)", "Linear(4, 3, dtype='float32')", (4, 1)),
    ("Convolution((1, 28, 28), 3, 5)", "Convolution((1, 28, 28), 3, 5)", (1, 28, 28)),
    (
        "Convolution((2, 5, 6), 3, 4, backend='scipy', dtype='float32')",
        "Convolution((2, 5, 6), 3, 4, backend='scipy', dtype='float32')",
        (2, 5, 6),
    ),
    ("Convolution([2, 4, 4], 4, 1)", "Convolution((2, 4, 4), 4, 1)", (2, 4, 4)),
    ("Activation(sigmoid, d_sigmoid)", "Activation(sigmoid, d_sigmoid)", (5, 1)),
    (
        "Activation(sigmoid, d_sigmoid, backend='scipy')",
        "Activation(sigmoid, d_sigmoid, backend='scipy')",
        (2, 3, 3),
    ),
    ("Activation(tanh, d_tanh)", "Activation(tanh, d_tanh)", (4, 1)),
    ("Reshape((5, 26, 26), (5 * 26 * 26, 1))", "Reshape((5, 26, 26), (3380, 1))", (5, 26, 26)),
]
NAMESPACE = {**vars(fastcnn), "np": np, "tanh": np.tanh, "d_tanh": d_tanh}


@pytest.mark.parametrize("call, text, input_shape", CONTRACT, ids=[c[1] for c in CONTRACT])
def test_layer_contract(call, text, input_shape):
    # Catches a layer breaking the common contract: shapes, rate=0 is a no-op, repr, no aliasing.
    # keras run_layer_test style: the output shape is the declared one, d_input is shaped like the
    # input, forward leaves its input alone, and writing to the returned output changes nothing.
    np.random.seed(0)
    layer = eval(call, NAMESPACE)
    assert repr(layer) == text
    assert repr(eval(text, NAMESPACE)) == text  # the repr is itself a valid constructor call

    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, input_shape)
    x_before = x.copy()
    out = layer.forward_prop(x)
    np.testing.assert_array_equal(x, x_before, err_msg="forward_prop modified its input")
    expected = getattr(layer, "output_shape", None)
    if isinstance(layer, Linear):
        expected = (layer.output_size, 1)
    assert out.shape == (expected or input_shape)
    dtype = getattr(layer, "dtype", np.dtype(np.float64))
    assert out.dtype == dtype

    before = {k: v.copy() for k, v in layer.named_parameters().items()}
    g = rng.standard_normal(out.shape)
    out[...] = 123.0  # the caller owns what forward_prop returned
    d_input = layer.backward_prop(g, 0.0)
    assert d_input.shape == input_shape
    assert d_input.dtype == dtype
    for name, value in before.items():
        np.testing.assert_array_equal(
            getattr(layer, name), value, err_msg=f"backward_prop(g, rate=0.0) changed {name}"
        )

    # The same backward on an untouched twin: the caller's write to `out` changed nothing.
    twin = eval(call, {**NAMESPACE})
    for name, value in before.items():
        setattr(twin, name, value.copy())
    twin.forward_prop(x)
    np.testing.assert_array_equal(
        d_input,
        twin.backward_prop(g, 0.0),
        err_msg="writing to forward_prop's output changed d_input",
    )


def test_network_backend_switches_every_layer():
    # Catches Network(layers, backend=...) skipping a layer kind, e.g. Activation.
    layers = [
        Convolution((1, 5, 5), 2, 2, rng=0),
        Activation(sigmoid, d_sigmoid),
        Reshape((2, 4, 4), (32, 1)),
        Linear(32, 3, rng=1),
        Activation(sigmoid, d_sigmoid),
    ]
    Network(layers, backend="scipy")
    assert [getattr(layer, "backend", None) for layer in layers] == [
        "scipy",
        "scipy",
        None,
        "scipy",
        "scipy",
    ]
    Network(layers, backend="numba")
    assert all(getattr(layer, "backend", "numba") == "numba" for layer in layers)


# --------------------------------------------------------------------------------------------------
# initial weights


def seed_linear(input_size, output_size):
    """The seed's Linear.__init__ draws (cell 324), verbatim."""
    weights = np.random.randn(output_size, input_size)
    biases = np.random.randn(output_size, 1)
    return weights, biases


def seed_convolution(input_shape, filter_size, filter_count):
    """The seed's Convolution.__init__ draws (cell 333), verbatim."""
    input_depth, input_height, input_width = input_shape
    output_shape = (filter_count, input_height - filter_size + 1, input_width - filter_size + 1)
    filters_shape = (filter_count, input_depth, filter_size, filter_size)
    filters = np.random.randn(*filters_shape) - 0.5
    biases = np.random.randn(*output_shape) - 0.5
    return filters, biases


@pytest.mark.parametrize("seed", [0, 1234])
def test_global_seed_gives_the_seed_weights(seed):
    # Catches any change to the seed's draws: order, shapes, the `- 0.5`, an extra draw.
    # Under np.random.seed(s) the seed's notebook must start from exactly the same weights.
    np.random.seed(seed)
    expected = [
        *seed_convolution((1, 28, 28), 3, 5),
        *seed_linear(5 * 26 * 26, 100),
        *seed_linear(100, 10),
    ]
    np.random.seed(seed)
    got = list(
        parameters(mnist_cnn()).values()
    )  # rng=None: the global state, as the notebook draws
    assert len(got) == len(expected)
    for k, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a.shape == b.shape and a.dtype == np.float64
        np.testing.assert_array_equal(a, b, err_msg=f"parameter {k} differs from the seed's draw")


def test_rng_int_equals_global_seed_and_leaves_global_state():
    # Catches rng=<int> not matching np.random.seed(<int>), or a layer consuming the global state.
    expected = []
    for make in (lambda: Linear(6, 4), lambda: Convolution((2, 5, 5), 3, 2)):
        np.random.seed(7)
        expected += parameters(make()).values()
    np.random.seed(99)
    state = np.random.get_state()
    got = list(parameters([Linear(6, 4, rng=7), Convolution((2, 5, 5), 3, 2, rng=7)]).values())
    assert len(got) == len(expected) == 4
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b, err_msg="rng=7 differs from np.random.seed(7)")
    after = np.random.get_state()
    np.testing.assert_array_equal(after[1], state[1], err_msg="global NumPy state was consumed")
    assert after[2:] == state[2:]


def test_rng_generator_draws_from_it():
    # Catches a Generator rng being ignored or drawn in another order than documented.
    state = np.random.get_state()
    layer = Linear(5, 3, rng=np.random.default_rng(3))
    ref = np.random.default_rng(3)
    np.testing.assert_array_equal(layer.weights, ref.standard_normal((3, 5)))
    np.testing.assert_array_equal(layer.biases, ref.standard_normal((3, 1)))
    conv = Convolution((1, 4, 4), 2, 2, rng=np.random.default_rng(3))
    ref = np.random.default_rng(3)
    np.testing.assert_array_equal(conv.filters, ref.standard_normal((2, 1, 2, 2)) - 0.5)
    np.testing.assert_array_equal(conv.biases, ref.standard_normal((2, 3, 3)) - 0.5)
    np.testing.assert_array_equal(np.random.get_state()[1], state[1])


@pytest.mark.parametrize("backend", ["numba", "scipy"])
def test_float32_layers_stay_float32(backend):
    # Catches float32 layers storing or returning float64 anywhere in forward, backward or update.
    # Numba promotes float32 * python float to float64; NumPy 2 does not.
    net = [
        Convolution((2, 6, 6), 3, 2, dtype=np.float32, rng=0, backend=backend),
        Activation(sigmoid, d_sigmoid, backend=backend),
        Reshape((2, 4, 4), (32, 1)),
        Linear(32, 3, dtype="float32", rng=1, backend=backend),
    ]
    x = np.random.default_rng(0).uniform(0, 1, (2, 6, 6))  # float64 input, cast at the boundary
    for layer in net:
        x = layer.forward_prop(x)
        assert x.dtype == np.float32, f"forward of {layer!r} returned {x.dtype}"
    g = np.ones_like(x)
    for layer in reversed(net):
        g = layer.backward_prop(g, 0.1)
        assert g.dtype == np.float32, f"backward of {layer!r} returned {g.dtype}"
        for name, value in layer.named_parameters().items():
            assert value.dtype == np.float32, f"{layer!r}.{name} is {value.dtype}"


def test_xavier_init():
    # Catches a wrong Glorot scale (fan sum, square root, the conv's size**2) or non-zero biases.
    # Fixed seeds and 10+ standard errors of margin: this cannot flake.
    layer = Linear(400, 600, init="xavier", rng=0)
    expected = np.sqrt(2 / (400 + 600))
    # 240,000 draws: the sample std's relative standard error is 1/sqrt(2n) = 0.14%; allow 2%.
    assert abs(layer.weights.std() / expected - 1) < 0.02
    assert abs(layer.weights.mean()) < 0.02 * expected
    np.testing.assert_array_equal(layer.biases, np.zeros((600, 1)))

    conv = Convolution((8, 12, 12), 5, 64, init="xavier", rng=0)
    expected = np.sqrt(2 / (8 * 25 + 64 * 25))
    # 12,800 draws: relative standard error 0.6%; allow 6%.
    assert abs(conv.filters.std() / expected - 1) < 0.06
    assert abs(conv.filters.mean()) < 0.06 * expected
    np.testing.assert_array_equal(conv.biases, np.zeros(conv.output_shape))


def test_user_activation_on_numba_backend():
    # Catches the Numba backend mishandling an activation without a kernel (tanh), alone or trained.
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((4, 1)) * 2, rng.standard_normal((4, 1))
    layer = Activation(np.tanh, d_tanh)
    np.testing.assert_array_equal(layer.forward_prop(x), np.tanh(x))
    np.testing.assert_array_equal(layer.backward_prop(g, RATE), g * (1 - np.tanh(x) ** 2))

    fast, slow = (xor_network(backend=b, activation=(np.tanh, d_tanh)) for b in ("numba", "scipy"))
    h_fast = fast.train(XOR_X, XOR_Y, fastcnn.mse, fastcnn.d_mse, 200, 0.1, verbose=False)
    h_slow = slow.train(XOR_X, XOR_Y, fastcnn.mse, fastcnn.d_mse, 200, 0.1, verbose=False)
    np.testing.assert_allclose(h_fast, h_slow, **tolerance(np.float64), err_msg="[loss]")
    for (k, a), b in zip(parameters(fast).items(), parameters(slow).values(), strict=True):
        np.testing.assert_allclose(a, b, **tolerance(np.float64), err_msg=f"[{k}]")
    assert h_fast[-1] < h_fast[0]


def test_layers_deepcopy_independently():
    # Catches a layer sharing parameter arrays with its deep copy (e.g. a cached flat view).
    layer = Convolution((1, 5, 5), 3, 2, rng=0)
    twin = copy.deepcopy(layer)
    twin.forward_prop(np.ones((1, 5, 5)))
    twin.backward_prop(np.ones(twin.output_shape), 1.0)
    assert not np.array_equal(twin.filters, layer.filters)
    np.testing.assert_array_equal(layer.filters, Convolution((1, 5, 5), 3, 2, rng=0).filters)


# ---------------------------------------------------------------------------------------------------
# what a layer says about itself


DESCRIBED = [
    lambda: Linear(5, 3, rng=0),
    lambda: Linear(5, 3, rng=0, backend="scipy", dtype=np.float32),
    lambda: Convolution((2, 6, 5), 3, 4, rng=0),
    lambda: Convolution((1, 7, 7), 2, 3, rng=0, backend="scipy", dtype=np.float32),
    lambda: Convolution((2, 6, 5), 5, 3, padding=2, bias="filter", rng=0),
    lambda: Convolution((1, 7, 7), 3, 2, padding="same", rng=0, backend="scipy"),
    lambda: Activation(sigmoid, d_sigmoid),
    lambda: Activation(sigmoid, d_sigmoid, backend="scipy"),
    lambda: Reshape((2, 3, 4), (24, 1)),
]


@pytest.mark.parametrize("make", DESCRIBED, ids=lambda m: repr(m()))
def test_layer_describes_itself(make):
    # Catches a config that does not rebuild the same layer, named parameters out of step with
    # parameters() or their shapes, or a layer missing from the registry io.py iterates.
    layer = make()
    config = layer.get_config()
    # Every field in its order; only a newer field at its default may be left out.
    fields = type(layer).CONFIG_FIELDS
    assert tuple(config) == tuple(f for f in fields if f in config)
    assert set(fields) - set(config) <= set(type(layer).CONFIG_DEFAULTS)
    assert LAYERS[type(layer).__name__] is type(layer)

    rebuilt = type(layer).from_config(json.loads(json.dumps(config)))
    assert repr(rebuilt) == repr(layer)
    assert rebuilt.get_config() == config
    named = layer.named_parameters()
    assert tuple(named) == type(layer)._PARAMETERS
    assert all(a is b for a, b in zip(named.values(), layer.parameters(), strict=True))
    assert {k: v.shape for k, v in named.items()} == layer.parameter_shapes()
    if isinstance(layer, Linear):
        assert (layer.input_shape, layer.output_shape) == ((5, 1), (3, 1))


def test_user_activation_cannot_describe_itself():
    # Catches a user-defined activation described (and so saved) as a registered one.
    with pytest.raises(ValueError, match="a model file can hold only Activation"):
        Activation(np.tanh, d_tanh).get_config()


@pytest.mark.parametrize("backend", ["numba", "scipy"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda **kw: Linear(7, 4, rng=1, **kw), (7, 1)),
        (lambda **kw: Convolution((2, 6, 5), 3, 4, rng=1, **kw), (2, 6, 5)),
    ],
    ids=["Linear", "Convolution"],
)
def test_gradient_then_apply_equals_backward_prop(make, shape, dtype, backend):
    # Catches gradient() changing parameters, or gradient + apply_gradient rounding differently
    # from the seed's backward_prop (mini-batch training builds on the two halves).
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, shape)
    fused, split = make(backend=backend, dtype=dtype), make(backend=backend, dtype=dtype)
    g = rng.uniform(-1, 1, fused.output_shape)
    fused.forward_prop(x)
    split.forward_prop(x)
    before = [p.copy() for p in split.parameters()]
    d_input, grads = split.gradient(g)
    for a, b in zip(split.parameters(), before, strict=True):
        np.testing.assert_array_equal(a, b, err_msg="gradient changed a parameter")
    assert len(grads) == len(before)
    split.apply_gradient(grads, RATE)
    np.testing.assert_array_equal(d_input, fused.backward_prop(g, RATE), err_msg="d_input")
    for name, a, b in zip(
        type(fused)._PARAMETERS, fused.parameters(), split.parameters(), strict=True
    ):
        np.testing.assert_array_equal(a, b, err_msg=f"updated {name}")


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda **kw: Linear(7, 4, rng=1, **kw), (7, 1)),
        (lambda **kw: Convolution((2, 6, 5), 3, 4, rng=1, **kw), (2, 6, 5)),
    ],
    ids=["Linear", "Convolution"],
)
def test_gradient_backends_agree(make, shape):
    # Catches a numba gradient kernel that differs from the seed's maths (say, an unflipped filter).
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, shape)
    fast, slow = make(), make(backend="scipy")
    g = rng.uniform(-1, 1, fast.output_shape)
    fast.forward_prop(x)
    slow.forward_prop(x)
    (d_fast, g_fast), (d_slow, g_slow) = fast.gradient(g), slow.gradient(g)
    tol = tolerance(np.float64)
    np.testing.assert_allclose(d_fast, d_slow, **tol, err_msg="d_input")
    for name, a, b in zip(type(fast)._PARAMETERS, g_fast, g_slow, strict=True):
        np.testing.assert_allclose(a, b, **tol, err_msg=f"d_{name}")


def test_parameter_free_layers_have_empty_gradients():
    # Catches an activation or reshape returning gradients that an optimiser would try to apply.
    act, reshape = Activation(sigmoid, d_sigmoid), Reshape((2, 3), (6, 1))
    act.forward_prop(np.zeros((4, 1)))
    d_input, grads = act.gradient(np.ones((4, 1)))
    assert grads == () and np.allclose(d_input, 0.25)
    assert reshape.gradient(np.ones((6, 1)))[0].shape == (2, 3)
    act.apply_gradient((), 0.1)
    with pytest.raises(ValueError, match="has no parameters, but received 1 grads"):
        act.apply_gradient((np.ones(1),), 0.1)


def test_apply_gradient_checks_its_grads():
    # Catches a gradient of the wrong shape broadcast into the weights.
    layer = Linear(3, 2, rng=0)
    with pytest.raises(ValueError, match=r"expects 2 grads \(weights, biases\), but received 1"):
        layer.apply_gradient((np.ones((2, 3)),), 0.1)
    with pytest.raises(ValueError, match=r"gradient of weights of layer Linear\(3, 2\)"):
        layer.apply_gradient((np.ones((2, 1)), np.ones((2, 1))), 0.1)


def test_init_seed_is_a_deprecated_name_of_notebook():
    # Catches the rename breaking init="seed", or it silently meaning something else.
    with pytest.warns(DeprecationWarning, match='init="seed" is deprecated; use init="notebook"'):
        old = Linear(4, 3, rng=5, init="seed")
    new = Linear(4, 3, rng=5, init="notebook")
    np.testing.assert_array_equal(old.weights, new.weights)
    with pytest.warns(DeprecationWarning):
        mnist_cnn(rng=0, init="seed")


def test_activation_follows_reassigned_functions():
    # Catches a remembered kernel lookup going stale: after `layer.activation = ...` (public
    # attributes) the layer must run the new pair, and after `backend = "scipy"` the NumPy one.
    layer = Activation(sigmoid, d_sigmoid)
    x = np.linspace(-2.0, 2.0, 6).reshape(6, 1)
    np.testing.assert_allclose(layer.forward_prop(x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    layer.activation, layer.d_activation = np.tanh, lambda v: 1 - np.tanh(v) ** 2
    np.testing.assert_array_equal(layer.forward_prop(x), np.tanh(x))
    layer.activation, layer.d_activation = sigmoid, d_sigmoid
    layer.backend = "scipy"
    assert layer._kernels() is None
    np.testing.assert_array_equal(layer.forward_prop(x), sigmoid(x))


@pytest.mark.parametrize(
    ("make", "fan_in"),
    [
        (lambda init: Linear(400, 120, rng=0, init=init), 400),
        (lambda init: Convolution((6, 14, 14), 5, 16, rng=0, init=init), 6 * 25),
    ],
)
def test_he_init_is_kaiming_normal_of_fan_in(make, fan_in):
    # Catches He weights scaled by Glorot's mean of fan in and fan out (or not at all), nonzero
    # biases, or a draw that ignores the seed.
    layer = make("he")
    weights = layer.parameters()[0]
    assert abs(weights.std() / np.sqrt(2 / fan_in) - 1) < 0.05
    assert abs(weights.mean()) < 0.05 * np.sqrt(2 / fan_in)
    assert not layer.parameters()[1].any()
    np.testing.assert_array_equal(make("he").parameters()[0], weights)
    glorot = make("xavier").parameters()[0]
    np.testing.assert_allclose(weights / glorot, weights.flat[0] / glorot.flat[0])  # same draws
    assert not np.allclose(weights, glorot)
