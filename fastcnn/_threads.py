"""BLAS on a given number of threads for the length of a ``with`` block, restored after.

The mini-batch kernels (``fastcnn.kernels.batch``) call BLAS through Numba's ``np.dot``, which
reaches SciPy's OpenBLAS (``scipy.linalg.cython_blas``), not NumPy's; both start as many threads
as the machine has cores. threadpoolctl sets and restores either one's count from Python, and its
limit holds for the calls Numba makes (checked: CPU time equals wall time under a limit of 1).
It can only limit a library already loaded, so SciPy's BLAS is imported first.
"""

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[None]:
    """Run the block with NumPy's and SciPy's BLAS (hence Numba's ``np.dot``) on ``n`` threads."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS Numba calls, so it can be limited)

    try:
        from threadpoolctl import threadpool_limits
    except ImportError as error:
        raise ImportError(
            "setting the BLAS thread count needs threadpoolctl; install it with "
            "`pip install threadpoolctl`"
        ) from error
    with threadpool_limits(limits=n, user_api="blas"):
        yield
