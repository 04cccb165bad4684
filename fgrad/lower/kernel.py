"""The loop-level kernel IR: what the scheduler emits and every renderer consumes.

Two levels
----------
A **Program** is what one ``jit`` call runs: typed, flat buffers and a list of
*steps*. A buffer is an input, an output, a constant (data supplied with the
program) or a temporary; temporaries live in one arena at offsets chosen by
``plan_memory`` from their lifetimes. Steps are

* ``Call(kernel, args)``: run a kernel on buffers (args bind the kernel's params in order);
* ``Loop(count, body, index=None)``: run ``body`` ``count`` times; each iteration first
  writes the iteration number into the scalar integer buffer ``index`` (how scan reads xs[i]);
* ``While(cond, before, body)``: ``loop { before; if not cond[0]: break; body }`` — the
  shape of ``while_loop`` (``before`` computes the predicate into the scalar ``cond``);
* ``Switch(index, branches)``: run ``branches[clamp(index[0])]`` — ``cond``/``switch``;
  a bool index picks ``branches[0]`` for False and ``branches[1]`` for True;
* ``ExternCall(routine, args)``: call an external C routine (LAPACK, BLAS) by name, every
  argument a pointer: a buffer's data, ``BufferAt(buffer, index, stride)`` (element
  ``index[0] * stride`` of a buffer: the current batch's matrix) or a pointer to a ``Const``
  scalar. The address is bound when the code is loaded (``fgrad.lower.extern``), so cached
  object code stays valid in any process; the interpreter calls the routine through ctypes.

So scan, while and cond lower to native loops and branches, never by unrolling.

A **Kernel** is a function over flat 1-D params (``Param(name, dtype, size)``)
whose body is a tree of structured statements:

* ``Range(var, start, stop, step, body, parallel, vectorize, unroll)``: a counted loop;
  ``start``/``stop`` are int64 expressions (they may use enclosing loop vars), ``step``
  a positive int. Annotations are *promises and hints*, never semantics:
  ``parallel`` promises the iterations are independent (the CPU backend splits them
  over threads); ``vectorize`` promises the same, except for ``Accumulate`` into a
  local defined outside the loop (a reduction), and asks for SIMD lanes
  (``AUTO`` lets the renderer pick the width from the target, an int n > 1 forces n);
  ``unroll`` is 0 (no), n (by n) or ``FULL`` (completely; the bounds must be constant).
* ``Store(param, index, value, mask=None)``: ``param[index] = value`` (where ``mask`` holds).
* ``DefineLocal(local, init)``: a small private array (``Local(name, dtype, size)``), e.g. a
  reduction accumulator (size 1) or a register tile; ``init`` fills it (None: undefined).
  A local lives until the end of the enclosing block; defined inside a loop, each
  iteration gets a fresh one.
* ``LocalStore(local, index, value)`` and ``Accumulate(local, index, op, value)``
  (``local[index] = op(local[index], value)`` for op in ``REDUCE_OPS``).
* ``If(cond, then, else_)``.

Expressions are typed scalar trees: ``Const``, ``Var`` (an int64 loop variable),
``Load(param, index, mask=None)`` (a masked load yields 0 where ``mask`` is False and
never touches memory there — padding and bounds checks), ``LocalLoad`` and
``Op(op, args)`` over the scalar op set ``OPS``. Indices are integer expressions
over loop vars: affine mostly, but ``//`` and ``%`` are allowed (reshapes,
transposes). Expressions are immutable, hashed once and compared structurally,
so renderers use them as keys for common-subexpression elimination. Python
operators build them: ``x[i * 4 + j] * 2.0 + 1.0``; ``==`` is structural equality,
use ``eq(a, b)`` for the IR comparison.

Semantics
---------
The executable definition is ``fgrad.lower.interpret``: it runs programs with
NumPy scalars, in program order, ignoring annotations. Each scalar op is one entry
of ``fgrad.lower.scalar_ops.TABLE`` (arity, dtype kinds, result dtype, NumPy
reference, corner cases), which the interpreter and both renderers read. The scalar ops follow
NumPy where NumPy defines the result: wrapping integer arithmetic; float
``max``/``min`` propagate NaN; ``rem`` is C fmod / truncating remainder and ``mod``
the floor remainder (Python's ``%``); ``div`` on integers truncates, ``floordiv``
floors; ``pow`` on floats is C's ``pow``/``powf``; ``round`` rounds half away from zero, ``round_even`` half to even (NumPy's
``round``); ``shr`` is arithmetic on signed and logical on unsigned types. Where
NumPy warns or is undefined, the IR picks a total definition: integer x/0 and x%0
are 0, a shift by a negative amount or at least the bit width gives 0 (or -1 for
``shr`` of a negative value), casts from float to integer truncate and saturate
with NaN -> 0, float -> bool is ``x != 0``. ``fma`` may round once or twice.

float16 is a storage type: ``op`` builds float16 arithmetic as float32 arithmetic whose
result is cast back (what NumPy's float16 loops do), and ``cast`` to or from float16 goes
through float32 (from float64 with round-to-odd, so that the two roundings give the
correctly rounded float16). So renderers see float16 only in params, loads, stores,
selects and casts to and from float32. bfloat16 is a storage type too, and renderers see
even less of it: its casts are built as bit arithmetic on its bits (a bitcast to uint16;
float32 to bfloat16 rounds to nearest even), so a renderer only loads, stores, selects and
bitcasts 16-bit values.

Example::

    x = Param("x", float32, 1024); y = Param("y", float32, 1024)
    i = Var("i")
    k = Kernel("axpy", (x, y), (Range(i, 0, 1024, body=(y.store(i, x[i] * 2.0 + y[i]),),
                                       parallel=True, vectorize=AUTO),))
    print(k)

Modules
-------
This module is the kernel IR's public face; its parts, bottom to top:
``kernel_types`` (dtypes), ``scalar_ops`` (the op table), ``kernel_expr``
(expressions, builders, folding), ``kernel_stmt`` (statements, kernels, programs,
checks, printer) and ``memory_plan`` (arena offsets of temporaries).
"""
from __future__ import annotations

