"""Ready-made networks: the seed notebook's MNIST CNN (cell 335) and LeNet-5, each with the
recipe it is trained with by default (:data:`RECIPES`)."""

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from ._validation import check_init
from .functions import cross_entropy, d_cross_entropy, d_mse, d_relu, d_sigmoid, mse, relu, sigmoid
from .layers import Activation, Convolution, Linear, MaxPool, Reshape, Softmax
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
    options = _options(backend, dtype, rng, init)
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


def _options(backend: str, dtype: DTypeLike, rng: Any, init: str) -> dict[str, Any]:
    # One RandomState for all layers: passing the int to each layer would restart the stream,
    # giving the first Linear layer the convolution's numbers instead of the seed's next draws.
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        rng = np.random.RandomState(int(rng))
    init = check_init(init)  # once, so a deprecated name warns once
    return dict(backend=backend, dtype=dtype, rng=rng, init=init)


def lenet(
    *,
    backend: str = "numba",
    dtype: DTypeLike = np.float64,
    rng: Any = None,
    init: str = "he",
    num_threads: int = 1,
) -> Network:
    """LeNet-5 for 28x28 inputs (LeCun et al., 1998, with ReLU, max-pooling and a softmax, as
    PyTorch's and Keras's examples build it)::

        Convolution((1, 28, 28), 5, 6, padding=2, bias="filter"), Activation(relu, d_relu),
        MaxPool((6, 28, 28), 2),
        Convolution((6, 14, 14), 5, 16, bias="filter"), Activation(relu, d_relu),
        MaxPool((16, 10, 10), 2),
        Reshape((16, 5, 5), (400, 1)),
        Linear(400, 120), Activation(relu, d_relu),
        Linear(120, 84), Activation(relu, d_relu),
        Linear(84, 10), Softmax()

    trained with :func:`~fastcnn.cross_entropy` (its :data:`RECIPES` entry). Parameters as
    :func:`mnist_cnn`'s, except ``init``, which defaults to ``"he"`` (Kaiming-normal weights for
    the ReLUs, zero biases); weights are drawn layer by layer in the order above.

    Returns
    -------
    Network
        Input of shape (1, 28, 28), output of shape (10, 1): the ten class probabilities.
    """
    options = _options(backend, dtype, rng, init)
    layers = [
        Convolution((1, 28, 28), 5, 6, padding=2, bias="filter", **options),
        Activation(relu, d_relu, backend=backend),
        MaxPool((6, 28, 28), 2, backend=backend),
        Convolution((6, 14, 14), 5, 16, bias="filter", **options),
        Activation(relu, d_relu, backend=backend),
        MaxPool((16, 10, 10), 2, backend=backend),
        Reshape((16, 5, 5), (400, 1)),
        Linear(400, 120, **options),
        Activation(relu, d_relu, backend=backend),
        Linear(120, 84, **options),
        Activation(relu, d_relu, backend=backend),
        Linear(84, 10, **options),
        Softmax(backend=backend),
    ]
    return Network(layers, num_threads=num_threads)


@dataclass(frozen=True)
class Recipe:
    """How a preset is trained by default (``fastcnn train --model NAME`` with no other options):
    its loss pair, epochs, learning rate, batch size, shuffling, initialisation and dtype, and its
    optimizer and schedule, named as the command line names them (``--optimizer``,
    ``--momentum``, ``--nesterov``, ``--weight-decay``, ``--schedule``, ``--step-size``,
    ``--gamma``). ``optimizer="sgd"`` with no weight decay and no schedule is the notebook's
    plain SGD on the fused fast paths; ``weight_decay=None`` is the optimizer's own default (0,
    or AdamW's 0.01)."""

    loss: Any
    d_loss: Any
    epochs: int
    rate: float
    batch_size: int = 1
    shuffle: bool = False
    init: str = "notebook"
    dtype: str = "float64"
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float | None = None
    schedule: str | None = None
    step_size: int = 1
    gamma: float = 0.1

    def __post_init__(self) -> None:
        # A typo here would otherwise surface as the command line's plain SGD, silently.
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"Recipe: optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"Recipe: schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.nesterov and self.optimizer != "momentum":
            raise ValueError("Recipe: nesterov needs optimizer='momentum'")

    @property
    def loss_name(self) -> str:
        return LOSS_NAMES[self.loss]


# Presets by name, for the sweep's ``model = "..."`` and ``fastcnn train --model``: each builder
# takes the keyword arguments of :func:`mnist_cnn` (backend, dtype, rng, init, num_threads). A new
# preset joins by one entry here and one in RECIPES.
MODELS = {"notebook": mnist_cnn, "lenet": lenet}

# The optimizers and schedules a recipe or the command line may name (``fastcnn train
# --optimizer``, ``--schedule``).
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
SCHEDULES = (None, "step", "cosine", "onecycle")

# The losses a preset or the command line may name, as the command line spells them.
LOSSES = {"mse": (mse, d_mse), "cross-entropy": (cross_entropy, d_cross_entropy)}
LOSS_NAMES = {pair[0]: name for name, pair in LOSSES.items()}

RECIPES = {
    # The notebook's own: 5 epochs of per-sample SGD at rate 0.1 on the MSE.
    "notebook": Recipe(mse, d_mse, epochs=5, rate=0.1),
    # The fastest recipe to 98.0 % found (README, "Optimizers and schedules"; bench.lenet_recipes):
    # SGD with Nesterov momentum 0.9 and weight decay 5e-4, 4 epochs of OneCycleLR(0.01) per
    # step, mini-batches of 8, shuffled, float32. Its last epoch scores 98.01-98.35 % (median
    # 98.17 %) over seeds 0-5 in ~3.2 CPU s with OpenBLAS pinned to Haswell, 98.02-98.32 % in
    # ~1.7 s on OpenBLAS's AVX-512 kernels. fastcnn's mini-batch epoch costs about the same from
    # B=8 to B=128, so the most steps an epoch win: 3 epochs end at 97.7-98.1 %, B=16 at its best
    # rate (4 epochs at 0.03) at 97.9-98.3 %. The old preset's plain SGD (15 epochs at 0.05) took
    # ~15 s to 98.06 %.
    "lenet": Recipe(
        cross_entropy,
        d_cross_entropy,
        epochs=4,
        rate=0.01,
        batch_size=8,
        shuffle=True,
        init="he",
        dtype="float32",
        optimizer="momentum",
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        schedule="onecycle",
    ),
}
