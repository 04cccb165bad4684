"""Structured control flow: ``cond``, ``switch``, ``while_loop``, ``fori_loop``, ``scan``, ``map``
(re-exported by ``fgrad.lax``).

Each traces its Python functions once, on abstract values, into closed jaxprs and
binds one primitive of ``fgrad.ops.control``; so the loop is one equation in a staged
program, and every transform (jvp, vmap, grad for cond/scan/static fori_loop) applies.
Operands and carries are pytrees; a carry must keep its structure, shapes and dtypes
across iterations, and the branches of a cond must return the same types.

    >>> lax.fori_loop(0, 10, lambda i, x: x * 2.0, 1.0)            # 1024.0   # doctest: +SKIP
    >>> lax.scan(lambda c, x: (c + x, c), 0.0, fnp.arange(3.))      # (3.0, [0., 0., 1.])   # doctest: +SKIP
"""
from __future__ import annotations

import builtins
from typing import Any, Callable, Sequence

import numpy as np

from fgrad import tree
from fgrad.core import dtypes
from fgrad.core.array import Array
from fgrad.core.primitive import pvary
from fgrad.core.ir import eval_jaxpr
from fgrad.core.trace import Tracer, get_aval
from fgrad.core.types import ShapedArray
from fgrad.ops import control
from fgrad.ops.elementwise import convert_element_type, lt, max as lax_max, min as lax_min, ne, add
from fgrad.ops.shape import concatenate, reshape, slice_in_dim
from fgrad.transforms.vmap import vmap

__all__ = ["cond", "switch", "while_loop", "fori_loop", "scan", "map"]


# --- shared helpers ----------------------------------------------------------------------------

def _check_callable(op: str, what: str, fun: Any) -> None:
    if not callable(fun):
        raise TypeError(f"{op}: {what} must be callable, got {type(fun).__name__}")


def _leaf_avals(op: str, what: str, value: Any) -> tuple[list[Any], Any, list[ShapedArray]]:
    """Flatten a pytree of arrays; a non-array leaf is a TypeError naming its key path."""
    with_paths, treedef = tree.tree_flatten_with_path(value)
    leaves, avals = [], []
    for path, leaf in with_paths:
        try:
            avals.append(get_aval(leaf))
        except TypeError:
            raise TypeError(f"{op}: {what} at {_where(path)} is a {type(leaf).__name__} ({leaf!r}); "
                            "only arrays and Python scalars (in pytrees) can flow through it") from None
        leaves.append(leaf)
    return leaves, treedef, avals


def _where(path) -> str:
    return tree.keystr(path) or "<root>"


def _paths(treedef) -> list:
    """Key paths of the leaves of ``treedef``."""
    dummy = tree.tree_unflatten(treedef, [0] * treedef.num_leaves)
    return [p for p, _ in tree.tree_flatten_with_path(dummy)[0]]


def _type_error(op: str, message: str) -> TypeError:
    return TypeError(f"{op}: {message}")


def _check_same_types(op: str, describe: Callable[[str, str, str], str], paths,
                      expected: Sequence[ShapedArray], got: Sequence[ShapedArray], fix: str) -> None:
    """Raise TypeError at the first leaf whose shape/dtype differ: ``describe(path, want, got)``."""
    for path, a, b in zip(paths, expected, got):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise _type_error(op, f"{describe(_where(path), a.str_short(), b.str_short())}. {fix}")


def _flat_fun(fun: Callable, in_tree, out_box: list, op: str, what: str) -> Callable[..., list]:
    """A flat version of the one-argument ``fun`` recording its output tree (and checking its leaves)."""
    def flat(*leaves):
        out = fun(tree.tree_unflatten(in_tree, list(leaves)))
        out_leaves, out_tree, out_avals = _leaf_avals(op, f"the output of {what}", out)
        out_box[:] = [out_tree, out_avals]
        return out_leaves
    return flat


def _strong(values: Sequence[Any], avals: Sequence[ShapedArray], targets: Sequence[Any]
            ) -> tuple[list[Any], list[ShapedArray]]:
    """Convert the weakly-typed entries with a dtype in ``targets`` (None: keep) to that strong dtype."""
    values, avals = list(values), list(avals)
    for i, dtype in enumerate(targets):
        if dtype is not None:
            values[i] = convert_element_type(values[i], dtype)
            avals[i] = avals[i].update(dtype=dtype, weak_type=False)
    return values, avals


