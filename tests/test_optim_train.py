"""Network.train with an optimizer and a schedule against torch.optim on the same network, the
same initial parameters and the same sample order (float64): per sample and in batches of 32, on
the per-layer path (the reference) and on the compiled loops; then the paths against each other
in float32 and on two threads, the learning-rate rule, and the errors.

The torch tests skip without torch (``pip install torch==2.13.0``, a CPU build).
"""

import numba
import numpy as np
import pytest

import fastcnn as fc
from fastcnn import _compiled, optim

# With NUMBA_DISABLE_JIT (the coverage run) every loop is Python: fewer samples, one epoch less.
# Neither is a multiple of 32, and the last batch (13 or 26) is no power of two: the kernels
# divide a power-of-two count as a product by its reciprocal, any other one by division.
N, EPOCHS = (45, 2) if numba.config.DISABLE_JIT else (90, 3)
SEED = 3

OPTIMIZERS = {
    "sgd": (optim.SGD(lr=0.5), None),
    "sgd-decay": (optim.SGD(lr=0.5, weight_decay=1e-2), None),
    "momentum": (optim.SGD(lr=0.3, momentum=0.9), None),
    "momentum-dampening-decay": (
        optim.SGD(lr=0.3, momentum=0.9, dampening=0.3, weight_decay=1e-2),
        None,
    ),
    "nesterov": (optim.SGD(lr=0.3, momentum=0.8, nesterov=True, weight_decay=1e-3), None),
    "adam": (optim.Adam(lr=1e-2), None),
    "adam-decay": (optim.Adam(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2), None),
    "adamw": (optim.AdamW(lr=1e-2, weight_decay=0.1), None),
    "momentum-steplr": (optim.SGD(lr=0.3, momentum=0.9), optim.StepLR(1, gamma=0.5)),
    "adam-cosine": (optim.Adam(lr=2e-2), optim.CosineAnnealingLR(T_max=2, eta_min=1e-3)),
    "sgd-steplr": (optim.SGD(lr=0.5), optim.StepLR(2, gamma=0.1)),
    # OneCycleLR's total steps depend on the batch size: made per test (see schedule_for).
    "adamw-onecycle": (optim.AdamW(), "onecycle"),
    "sgd-onecycle": (optim.SGD(), "onecycle"),
}


def network(dtype=np.float64, backend="numba", num_threads=1):
    rng = np.random.RandomState(SEED)
    return fc.Network(
        [
            fc.Convolution((1, 8, 8), 3, 2, dtype=dtype, rng=rng),
            fc.Activation(fc.sigmoid, fc.d_sigmoid),
            fc.Reshape((2, 6, 6), (72, 1)),
            fc.Linear(72, 4, dtype=dtype, rng=rng),
            fc.Activation(fc.sigmoid, fc.d_sigmoid),
        ],
        backend=backend,
        num_threads=num_threads,
    )


def data(n=N):
    rng = np.random.RandomState(7)
    return rng.rand(n, 1, 8, 8), rng.rand(n, 4, 1)


