"""The seed's activation and loss functions, unchanged: they are also the reference path."""

from typing import Any

import numpy as np


def sigmoid(x):
    """Logistic function ``1 / (1 + exp(-x))``, elementwise."""
    return 1 / (1 + np.exp(-x))


def d_sigmoid(x):
    """Derivative of :func:`sigmoid`, ``s * (1 - s)`` with ``s = sigmoid(x)``."""
    s = sigmoid(x)
    return s * (1 - s)


def mse(predicted, actual):
    """Mean squared error ``mean((actual - predicted) ** 2)``."""
    return np.mean(np.power(actual - predicted, 2))


def d_mse(predicted, actual):
    """Gradient of :func:`mse` with respect to ``predicted``: ``2 (predicted - actual) / size``."""
    return 2 * (predicted - actual) / np.size(actual)


# --------------------------------------------------------------------------------------------------
# Beyond the notebook (issue 17): the activations and losses every course adds next, as function
# pairs in the seed's style, each equal to PyTorch's forward and autograd backward (tests check both
# against torch in float64). Everything here is plain NumPy: it is also the reference path.

# PyTorch's default `negative_slope` of `nn.LeakyReLU` / `F.leaky_relu`.
LEAKY_RELU_SLOPE = 0.01

# How far from 1 the sum of a cross-entropy target may be: float32 label smoothing over 10 classes
# sums to within ~1e-6 of 1; a target that is not a distribution (a class index, logits, a count)
# misses by far more.
TARGET_SUM_TOLERANCE = 1e-5

# PyTorch's BCELoss clamps each log at -100 (so p = 0 or 1 give a finite loss), and its backward
# divides by max(p (1 - p), EPSILON) with EPSILON 1e-12 held as a float32, 9.99999996e-13, in
# float64 too (torch 2.13's gradient at p = 0 is exactly (0 - y) / that value: measured).
BCE_LOG_FLOOR = -100.0
BCE_EPSILON = float(np.float32(1e-12))


def relu(x):
    """Rectified linear unit ``max(x, 0)``, elementwise (``np.maximum(x, 0)``; NaN stays NaN)."""
    return np.maximum(x, 0)


def d_relu(x):
    """Derivative of :func:`relu`: 1 where ``x > 0``, else 0 (0 at ``x = 0``, as PyTorch's autograd
    gives), in ``x``'s dtype."""
    x = np.asarray(x)
    return np.where(x > 0, x.dtype.type(1), x.dtype.type(0))


def tanh(x):
    """Hyperbolic tangent ``np.tanh(x)``, elementwise."""
    return np.tanh(x)


def d_tanh(x):
    """Derivative of :func:`tanh`: ``1 - tanh(x) ** 2``."""
    return 1 - np.tanh(x) ** 2


def leaky_relu(x):
    """Leaky ReLU ``x if x > 0 else 0.01 * x``, elementwise (PyTorch's default slope, 0.01, rounded
    to ``x``'s dtype before the product, as PyTorch does)."""
    x = np.asarray(x)
    return np.where(x > 0, x, x * x.dtype.type(LEAKY_RELU_SLOPE))


def d_leaky_relu(x):
    """Derivative of :func:`leaky_relu`: 1 where ``x > 0``, else 0.01 (0.01 at ``x = 0``, as
    PyTorch's autograd gives), in ``x``'s dtype."""
    x = np.asarray(x)
    return np.where(x > 0, x.dtype.type(1), x.dtype.type(LEAKY_RELU_SLOPE))


