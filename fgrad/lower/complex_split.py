"""Complex numbers on the native path: a jaxpr over complex values, rewritten over real ones.

The kernel IR has real scalar types only. ``split_complex`` rewrites a program holding complex
values into one over their parts: each complex value becomes a pair (real part, imaginary part)
of float values, and each equation on complex values becomes equations on the parts (complex
multiplication as four real ones, ``exp`` as ``e^a (cos b + i sin b)``, a contraction as four
real contractions...). At the program's edges a complex array of shape ``S`` is its memory read
as floats of shape ``S + (2,)`` (interleaved real, imaginary: NumPy's layout), so the caller
passes and receives complex arrays without copies (``SplitProgram.wrap``).

The elementwise formulas live in ``fgrad.lower.complex_math`` (NumPy's: Smith's division,
C99's ``csqrt`` method, Kahan's ``tanh``; ``log |z|`` and ``|z|`` of complex64 in float64, of
complex128 with exact squares near the unit circle; XLA's accurate ``log1p``), so finite
results agree with eager evaluation to rounding; infinities and NaNs in complex ``exp``/``sin``/... may differ
from C99's special cases. Orderings (``sort``, ``max``, ``argmax``) are lexicographic.
``cond``/``while``/``scan`` bodies are split the same way (``split_body``); ``fft`` and
``eig``, and user host callbacks on complex values, run on the host through the callback
machinery inside the native program (the parts travel, the functions see complex arrays).
The other decompositions (``cholesky``, ``triangular_solve``, ``lu``, ``qr``, ``eigh``,
``svd``) become ``complex_decomposition_p`` over the parts, which the native lowering turns
into calls of the complex LAPACK routines (``fgrad.lower.lapack``).

Primitives with no rule here raise ``NotLowerable``: the
program runs on the reference path with a warning. On a GPU, jitted complex programs run on
the host's reference path, with the same warning: this pass serves the CPU compile path only.
"""
from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from fgrad import tree
from fgrad.core import dtypes
from fgrad.core.ir import ClosedJaxpr, Jaxpr, Literal, Var
from fgrad.core.primitive import pvary_p
from fgrad.core.trace import get_aval, trace_to_jaxpr
from fgrad.core.types import ShapedArray
from fgrad.lower import complex_math
from fgrad.lower.complex_math import Pair
from fgrad.lower.complex_math import (
    array as _array, const as _c, mul as _mul, div as _div, parts as _parts, abs_ as _abs, exp as _exp,
    log as _log, sqrt as _sqrt, sin as _sin, cos as _cos, sinh as _sinh, cosh as _cosh, tanh as _tanh,
    tan as _tan, expm1 as _expm1, log1p as _log1p, one as _one, integer_pow as _integer_pow, power as _pow,
    add as _add, neg as _neg)
from fgrad.lower.schedule import NotLowerable
from fgrad.ops import call, contraction, control, custom, indexing, linear_solve, misc, special
from fgrad.ops import callback as cb
from fgrad.ops import complex_parts as cp
from fgrad.ops import eig as eig_ops
from fgrad.ops import elementwise as ew
from fgrad.ops import fft as fft_ops
from fgrad.ops import linalg
from fgrad.ops import reduction as red
from fgrad.ops import shape as sh
from fgrad.ops import sort as sort_ops

__all__ = ["holds_complex", "split_complex", "SplitProgram"]


def holds_complex(closed: ClosedJaxpr) -> bool:
    """Whether any value of the program (sub-programs included) is complex."""
    return _jaxpr_holds_complex(closed.jaxpr)


def _jaxpr_holds_complex(jaxpr: Jaxpr) -> bool:
    for v in [*jaxpr.invars, *jaxpr.outvars, *[o for e in jaxpr.eqns for o in e.outvars]]:
        if dtypes.is_complex(v.aval.dtype):
            return True
    return any(_jaxpr_holds_complex(sub.jaxpr if isinstance(sub, ClosedJaxpr) else sub)
               for e in jaxpr.eqns for sub in _sub_jaxprs(e))


