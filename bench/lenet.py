"""LeNet-5 (``fastcnn.models.lenet``) against the reference path and PyTorch (issue 17).

The same network in both libraries, the same initial weights, the same real MNIST images, plain SGD
on the cross-entropy, one thread each: per-sample training (fastcnn's compiled loop against
``backend="scipy"`` and PyTorch at batch 1), mini-batch training at B = 64 (float32 and float64),
and evaluation of 10,000 test images (fastcnn's ``evaluate`` against PyTorch's ``no_grad`` forward
at batch 1,000). Every contender runs once per round, rounds interleaved; the ratios are medians of
each round's ratio, which a shared machine's load disturbs less than the raw rates.

``python -m bench.lenet [--rounds R] [--quick]`` prints the table; ``bench/test_lenet.py`` times the
same contenders for ``python -m bench.report``. Needs torch for its column (``pip install
torch==2.13.0``).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from collections import defaultdict
from time import perf_counter

import numpy as np

from fastcnn import cross_entropy, d_cross_entropy
from fastcnn.models import lenet

from .peers import mnist, vector_units

try:
    import torch
except ImportError:  # optional: the PyTorch column stays empty
    torch = None

RATE = 0.01
BATCH = 64
EVAL_BATCH = 1000

# Targets of issue 17 (fastcnn / other, same run): name -> (numerator, denominator, target).
TARGETS = {
    "per-sample f32 vs reference": (("fastcnn", "float32", 1), ("reference", "float64", 1), 25.0),
    "per-sample f32 vs PyTorch B=1": (("fastcnn", "float32", 1), ("PyTorch", "float32", 1), 6.0),
    "B=64 f32 vs PyTorch": (("fastcnn", "float32", BATCH), ("PyTorch", "float32", BATCH), 1.5),
    "B=64 f64 vs PyTorch": (("fastcnn", "float64", BATCH), ("PyTorch", "float64", BATCH), 1.5),
    "evaluate f32 vs PyTorch no_grad": (
        ("fastcnn", "float32", "eval"),
        ("PyTorch", "float32", "eval"),
        2.0,
    ),
}


def network(backend="numba", dtype=np.float32):
    return lenet(backend=backend, dtype=dtype, rng=0)


def torch_model(net, dtype):
    """``torch.nn.Sequential`` of LeNet-5 holding ``net``'s weights (the logits: CrossEntropyLoss
    takes them, where fastcnn's network ends in its Softmax)."""
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    ).to(torch.float32 if np.dtype(dtype) == np.float32 else torch.float64)
    ours = [layer for layer in net.layers if layer.parameters()]
    theirs = [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        for layer, module in zip(ours, theirs, strict=True):
            weights, biases = layer.parameters()
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights)))
            module.bias.copy_(torch.from_numpy(np.ascontiguousarray(biases).reshape(-1)))
    return model


@contextlib.contextmanager
def one_thread():
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fastcnn_train(dtype, batch_size, backend="numba"):
    net = network(backend, dtype)

    def run(xs, ys):
        net.train(
            xs, ys, cross_entropy, d_cross_entropy, 1, RATE, verbose=False, batch_size=batch_size
        )

    return run


def torch_train(dtype, batch_size):
    model = torch_model(network("numba", dtype), dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=RATE)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run(xs, ys):
        tx = torch.from_numpy(xs)
        labels = torch.from_numpy(ys.reshape(len(ys), -1).argmax(axis=1))
        for start in range(0, len(xs), batch_size):
            optimizer.zero_grad()
            loss = loss_fn(
                model(tx[start : start + batch_size]), labels[start : start + batch_size]
            )
            loss.backward()
            optimizer.step()

    return run


def fastcnn_evaluate(dtype):
    net = network("numba", dtype)
    return lambda xs, labels: net.evaluate(xs, labels)