def _weak_to_fix(carry_avals: Sequence[ShapedArray], out_avals: Sequence[ShapedArray]) -> list[Any]:
    """The strong dtype each weak carry takes (None: none): a weak carry whose body output is
    strong of the same dtype is made strong; one whose output has another dtype takes their
    promoted dtype (a weak ``0.`` carry the body returns as float32 under 64-bit), as JAX's
    ``_promote_weak_typed_input`` does."""
    def target(a: ShapedArray, b: ShapedArray):
        if not a.weak_type or a.shape != b.shape:
            return None
        if a.dtype == b.dtype:
            return None if b.weak_type else a.dtype
        return dtypes.promote((a.dtype, True), (b.dtype, b.weak_type))[0]
    return [target(a, b) for a, b in zip(carry_avals, out_avals)]


# --- cond / switch -----------------------------------------------------------------------------

def _vma_to_fix(carry_avals: Sequence[ShapedArray], out_avals: Sequence[ShapedArray]) -> list[frozenset] | None:
    """Inside ``shard``: the mesh axes each carry must vary over when the body makes it vary
    over more axes than it enters with (None when every carry keeps its type)."""
    grown = [a.vma | b.vma for a, b in zip(carry_avals, out_avals)]
    return None if all(g == a.vma for g, a in zip(grown, carry_avals)) else grown


def _pvary_carry(leaves: Sequence[Any], avals: Sequence[ShapedArray], vmas: Sequence[frozenset]
                 ) -> tuple[list[Any], list[ShapedArray]]:
    """Cast the initial carry up to ``vmas`` (the identity on values), so the loop's type is fixed."""
    return ([pvary(x, tuple(v)) for x, v in zip(leaves, vmas)], [a.update(vma=v) for a, v in zip(avals, vmas)])


def _scalar_index(op: str, what: str, value: Any) -> Any:
    try:
        aval = get_aval(value)
    except TypeError:
        raise TypeError(f"{op}: {what} must be a scalar array or Python scalar, got "
                        f"{type(value).__name__}") from None
    if aval.shape != ():
        raise TypeError(f"{op}: {what} must be a scalar, got an array of shape {aval.shape} "
                        f"({aval.str_short()}). For elementwise choices use fgrad.numpy.where; "
                        "under vmap a batched predicate is fine.")
    return aval


def cond(pred: Any, true_fun: Callable, false_fun: Callable, *operands: Any) -> Any:
    """``true_fun(*operands)`` if ``pred`` else ``false_fun(*operands)``, as one staged op.

    Both functions are traced; they must return pytrees of the same structure and types.

    >>> lax.cond(x > 0, lambda v: v * 2.0, lambda v: -v, x)   # doctest: +SKIP
    """
    _check_callable("cond", "true_fun", true_fun)
    _check_callable("cond", "false_fun", false_fun)
    aval = _scalar_index("cond", "the predicate", pred)
    if aval.dtype == dtypes.bool_:
        index = convert_element_type(pred, dtypes.int32)
    else:
        index = convert_element_type(ne(pred, np.asarray(0, aval.dtype)[()]), dtypes.int32)
    return _bind_branches("cond", index, [false_fun, true_fun], ["false_fun", "true_fun"], operands)


def switch(index: Any, branches: Sequence[Callable], *operands: Any) -> Any:
    """``branches[index](*operands)``, with ``index`` clamped into ``[0, len(branches) - 1]``.

    >>> lax.switch(k, [lambda v: v, lambda v: v * 2.0, lambda v: -v], x)   # doctest: +SKIP
    """
    if not isinstance(branches, (list, tuple)) or not branches:
        raise TypeError(f"switch: branches must be a non-empty list of functions, got {branches!r}")
    for i, branch in enumerate(branches):
        _check_callable("switch", f"branches[{i}]", branch)
    aval = _scalar_index("switch", "the index", index)
    if aval.dtype.kind not in "iub":
        raise TypeError(f"switch: the index must be an integer, got {aval.str_short()}; convert it "
                        "with .astype(fgrad.numpy.int32)")
    index = convert_element_type(index, dtypes.int32)
    if len(branches) == 1:
        return branches[0](*operands)
    index = lax_min(lax_max(index, np.int32(0)), np.int32(len(branches) - 1))
    return _bind_branches("switch", index, list(branches), [f"branches[{i}]" for i in range(len(branches))],
                          operands)


