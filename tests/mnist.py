"""Where the tests and benchmarks find the real MNIST files: ``$FASTCNN_TEST_MNIST``, else
``<repo>/../shared/data/mnist``. Never downloads."""

import os
from pathlib import Path

from fastcnn import datasets

ENV = "FASTCNN_TEST_MNIST"


def find_mnist():
    """``(directory, missing)``: the directory looked in and the IDX files it lacks (raw or .gz)."""
    env = os.environ.get(ENV)
    where = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    missing = [
        n
        for n in datasets.FILES
        if not (where / n).is_file() and not (where / (n + ".gz")).is_file()
    ]
    return where, missing
