"""Ready-made networks: the seed notebook's MNIST CNN (cell 335)."""

import numbers
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from ._validation import check_init
from .functions import d_sigmoid, sigmoid
from .layers import Activation, Convolution, Linear, Reshape
from .network import Network


def mnist_cnn(
    *,
    backend: str = "numba",
    dtype: DTypeLike = np.float64,
    rng: Any = None,
    init: str = "notebook",
    num_threads: int = 1,
) -> Network:
    """The seed's MNIST network, layer for layer::

        Convolution((1, 28, 28), 3, 5), Activation(sigmoid, d_sigmoid),
        Reshape((5, 26, 26), (5 * 26 * 26, 1)),
        Linear(5 * 26 * 26, 100), Activation(sigmoid, d_sigmoid),
        Linear(100, 10), Activation(sigmoid, d_sigmoid)

    Parameters
    ----------
    backend : {"numba", "scipy"}
        The path every computing layer runs on.
    dtype : float64 or float32
        Dtype of the parameters and of the arithmetic.
    rng : None, int, np.random.RandomState or np.random.Generator
        Source of the initial weights, shared by the three parameter layers in the seed's order
        (Convolution, then the two Linear layers). None draws from NumPy's global state, exactly as
        the seed's cell does; an int ``s`` gives the same weights as ``np.random.seed(s)`` followed
        by that cell. A Generator draws a different (equally good) sequence.
    init : {"notebook", "xavier", "he"}
        ``"notebook"``: the notebook's ``randn`` initialisation, which saturates the sigmoids and
        learns slowly. ``"xavier"``: Glorot-normal weights and zero biases; ``"he"``: Kaiming-normal. ``"seed"`` is a
        deprecated name of ``"notebook"``.
    num_threads : int
        Threads for the compiled training path (see :class:`~fastcnn.Network`).

    Returns
    -------
    Network
        Input of shape (1, 28, 28), output of shape (10, 1).
    """
    # One RandomState for all layers: passing the int to each layer would restart the stream,
    # giving the first Linear layer the convolution's numbers instead of the seed's next draws.
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        rng = np.random.RandomState(int(rng))
    init = check_init(init)  # once, so a deprecated name warns once
    options = dict(backend=backend, dtype=dtype, rng=rng, init=init)
    # A list literal evaluates left to right, so the draws from ``rng`` come in the seed's order.
    layers = [
        Convolution((1, 28, 28), 3, 5, **options),
        Activation(sigmoid, d_sigmoid, backend=backend),
        Reshape((5, 26, 26), (5 * 26 * 26, 1)),
        Linear(5 * 26 * 26, 100, **options),
        Activation(sigmoid, d_sigmoid, backend=backend),
        Linear(100, 10, **options),
        Activation(sigmoid, d_sigmoid, backend=backend),
    ]
    return Network(layers, num_threads=num_threads)


# Presets by name, for the sweep's ``model = "..."`` (and a later ``--model``): each builder takes
# the keyword arguments of :func:`mnist_cnn` (backend, dtype, rng, init, num_threads). A new preset
# joins by one entry here.
MODELS = {"notebook": mnist_cnn}
