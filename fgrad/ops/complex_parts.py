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
from fgrad.core.partition import partition_rules, register_unpartitioned
from fgrad.core.primitive import Primitive
from fgrad.core.rules import (is_undefined, jvp_rules, not_differentiable, symbolic_zero_rules, transpose_rules,
                              vmap_rules)
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import elementwise as ew
from fgrad.ops import indexing
from fgrad.ops import shape as sh
from fgrad.ops._util import all_weak, elementwise_shape, same_dtype, shape_error

__all__ = ["real", "imag", "conj", "complex", "scatter_parts_p"]


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


# --- max/min/mul scatters of complex values over their parts (what compiled programs hold) ---------

#: The scatter modes that combine the parts of a complex value with each other.
PARTS_SCATTER_MODES = ("max", "min", "mul")


def _assemble(re: np.ndarray, im: np.ndarray) -> np.ndarray:
    z = np.empty(np.shape(re), dtypes.complex_dtype(np.asarray(re).dtype))
    z.real, z.imag = re, im          # part by part: 1j * inf would make the real part NaN
    return z


def _scatter_parts_rule(x_re, x_im, indices, u_re, u_im, *, axes, mode):
    if mode not in PARTS_SCATTER_MODES:
        raise ValueError(f"scatter_parts: mode must be one of {PARTS_SCATTER_MODES}, got {mode!r}")
    if not (x_re.dtype == x_im.dtype == u_re.dtype == u_im.dtype) or dtypes.is_complex(x_re.dtype):
        raise shape_error("scatter_parts", "takes the real parts of complex operands and updates, of one "
                          f"dtype, got {[a.str_short() for a in (x_re, x_im, u_re, u_im)]}")
    complex_of = lambda a: ShapedArray(a.shape, dtypes.complex_dtype(a.dtype))   # noqa: E731
    indexing.scatter_p.abstract_eval(complex_of(x_re), indices, complex_of(u_re), axes=axes, mode=mode)
    return [ShapedArray(x_re.shape, x_re.dtype)] * 2


def _scatter_parts_impl(x_re, x_im, indices, u_re, u_im, *, axes, mode):
    out = indexing.scatter_p.impl(_assemble(x_re, x_im), indices, _assemble(u_re, u_im), axes=axes, mode=mode)
    return [np.ascontiguousarray(out.real), np.ascontiguousarray(out.imag)]


def _scatter_parts_vmap(axis, vals, dims, *, axes, mode):
    """The complex scatter's rule, on the operand and updates put back together."""
    x_re, x_im, indices, u_re, u_im = vals
    x_dims, u_dims = dims[:2], dims[3:]

    def together(re, im, part_dims):
        if part_dims == (None, None):
            return complex(re, im), None
        return complex(*(sh.moveaxis(p, d, 0, axis.size) for p, d in zip((re, im), part_dims))), 0
    x, x_dim = together(x_re, x_im, tuple(x_dims))
    u, u_dim = together(u_re, u_im, tuple(u_dims))
    out, out_dim = vmap_rules[indexing.scatter_p](axis, [x, indices, u], [x_dim, dims[2], u_dim], axes=axes, mode=mode)
    return [real(out), imag(out)], [out_dim, out_dim]


#: ``scatter_parts_p(x_re, x_im, indices, u_re, u_im, *, axes, mode)``: ``scatter_p`` with mode
#: "max", "min" (lexicographic, NumPy's NaN rules) or "mul" of the complex operand ``x_re + i x_im``
#: and updates ``u_re + i u_im``, as its two result parts. Only the compile path writes it (the
#: complex-program pass, after every transform): it is not differentiable.
scatter_parts_p = Primitive("scatter_parts", multiple_results=True)
scatter_parts_p.def_impl(_scatter_parts_impl)
scatter_parts_p.def_abstract_eval(_scatter_parts_rule)
vmap_rules[scatter_parts_p] = _scatter_parts_vmap
not_differentiable.add(scatter_parts_p)
register_unpartitioned("written by the compile path after the data-parallel pass", scatter_parts_p)
