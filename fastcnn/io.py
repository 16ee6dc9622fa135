"""Model files: :func:`save` a ``Network`` to one ``.npz`` and :func:`load` it back; no pickle, no
code. The format, and every check ``load`` makes, are :mod:`fastcnn._modelfile`'s."""

from __future__ import annotations

from typing import Any

from ._modelfile import (
    ARCHITECTURE,
    FORMAT,
    MAX_PARAMETERS,
    VERSION,
    ModelFileError,
    PathLike,
    load_layers,
)
from ._modelfile import save as _save_layers
from .network import Network

__all__ = ["ARCHITECTURE", "FORMAT", "MAX_PARAMETERS", "VERSION", "ModelFileError", "load", "save"]


def save(network: Network, path: PathLike) -> None:
    """Write ``network`` to ``path`` as a model file; ``Network.save`` does the same. See
    :func:`fastcnn._modelfile.save` for the guarantees (a temporary file renamed into place)."""
    if not isinstance(network, Network):
        raise TypeError(f"save expects a fastcnn Network, got {type(network).__name__}.")
    _save_layers(network.layers, path, training=getattr(network, "_checkpoint", None))


def load(
    path: PathLike, *, max_parameters: int | None = MAX_PARAMETERS, allow_nonfinite: bool = False
) -> Network:
    """Read a model file written by :func:`save` (or ``Network.save``); parameters bit for bit.

    Parameters
    ----------
    path : str or path-like
    max_parameters : int or None, default ``MAX_PARAMETERS`` (10**8, 800 MB as float64)
        Refuse an architecture with more parameters than this; None lifts the limit, for a file
        you trust. The command line's ``--max-parameters`` sets it.
    allow_nonfinite : bool, default False
        Load parameters that are nan or inf (a diverged training run).

    Raises
    ------
    ModelFileError
        Anything wrong with the file; the message names the file, the layer and the fault (see
        :func:`fastcnn._modelfile.load_layers`).
    FileNotFoundError, PermissionError, IsADirectoryError
        The file cannot be opened.
    """
    layers: Any = load_layers(path, max_parameters=max_parameters, allow_nonfinite=allow_nonfinite)
    return Network(layers)