def _sub_jaxprs(eqn) -> list:
    found = []
    for p in eqn.params.values():
        for v in (p if isinstance(p, (tuple, list)) else (p,)):
            if isinstance(v, (ClosedJaxpr, Jaxpr)):
                found.append(v)
    return found


# --- the program's edges ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SplitProgram:
    """The real program (``closed``) and how to call it with the complex program's arrays."""
    closed: ClosedJaxpr
    complex_in: tuple          # per input: its complex dtype, or None
    complex_out: tuple         # per output: (complex dtype, shape), or None

    def wrap(self, run: Callable[..., list]) -> Callable[..., list]:
        """``run`` (the compiled real program) taking and returning the complex arrays."""
        def call_with_complex(*args):
            flat = [_as_pairs(a, d) if d is not None else a for a, d in zip(args, self.complex_in)]
            outs = run(*flat)
            return [_from_pairs(o, *spec) if spec is not None else o for o, spec in zip(outs, self.complex_out)]
        return call_with_complex


def _as_pairs(x: Any, dtype: np.dtype) -> np.ndarray:
    """A complex array's memory as floats, shape ``S + (2,)`` (no copy when contiguous)."""
    x = np.ascontiguousarray(x, dtype)
    return x.reshape(-1).view(dtypes.real_dtype(dtype)).reshape(x.shape + (2,))


def _from_pairs(x: np.ndarray, dtype: np.dtype, shape: tuple) -> np.ndarray:
    return np.ascontiguousarray(x).reshape(-1).view(dtype).reshape(shape)


def split_complex(closed: ClosedJaxpr) -> SplitProgram:
    """The program over real values computing const-free ``closed`` (``NotLowerable`` if an
    equation on complex values has no rule here)."""
    jaxpr = closed.jaxpr
    if jaxpr.constvars or closed.consts:
        raise NotLowerable("closed jaxpr with constants (closure-convert it first)")
    in_avals = [_real_aval(v.aval) for v in jaxpr.invars]

    def real_program(*args):
        ins = [_read_pairs(a) if dtypes.is_complex(v.aval.dtype) else a for a, v in zip(args, jaxpr.invars)]
        outs = evaluate(jaxpr, ins)
        return [_write_pairs(o) if isinstance(o, Pair) else o for o in outs]

    real = trace_to_jaxpr(real_program, in_avals)
    if real.consts:
        raise NotLowerable("the real form of a complex program captured constants")
    complex_in = tuple(v.aval.dtype if dtypes.is_complex(v.aval.dtype) else None for v in jaxpr.invars)
    complex_out = tuple((a.dtype, a.shape) if dtypes.is_complex(a.dtype) else None for a in closed.out_avals)
    return SplitProgram(real, complex_in, complex_out)


def _real_aval(aval: ShapedArray) -> ShapedArray:
    if not dtypes.is_complex(aval.dtype):
        return aval
    return ShapedArray(aval.shape + (2,), dtypes.real_dtype(aval.dtype))


def _read_pairs(x) -> Pair:
    shape = get_aval(x).shape[:-1]
    parts = [sh.reshape(sh.slice(x, (0,) * len(shape) + (k,), shape + (k + 1,)), shape) for k in (0, 1)]
    return Pair(*parts)


def _write_pairs(z: Pair):
    shape = get_aval(z.re).shape
    dims = tuple(range(len(shape)))
    parts = [sh.broadcast_in_dim(_array(p, z.re), shape + (1,), dims) for p in (z.re, z.im)]
    return sh.concatenate(parts, len(shape))


# --- evaluation over pairs ----------------------------------------------------------------------------

def evaluate(jaxpr: Jaxpr, args: Sequence[Any], consts: Sequence[Any] = ()) -> list:
    """Run ``jaxpr`` on ``args`` (Pairs for complex values), binding real primitives only."""
    env: dict[Var, Any] = {v: _const_parts(c) for v, c in zip(jaxpr.constvars, consts)}
    env.update(zip(jaxpr.invars, args))

    def read(atom):
        if isinstance(atom, Literal):
            return _literal(atom)
        return env[atom]

    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        outs = _apply(eqn, ins)
        env.update(zip(eqn.outvars, outs))
    return [read(v) for v in jaxpr.outvars]


