"""Checks shared by the layers: every user input passes through here before a kernel sees it."""

import math
import numbers
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

BACKENDS = ("numba", "scipy")
DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
INITS = ("notebook", "xavier", "he")


def check_backend(backend: Any) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    return backend


def check_dtype(dtype: Any) -> np.dtype:
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float64 or float32, got {dtype!r}.") from None
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be float64 or float32, got {dtype.name}.")
    return dtype


def check_init(init: Any) -> str:
    """``"notebook"``, ``"xavier"`` or ``"he"``; the old spelling ``"seed"`` still means ``"notebook"``."""
    if isinstance(init, str) and init == "seed":
        warnings.warn(
            'init="seed" is deprecated; use init="notebook" (the notebook\'s randn weights).',
            DeprecationWarning,
            stacklevel=3,
        )
        return "notebook"
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}.")
    return str(init)


def check_size(name: str, value: Any, minimum: int = 1) -> int:
    """A positive integer argument; ``numbers.Integral`` admits NumPy integers, not bools or floats."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return int(value)


def check_shape(name: str, shape: Any, ndim: int | None = None) -> tuple[int, ...]:
    """A tuple of positive integers, such as ``input_shape=(1, 28, 28)``; ``ndim`` of them if
    given, at least one otherwise."""
    count = "" if ndim is None else f"{ndim} "
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of {count}integers, got {shape!r}.") from None
    if (ndim is None and not dims) or (ndim is not None and len(dims) != ndim):
        raise ValueError(f"{name} must have {ndim or 'at least 1'} dimensions, got {shape!r}.")
    return tuple(check_size(f"{name}[{k}]", d) for k, d in enumerate(dims))


def check_rate(rate: Any) -> float:
    """A finite real step size: not a bool, a string, None, nan or inf."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"rate must be a real number, got {rate!r} of type {type(rate).__name__}.")
    if not math.isfinite(rate):
        raise ValueError(f"rate must be a finite real number, got {rate!r}.")
    return rate  # type: ignore[return-value]  # a numbers.Real, kept as given (np.float32 too)


def check_array(
    layer: Any,
    name: str,
    array: Any,
    shape: tuple,
    dtype: np.dtype,
    writeable: bool = False,
    hint: str = "",
) -> None:
    """An array a kernel will index without bounds checks: exactly ``shape``, ``dtype``,
    C-contiguous (and writeable if the kernel writes it). A user may have reassigned it."""
    if (
        isinstance(array, np.ndarray)
        and array.shape == shape
        and array.dtype == dtype
        and array.flags.c_contiguous
        and (array.flags.writeable or not writeable)
    ):
        return
    got = (
        f"{array.dtype} array of shape {array.shape}"
        + ("" if array.flags.c_contiguous else ", not C-contiguous")
        + ("" if array.flags.writeable or not writeable else ", read-only")
        if isinstance(array, np.ndarray)
        else type(array).__name__
    )
    kind = "a writeable C-contiguous" if writeable else "a C-contiguous"
    raise ValueError(
        f"{name} of layer {layer!r} must be {kind} {dtype} array of shape {shape}, but it is "
        f"a {got}.{hint}"
    )


def as_array(layer: Any, what: str, value: Any, shape: tuple, dtype: Any) -> NDArray:
    """``value`` as a C-contiguous array of ``dtype`` and ``shape``, or an error naming ``layer``.

    The kernels check no bounds, so this is the only guard between user data and memory.
    """
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{what} of layer {layer!r} must be numeric, but received an array of dtype "
            f"{array.dtype}. Convert it with .astype(np.float64)."
        )
    if array.shape != tuple(shape):
        raise ValueError(
            f"{what} of layer {layer!r} is incompatible with the layer: expected shape "
            f"{tuple(shape)}, but received {what.lower()} with shape {array.shape}."
        )
    return np.ascontiguousarray(array, dtype=dtype)


