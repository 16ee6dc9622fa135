"""Checks shared by the layers: every user input passes through here before a kernel sees it."""

import numbers

import numpy as np

BACKENDS = ("numba", "scipy")
DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
INITS = ("seed", "xavier")


def check_backend(backend):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    return backend


def check_dtype(dtype):
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float64 or float32, got {dtype!r}.") from None
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be float64 or float32, got {dtype.name}.")
    return dtype


def check_init(init):
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}.")
    return init


def check_size(name, value, minimum=1):
    """A positive integer argument; ``numbers.Integral`` admits NumPy integers, not bools or floats."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    return int(value)


def check_shape(name, shape, ndim=None):
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


def check_rate(rate):
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real):
        raise TypeError(f"rate must be a real number, got {rate!r} of type {type(rate).__name__}.")
    return rate


def as_array(layer, what, value, shape, dtype):
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


def random_normal(rng):
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
