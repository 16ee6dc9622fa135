"""The losses the compiled loops run: each a registered function pair with its kernel
(:func:`fastcnn.registry.register_loss`). ``Network.train`` takes the pair; any other pair trains
on the per-layer path."""

from . import registry
from .functions import d_mse, mse
from .kernels import losses as k_losses

LOSSES = registry.LOSSES

registry.register_loss("mse", mse, d_mse, k_losses.mse)
