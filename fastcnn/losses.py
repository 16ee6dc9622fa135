"""The losses the compiled loops run: each a registered function pair with its kernel
(:func:`fastcnn.registry.register_loss`). ``Network.train`` takes the pair; any other pair trains
on the per-layer path."""

from typing import Any

import numpy as np

from . import registry
from .functions import (
    TARGET_SUM_TOLERANCE,
    binary_cross_entropy,
    cross_entropy,
    d_binary_cross_entropy,
    d_cross_entropy,
    d_mse,
    mse,
)
from .kernels import losses as k_losses
from .kernels import softmax as k_softmax

LOSSES = registry.LOSSES


def distributions_fault(targets: Any) -> str | None:
    """What makes a training set's targets (N, n, ...) not one probability distribution per
    sample (non-negative, summing to 1 within :data:`TARGET_SUM_TOLERANCE`), naming the first
    sample at fault; None when they all are. Asked before training starts, so a bad target costs no
    update (the per-sample check in :func:`cross_entropy` would stop only at its sample)."""
    rows = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
    negative = np.flatnonzero((rows < 0).any(axis=1))
    if negative.size:
        k = int(negative[0])
        return f"sample {k} has a negative entry ({float(rows[k].min())!r})"
    off = np.flatnonzero(~(np.abs(rows.sum(axis=1) - 1.0) <= TARGET_SUM_TOLERANCE))
    if off.size:
        k = int(off[0])
        return f"sample {k} sums to {float(rows[k].sum())!r}, not 1"
    return None


def probabilities_fault(targets: Any) -> str | None:
    """What makes binary cross-entropy targets not probabilities (each in [0, 1]), or None."""
    rows = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
    bad = np.flatnonzero(((rows < 0) | (rows > 1)).any(axis=1))
    if bad.size:
        k = int(bad[0])
        return f"sample {k} has an entry outside [0, 1]"
    return None


registry.register_loss("mse", mse, d_mse, k_losses.mse)
registry.register_loss(
    "cross_entropy",
    cross_entropy,
    d_cross_entropy,
    k_softmax.cross_entropy,
    # After a Softmax layer: the log-sum-exp of its logits, gradient softmax - actual, exactly.
    fused={"softmax": k_softmax.softmax_cross_entropy},
    targets=distributions_fault,
)
registry.register_loss(
    "binary_cross_entropy",
    binary_cross_entropy,
    d_binary_cross_entropy,
    k_softmax.binary_cross_entropy,
    targets=probabilities_fault,
)