def _const_parts(value):
    """A constant of a sub-program: a complex one as the Pair of its parts (NumPy arrays)."""
    host = np.asarray(value)
    if not dtypes.is_complex(host.dtype):
        return value
    return Pair(np.ascontiguousarray(host.real), np.ascontiguousarray(host.imag))


def _literal(atom: Literal):
    dtype = atom.aval.dtype
    if not dtypes.is_complex(dtype):
        return atom.value
    value = complex(np.asarray(atom.value)[()])
    part = dtypes.real_dtype(dtype).type
    return Pair(part(value.real), part(value.imag))


def split_body(closed: ClosedJaxpr) -> ClosedJaxpr:
    """A sub-program (a loop body, a branch) over parts: each complex input and output becomes
    two real ones (real part, then imaginary part), in place; the rest is unchanged."""
    jaxpr = closed.jaxpr
    in_avals = []
    for v in jaxpr.invars:
        part = ShapedArray(v.aval.shape, dtypes.real_dtype(v.aval.dtype))
        in_avals += [part, part] if dtypes.is_complex(v.aval.dtype) else [v.aval]

    def body(*flat):
        values = iter(flat)
        ins = [Pair(next(values), next(values)) if dtypes.is_complex(v.aval.dtype) else next(values)
               for v in jaxpr.invars]
        outs = evaluate(jaxpr, ins, closed.consts)
        return flatten_parts(outs, [a for a in closed.out_avals])

    real = trace_to_jaxpr(body, in_avals)
    if real.consts:
        raise NotLowerable("the real form of a complex sub-program captured constants")
    return real


def flatten_parts(values: Sequence[Any], avals: Sequence[ShapedArray]) -> list:
    """Values as a flat list, each Pair as its two parts (arrays of the aval's shape)."""
    flat = []
    for x, aval in zip(values, avals):
        if isinstance(x, Pair):
            part = dtypes.real_dtype(aval.dtype)
            flat += [p if not isinstance(p, (np.generic, np.ndarray)) or np.shape(p) == aval.shape
                     else sh.full(aval.shape, p, part) for p in (x.re, x.im)]
        else:
            flat.append(x)
    return flat


def regroup_parts(flat: Sequence[Any], avals: Sequence[ShapedArray]) -> list:
    """The inverse of ``flatten_parts``: complex avals take two values as a Pair."""
    values = iter(flat)
    return [Pair(next(values), next(values)) if dtypes.is_complex(a.dtype) else next(values) for a in avals]


def _apply(eqn, ins: list) -> list:
    # complex operands or results, or complex values inside (a custom_jvp of real arguments
    # computing in complex: kept whole, its program came back here for ever)
    touches = (any(isinstance(x, Pair) for x in ins) or any(dtypes.is_complex(v.aval.dtype) for v in eqn.outvars)
               or any(_jaxpr_holds_complex(sub.jaxpr if isinstance(sub, ClosedJaxpr) else sub)
                      for sub in _sub_jaxprs(eqn)))
    if eqn.primitive in _INLINED:
        sub = eqn.params[_INLINED[eqn.primitive]]
        return evaluate(sub.jaxpr, ins) if touches else _bind(eqn, ins)
    if not touches:
        return _bind(eqn, ins)
    rule = _RULES.get(eqn.primitive)
    if rule is None:
        raise NotLowerable(f"complex {eqn.primitive.name} has no native lowering yet (fgrad.lower.complex_split)")
    out = rule(*ins, **eqn.params)
    return out if eqn.primitive.multiple_results else [out]


def _bind(eqn, ins: list) -> list:
    out = eqn.primitive.bind(*ins, **eqn.params)
    return out if eqn.primitive.multiple_results else [out]


