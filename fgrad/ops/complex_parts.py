"""Complex numbers' own primitives: ``real``, ``imag``, ``conj`` and ``complex`` (JAX's lax
primitives of those names), and the complex half of ``abs``'s derivative.

Differentiation follows JAX's convention. A jvp is C-linear in the tangent; a transpose is the
transpose for the real pairing ``<a, b> = Re(a * b)`` (no conjugation), so that ``add``, ``mul``
and ``dot_general`` keep their real transposes, and ``grad`` of a real-valued function of a
complex ``z`` is ``df/dx - i df/dy``, the conjugate of the usual Wirtinger gradient
(``grad(lambda z: abs(z) ** 2)(1 + 2j) == 2 - 4j``, as in JAX). Under that pairing
``real``'s transpose is ``complex(ct, 0)``, ``imag``'s is ``complex(0, -ct)`` and ``conj``'s
is ``conj``.
"""
from __future__ import annotations

import numpy as np

from fgrad.core import dtypes
from fgrad.core import partition
from fgrad.core.partition import partition_rules
from fgrad.core.primitive import Primitive
from fgrad.core.rules import is_undefined, jvp_rules, symbolic_zero_rules, transpose_rules
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import elementwise as ew
from fgrad.ops._util import all_weak, elementwise_shape, same_dtype, shape_error

__all__ = ["real", "imag", "conj", "complex"]


def _complex_part_rule(op: str):
    def rule(x: ShapedArray) -> ShapedArray:
        if not dtypes.is_complex(x.dtype):
            raise shape_error(op, f"requires a complex operand, got {x.str_short()}",
                              "fgrad.numpy.real/imag/conj accept real arrays too")
        out_dtype = x.dtype if op == "conj" else dtypes.real_dtype(x.dtype)
        return ShapedArray(x.shape, out_dtype, x.weak_type)
    return rule


def _complex_rule(x: ShapedArray, y: ShapedArray) -> ShapedArray:
    shape = elementwise_shape("complex", (x, y))
    dtype = same_dtype("complex", (x, y))
    if dtype not in (dtypes.float32, dtypes.float64):
        raise shape_error("complex", f"takes float32 or float64 parts, got {x.str_short()} and {y.str_short()}",
                          "Convert the parts with .astype(fgrad.numpy.float32) first (as JAX, no half floats)")
    return ShapedArray(shape, dtypes.complex_dtype(dtype), all_weak((x, y)))


def _complex_impl(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    dtype = dtypes.complex_dtype(np.asarray(x).dtype)
    out = np.empty(np.broadcast_shapes(np.shape(x), np.shape(y)), dtype)
    out.real, out.imag = x, y
    return out


real_p = ew._define("real", lambda x: np.real(x).copy(), _complex_part_rule("real"))
imag_p = ew._define("imag", lambda x: np.imag(x).copy(), _complex_part_rule("imag"))
conj_p = ew._define("conj", np.conj, _complex_part_rule("conj"))
complex_p = ew._define("complex", _complex_impl, _complex_rule)


def real(x):
    """``jax.lax.real(x)``: the real part of a complex ``x`` (float32 for complex64)."""
    return real_p.bind(x)


def imag(x):
    """``jax.lax.imag(x)``: the imaginary part of a complex ``x`` (float32 for complex64)."""
    return imag_p.bind(x)


def conj(x):
    """``jax.lax.conj(x)``: the complex conjugate; a real ``x`` becomes complex first, as in JAX."""
    if not dtypes.is_complex(get_aval(x).dtype):
        x = ew.convert_element_type(x, dtypes.complex_dtype(get_aval(x).dtype))
    return conj_p.bind(x)


def complex(x, y):  # noqa: A001 - lax name
    """``jax.lax.complex(x, y)``: ``x + 1j * y`` from float32 (or float64) parts of one dtype."""
    return ew._bind2(complex_p, x, y)


# --- derivatives ------------------------------------------------------------------------------

def _complex_jvp(primals, tangents):
    (x, y), (tx, ty) = primals, tangents
    out = complex(x, y)
    tx = ew._zeros_like(x) if tx is None else tx
    ty = ew._zeros_like(y) if ty is None else ty
    t = complex(tx, ty)
    shape = get_aval(out).shape
    if get_aval(t).shape != shape:
        t = ew.sh.broadcast_in_dim(t, shape, ())
    return out, t


def _complex_transpose(ct, x, y):
    return [ew._unbroadcast(x.aval, real(ct)) if is_undefined(x) else None,
            ew._unbroadcast(y.aval, ew.neg(imag(ct))) if is_undefined(y) else None]


def _real_transpose(ct, x):
    return [complex(ct, ew._zeros_like(ct))]


def _imag_transpose(ct, x):
    return [complex(ew._zeros_like(ct), ew.neg(ct))]


jvp_rules[real_p] = lambda p, t: (real(p[0]), real(t[0]))
jvp_rules[imag_p] = lambda p, t: (imag(p[0]), imag(t[0]))
jvp_rules[conj_p] = lambda p, t: (conj_p.bind(p[0]), conj_p.bind(t[0]))
jvp_rules[complex_p] = _complex_jvp
symbolic_zero_rules.add(complex_p)
transpose_rules[real_p] = _real_transpose
transpose_rules[imag_p] = _imag_transpose
transpose_rules[conj_p] = lambda ct, x: [conj_p.bind(ct)]
transpose_rules[complex_p] = _complex_transpose


_real_abs_jvp = jvp_rules[ew.abs_p]


def _abs_jvp(primals, tangents):
    """JAX's rule: for complex ``x``, ``d|x| = Re(t * conj(x) / |x|)``, 0 at ``x == 0``."""
    (x,), (t,) = primals, tangents
    if not dtypes.is_complex(get_aval(x).dtype):
        return _real_abs_jvp(primals, tangents)
    out = ew.abs(x)
    magnitude = ew.convert_element_type(out, get_aval(x).dtype)
    nonzero = ew.select_n(ew.eq(magnitude, ew._const(magnitude, 0)), magnitude, ew._full_like(magnitude, 1))
    return out, real(ew.mul(t, ew.div(conj_p.bind(x), nonzero)))


jvp_rules[ew.abs_p] = _abs_jvp


def _always_linear(eqn, layouts) -> bool:
    return True


def _sum_of_partials(eqn, layouts) -> bool:
    return all(l == partition.PARTIAL for l in layouts)


for _prim in (real_p, imag_p, conj_p):
    partition_rules[_prim] = partition.elementwise(_always_linear)
partition_rules[complex_p] = partition.elementwise(_sum_of_partials)