def _bind_branches(op: str, index: Any, funs: list[Callable], names: list[str], operands) -> Any:
    leaves, in_tree, in_avals = _leaf_avals(op, "an operand", operands)
    # inside shard, an index that differs between devices makes every value the branches use
    # per-device: cast them before the cond, so no transpose puts a psum inside a branch
    index_vma = get_aval(index).vma
    if index_vma:
        leaves, in_avals = _pvary_carry(leaves, in_avals, [a.vma | index_vma for a in in_avals])

    def trace_all(out_vmas=None):
        branches, out_trees, out_avals = [], [], []
        for fun, name in zip(funs, names):
            box: list = []
            flat = _flat_fun(lambda ops, f=fun: f(*ops), in_tree, box, op, name)
            if out_vmas is not None:
                flat = lambda *xs, g=flat: [pvary(o, tuple(v)) for o, v in zip(g(*xs), out_vmas)]  # noqa: E731
            branch = control.trace_closed(flat, in_avals)
            branches.append(_consts_varying(branch, index_vma) if index_vma else branch)
            out_trees.append(box[0])
            out_avals.append(box[1])
        return branches, out_trees, out_avals

    branches, out_trees, out_avals = trace_all()
    # inside shard, results vary over what any branch's result or the index varies over
    typed = [b.out_avals for b in branches]
    if len({len(a) for a in typed}) == 1:
        joined = [frozenset().union(index_vma, *[a.vma for a in avals]) for avals in zip(*typed)]
        if any(a.vma != j for avals in typed for a, j in zip(avals, joined)):
            branches, out_trees, out_avals = trace_all(joined)
    for name, t, avals in zip(names[1:], out_trees[1:], out_avals[1:]):
        if t != out_trees[0]:
            raise _type_error(op, f"all branches must return the same structure, but {names[0]} returns "
                                  f"{out_trees[0]} and {name} returns {t}")
        _check_same_types(op, lambda at, want, got, name=name: f"{names[0]} returns {want} at {at} but "
                          f"{name} returns {got}", _paths(t), out_avals[0], avals,
                          "Every branch must return the same shapes and dtypes; convert with "
                          ".astype(...) or broadcast explicitly.")
    return tree.tree_unflatten(out_trees[0], control.bind_cond(index, leaves, branches))


def _consts_varying(branch: Any, axes: frozenset) -> Any:
    """``branch`` with the traced values it closes over cast (outside it) to vary over ``axes``."""
    consts = [pvary(c, tuple(axes)) if isinstance(c, Tracer) else c for c in branch.consts]
    if all(c is d for c, d in zip(consts, branch.consts)):
        return branch
    return control.trace_closed(lambda *xs: eval_jaxpr(branch.jaxpr, consts, *xs), branch.in_avals)


# --- while_loop / fori_loop --------------------------------------------------------------------

def while_loop(cond_fun: Callable, body_fun: Callable, init_val: Any) -> Any:
    """Repeat ``val = body_fun(val)`` while ``cond_fun(val)``; returns the final ``val``.

    Differentiable in forward mode (jvp) only; for reverse mode use ``scan`` or
    ``fori_loop`` with static bounds.
    """
    _check_callable("while_loop", "cond_fun", cond_fun)
    _check_callable("while_loop", "body_fun", body_fun)
    leaves, in_tree, avals = _leaf_avals("while_loop", "init_val", init_val)
    body, body_consts, out_tree, out_avals = _trace_loop_body("while_loop", body_fun, in_tree, avals)
    fix = _weak_to_fix(avals, out_avals)
    if any(t is not None for t in fix):
        leaves, avals = _strong(leaves, avals, fix)
        body, body_consts, out_tree, out_avals = _trace_loop_body("while_loop", body_fun, in_tree, avals)
    while in_tree == out_tree and (grown := _vma_to_fix(avals, out_avals)) is not None:
        leaves, avals = _pvary_carry(leaves, avals, grown)
        body, body_consts, out_tree, out_avals = _trace_loop_body("while_loop", body_fun, in_tree, avals)
    _check_carry("while_loop", "body_fun", in_tree, avals, out_tree, out_avals)
    box: list = []
    cond_closed, cond_consts = control.trace_body(_flat_fun(cond_fun, in_tree, box, "while_loop", "cond_fun"),
                                                  avals)
    pred = box[1]
    if len(pred) != 1 or pred[0].shape != () or pred[0].dtype != dtypes.bool_:
        shown = ", ".join(a.str_short() for a in pred) or "nothing"
        raise TypeError(f"while_loop: cond_fun must return a bool scalar, got {shown}. "
                        "Compare explicitly (e.g. `i < n`), and reduce arrays with .all()/.any().")
    outs = control.bind_while_forwarding(cond_consts, body_consts, leaves, cond_closed, body)
    return tree.tree_unflatten(in_tree, outs)


