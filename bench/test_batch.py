"""Mini-batch training and batched prediction on real MNIST images, beside their peers: PyTorch on
the same network, batch size and thread count (skipped when torch is not installed), and the
notebook's own per-sample test loop.

Training rows: one epoch of ``Network.train(..., batch_size=B)`` (B = 1 is the per-sample path)
over N training images, after its result was checked against the scipy backend's run of the same
epoch (the oracle: the notebook's maths, gradients averaged per batch). Prediction rows: the
accuracy on N test images by ``Network.evaluate`` (compiled, in batches) and by the notebook's
loop ``np.argmax(network.predict(x))`` on the scipy backend. ``bench/report.py`` prints the
ratios (``bench.peers.peer_table``).
"""

import functools

import numpy as np
import pytest

from bench import peers
from fastcnn import d_mse, mse

pytestmark = pytest.mark.mnist

DTYPES = {"float64": np.float64, "float32": np.float32}


@pytest.fixture(scope="module")
def data(mnist, sizes):
    (train_x, train_y), (test_x, test_y) = mnist
    n, t = sizes["batch_samples"], sizes["test_images"]
    xs = np.ascontiguousarray(peers.datasets.scale_images(train_x[:n]))
    ys = np.eye(10)[train_y[:n]].reshape(n, 10, 1)
    test = np.ascontiguousarray(peers.datasets.scale_images(test_x[:t])), test_y[:t]
    return xs, ys, test


@functools.cache
def _oracle(n, size):
    """Parameters after one epoch on the scipy backend (float64), from the benchmark's start."""
    xs, ys, _ = _DATA[n]
    net = peers.library_network(np.float64)
    for layer in net.layers:
        if hasattr(layer, "backend"):
            layer.backend = "scipy"
    net.train(xs, ys, mse, d_mse, 1, peers.RATE, verbose=False, batch_size=size)
    return [p.copy() for layer in net.layers for p in layer.parameters()]


_DATA: dict = {}


# The first parametrize varies fastest: fastcnn's row and PyTorch's for one configuration run back
# to back, so that the load of a shared machine, which drifts over the minutes of a run, weighs
# on both figures of a ratio alike (all fastcnn rows first, then all PyTorch rows, put the pairs
# minutes apart).
@pytest.mark.parametrize("impl", ["fastcnn", "PyTorch"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", [1, 32, 64, 256])
@pytest.mark.parametrize("dtype", DTYPES)
def test_minibatch_train(benchmark, data, sizes, assert_close, impl, dtype, size, threads):
    if impl == "PyTorch" and peers.torch is None:
        pytest.skip("torch not installed (the `peers` extra)")
    xs, ys, _ = data
    n = len(xs)
    _DATA[n] = (xs, ys, None)
    benchmark.group = f"train|{dtype}|B={size}|{threads} thread(s)"
    benchmark.extra_info.update(
        peer="train epoch", impl=impl, dtype=dtype, batch_size=size, threads=threads, samples=n
    )
    with peers.threads(threads):
        if impl == "fastcnn":
            net = peers.library_network(DTYPES[dtype], threads)
            net.train(xs, ys, mse, d_mse, 1, peers.RATE, verbose=False, batch_size=size)
            assert_close(
                [p for layer in net.layers for p in layer.parameters()],
                _oracle(n, size),
                dtype,
                ["filters", "conv biases", "w1", "b1", "w2", "b2"],
                f"one epoch, B={size}",
            )
            fn = peers.library_setup(xs.astype(DTYPES[dtype]), ys.reshape(n, 10), size)
        else:
            fn = peers.torch_setup(xs.astype(DTYPES[dtype]), ys.reshape(n, 10), size)
        fn()  # compiles / warms up
        benchmark.pedantic(fn, rounds=sizes["rounds"], iterations=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", ["fastcnn", "notebook loop"])
def test_batched_prediction(benchmark, data, sizes, impl, dtype):
    _, _, (test_x, test_y) = data
    benchmark.group = f"predict|{dtype}"
    benchmark.extra_info.update(
        peer="accuracy on test images", impl=impl, dtype=dtype, threads=1, samples=len(test_x)
    )
    reference = peers.library_network(np.float64)
    for layer in reference.layers:
        if hasattr(layer, "backend"):
            layer.backend = "scipy"
    expected = np.stack([reference.predict(x).ravel() for x in test_x])
    if impl == "fastcnn":
        net = peers.library_network(DTYPES[dtype])
        got = net.predict_batch(test_x)
        tol = peers_tolerance(dtype)
        assert np.abs(got - expected).max() <= tol, "predict_batch vs the notebook's predict"
        fn = functools.partial(net.evaluate, test_x, test_y)
    else:
        if dtype == "float32":
            pytest.skip("the notebook's loop runs in float64 only")
        fn = functools.partial(peers.notebook_accuracy, reference, test_x, test_y)
    with peers.threads(1):
        fn()
        benchmark.pedantic(fn, rounds=sizes["rounds"], iterations=1)


def peers_tolerance(dtype):
    # Outputs of sigmoids lie in [0, 1]: absolute float64 rounding ~1e-15, float32 ~1e-6.
    return 1e-12 if dtype == "float64" else 1e-5