from fgrad.lower.kernel_expr import (  # noqa: F401
    Const, Expr, ExprLike, Load, LocalLoad, Op, Var, add, as_expr, bitcast, cast, const_int,
    div, eq, floordiv, fma, format_expr, free_vars, logical_and, maximum, minimum, mod, mul, ne, neg, op,
    select, sub, substitute, tree_size, walk_expr,
)
from fgrad.lower.kernel_stmt import (  # noqa: F401
    AUTO, FULL, Accumulate, Buffer, BufferAt, Call, DefineLocal, ExternCall, If, Kernel, Local, LocalStore,
    Loop, Param,
    Program, Range, Step, Stmt, Store, Switch, While, buffers_of, check_kernel, check_program,
    format_kernel, format_program, if_, kernels_of, rename_params, shared_params, stmt_exprs, walk_steps,
    walk_stmts, with_bodies, call_runs, calls_per_run,
)
from fgrad.lower.kernel_types import (  # noqa: F401
    DTYPES, HALF, INDEX, as_dtype, bfloat16, bool_, float16, float32, float64, int8, int16, int32,
    int64, is_float, is_int, row_major_strides, short_name, short_names, uint8, uint16, uint32, uint64,
    wrap_int,
)
from fgrad.lower.memory_plan import ALIGN, MemoryPlan, _aligned, buffer_lifetimes, plan_memory  # noqa: F401
from fgrad.lower.scalar_ops import (  # noqa: F401
    BINARY_ARITH, BITWISE, COMPARE, FLOAT_UNARY, NUMERIC_UNARY, OPS, REDUCE_OPS, SHIFTS,
)
from fgrad.lower.scalar_ops import kinds_for as _kinds_for  # noqa: F401  (tests use K._kinds_for)