def random_normal(rng: Any) -> Callable[..., NDArray]:
    """A ``randn(*shape)`` drawing from ``rng``: None (NumPy's global state, as the seed), an int
    seed, a ``np.random.RandomState`` or a ``np.random.Generator``.

    ``RandomState(s).randn`` repeats ``np.random.seed(s); np.random.randn`` bit for bit; a
    ``Generator`` draws a different (equally good) sequence.
    """
    if rng is None:
        return np.random.randn
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.RandomState(int(rng)).randn
    if isinstance(rng, np.random.RandomState):
        return rng.randn
    if isinstance(rng, np.random.Generator):
        return lambda *shape: rng.standard_normal(shape)
    raise TypeError(
        f"rng must be None, an int seed, a np.random.RandomState or a np.random.Generator, "
        f"got {rng!r}."
    )


def random_permutation(rng: Any) -> Callable[[int], NDArray]:
    """A ``permutation(n)`` drawing from ``rng``, as :func:`random_normal` takes it: None (NumPy's
    global state, ``np.random.permutation``, so ``np.random.seed`` repeats it), an int seed (a
    ``RandomState`` made once, drawing a new order at every call), a ``RandomState`` or a
    ``Generator`` (either keeps drawing new orders across calls)."""
    if rng is None:
        return np.random.permutation
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.RandomState(int(rng)).permutation
    if isinstance(rng, (np.random.RandomState, np.random.Generator)):
        return rng.permutation
    raise TypeError(
        f"rng must be None, an int seed, a np.random.RandomState or a np.random.Generator, "
        f"got {rng!r}."
    )


def _first_bad(array: NDArray) -> int:
    """Index of the first sample holding a nan or inf."""
    return int(np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))[0])


def check_samples(
    name: str, data: Any, shape: tuple | None, exact: bool = True, finite: bool = True
) -> NDArray:
    """``data`` as an array of samples (N, *shape): numeric, of the network's input shape (only
    its size when ``exact`` is False, as a Reshape accepts), and finite when ``finite``."""
    try:
        array = np.asarray(data)
    except ValueError:
        raise ValueError(
            f"{name} must hold samples of one shape (an array of shape (N, ...)); its samples "
            f"have different shapes."
        ) from None
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must be numeric, but it has dtype {array.dtype}. Convert it with "
            f".astype(np.float64)."
        )
    if array.ndim == 0:
        raise ValueError(f"{name} must be an array of samples (N, ...), got a scalar.")
    if shape is not None:
        fits = (
            array.shape[1:] == tuple(shape)
            if exact
            else math.prod(array.shape[1:]) == math.prod(shape)
        )
        if not fits:
            raise ValueError(
                f"{name} has samples of shape {array.shape[1:]} (array of shape {array.shape}), "
                f"but the network's input has shape {tuple(shape)}; pass an array of shape "
                f"(N, {', '.join(map(str, shape))})."
            )
    if finite and array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(
            f"{name} holds a non-finite value (nan or inf) in sample {_first_bad(array)}; "
            f"training on it would write nan into the weights."
        )
    return array


def check_targets(data: Any, shape: tuple | None) -> NDArray:
    """``data_y`` as an array of targets (N, *shape) of the network's output shape, numeric and
    finite; integer class labels get an error suggesting one-hot targets."""
    array = check_samples("data_y", data, None)
    if shape is not None and array.shape[1:] != tuple(shape):
        size = math.prod(shape)
        if array.dtype.kind in "biu" and array.shape[1:] in ((), (1,)) and size > 1:
            raise ValueError(
                f"data_y looks like integer class labels (shape {array.shape}), but the "
                f"network's output has shape {tuple(shape)}: give one-hot targets, e.g. "
                f"np.eye({size})[labels].reshape(-1, {', '.join(map(str, shape))})."
            )
        raise ValueError(
            f"data_y has targets of shape {array.shape[1:]} (array of shape {array.shape}), "
            f"but the network's output has shape {tuple(shape)}; pass an array of shape "
            f"(N, {', '.join(map(str, shape))})."
        )
    return array
