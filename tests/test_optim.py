"""fastcnn.optim: the flat optimizer kernels and their NumPy twins against ``torch.optim`` (same
flat parameters, same random gradients), each other, and themselves across a state export; the
schedules against torch's schedulers; the errors.

The torch tests skip without torch (``pip install torch==2.13.0``, a CPU build).
"""

import contextlib
import io
import json
import math

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastcnn import optim
from fastcnn.kernels import optim as k_optim

DTYPES = {"float64": np.float64, "float32": np.float32}
# SIZE is odd and above torch's 2 x 16-float AVX-512 block, so that torch's vector loop and its
# scalar tail both take part (they round alike, but that is what a bit-for-bit claim has to show).
# With NUMBA_DISABLE_JIT (the coverage run) every fused multiply-add is exact rational arithmetic
# in Python, so that run takes fewer, shorter steps.
SIZE, STEPS = (37, 8) if numba.config.DISABLE_JIT else (1003, 50)

# Tolerances, relative to the largest |parameter| of the expected side (a step moves every value
# by about lr, so a wrong formula is off by ~lr / |p| >= 1e-4 here). Measured worst cases over
# every CASE, 50 steps of 1003 values (torch 2.13, AVX-512):
# - Kernel vs torch as shipped: torch's CPU sqrt (MKL) is within 1 ulp but not correctly rounded,
#   and plain SGD rounds as the notebook where torch fuses p + (-lr) * g: 4.1e-16 (float64),
#   1.1e-7 (float32), about an ulp of the result, not growing because the gradients do not
#   depend on the parameters.
TORCH = {np.dtype(np.float64): 5e-15, np.dtype(np.float32): 1e-6}
# - NumPy reference vs kernel and vs torch: the reference rounds a * b + c twice where the kernels
#   fuse it and writes lerp in one form: 4.1e-16 (float64), 3e-7 (float32).
REFERENCE = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 2e-6}

CASES = {
    "sgd": optim.SGD(lr=0.1),
    "sgd-decay": optim.SGD(lr=0.1, weight_decay=5e-4),
    "momentum": optim.SGD(lr=0.1, momentum=0.9),
    "momentum-dampening-decay": optim.SGD(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=1e-2),
    "nesterov-decay": optim.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=1e-3),
    "adam": optim.Adam(),
    "adam-decay": optim.Adam(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-2),
    # beta1 <= 0.5 takes torch's other lerp branch, end - (end - start) * (1 - w).
    "adam-small-beta1": optim.Adam(lr=3e-3, betas=(0.3, 0.9), eps=1e-6),
    "adamw": optim.AdamW(),
    "adamw-strong": optim.AdamW(lr=1e-2, betas=(0.95, 0.98), weight_decay=0.1),
}


