"""Optimizer steps on flat buffers: ``params`` and ``grads`` (and the optimizer's state) are 1-D
C-contiguous arrays of one float dtype, updated in place in one streaming pass.

:func:`plain_sgd_step` is the notebook's update, ``p - g * lr``. :func:`sgd_momentum_step` and
:func:`adam_step` are PyTorch 2.x's ``torch.optim.SGD`` and ``Adam``/``AdamW`` (the single-tensor
path, ``foreach=False``), operation for operation: each ``tensor.add(other, alpha=a)``,
``lerp_`` and ``addcmul_`` of torch's CPU kernels is one fused multiply-add (``vec::fmadd``; its
scalar tail is contracted the same way, checked element by element on torch 2.13's AVX2 and
AVX-512 kernels), so it is :func:`fma` here, and every other operation rounds once in the
parameters' dtype, with torch's Python-float scalars cast to that dtype (``params.dtype.type``)
where torch casts them. The scalars torch computes in Python (``1 - beta1 ** step``, ``lr /
bias_correction1``, ``1 - lr * weight_decay``) are computed in float64 here too, with the same
libm ``pow``.

The one difference that is not ours: torch's CPU ``sqrt`` goes through MKL's vector maths, which is
within 1 ulp but not correctly rounded (1 % of float64 and 17 % of float32 values, measured on
torch 2.13); :func:`adam_step` uses the correctly rounded ``np.sqrt``. tests/test_optim.py shows
bit-identity with torch's Adam whose ``sqrt`` alone is made correctly rounded.
"""

from fractions import Fraction

import numpy as np
from llvmlite import ir  # type: ignore[import-untyped]
from numba import types
from numba.extending import intrinsic, overload

from ._jit import jit
from .sgd import sgd_step


def fma(a, b, c):
    """``a * b + c`` rounded once, as C's ``fma``; float32 or float64 scalars of one dtype.

    This Python body runs only with ``NUMBA_DISABLE_JIT`` (the coverage run); compiled code calls
    LLVM's ``llvm.fma``, which is exact on every target (an FMA instruction where there is one).
    """
    kind = type(a)
    if not (np.isfinite(a) and np.isfinite(b) and np.isfinite(c)):
        return kind(a * b + c)
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    if exact == 0:
        return kind(a * b + c)  # the sign of an exact zero follows IEEE's rules for a * b + c
    nearest = kind(float(exact))  # float64: correctly rounded; float32: may be rounded twice
    if kind is np.float64 or not np.isfinite(nearest):
        return nearest
    # float32: the float64 rounding can move a halfway case; pick the nearest of the neighbours,
    # ties to an even last bit, as one rounding would.
    best = nearest
    for candidate in (np.nextafter(nearest, kind(-np.inf)), np.nextafter(nearest, kind(np.inf))):
        if not np.isfinite(candidate):
            continue
        here, there = abs(Fraction(float(candidate)) - exact), abs(Fraction(float(best)) - exact)
        if here < there or (here == there and int(candidate.view(np.int32)) % 2 == 0):
            best = candidate
    return best


@intrinsic
def _fma(typingctx, a, b, c):  # pragma: no cover  (runs while Numba compiles)
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        kind = args[0].type
        function = builder.module.declare_intrinsic(
            "llvm.fma", [kind], ir.FunctionType(kind, [kind, kind, kind])
        )
        return builder.call(function, args)

    return a(a, b, c), codegen


@overload(fma)
def _fma_overload(a, b, c):  # pragma: no cover  (runs while Numba compiles)
    if isinstance(a, types.Float) and a == b == c:
        return lambda a, b, c: _fma(a, b, c)  # type: ignore[call-arg]
    return None


@jit
def plain_sgd_step(params, grads, lr):
    """``params -= grads * lr``, rounded as the notebook's ``p - g * lr`` (no fused multiply-add);
    params and grads (n,)."""
    rate = params.dtype.type(lr)
    for i in range(params.size):
        params[i] = params[i] - grads[i] * rate


