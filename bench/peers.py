"""PyTorch on the same work as fastcnn's mini-batch training (issue 8), beside two fastcnn figures:
the prototype step of ``bench/batch_step.py`` (the loop's kernels called one by one), and the upper bound the dense
layer's three GEMMs put on any batch path (NumPy/OpenBLAS alone).

The network is the notebook's: ``nn.Conv2d(1, 5, 3)``, sigmoid, flatten, ``nn.Linear(3380, 100)``,
sigmoid, ``nn.Linear(100, 10)``, sigmoid, ``nn.MSELoss()`` (mean), ``torch.optim.SGD(lr=rate)``.
Everything is measured as samples per second over one pass of consecutive batches through
``n`` real MNIST training images, every contender once per round, rounds interleaved, medians
reported: the machine may be shared, and interleaving spreads its load over all contenders alike.

``python -m bench.peers [--samples N] [--rounds R] [--quick]`` prints the table; ``--lenet``
prints LeNet-5's instead (``bench/lenet.py``). Needs the ``peers``
extra (``pip install torch==2.13.0`` on a CPU-only machine, then ``pip install -e '.[peers]'``);
without torch, the PyTorch column is left empty.
"""

import argparse
import contextlib
import os
import statistics
from collections import defaultdict
from pathlib import Path
from time import perf_counter

import numpy as np

from fastcnn import datasets
from fastcnn._threads import blas_threads

from . import batch_step

DTYPES = (np.float32, np.float64)
BATCH_SIZES = (1, 32, 64, 256)
THREADS = (1, 2)
SINGLES = 512
RATE = 0.1
DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

try:
    import torch
except ImportError:  # the optional `peers` extra
    torch = None


def vector_units():
    """One line naming the vector code each side runs: a ratio against PyTorch depends on it. On
    an AVX-512 machine PyTorch's MKL and oneDNN use AVX-512, while OpenBLAS (fastcnn's GEMMs) runs
    whatever ``OPENBLAS_CORETYPE`` picks (seen here: Haswell, AVX2, half the width; the batch and
    prediction rows' GEMMs took twice as long as with OpenBLAS's own choice)."""
    from threadpoolctl import threadpool_info

    blas = sorted(
        {
            f"{i['internal_api']} {i.get('version')} ({i.get('architecture')} kernels)"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        }
    )
    pinned = os.environ.get("OPENBLAS_CORETYPE")
    text = f"BLAS: {', '.join(blas) or 'unknown'}"
    if pinned:
        text += f", OPENBLAS_CORETYPE={pinned}"
    if torch is not None:
        text += f"; PyTorch CPU capability: {torch.backends.cpu.get_cpu_capability()}"
    return text


def mnist(n, dtype):
    """The first ``n`` MNIST training images (n, 1, 28, 28) and one-hot labels (n, 10) in ``dtype``,
    from ``$FASTCNN_TEST_MNIST`` or ``../shared/data/mnist`` (never downloaded)."""
    where = Path(os.environ.get("FASTCNN_TEST_MNIST", DEFAULT_MNIST))
    (train_x, train_y), _ = datasets.load_mnist(where, download=False)
    xs = datasets.scale_images(train_x[:n], dtype=dtype)
    ys = datasets.one_hot(train_y[:n]).reshape(n, 10).astype(dtype)
    return np.ascontiguousarray(xs), np.ascontiguousarray(ys)


# The thread count of the innermost `threads` block: fastcnn's Network sets BLAS itself from its
# own num_threads, so the library contender reads this to follow the round's setting.
_CURRENT_THREADS = [1]


@contextlib.contextmanager
def threads(n):
    """BLAS (NumPy's and SciPy's OpenBLAS, the latter being what Numba's ``np.dot`` calls) and
    PyTorch on ``n`` threads, restored on exit."""
    before = torch.get_num_threads() if torch is not None else None
    outer = _CURRENT_THREADS[0]
    _CURRENT_THREADS[0] = n
    try:
        if torch is not None:
            torch.set_num_threads(n)
        with blas_threads(n):
            yield
    finally:
        _CURRENT_THREADS[0] = outer
        if torch is not None:
            torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------------