def problem(dtype, size=SIZE, steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    params = rng.standard_normal(size).astype(dtype)
    grads = [rng.standard_normal(size).astype(dtype) for _ in range(steps)]
    return params, grads


def run_fastcnn(opt, params, grads, reference=False, lr=None):
    p = params.copy()
    state = opt.init([p])
    step = opt.reference_step if reference else opt.step
    for g in grads:
        step([p], [g], state, lr)
    return p, state


def torch_optimizer(opt, tensor):
    torch = pytest.importorskip("torch")
    config = opt.get_config()
    if isinstance(opt, optim.SGD):
        return torch.optim.SGD([tensor], foreach=False, **config)
    config["betas"] = tuple(config["betas"])
    cls = torch.optim.AdamW if isinstance(opt, optim.AdamW) else torch.optim.Adam
    return cls([tensor], foreach=False, **config)


@contextlib.contextmanager
def correctly_rounded_sqrt():
    """torch's ``Tensor.sqrt`` replaced by NumPy's (IEEE, correctly rounded) for a while."""
    torch = pytest.importorskip("torch")
    original = torch.Tensor.sqrt
    torch.Tensor.sqrt = lambda self: torch.from_numpy(np.sqrt(self.detach().numpy()))
    try:
        yield
    finally:
        torch.Tensor.sqrt = original


def run_torch(opt, params, grads, exact_sqrt=False):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    tensor = torch.nn.Parameter(torch.from_numpy(params.copy()))
    topt = torch_optimizer(opt, tensor)
    with correctly_rounded_sqrt() if exact_sqrt else contextlib.nullcontext():
        for g in grads:
            tensor.grad = torch.from_numpy(g.copy())
            topt.step()
    return tensor.detach().numpy().copy()


def relative_error(actual, expected):
    return float(np.max(np.abs(actual.astype(np.float64) - expected)) / np.max(np.abs(expected)))


def ulps_apart(actual, expected):
    kind = np.int64 if actual.dtype == np.float64 else np.int32
    return int(np.max(np.abs(actual.view(kind).astype(np.int64) - expected.view(kind))))


# --------------------------------------------------------------------------------------------------
# against torch


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [c for c in CASES if c != "sgd"])
def test_step_matches_torch_bit_for_bit(case, dtype):
    # Catches any operation of the kernels rounded differently from torch.optim's single-tensor
    # path (a missing FMA, a scalar cast at the wrong place, the other lerp branch, step counted
    # from 0): 50 steps on 1003 values must agree to the last bit, torch's sqrt made correctly
    # rounded (its MKL sqrt is not; the test below bounds that difference).
    opt = CASES[case]
    params, grads = problem(DTYPES[dtype])
    ours, _ = run_fastcnn(opt, params, grads)
    theirs = run_torch(opt, params, grads, exact_sqrt=True)
    assert np.array_equal(ours, theirs), (
        f"{case} {dtype}: {np.count_nonzero(ours != theirs)} of {ours.size} values differ, "
        f"up to {ulps_apart(ours, theirs)} ulp"
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_momentum_kernel_without_momentum_is_torch_plain_sgd(dtype):
    # Catches sgd_momentum_step with momentum 0 not being torch's plain SGD update (one FMA),
    # the kernel SGD with weight decay and no momentum runs.
    params, grads = problem(DTYPES[dtype])
    p = params.copy()
    for g in grads:
        k_optim.sgd_momentum_step(p, g, p[:0], 0.1, 0.0, 0.0, 0.0, False, False)
    assert np.array_equal(p, run_torch(optim.SGD(lr=0.1), params, grads))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_step_and_reference_close_to_torch(case, dtype):
    # Catches a formula that differs from torch.optim as shipped (MKL sqrt and all) by more than
    # rounding, on the kernel path and on the NumPy reference path alike.
    opt = CASES[case]
    params, grads = problem(DTYPES[dtype])
    theirs = run_torch(opt, params, grads)
    ours, _ = run_fastcnn(opt, params, grads)
    reference, _ = run_fastcnn(opt, params, grads, reference=True)
    tol = TORCH[np.dtype(dtype)]
    assert relative_error(ours, theirs) <= tol, f"kernel {case} {dtype}"
    assert relative_error(reference, theirs) <= REFERENCE[np.dtype(dtype)], f"reference {case}"
    assert relative_error(ours, params) > 1e-4, "the parameters did not move"


@given(
    # Small counts too: there beta ** step is not lost in 1 - beta ** step.
    step=st.integers(1, 60) | st.integers(1, 2_000_000),
    beta1=st.floats(0.0, 0.999),
    beta2=st.floats(0.0, 0.9999),
    lr=st.floats(1e-5, 1.0),
    weight_decay=st.sampled_from([0.0, 1e-4]) | st.floats(0.0, 1.0),
    decoupled=st.booleans(),
    size=st.integers(1, 70),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_adam_step_from_any_state_matches_torch(
    step, beta1, beta2, lr, weight_decay, decoupled, size, dtype
):
    # Catches bias corrections computed otherwise than torch's Python floats (beta ** step by
    # repeated squaring, sqrt for ** 0.5 where they differ) and size-dependent bugs: one step
    # from a random mid-run state at any step count, bit for bit.
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    rng = np.random.default_rng(step)
    p, g, m = (rng.standard_normal(size).astype(dtype) for _ in range(3))
    v = np.abs(rng.standard_normal(size)).astype(dtype)
    cls = optim.AdamW if decoupled else optim.Adam
    opt = cls(lr=lr, betas=(beta1, beta2), weight_decay=weight_decay)
    tensor = torch.nn.Parameter(torch.from_numpy(p.copy()))
    topt = torch_optimizer(opt, tensor)
    topt.state[tensor] = {
        "step": torch.tensor(float(step - 1)),
        "exp_avg": torch.from_numpy(m.copy()),
        "exp_avg_sq": torch.from_numpy(v.copy()),
    }
    tensor.grad = torch.from_numpy(g.copy())
    with correctly_rounded_sqrt():
        topt.step()
    ours, m2, v2 = p.copy(), m.copy(), v.copy()
    k_optim.adam_step(ours, g, m2, v2, step, lr, beta1, beta2, 1e-8, weight_decay, decoupled)
    assert np.array_equal(ours, tensor.detach().numpy())
    assert np.array_equal(m2, topt.state[tensor]["exp_avg"].numpy())
    assert np.array_equal(v2, topt.state[tensor]["exp_avg_sq"].numpy())


@given(
    momentum=st.sampled_from([0.0, 0.9]) | st.floats(0.0, 1.5),
    dampening=st.sampled_from([0.0]) | st.floats(0.0, 1.0),
    nesterov=st.booleans(),
    weight_decay=st.sampled_from([0.0, 5e-4]) | st.floats(0.0, 1.0),
    lr=st.floats(1e-5, 1.0),
    first=st.booleans(),
    size=st.integers(1, 70),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_sgd_step_from_any_state_matches_torch(
    momentum, dampening, nesterov, weight_decay, lr, first, size, dtype
):
    # Catches a hyper-parameter cast or combined otherwise than torch does (1 - dampening in
    # float64 then cast, -lr, the first step's clone) for any values: one step from a random
    # momentum buffer (or none yet: the first step), bit for bit.
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    if nesterov and (momentum == 0 or dampening != 0):
        dampening, momentum = 0.0, momentum or 0.5
    opt = optim.SGD(lr, momentum, dampening, nesterov, weight_decay)
    rng = np.random.default_rng(size)
    p, g, buf = (rng.standard_normal(size).astype(dtype) for _ in range(3))
    tensor = torch.nn.Parameter(torch.from_numpy(p.copy()))
    topt = torch_optimizer(opt, tensor)
    if not first and momentum != 0:
        topt.state[tensor] = {"momentum_buffer": torch.from_numpy(buf.copy())}
    tensor.grad = torch.from_numpy(g.copy())
    topt.step()
    ours, our_buf = p.copy(), buf.copy()
    k_optim.sgd_momentum_step(
        ours, g, our_buf, lr, momentum, dampening, weight_decay, nesterov, first or momentum == 0
    )
    assert np.array_equal(ours, tensor.detach().numpy())
    if momentum != 0:
        assert np.array_equal(our_buf, topt.state[tensor]["momentum_buffer"].numpy())


@pytest.mark.parametrize("beta", [0.9, 0.99, 0.999, 0.9999, 0.5])
def test_adam_scalars_are_torchs_python_floats(beta):
    # Catches the bias corrections rounded otherwise than torch's Python expressions: beta **
    # step as repeated squaring (int exponent), ``** 0.5`` compiled as sqrt (differ for ~0.1 %
    # of values). Over the first 20,000 steps, bit for bit.
    for step in range(1, 20_001):
        step_size, root = k_optim.adam_scalars(step, 1e-3, beta, beta)
        assert step_size == 1e-3 / (1 - beta ** float(step)), step
        assert root == (1 - beta ** float(step)) ** 0.5, step


# --------------------------------------------------------------------------------------------------
# kernel vs reference, without torch


@pytest.mark.parametrize("dtype", DTYPES)
def test_plain_sgd_is_the_notebook_update(dtype):
    # Catches plain SGD rounded as an FMA (torch's way) instead of the notebook's p - g * lr, on
    # either path: both must equal the notebook's expression bit for bit.
    params, grads = problem(DTYPES[dtype])
    expected = params.copy()
    for g in grads:
        expected = expected - g * 0.1
    for reference in (False, True):
        ours, state = run_fastcnn(optim.SGD(), params, grads, reference=reference, lr=0.1)
        assert np.array_equal(ours, expected), f"reference={reference}"
        assert state.step == STEPS and state.buffers == {}


@given(
    case=st.sampled_from(sorted(CASES)),
    size=st.integers(1, 300),
    steps=st.integers(1, 12),
    lr=st.floats(1e-4, 0.5),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float64, np.float32]),
)
def test_kernel_matches_reference(case, size, steps, lr, seed, dtype):
    # Catches the kernels and the NumPy oracle drifting apart over sizes, step counts and rates
    # (an index bug, a state buffer not written back, the step count off by one).
    opt = CASES[case]
    params, grads = problem(dtype, size, steps, seed)
    ours, state = run_fastcnn(opt, params, grads, lr=lr)
    reference, ref_state = run_fastcnn(opt, params, grads, reference=True, lr=lr)
    tol = REFERENCE[np.dtype(dtype)]
    assert relative_error(ours, reference) <= tol
    for name, buf in state.buffers.items():
        other = ref_state.buffers[name]
        scale = max(float(np.max(np.abs(other))), 1e-30)
        assert float(np.max(np.abs(buf - other))) <= tol * scale * 10, name


@pytest.mark.parametrize("case", CASES)
def test_list_of_arrays_equals_one_flat_buffer(case):
    # Catches the per-layer path (a list of weight and bias arrays, any shape) and the compiled
    # path (one flat buffer) disagreeing, or a state laid out otherwise than the arrays in order:
    # the same steps give the same bits and the same exported state.
    opt = CASES[case]
    rng = np.random.default_rng(3)
    weights, biases = rng.standard_normal((6, 5)), rng.standard_normal((6, 1))
    flat = np.concatenate([weights.ravel(), biases.ravel()])
    split_state, flat_state = opt.init([weights, biases]), opt.init(flat)
    for _ in range(7):
        gw, gb = rng.standard_normal((6, 5)), rng.standard_normal((6, 1))
        opt.step([weights, biases], [gw, gb], split_state, 0.1)
        opt.step(flat, np.concatenate([gw.ravel(), gb.ravel()]), flat_state, 0.1)
    assert np.array_equal(np.concatenate([weights.ravel(), biases.ravel()]), flat)
    split, whole = opt.state_dict(split_state), opt.state_dict(flat_state)
    assert split["sizes"] == [30, 6] and whole["sizes"] == [36]
    for name in split["arrays"]:
        assert np.array_equal(split["arrays"][name], whole["arrays"][name]), name


def test_fma_fallback_matches_compiled_fma():
    # Catches the Python fma (used when NUMBA_DISABLE_JIT=1) rounding otherwise than LLVM's fma,
    # including float32 results that a float64 intermediate would round twice.
    compiled = numba.njit(lambda a, b, c: k_optim.fma(a, b, c))
    rng = np.random.default_rng(5)
    for kind in (np.float64, np.float32):
        values = rng.standard_normal((2000, 3)).astype(kind)
        for a, b, c in values:
            assert k_optim.fma(a, b, c) == compiled(a, b, c), (a, b, c)
            assert type(k_optim.fma(a, b, c)) is kind
    # (1 + 2**-12)**2 - 1 = 2**-11 + 2**-24 exactly: float32 keeps 2**-11 + 2**-24 only if rounded
    # once; a * b alone would lose the 2**-24.
    a = np.float32(1 + 2**-12)
    assert k_optim.fma(a, a, np.float32(-1)) == np.float32(2**-11 + 2**-24)
    assert k_optim.fma(a, a, np.float32(-1)) == compiled(a, a, np.float32(-1))
    # A float32 case that a float64 intermediate rounds twice (found by search): the float64 sum
    # lands on a float32 tie and goes to even; rounded once, it goes up.
    x, y, z = (
        np.float32(float.fromhex(h)) for h in ("0x1.5b59b8p-12", "0x1.795916p-13", "0x1.00079p+0")
    )
    assert np.float32(float(x) * float(y) + float(z)) == np.float32(float.fromhex("0x1.00079p+0"))
    assert compiled(x, y, z) == np.float32(float.fromhex("0x1.000792p+0"))
    assert k_optim.fma(x, y, z) == compiled(x, y, z)
    assert math.isnan(k_optim.fma(np.float64(np.nan), np.float64(1), np.float64(1)))
    assert k_optim.fma(np.float64(np.inf), np.float64(1), np.float64(1)) == np.inf


# --------------------------------------------------------------------------------------------------
# state export and resume


def checkpoint(opt, state):
    """What a model file would hold: JSON text and an npz of arrays, read back without pickle."""
    saved = opt.state_dict(state)
    arrays = saved.pop("arrays")
    text = json.dumps({"optimizer": optim.serialize(opt), "state": saved})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as npz:
        loaded = {name: npz[name] for name in npz.files}
    meta = json.loads(text)
    return meta, loaded


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_export_and_import_mid_run_continues_bit_for_bit(case, dtype):
    # Catches a state that does not survive a checkpoint (a buffer not saved, the step count lost,
    # SGD's first-step clone taken again, a dtype changed on the way): 25 steps, save, rebuild
    # the optimizer from its config, load, 25 more steps = 50 uninterrupted steps, bit for bit.
    opt = CASES[case]
    params, grads = problem(DTYPES[dtype])
    expected, expected_state = run_fastcnn(opt, params, grads)
    p = params.copy()
    state = opt.init([p])
    for g in grads[: STEPS // 2]:
        opt.step([p], [g], state, 0.1 if opt.lr is None else None)
    meta, arrays = checkpoint(opt, state)
    resumed = optim.deserialize(meta["optimizer"])
    assert resumed == opt and repr(resumed) == repr(opt)
    state2 = resumed.load_state_dict({**meta["state"], "arrays": arrays}, [p])
    for g in grads[STEPS // 2 :]:
        resumed.step([p], [g], state2, 0.1 if opt.lr is None else None)
    assert np.array_equal(p, expected)
    assert state2.step == expected_state.step == STEPS
    for name in expected_state.buffers:
        assert np.array_equal(state2.buffers[name], expected_state.buffers[name]), name


def test_loaded_state_is_a_copy():
    # Catches load_state_dict aliasing the caller's arrays (a later step would then rewrite the
    # checkpoint's arrays in memory).
    opt = optim.Adam()
    p = np.ones(4)
    saved = opt.state_dict(opt.init(p))
    state = opt.load_state_dict(saved, p)
    opt.step(p, np.ones(4), state)
    assert not saved["arrays"]["exp_avg"].any()


def _saved(opt=None, **changes):
    opt = opt or optim.Adam()
    saved = opt.state_dict(opt.init([np.zeros(3), np.zeros(2)]))
    saved.update(changes)
    return saved


@pytest.mark.parametrize(
    ("opt", "saved", "error", "message"),
    [
        (optim.SGD(momentum=0.9), _saved(), ValueError, "is of a Adam optimizer, this one is SGD"),
        (optim.Adam(lr=0.1), _saved(), ValueError, "lr=0.001 saved, 0.1 here"),
        (
            optim.Adam(),
            _saved(dtype="float32"),
            ValueError,
            "is float32, the parameters are float64",
        ),
        (optim.Adam(), _saved(sizes=[5]), ValueError, "sizes [5], these have sizes [3, 2]"),
        (optim.Adam(), _saved(step=-1), ValueError, "step must be a non-negative integer"),
        (optim.Adam(), _saved(step=2.0), ValueError, "step must be a non-negative integer"),
        (
            optim.Adam(),
            _saved(arrays={"exp_avg": np.zeros(5)}),
            ValueError,
            "holds arrays ['exp_avg']",
        ),
        (
            optim.Adam(),
            _saved(arrays={"exp_avg": np.zeros(5), "exp_avg_sq": np.zeros(4)}),
            ValueError,
            "'exp_avg_sq' has shape (4,), expected (5,)",
        ),
        (
            optim.Adam(),
            _saved(arrays={"exp_avg": np.zeros(5, np.float32), "exp_avg_sq": np.zeros(5)}),
            ValueError,
            "'exp_avg' is float32, expected float64",
        ),
        (
            optim.Adam(),
            _saved(arrays={"exp_avg": [0.0] * 5, "exp_avg_sq": np.zeros(5)}),
            TypeError,
            "'exp_avg' must be a NumPy array, got list",
        ),
        (optim.Adam(), {"step": 1}, ValueError, "the saved state lacks ['optimizer', 'config'"),
        (optim.Adam(), [1, 2], TypeError, "expected a dict from state_dict(), got list"),
    ],
)
def test_load_state_dict_errors(opt, saved, error, message):
    # Catches a checkpoint of the wrong kind, hyper-parameters, dtype or shape being loaded
    # silently (or failing with a KeyError or a broadcast error instead of one clear line).
    with pytest.raises(error) as info:
        opt.load_state_dict(saved, [np.zeros(3), np.zeros(2)])
    assert message in str(info.value)


# --------------------------------------------------------------------------------------------------
# argument errors


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: optim.SGD(lr=-0.1), ValueError, "SGD: Invalid learning rate: -0.1"),
        (lambda: optim.SGD(momentum=-1), ValueError, "SGD: Invalid momentum value: -1"),
        (lambda: optim.SGD(weight_decay=-1), ValueError, "SGD: Invalid weight_decay value: -1"),
        (lambda: optim.SGD(nesterov=True), ValueError, "Nesterov momentum requires a momentum"),
        (
            lambda: optim.SGD(momentum=0.9, dampening=0.1, nesterov=True),
            ValueError,
            "and zero dampening; got momentum=0.9, dampening=0.1",
        ),
        (lambda: optim.SGD(nesterov=1), TypeError, "nesterov must be True or False, got 1"),
        (lambda: optim.SGD(lr="0.1"), TypeError, "SGD: lr must be a real number, got '0.1'"),
        (lambda: optim.SGD(lr=math.nan), ValueError, "SGD: lr must be a finite number, got nan"),
        (lambda: optim.Adam(lr=-1), ValueError, "Adam: Invalid learning rate: -1"),
        (lambda: optim.Adam(eps=-1e-8), ValueError, "Adam: Invalid epsilon value: -1e-08"),
        (
            lambda: optim.Adam(betas=(1.0, 0.9)),
            ValueError,
            "Invalid beta parameter at index 0: 1.0",
        ),
        (
            lambda: optim.Adam(betas=(0.9, -0.1)),
            ValueError,
            "Invalid beta parameter at index 1: -0.1",
        ),
        (lambda: optim.Adam(betas=0.9), TypeError, "betas must be a pair of numbers"),
        (lambda: optim.AdamW(weight_decay=-1), ValueError, "AdamW: Invalid weight_decay value: -1"),
        (lambda: optim.StepLR(0), ValueError, "StepLR: step_size must be at least 1, got 0"),
        (lambda: optim.StepLR(2.5), TypeError, "StepLR: step_size must be an integer, got 2.5"),
        (lambda: optim.CosineAnnealingLR(0), ValueError, "T_max must be at least 1, got 0"),
        (lambda: optim.OneCycleLR(0.1), ValueError, "You must define either total_steps OR"),
        (
            lambda: optim.OneCycleLR(0.1, total_steps=0),
            ValueError,
            "total_steps must be at least 1",
        ),
        (
            lambda: optim.OneCycleLR(0.1, 10, pct_start=1.5),
            ValueError,
            "Expected float between 0 and 1 pct_start, but got 1.5",
        ),
        (
            lambda: optim.OneCycleLR(0.1, 10, anneal_strategy="cosine"),
            ValueError,
            "anneal_strategy must be one of 'cos' or 'linear', instead got 'cosine'",
        ),
        (
            lambda: optim.OneCycleLR(0.1, 10, cycle_momentum=True),
            ValueError,
            "cycle_momentum=True is not supported",
        ),
        (lambda: optim.OneCycleLR(0.1, 10, div_factor=0), ValueError, "div_factor must be > 0"),
    ],
)
def test_bad_arguments(make, error, message):
    # Catches a bad hyper-parameter accepted (training would then diverge or crash in a kernel)
    # or refused without saying which value and why.
    with pytest.raises(error) as info:
        make()
    assert message in str(info.value)