@jit
def sgd_momentum_step(params, grads, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    """One step of ``torch.optim.SGD(lr, momentum, dampening, weight_decay, nesterov)``; params,
    grads and the momentum buffer buf (n,) (buf is neither read nor written when momentum is 0,
    and only written on the first step, ``first``, where torch clones the gradient into it)."""
    sgd_momentum_mean_step(
        params, grads, 1, buf, lr, momentum, dampening, weight_decay, nesterov, first
    )


@jit
def sgd_momentum_mean_step(
    params, grads, count, buf, lr, momentum, dampening, weight_decay, nesterov, first
):
    """:func:`sgd_momentum_step` by the mean gradient ``grads / count`` of ``count`` summed ones
    (each divided as it is read: one pass over memory fewer than dividing first)."""
    kind = params.dtype.type
    n = kind(count)
    # Dividing by a power of two (1, 32, 64, ...) is multiplying by its exact reciprocal, and a
    # product costs a fraction of a quotient.
    exact = (count & (count - 1)) == 0
    inverse = kind(1.0) / n
    minus_lr = kind(-lr)
    mu = kind(momentum)
    keep = kind(1.0 - dampening)
    decay = kind(weight_decay)
    for i in range(params.size):
        p = params[i]
        g = grads[i] * inverse if exact else grads[i] / n
        if weight_decay != 0:
            g = fma(p, decay, g)  # grad.add(param, alpha=weight_decay)
        if momentum != 0:
            if first:
                b = g  # buf = grad.clone()
            else:
                b = fma(g, keep, buf[i] * mu)  # buf.mul_(momentum).add_(grad, alpha=1 - dampening)
            buf[i] = b
            if nesterov:
                g = fma(b, mu, g)  # grad.add(buf, alpha=momentum)
            else:
                g = b
        params[i] = fma(g, minus_lr, p)  # param.add_(grad, alpha=-lr)


@jit
def adam_scalars(step, lr, beta1, beta2):
    """``(lr / (1 - beta1**step), (1 - beta2**step) ** 0.5)`` as torch computes them in Python
    floats: float64 and the C library's ``pow`` for both powers."""
    # A float exponent: Numba raises a float to an integer power by repeated squaring, which
    # differs from pow in the last bit for ~4 % of (beta, step).
    count = np.float64(step)
    bias_correction1 = 1.0 - beta1**count
    bias_correction2 = 1.0 - beta2**count
    # Python's ``** 0.5`` is pow(x, 0.5), which is not always sqrt(x) (0.08 % of x in [0, 1)
    # differ by an ulp, glibc). LLVM rewrites pow with the constant exponent 0.5 into sqrt, so
    # the exponent is made a value it cannot fold (0.0 * x is -0.0 or NaN for some x).
    half = 0.5 + 0.0 * bias_correction2
    return lr / bias_correction1, bias_correction2**half


@jit
def adam_step(params, grads, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled):
    """One step of ``torch.optim.Adam`` (``decoupled=False``: L2 weight decay added to the
    gradient) or ``AdamW`` (``decoupled=True``: ``param *= 1 - lr * weight_decay`` first); params,
    grads and the moments m (``exp_avg``) and v (``exp_avg_sq``) (n,); step counts this step (1 for
    the first), as torch's ``state["step"]`` after its increment."""
    adam_mean_step(params, grads, 1, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled)


@jit
def adam_mean_step(
    params, grads, count, m, v, step, lr, beta1, beta2, eps, weight_decay, decoupled
):
    """:func:`adam_step` by the mean gradient ``grads / count`` of ``count`` summed ones."""
    kind = params.dtype.type
    n = kind(count)
    # Dividing by a power of two (1, 32, 64, ...) is multiplying by its exact reciprocal, and a
    # product costs a fraction of a quotient.
    exact = (count & (count - 1)) == 0
    inverse = kind(1.0) / n
    step_size, bias_correction2_sqrt = adam_scalars(step, lr, beta1, beta2)
    weight = kind(1.0 - beta1)
    # torch's lerp(start, end, w): start + w * (end - start) for |w| < 0.5, else
    # end - (end - start) * (1 - w), each as one FMA; the test is made on the weight in the dtype.
    small = abs(weight) < kind(0.5)
    coefficient = weight if small else weight - kind(1)
    b2 = kind(beta2)
    one_minus_b2 = kind(1.0 - beta2)
    scale = kind(bias_correction2_sqrt)
    epsilon = kind(eps)
    minus_step_size = kind(-step_size)
    decay = kind(weight_decay)
    shrink = kind(1.0 - lr * weight_decay)
    for i in range(params.size):
        p = params[i]
        g = grads[i] * inverse if exact else grads[i] / n
        if weight_decay != 0:
            if decoupled:
                p = p * shrink  # param.mul_(1 - lr * weight_decay)
            else:
                g = fma(p, decay, g)  # grad.add(param, alpha=weight_decay)
        a = m[i]
        a = fma(coefficient, g - a, a if small else g)  # exp_avg.lerp_(grad, 1 - beta1)
        # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        s = fma(one_minus_b2 * g, g, v[i] * b2)
        m[i] = a
        v[i] = s
        # (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        denom = np.sqrt(s) / scale + epsilon
        params[i] = p + (minus_step_size * a) / denom  # param.addcdiv_(exp_avg, denom, -step_size)


# The optimizers by code, as the compiled loops take them (``fastcnn.optim.Optimizer.program``);
# ``hyper`` holds (momentum, dampening, weight_decay, nesterov, beta1, beta2, eps, decoupled).
PLAIN, MOMENTUM, ADAM = 0, 1, 2


@jit
def optimizer_step(params, grads, count, s1, s2, code, hyper, lr, taken):
    """One step of optimizer ``code`` on a flat region by the mean gradient ``grads / count``
    (grads hold ``count`` samples' summed gradients, divided as the per-layer path divides its
    sums): ``kernels.sgd.sgd_step`` (the seed's rounding), :func:`sgd_momentum_step` (buffer s1)
    or :func:`adam_step` (moments s1, s2). ``taken``: the steps taken before this one."""
    if code == PLAIN:
        sgd_step(params, grads, count, lr)
    elif code == MOMENTUM:
        sgd_momentum_mean_step(
            params, grads, count, s1, lr, hyper[0], hyper[1], hyper[2], hyper[3] != 0, taken == 0
        )
    else:
        adam_mean_step(
            params,
            grads,
            count,
            s1,
            s2,
            taken + 1,
            lr,
            hyper[4],
            hyper[5],
            hyper[6],
            hyper[2],
            hyper[7] != 0,
        )