# contenders: each `setup(xs, ys, size)` returns a callable running one pass over all the samples


def torch_network(dtype):
    """The notebook's MNIST CNN in PyTorch, in ``dtype`` (NumPy's name or dtype); PyTorch's own
    initial weights (seed them with ``torch.manual_seed`` first, or copy yours in)."""
    tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 5, 3),
        torch.nn.Sigmoid(),
        torch.nn.Flatten(),
        torch.nn.Linear(3380, 100),
        torch.nn.Sigmoid(),
        torch.nn.Linear(100, 10),
        torch.nn.Sigmoid(),
    ).to(tdtype[np.dtype(dtype)])


def torch_setup(xs, ys, size):
    """PyTorch's training loop on the notebook's network, in the dtype of ``xs``."""
    torch.manual_seed(0)
    model = torch_network(xs.dtype)
    loss_fn = torch.nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=RATE)
    tx, ty = torch.from_numpy(xs), torch.from_numpy(ys)
    n = len(xs)

    def run():
        for start in range(0, n, size):
            optimizer.zero_grad()
            loss = loss_fn(model(tx[start : start + size]), ty[start : start + size])
            loss.backward()
            optimizer.step()

    return run


def library_network(dtype, n_threads=1):
    """The notebook's MNIST network from fastcnn (Glorot init, seed 0) in ``dtype``."""
    from fastcnn.models import mnist_cnn

    return mnist_cnn(init="xavier", rng=0, dtype=dtype, num_threads=n_threads)


def library_setup(xs, ys, size):
    """fastcnn's own ``Network.train(..., batch_size=size)``, one epoch, on the threads of the
    enclosing :func:`threads` block (the network's ``num_threads``)."""
    from fastcnn import d_mse, mse

    net = library_network(xs.dtype)
    ys = ys.reshape(len(ys), 10, 1)  # the network's output shape

    def run():
        net.num_threads = _CURRENT_THREADS[0]
        net.train(xs, ys, mse, d_mse, 1, RATE, verbose=False, batch_size=size)

    return run


def fastcnn_setup(xs, ys, size):
    """The compiled prototype step of ``bench/batch_step.py``."""
    params = batch_step.init(xs.dtype.type)
    scratch = batch_step.Scratch(size, xs.dtype)
    return lambda: batch_step.epoch(params, scratch, xs, ys, size, RATE)


def gemm_setup(xs, ys, size):
    """Only the 3380 -> 100 layer's three GEMMs per batch (forward, input gradient, weight
    gradient) by NumPy into preallocated outputs: a bound no batch path doing them can beat."""
    rng = np.random.default_rng(0)
    dtype = xs.dtype
    n = len(xs)
    x = rng.uniform(0, 1, (n, 3380)).astype(dtype)
    g = rng.uniform(-1, 1, (n, 100)).astype(dtype)
    w = rng.standard_normal((100, 3380)).astype(dtype)
    out, d_in, d_w = np.empty((size, 100), dtype), np.empty((size, 3380), dtype), np.empty_like(w)

    def run():
        for start in range(0, n, size):
            m = min(size, n - start)
            xb, gb = x[start : start + m], g[start : start + m]
            np.dot(xb, w.T, out[:m])
            np.dot(gb, w, d_in[:m])
            np.dot(gb.T, xb, d_w)

    return run


CONTENDERS = {
    "fastcnn": library_setup,
    "fastcnn prototype": fastcnn_setup,
    "GEMM bound": gemm_setup,
    "PyTorch": torch_setup,
}


