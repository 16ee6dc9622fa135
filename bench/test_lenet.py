"""LeNet-5 rows of ``python -m bench.report`` (issue 17): one pass of training or evaluation over
real MNIST images, fastcnn against the reference path and PyTorch (``bench/lenet.py`` has the
contenders and an interleaved version of the same measurement, ``python -m bench.lenet``)."""

import numpy as np
import pytest

from bench import describe, lenet
from fastcnn import cross_entropy, d_cross_entropy
from fastcnn.datasets import one_hot, scale_images

pytestmark = pytest.mark.mnist

TRAIN_CASES = [
    ("reference", "float64", 1),
    ("numba", "float64", 1),
    ("numba", "float32", 1),
    ("PyTorch", "float32", 1),
    ("numba", "float64", lenet.BATCH),
    ("numba", "float32", lenet.BATCH),
    ("PyTorch", "float64", lenet.BATCH),
    ("PyTorch", "float32", lenet.BATCH),
]


@pytest.fixture(scope="module")
def data(mnist, sizes):
    (train_x, train_y), (test_x, test_y) = mnist
    n = sizes["batch_samples"]
    return scale_images(train_x[:n]), one_hot(train_y[:n]), scale_images(test_x), test_y


def samples_for(impl, batch_size, sizes):
    if impl == "reference":
        return 16 if sizes["samples"] < 100 else 64  # the scipy path trains ~100 samples/s
    return sizes["samples"] if batch_size == 1 else sizes["batch_samples"]


def info(benchmark, op, impl, dtype, batch_size, samples):
    describe(
        benchmark,
        f"lenet {op}|B={batch_size}|{dtype}",
        op=f"lenet_{op}",
        impl=impl,
        shape=f"B={batch_size}",
        dims="LeNet-5 6@5x5 pad 2, pool, 16@5x5, pool, 400-120-84-10, softmax",
        dtype=dtype,
        kind="lenet",
        samples=samples,
        batch_size=batch_size,
    )


@pytest.mark.parametrize(
    "impl, dtype, batch_size", TRAIN_CASES, ids=[f"{i}-{d}-B{b}" for i, d, b in TRAIN_CASES]
)
def test_lenet_train(benchmark, sizes, data, impl, dtype, batch_size):
    if impl == "PyTorch" and lenet.torch is None:
        pytest.skip("torch is not installed (the optional peers extra)")
    n = samples_for(impl, batch_size, sizes)
    x, y = data[0][:n].astype(dtype), data[1][:n].astype(dtype)
    if impl == "PyTorch":
        run = lenet.torch_train(dtype, batch_size)
        x, y = x, y.reshape(n, 10)
    else:
        backend = "scipy" if impl == "reference" else "numba"
        net = lenet.network(backend, dtype)
        before = net.evaluate(data[2][:500], data[3][:500])

        def run(xs, ys):
            net.train(
                xs, ys, cross_entropy, d_cross_entropy, 1, lenet.RATE, verbose=False,
                batch_size=batch_size,
            )  # fmt: skip

    with lenet.one_thread():
        run(x[:16], y[:16])  # compile, warm up
        info(benchmark, "train", impl, dtype, batch_size, n)
        benchmark.pedantic(run, args=(x, y), rounds=max(3, sizes["rounds"] // 2), iterations=1)
    if impl != "PyTorch" and n >= 256:
        # Catches a fast path that does not learn: a few hundred steps lift the accuracy.
        assert net.evaluate(data[2][:500], data[3][:500]) > before


@pytest.mark.parametrize("impl", ["numba", "PyTorch"])
def test_lenet_evaluate(benchmark, sizes, data, impl):
    if impl == "PyTorch" and lenet.torch is None:
        pytest.skip("torch is not installed (the optional peers extra)")
    n = sizes["test_images"]
    xs, labels = data[2][:n].astype(np.float32), np.asarray(data[3][:n])
    run = lenet.fastcnn_evaluate("float32") if impl == "numba" else lenet.torch_evaluate("float32")
    with lenet.one_thread():
        first = run(xs[:1000], labels[:1000])
        info(benchmark, "evaluate", impl, "float32", lenet.EVAL_BATCH, n)
        accuracy = benchmark.pedantic(run, args=(xs, labels), rounds=sizes["rounds"], iterations=1)
    assert 0.0 <= first <= 1.0 and 0.0 <= accuracy <= 1.0
    if impl == "numba":  # both libraries hold the same untrained weights: the same answers
        torch_run = lenet.torch_evaluate("float32") if lenet.torch is not None else None
        if torch_run is not None:
            assert torch_run(xs[:1000], labels[:1000]) == pytest.approx(first, abs=2e-3)
