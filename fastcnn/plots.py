"""PNG plots of a training run: loss and accuracy per epoch, the confusion matrix, the learned
convolution filters.

Matplotlib is optional (``pip install fastcnn[plot]``) and imported only when a plot is drawn. The
figures are drawn on matplotlib's Agg canvas directly, without ``pyplot``: nothing opens a window,
needs a display, or changes the backend of a notebook that calls these functions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import numpy as np
from numpy.typing import ArrayLike

PathLike = Union[str, "os.PathLike[str]"]

FILES = {"history": "history.png", "confusion": "confusion.png", "filters": "filters.png"}


def require_matplotlib() -> None:
    """Raise a clear ImportError now if matplotlib is missing, before any long computation."""
    _figure()


def plot_history(losses: Sequence[float], accuracy: Sequence[float], path: PathLike) -> Path:
    """Training loss and (when given) test accuracy per epoch, side by side.

    Parameters
    ----------
    losses : sequence of float, one per epoch (a ``History``)
    accuracy : sequence of float, one per epoch, or empty
    path : str or path-like, the PNG to write

    Returns
    -------
    Path of the written file
    """
    fig = _figure()(figsize=(9, 3.5), layout="constrained")
    panels = fig.subplots(1, 2 if len(accuracy) else 1, squeeze=False)[0]
    epochs = np.arange(1, len(losses) + 1)
    panels[0].plot(epochs, losses, marker="o")
    panels[0].set(title="Training loss (mean per sample)", xlabel="epoch", ylabel="loss")
    if len(accuracy):
        panels[1].plot(np.arange(1, len(accuracy) + 1), accuracy, marker="o", color="tab:green")
        panels[1].set(title="Test accuracy", xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    for ax in panels:
        ax.xaxis.get_major_locator().set_params(integer=True)  # no epoch 1.5
        ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion(matrix: ArrayLike, path: PathLike, *, title: str = "Confusion matrix") -> Path:
    """A confusion matrix as a heat map with the counts written in.

    Parameters
    ----------
    matrix : array_like of shape (n_classes, n_classes)
        ``matrix[true, predicted]`` counts.
    path : str or path-like, the PNG to write
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"plot_confusion expects a square matrix, got shape {matrix.shape}.")
    n = matrix.shape[0]
    fig = _figure()(figsize=(6.5, 5.5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, label="samples")
    ax.set(title=title, xlabel="predicted", ylabel="true", xticks=range(n), yticks=range(n))
    high = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        ax.text(
            col,
            row,
            str(count),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if count > high else "black",
        )
    return _save(fig, path)


def plot_filters(filters: ArrayLike, path: PathLike) -> Path:
    """Each learned convolution filter as a small grey image (one column per filter, one row per
    input channel), each on its own colour scale so weak filters stay visible.

    Parameters
    ----------
    filters : array_like of shape (filter_count, depth, size, size)
        ``Convolution.filters``.
    path : str or path-like, the PNG to write
    """
    filters = np.asarray(filters, dtype=np.float64)
    if filters.ndim != 4:
        raise ValueError(
            f"plot_filters expects filters of shape (count, depth, size, size), got "
            f"shape {filters.shape}."
        )
    count, depth = filters.shape[:2]
    fig = _figure()(figsize=(1.5 * count + 0.4, 1.5 * depth + 0.6), layout="constrained")
    fig.suptitle("Convolution filters")
    axes = fig.subplots(depth, count, squeeze=False)
    for (j, i), ax in np.ndenumerate(axes):
        ax.imshow(filters[i, j], cmap="gray", interpolation="nearest")
        ax.set(xticks=[], yticks=[])
        ax.set_title(f"filter {i}" + (f", channel {j}" if depth > 1 else ""), fontsize=8)
    return _save(fig, path)


def plot_run(directory: PathLike, network, history=None, matrix=None) -> list[Path]:
    """Write every plot that applies to ``directory`` (created if needed): ``history.png`` when a
    ``History`` is given, ``confusion.png`` when a matrix is, ``filters.png`` for each
    Convolution layer of ``network`` (``filters-{i}.png`` for layer ``i`` when there are several).

    Returns
    -------
    list of Path, the files written
    """
    from .layers import Convolution

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    if history is not None:
        written.append(
            plot_history(history, getattr(history, "accuracy", []), directory / FILES["history"])
        )
    if matrix is not None:
        written.append(plot_confusion(matrix, directory / FILES["confusion"]))
    convolutions = [
        (i, layer) for i, layer in enumerate(network.layers) if isinstance(layer, Convolution)
    ]
    for i, layer in convolutions:
        name = FILES["filters"] if len(convolutions) == 1 else f"filters-{i}.png"
        written.append(plot_filters(layer.filters, directory / name))
    return written


def _figure():
    """matplotlib's ``Figure`` class, or a clear ImportError naming the extra to install."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("Plotting needs matplotlib: pip install fastcnn[plot]") from None
    return Figure


def _save(fig, path: PathLike) -> Path:
    # A Figure made without pyplot prints on the Agg canvas; "png" chosen explicitly so a path
    # without the suffix still gets a PNG.
    fig.savefig(path, format="png", dpi=100)
    return Path(path)