_INLINED = {call.jit_p: "jaxpr", call.remat_p: "jaxpr", custom.custom_jvp_call_p: "call",
            custom.custom_vjp_call_p: "call", linear_solve.linear_solve_p: "call"}


# --- the rules ----------------------------------------------------------------------------------

def _reduce_prod(z: Pair, axes: tuple) -> Pair:
    """The product over ``axes`` as a tree of complex multiplications (the reduced axes first,
    flattened; each level multiplies the first half by the second, an odd one out waits)."""
    shape = get_aval(z.re).shape
    kept = tuple(d for d in range(len(shape)) if d not in axes)
    n = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    rest = tuple(shape[d] for d in kept)
    flat = [sh.reshape(sh.transpose(p, tuple(axes) + kept), (n,) + rest) for p in (z.re, z.im)]
    if n == 0:
        one = _one(Pair(flat[0], flat[1]))
        return Pair(sh.full(rest, one.re, get_aval(flat[0]).dtype), sh.full(rest, one.im, get_aval(flat[0]).dtype))
    parts = Pair(*flat)
    while n > 1:
        half = n // 2
        take = lambda p, lo, hi: sh.slice(p, (lo,) + (0,) * len(rest), (hi,) + rest)   # noqa: E731
        product = _mul(Pair(take(parts.re, 0, half), take(parts.im, 0, half)),
                       Pair(take(parts.re, half, 2 * half), take(parts.im, half, 2 * half)))
        if n % 2:
            product = Pair(*(sh.concatenate([q, take(p, 2 * half, n)], 0)
                             for q, p in ((product.re, parts.re), (product.im, parts.im))))
        parts, n = product, half + n % 2
    return Pair(*(sh.reshape(p, rest) for p in (parts.re, parts.im)))


def _reduce_extreme(largest: bool) -> Callable:
    """Lexicographic max (min) over ``axes``: the extreme real part, then among the elements
    holding it the extreme imaginary part."""
    def rule(z, axes):
        z = _parts(z)
        reduce = red.reduce_max if largest else red.reduce_min
        best_re = reduce(z.re, axes)
        shape = get_aval(z.re).shape
        kept = tuple(d for d in range(len(shape)) if d not in axes)
        holds = ew.eq(z.re, sh.broadcast_in_dim(best_re, shape, kept))
        excluded = _c(z.im, -np.inf if largest else np.inf)
        return Pair(best_re, reduce(ew.select_n(holds, sh.full(shape, excluded, get_aval(z.im).dtype), z.im), axes))
    return rule


def _arg_extreme(largest: bool) -> Callable:
    """argmax (argmin) in the lexicographic order: among the elements holding the extreme real
    part, the first with the extreme imaginary part."""
    def rule(z, axes, index_dtype):
        z = _parts(z)
        reduce = red.reduce_max if largest else red.reduce_min
        shape = get_aval(z.re).shape
        kept = tuple(d for d in range(len(shape)) if d not in axes)
        holds = ew.eq(z.re, sh.broadcast_in_dim(reduce(z.re, axes), shape, kept))
        excluded = sh.full(shape, _c(z.im, -np.inf if largest else np.inf), get_aval(z.im).dtype)
        prim = red.argmax_p if largest else red.argmin_p
        return prim.bind(ew.select_n(holds, excluded, z.im), axes=axes, index_dtype=index_dtype)
    return rule


def _sign(z: Pair) -> Pair:
    magnitude = _abs(z)
    zero = ew.eq(magnitude, _c(magnitude, 0))
    safe = ew.select_n(zero, magnitude, _c(magnitude, 1))
    return Pair(ew.div(z.re, safe), ew.div(z.im, safe))


def _eq(x: Pair, y: Pair):
    return ew.bitwise_and(ew.eq(x.re, y.re), ew.eq(x.im, y.im))