class _Carrier(np.ndarray):
    """An ndarray that carries facts about how it was made. Arithmetic on it, and any view of it,
    gives a plain ndarray (or one whose facts are None): the facts describe this array only, and a
    stale one (say the log-softmax of values since scaled) would give a wrong number silently."""

    _facts: tuple[str, ...] = ()

    def __array_finalize__(self, obj):
        # A view, slice or copy: no longer the array the facts were computed for.
        for name in self._facts:
            setattr(self, name, None)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        inputs = tuple(np.asarray(a) if isinstance(a, _Carrier) else a for a in inputs)
        if out is not None:
            kwargs["out"] = tuple(np.asarray(a) if isinstance(a, _Carrier) else a for a in out)
        return getattr(ufunc, method)(*inputs, **kwargs)

    # Copied (a layer copied by copy.deepcopy) or pickled, it becomes a plain array: the copy is
    # no longer the output of the layer that made it.
    def __reduce__(self):
        return np.asarray(self).copy().__reduce__()

    def __reduce_ex__(self, protocol):
        return np.asarray(self).copy().__reduce_ex__(protocol)

    def __copy__(self):
        return np.asarray(self).copy()

    def __deepcopy__(self, memo):
        return np.asarray(self).copy()


class SoftmaxOutput(_Carrier):
    """The forward output of a Softmax layer: the probabilities ``s`` (n, 1), carrying
    ``log_softmax``, the same values' logarithm computed stably from the logits
    (``(x - max(x)) - log(sum(exp(x - max(x))))``).

    Why: ``np.log(s)`` of a probability that underflowed to 0 is ``-inf`` (logits ±1000 give
    ``exp(-2000) = 0``), and ``0 * -inf`` is NaN. :func:`cross_entropy` uses ``log_softmax`` when its
    ``predicted`` carries it, so the per-layer path computes the same finite log-sum-exp loss as the
    compiled loops' fused kernel. Arithmetic on it gives plain arrays (see :class:`_Carrier`).
    """

    _facts = ("log_softmax",)
    log_softmax: Any

    def __new__(cls, probabilities, log_softmax):
        self = np.asarray(probabilities).view(cls)
        self.log_softmax = np.asarray(log_softmax)
        return self


class CrossEntropyGradient(_Carrier):
    """What :func:`d_cross_entropy` returns: the gradient ``-actual / predicted`` with respect to
    the probabilities (0 where ``actual`` is 0), carrying ``actual`` and ``probabilities`` (the
    ``predicted`` it came from).

    Why: a Softmax layer's backward pass that receives this gradient for its own output returns
    ``probabilities - actual`` exactly (see ``fastcnn.reference.softmax_layer_backward``), the
    gradient of the fused log-sum-exp loss, instead of the Jacobian product of ``-actual / s``,
    which rounds differently and is ``inf * 0`` (NaN) when a probability underflowed to 0.
    Any other layer sees an ordinary array of those values.
    """

    _facts = ("actual", "probabilities")
    actual: Any
    probabilities: Any

    def __new__(cls, values, actual, probabilities):
        self = np.asarray(values).view(cls)
        self.actual = actual
        self.probabilities = probabilities
        return self


def _check_distribution(predicted, actual, function):
    """``predicted`` and ``actual`` as arrays, after checking that they have one shape and that
    ``actual`` is a probability distribution (non-negative, summing to 1); one ValueError saying
    what was received otherwise."""
    predicted_array, actual = np.asarray(predicted), np.asarray(actual)
    if predicted_array.shape != actual.shape:
        raise ValueError(
            f"{function}: predicted has shape {predicted_array.shape} but actual has shape "
            f"{actual.shape}; they must match (one probability per class)"
        )
    if not np.all(np.isfinite(actual)):
        raise ValueError(
            f"{function}: actual (shape {actual.shape}) must be a probability distribution, but it "
            f"has non-finite entries (NaN or inf); pass one-hot or soft targets"
        )
    if actual.size and not np.all(actual >= 0):
        raise ValueError(
            f"{function}: actual (shape {actual.shape}) must be a probability distribution, but it "
            f"has negative entries (smallest {float(np.min(actual))!r}); pass one-hot or soft "
            f"targets"
        )
    total = float(np.sum(actual, dtype=np.float64))
    if not abs(total - 1.0) <= TARGET_SUM_TOLERANCE:
        raise ValueError(
            f"{function}: actual (shape {actual.shape}) must be a probability distribution summing "
            f"to 1 (within {TARGET_SUM_TOLERANCE:g}), but it sums to {total!r}; pass one-hot or "
            f"soft targets"
        )
    return actual


