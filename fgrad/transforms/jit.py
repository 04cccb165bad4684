"""``jit``: stage a function to a jaxpr once per signature, compile it, and call the compiled
program from then on.

The cache key is (pytree structure of the arguments, their avals incl. weak types,
the static arguments' values, the device). A new key retraces, never replays stale
Python values. Arrays closed over become constants of the program; a closure over
a tracer (jit inside another transform) is traced afresh each call instead of cached.

``jit_p`` is a primitive carrying the closed-converted jaxpr, so ``grad``, ``vmap``
and the partial evaluator transform jitted functions through their rules here.
Inside another ``jit`` (a staging interpreter) a jitted function is inlined.
"""
from __future__ import annotations

import contextlib
import functools
import sys
import threading
import weakref

import numpy as np
import time
from typing import Any, Callable, Sequence

from fgrad import tree
from fgrad.compile import collector_paused, executable_for
from fgrad.config import config
from fgrad.core import dtypes
from fgrad.core.array import DONATED, Array
from fgrad.core.types import ShapedArray
from fgrad.core.ir import ClosedJaxpr, closure_convert
from fgrad.backends.base import PlacementError, gpu_count_cache
from fgrad.runtime.devices import default_platform
from fgrad.core.trace import EVAL, StagingInterpreter, Tracer, current_interpreter, get_aval, trace_to_jaxpr
from fgrad.ops.call import jit_p
from fgrad.transforms.jvp import is_float0
from fgrad.transforms.vjp import check_output_leaves
from fgrad.ops.collective import axis_env_here
from fgrad.compile.gpu import call_jitted
from fgrad.transforms.data_parallel import check_placement, data_parallel_call


def _log(message: str) -> None:
    if config.debug >= 1:
        print(f"[fgrad] {message}", flush=True)


# --- compiling jit_p's body (its implementation) ------------------------------------------------------------------------------

def _jit_impl(*args, jaxpr: ClosedJaxpr, name: str):
    return executable_for(jaxpr)(*args)


# jit_p (ops/call.py) is evaluated by compiling its body: the impl belongs to the layer that compiles.
jit_p.def_impl(_jit_impl)


# --- the user-facing transform ---------------------------------------------------------------------

_NO_STATIC: frozenset = frozenset()


class _Entry:
    """One cached trace; ``run``/``const_values``/``in_dtypes`` are filled on the first eager call."""

    __slots__ = ("jaxpr", "consts", "out_tree", "run", "fast", "const_values", "in_dtypes", "out_avals",
                 "donated", "reuse", "one_output", "__weakref__")

    def __init__(self, jaxpr: ClosedJaxpr, consts: list, out_tree, donated: tuple = ()):
        self.jaxpr, self.consts, self.out_tree = jaxpr, consts, out_tree
        self.one_output = out_tree == _LEAF_TREEDEF     # f returns one array: no unflattening
        self.donated = donated      # leaf indices of the donated arguments
        self.run = None
        #: the executable's ``fast_call``, once the program has run (the cached-dispatch path)
        self.fast = None
        self.reuse: dict = {}       # output index -> donated leaf index whose buffer it may take


class _Float0:
    """A ``float0`` output (the tangent of an integer, which holds no data) on its way out of a
    traced function: a pytree node with no children whose treedef keeps the shape, so the
    program never sees it and unflattening the outputs makes the zeros again."""

    __slots__ = ("shape",)

    def __init__(self, shape: tuple) -> None:
        self.shape = shape


tree.register_pytree_node(_Float0, lambda z: ((), z.shape), lambda shape, _: np.zeros(shape, dtypes.float0))

_LEAF_TREEDEF = tree.tree_structure(0)
#: the treedef of ``(args, {})`` for a call with n positional Arrays, by n
_ARRAY_CALLS: dict[int, Any] = {}


def _flatten_call(args: tuple, kwargs: dict) -> tuple[list, Any]:
    """The leaves and treedef of ``(args, kwargs)``; a call with Arrays only (the usual cached
    call) skips the generic flattening."""
    if not kwargs and all(type(a) is Array for a in args):
        treedef = _ARRAY_CALLS.get(len(args))
        if treedef is None:
            treedef = _ARRAY_CALLS[len(args)] = tree.tree_flatten((args, {}))[1]
        return list(args), treedef
    return tree.tree_flatten((args, kwargs))


def _normalize_static(fun: Callable, static_argnums, static_argnames) -> tuple[tuple[int, ...], tuple[str, ...]]:
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
    return nums, names


