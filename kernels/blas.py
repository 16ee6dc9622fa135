"""``c += alpha * (a @ b)`` in one BLAS call, from compiled code.

Numba's ``np.dot(a, b, out)`` calls BLAS ``gemm`` with ``alpha = 1`` and ``beta = 0``: it can only
overwrite ``out``. A mini-batch SGD step of a dense layer is ``W -= (rate / B) * (G.T @ X)``; with
``np.dot`` that is a gradient matrix as large as ``W`` written, then read back with ``W`` by a
second pass (2.7 MB each way at MNIST size, float64). ``gemm`` itself computes
``C = alpha * A @ B + beta * C``, so with ``beta = 1`` the update is the product's own last step.

:func:`gemm_update` reaches the same ``gemm`` as ``np.dot`` (Numba's ``numba_xxgemm`` helper, which
calls SciPy's ``scipy.linalg.cython_blas``), so it runs on the same OpenBLAS threads, and compiled
code calling it is cached like code calling ``np.dot``. As plain Python (``NUMBA_DISABLE_JIT``, the
coverage run) it is NumPy's ``c += alpha * (a @ b)``.
"""

from llvmlite import ir  # type: ignore[import-untyped]
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numba.np import linalg


def gemm_update(a, b, c, alpha):
    """``c += alpha * (a @ b)``; a (m, k) and b (k, n) C- or F-contiguous (a transposed view of a
    C-contiguous array is F), c (m, n) C-contiguous; one float dtype."""
    c += alpha * (a @ b)


@intrinsic
def _gemm(typingctx, a, b, c, alpha):  # pragma: no cover  (runs while Numba compiles)
    matrices = all(isinstance(t, types.Array) and t.ndim == 2 for t in (a, b, c))
    if not matrices or a.layout not in "CF" or b.layout not in "CF" or c.layout != "C":
        return None
    if not (a.dtype == b.dtype == c.dtype) or a.dtype not in (types.float32, types.float64):
        return None
    if not isinstance(alpha, (types.Float, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        linalg.ensure_blas()
        arrays = [
            context.make_array(t)(context, builder, v)
            for t, v in zip((a, b, c), args[:3], strict=True)
        ]
        (m, k), (_, n), _ = (cgutils.unpack_tuple(builder, x.shape) for x in arrays)
        dtype = c.dtype
        scale = context.cast(builder, args[3], signature.args[3], dtype)
        alpha_slot = cgutils.alloca_once_value(builder, scale)
        beta_slot = linalg.make_constant_slot(context, builder, dtype, 1.0)
        char = ir.IntType(8)
        void_p = cgutils.voidptr_t
        intp = context.get_value_type(types.intp)
        # numba_xxgemm(kind, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        args = [char] * 3 + [intp] * 3 + [void_p, void_p, intp, void_p, intp, void_p, void_p, intp]
        fnty = ir.FunctionType(ir.IntType(32), args)
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")

        # BLAS is column-major: C (m, n) row-major is C.T (n, m) column-major, = B.T @ A.T. An F
        # operand is passed transposed; a leading dimension is the operand's physical row length.
        # The same reading as Numba's own np.dot (linalg.call_xxgemm).
        def operand(t, x):
            shape = cgutils.unpack_tuple(builder, x.shape)
            trans = ir.Constant(char, ord("n" if t.layout == "C" else "t"))
            lead = shape[1] if t.layout == "C" else shape[0]
            return trans, lead, builder.bitcast(x.data, void_p)

        trans_b, ld_b, data_b = operand(b, arrays[1])
        trans_a, ld_a, data_a = operand(a, arrays[0])
        _, ld_c, data_c = operand(c, arrays[2])
        kind = ir.Constant(char, ord(linalg.get_blas_kind(dtype)))
        res = builder.call(
            fn,
            (
                kind,
                trans_b,
                trans_a,
                n,
                m,
                k,
                builder.bitcast(alpha_slot, void_p),
                data_b,
                ld_b,
                data_a,
                ld_a,
                builder.bitcast(beta_slot, void_p),
                data_c,
                ld_c,
            ),
        )
        linalg.check_blas_return(context, builder, res)
        return context.get_dummy_value()

    return types.void(a, b, c, alpha), codegen


@overload(gemm_update)
def _gemm_update_overload(a, b, c, alpha):  # pragma: no cover  (runs while Numba compiles)
    def impl(a, b, c, alpha):
        # Shapes are the caller's to get right (kernels raise nothing): a, b and c must chain.
        if a.shape[1] == 0 or c.size == 0:
            return
        _gemm(a, b, c, alpha)  # type: ignore[call-arg]

    return impl
