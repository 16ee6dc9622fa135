"""Shared setup of the benchmarks: quick mode, tolerances, MNIST, and the machine details saved in
``--benchmark-json``.

Run from the repository root with ``pytest bench/ --benchmark-only`` (about 3 minutes on 2 cores);
``FASTCNN_BENCH_QUICK=1`` or ``--quick`` shrinks rounds and sample counts to a smoke test.
"""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# `tests.pairs` is the one table of implementation pairs; make it importable from the repo root.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.report import machine_details  # noqa: E402
from tests.mnist import ENV as MNIST_ENV  # noqa: E402
from tests.mnist import find_mnist  # noqa: E402

# Tolerance relative to the reference's largest magnitude (and elementwise). float64: a plain or
# reassociated loop differs from SciPy/BLAS by ~1e-15 of the scale, and a few hundred SGD steps
# measured ~1e-15 too; 1e-10 leaves room for a 2-thread split yet catches any wrong index or update.
# float32 against the float64 reference: 24-bit rounding over up to 57,600-term sums stays near
# 1e-5; 500 SGD steps measured ~1e-6.
TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}

QUICK_ENV = "FASTCNN_BENCH_QUICK"


def pytest_addoption(parser):
    parser.addoption(
        "--quick",
        action="store_true",
        default=False,
        help=f"fastcnn benchmarks: few rounds and samples (same as {QUICK_ENV}=1)",
    )


def is_quick(config):
    return config.getoption("--quick") or os.environ.get(QUICK_ENV, "") not in ("", "0")


def pytest_collection_modifyitems(config, items):
    quick = is_quick(config)
    here = Path(__file__).resolve().parent
    for item in items:
        if here not in Path(str(item.fspath)).resolve().parents:
            continue  # `pytest tests bench` also passes the tests' items through this hook
        # A benchmark whose result check fails never times; with filterwarnings = error, the
        # fixture's "not used" warning would add a second, misleading error to that failure.
        item.add_marker(pytest.mark.filterwarnings("ignore:Benchmark fixture was not used at all"))
        if quick and item.get_closest_marker("benchmark") is None:
            # Calibrated benchmarks (kernels, layers) stop after 3 rounds or 50 ms, not 1 s.
            item.add_marker(pytest.mark.benchmark(max_time=0.05, min_rounds=3))


def pytest_benchmark_update_machine_info(config, machine_info):
    # Called when the JSON is written, after every benchmark ran: numba's threading layer is known
    # by then if any parallel kernel ran.
    machine_info["fastcnn"] = machine_details()
    machine_info["fastcnn"]["quick"] = bool(is_quick(config))


@pytest.fixture(scope="session")
def quick(request):
    return is_quick(request.config)


@pytest.fixture(scope="session")
def sizes(quick):
    """Samples per training/prediction call and timed rounds of those (pedantic) benchmarks;
    the mini-batch rows against PyTorch train on ``batch_samples`` images and evaluate on
    ``test_images`` (issue 8 asks for >= 2,000 and the whole test set)."""
    if quick:
        return {"samples": 48, "rounds": 3, "batch_samples": 48, "test_images": 192}
    return {"samples": 500, "rounds": 7, "batch_samples": 2048, "test_images": 10_000}


@pytest.fixture(scope="session")
def assert_close():
    def check(actual, expected, dtype, labels, what):
        """Each array of ``actual`` within ``TOLERANCE[dtype]`` of the float64 ``expected``."""
        tol = TOLERANCE[np.dtype(dtype)]
        assert len(actual) == len(expected), (
            f"{what}: {len(actual)} results, expected {len(expected)}"
        )
        labels = [*labels, *(f"result {k}" for k in range(len(labels), len(expected)))]
        for label, a, e in zip(labels, actual, expected, strict=True):
            a, e = np.asarray(a), np.asarray(e)
            assert a.shape == e.shape, f"{what} [{label}]: shape {a.shape}, reference {e.shape}"
            scale = max(1.0, float(np.max(np.abs(e)))) if e.size else 1.0
            err = float(np.max(np.abs(a.astype(np.float64) - e))) if e.size else 0.0
            assert np.all(np.isfinite(a)), f"{what} [{label}]: non-finite values"
            assert err <= tol * scale, (
                f"{what} [{label}]: max |this - reference| = {err:.3e} > {tol:g} x {scale:.3g} "
                f"({np.dtype(dtype).name} tolerance)"
            )

    return check


@pytest.fixture(scope="session")
def mnist():
    """(train_x, train_y), (test_x, test_y) of the real MNIST files, or skip."""
    directory, missing = find_mnist()
    if missing:
        pytest.skip(
            f"real MNIST not found in {directory} (missing {', '.join(missing)}); "
            f"set {MNIST_ENV} to the directory holding the four IDX files"
        )
    from fastcnn.datasets import load_mnist

    return load_mnist(directory, download=False)
