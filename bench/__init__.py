"""fastcnn's benchmarks (pytest-benchmark); ``python -m bench.report`` runs and summarises them."""

import numba


def describe(benchmark, group, *, op, impl, shape, dims, dtype, kind, threads=1, samples=1, **more):
    """Name ``benchmark``'s group and record the fields ``bench/report.py`` reads from its row."""
    benchmark.group = group
    benchmark.extra_info.update(
        op=op,
        impl=impl,
        shape=shape,
        dims=dims,
        dtype=dtype,
        threads=threads,
        numba_threads=numba.get_num_threads(),
        samples=samples,
        kind=kind,
        **more,
    )
