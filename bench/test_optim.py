"""One optimizer step on a flat parameter buffer: the Numba kernel against its NumPy twin
(``Optimizer.reference_step``), for plain SGD, SGD with momentum, Adam and AdamW, at LeNet's
parameter count in float32 and the notebook network's in float64. One group per size and dtype
holds every optimizer and both paths of one run, so Adam/SGD is read off one table."""

import numpy as np
import pytest

from bench import describe
from fastcnn import optim
from fastcnn.kernels import optim as k_optim

# LeNet-5 on MNIST (fastcnn.models' lenet: 61,706 parameters), float32 as it trains fastest; the
# notebook's network (338,655 parameters), float64 as the notebook computes.
SIZES = {"LENET": (61_706, np.float32), "NOTEBOOK": (338_655, np.float64)}
OPTIMIZERS = {
    "sgd": optim.SGD(lr=0.01),
    "momentum": optim.SGD(lr=0.01, momentum=0.9),
    "nesterov": optim.SGD(lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4),
    "adam": optim.Adam(),
    "adamw": optim.AdamW(),
}


def kernel_call(opt, p, g, state):
    """The bare kernel call ``opt.step`` makes (no argument checks): what a compiled loop runs."""
    buffers = [state.buffers[name] for name in opt.buffers()]
    if isinstance(opt, optim.Adam):
        beta1, beta2 = opt.betas
        args = (p, g, *buffers, 1, opt.lr, beta1, beta2, opt.eps, opt.weight_decay, opt.decoupled)
        return lambda: k_optim.adam_step(*args)
    if opt.plain:
        return lambda: k_optim.plain_sgd_step(p, g, opt.lr)
    m, d, wd, n = opt.momentum, opt.dampening, opt.weight_decay, opt.nesterov
    return lambda: k_optim.sgd_momentum_step(p, g, buffers[0], opt.lr, m, d, wd, n, False)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("impl", ["reference", "numba"])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_optimizer_step(benchmark, assert_close, name, impl, size):
    # Catches a step that is fast but wrong: its first call (also the JIT warm-up) must match
    # one float64 reference step from the same state before it is timed.
    count, dtype = SIZES[size]
    opt = OPTIMIZERS[name]
    rng = np.random.default_rng(0)
    p = rng.standard_normal(count).astype(dtype)
    g = rng.standard_normal(count).astype(dtype)
    state = opt.init(p)
    for buf in state.buffers.values():
        buf[...] = np.abs(rng.standard_normal(count))  # a mid-run state: every branch does work
    # Every timed call is Adam's step 1 (kernel_call's count) and not SGD's first (which only
    # copies the gradient into the buffer): each call from the same position, as a run's would be.
    taken = 0 if isinstance(opt, optim.Adam) else 1
    state.step = taken
    expected_p = p.astype(np.float64)
    expected_state = opt.init(expected_p)
    expected_state.step = state.step
    for key, buf in state.buffers.items():
        expected_state.buffers[key][...] = buf
    opt.reference_step(expected_p, g.astype(np.float64), expected_state)

    if impl == "numba":
        fn = kernel_call(opt, p, g, state)
    else:

        def fn():
            state.step = taken
            opt.reference_step(p, g, state)

    fn()
    labels = ("params", *state.buffers)
    actual = (p, *state.buffers.values())
    assert_close(
        [np.copy(a) for a in actual],
        (expected_p, *expected_state.buffers.values()),
        dtype,
        labels,
        f"{name} {impl} {size}",
    )
    describe(
        benchmark,
        f"optim|{size}|{np.dtype(dtype).name}",
        op=f"optim_{name}",
        impl=impl,
        shape=size,
        dims=str(count),
        dtype=np.dtype(dtype).name,
        kind="kernel",
    )
    benchmark(fn)
