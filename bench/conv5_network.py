"""Per-sample SGD throughput of a two-5x5-convolution network, interleaved A/B between source trees:

    python -m bench.conv5_network [--tree A=/path/to/checkout ...] [--rounds 5] [--samples 300]

The network: Convolution 1->6 @5x5 padding 2 (28x28), ReLU, MaxPool 2, Convolution 6->16 @5x5,
ReLU, MaxPool 2, Reshape, Linear 400->10, sigmoid, mse; both convolutions ``bias="filter"``, on
real MNIST (``$FASTCNN_TEST_MNIST`` or ../shared/data/mnist). Each round runs every tree once, in
turn, in a fresh process (its own Numba cache, warmed by an untimed epoch first), so load from other
processes hits all trees alike; it prints each tree's median samples/s and the median of the
per-round ratios to the first tree. With no ``--tree``, it times this checkout, and the reference
path (``backend="scipy"``) once for the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

_CHILD = r"""
import json, sys, time
import numpy as np
from fastcnn import (Activation, Convolution, Linear, MaxPool, Network, Reshape, d_mse, d_relu,
                     d_sigmoid, datasets, mse, relu, sigmoid)

dtype, samples, epochs, backend, data = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
(images, labels), _ = datasets.load_mnist(data, download=False)
x = datasets.scale_images(images[:samples], dtype=dtype).reshape(samples, 1, 28, 28)
y = np.eye(10, dtype=dtype)[labels[:samples]].reshape(samples, 10, 1)
rng = np.random.RandomState(0)
o = dict(dtype=dtype, rng=rng, init="he", backend=backend)
net = Network([
    Convolution((1, 28, 28), 5, 6, padding=2, bias="filter", **o), Activation(relu, d_relu),
    MaxPool((6, 28, 28), 2), Convolution((6, 14, 14), 5, 16, bias="filter", **o),
    Activation(relu, d_relu), MaxPool((16, 10, 10), 2), Reshape((16, 5, 5), (400, 1)),
    Linear(400, 10, **o), Activation(sigmoid, d_sigmoid),
], backend=backend)
net.train(x[:30], y[:30], mse, d_mse, 1, 0.01, verbose=False)  # compiles (or loads the cache)
start = time.perf_counter()
net.train(x, y, mse, d_mse, epochs, 0.01, verbose=False)
print(json.dumps(samples * epochs / (time.perf_counter() - start)))
"""


def _data() -> str:
    env = os.environ.get("FASTCNN_TEST_MNIST")
    return env or str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist")


def run(tree: str, dtype: str, samples: int, epochs: int, backend: str, cache: str) -> float:
    env = {**os.environ, "PYTHONPATH": tree, "NUMBA_CACHE_DIR": cache}
    args = [sys.executable, "-c", _CHILD, dtype, str(samples), str(epochs), backend, _data()]
    out = subprocess.run(args, env=env, check=True, capture_output=True, text=True, cwd=tree)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", action="append", default=[], help="NAME=PATH of a checkout")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--dtype", action="append", default=[])
    args = parser.parse_args(argv)
    here = str(Path(__file__).resolve().parents[1])
    trees = dict(t.split("=", 1) for t in args.tree) or {"this": here}
    caches = {name: tempfile.mkdtemp(prefix=f"conv5-{name}-") for name in trees}
    for dtype in args.dtype or ["float32", "float64"]:
        rates: dict[str, list[float]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                rates[name].append(
                    run(tree, dtype, args.samples, args.epochs, "numba", caches[name])
                )
        first = next(iter(trees))
        for name, values in rates.items():
            ratio = np.median(np.array(values) / np.array(rates[first]))
            print(
                f"{dtype} {name:12} median {np.median(values):8.0f} samples/s "
                f"(rounds {', '.join(f'{v:.0f}' for v in values)}); "
                f"median ratio to {first} {ratio:.2f}"
            )
        if not args.tree:
            ref = run(here, dtype, min(args.samples, 100), 1, "scipy", caches["this"])
            print(
                f"{dtype} reference path {ref:8.0f} samples/s: numba / reference "
                f"{np.median(rates['this']) / ref:.1f}x"
            )


if __name__ == "__main__":
    main()
