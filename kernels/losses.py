"""Loss kernels: a sample's loss returned, its gradient written; one per registered loss
(``fastcnn.losses``), named after the function pair it computes."""

import numpy as np

from ._jit import jit


@jit
def mse(predicted, actual, d_predicted):
    """``mse(predicted, actual)`` returned (float64), ``d_mse(predicted, actual)`` written to
    ``d_predicted``; 1-D arrays of one size.

    ``np.mean(np.power(actual - predicted, 2))`` is summed in float64, as ``np.mean`` does;
    ``d_mse = 2 * (predicted - actual) / np.size(actual)`` is rounded as the seed writes it.
    """
    m = predicted.size
    total = 0.0
    for i in range(m):
        e = actual[i] - predicted[i]
        # The square in the arrays' dtype, the sum in float64 (and so as plain Python too, where
        # 0.0 + a float32 would stay float32).
        total += np.float64(e * e)
    two = d_predicted.dtype.type(2)
    size = d_predicted.dtype.type(m)
    for i in range(m):
        d_predicted[i] = two * (predicted[i] - actual[i]) / size
    return total / m