def _check_hashable(value: Any, where: str) -> None:
    try:
        hash(value)
    except TypeError:
        raise ValueError(f"jit: static argument {where} must be hashable, got a {type(value).__name__}. "
                         "Pass arrays as regular (non-static) arguments, or convert lists to tuples.") from None


def jit(fun: Callable | None = None, *, static_argnums: int | Sequence[int] = (),
        static_argnames: str | Sequence[str] = (), donate_argnums: int | Sequence[int] = ()) -> Callable:
    """Compile ``fun`` for each new argument signature; later calls run the compiled program.

    >>> @jit
    ... def step(x):
    ...     return fgrad.numpy.tanh(x * 2 + 1) * x
    """
    # Long on purpose: the cache, its lock and the helpers are closed over by ``jitted``, whose
    # cached path reads them as cell variables (each a global lookup saved per call: dispatch speed).
    if fun is None:
        return functools.partial(jit, static_argnums=static_argnums, static_argnames=static_argnames,
                                 donate_argnums=donate_argnums)
    if not callable(fun):
        raise TypeError(f"jit expects a function, got {type(fun).__name__}")
    nums, names = _normalize_static(fun, static_argnums, static_argnames)
    donate = (donate_argnums,) if isinstance(donate_argnums, int) else tuple(donate_argnums)
    name = getattr(fun, "__name__", "fun")
    cache: dict[Any, _Entry] = {}
    lock = threading.Lock()
    last_key: list = []

    def split_args(args, kwargs):
        if not nums and not names and not kwargs:
            return (), _NO_STATIC, args, {}
        for i in nums:
            if not -len(args) <= i < len(args):
                raise ValueError(f"jit({name}): static_argnums={i} but the call has {len(args)} positional arguments")
        static_pos = {i % len(args) for i in nums} if args else set()
        static = tuple((i, args[i]) for i in sorted(static_pos))
        static += tuple((k, kwargs[k]) for k in sorted(kwargs) if k in names)
        for where, value in static:
            _check_hashable(value, repr(where))
        dyn_args = tuple(a for i, a in enumerate(args) if i not in static_pos)
        dyn_kwargs = {k: v for k, v in kwargs.items() if k not in names}
        return static, static_pos, dyn_args, dyn_kwargs

    def trace(key, static_pos, args, kwargs, dyn_leaves, in_tree) -> _Entry:
        start = time.perf_counter()
        out_tree_box = []

        def flat_fun(*leaves):
            dyn_args, dyn_kwargs = tree.tree_unflatten(in_tree, list(leaves))
            it = iter(dyn_args)
            full = [a if i in static_pos else next(it) for i, a in enumerate(args)]
            kw = {**{k: v for k, v in kwargs.items() if k in names}, **dyn_kwargs}
            out = tree.tree_map(lambda x: _Float0(x.shape) if is_float0(x) else x, fun(*full, **kw))
            check_output_leaves(out, name)
            out_leaves, out_tree = tree.tree_flatten(out)
            out_tree_box.append(out_tree)
            return out_leaves

        with axis_env_here(), collector_paused():  # collectives inside see the axes bound around this call
            closed = trace_to_jaxpr(flat_fun, [get_aval(x) for x in dyn_leaves])
            converted, consts = closure_convert(closed)
        _log(f"traced {name} in {time.perf_counter() - start:.3f}s ({len(closed.eqns)} equations); "
             f"{_miss_reason(last_key, key)}")
        return _Entry(converted, consts, out_tree_box[0], _donated_leaves(donate, static_pos, args, name))

    plain = not nums and not names
    #: for calls with Arrays only (no static arguments, no kwargs): the entry by the arguments'
    #: avals, once it has run on the CPU without donation (the cached-dispatch fast path)
    ready: dict[tuple, _Entry] = {}

    @functools.wraps(fun)
    def jitted(*args, **kwargs):
        if plain and not kwargs:
            # one plain loop for the key and the values: two comprehensions took 0.4 µs more
            avals, values = [], []
            for a in args:
                if type(a) is Array:
                    avals.append(a.aval)
                    values.append(a._value)
                else:
                    avals.append(_ndarray_aval(a))
                    values.append(a)
            entry = ready.get(tuple(avals)) if None not in avals else None
            if (entry is not None and entry.fast is not None and current_interpreter() is EVAL
                    and not _disabled_depth and _on_cpu()):
                outs = entry.fast([*entry.const_values, *values] if entry.const_values else values)
                if outs is not None:
                    if entry.one_output:
                        return Array._from_fresh(outs[0], entry.out_avals[0])
                    return tree.tree_unflatten(entry.out_tree, [Array._from_fresh(o, a)
                                                                for o, a in zip(outs, entry.out_avals)])
            del values      # a donated argument's buffer is reused only if nothing else holds it
        static, static_pos, dyn_args, dyn_kwargs = split_args(args, kwargs)
        dyn_leaves, in_tree = _flatten_call(dyn_args, dyn_kwargs)
        try:
            avals = tuple([x.aval if type(x) is Array else get_aval(x) for x in dyn_leaves])
        except TypeError as err:
            raise TypeError(f"jit({name}): {err}. Mark non-array arguments static with "
                            "static_argnums/static_argnames.") from None
        interp = current_interpreter()
        if isinstance(interp, StagingInterpreter) or _disabled_depth:
            return fun(*args, **kwargs)  # nested jit inlines into the enclosing program
        key = (in_tree, avals, static)
        entry = cache.get(key)
        if entry is None:
            if interp is EVAL and _any_placed(dyn_leaves):
                _check_placed(dyn_leaves)  # placement mistakes: errors before tracing
            entry = trace(key, static_pos, args, kwargs, dyn_leaves, in_tree)
            if not any(isinstance(c, Tracer) for c in entry.consts):
                with lock:
                    cache[key] = entry
            last_key[:] = [key]
        if interp is EVAL:
            try:
                if _any_placed(dyn_leaves):
                    outs = _run_placed(entry, dyn_leaves, name)
                elif _on_cpu():
                    outs = _run_eager(entry, dyn_leaves)
                    if plain and not kwargs and not entry.reuse and all(
                            type(a) is Array or _ndarray_aval(a) is not None for a in args):
                        ready[avals] = entry
                else:
                    outs = _run_default(entry, dyn_leaves, name)
            except PlacementError as err:
                raise _with_argument_paths(err, name, args, kwargs, static_pos) from None
        else:
            outs = jit_p.bind(*entry.consts, *dyn_leaves, jaxpr=entry.jaxpr, name=name)
        return outs[0] if entry.one_output else tree.tree_unflatten(entry.out_tree, outs)

    jitted._cache = cache  # for tests and debugging
    jitted.lower = lambda *a, **k: _lowered(jitted, cache, split_args, a, k)
    return jitted