def _convert(x, new_dtype, weak_type):
    part_dtype = dtypes.real_dtype(new_dtype)
    if isinstance(x, Pair):
        if dtypes.is_complex(new_dtype):
            return Pair(*(ew.convert_element_type_p.bind(p, new_dtype=part_dtype, weak_type=weak_type)
                          for p in (x.re, x.im)))
        return ew.convert_element_type_p.bind(x.re, new_dtype=new_dtype, weak_type=weak_type)
    re = ew.convert_element_type_p.bind(x, new_dtype=part_dtype, weak_type=weak_type)
    return Pair(re, sh.full(get_aval(re).shape, 0, part_dtype))


def _bilinear(prim) -> Callable:
    """A primitive bilinear in its two operands (dot_general, conv_general_dilated): four real
    products, two when one operand is real."""
    def rule(x, y, **params):
        product = lambda a, b: prim.bind(a, b, **_real_params(params))   # noqa: E731
        if not isinstance(x, Pair):
            return Pair(product(x, y.re), product(x, y.im))
        if not isinstance(y, Pair):
            return Pair(product(x.re, y), product(x.im, y))
        return Pair(ew.sub(product(x.re, y.re), product(x.im, y.im)),
                    ew.add(product(x.re, y.im), product(x.im, y.re)))
    return rule


def _real_params(params: dict) -> dict:
    out = dict(params)
    if out.get("preferred_element_type") is not None:
        out["preferred_element_type"] = dtypes.real_dtype(out["preferred_element_type"])
    return out


def _structural(prim) -> Callable:
    """A primitive linear in its complex operands and blind to dtypes (shape ops, sums,
    selects): the same equation on the real parts and on the imaginary parts."""
    def rule(*ins, **params):
        if prim is indexing.scatter_p and params.get("mode") not in ("set", "add"):
            return _scatter_parts(*ins, **params)
        if prim is indexing.gather_p and params.get("fill_value") is not None:
            fill = complex(params["fill_value"])
            return Pair(prim.bind(*_pick(ins, "re"), **{**params, "fill_value": fill.real}),
                        prim.bind(*_pick(ins, "im"), **{**params, "fill_value": fill.imag}))
        return Pair(prim.bind(*_pick(ins, "re"), **params), prim.bind(*_pick(ins, "im"), **params))
    return rule


def _scatter_parts(x, indices, updates, *, axes, mode):
    """A max/min/mul scatter combines the parts with each other: ``scatter_parts_p`` (lowered as
    one kernel that updates both parts of each element it lands on)."""
    re, im = cp.scatter_parts_p.bind(*_part_arrays(_parts(x)), indices, *_part_arrays(_parts(updates)),
                                     axes=axes, mode=mode)
    return Pair(re, im)


def _part_arrays(z: Pair) -> list:
    """Both parts as arrays of the value's shape (a literal's part is a NumPy scalar)."""
    scalar = lambda p: isinstance(p, (np.generic, np.ndarray)) and np.ndim(p) == 0   # noqa: E731
    arrays = [p for p in (z.re, z.im) if not scalar(p)]
    if not arrays:
        return [sh.full((), p, np.asarray(p).dtype) for p in (z.re, z.im)]
    aval = get_aval(arrays[0])
    return [sh.full(aval.shape, p, aval.dtype) if scalar(p) else p for p in (z.re, z.im)]


def _pick(ins, part: str) -> list:
    return [getattr(x, part) if isinstance(x, Pair) else x for x in ins]


