"""One pass of mini-batch SGD over N real MNIST images: the prototype step of ``bench/batch_step.py``
(on ``kernels/batch.py``) beside PyTorch on the same network, batch size and thread count (the
PyTorch rows are skipped when torch is not installed). One thread for BLAS and PyTorch alike.

Before timing, the prototype's pass is checked against the notebook's expressions run per sample
with the gradients averaged per batch (``batch_step.oracle_step``), so a fast wrong step fails.
"""

import numpy as np
import pytest

from bench import batch_step, peers

pytestmark = pytest.mark.mnist

DTYPES = {"float64": np.float64, "float32": np.float32}


@pytest.fixture(scope="module")
def data(mnist, sizes):
    (train_x, train_y), _ = mnist
    n = sizes["samples"]
    return {
        name: (
            np.ascontiguousarray(peers.datasets.scale_images(train_x[:n], dtype=dtype)),
            np.eye(10, dtype=dtype)[train_y[:n]],
        )
        for name, dtype in DTYPES.items()
    }


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", ["fastcnn prototype", "PyTorch"])
def test_minibatch_pass(benchmark, data, sizes, assert_close, impl, dtype, size):
    if impl == "PyTorch" and peers.torch is None:
        pytest.skip("torch not installed (the `peers` extra)")
    xs, ys = data[dtype]
    benchmark.group = f"minibatch pass|{dtype}|B={size}|1 thread"
    benchmark.extra_info.update(samples=len(xs), batch_size=size, threads=1)
    if impl == "fastcnn prototype":
        # Small weights keep the sigmoids off their flat ends, where every gradient is ~0 and a
        # wrong one would pass.
        params = batch_step.init(DTYPES[dtype])
        for a in params.arrays():
            a *= 0.1
        oracle = params.copy()
        with peers.threads(1):
            batch_step.epoch(params, batch_step.Scratch(size, xs.dtype), xs, ys, size, peers.RATE)
        for start in range(0, len(xs), size):
            end = start + size
            batch_step.oracle_step(oracle, xs[start:end], ys[start:end], peers.RATE)
        expected = [a.astype(np.float64) for a in oracle.arrays()]
        assert_close(
            params.arrays(),
            expected,
            dtype,
            ["filters", "conv biases", "w1", "b1", "w2", "b2"],
            "prototype pass",
        )
    fn = peers.CONTENDERS[impl](xs, ys, size)
    with peers.threads(1):
        fn()  # compiles
        benchmark.pedantic(fn, rounds=sizes["rounds"], iterations=1)