_disabled_depth = 0   # > 0 inside ``disable_jit()``

#: the aval of a NumPy argument by (shape, dtype, x64 on), for those whose dtype is already canonical
_ndarray_avals: dict = {}
_NDARRAY_AVALS_MAX = 4096


def _ndarray_aval(x: Any) -> ShapedArray | None:
    """The aval of ``x`` when it is a plain ``np.ndarray`` whose dtype fgrad keeps as it is
    (float64 with 64-bit off is not: its values would need converting), else None. The
    cached-dispatch path then passes the array itself (the native call takes C-contiguous
    arrays and declines others, which go the usual way)."""
    if type(x) is not np.ndarray:
        return None
    key = (x.shape, x.dtype, config.enable_x64)
    aval = _ndarray_avals.get(key)
    if aval is None:
        try:
            if dtypes.canonicalize(x.dtype) != x.dtype:
                return None
        except TypeError:          # not an fgrad dtype: the usual path says so
            return None
        if len(_ndarray_avals) >= _NDARRAY_AVALS_MAX:
            _ndarray_avals.clear()
        aval = _ndarray_avals[key] = ShapedArray(x.shape, x.dtype, False)
    return aval


def _on_cpu() -> bool:
    """Programs run on the CPU: the backend says so, or there is no GPU."""
    return config.backend == "cpu" or (config.backend is None and gpu_count_cache == _NO_GPU)


@contextlib.contextmanager
def disable_jit(disable: bool = True):
    """``with fgrad.disable_jit(): ...`` runs every jitted function as plain Python, op by op
    (JAX's ``jax.disable_jit``): print values, step through with a debugger. It applies to the
    whole process while the block runs."""
    global _disabled_depth
    step = 1 if disable else 0
    _disabled_depth += step
    try:
        yield
    finally:
        _disabled_depth -= step


