"""Throughput of `fastcnn sweep`: one 16-trial study of the notebook's network (1 epoch on 2,000
training images each, per-sample SGD unless ``--batch-size``, validated on 500 more) run as a whole process with
``--jobs 1``, ``--jobs 2`` and ``--dask`` on a LocalCluster of 2 single-threaded worker processes.

    python -m bench.sweep_throughput [--rounds 5] [--data DIR]

The three configurations run interleaved, round after round (other work on the machine then
slows them alike), each in a fresh SQLite file; the same random-sampler seed gives every run
the same 16 trials. The LocalCluster is started before its timed run and closed after it, fresh
every round: its start is not timed (a cluster is there before a sweep is sent to it), its
workers' first imports are; "dask 2 preloaded" starts the workers with ``--preload
fastcnn.sweep`` (imports and kernels loaded as each worker starts, as a long-lived cluster's
workers would have them), untimed too. Each round first measures the cores the machine gives
now (two pure-Python loops at once against one): where that is near 1, two processes get no
more CPU than one, and the --jobs 2 ratio cannot be below ~1 whatever the sweep does. Prints
every time, the medians and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.mnist import find_mnist

SPACE = """\
[train]
model = "notebook"
data = "{data}"
limit = 2500         # 2,000 images to train on, 500 to validate on
validation = 0.2
epochs = 1
batch_size = {batch_size}
[space]
rate = {{ low = 0.05, high = 2.0, log = true }}
init = ["notebook", "xavier"]
seed = [0, 1, 2, 3]
"""
TRIALS = 16


def _sweep(space: Path, db: Path, *more: str, trials: int = TRIALS) -> float:
    command = [
        sys.executable,
        "-m",
        "fastcnn",
        "sweep",
        str(space),
        "--storage",
        f"sqlite:///{db}",
        "--trials",
        str(trials),
        "--sampler",
        "random",
        "--quiet",
        *more,
    ]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr}")
    if f"{trials} trials, {trials} complete" not in result.stdout:
        raise SystemExit(f"expected {trials} complete trials:\n{result.stdout}")
    return seconds


def _dask(space: Path, db: Path, preload: tuple[str, ...] = ()) -> float:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        preload=list(preload),
    ) as cluster:
        if preload:  # the workers are ready once their preload ran: not part of the sweep
            from distributed import Client

            with Client(cluster) as client:
                client.wait_for_workers(2)
        return _sweep(space, db, "--dask", cluster.scheduler_address)


_BURN = "x = 0\nfor i in range(5_000_000): x += i"


def _capacity() -> float:
    """Cores this benchmark gets now: 2 × (one pure-Python loop alone) / (two at once, each
    timed alone). 2.0 on an idle 2-core machine; about 1.0 when the machine gives this process
    tree one core's worth however many processes it runs, and then no --jobs can help."""

    def burn(count: int) -> float:
        start = time.perf_counter()
        processes = [subprocess.Popen([sys.executable, "-c", _BURN]) for _ in range(count)]
        for p in processes:
            p.wait()
        return time.perf_counter() - start

    return 2 * burn(1) / burn(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep_throughput")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", default=None, help="MNIST directory (default: as the tests)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="1 (default): the notebook's per-sample SGD; 16: mini-batches (BLAS)",
    )
    args = parser.parse_args(argv)
    if args.data is None:
        where, missing = find_mnist()
        if missing:
            raise SystemExit(f"MNIST files {missing} not in {where}; pass --data DIR")
        args.data = str(where)
    data = args.data
    configurations = {
        "jobs 1": lambda s, d: _sweep(s, d, "--jobs", "1"),
        "jobs 2": lambda s, d: _sweep(s, d, "--jobs", "2"),
        "dask 2": _dask,
        "dask 2 preloaded": lambda s, d: _dask(s, d, ("fastcnn.sweep",)),
    }
    with tempfile.TemporaryDirectory() as work:
        space = Path(work) / "bench.toml"
        space.write_text(SPACE.format(data=data, batch_size=args.batch_size))
        _sweep(space, Path(work) / "warm.db", trials=1)  # fill Numba's cache, untimed
        times: dict[str, list[float]] = {name: [] for name in configurations}
        capacity: list[float] = []
        for r in range(args.rounds):
            capacity.append(_capacity())
            print(f"round {r + 1}: capacity {capacity[-1]:.2f} cores", flush=True)
            for name, measure in configurations.items():
                seconds = measure(space, Path(work) / f"{name.replace(' ', '')}-{r}.db")
                times[name].append(seconds)
                print(f"round {r + 1}: {name}: {seconds:.2f} s", flush=True)
    median = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"\n{TRIALS} trials, batch size {args.batch_size}, {args.rounds} rounds, "
        f"{os.cpu_count()} cores; medians:"
    )
    print(f"  capacity: {statistics.median(capacity):.2f} cores (of {os.cpu_count()})")
    for name, m in median.items():
        print(f"  {name}: {m:.2f} s  ({', '.join(f'{t:.2f}' for t in times[name])})")
    print(f"jobs 2 / jobs 1 = {median['jobs 2'] / median['jobs 1']:.2f} (target <= 0.60)")
    for name in ("dask 2", "dask 2 preloaded"):
        print(f"{name} / jobs 2 = {median[name] / median['jobs 2']:.2f} (target <= 1.15)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
