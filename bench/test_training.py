"""One training epoch and one prediction pass over N real MNIST images with the seed's network.

The reference is every layer on ``backend="scipy"`` in float64; the Numba path runs in float64 and
float32, on 1 and 2 threads (``Network(..., num_threads=2)``). Ratios against the float64 reference
are what the issue's targets speak of; ``python -m bench.report`` prints them.
"""

import numba
import numpy as np
import pytest

from bench import describe
from fastcnn import d_mse, mse
from fastcnn.datasets import one_hot, scale_images
from fastcnn.models import mnist_cnn
from tests.pairs import RATE
from tests.support import parameters

pytestmark = pytest.mark.mnist

DTYPES = {"float64": np.float64, "float32": np.float32}
BACKEND = {"reference": "scipy", "numba": "numba"}


def seed_network(impl, dtype, threads):
    """The seed notebook's MNIST CNN; the same initial draws for every backend and dtype."""
    return mnist_cnn(backend=BACKEND[impl], dtype=dtype, rng=1, num_threads=threads)


@pytest.fixture(scope="module")
def data(mnist, sizes):
    """The seed's inputs: float32 images in [0, 1] (n, 1, 28, 28) and one-hot targets (n, 10, 1)."""
    (train_x, train_y), (test_x, _) = mnist
    n = sizes["samples"]
    return scale_images(train_x[:n]), one_hot(train_y[:n]), scale_images(test_x[:n])


@pytest.fixture(scope="module")
def trained_reference(data):
    """Loss and parameters after one epoch of the float64 SciPy network."""
    net = seed_network("reference", np.float64, 1)
    history = net.train(data[0], data[1], mse, d_mse, 1, RATE, verbose=False)
    return [history[0]] + [p.copy() for p in parameters(net).values()]


@pytest.fixture(scope="module")
def predicted_reference(data):
    return np.stack([seed_network("reference", np.float64, 1).predict(x) for x in data[2]])


CASES = [
    ("reference", "float64", 1),
    ("numba", "float64", 1),
    ("numba", "float64", 2),
    ("reference", "float32", 1),
    ("numba", "float32", 1),
    ("numba", "float32", 2),
]


def info(benchmark, op, impl, dtype, threads, samples):
    describe(
        benchmark,
        f"{op}|MNIST-{samples}|{dtype}",
        op=op,
        impl=impl,
        shape=f"MNIST-{samples}",
        dims="seed CNN 1x28x28-k3-n5, 3380-100-10",
        dtype=dtype,
        kind=op,
        threads=threads,
        samples=samples,
    )


@pytest.mark.parametrize("impl, dtype, threads", CASES, ids=[f"{i}-{d}-{t}t" for i, d, t in CASES])
def test_train_epoch(benchmark, assert_close, sizes, data, trained_reference, impl, dtype, threads):
    # Catches a fast but wrong training path: the epoch's loss and every parameter after it must
    # match one epoch of the float64 SciPy network from the same initial weights.
    x, y, _ = data
    net = seed_network(impl, DTYPES[dtype], threads)
    params = list(parameters(net).items())
    initial = [p.copy() for _, p in params]

    def reset():  # outside the timer: every round trains one epoch from the same weights
        for (_, p), p0 in zip(params, initial, strict=True):
            p[...] = p0

    def epoch():
        return net.train(x, y, mse, d_mse, 1, RATE, verbose=False)

    labels = ["epoch loss"] + [name for name, _ in params]
    reset()
    first = epoch()  # JIT compile and warm-up
    assert_close(
        [first[0]] + [p for _, p in params],
        trained_reference,
        dtype,
        labels,
        f"train {impl} {dtype} {threads} thread(s), first epoch",
    )
    info(benchmark, "train", impl, dtype, threads, len(x))
    history = benchmark.pedantic(
        epoch, setup=reset, rounds=sizes["rounds"], iterations=1, warmup_rounds=1
    )
    benchmark.extra_info["numba_threads_after"] = numba.get_num_threads()
    assert_close(
        [history[0]] + [p for _, p in params],
        trained_reference,
        dtype,
        labels,
        f"train {impl} {dtype} {threads} thread(s), last timed epoch",
    )


PREDICT_CASES = [
    ("reference", "float64"),
    ("numba", "float64"),
    ("reference", "float32"),
    ("numba", "float32"),
]


@pytest.mark.parametrize("impl, dtype", PREDICT_CASES, ids=[f"{i}-{d}" for i, d in PREDICT_CASES])
def test_predict(benchmark, assert_close, sizes, data, predicted_reference, impl, dtype):
    # Catches a fast but wrong forward path: every output must match the float64 SciPy network.
    images = data[2]
    net = seed_network(impl, DTYPES[dtype], 1)

    def predict_all():
        return [net.predict(x) for x in images]

    assert_close(
        [np.stack(predict_all())],
        [predicted_reference],
        dtype,
        ["outputs"],
        f"predict {impl} {dtype}, warm-up",
    )
    info(benchmark, "predict", impl, dtype, 1, len(images))
    outputs = benchmark.pedantic(predict_all, rounds=sizes["rounds"], iterations=1, warmup_rounds=1)
    assert_close(
        [np.stack(outputs)],
        [predicted_reference],
        dtype,
        ["outputs"],
        f"predict {impl} {dtype}, last timed call",
    )