def schedule_for(name, batch_size, n=N):
    opt, schedule = OPTIMIZERS[name]
    if schedule == "onecycle":
        steps = -(-n // batch_size)
        schedule = optim.OneCycleLR(0.05, epochs=EPOCHS, steps_per_epoch=steps)
        if isinstance(opt, optim.SGD):
            schedule = optim.OneCycleLR(1.0, epochs=EPOCHS, steps_per_epoch=steps)
    return opt, schedule


def train(name, batch_size, backend="numba", dtype=np.float64, num_threads=1):
    opt, schedule = schedule_for(name, batch_size)
    net = network(dtype, backend, num_threads)
    x, y = data()
    rate = 0.5 if opt.lr is None else None
    net.train(
        x,
        y,
        fc.mse,
        fc.d_mse,
        EPOCHS,
        rate,
        optimizer=opt,
        schedule=schedule,
        batch_size=batch_size,
        shuffle=True,
        rng=SEED,
        verbose=False,
    )
    return net, [p.copy() for layer in net.layers for p in layer.parameters()]


def torch_train(name, batch_size):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    opt, schedule = schedule_for(name, batch_size)
    net = network()
    conv, dense = net.layers[0], net.layers[3]
    filters = torch.tensor(conv.filters, requires_grad=True)
    conv_biases = torch.tensor(conv.biases, requires_grad=True)  # per pixel, added after conv2d
    weights = torch.tensor(dense.weights, requires_grad=True)
    biases = torch.tensor(dense.biases.reshape(-1), requires_grad=True)
    params = [filters, conv_biases, weights, biases]
    config = opt.get_config()
    lr = config.pop("lr") or 0.5
    if isinstance(opt, optim.SGD):
        torch_opt = torch.optim.SGD(params, lr=lr, foreach=False, **config)
    else:
        kind = torch.optim.AdamW if isinstance(opt, optim.AdamW) else torch.optim.Adam
        config["betas"] = tuple(config["betas"])
        torch_opt = kind(params, lr=lr, foreach=False, **config)
    scheduler = None
    if isinstance(schedule, optim.StepLR):
        scheduler = torch.optim.lr_scheduler.StepLR(torch_opt, schedule.step_size, schedule.gamma)
    elif isinstance(schedule, optim.CosineAnnealingLR):
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            torch_opt, schedule.T_max, schedule.eta_min
        )
    elif isinstance(schedule, optim.OneCycleLR):
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            torch_opt,
            schedule.max_lr,
            epochs=schedule.epochs,
            steps_per_epoch=schedule.steps_per_epoch,
            cycle_momentum=False,
        )
    x, y = data()
    xs, ys = torch.tensor(x), torch.tensor(y.reshape(len(y), -1))
    order = np.random.RandomState(SEED)
    for _ in range(EPOCHS):
        index = torch.tensor(order.permutation(len(x)))
        ex, ey = xs[index], ys[index]
        for start in range(0, len(x), batch_size):
            bx, by = ex[start : start + batch_size], ey[start : start + batch_size]
            hidden = torch.sigmoid(functional.conv2d(bx, filters) + conv_biases)
            out = torch.sigmoid(hidden.reshape(len(bx), -1) @ weights.T + biases)
            torch_opt.zero_grad()
            functional.mse_loss(out, by).backward()
            torch_opt.step()
            if scheduler is not None and schedule.per_step:
                scheduler.step()
        if scheduler is not None and not schedule.per_step:
            scheduler.step()
    shapes = [p.shape for layer in net.layers for p in layer.parameters()]
    return [p.detach().numpy().reshape(s) for p, s in zip(params, shapes, strict=True)]


def assert_close(ours, theirs, rtol):
    # Relative to each array's largest value: a wrong formula or order moves every value by
    # about lr, many orders above these tolerances.
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


