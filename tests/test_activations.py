"""Every registered activation on every path: the compiled per-sample and mini-batch loops against
the per-layer path, and the per-layer kernels against the reference function pair."""

import numpy as np
import pytest

from fastcnn import Activation, Linear, Network, d_mse, mse, registry
from fastcnn.layers import ACTIVATIONS

from .support import tolerance

NAMES = sorted(ACTIVATIONS)


def per_layer_mse(predicted, actual):
    # Not `fastcnn.mse` itself, so Network.train takes the per-layer path with the same numbers.
    return mse(predicted, actual)


def network(name, dtype, backend="numba"):
    entry = ACTIVATIONS[name]
    rng = np.random.RandomState(7)
    layers = [
        Linear(5, 6, rng=rng, dtype=dtype, init="xavier", backend=backend),
        Activation(entry.function, entry.derivative, backend=backend),
        Linear(6, 3, rng=rng, dtype=dtype, init="xavier", backend=backend),
        Activation(entry.function, entry.derivative, backend=backend),
    ]
    return Network(layers)


def test_the_courses_activations_are_registered():
    # Catches one of issue 17's activations falling back to the per-layer Python path.
    assert {"sigmoid", "relu", "tanh", "leaky_relu"} <= set(ACTIVATIONS)
    assert {"sigmoid", "relu", "tanh", "leaky_relu"} <= set(registry.KINDS)


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("name", NAMES)
def test_compiled_loops_train_each_activation_as_the_scipy_path(name, batch_size):
    # Catches a generated branch calling another activation's kernels, a backward kernel reading
    # the output where it needs the input (or the reverse), and a kernel that differs from the
    # reference pair beyond float64 rounding.
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, (20, 5, 1))
    y = rng.uniform(0, 1, (20, 3, 1))
    compiled, reference = network(name, np.float64), network(name, np.float64, backend="scipy")
    a = compiled.train(x, y, mse, d_mse, 3, 0.2, verbose=False, batch_size=batch_size)
    b = reference.train(x, y, per_layer_mse, d_mse, 3, 0.2, verbose=False, batch_size=batch_size)
    np.testing.assert_allclose(a, b, **tolerance(np.float64), err_msg=f"{name} losses")
    for la, lb in zip(compiled.layers, reference.layers, strict=True):
        for p, q in zip(la.parameters(), lb.parameters(), strict=True):
            np.testing.assert_allclose(p, q, **tolerance(np.float64), err_msg=f"{name} params")
    xs = rng.uniform(-2, 2, (6, 5, 1))
    expected = np.stack([reference.predict(v).ravel() for v in xs])
    np.testing.assert_allclose(compiled.predict_batch(xs), expected, **tolerance(np.float64))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", NAMES)
def test_activation_layer_kernels_match_the_pair(name, dtype):
    # Catches a per-layer kernel (forward or backward) differing from the function pair.
    entry = ACTIVATIONS[name]
    layer = Activation(entry.function, entry.derivative)
    x = np.linspace(-3, 3, 61).astype(dtype).reshape(61, 1)
    g = np.cos(np.arange(61)).astype(dtype).reshape(61, 1)
    with np.errstate(over="ignore"):
        expected_y = entry.function(x)
        expected_d = g * entry.derivative(x)
    np.testing.assert_allclose(layer.forward_prop(x), expected_y, **tolerance(dtype))
    np.testing.assert_allclose(layer.backward_prop(g, 0.1), expected_d, **tolerance(dtype))


@pytest.mark.parametrize("name", NAMES)
def test_model_files_name_each_activation(name, tmp_path):
    # Catches an activation a model file cannot hold, or reads back as another.
    import fastcnn

    net = network(name, np.float64)
    net.save(tmp_path / "m.npz")
    loaded = fastcnn.load(tmp_path / "m.npz")
    assert loaded.layers[1].activation is ACTIVATIONS[name].function
    x = np.linspace(-1, 1, 5).reshape(5, 1)
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
