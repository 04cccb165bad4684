"""JAX as an oracle for the fuzzer's programs (optional: only where JAX is installed).

The program text is written against fgrad's names (``fnp``, ``lax``, ``nn``);
here they map to ``jax.numpy`` and to thin shims where fgrad's signature differs
from JAX's (``reduce_window`` names its computation; ``nn.max_pool2d``).
``compare_with_jax(prog)`` runs both and returns the disagreements: values,
``grad`` of the same scalar loss, and the Hessian-vector product, all at the
program's own points (kinks included: there JAX's convention is the oracle).
"""
from __future__ import annotations

import types

import numpy as np

import jax  # noqa: E402 - this module is only imported where JAX is installed
import jax.numpy as jnp

import fgrad

from tests.fuzz import checks
from tests.fuzz.checks import Failure, mismatch
from tests.fuzz.programs import Program

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platforms", "cpu")

_INIT = {"sum": 0.0, "max": -np.inf, "min": np.inf}
_COMP = {"sum": jax.lax.add, "max": jax.lax.max, "min": jax.lax.min}


def _reduce_window(x, computation, window_dimensions, window_strides=None, padding="VALID",
                   base_dilation=None, window_dilation=None):
    init = jnp.array(_INIT[computation], x.dtype)
    return jax.lax.reduce_window(x, init, _COMP[computation], tuple(window_dimensions), window_strides,
                                 padding, base_dilation, window_dilation)


def _pool(x, kernel_size, stride, padding, computation):
    k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    s = k if stride is None else ((stride, stride) if isinstance(stride, int) else tuple(stride))
    p = (padding, padding) if isinstance(padding, int) else tuple(padding)
    unbatched = x.ndim == 3
    x = x[None] if unbatched else x
    out = _reduce_window(x, computation, (1, 1) + k, (1, 1) + s, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    return out[0] if unbatched else out


def _max_pool2d(x, kernel_size, stride=None, padding=0):
    return _pool(x, kernel_size, stride, padding, "max")


def _avg_pool2d(x, kernel_size, stride=None, padding=0):
    k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    return _pool(x, kernel_size, stride, padding, "sum") / float(k[0] * k[1])


def _gelu(x, approximate=True):
    return jax.nn.gelu(x, approximate=approximate)


_lax = types.SimpleNamespace(**{k: getattr(jax.lax, k) for k in dir(jax.lax) if not k.startswith("_")})
_lax.reduce_window = _reduce_window
_nn = types.SimpleNamespace(relu=jax.nn.relu, sigmoid=jax.nn.sigmoid, silu=jax.nn.silu, gelu=_gelu,
                            logsumexp=jax.nn.logsumexp, log_softmax=jax.nn.log_softmax, softmax=jax.nn.softmax,
                            one_hot=jax.nn.one_hot, max_pool2d=_max_pool2d, avg_pool2d=_avg_pool2d)
NAMESPACE = {"fnp": jnp, "lax": _lax, "nn": _nn, "np": np}


def _loss(f, weights, args, float_pos, sumfn):
    def loss(*fargs):
        a = list(args)
        for p, v in zip(float_pos, fargs):
            a[p] = v
        total = 0.0
        for out, w in zip(f(*a), weights):
            if w is not None:
                total = total + sumfn(out * w)
        return total
    return loss


def compare_with_jax(prog: Program, order: int = 2) -> list[Failure]:
    """fgrad vs JAX on ``prog``: values (and dtypes), grad, and (order 2) the HVP."""
    args = [np.asarray(v) for v in prog.args()]
    try:
        jf = prog.function(NAMESPACE)
        jouts = [np.asarray(o) for o in jf(*args)]
    except Exception as e:  # noqa: BLE001 - JAX rejects the program: nothing to compare
        jax_error = f"{type(e).__name__}: {str(e)[:200]}"
        try:
            with fgrad.config.override(enable_x64=True):
                prog.function(checks.NAMESPACE)(*args)
        except Exception:  # noqa: BLE001
            return []
        return [Failure("jax_rejects", f"fgrad runs it, JAX raises {jax_error}")]
    bound = checks._Program(prog)
    with fgrad.config.override(enable_x64=True):
        try:
            outs = bound.outputs(*args)
        except Exception as e:  # noqa: BLE001
            return [Failure("jax_values", f"fgrad raises {checks._error(e)}; JAX runs it")]
        fails = []
        for line, g, w in zip(prog.lines, outs, jouts):
            why = mismatch(g, w, rtol=1e-6 if w.dtype == np.float64 else None,
                           atol=1e-8 if w.dtype == np.float64 else None)
            if why:
                fails.append(Failure("jax_dtype" if why.startswith("dtype") else "jax_values",
                                     f"{line.out} = {line.src}: {why} (fgrad vs JAX)", line.op))
                break
        if fails or not bound.float_pos or not any(o.dtype.kind == "f" for o in outs):
            return fails
        bound.init_weights(outs)
        xs = bound.float_args()
        argnums = tuple(range(len(xs)))
        jloss = _loss(jf, bound.weights, args, bound.float_pos, jnp.sum)
        try:
            jg = [np.asarray(v) for v in jax.grad(jloss, argnums=argnums)(*xs)]
        except Exception:  # noqa: BLE001 - e.g. reverse mode through while_loop: JAX has no answer
            return fails
        try:
            g = [np.asarray(v) for v in fgrad.grad(bound.loss, argnums=argnums)(*xs)]
        except Exception as e:  # noqa: BLE001
            return [Failure("jax_grad", f"fgrad raises {checks._error(e)}; JAX has a gradient")]
        for i, (a, b) in enumerate(zip(g, jg)):
            why = mismatch(a, b, rtol=1e-6 if b.dtype == np.float64 else 1e-3,
                           atol=1e-8 if b.dtype == np.float64 else 1e-4)
            if why:
                return [Failure("jax_grad", f"d loss / d {prog.inputs[bound.float_pos[i]].name}: {why} "
                                            f"(fgrad vs JAX)")]
        if order < 2:
            return fails
        d = bound.direction()
        try:
            _, jhv = jax.jvp(jax.grad(jloss, argnums=argnums), tuple(xs), tuple(d))
        except Exception:  # noqa: BLE001
            return fails
        try:
            _, hv = fgrad.jvp(fgrad.grad(bound.loss, argnums=argnums), tuple(xs), tuple(d))
        except Exception as e:  # noqa: BLE001
            return [Failure("jax_hvp", f"fgrad raises {checks._error(e)}; JAX has an HVP")]
        for i, (a, b) in enumerate(zip(hv, jhv)):
            a, b = np.asarray(a), np.asarray(b)
            why = mismatch(a, b, rtol=1e-5 if b.dtype == np.float64 else 1e-2,
                           atol=1e-7 if b.dtype == np.float64 else 1e-3)
            if why:
                return [Failure("jax_hvp", f"HVP wrt {prog.inputs[bound.float_pos[i]].name}: {why} "
                                           f"(fgrad vs JAX)")]
    return fails
