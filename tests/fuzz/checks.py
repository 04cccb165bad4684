"""The differential checks the fuzzer runs on one program (fgrad only; see jax_oracle.py for JAX).

    failures = check_program(generate(7))      # [] when fgrad agrees with itself

Checks: eager vs ``jit``; ``vmap`` vs a Python loop of eager calls, and ``jit(vmap)``
vs ``vmap``; per-example gradients ``vmap(grad)`` vs a loop of ``grad``; ``jvp`` and
``grad`` of a scalar loss vs central finite differences (float64 programs away
from kinks); the Hessian-vector product (forward over reverse) vs finite
differences of ``grad``; ``jit(value_and_grad)`` vs eager ``grad``; and that
nothing ran on the reference (NumPy) path inside ``jit``. Each failure is a
``Failure(check, detail)``; ``category`` groups them by check and the program's ops.
"""
from __future__ import annotations

import collections
import dataclasses
import traceback
import warnings

import numpy as np

import fgrad
import fgrad.numpy as fnp
from fgrad import lax, nn
from fgrad.compile import pipeline

from tests.fuzz.programs import FLOAT_DTYPES, Program, kink_distance

NAMESPACE = {"fnp": fnp, "lax": lax, "nn": nn, "np": np}
KINK_TOL = 1e-3
ALL_CHECKS = ("jit", "vmap", "jit_vmap", "vmap_grad", "grad", "hvp", "jit_grad", "reference")
# how many programs reached each oracle (reported by scripts/fuzz.py; a run's coverage)
coverage: collections.Counter = collections.Counter()


@dataclasses.dataclass
class Failure:
    check: str      # e.g. "jit", "grad_fd", "eager_error"
    detail: str
    op: str = ""    # the op of the first disagreeing line, when known

    def category(self, prog: Program) -> str:
        return f"{self.check}:{self.op or '+'.join(sorted(set(prog.ops)))}"


def tolerance(dtype) -> tuple[float, float]:
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return 1e-7, 1e-9
    if dtype.kind == "f":
        return 2e-4, 1e-5
    return 0.0, 0.0