def _through_host(prim) -> Callable:
    """The rule of a primitive whose implementation is a NumPy/SciPy routine (``fft``, ``eig``):
    that routine through a host callback inside the native program, complex operands and
    results travelling as their real and imaginary parts."""
    def rule(x, **params):
        parts = [x.re, x.im] if isinstance(x, Pair) else [x]
        in_aval = get_aval(parts[0])
        dtype = dtypes.complex_dtype(in_aval.dtype) if isinstance(x, Pair) else in_aval.dtype
        outs = prim.abstract_eval(ShapedArray(in_aval.shape, dtype), **params)
        outs = list(outs) if prim.multiple_results else [outs]
        result_avals = []
        for o in outs:
            part = ShapedArray(o.shape, dtypes.real_dtype(o.dtype))
            result_avals += [part, part] if dtypes.is_complex(o.dtype) else [part]
        callback = _host_callback(prim, tuple(sorted(params.items())), len(parts),
                                  tuple(dtypes.is_complex(o.dtype) for o in outs))
        flat = iter(cb.pure_callback_p.bind(*parts, callback=callback, result_avals=tuple(result_avals),
                                            vmap_method="expand_dims"))
        results = [Pair(next(flat), next(flat)) if dtypes.is_complex(o.dtype) else next(flat) for o in outs]
        return results if prim.multiple_results else results[0]
    return rule


@functools.lru_cache(maxsize=None)
def _host_callback(prim, params: tuple, n_in: int, complex_out: tuple) -> cb.HostCallback:
    """One host callback per (primitive, params) (so one trampoline per routine and types)."""
    def run(*parts):
        x = parts[0]
        if n_in == 2:     # assembled part by part (1j * inf would make the real part NaN)
            x = np.empty(parts[0].shape, dtypes.complex_dtype(parts[0].dtype))
            x.real, x.imag = parts
        outs = prim.impl(x, **dict(params))
        outs = list(outs) if prim.multiple_results else [outs]
        return _split_host_values(outs, complex_out)
    run.__qualname__ = f"host_{prim.name}"
    in_tree = tree.tree_flatten((tuple(range(n_in)), {}))[1]
    return cb.HostCallback(run, in_tree)


def _decomposition(prim) -> Callable:
    """A decomposition of complex matrices: ``complex_decomposition_p`` on their parts (complex
    results come back as parts, real ones, eigenvalues and singular values, as they are)."""
    def rule(*ins, **params):
        ins = [_parts(x) for x in ins]
        if prim is linalg.triangular_solve_p and params["conjugate_a"] and not params["transpose_a"]:
            ins[0] = Pair(ins[0].re, ew.neg(ins[0].im))      # LAPACK conjugates only with a transpose
            params = {**params, "conjugate_a": False}
        like = _array(ins[0].re, ins[0].re)
        flat = [_array(p, like) for x in ins for p in (x.re, x.im)]
        items = tuple(sorted(params.items()))
        outs = linalg.complex_decomposition_p.bind(*flat, decomposition=prim.name, params=items)
        avals = linalg.complex_results(prim.name, items, [_aval_of(x) for x in ins])
        results = regroup_parts(outs, avals)
        return results if prim.multiple_results else results[0]
    return rule


def _sort(*ins, dimension: int, num_keys: int) -> list:
    """A complex operand sorts as its two parts; as a key, by its real then imaginary part."""
    flat, sizes, keys = [], [], 0
    for k, x in enumerate(ins):
        parts = [x.re, x.im] if isinstance(x, Pair) else [x]
        flat += parts
        sizes.append(len(parts))
        keys += len(parts) if k < num_keys else 0
    outs = iter(sort_ops.sort_p.bind(*flat, dimension=dimension, num_keys=keys))
    return [Pair(next(outs), next(outs)) if n == 2 else next(outs) for n in sizes]


def _callback(prim) -> Callable:
    """A host callback (pure, io, debug) with complex operands or results: the Python function
    still gets and returns complex arrays; a wrapper assembles them from, and splits them into,
    the parts that travel through the native program."""
    def rule(*args, callback, **params):
        in_mask = tuple(isinstance(a, Pair) for a in args)
        result_avals = params.get("result_avals", ())
        out_mask = tuple(dtypes.is_complex(a.dtype) for a in result_avals)
        flat, _ = _flat(args)
        parts_avals = []
        for a in result_avals:
            part = ShapedArray(a.shape, dtypes.real_dtype(a.dtype))
            parts_avals += [part, part] if dtypes.is_complex(a.dtype) else [a]
        if "result_avals" in params:
            params = {**params, "result_avals": tuple(parts_avals)}
        outs = prim.bind(*flat, callback=_parts_callback(callback, in_mask, out_mask), **params)
        return regroup_parts(outs, result_avals)
    return rule