def torch_evaluate(dtype):
    model = torch_model(network("numba", dtype), dtype)

    def run(xs, labels):
        tx = torch.from_numpy(xs)
        right = 0
        with torch.no_grad():
            for start in range(0, len(xs), EVAL_BATCH):
                out = model(tx[start : start + EVAL_BATCH])
                right += int((out.argmax(1).numpy() == labels[start : start + EVAL_BATCH]).sum())
        return right / len(xs)

    return run


def contenders(quick=False):
    """``{(name, dtype, B or "eval"): (runner, samples)}``: each runner takes (xs, ys)."""
    single, batch, reference, test = (64, 256, 8, 1000) if quick else (512, 2048, 48, 10_000)
    out = {}
    for dtype in ("float32", "float64"):
        out[("fastcnn", dtype, 1)] = (fastcnn_train(dtype, 1), single)
        out[("fastcnn", dtype, BATCH)] = (fastcnn_train(dtype, BATCH), batch)
        if torch is not None:
            out[("PyTorch", dtype, BATCH)] = (torch_train(dtype, BATCH), batch)
    out[("reference", "float64", 1)] = (fastcnn_train("float64", 1, "scipy"), reference)
    out[("fastcnn", "float32", "eval")] = (fastcnn_evaluate("float32"), test)
    if torch is not None:
        out[("PyTorch", "float32", 1)] = (torch_train("float32", 1), single)
        out[("PyTorch", "float32", "eval")] = (torch_evaluate("float32"), test)
    return out


def measure(rounds=5, quick=False):
    """Samples per second of every contender per round (one warm-up call each first)."""
    runners = contenders(quick)
    data = {}
    for dtype in ("float32", "float64"):
        xs, ys = mnist(2048 if not quick else 256, dtype)
        data[dtype] = (xs.reshape(-1, 1, 28, 28), ys.reshape(-1, 10, 1))
    from fastcnn import datasets

    from .peers import DEFAULT_MNIST

    (_, _), (test_x, test_y) = datasets.load_mnist(DEFAULT_MNIST, download=False)
    test = datasets.scale_images(test_x), np.asarray(test_y)
    per_round = defaultdict(list)
    with one_thread():
        for key, (run, n) in runners.items():  # compile and warm up
            args = test if key[2] == "eval" else data[key[1]]
            run(args[0][: min(n, 64)], args[1][: min(n, 64)])
        for _ in range(rounds):
            for key, (run, n) in runners.items():
                xs, ys = test if key[2] == "eval" else data[key[1]]
                xs, ys = xs[:n], ys[:n]
                if key[2] == "eval":
                    xs = xs.astype(key[1])
                started = perf_counter()
                run(xs, ys)
                per_round[key].append(n / (perf_counter() - started))
    return per_round


def ratios(per_round):
    """``{target name: (median of per-round ratios, target)}`` for the contenders measured."""
    out = {}
    for name, (a, b, target) in TARGETS.items():
        if a in per_round and b in per_round:
            pairs = zip(per_round[a], per_round[b], strict=True)
            out[name] = (statistics.median(x / y for x, y in pairs), target)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.lenet", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="few samples, 1 round")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    per_round = measure(rounds, args.quick)
    version = torch.__version__ if torch is not None else "not installed"
    print(
        f"LeNet-5, samples/s (medians of {rounds} interleaved rounds, 1 thread); PyTorch {version}"
    )
    print(vector_units())
    for key, values in sorted(per_round.items(), key=str):
        print(
            f"  {key[0]:10} {key[1]:8} {('B=' + str(key[2])) if key[2] != 'eval' else 'evaluate':9}"
            f" {statistics.median(values):>10,.0f}"
        )
    print("targets (issue 17):")
    for name, (value, target) in ratios(per_round).items():
        status = "met" if value >= target else "NOT met"
        print(f"  {name:34} {value:6.2f}x  (target >= {target}x: {status})")


if __name__ == "__main__":
    main()
