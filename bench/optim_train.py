"""What an optimizer costs on the compiled loops: the notebook's MNIST network (or LeNet-5), one pass over N
real MNIST images per variant, the variants interleaved round by round, medians printed.

``--model lenet``: LeNet-5 on its recipe's loss (cross-entropy) instead. Variants, per sample (B=1) and per mini-batch (B=32, B=64): the seed's fused SGD (the default
path: the dense backward moves the weights as it goes, ``opt`` None), the same SGD with every
gradient written out and then stepped by the optimizer kernel (``plain``: what the fusion is
worth), SGD with momentum 0.9, and Adam. Ratios are against the fused SGD of the same round.

    python -m bench.optim_train [--samples N] [--rounds R]
"""

from __future__ import annotations

import argparse
import statistics
from time import process_time

import numpy as np

from fastcnn import _compiled, optim
from fastcnn._threads import blas_threads
from fastcnn.datasets import load_mnist, one_hot, scale_images
from fastcnn.models import MODELS, RECIPES

OPTIMIZERS = {
    "plain": optim.SGD(lr=0.1),
    "momentum": optim.SGD(lr=0.1, momentum=0.9),
    "adam": optim.Adam(lr=1e-3),
}


def programs(model, dtype, batch_size):
    """(fused program, optimizer program) for the preset ``model`` on its recipe's loss."""
    padded = batch_size == 1
    recipe = RECIPES[model]
    made = []
    for stepped in (False, True):
        net = MODELS[model](dtype=dtype, rng=1, init=recipe.init)
        loss = (recipe.loss, recipe.d_loss)
        made.append(_compiled.program(net.layers, *loss, 1, padded, optimizer=stepped))
    return made


def run(program, xs, ys, batch_size, opt):
    losses = np.empty(len(xs), program.dtype if batch_size == 1 else np.float64)
    # CPU seconds of this process (one thread): the machine is shared, and wall time would count
    # the other processes' turns on our core.
    start = process_time()
    if batch_size == 1:
        program.train(xs, ys, 0.1, losses, opt)
    else:
        program.train_batch(xs, ys, batch_size, 0.1, losses, opt)
    return process_time() - start


def opt_tuple(program, optimizer, steps):
    code, hyper = optimizer.program()
    names = optimizer.buffers()
    empty = np.zeros(0, program.dtype)
    s1 = program.state_buffer() if names else empty
    s2 = program.state_buffer() if len(names) > 1 else empty
    return (code, hyper, np.full(steps, 0.1 if code != 2 else 1e-3), 0, s1, s2)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", default="/work/shared/data/mnist")
    parser.add_argument("--model", choices=sorted(MODELS), default="notebook")
    parser.add_argument("--only", help="run only the rows whose label contains this, e.g. B=64")
    args = parser.parse_args(argv)
    with blas_threads(1):  # as Network.train sets it for num_threads=1
        _measure(args)


def _measure(args) -> None:
    (train_x, train_y), _ = load_mnist(args.data, download=False)
    x = scale_images(train_x[: args.samples])
    y = one_hot(train_y[: args.samples])
    for dtype, batch_size in (
        (np.float64, 1),
        (np.float32, 1),
        (np.float32, 32),
        (np.float32, 64),
        (np.float64, 32),
    ):
        label = f"{np.dtype(dtype).name} B={batch_size}"
        if args.only and args.only not in label:
            continue
        fused, stepped = programs(args.model, dtype, batch_size)
        xs, ys = fused.samples(x), fused.samples(y)
        steps = -(-len(xs) // batch_size)
        opts = {name: opt_tuple(stepped, o, steps) for name, o in OPTIMIZERS.items()}
        # warm up (compiles)
        run(fused, xs[:64], ys[:64], batch_size, None)
        for opt in opts.values():
            run(stepped, xs[:64], ys[:64], batch_size, opt)
        times: dict[str, list[float]] = {"sgd (fused)": [], **{k: [] for k in opts}}
        ratios: dict[str, list[float]] = {k: [] for k in opts}
        for _ in range(args.rounds):
            base = run(fused, xs, ys, batch_size, None)
            times["sgd (fused)"].append(base)
            for name, opt in opts.items():
                t = run(stepped, xs, ys, batch_size, opt)
                times[name].append(t)
                ratios[name].append(t / base)
        parts = [
            f"sgd (fused) {1e6 * statistics.median(times['sgd (fused)']) / len(xs):.1f} us/sample"
        ]
        parts += [f"{name} x{statistics.median(r):.3f}" for name, r in ratios.items()]
        print(f"{label:14s} " + ", ".join(parts), flush=True)


if __name__ == "__main__":
    main()
