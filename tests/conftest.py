"""Shared test settings: the hypothesis profile, the named tolerances, shape strategies, MNIST data.

Test modules import the constants and strategies from here (``from .conftest import F64``); the
fixtures reach them through pytest as usual.
"""

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from fastcnn import datasets

from .mnist import find_mnist
from .pairs import Shape

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
# tolerances, named once

# float64: a plain loop sums in a different order than SciPy/BLAS. Measured over 300 random shapes
# and all filter sizes at 3x20x20 (up to 1200-term sums of values in [-1, 1], results up to ~30):
# at most 5.3e-14 absolute, and 8e-16 beyond rtol * |reference|. So rtol=1e-12 with atol=1e-13
# leaves a 100x margin on the absolute part, while any real bug (a flipped filter, a missing
# `* rate`, an off-by-one) is off by 1e-2 or more.
F64 = dict(rtol=1e-12, atol=1e-13)
# float32 carries ~7 digits and those sums lose up to ~3 of them: measured 3.4e-5 absolute on
# results up to ~30, 6e-6 beyond 1e-5 * |reference|. 1e-4 both ways keeps a ~10x margin.
F32 = dict(rtol=1e-4, atol=1e-4)
TOL = {np.dtype(np.float64): F64, np.dtype(np.float32): F32}

# Central differences in float64 with step FD_STEP: truncation is O(h^2 f''') < 1e-10 for the
# sigmoid (linear layers have none); rounding is ~eps * |L| / h < 1e-9 for the |L| < 100 of the
# small shapes used. 1e-6 sits well above both and well below a wrong gradient's error.
FD_STEP = 1e-5
FD = dict(rtol=1e-6, atol=1e-6)


def tolerance(dtype):
    """The named tolerance for arrays of ``dtype``."""
    return TOL[np.dtype(dtype)]


# --------------------------------------------------------------------------------------------------
# shapes

DTYPES = (np.float64, np.float32)


@st.composite
def conv_shapes(draw, max_depth=3, max_side=20, max_count=4, max_hidden=20):
    """A :class:`tests.pairs.Shape`. The filter size is drawn first and bounds height and width from
    below, so every draw is valid and nothing is filtered out (which would waste examples)."""
    size = draw(st.integers(1, max_side))
    height = draw(st.integers(size, max_side))
    width = draw(st.integers(size, max_side))
    depth = draw(st.integers(1, max_depth))
    count = draw(st.integers(1, max_count))
    hidden = draw(st.integers(1, max_hidden))
    return Shape(depth, height, width, size, count, hidden)


seeds = st.integers(0, 2**32 - 1)

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