def measure(
    samples=2048,
    rounds=5,
    dtypes=DTYPES,
    batch_sizes=BATCH_SIZES,
    thread_counts=THREADS,
    contenders=None,
):
    """Median samples/s per ``(contender, dtype name, batch size, threads)``.

    Each contender is set up (and warmed: one pass, which also compiles) once per configuration;
    then each round times one pass of every configuration and contender in turn. Batch size 1
    passes over at most ``SINGLES`` samples (one step per sample is slow; the rate is per sample
    all the same). PyTorch is left out when not importable. Returns ``{key: median}`` and
    ``{key: [per-round samples/s]}``.
    """
    names = [c for c in (contenders or CONTENDERS) if c != "PyTorch" or torch is not None]
    runs = {}
    for dtype in dtypes:
        xs, ys = mnist(samples, dtype)
        for size in batch_sizes:
            n = min(samples, SINGLES) if size == 1 else samples
            for name in names:
                fn = CONTENDERS[name](xs[:n], ys[:n], size)
                with threads(max(thread_counts)):
                    fn()
                runs[name, np.dtype(dtype).name, size] = fn, n
    rates = defaultdict(list)
    for _ in range(rounds):
        for n_threads in thread_counts:
            with threads(n_threads):
                for (name, dtype_name, size), (fn, n) in runs.items():
                    start = perf_counter()
                    fn()
                    rates[name, dtype_name, size, n_threads].append(n / (perf_counter() - start))
    return {k: statistics.median(v) for k, v in rates.items()}, dict(rates)


def test_images(n):
    """The first ``n`` MNIST test images (n, 1, 28, 28) float32 in [0, 1] and their labels."""
    where = Path(os.environ.get("FASTCNN_TEST_MNIST", DEFAULT_MNIST))
    _, (test_x, test_y) = datasets.load_mnist(where, download=False)
    return datasets.scale_images(test_x[:n]), test_y[:n]


def notebook_accuracy(network, xs, labels):
    """The notebook's own test loop: ``np.argmax(network.predict(x))`` one image at a time."""
    correct = 0
    for x, label in zip(xs, labels, strict=True):
        correct += int(np.argmax(network.predict(x)) == label)
    return correct / len(xs)


def measure_evaluate(n=10_000, rounds=3):
    """``{contender: (median seconds, median per-round ratio to the notebook's loop)}`` for
    accuracy on ``n`` test images: the notebook's loop on the scipy backend, and
    ``Network.evaluate`` (compiled, batched) in float64 and float32, all on the same weights
    (Glorot, seed 0) and one thread, rounds interleaved. Each result is checked to agree."""
    from fastcnn.models import mnist_cnn

    xs, labels = test_images(n)
    nets = {
        "notebook loop (scipy, float64)": mnist_cnn(init="xavier", rng=0, backend="scipy"),
        "fastcnn evaluate float64": mnist_cnn(init="xavier", rng=0),
        "fastcnn evaluate float32": mnist_cnn(init="xavier", rng=0, dtype=np.float32),
    }
    calls = {
        name: (lambda net=net: notebook_accuracy(net, xs, labels))
        if name.startswith("notebook")
        else (lambda net=net: net.evaluate(xs, labels))
        for name, net in nets.items()
    }
    times = defaultdict(list)
    with threads(1):
        results = {name: call() for name, call in calls.items()}  # compiles, and checks
        base = results["notebook loop (scipy, float64)"]
        for name, accuracy in results.items():
            # float32 may flip an argmax between two near-equal outputs: a few images at most
            if abs(accuracy - base) > 5 / n:
                raise AssertionError(f"{name}: accuracy {accuracy}, notebook loop {base}")
        for _ in range(rounds):
            for name, call in calls.items():
                start = perf_counter()
                call()
                times[name].append(perf_counter() - start)
    first = times["notebook loop (scipy, float64)"]
    return {
        name: (
            statistics.median(t),
            statistics.median(a / b for a, b in zip(first, t, strict=True)),
        )
        for name, t in times.items()
    }