_wrapped_callbacks: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _parts_callback(callback: cb.HostCallback, in_mask: tuple, out_mask: tuple) -> cb.HostCallback:
    """One wrapper per (callback, which operands and results are complex), held only while the
    callback lives (the wrapper refers to it weakly: no trampoline outlives its program)."""
    per_callback = _wrapped_callbacks.setdefault(callback, {})
    key = (in_mask, out_mask)
    if key not in per_callback:
        per_callback[key] = _new_parts_callback(weakref.ref(callback), in_mask, out_mask)
    return per_callback[key]


def _new_parts_callback(callback_ref, in_mask: tuple, out_mask: tuple) -> cb.HostCallback:
    callback = callback_ref()
    name = getattr(callback.fn, '__qualname__', 'callback')
    del callback

    def run(*parts):
        values, it = [], iter(parts)
        for is_complex in in_mask:
            if is_complex:
                re, im = next(it), next(it)
                z = np.empty(re.shape, dtypes.complex_dtype(re.dtype))
                z.real, z.imag = re, im
                values.append(z)
            else:
                values.append(next(it))
        results = callback_ref()(*values)
        if not out_mask:
            return results
        return _split_host_values(tree.tree_leaves(results), out_mask)
    run.__qualname__ = f"complex_parts_{name}"
    n = sum(2 if m else 1 for m in in_mask)
    return cb.HostCallback(run, tree.tree_flatten((tuple(range(n)), {}))[1])


def _split_host_values(values, complex_mask) -> list:
    """Host results as the program's flat values: each complex one as its (real, imag) parts."""
    flat = []
    for v, is_complex in zip(values, complex_mask):
        v = np.asarray(v)
        flat += [_contiguous(v.real), _contiguous(v.imag)] if is_complex else [v]
    return flat


def _contiguous(part: np.ndarray) -> np.ndarray:
    """A part (a strided view) as a contiguous array of its own shape (``ascontiguousarray``
    alone makes a 0-d array 1-d)."""
    return np.ascontiguousarray(part).reshape(np.shape(part))


def _unary(fn: Callable) -> Callable:
    return lambda z, **params: fn(_parts(z))


def _binary(fn: Callable) -> Callable:
    return lambda x, y, **params: fn(_parts(x), _parts(y))


_RULES: dict = {
    ew.mul_p: _binary(_mul), ew.div_p: _binary(_div),
    ew.exp_p: _unary(_exp), ew.log_p: _unary(_log), ew.sqrt_p: _unary(_sqrt),
    ew.rsqrt_p: _unary(lambda z: _div(_one(z), _sqrt(z))),
    ew.sin_p: _unary(_sin), ew.cos_p: _unary(_cos), ew.tanh_p: _unary(_tanh), ew.expm1_p: _unary(_expm1),
    ew.log1p_p: _unary(_log1p), ew.abs_p: _unary(_abs), ew.sign_p: _unary(_sign),
    ew.logistic_p: _unary(lambda z: _div(_one(z), _add(_one(z), _exp(_neg(z))))),
    special.sinh_p: _unary(_sinh), special.cosh_p: _unary(_cosh), special.tan_p: _unary(_tan),
    special.asin_p: _unary(complex_math.asin), special.acos_p: _unary(complex_math.acos),
    special.atan_p: _unary(complex_math.atan), special.asinh_p: _unary(complex_math.asinh),
    special.acosh_p: _unary(complex_math.acosh), special.atanh_p: _unary(complex_math.atanh),
    ew.integer_pow_p: lambda z, y: _integer_pow(_parts(z), y),
    ew.pow_p: _binary(_pow),
    ew.eq_p: _binary(_eq), ew.ne_p: _binary(lambda x, y: ew.bitwise_not(_eq(x, y))),
    ew.convert_element_type_p: _convert,
    contraction.dot_general_p: _bilinear(contraction.dot_general_p),
    contraction.conv_general_dilated_p: _bilinear(contraction.conv_general_dilated_p),
    red.reduce_prod_p: lambda z, axes: _reduce_prod(_parts(z), axes),
    red.reduce_max_p: _reduce_extreme(True), red.reduce_min_p: _reduce_extreme(False),
    red.argmax_p: _arg_extreme(True), red.argmin_p: _arg_extreme(False),
    cp.real_p: lambda z: z.re, cp.imag_p: lambda z: z.im,
    cp.conj_p: lambda z: Pair(z.re, ew.neg(z.im)),
    cp.complex_p: lambda x, y: Pair(x, y),
    fft_ops.fft_p: _through_host(fft_ops.fft_p),
    sort_ops.sort_p: _sort,
    cb.pure_callback_p: _callback(cb.pure_callback_p), cb.io_callback_p: _callback(cb.io_callback_p),
    cb.debug_callback_p: _callback(cb.debug_callback_p),
    eig_ops.eig_p: _through_host(eig_ops.eig_p),
    **{prim: _decomposition(prim) for prim in linalg.DECOMPOSITIONS.values()},
}