def _run_eager(entry: _Entry, leaves: Sequence[Any]) -> list[Array]:
    """The fast path: call the compiled program directly on concrete arrays (through its
    ``fast_call`` once it has run: the leaves' avals already guarantee what its usual call
    checks)."""
    fresh = entry.run is None
    if fresh:
        nconsts = len(entry.consts)
        # a raw NumPy constant (closed over by a lax-level op) in the dtype its aval says: an
        # int64/float64 array is int32/float32 when 64-bit is off
        entry.const_values = [c._value if type(c) is Array else np.asarray(c, a.dtype)
                              for c, a in zip(entry.consts, entry.jaxpr.in_avals)]
        entry.in_dtypes = [a.dtype for a in entry.jaxpr.in_avals[nconsts:]]
        entry.out_avals = entry.jaxpr.out_avals
        entry.run = executable_for(entry.jaxpr, tuple(nconsts + i for i in entry.donated),
                                   on_evict=_forget_run(entry))
        entry.reuse = {k: j - nconsts for k, j in getattr(entry.run, "aliases", {}).items()}
    values = [_contiguous_value(x) if type(x) is Array else np.asarray(x, d) for x, d in zip(leaves, entry.in_dtypes)]
    if entry.reuse:
        return _run_donating(entry, leaves, values)
    if entry.fast is not None:
        outs = entry.fast([*entry.const_values, *values])
        if outs is not None:
            return [Array._from_fresh(o, a) for o, a in zip(outs, entry.out_avals)]
    outs = entry.run(*entry.const_values, *values)
    if fresh:
        entry.fast = getattr(entry.run, "fast_call", lambda: None)()
    return [Array._from_numpy(o, a) for o, a in zip(outs, entry.out_avals)]


def _contiguous_value(x: Array) -> Any:
    """``x``'s value as a C-contiguous ndarray: an eager view (``fnp.zeros``' broadcast, a
    transpose) is copied once and kept as the Array's value, so later calls neither copy it
    again nor leave the cached-dispatch path. Arrays are immutable: nothing else can tell."""
    value = x._value
    if type(value) is np.ndarray and not value.flags.c_contiguous:
        value = np.ascontiguousarray(value)
        value.flags.writeable = False
        x._value = value
    return value


def _forget_run(entry: _Entry) -> Callable[[], None]:
    """Called when the executable cache drops ``entry``'s program: the next call fetches (and
    if need be recompiles) it, so the dropped program can be freed. Holds ``entry`` weakly."""
    ref = weakref.ref(entry)

    def forget() -> None:
        alive = ref()
        if alive is not None:
            alive.run = alive.fast = None
    return forget


def _run_donating(entry: _Entry, leaves: Sequence[Any], values: list) -> list[Array]:
    """Run with the donated arguments' buffers as outputs where the program allows it and
    nothing else can see those buffers; the donated Arrays are then marked deleted."""
    outs, taken = [], []
    for k, aval in enumerate(entry.out_avals):
        leaf = entry.reuse.get(k)
        buf = values[leaf] if leaf is not None else None
        if buf is not None and _sole_owner(leaves[leaf], buf):
            buf.flags.writeable = True
            outs.append(buf)
            taken.append(leaves[leaf])
        else:
            outs.append(np.empty(aval.shape, aval.dtype))
        del buf
    entry.run(*entry.const_values, *values, out=outs)
    for x in taken:
        x._value = DONATED
    return [Array._from_numpy(o, a) for o, a in zip(outs, entry.out_avals)]


def _sole_owner(x: Any, buf: np.ndarray) -> bool:
    """Whether ``buf`` (the Array ``x``'s data) is referenced only by ``x`` and this call's own
    bookkeeping: no NumPy view of it, no ``np.asarray(x)`` the user kept, not passed twice."""
    return (type(x) is Array and x._value is buf and buf.flags.owndata and buf.base is None
            and _references(buf) <= _OWNER_REFERENCES)


def _references(buf: np.ndarray) -> int:
    return sys.getrefcount(buf)


def _calibrate_owner_references() -> int:
    """The count ``_references`` sees for a sole-owned buffer reached the way _run_donating
    reaches one (an Array-like holder, the values list, a local, the call): measured, not
    assumed, since reference counting details differ between Python versions."""
    class Holder:
        pass
    holder = Holder()
    holder._value = np.empty(1)
    values = [holder._value]
    buf = values[0]
    return _count_like_sole_owner(holder, buf)


def _count_like_sole_owner(x: Any, buf: np.ndarray) -> int:
    return _references(buf)


_OWNER_REFERENCES = _calibrate_owner_references()