def test_step_errors():
    # Catches step() writing through a mismatched, strided or read-only array, or running
    # without a learning rate, instead of one clear error naming the array.
    opt = optim.SGD(momentum=0.9)
    p = np.zeros(4)
    state = opt.init([p])
    cases = [
        (lambda: opt.step([p], [np.zeros(4)], state), ValueError, "SGD has no learning rate"),
        (lambda: opt.step([p], [np.zeros(5)], state, 0.1), ValueError, "grads[0] has 5 values"),
        (lambda: opt.step([p, p], [p, p], state, 0.1), ValueError, "params has 2 arrays"),
        (
            lambda: opt.step([p.astype(np.float32)], [p], state, 0.1),
            TypeError,
            "params[0] is float32",
        ),
        (lambda: opt.step([np.zeros(8)[::2]], [p], state, 0.1), ValueError, "must be C-contiguous"),
        (lambda: opt.step([p], [p], state, -1.0), ValueError, "Invalid learning rate: -1.0"),
        (lambda: opt.step(p.tolist(), [p], state, 0.1), TypeError, "params[0] must be a NumPy"),
        (lambda: opt.init([p, p.astype(np.float32)]), TypeError, "mix dtypes"),
        (
            lambda: opt.init([p], np.float32),
            TypeError,
            "dtype=float32 given, but the arrays are float64",
        ),
        (
            lambda: opt.init([np.zeros(3, np.int64)]),
            TypeError,
            "must be float64 or float32, got int64",
        ),
        (
            lambda: opt.step([p], [p], optim.Adam().init([p]), 0.1),
            ValueError,
            "holds buffers ['exp_avg', 'exp_avg_sq'], this optimizer keeps ['momentum_buffer']",
        ),
        (lambda: opt.step([p], [p], {}, 0.1), TypeError, "state must be the OptimizerState"),
    ]
    read_only = np.zeros(4)
    read_only.flags.writeable = False
    cases.append((lambda: opt.step([read_only], [p], state, 0.1), ValueError, "is read-only"))
    for make, error, message in cases:
        with pytest.raises(error) as info:
            make()
        assert message in str(info.value)
    assert state.step == 0 and not p.any()


