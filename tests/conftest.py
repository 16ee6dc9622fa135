"""pytest settings and fixtures: the hypothesis profile and the MNIST data.

The named tolerances, the notebook's networks and data, the parameter helper and the shape
strategies live in ``tests/support.py``; test modules import them from there
(``from .support import F64``). The fixtures reach tests through pytest as usual.
"""

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

from fastcnn import datasets

from .mnist import find_mnist

# Re-exported for test modules (on other branches) that still import these from here; new code
# imports them from tests/support.py, where they are defined once.
from .support import (  # noqa: F401
    DTYPES,
    F32,
    F64,
    FD,
    FD_STEP,
    TOL,
    conv_shapes,
    seeds,
    tolerance,
)

# --------------------------------------------------------------------------------------------------
# hypothesis


def pytest_configure(config):
    # When a property fails, hypothesis imports libcst to write a patch with the failing example;
    # libcst subclasses mypy_extensions.TypedDict, which warns. Under filterwarnings=error that
    # turns the failure report into an INTERNALERROR that hides which test failed.
    config.addinivalue_line(
        "filterwarnings", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
    )


# deadline=None: the first example of a test compiles its kernels (seconds), later ones take
# microseconds, so a per-example deadline would only measure the compiler. 25 examples keep the
# suite fast. On CI the examples are derandomized so a red build is reproducible; locally they vary,
# and failing examples are kept outside the repository (no `.hypothesis/` in the shared tree).
CI = bool(os.environ.get("CI"))
settings.register_profile(
    "fastcnn",
    deadline=None,
    max_examples=25,
    derandomize=CI,
    database=None
    if CI
    else DirectoryBasedExampleDatabase(Path(tempfile.gettempdir()) / "fastcnn-hypothesis"),
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fastcnn"))

# --------------------------------------------------------------------------------------------------
# MNIST

MNIST_SAMPLES = 300


@pytest.fixture(scope="session")
def mnist_dir():
    """The directory of the real MNIST IDX files: ``$FASTCNN_TEST_MNIST``, else
    ``<repo>/../shared/data/mnist``. Skips when absent, but fails when ``FASTCNN_REQUIRE_DATA=1``
    (CI), so a misconfigured CI cannot pass by skipping."""
    where, missing = find_mnist()
    if missing:
        reason = (
            f"MNIST files {missing} not found in {where}; set FASTCNN_TEST_MNIST to a "
            f"directory holding the four IDX files (raw or .gz)"
        )
        if os.environ.get("FASTCNN_REQUIRE_DATA") == "1":
            pytest.fail(f"FASTCNN_REQUIRE_DATA=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return where


@pytest.fixture(scope="session")
def mnist_sample(mnist_dir):
    """The first ``MNIST_SAMPLES`` training images and labels as the seed prepares them: images
    (n, 1, 28, 28) float32 in [0, 1], one-hot targets (n, 10, 1) float32."""
    (train_x, train_y), _ = datasets.load_mnist(mnist_dir, download=False)
    n = MNIST_SAMPLES
    return datasets.scale_images(train_x[:n]), datasets.one_hot(train_y[:n])