def cross_entropy(predicted, actual):
    """Cross-entropy of one sample, ``-sum(actual * log(predicted))``.

    predicted : ndarray of shape (n, 1), the probabilities (a Softmax layer's output)
    actual : ndarray of shape (n, 1), a probability distribution (one-hot or soft targets)

    PyTorch's ``CrossEntropyLoss`` of the logits before the Softmax, with probability targets.
    When ``predicted`` is a :class:`SoftmaxOutput` its stable ``log_softmax`` is used instead of
    ``np.log(predicted)``, so logits of ±1000 give the finite log-sum-exp value, not NaN. Terms
    whose target is 0 count 0 (``0 * log(0)`` is taken as 0, the limit). Raises ValueError when
    ``actual`` has another shape or is not a distribution (a negative entry, or a sum not within
    :data:`TARGET_SUM_TOLERANCE` of 1).
    """
    actual = _check_distribution(predicted, actual, "cross_entropy")
    log = getattr(predicted, "log_softmax", None)
    if log is None or log.shape != actual.shape:
        predicted = np.asarray(predicted)
        log = np.zeros(np.broadcast(predicted, actual).shape, predicted.dtype)
        np.log(predicted, out=log, where=actual != 0)
    return -np.sum(actual * log)


def d_cross_entropy(predicted, actual):
    """Gradient of :func:`cross_entropy` with respect to ``predicted``: ``-actual / predicted``,
    0 where ``actual`` is 0, as a :class:`CrossEntropyGradient` carrying ``actual`` and
    ``predicted``.

    A Softmax layer whose output was ``predicted`` turns it into ``predicted - actual`` exactly.
    A probability that underflowed to 0 under a non-zero target gives ``-inf`` here (the true
    value; no warning), which that Softmax layer never multiplies. Raises as :func:`cross_entropy`.
    """
    actual = _check_distribution(predicted, actual, "d_cross_entropy")
    probabilities = np.asarray(predicted)
    values = np.zeros(np.broadcast(probabilities, actual).shape, probabilities.dtype)
    with np.errstate(divide="ignore"):
        np.divide(-actual, probabilities, out=values, where=actual != 0)
    return CrossEntropyGradient(values, actual, predicted)


def binary_cross_entropy(predicted, actual):
    """Binary cross-entropy, the mean over outputs of
    ``-(actual * log(predicted) + (1 - actual) * log(1 - predicted))``: PyTorch's ``BCELoss``,
    including its clamp of each log at -100 (so a probability of exactly 0 or 1 gives a finite
    loss). ``log(1 - p)`` is taken as ``np.log1p(-p)``, as PyTorch does, which keeps small ``p``
    exact."""
    predicted = np.asarray(predicted)
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(predicted), BCE_LOG_FLOOR)
        log_1mp = np.maximum(np.log1p(-predicted), BCE_LOG_FLOOR)
    return np.mean((actual - 1) * log_1mp - actual * log_p)


def d_binary_cross_entropy(predicted, actual):
    """Gradient of :func:`binary_cross_entropy` with respect to ``predicted``, as PyTorch's BCELoss
    backward computes it: ``(predicted - actual) / max((1 - predicted) * predicted, BCE_EPSILON) / size``
    (equal to ``((1 - actual) / (1 - predicted) - actual / predicted) / size``, and finite at 0 and 1).
    """
    predicted = np.asarray(predicted)
    return (
        (predicted - actual)
        / np.maximum((1 - predicted) * predicted, BCE_EPSILON)
        / np.size(actual)
    )