def mismatch(got, want, rtol: float | None = None, atol: float | None = None) -> str | None:
    """Why ``got`` differs from ``want`` (shape, dtype, values with NaN positions), or None."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if got.dtype != want.dtype:
        return f"dtype {got.dtype} != {want.dtype}"
    if got.size == 0:
        return None
    if want.dtype.kind not in "fc":
        bad = got != want
        return f"values differ at {np.argwhere(bad)[:3].tolist()}: {got[bad][:3]} vs {want[bad][:3]}" if bad.any() else None
    r, a = tolerance(want.dtype)
    r, a = rtol if rtol is not None else r, atol if atol is not None else a
    g64, w64 = got.astype(np.float64), want.astype(np.float64)
    finite = np.isfinite(w64)
    scale = np.max(np.abs(w64[finite])) if finite.any() else 0.0
    with np.errstate(all="ignore"):
        close = np.isclose(g64, w64, rtol=r, atol=a * (1 + scale), equal_nan=True)
    if close.all():
        return None
    i = tuple(np.argwhere(~close)[0])
    return (f"{int((~close).sum())}/{close.size} differ, e.g. at {list(i)}: {g64[i]!r} vs {w64[i]!r} "
            f"(rtol {r}, atol {a})")


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e)[:300]}"


def near_kink(prog: Program, values: dict) -> str | None:
    """The first line whose inputs lie within KINK_TOL of a kink (at these values), or None."""
    for line in prog.lines:
        for kind, names, params in line.kinks:
            if kink_distance(kind, [values[n] for n in names], params) < KINK_TOL:
                return f"{line.out} ({line.op}, {kind})"
    return None


class _Program:
    """A program bound to fgrad: its function, inputs, loss weights and directions."""

    def __init__(self, prog: Program):
        self.prog = prog
        self.f = prog.function(NAMESPACE)
        self.args = [np.asarray(v) for v in prog.args()]
        self.rng = np.random.default_rng(prog.seed + 10**6)
        self.float_pos = [i for i, a in enumerate(self.args) if a.dtype.kind == "f"]
        self.weights = None

    def outputs(self, *args):
        return [np.asarray(o) for o in self.f(*args)]

    def init_weights(self, outs):
        self.weights = [self.rng.standard_normal(o.shape).astype(o.dtype) if o.dtype.kind == "f" else None
                        for o in outs]

    def loss(self, *fargs):
        """A scalar of every float output, of the float inputs (int inputs held fixed)."""
        args = list(self.args)
        for p, v in zip(self.float_pos, fargs):
            args[p] = v
        total = 0.0
        for out, w in zip(self.f(*args), self.weights):
            if w is not None:
                total = total + fnp.sum(out * w)
        return total

    def float_args(self):
        return [self.args[p] for p in self.float_pos]

    def direction(self):
        return [self.rng.standard_normal(a.shape).astype(a.dtype) for a in self.float_args()]


def _inner(xs, ys) -> float:
    return float(sum(np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64)) for x, y in zip(xs, ys)))


def _shifted(xs, d, h):
    return [np.asarray(x + h * t, x.dtype) for x, t in zip(xs, d)]


def check_program(prog: Program, checks=ALL_CHECKS) -> list[Failure]:
    """Run the checks on ``prog``; return the failures (an eager error is one, and stops the rest)."""
    with fgrad.config.override(enable_x64=True), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        before = pipeline.compiled_by_path["reference"]
        failures = _check(prog, checks)
        if "reference" in checks:
            ref = pipeline.compiled_by_path["reference"] - before
            named = [str(w.message)[:200] for w in caught if type(w.message).__name__ == "ReferencePathWarning"]
            if ref or named:
                failures.append(Failure("reference_path", f"{ref} reference compiles; {named[:2]}"))
    return failures


def _check(prog: Program, checks) -> list[Failure]:
    p = _Program(prog)
    coverage["programs"] += 1
    try:
        outs = p.outputs(*p.args)
    except Exception as e:  # noqa: BLE001 - any error is a finding
        return [Failure("eager_error", _error(e) + "\n" + traceback.format_exc(limit=-3))]
    failures = []
    for line, out in zip(prog.lines, outs):
        if out.shape != line.shape:
            failures.append(Failure("generator_shape", f"{line.out} = {line.src}: {out.shape} != {line.shape}"))
    if failures:
        return failures
    if "jit" in checks:
        failures += _check_jit(p, outs)
    if "vmap" in checks:
        failures += _check_vmap(p, outs, jit="jit_vmap" in checks)
    if p.float_pos and any(o.dtype.kind == "f" for o in outs) and {"grad", "hvp", "jit_grad"} & set(checks):
        failures += _check_grads(p, outs, checks)
    return failures


def _first_mismatch(prog, got, want, check, **tol):
    for line, g, w in zip(prog.lines, got, want):
        why = mismatch(g, w, **tol)
        if why:
            return [Failure(check, f"{line.out} = {line.src}: {why}", line.op)]
    return []


def _check_jit(p: _Program, outs) -> list[Failure]:
    try:
        got = [np.asarray(o) for o in fgrad.jit(p.f)(*p.args)]
    except Exception as e:  # noqa: BLE001
        return [Failure("jit_error", _error(e))]
    return _first_mismatch(p.prog, got, outs, "jit")


def _batch_value(rng, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind == "f":
        return (a + rng.standard_normal(a.shape)).astype(a.dtype)
    if a.dtype.kind in "iu":
        return (a + rng.integers(-1, 2, size=a.shape)).astype(a.dtype)
    return a


def _check_vmap(p: _Program, outs, size: int = 2, jit: bool = True) -> list[Failure]:
    rng = np.random.default_rng(p.prog.seed + 2 * 10**6)
    batched = [bool(rng.random() < 0.6) for _ in p.args]
    if not any(batched):
        batched[int(rng.integers(len(batched)))] = True
    per_example = [[a if k == 0 else _batch_value(rng, a) for k in range(size)] for a in p.args]
    stacked = [np.stack(v) if b else a for v, b, a in zip(per_example, batched, p.args)]
    in_axes = tuple(0 if b else None for b in batched)
    try:
        loop = [p.outputs(*[v[k] if b else a for v, b, a in zip(per_example, batched, p.args)])
                for k in range(size)]
    except Exception:  # noqa: BLE001 - a batch value made an example invalid: no oracle
        return []
    try:
        got = [np.asarray(o) for o in fgrad.vmap(p.f, in_axes=in_axes)(*stacked)]
    except Exception as e:  # noqa: BLE001
        return [Failure("vmap_error", _error(e) + f" (in_axes={in_axes})")]
    want = [np.stack([loop[k][i] for k in range(size)]) for i in range(len(outs))]
    fails = _first_mismatch(p.prog, got, want, "vmap")
    if not fails and jit:  # the batched program, lowered
        try:
            jgot = [np.asarray(o) for o in fgrad.jit(fgrad.vmap(p.f, in_axes=in_axes))(*stacked)]
            fails = _first_mismatch(p.prog, jgot, got, "jit_vmap")
        except Exception as e:  # noqa: BLE001
            fails = [Failure("jit_vmap_error", _error(e))]
    for f in fails:
        f.detail += f" (in_axes={in_axes})"
    return fails


def _check_vmap_grad(p: _Program, size: int = 2) -> list[Failure]:
    """Per-example gradients: vmap(grad(loss)) over every float input vs a loop of grads."""
    rng = np.random.default_rng(p.prog.seed + 3 * 10**6)
    xs = p.float_args()
    examples = [[x if k == 0 else _batch_value(rng, x) for x in xs] for k in range(size)]
    argnums = tuple(range(len(xs)))
    grad_fn = fgrad.grad(p.loss, argnums=argnums)
    try:
        loop = [[np.asarray(v) for v in grad_fn(*ex)] for ex in examples]
    except Exception:  # noqa: BLE001 - an example has no gradient (e.g. while_loop): no oracle
        return []
    try:
        got = [np.asarray(v) for v in fgrad.vmap(grad_fn)(*[np.stack(c) for c in zip(*examples)])]
    except Exception as e:  # noqa: BLE001
        return [Failure("vmap_grad_error", _error(e))]
    for i, g in enumerate(got):
        why = mismatch(g, np.stack([loop[k][i] for k in range(size)]))
        if why:
            return [Failure("vmap_grad", f"d loss / d {p.prog.inputs[p.float_pos[i]].name}: {why}")]
    return []


def _check_grads(p: _Program, outs, checks) -> list[Failure]:
    p.init_weights(outs)
    xs = p.float_args()
    try:
        g = [np.asarray(v) for v in fgrad.grad(p.loss, argnums=tuple(range(len(xs))))(*xs)]
    except Exception as e:  # noqa: BLE001
        # JAX too has no reverse mode through while_loop: then check forward mode only
        if not ("while_loop" in p.prog.ops and type(e).__name__ == "WhileReverseModeError"):
            return [Failure("grad_error", _error(e))]
        g = None
    failures = []
    if "vmap_grad" in checks and g is not None:
        failures += _check_vmap_grad(p)
    if "jit_grad" in checks and g is not None:
        try:
            val, jg = fgrad.jit(fgrad.value_and_grad(p.loss, argnums=tuple(range(len(xs)))))(*xs)
            why = next((w for w in (mismatch(a, b) for a, b in zip(jg, g)) if w), None)
            if why:
                failures.append(Failure("jit_grad", why))
        except Exception as e:  # noqa: BLE001
            failures.append(Failure("jit_grad_error", _error(e)))
    smooth = p.prog.fdtype == "float64" and all(x.dtype == np.float64 for x in xs)
    if not smooth or "grad" not in checks:
        return failures
    values = dict(zip(p.prog.outputs(), list(p.args) + outs))
    coverage["float64_grad"] += 1
    if near_kink(p.prog, values) or not all(np.all(np.isfinite(o)) for o in outs if o.dtype.kind == "f"):
        return failures
    d = p.direction()
    failures += _check_first_order(p, xs, g, d)
    if "hvp" in checks and not failures and g is not None:
        failures += _check_hvp(p, xs, d)
    return failures


def _fd(fun, xs, d, h):
    return (np.asarray(fun(*_shifted(xs, d, h)), np.float64) - np.asarray(fun(*_shifted(xs, d, -h)), np.float64)) / (2 * h)


def _check_first_order(p: _Program, xs, g, d) -> list[Failure]:
    try:
        fd1, fd2 = _fd(p.loss, xs, d, 1e-6), _fd(p.loss, xs, d, 5e-7)
    except Exception:  # noqa: BLE001
        return []
    scale = 1e-6 * (1 + abs(fd2))
    if not np.isfinite(fd2) or abs(fd1 - fd2) > scale:
        return []  # finite differences are not converging here (a kink the table misses): no oracle
    coverage["first_order_fd"] += 1
    failures = []
    want = _inner(g, d) if g is not None else fd2
    if abs(want - fd2) > 1e-5 * (1 + abs(fd2)):
        failures.append(Failure("grad_fd", f"<grad, d> = {want!r}, finite differences {fd2!r}"))
    try:
        _, t = fgrad.jvp(p.loss, tuple(xs), tuple(d))
        if abs(float(t) - fd2) > 1e-5 * (1 + abs(fd2)):
            failures.append(Failure("jvp_fd", f"jvp = {float(t)!r}, finite differences {fd2!r}"))
    except Exception as e:  # noqa: BLE001
        failures.append(Failure("jvp_error", _error(e)))
    return failures


def _check_hvp(p: _Program, xs, d) -> list[Failure]:
    argnums = tuple(range(len(xs)))
    grad_fn = fgrad.grad(p.loss, argnums=argnums)
    try:
        _, hv = fgrad.jvp(lambda *a: grad_fn(*a), tuple(xs), tuple(d))
    except Exception as e:  # noqa: BLE001
        if isinstance(e, ValueError) and "not differentiable" in str(e) and "(as in JAX)" in str(e):
            return []      # a second derivative JAX does not have either (igamma in a)
        return [Failure("hvp_error", _error(e))]

    def flat_grad(*a):
        return np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in grad_fn(*a)])
    try:
        fd1, fd2 = _fd(flat_grad, xs, d, 1e-4), _fd(flat_grad, xs, d, 5e-5)
    except Exception:  # noqa: BLE001
        return []
    scale = 1e-4 * (1 + np.max(np.abs(fd2), initial=0.0))
    if not np.all(np.isfinite(fd2)) or np.max(np.abs(fd1 - fd2), initial=0.0) > scale:
        return []
    coverage["hvp_fd"] += 1
    got = np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in hv])
    err = np.max(np.abs(got - fd2), initial=0.0)
    if err > 1e-3 * (1 + np.max(np.abs(fd2), initial=0.0)):
        i = int(np.argmax(np.abs(got - fd2)))
        return [Failure("hvp_fd", f"hvp[{i}] = {got[i]!r}, finite differences of grad {fd2[i]!r}")]
    return []