for _prim in (ew.neg_p, ew.add_p, ew.sub_p, ew.select_n_p, red.reduce_sum_p, red.cumsum_p, sh.broadcast_in_dim_p,
              sh.reshape_p, sh.transpose_p, sh.squeeze_p, sh.expand_dims_p, sh.slice_p, sh.pad_p,
              sh.concatenate_p, sh.rev_p, indexing.dynamic_slice_p, indexing.dynamic_update_slice_p,
              indexing.gather_p, indexing.scatter_p, misc.stop_gradient_p, misc.checkpoint_name_p, pvary_p):
    _RULES[_prim] = _structural(_prim)


# --- control flow: the bodies over parts ------------------------------------------------------------

def _flat(values) -> tuple[list, int]:
    flat = flatten_parts(values, [_aval_of(v) for v in values])
    return flat, len(flat)


def _aval_of(x) -> ShapedArray:
    if isinstance(x, Pair):
        aval = get_aval(x.re)
        return ShapedArray(aval.shape, dtypes.complex_dtype(aval.dtype))
    return get_aval(x)


def _cond(index, *args, branches):
    flat, _ = _flat(args)
    outs = control.cond_p.bind(index, *flat, branches=tuple(split_body(b) for b in branches))
    return regroup_parts(outs, branches[0].out_avals)


def _while(*args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cond_consts, rest = args[:cond_nconsts], args[cond_nconsts:]
    body_consts, carry = rest[:body_nconsts], rest[body_nconsts:]
    cond_flat, n_cond = _flat(cond_consts)
    body_flat, n_body = _flat(body_consts)
    carry_flat, _ = _flat(carry)
    outs = control.while_p.bind(*cond_flat, *body_flat, *carry_flat, cond_jaxpr=split_body(cond_jaxpr),
                                body_jaxpr=split_body(body_jaxpr), cond_nconsts=n_cond, body_nconsts=n_body)
    return regroup_parts(outs, body_jaxpr.out_avals)


def _scan(*args, jaxpr, num_consts, num_carry, **params):
    consts, carry, xs = args[:num_consts], args[num_consts:num_consts + num_carry], args[num_consts + num_carry:]
    const_flat, n_consts = _flat(consts)
    carry_flat, n_carry = _flat(carry)
    xs_flat, _ = _flat(xs)
    outs = control.scan_p.bind(*const_flat, *carry_flat, *xs_flat, jaxpr=split_body(jaxpr), num_consts=n_consts,
                               num_carry=n_carry, **params)
    length = params["length"]
    out_avals = [*jaxpr.out_avals[:num_carry], *[a.update(shape=(length, *a.shape)) for a in jaxpr.out_avals[num_carry:]]]
    return regroup_parts(outs, out_avals)


_RULES.update({control.cond_p: _cond, control.while_p: _while, control.scan_p: _scan})