@pytest.mark.parametrize("batch_size", [1, 32])
@pytest.mark.parametrize("backend", ["scipy", "numba"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_training_matches_torch_optim(name, backend, batch_size):
    # Catches an optimizer, a schedule or the mean of a batch's gradients that is not torch's on
    # either path: the per-layer reference (scipy) or the compiled loops (numba). Measured
    # worst case over these cases: 9.4e-16 of the array's largest value after 3 epochs (torch
    # 2.13), so 1e-9 is the bound, not a fit to our rounding.
    if backend == "scipy" and numba.config.DISABLE_JIT:
        pytest.skip("the per-layer path runs no kernel; the coverage run skips it")
    theirs = torch_train(name, batch_size)
    net, ours = train(name, batch_size, backend)
    if backend == "numba":
        program = _compiled.program(net.layers, padded=batch_size == 1)
        assert program is not None  # the compiled path was the one taken
    assert_close(ours, theirs, 1e-9)


@pytest.mark.parametrize("batch_size", [1, 32])
@pytest.mark.parametrize("name", ["momentum-dampening-decay", "adam-decay", "adamw-onecycle"])
def test_float32_compiled_matches_reference(name, batch_size):
    # Catches the optimizer's state or the per-step rates laid out wrong for float32 (the padded
    # dense rows of the per-sample loop, a state buffer of the wrong dtype): float32 rounding
    # differs between the kernels (fused multiply-adds) and the reference, so only ~1e-4.
    _, compiled = train(name, batch_size, "numba", np.float32)
    _, reference = train(name, batch_size, "scipy", np.float32)
    for p in compiled:
        assert p.dtype == np.float32
    assert_close(compiled, reference, 1e-4)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two Numba threads")
@pytest.mark.parametrize("batch_size", [1, 32])
def test_two_threads_match_one(batch_size):
    # Catches the two-thread per-sample loop (or BLAS on two threads) stepping with another
    # optimizer state or rate: its sums are split, so the last bits may differ.
    _, one = train("adam-cosine", batch_size)
    _, two = train("adam-cosine", batch_size, num_threads=2)
    assert_close(two, one, 1e-11)


def test_plain_sgd_optimizer_is_the_default_bit_for_bit():
    # Catches SGD(lr) with no momentum taking another path than the seed's (the fused loops) or
    # the rate rule changing a default run: SGD() takes train's rate, SGD(lr) its own.
    x, y = data()
    runs = []
    for opt, rate in ((None, 0.5), (optim.SGD(), 0.5), (optim.SGD(lr=0.5), None)):
        net = network()
        net.train(x, y, fc.mse, fc.d_mse, 2, rate, optimizer=opt, verbose=False)
        runs.append([p.copy() for layer in net.layers for p in layer.parameters()])
    for run in runs[1:]:
        for a, b in zip(run, runs[0], strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("batch_size", [1, 32])
def test_a_schedule_alone_steps_the_seeds_sgd(batch_size):
    # Catches a per-step schedule with no optimizer (the command line's --schedule onecycle
    # with plain sgd) failing or stepping otherwise than SGD() with that schedule.
    x, y = data()
    steps = -(-len(x) // batch_size)
    runs = []
    for opt in (None, optim.SGD()):
        net = network()
        schedule = optim.OneCycleLR(1.0, epochs=2, steps_per_epoch=steps)
        net.train(
            x, y, fc.mse, fc.d_mse, 2, 0.5, optimizer=opt, schedule=schedule,
            batch_size=batch_size, verbose=False,
        )  # fmt: skip
        runs.append([p.copy() for layer in net.layers for p in layer.parameters()])
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)


def test_learning_rate_conflict_and_bad_arguments_are_refused():
    x, y = data(4)
    net = network()
    with pytest.raises(ValueError, match=r"rate=0.1 and Adam\(lr=0.01\), whose lr=0.01"):
        net.train(x, y, fc.mse, fc.d_mse, 1, 0.1, optimizer=optim.Adam(lr=0.01))
    with pytest.raises(TypeError, match="rate must be a real number, got None"):
        net.train(x, y, fc.mse, fc.d_mse, 1, None, optimizer=optim.SGD())
    with pytest.raises(TypeError, match=r"optimizer must be a fastcnn\.optim optimizer"):
        net.train(x, y, fc.mse, fc.d_mse, 1, 0.1, optimizer="adam")
    with pytest.raises(TypeError, match=r"schedule must be a fastcnn\.optim schedule"):
        net.train(x, y, fc.mse, fc.d_mse, 1, 0.1, schedule=0.5)
    # the same number twice is no conflict
    net.train(x, y, fc.mse, fc.d_mse, 1, 0.01, optimizer=optim.Adam(lr=0.01), verbose=False)


def test_program_refuses_an_optimizer_it_was_not_made_for():
    # Catches a fused program (whose records leave the dense weights to the fused hooks) being
    # given an optimizer: those weights would never be stepped.
    net = network()
    program = _compiled.program(net.layers, padded=True)
    assert program is not None
    x, y = data(2)
    losses = np.empty(2)
    with pytest.raises(RuntimeError, match="optimizer=True"):
        opt = (0, np.zeros(8), np.ones(2), 0, program.params[:0], program.params[:0])
        program.train(program.samples(x), program.samples(y), 0.1, losses, opt)


@pytest.mark.parametrize("batch_size", [1, 32])
@pytest.mark.parametrize("backend", ["scipy", "numba"])
@pytest.mark.parametrize("name", ["adam-decay", "nesterov", "adamw-onecycle"])
def test_softmax_cross_entropy_matches_torch(name, backend, batch_size):
    # Catches an optimizer stepping wrongly behind the fused Softmax + cross-entropy loss (whose
    # backward pass starts at the layer before the Softmax): torch's cross_entropy of the logits
    # with probability targets, mean over the batch.
    torch = pytest.importorskip("torch")
    if backend == "scipy" and numba.config.DISABLE_JIT:
        pytest.skip("the per-layer path runs no kernel; the coverage run skips it")
    opt, schedule = schedule_for(name, batch_size)
    rng = np.random.RandomState(SEED)
    net = fc.Network(
        [
            fc.Convolution((1, 8, 8), 3, 2, rng=rng),
            fc.Activation(fc.sigmoid, fc.d_sigmoid),
            fc.Reshape((2, 6, 6), (72, 1)),
            fc.Linear(72, 4, rng=rng),
            fc.Softmax(),
        ],
        backend=backend,
    )
    conv, dense = net.layers[0], net.layers[3]
    params = [
        torch.tensor(a.reshape(-1) if a is dense.biases else a, requires_grad=True)
        for a in (conv.filters, conv.biases, dense.weights, dense.biases)
    ]
    x, _ = data()
    labels = np.random.RandomState(11).randint(0, 4, len(x))
    y = np.eye(4)[labels].reshape(len(x), 4, 1)
    rate = 0.5 if opt.lr is None else None
    net.train(
        x, y, fc.cross_entropy, fc.d_cross_entropy, EPOCHS, rate, optimizer=opt,
        schedule=schedule, batch_size=batch_size, shuffle=True, rng=SEED, verbose=False,
    )  # fmt: skip
    config = opt.get_config()
    lr = config.pop("lr") or 0.5
    if isinstance(opt, optim.SGD):
        torch_opt = torch.optim.SGD(params, lr=lr, foreach=False, **config)
    else:
        config["betas"] = tuple(config["betas"])
        kind = torch.optim.AdamW if isinstance(opt, optim.AdamW) else torch.optim.Adam
        torch_opt = kind(params, lr=lr, foreach=False, **config)
    scheduler = None
    if schedule is not None:
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            torch_opt, schedule.max_lr, epochs=EPOCHS,
            steps_per_epoch=schedule.steps_per_epoch, cycle_momentum=False,
        )  # fmt: skip
    xs, ys = torch.tensor(x), torch.tensor(y.reshape(len(y), -1))
    order = np.random.RandomState(SEED)
    filters, conv_biases, weights, biases = params
    for _ in range(EPOCHS):
        index = torch.tensor(order.permutation(len(x)))
        ex, ey = xs[index], ys[index]
        for start in range(0, len(x), batch_size):
            bx, by = ex[start : start + batch_size], ey[start : start + batch_size]
            hidden = torch.sigmoid(torch.nn.functional.conv2d(bx, filters) + conv_biases)
            logits = hidden.reshape(len(bx), -1) @ weights.T + biases
            torch_opt.zero_grad()
            torch.nn.functional.cross_entropy(logits, by).backward()
            torch_opt.step()
            if scheduler is not None:
                scheduler.step()
    if backend == "numba":  # the compiled path, with the fused loss, was the one taken
        program = _compiled.program(net.layers, fc.cross_entropy, fc.d_cross_entropy)
        assert program is not None and "__" in program.loops.LOSSES[program.loss]
    ours = [p for layer in net.layers for p in layer.parameters()]
    theirs = [p.detach().numpy().reshape(o.shape) for p, o in zip(params, ours, strict=True)]
    assert_close(ours, theirs, 1e-9)
