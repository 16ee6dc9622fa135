"""BLAS on a given number of threads for the length of a ``with`` block, restored after.

The mini-batch kernels (``fastcnn.kernels.batch``) call BLAS through Numba's ``np.dot``, which
reaches SciPy's OpenBLAS (``scipy.linalg.cython_blas``), not NumPy's; both start as many threads
as the machine has cores. threadpoolctl sets and restores either one's count from Python, and its
limit holds for the calls Numba makes (checked: CPU time equals wall time under a limit of 1).
It can only limit a library already loaded, so SciPy's BLAS is imported first.
"""

import contextlib
import functools
from collections.abc import Iterator


@functools.cache
def _controller():
    """One threadpoolctl controller over the BLAS libraries loaded now (building one scans every
    loaded library: ~10 ms, too slow to repeat per call)."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS Numba calls, so it can be limited)

    try:
        from threadpoolctl import ThreadpoolController
    except ImportError as error:
        raise ImportError(
            "setting the BLAS thread count needs threadpoolctl; install it with "
            "`pip install threadpoolctl`"
        ) from error
    return ThreadpoolController().select(user_api="blas")


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Run the block with NumPy's and SciPy's BLAS (hence Numba's ``np.dot``) on ``n`` threads."""
    with _controller().limit(limits=n):
        yield