def _peer_rates(data):
    """``{(work, dtype, batch size, threads): {impl: samples/s}}`` from the rows of
    ``bench/test_batch.py`` (``extra_info["peer"]``) in a ``--benchmark-json`` document, in the
    order they ran."""
    rates = defaultdict(dict)
    for b in data.get("benchmarks", []):
        info = b.get("extra_info", {})
        if "peer" in info:
            key = (info["peer"], info["dtype"], info.get("batch_size", ""), info["threads"])
            rates[key][info["impl"]] = info["samples"] / b["stats"]["median"]
    return rates


def peer_table(data):
    """(title, headers, rows) of the fastcnn/PyTorch ratios in a ``--benchmark-json`` document,
    from the rows of ``bench/test_batch.py``; None when it has none. ``bench/report.py`` prints
    it."""
    rates = _peer_rates(data)
    if not rates:
        return None
    rows = []
    for (work, dtype, size, n_threads), rate in rates.items():
        mine = rate.get("fastcnn")
        peer_name = "PyTorch" if "PyTorch" in rate else "notebook loop"
        peer = rate.get(peer_name)
        rows.append(
            [
                work,
                dtype,
                str(size),
                str(n_threads),
                f"{mine:,.0f}" if mine else "-",
                f"{peer:,.0f} ({peer_name})" if peer else "- (not run)",
                f"{mine / peer:.2f}x" if mine and peer else "-",
            ]
        )
    headers = ["work", "dtype", "B", "threads", "fastcnn samples/s", "peer samples/s", "ratio"]
    return "fastcnn vs PyTorch and the notebook (bench/test_batch.py)", headers, rows


# Issue 8's targets: (label, work, dtype, batch size, threads, minimum fastcnn/peer ratio). The
# float32 evaluation is compared with the notebook's loop, which runs in float64.
PEER_TARGETS = [
    *(
        (f"mini-batch, {d}, 1 thread, B = {b}", "train epoch", d, b, 1, 1.5)
        for d in ("float32", "float64")
        for b in (32, 64)
    ),
    *(
        (f"mini-batch, {d}, 2 threads, B = {b}", "train epoch", d, b, 2, 1.2)
        for d in ("float32", "float64")
        for b in (32, 64)
    ),
    (
        "evaluate, float64 (vs the notebook's loop)",
        "accuracy on test images",
        "float64",
        "",
        1,
        6.0,
    ),
    (
        "evaluate, float32 (vs the notebook's float64 loop)",
        "accuracy on test images",
        "float32",
        "",
        1,
        10.0,
    ),
]


def peer_targets(data):
    """(headers, rows) of :data:`PEER_TARGETS`, measured in a ``--benchmark-json`` document's
    ``bench/test_batch.py`` rows; None when it has none."""
    rates = _peer_rates(data)
    if not rates:
        return None
    rows = []
    for label, work, dtype, size, n_threads, minimum in PEER_TARGETS:
        mine = rates.get((work, dtype, size, n_threads), {}).get("fastcnn")
        if work == "train epoch":
            peer = rates.get((work, dtype, size, n_threads), {}).get("PyTorch")
        else:  # the notebook's loop runs in float64 only
            peer = rates.get((work, "float64", size, n_threads), {}).get("notebook loop")
        if mine is None or peer is None:
            rows.append([label, f">= {minimum:g}x", "not measured", "-"])
            continue
        ratio = mine / peer
        status = "met" if ratio >= minimum else "NOT met"
        rows.append([label, f">= {minimum:g}x", f"{ratio:.2f}x", status])
    return ["target (issue 8: fastcnn / peer, same run)", "target", "measured", "status"], rows