def test_init_from_shapes():
    # Catches init() from shapes (what a compiled program knows before its buffer exists) making
    # buffers of another size or dtype than init() from the arrays.
    opt = optim.Adam()
    state = opt.init([(6, 5), (6, 1), 7], np.float32)
    assert state.sizes == (30, 6, 7) and state.dtype == np.float32
    assert {k: v.shape for k, v in state.buffers.items()} == {"exp_avg": (43,), "exp_avg_sq": (43,)}
    assert [v.shape for v in state.views("exp_avg")] == [(30,), (6,), (7,)]
    assert optim.SGD(momentum=0.5).init([3]).buffers["momentum_buffer"].dtype == np.float64


# --------------------------------------------------------------------------------------------------
# config, repr


@pytest.mark.parametrize(
    ("obj", "text"),
    [
        (optim.SGD(), "SGD()"),
        (
            optim.SGD(lr=0.1, momentum=0.9, nesterov=True),
            "SGD(lr=0.1, momentum=0.9, nesterov=True)",
        ),
        (optim.Adam(), "Adam()"),
        (
            optim.Adam(betas=(0.8, 0.99), weight_decay=0.01),
            "Adam(betas=(0.8, 0.99), weight_decay=0.01)",
        ),
        (optim.AdamW(), "AdamW()"),
        (optim.AdamW(weight_decay=0.0), "AdamW(weight_decay=0.0)"),
        (optim.StepLR(30), "StepLR(30)"),
        (optim.StepLR(30, gamma=0.5), "StepLR(30, gamma=0.5)"),
        (optim.CosineAnnealingLR(10, eta_min=1e-5), "CosineAnnealingLR(10, eta_min=1e-05)"),
        (
            optim.OneCycleLR(0.01, epochs=5, steps_per_epoch=100, three_phase=True),
            "OneCycleLR(0.01, epochs=5, steps_per_epoch=100, three_phase=True)",
        ),
    ],
)
def test_repr_and_config_round_trip(obj, text):
    # Catches a repr that does not read like the constructor call, or a config that is not JSON
    # or does not rebuild an equal object.
    assert repr(obj) == text
    assert eval(text, vars(optim)) == obj
    data = json.loads(json.dumps(optim.serialize(obj)))
    again = optim.deserialize(data)
    assert again == obj and type(again).from_config(obj.get_config()) == obj