def _donated_leaves(donate: tuple, static_pos, args: tuple, name: str) -> tuple[int, ...]:
    """Flat leaf indices of the positional arguments in ``donate``."""
    if not donate:
        return ()
    leaves, position = [], 0
    for i, a in enumerate(args):
        if i in static_pos:
            if i in donate or i - len(args) in donate:
                raise ValueError(f"jit({name}): argument {i} is both static and donated; a static "
                                 "argument has no buffer to donate")
            continue
        count = len(tree.tree_flatten(a)[0])
        if i in donate or i - len(args) in donate:
            leaves.extend(range(position, position + count))
        position += count
    return tuple(leaves)


# Hooks for arguments placed off the host: on a mesh with device_put(x, NamedSharding) the step
# runs data-parallel over that mesh (fgrad.transforms.shard); on a GPU (CudaArray) it runs there
# (fgrad.compile.gpu). Only non-Array leaves are looked at, so the CPU path stays one pass.
def _with_argument_paths(err: PlacementError, name: str, args: tuple, kwargs: dict,
                         static_pos: set) -> PlacementError:
    """A jitted call's two-devices error, naming which arguments are on which device."""
    where: dict = {}
    dynamic = ([(f"args[{i}]", a) for i, a in enumerate(args) if i not in static_pos]
               + [(f"kwargs[{k!r}]", v) for k, v in kwargs.items()])
    for label, arg in dynamic:
        for path, leaf in tree.tree_flatten_with_path(arg)[0]:
            device = leaf.committed_device if isinstance(leaf, Array) else None
            if device is not None:
                where.setdefault(device, []).append(label + tree.keystr(path))
    if len(where) < 2:
        return err
    (target, _), (other, moved) = sorted(where.items(), key=lambda kv: -len(kv[1]))[:2]
    listing = "; ".join(f"{', '.join(paths)} on {device!r}" for device, paths in where.items())
    return PlacementError(f"jit({name}): its arguments are on {len(where)} devices: {listing}. Put them on one "
                     f"device first, e.g. {moved[0]} = fgrad.device_put({moved[0]}, {target!r})", err.devices)


def _any_placed(leaves: Sequence[Any]) -> bool:
    return any(type(x) is not Array and (getattr(x, "sharding", None) is not None
                                         or getattr(x, "_buffer", None) is not None) for x in leaves)


def _check_placed(leaves: Sequence[Any]) -> None:
    if any(getattr(x, "sharding", None) is not None for x in leaves):
        check_placement(leaves)


def _run_placed(entry: _Entry, leaves: Sequence[Any], name: str) -> list:
    if any(getattr(x, "sharding", None) is not None for x in leaves):
        return data_parallel_call(entry.jaxpr, entry.consts, leaves, name)
    return _run_on_gpu(entry, leaves, name)


_NO_GPU = [0]


def _run_default(entry: _Entry, leaves: Sequence[Any], name: str) -> list:
    """Host arguments on the default device: the GPU when one is usable (probed once)."""
    if default_platform() == "cuda":
        outs = _run_on_gpu(entry, leaves, name)
        if outs is not None:
            return outs
    return _run_eager(entry, leaves)


def _run_on_gpu(entry: _Entry, leaves: Sequence[Any], name: str) -> list | None:
    """None when the arguments are committed to the CPU (device_put(x, cpu device))."""
    in_dtypes = [a.dtype for a in entry.jaxpr.in_avals[len(entry.consts):]]
    return call_jitted(entry.jaxpr, entry.consts, leaves, in_dtypes, name)


def _lowered(jitted, cache, split_args, args, kwargs):
    jitted(*args, **kwargs)
    static, _, dyn_args, dyn_kwargs = split_args(args, kwargs)
    leaves, in_tree = tree.tree_flatten((dyn_args, dyn_kwargs))
    return cache[(in_tree, tuple(get_aval(x) for x in leaves), static)].jaxpr


def _miss_reason(last_key: list, key) -> str:
    if not last_key:
        return "cache miss: first call"
    old_tree, old_avals, old_static = last_key[0]
    new_tree, new_avals, new_static = key
    if old_tree != new_tree:
        return f"cache miss: argument structure changed from {old_tree} to {new_tree}"
    for i, (a, b) in enumerate(zip(old_avals, new_avals)):
        if a != b:
            return f"cache miss: argument leaf {i} changed from {a.str_short()} to {b.str_short()}" + (
                " (weak type changed)" if a.str_short() == b.str_short() else "")
    if old_static != new_static:
        return f"cache miss: static arguments changed from {old_static} to {new_static}"
    return "cache miss: the previous trace closed over a traced value"
