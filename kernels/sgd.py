"""The SGD step over a flat region of parameters and the gradients laid out like them."""

from ._jit import jit


@jit
def sgd_step(params, grads, count, rate):
    """``params -= (grads / count) * rate``: one SGD step by the mean of ``count`` summed gradients.

    params and grads 1-D, of one size and dtype; each operation rounded in that dtype. With
    ``count = 1`` this is the seed's ``p -= g * rate`` bit for bit (``g / 1`` is exact, and the
    division is left out). With ``count = B`` it is the scipy oracle's ``p -= mean_grad * rate``
    with ``mean_grad = sums / B``. PyTorch's ``p.add_(grad, alpha=-lr)`` rounds the same step as
    one fused multiply-add (``fastcnn.optim`` explains), so it may differ in the last bit.
    """
    r = params.dtype.type(rate)
    if count == 1:
        for i in range(params.size):
            params[i] -= grads[i] * r
    else:
        n = params.dtype.type(count)
        for i in range(params.size):
            params[i] -= (grads[i] / n) * r
