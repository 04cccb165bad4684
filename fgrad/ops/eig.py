"""The general (non-symmetric) eigendecomposition as a primitive, ``eig`` (JAX's
``lax.linalg.eig``).

``eig(a, compute_left_eigenvectors=True, compute_right_eigenvectors=True)`` takes a (batch of)
square float32/float64/complex64/complex128 matrices and returns ``[w]`` plus ``vl`` and ``vr``
as asked: complex eigenvalues and eigenvectors (complex64 for float32 input), each eigenvector
a column of unit length, as LAPACK's ``geev`` returns them (through SciPy, eagerly; under
``jit`` the same routine through a host callback inside the native program, from
``fgrad.lower.complex_split``). A matrix with a non-finite entry gives NaN results, as in JAX.

Eigenvalues differentiate (JAX's rule, ``dw_i = u_i^H da v_i / u_i^H v_i`` with left and right
eigenvectors ``u_i``, ``v_i``); eigenvectors do not (``NotImplementedError``, as JAX without
``enable_eigvec_derivs``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from fgrad.core import dtypes
from fgrad.core.partition import register_unpartitioned
from fgrad.core.primitive import Primitive
from fgrad.core.rules import jvp_rules, vmap_rules
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import complex_parts as cp
from fgrad.ops import contraction
from fgrad.ops import elementwise as ew
from fgrad.ops import reduction as red
from fgrad.ops import shape as sh
from fgrad.ops._util import shape_error

__all__ = ["eig", "eig_p", "numpy_eig"]

_DTYPES = (dtypes.float32, dtypes.float64, dtypes.complex64, dtypes.complex128)


def _eig_rule(a: ShapedArray, compute_left_eigenvectors: bool, compute_right_eigenvectors: bool):
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise shape_error("eig", f"takes square matrices (the last two axes), got {a.str_short()}")
    if a.dtype not in _DTYPES:
        raise shape_error("eig", f"takes float32, float64, complex64 or complex128 matrices, got {a.str_short()}",
                          "Convert it with .astype(fgrad.numpy.float32)")
    out = dtypes.complex_dtype(a.dtype)
    vectors = [ShapedArray(a.shape, out)] * (int(compute_left_eigenvectors) + int(compute_right_eigenvectors))
    return [ShapedArray(a.shape[:-1], out), *vectors]


def numpy_eig(a: np.ndarray, compute_left_eigenvectors: bool, compute_right_eigenvectors: bool) -> list:
    """LAPACK's geev (SciPy) on each matrix of the batch; NaN for a matrix that is not finite."""
    a = np.asarray(a)
    out = dtypes.complex_dtype(a.dtype)
    n = a.shape[-1]
    flat = a.reshape((-1, n, n))
    nan = complex(np.nan, np.nan)                 # as JAX: NaN in both parts
    w = np.full(flat.shape[:-1], nan, out)
    vl, vr = (np.full(flat.shape, nan, out) for _ in range(2))
    for k, m in enumerate(flat):
        if n == 0 or not np.all(np.isfinite(m)):
            continue
        res = scipy.linalg.eig(m, left=True, right=True)
        w[k], vl[k], vr[k] = res
    shaped = [w.reshape(a.shape[:-1])]
    if compute_left_eigenvectors:
        shaped.append(vl.reshape(a.shape))
    if compute_right_eigenvectors:
        shaped.append(vr.reshape(a.shape))
    return shaped


eig_p = Primitive("eig", multiple_results=True)
eig_p.def_impl(numpy_eig)
eig_p.def_abstract_eval(_eig_rule)


def eig(a: Any, compute_left_eigenvectors: bool = True, compute_right_eigenvectors: bool = True) -> list:
    """``jax.lax.linalg.eig(x, *, compute_left_eigenvectors=True, compute_right_eigenvectors=True)``:
    ``[w, vl, vr]`` (the eigenvector matrices only when asked), each eigenvector a column."""
    return eig_p.bind(a, compute_left_eigenvectors=bool(compute_left_eigenvectors),
                      compute_right_eigenvectors=bool(compute_right_eigenvectors))


def _eig_jvp(primals, tangents, compute_left_eigenvectors, compute_right_eigenvectors):
    if compute_left_eigenvectors or compute_right_eigenvectors:
        raise NotImplementedError(
            "Derivatives of non-symmetric eigenvectors are not implemented (they are only valid under "
            "assumptions on the input fgrad cannot check; JAX asks for enable_eigvec_derivs=True); "
            "eigenvalues differentiate: use fgrad.numpy.linalg.eigvals. See "
            "https://github.com/jax-ml/jax/issues/2748")
    (a,), (da,) = primals, tangents
    w, vl, vr = eig(a, True, True)
    da = ew.convert_element_type(da, dtypes.complex_dtype(get_aval(a).dtype))
    nd = get_aval(vr).ndim
    batch = tuple(range(nd - 2))
    # (da @ vr)[..., j, i] = sum_k da[..., j, k] vr[..., k, i]
    da_vr = contraction.dot_general(da, vr, (((nd - 1,), (nd - 2,)), (batch, batch)))
    left = cp.conj(vl)
    numerator = red.reduce_sum(ew.mul(left, da_vr), (nd - 2,))
    denominator = red.reduce_sum(ew.mul(left, vr), (nd - 2,))
    return [w], [ew.div(numerator, denominator)]


jvp_rules[eig_p] = _eig_jvp


def _eig_vmap(axis, vals, dims, **params):
    (a,), (d,) = vals, dims
    outs = eig_p.bind(sh.moveaxis(a, d, 0, axis.size), **params)
    return outs, [0] * len(outs)


vmap_rules[eig_p] = _eig_vmap
register_unpartitioned("a decomposition of whole matrices: split operands are an error", eig_p)