def test_deserialize_errors():
    # Catches an unknown class or a bad config in a model file surfacing as a KeyError or a
    # TypeError traceback instead of one line.
    with pytest.raises(ValueError, match="unknown class_name 'RMSprop'"):
        optim.deserialize({"class_name": "RMSprop", "config": {}})
    with pytest.raises(ValueError, match=r"bad config for Adam: .*unexpected keyword"):
        optim.deserialize({"class_name": "Adam", "config": {"momentum": 0.9}})
    with pytest.raises(ValueError, match="expected"):
        optim.deserialize({"config": {}})
    with pytest.raises(TypeError, match=r"expected a fastcnn\.optim optimizer or schedule"):
        optim.serialize(object())  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# schedules


def torch_rates(make_scheduler, base_lr, count):
    """The lr torch's optimizer holds before each of ``count`` scheduler steps."""
    torch = pytest.importorskip("torch")
    tensor = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([tensor], lr=base_lr)
    scheduler = make_scheduler(torch.optim.lr_scheduler, opt)
    rates = []
    for _ in range(count):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradient: nothing moves, but torch sees the documented call order
        scheduler.step()
    return rates


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (optim.StepLR(7), lambda s, o: s.StepLR(o, 7)),
        (optim.StepLR(3, gamma=0.7), lambda s, o: s.StepLR(o, 3, gamma=0.7)),
        (optim.CosineAnnealingLR(50), lambda s, o: s.CosineAnnealingLR(o, 50)),
        # Past T_max the rate comes back up; 80 epochs cover both restart branches.
        (optim.CosineAnnealingLR(9, 1e-4), lambda s, o: s.CosineAnnealingLR(o, 9, 1e-4)),
    ],
    ids=["step", "step-gamma", "cosine", "cosine-restarts"],
)
def test_epoch_schedules_match_torch(ours, theirs):
    # Catches a closed form used where torch's step() is recursive (cosine: differs in the last
    # bits), or an epoch off by one: 80 epochs, bit for bit.
    base = 0.1
    expected = torch_rates(theirs, base, 80)
    got = [ours.lr_at(base, epoch) for epoch in range(80)]
    assert got == expected, [
        k for k, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b
    ]
    assert not ours.per_step
    if isinstance(ours, optim.CosineAnnealingLR):
        t, eta = ours.T_max, ours.eta_min
        closed = [eta + (base - eta) * (1 + math.cos(math.pi * e / t)) / 2 for e in range(80)]
        assert got != closed  # why the recursion is kept: the closed form is not torch's