def _trace_loop_body(op: str, fun: Callable, in_tree, avals):
    box: list = []
    closed, consts = control.trace_body(_flat_fun(fun, in_tree, box, op, "body_fun"), avals)
    return closed, consts, box[0], box[1]


def _check_carry(op: str, what: str, in_tree, in_avals, out_tree, out_avals) -> None:
    fix = ("A loop carry must keep its structure, shapes and dtypes across iterations: convert "
           "with .astype(...), or give the initial value the right shape/dtype.")
    if in_tree != out_tree:
        raise _type_error(op, f"{what} must return a carry with the structure of its input {in_tree}, "
                              f"but returned {out_tree}. {fix}")
    _check_same_types(op, lambda at, want, got: f"the carry at {at} enters {what} as {want} but "
                      f"{what} returns {got}", _paths(in_tree), in_avals, out_avals, fix)


def _static_int(x: Any) -> int | None:
    """``x`` as a Python int if it is concrete (Python/NumPy int or a concrete integer Array)."""
    if isinstance(x, (bool, np.bool_)):
        return None
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (Array, np.ndarray)) and x.shape == () and np.asarray(x).dtype.kind in "iu":
        return int(np.asarray(x))
    return None


def fori_loop(lower: Any, upper: Any, body_fun: Callable, init_val: Any, *, unroll: int = 1) -> Any:
    """``for i in range(lower, upper): val = body_fun(i, val)``; returns ``val``.

    With concrete (Python int) bounds it is a ``scan`` of static length, so reverse-mode
    differentiation works; traced bounds make it a ``while_loop`` (forward mode only).
    """
    _check_callable("fori_loop", "body_fun", body_fun)
    lo, hi = _static_int(lower), _static_int(upper)
    if lo is not None and hi is not None:
        start = np.int32(lo)

        def step(carry, _):
            i, val = carry
            return (add(i, np.int32(1)), body_fun(i, val)), None

        (_, out), _ = scan(step, (start, init_val), None, length=builtins.max(hi - lo, 0), unroll=unroll)
        return out
    for name, bound in (("lower", lower), ("upper", upper)):
        aval = _scalar_index("fori_loop", name, bound)
        if aval.dtype.kind not in "iu":
            raise TypeError(f"fori_loop: {name} must be an integer, got {aval.str_short()}")
    index_dtype = dtypes.int32
    lower = convert_element_type(lower, index_dtype)
    upper = convert_element_type(upper, index_dtype)
    _, _, out = while_loop(lambda c: lt(c[0], c[1]),
                           lambda c: (add(c[0], np.int32(1)), c[1], body_fun(c[0], c[2])),
                           (lower, upper, init_val))
    return out


# --- scan / map ----------------------------------------------------------------------------------

def _scan_length(xs_paths, xs_avals, length: int | None) -> int:
    for path, aval in zip(xs_paths, xs_avals):
        if aval.ndim == 0:
            raise ValueError(f"scan: xs at {_where(path)} is a scalar ({aval.str_short()}); every leaf of xs "
                             "needs a leading axis to scan over")
    lengths = {aval.shape[0] for aval in xs_avals}
    if length is not None:
        if not isinstance(length, (int, np.integer)) or length < 0:
            raise TypeError(f"scan: length must be a non-negative Python int, got {length!r}")
        lengths.add(int(length))
    if not lengths:
        raise ValueError("scan: with no xs to scan over, pass length= (the number of iterations)")
    if len(lengths) > 1:
        shown = ", ".join(f"{_where(p)}: {a.shape[0]}" for p, a in zip(xs_paths, xs_avals))
        extra = f", length={length}" if length is not None else ""
        raise ValueError(f"scan: all xs must have the same leading axis size, got {shown}{extra}")
    return lengths.pop()