def breakdown(dtype, size, samples=2048, n_threads=1):
    """Seconds per sample in each stage of the Python-level prototype step (kernel by kernel)."""
    xs, ys = mnist(samples, dtype)
    params = batch_step.init(dtype)
    scratch = batch_step.Scratch(size, dtype)
    times = dict.fromkeys(batch_step.STAGES, 0.0)
    with threads(n_threads):
        batch_step.step(params, scratch, xs[:size], ys[:size], RATE)
        for start in range(0, samples, size):
            end = start + size
            batch_step.step(params, scratch, xs[start:end], ys[start:end], RATE, times)
    return {k: v / samples for k, v in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=BATCH_SIZES)
    parser.add_argument("--threads", type=int, nargs="+", default=THREADS)
    parser.add_argument("--no-breakdown", action="store_true")
    parser.add_argument(
        "--evaluate",
        type=int,
        default=0,
        metavar="N",
        help="also time evaluate on N test images against the notebook's per-sample loop",
    )
    parser.add_argument("--quick", action="store_true", help="256 samples, 1 round")
    parser.add_argument(
        "--lenet", action="store_true", help="LeNet-5 against PyTorch instead (bench.lenet)"
    )
    args = parser.parse_args(argv)
    if args.lenet:
        from . import lenet

        return lenet.main(["--rounds", str(args.rounds)] + (["--quick"] if args.quick else []))
    samples, rounds = (256, 1) if args.quick else (args.samples, args.rounds)
    medians, per_round = measure(
        samples, rounds, batch_sizes=args.batch_sizes, thread_counts=args.threads
    )
    version = torch.__version__ if torch is not None else "not installed"
    print(f"samples/s, median of {rounds} interleaved rounds over {samples} MNIST images")
    print(f"({min(samples, SINGLES)} at B = 1);")
    print(f"PyTorch {version}, NumPy {np.__version__}")
    print(vector_units())
    names = [n for n in CONTENDERS if any(k[0] == n for k in medians)]
    header = f"{'dtype':8} {'B':>4} {'thr':>3} " + " ".join(f"{n:>18}" for n in names)
    print(header + "  fastcnn/PyTorch  spread(fastcnn)")
    print("(fastcnn/PyTorch: median over rounds of that round's ratio)")
    for dtype in DTYPES:
        dn = np.dtype(dtype).name
        for n_threads in args.threads:
            for size in args.batch_sizes:
                cells = [medians.get((n, dn, size, n_threads), float("nan")) for n in names]
                line = f"{dn:8} {size:>4} {n_threads:>3} " + " ".join(f"{c:>18,.0f}" for c in cells)
                key = ("fastcnn", dn, size, n_threads)
                # Median of the per-round ratios: each round's two figures ran back to back, so a
                # busy machine slows both, and this ratio varies less than the raw rates do.
                torch_rounds = per_round.get(("PyTorch", dn, size, n_threads))
                ratio = (
                    statistics.median(
                        a / b for a, b in zip(per_round[key], torch_rounds, strict=True)
                    )
                    if torch_rounds
                    else float("nan")
                )
                spread = per_round[key]
                print(f"{line}   {ratio:13.2f}  {min(spread):,.0f}-{max(spread):,.0f}")
    if args.evaluate:
        print(f"\nevaluate on {args.evaluate} test images, median of {rounds} interleaved rounds:")
        for name, (seconds, ratio) in measure_evaluate(args.evaluate, rounds).items():
            print(f"  {name:36} {seconds:8.3f} s   {ratio:6.2f}x the notebook's loop")
    if args.no_breakdown:
        return
    print("\nprototype stages, microseconds per sample (Python-level step, 1 thread):")
    for dtype in DTYPES:
        for size in (32, 64):
            parts = breakdown(dtype, size, samples)
            text = ", ".join(f"{k} {v * 1e6:.1f}" for k, v in parts.items())
            print(f"{np.dtype(dtype).name} B={size}: total {sum(parts.values()) * 1e6:.1f}: {text}")


if __name__ == "__main__":
    main()
