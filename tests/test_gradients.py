"""Finite-difference checks (central, float64) of every layer's gradients and of a whole network's,
on both backends: the analytic gradients must be those of the function forward_prop computes."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings

from fastcnn import (
    Activation,
    Convolution,
    Linear,
    Network,
    Reshape,
    d_mse,
    d_sigmoid,
    mse,
    sigmoid,
)

from .support import FD, FD_STEP, conv_shapes, parameters, seeds

BACKENDS = ("numba", "scipy")
# Any rate gives the gradient: both paths compute the update from the parameters as they were, so
# (before - after) / rate is exact up to rounding; a small one keeps the copy near the original.
RATE = 1e-2


def d_tanh(x):
    return 1 - np.tanh(x) ** 2


def numeric_gradient(f, array):
    """Central differences of the scalar ``f()`` with respect to each element of ``array``, which
    is perturbed in place and restored."""
    grad = np.empty(array.shape)
    flat, out = array.reshape(-1), grad.reshape(-1)  # views: writes reach `array`
    for k in range(flat.size):
        keep = flat[k]
        flat[k] = keep + FD_STEP
        up = f()
        flat[k] = keep - FD_STEP
        down = f()
        flat[k] = keep
        out[k] = (up - down) / (2 * FD_STEP)
    return grad


def check_layer(layer, x, g):
    """d_input from backward_prop(g, 0.0), parameter gradients from one SGD step on a copy, both
    against central differences of L = sum(forward_prop(x) * g)."""

    def loss():
        return float(np.sum(layer.forward_prop(x) * g))

    layer.forward_prop(x)
    d_input = layer.backward_prop(g, 0.0)
    np.testing.assert_allclose(
        d_input, numeric_gradient(loss, x), **FD, err_msg=f"[d_input] of {layer!r}"
    )
    # Linear and Convolution must have parameters (the helper fails on none); the others have none.
    has_parameters = isinstance(layer, (Linear, Convolution))
    named = parameters(layer) if has_parameters else layer.named_parameters()
    assert has_parameters or not named, f"{layer!r} has parameters {list(named)}"
    stepped = copy.deepcopy(layer)
    stepped.forward_prop(x)
    stepped.backward_prop(g, RATE)
    for (name, before), after in zip(
        named.items(), stepped.named_parameters().values(), strict=True
    ):
        np.testing.assert_allclose(
            (before - after) / RATE,
            numeric_gradient(loss, before),
            **FD,
            err_msg=f"[{name}] of {layer!r}",
        )


# Small shapes: each parameter costs two forward passes (the scipy path: ~100 us each).
small = conv_shapes(max_depth=2, max_side=7, max_count=3, max_hidden=6)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=10)
@given(shape=small, seed=seeds)
def test_linear_gradients(backend, shape, seed):
    # Catches a wrong Linear gradient: d_input transpose, x g^T for g x^T, the bias term.
    rng = np.random.default_rng(seed)
    n, m = shape.flat, shape.hidden
    layer = Linear(n, m, backend=backend, rng=seed)
    check_layer(layer, rng.uniform(0, 1, (n, 1)), rng.standard_normal((m, 1)))


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=10)
@given(shape=small, seed=seeds)
def test_convolution_gradients(backend, shape, seed):
    # Catches a wrong Convolution gradient: unflipped filter, swapped operands, a lost depth term.
    rng = np.random.default_rng(seed)
    layer = Convolution(
        (shape.depth, shape.height, shape.width), shape.size, shape.count, backend=backend, rng=seed
    )
    check_layer(
        layer, rng.uniform(0, 1, layer.input_shape), rng.standard_normal(layer.output_shape)
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pair", [(sigmoid, d_sigmoid), (np.tanh, d_tanh)], ids=["sigmoid", "tanh"])
@settings(max_examples=10)
@given(shape=small, seed=seeds)
def test_activation_gradients(backend, pair, shape, seed):
    # Catches an activation backward using the wrong quantity (input vs output) or derivative.
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((shape.count, shape.height, shape.width)) * 3
    check_layer(Activation(*pair, backend=backend), x, rng.standard_normal(x.shape))


@given(shape=small, seed=seeds)
@settings(max_examples=10)
def test_reshape_gradients(shape, seed):
    # Catches a Reshape whose backward is not the inverse of its forward.
    rng = np.random.default_rng(seed)
    layer = Reshape((shape.count, *shape.out_hw), (shape.flat, 1))
    check_layer(layer, rng.standard_normal(layer.input_shape), rng.standard_normal((shape.flat, 1)))


def small_net(backend):
    layers = [
        Convolution((2, 6, 5), 3, 2, rng=0),
        Activation(sigmoid, d_sigmoid),
        Reshape((2, 4, 3), (24, 1)),
        Linear(24, 3, rng=1),
        Activation(sigmoid, d_sigmoid),
    ]
    return Network(layers, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_network_gradients(backend):
    # Catches a broken chain rule across layers, or a train step that is not -rate * grad of mse.
    # E.g. a layer updating before passing d_input on, a lost Reshape, d_mse's factor; the parameter
    # gradients come from one step of Network.train, so the compiled loop is covered too.
    net = small_net(backend)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (2, 6, 5))
    y = rng.uniform(0, 1, (3, 1))

    def loss():
        return float(mse(net.predict(x), y))

    grad = d_mse(net.predict(x), y)
    for layer in reversed(net.layers):
        grad = layer.backward_prop(grad, 0.0)
    np.testing.assert_allclose(grad, numeric_gradient(loss, x), **FD, err_msg="[d_input] network")

    stepped = copy.deepcopy(net)
    stepped.train(x[None], y[None], mse, d_mse, 1, RATE, verbose=False)
    pairs = zip(parameters(net).items(), parameters(stepped).values(), strict=True)
    for (name, before), after in pairs:
        np.testing.assert_allclose(
            (before - after) / RATE, numeric_gradient(loss, before), **FD, err_msg=f"[{name}]"
        )