@pytest.mark.parametrize(
    "config",
    [
        {"epochs": 4, "steps_per_epoch": 25},
        {"total_steps": 100, "anneal_strategy": "linear", "pct_start": 0.25},
        {"total_steps": 97, "three_phase": True, "div_factor": 10.0, "final_div_factor": 100.0},
        {"epochs": 3, "steps_per_epoch": 7, "three_phase": True, "anneal_strategy": "linear"},
        {"total_steps": 5, "pct_start": 0.0},
        {"total_steps": 1},
    ],
)
def test_one_cycle_matches_torch(config):
    # Catches a phase boundary or an annealing formula off torch's OneCycleLR at any step.
    ours = optim.OneCycleLR(0.05, **config)
    total = ours.total_steps
    expected = torch_rates(
        lambda s, o: s.OneCycleLR(o, 0.05, cycle_momentum=False, **config), 0.05, total
    )
    spe = config.get("steps_per_epoch", total)
    got = [ours.lr_at(123.0, k // spe, k % spe, spe) for k in range(total)]
    assert got == expected
    assert ours.per_step
    with pytest.raises(ValueError, match=f"Tried to step {total + 1} times"):
        ours.lr_at(0.1, total // spe, total % spe, spe)


# torch 2.13's rates at a few positions (float.hex), so that the schedules are checked where torch
# is not installed too: phase ends, restarts, the last step.
TORCH_RATES = [
    (
        "StepLR(3, gamma=0.7)",
        0.1,
        {
            0: "0x1.999999999999ap-4",
            2: "0x1.999999999999ap-4",
            3: "0x1.1eb851eb851ebp-4",
            9: "0x1.18fc504816f00p-5",
            39: "0x1.fbfa3a7bb24dfp-11",
        },
    ),
    (
        "CosineAnnealingLR(9, eta_min=0.0001)",
        0.1,
        {
            0: "0x1.999999999999ap-4",
            4: "0x1.e1109496a04ebp-5",
            9: "0x1.a36e2eb1c432dp-14",
            10: "0x1.97f141c7beddfp-9",
            17: "0x1.8d42eb170813dp-4",
            31: "0x1.52f455b3ebc82p-5",
        },
    ),
    (
        "OneCycleLR(0.05, 97, three_phase=True, div_factor=10.0, final_div_factor=100.0)",
        0.05,
        {
            0: "0x1.47ae147ae1478p-8",
            28: "0x1.9996a6ac47677p-5",
            29: "0x1.98aaef72b9468p-5",
            30: "0x1.95750556dcfc8p-5",
            57: "0x1.475b513e3bd5dp-8",
            58: "0x1.460ba8d2cf661p-8",
            96: "0x1.a36e2eb1c432dp-15",
        },
    ),
    (
        "OneCycleLR(0.05, 100, pct_start=0.25, anneal_strategy='linear')",
        0.05,
        {
            0: "0x1.0624dd2f1a9fcp-9",
            24: "0x1.999999999999ap-5",
            25: "0x1.942381171f5f0p-5",
            60: "0x1.a9fc4e80d2b48p-6",
            99: "0x1.ad7f29abc0000p-23",
        },
    ),
]


@pytest.mark.parametrize(("text", "base", "rates"), TORCH_RATES, ids=lambda v: str(v)[:24])
def test_schedules_match_recorded_torch_rates(text, base, rates):
    # Catches a schedule that drifts from torch's values where torch is not installed (CI).
    schedule = eval(text, vars(optim))
    for position, value in rates.items():
        got = (
            schedule.lr_at(base, position)
            if not schedule.per_step
            else schedule.lr_at(base, 0, position, schedule.total_steps)
        )
        assert got == float.fromhex(value), (text, position, got.hex(), value)


def test_schedule_position_errors():
    # Catches a position outside the schedule accepted silently.
    with pytest.raises(ValueError, match="step_in_epoch must be below steps_per_epoch=4, got 4"):
        optim.OneCycleLR(0.1, 40).lr_at(0.1, 0, 4, 4)
    with pytest.raises(ValueError, match="made for steps_per_epoch=10"):
        optim.OneCycleLR(0.1, epochs=2, steps_per_epoch=10).lr_at(0.1, 0, 0, 5)
    with pytest.raises(ValueError, match="epoch must be at least 0, got -1"):
        optim.StepLR(2).lr_at(0.1, -1)