def scan(f: Callable, init: Any, xs: Any = None, length: int | None = None, reverse: bool = False,
         unroll: int = 1) -> tuple[Any, Any]:
    """Loop ``carry, y = f(carry, x)`` over the leading axis of ``xs``; returns ``(carry, ys)``
    with the ``y``'s stacked.

    The semantics in Python (``reverse`` runs from the end)::

        def scan(f, init, xs, length=None):
            carry, ys = init, []
            for x in xs:
                carry, y = f(carry, x)
                ys.append(y)
            return carry, np.stack(ys)
    """
    _check_callable("scan", "f", f)
    carry_leaves, carry_tree, carry_avals = _leaf_avals("scan", "init", init)
    xs_with_paths, xs_tree = tree.tree_flatten_with_path(xs)
    xs_leaves, _, xs_avals = _leaf_avals("scan", "xs", xs)
    n = _scan_length([p for p, _ in xs_with_paths], xs_avals, length)
    x_avals = [a.update(shape=a.shape[1:]) for a in xs_avals]

    def trace(carry_avals):
        box: list = []

        def body(*leaves):
            carry = tree.tree_unflatten(carry_tree, list(leaves[:len(carry_avals)]))
            x = tree.tree_unflatten(xs_tree, list(leaves[len(carry_avals):]))
            out = f(carry, x)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise TypeError(f"scan: f must return a pair (carry, y), got {type(out).__name__}")
            new_carry, y = out
            c_leaves, c_tree, c_avals = _leaf_avals("scan", "the carry returned by f", new_carry)
            y_leaves, y_tree, y_avals = _leaf_avals("scan", "the y returned by f", y)
            box[:] = [c_tree, c_avals, y_tree]
            return [*c_leaves, *y_leaves]

        closed, consts = control.trace_body(body, [*carry_avals, *x_avals])
        return closed, consts, box

    closed, consts, box = trace(carry_avals)
    fix = _weak_to_fix(carry_avals, box[1])
    if any(t is not None for t in fix):
        carry_leaves, carry_avals = _strong(carry_leaves, carry_avals, fix)
        closed, consts, box = trace(carry_avals)
    while box[0] == carry_tree and (grown := _vma_to_fix(carry_avals, box[1])) is not None:
        carry_leaves, carry_avals = _pvary_carry(carry_leaves, carry_avals, grown)
        closed, consts, box = trace(carry_avals)
    out_carry_tree, out_carry_avals, y_tree = box
    _check_carry("scan", "f", carry_tree, carry_avals, out_carry_tree, out_carry_avals)
    outs = control.scan_p.bind(*consts, *carry_leaves, *xs_leaves, jaxpr=closed, num_consts=len(consts),
                               num_carry=len(carry_leaves), length=n, reverse=bool(reverse), unroll=unroll)
    n_carry = len(carry_leaves)
    return tree.tree_unflatten(carry_tree, outs[:n_carry]), tree.tree_unflatten(y_tree, outs[n_carry:])


def map(f: Callable, xs: Any, *, batch_size: int | None = None) -> Any:  # noqa: A001 - lax name
    """``jax.lax.map(f, xs, *, batch_size=None)``: ``f`` applied to each slice of ``xs`` (a
    pytree) along its leading axis, results stacked: a ``scan`` without a carry (sequential).

    With ``batch_size`` the slices go through ``vmap(f)`` ``batch_size`` at a time, in a scan
    over the batches, and the ``n % batch_size`` left over through one more ``vmap(f)``, as JAX
    does (``batch_size=0``, or one larger than ``n``, is a plain ``vmap``). The values are the
    same as without it.

    >>> lax.map(lambda v: v.sum(), fnp.ones((10, 3)), batch_size=4)   # scan of 2 x 4, then 2
    Array([3., 3., 3., 3., 3., 3., 3., 3., 3., 3.], dtype=float32)
    """
    _check_callable("map", "f", f)
    if batch_size is None:
        _, ys = scan(lambda carry, x: (carry, f(x)), None, xs)
        return ys
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)) or batch_size < 0:
        raise TypeError(f"map: batch_size must be None or an int >= 0, got {batch_size!r}")
    leaves, xs_tree, avals = _leaf_avals("map", "xs", xs)
    if not leaves:
        _, ys = scan(lambda carry, x: (carry, f(x)), None, xs)
        return ys
    n = _scan_length([p for p, _ in tree.tree_flatten_with_path(xs)[0]], avals, None)
    batch_size = int(batch_size)
    num_batches = n // batch_size if batch_size else 0
    done = num_batches * batch_size
    batched_f = vmap(f)
    if num_batches == 0:
        return batched_f(xs)

    def batches(leaf, aval):   # the first ``done`` slices as (num_batches, batch_size, ...)
        return reshape(slice_in_dim(leaf, 0, done, 1, 0), (num_batches, batch_size, *aval.shape[1:]))

    batched_xs = tree.tree_unflatten(xs_tree, [batches(leaf, aval) for leaf, aval in zip(leaves, avals)])
    _, ys = scan(lambda carry, x: (carry, batched_f(x)), None, batched_xs)
    ys = tree.tree_map(lambda y: reshape(y, (done, *get_aval(y).shape[2:])), ys)
    if done == n:
        return ys
    rest = tree.tree_unflatten(xs_tree, [slice_in_dim(leaf, done, n, 1, 0) for leaf in leaves])
    return tree.tree_map(lambda y, r: concatenate([y, r], 0), ys, batched_f(rest))
