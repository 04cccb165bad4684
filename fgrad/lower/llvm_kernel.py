"""One kernel IR kernel -> one LLVM function: expressions (with structural CSE and the
affine/lane-pattern forms of index arithmetic), statements, and the re-render loop of
``render_kernel`` that drops a hint the vector form cannot express."""
from __future__ import annotations

import sys

from fgrad.lower import llvm_ir as ir
import numpy as np

from fgrad.config import config
from fgrad.lower import mathlib
from fgrad.lower.intervals import IndexRanges
from fgrad.lower.kernel import (
    INDEX, Accumulate, Const, DefineLocal, Expr, If, Kernel, Load, LocalLoad, LocalStore, Op, Store, Var, bfloat16,
    bool_, int32, is_float, walk_stmts, wrap_int,
)
from fgrad.lower.llvm_base import (
    I1, I32, I64, PTR, VOID, ModuleContext, Unsupported, Val, const_value, inbounds_gep,
    memory_type, splat_value, value_type,
)
from fgrad.lower.llvm_locals import ArrayLocal, SlotLocal, VecCtx
from fgrad.lower.llvm_loops import LoopRendering
from fgrad.lower.llvm_memory import MemoryAccess
from fgrad.lower.llvm_ops import Lowering
from fgrad.lower.scalar_ops import apply_op


class _KernelRenderer(MemoryAccess, LoopRendering):
    """Renders one kernel into an LLVM function (plus outlined parallel bodies)."""

    def __init__(self, mc: ModuleContext, kernel: Kernel, fn_name: str,
                 scalar_loops: set, array_locals: set, serial_loops: set, scalar_tails: set) -> None:
        self.mc, self.kernel = mc, kernel
        self.scalar_loops, self.array_locals, self.serial_loops = scalar_loops, array_locals, serial_loops
        self.scalar_tails = scalar_tails
        self.created: list[str] = []
        self.fn = self.new_function(fn_name, [PTR] * len(kernel.params))
        for p, arg in zip(kernel.params, self.fn.args):
            if p.name not in kernel.may_alias:
                arg.add_attribute("noalias")
        self.params = {p.name: (arg, p) for p, arg in zip(kernel.params, self.fn.args)}
        self.start_function(self.fn)
        self.in_parallel = False
        self._fits_int32: bool | None = None
        self.narrowed: dict = {}       # gather indices redone in int32 (``llvm_memory.narrowed_index``)

    def index_fits_int32(self) -> bool:
        """Whether every int64 value of the kernel fits in int32 (``IndexRanges``, worked out
        the first time a vector of indices needs it): per-lane division and gathers may then
        use 32-bit lanes."""
        if self._fits_int32 is None:
            self._fits_int32 = IndexRanges(self.kernel, 1).fits_int32
        return self._fits_int32

    # -- function-level state
    def new_function(self, name: str, args: list[ir.Type]) -> ir.Function:
        fn = ir.Function(self.mc.module, ir.FunctionType(VOID, args), self.mc.unique(name))
        fn.linkage = "internal"
        self.created.append(fn.name)
        return fn

    def start_function(self, fn: ir.Function) -> None:
        entry = fn.append_basic_block("entry")
        self.alloca_builder = ir.IRBuilder(entry)
        body = fn.append_basic_block("body")
        self.alloca_builder.branch(body)
        self.alloca_builder.position_at_start(entry)
        self.b = ir.IRBuilder(body)
        self.low = Lowering(self.mc, self.b)
        self.env: dict[str, Val] = {}
        self.locals: dict[str, object] = {}
        self.memo: list[_Scope] = [_Scope(None)]
        self.values: dict[Expr, Val] = {}       # what the scopes in ``memo`` know
        self.vec: VecCtx | None = None

    def save_state(self) -> tuple:
        return (self.alloca_builder, self.b, self.low, self.env, self.locals, self.memo, self.values,
                self.vec, self.params, self.in_parallel)

    def restore_state(self, state: tuple) -> None:
        (self.alloca_builder, self.b, self.low, self.env, self.locals, self.memo, self.values,
         self.vec, self.params, self.in_parallel) = state

    def alloca(self, t: ir.Type, align: int | None = None) -> ir.Value:
        return self.alloca_builder.alloca(t, align=align)

    def render(self) -> ir.Function:
        self.block(self.kernel.body)
        self.b.ret_void()
        return self.fn

    # -- memo (structural CSE within scopes)
    def push(self, binds: str | None = None) -> None:
        """A new memo scope: a branch or loop body (``binds`` None), or one iteration of a fully
        unrolled loop binding the variable ``binds`` (its code runs straight on from what came
        before, so an expression that does not depend on ``binds`` is remembered beyond it)."""
        self.memo.append(_Scope(binds))

    def pop(self) -> None:
        values = self.values
        for e in self.memo.pop().keys:
            values.pop(e, None)

    def forget(self, name: str) -> None:
        for e in [e for e in self.values if name in e.reads]:
            del self.values[e]

    def forget_written(self, stmts: tuple) -> None:
        """Forget every value read from a param or local that ``stmts`` write."""
        written = {s.param if isinstance(s, Store) else s.local for s in walk_stmts(stmts)
                   if isinstance(s, (Store, LocalStore, Accumulate))}
        for name in written:
            self.forget(name)

    # -- helpers on values
    def vec_key(self) -> object:
        return id(self.vec.range) if self.vec else None

    def width(self) -> int:
        return self.vec.width if self.vec else 1

    def vector(self, v: Val, dtype: np.dtype) -> ir.Value:
        """The per-lane LLVM value of ``v`` in the current vector loop."""
        if v.kind == "v":
            return v.value
        w = self.vec.width
        if v.kind == "u":
            return splat_value(self.b, v.value, w)
        base = splat_value(self.b, v.value, w)
        lanes = ir.Constant(ir.VectorType(v.value.type, w), [k * v.stride for k in range(w)])
        return self.b.add(base, lanes)

    def index64(self, v: ir.Value) -> ir.Value:
        if v.type == I64:
            return v
        c = const_value(v)
        if c is not None:
            return I64(int(c))
        return self.b.sext(v, I64) if isinstance(v.type, ir.IntType) else v

    def element_ptr(self, param: str, index: ir.Value) -> ir.Value:
        ptr, p = self.params[param]
        return inbounds_gep(self.b, ptr, [self.index64(index)], memory_type(p.dtype))

    # -- expressions
    def emit(self, e: Expr) -> Val:
        hit = self.values.get(e)
        if hit is not None:
            return hit
        v = self._emit(e)
        self.values[e] = v
        self.scope_for(e).keys.append(e)
        return v

    def scope_for(self, e: Expr) -> "_Scope":
        """The outermost scope where ``e``'s value is computed once and then reused: past the
        unrolled iterations whose variables it does not read (loop-invariant code of an
        unrolled tile is emitted once, not once per tile element)."""
        k = len(self.memo) - 1
        while k > 0 and self.memo[k].binds is not None and self.memo[k].binds not in e.variables:
            k -= 1
        return self.memo[k]

    def _emit(self, e: Expr) -> Val:
        if isinstance(e, Const):
            return Val("u", ir.Constant(value_type(e.dtype), _llvm_constant(e)))
        if isinstance(e, Var):
            return self.env[e.name]
        if isinstance(e, Load):
            return self.emit_load(e)
        if isinstance(e, LocalLoad):
            return self.local(e.local).load(self.emit(e.index))
        return self.emit_op(e)

    def local(self, name: str):
        storage = self.locals.get(name)
        if storage is None:     # defined outside an outlined parallel body
            raise Unsupported("parallel", self.parallel_key, f"local {name} used in a parallel loop")
        return storage


    def emit_op(self, e: Op) -> Val:
        name, arg_dtype = e.op, e.args[0].dtype if e.op != "select" else e.args[1].dtype
        if name in mathlib.EXPANDED and is_float(arg_dtype):
            if name in ("sin", "cos"):
                return self.emit_sin_cos(e)
            return self.emit(mathlib.expand(name, e.args))
        args = [self.emit(a) for a in e.args]
        if all(a.uniform for a in args):
            return Val("u", self.scalar_op(e, [a.value for a in args], arg_dtype))
        affine = self.affine_op(e, args)
        if affine is not None:
            return affine
        pattern = self.lane_pattern(e, args)
        if isinstance(pattern, Val):
            return pattern
        values = [self.vector(a, x.dtype) for a, x in zip(args, e.args)]
        if name in ("floordiv", "mod") and e.dtype == INDEX and args[1].uniform \
                and self.low.divides_slowly(values[1]) and self.index_fits_int32():
            return Val("v", self.narrow_division(name, values), pattern=pattern)
        return Val("v", self.low.apply(name, values, arg_dtype, e.dtype), pattern=pattern)

    def narrow_division(self, name: str, values: list) -> ir.Value:
        """A per-lane int64 ``floordiv``/``mod`` by a constant computed on int32 lanes: SIMD has no
        64-bit multiply-high, so LLVM splits it into a scalar division per lane."""
        narrow = ir.VectorType(I32, values[0].type.count)
        x, y = (self.b.trunc(v, narrow) for v in values)
        return self.b.sext(self.low.apply(name, [x, y], int32, int32), values[0].type)

    def lane_pattern(self, e: Op, args: list[Val]):
        """For integer index arithmetic: the ``pattern`` of the result (see ``Val``), a whole
        Val when the result is a per-lane constant (``i % c`` of an aligned loop index), or
        None."""
        if e.dtype.kind not in "iu" or self.vec is None:
            return None
        w, name = self.vec.width, e.op
        if name in ("floordiv", "mod") and args[0].kind == "a" and args[0].stride == 1 and args[1].uniform:
            c = const_value(args[1].value)
            if c is None or c <= 0 or w % int(c) or not args[0].align or args[0].align % int(c):
                return None
            c = int(c)
            if name == "mod":       # the base is a multiple of c: lane k gives k % c
                return Val("v", ir.Constant(ir.VectorType(value_type(e.dtype), w), [k % c for k in range(w)]))
            base = self.b.sdiv(args[0].value, ir.Constant(args[0].value.type, c))   # exact
            return (base, 1, c, None)
        patterned = [a for a in args if a.pattern is not None]
        if len(patterned) != 1 or name not in ("add", "sub", "mul", "cast", "min"):
            return None
        base, stride, div, clamp = patterned[0].pattern
        if name == "cast":
            cast = lambda v: None if v is None else self.fold_or_apply("cast", [v], [e.args[0].dtype], e.dtype)
            return (cast(base), stride, div, cast(clamp))
        other = args[1] if args[0] is patterned[0] else args[0]
        if not other.uniform:
            return None
        apply = lambda op, v: None if v is None else self.fold_or_apply(op, [v, other.value], [e.dtype] * 2, e.dtype)
        if name == "min":           # min(pattern, u): the lanes past u read u's element
            if clamp is not None or stride < 0:
                return None
            return (base, stride, div, other.value)
        if name == "mul":
            c = const_value(other.value)
            if c is None or (clamp is not None and c < 0):
                return None
            return (apply("mul", base), stride * int(c), div, apply("mul", clamp))
        if name == "sub" and args[1] is patterned[0]:
            return None
        return (apply(name, base), stride, div, apply(name, clamp))

    def scalar_op(self, e: Op, values: list[ir.Value], arg_dtype: np.dtype) -> ir.Value:
        return self.fold_or_apply(e.op, values, [a.dtype for a in e.args], e.dtype)

    def fold_or_apply(self, name: str, values: list[ir.Value], arg_dtypes: list[np.dtype],
                      dtype: np.dtype) -> ir.Value:
        """The op on scalars; computed here (with the interpreter's semantics) when all are constants."""
        consts = [const_value(v) for v in values]
        if all(c is not None for c in consts) and name not in ("sin", "cos"):
            fast = _fold_index_op(name, consts, dtype)
            if fast is not None:
                return ir.Constant(value_type(dtype), fast)
            scalars = [d.type(c) for d, c in zip(arg_dtypes, consts)]
            folded = apply_op(name, scalars, dtype)
            return ir.Constant(value_type(dtype), _python_value(folded, dtype))
        arg_dtype = arg_dtypes[1] if name == "select" else arg_dtypes[0]
        return self.low.apply(name, values, arg_dtype, dtype)

    def affine_op(self, e: Op, args: list[Val]) -> Val | None:
        """Keep integer index arithmetic on affine values symbolic (base + lane * stride)."""
        if not e.dtype.kind in "iu" or any(a.kind == "v" for a in args):
            return None
        name = e.op
        if name in ("add", "sub"):
            a, b = args
            sa, sb = a.stride if a.kind == "a" else 0, b.stride if b.kind == "a" else 0
            base = self.fold_or_apply(name, [a.value, b.value], [e.dtype] * 2, e.dtype)
            stride = sa + sb if name == "add" else sa - sb
            return Val("a", base, stride) if stride else Val("u", base)
        if name == "mul":
            if args[0].kind == args[1].kind:
                return None
            a, b = args if args[0].kind == "a" else (args[1], args[0])
            c = const_value(b.value)
            if c is None:
                return None
            base = self.fold_or_apply("mul", [a.value, b.value], [e.dtype] * 2, e.dtype)
            return Val("a", base, a.stride * int(c)) if c else Val("u", base)
        if name == "neg":
            base = self.fold_or_apply("neg", [args[0].value], [e.dtype], e.dtype)
            return Val("a", base, -args[0].stride)
        src = e.args[0].dtype
        # (widening a narrow int loses the wrap-around an affine value has no room for)
        if name == "cast" and src.kind in "iu" and (src.itemsize >= 4 or e.dtype.itemsize <= src.itemsize):
            base = self.fold_or_apply("cast", [args[0].value], [e.args[0].dtype], e.dtype)
            # a multiple of a power of two stays one when truncated (a loop index read as int32)
            align = args[0].align
            keeps = e.dtype.itemsize >= src.itemsize or align & (align - 1) == 0
            return Val("a", base, args[0].stride, align if keeps else 0)
        return None

    def emit_sin_cos(self, e: Op) -> Val:
        """The polynomial on normal arguments; C library calls when any lane is huge."""
        x = e.args[0]
        arg = self.emit(x)
        ok = self.emit(mathlib.fast_sin_cos_ok(x))
        b = self.b
        all_ok = ok.value
        if not ok.uniform:
            all_ok = self.reduce_bool_and(ok.value)
        fast_block = b.append_basic_block("trig.fast")
        slow_block = b.append_basic_block("trig.slow")
        merge = b.append_basic_block("trig.done")
        b.cbranch(all_ok, fast_block, slow_block)
        b.position_at_end(fast_block)
        self.push()
        fast = self.emit(mathlib.expand(e.op, (x,)))
        self.pop()
        uniform = arg.uniform and fast.uniform
        fast_value = fast.value if uniform else self.vector(fast, e.dtype)
        fast_end = b.block
        b.branch(merge)
        b.position_at_end(slow_block)
        slow_arg = arg.value if uniform else self.vector(arg, e.dtype)
        slow_value = self.per_lane_call(e.op, slow_arg)
        slow_end = b.block
        b.branch(merge)
        b.position_at_end(merge)
        phi = b.phi(fast_value.type)
        phi.add_incoming(fast_value, fast_end)
        phi.add_incoming(slow_value, slow_end)
        return Val("u" if uniform else "v", phi)

    def per_lane_call(self, name: str, x: ir.Value) -> ir.Value:
        b = self.b
        if not isinstance(x.type, ir.VectorType):
            return self.low.apply(name, [x], None, None)
        out = ir.Constant(x.type, ir.Undefined)
        for k in range(x.type.count):
            lane = self.low.apply(name, [b.extract_element(x, I32(k))], None, None)
            out = b.insert_element(out, lane, I32(k))
        return out

    def reduce_bool_and(self, v: ir.Value) -> ir.Value:
        fn = self.mc.intrinsic("llvm.vector.reduce.and", I1, [v.type], [v.type])
        return self.b.call(fn, [v])

    def combine(self, name: str, a: Val, b: Val, dtype: np.dtype) -> Val:
        if a.uniform and b.uniform:
            return Val("u", self.low.apply(name, [a.value, b.value], dtype, dtype))
        return Val("v", self.low.apply(name, [self.vector(a, dtype), self.vector(b, dtype)],
                                       dtype, dtype))

    # -- statements
    def block(self, stmts: tuple) -> None:
        saved = dict(self.locals)
        for s in stmts:
            getattr(self, "stmt_" + type(s).__name__)(s)
        self.locals = saved


    def stmt_DefineLocal(self, s: DefineLocal) -> None:
        init = self.emit(s.init) if s.init is not None else None
        loc = s.local
        if loc.name in self.array_locals:
            if init is not None and not init.uniform:
                raise Unsupported("loop", self.vec_key(), "per-lane init of an array local")
            self.locals[loc.name] = ArrayLocal(self, loc, init)
        else:
            lanes = self.vec.width if self.vec else 1
            if init is not None and lanes > 1:
                init = Val("v", self.vector(init, loc.dtype))
            elif init is not None and not init.uniform:
                raise Unsupported("loop", self.vec_key(), "per-lane init of an outer local")
            init_block = None
            if init is not None:      # a block to put the init stores of lazily made slots into
                init_block = self.b.append_basic_block(f"init.{loc.name}")
                self.b.branch(init_block)
                self.b.position_at_end(init_block)
                after = self.b.append_basic_block(f"after.{loc.name}")
                self.b.branch(after)
                self.b.position_at_end(after)
            self.locals[loc.name] = SlotLocal(self, loc, init, init_block, lanes)
        self.forget(loc.name)

    def stmt_LocalStore(self, s: LocalStore) -> None:
        self.local(s.local).store(self.emit(s.index), self.emit(s.value))
        self.forget(s.local)

    def stmt_Accumulate(self, s: Accumulate) -> None:
        self.local(s.local).accumulate(self.emit(s.index), s.op, self.emit(s.value))
        self.forget(s.local)

    def stmt_If(self, s: If) -> None:
        cond = self.emit(s.cond)
        if not cond.uniform:
            raise Unsupported("loop", self.vec_key(), "branch on a per-lane condition")
        b = self.b
        then_block = b.append_basic_block("then")
        else_block = b.append_basic_block("else")
        merge = b.append_basic_block("endif")
        b.cbranch(cond.value, then_block, else_block)
        for block, body in ((then_block, s.then), (else_block, s.else_)):
            b.position_at_end(block)
            self.push()
            self.block(body)
            self.pop()
            b.branch(merge)
        b.position_at_end(merge)


_INDEX_FOLDS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
                 "floordiv": lambda a, b: a // b if b else 0, "mod": lambda a, b: a % b if b else 0,
                 "min": min, "max": max}


def _fold_index_op(name: str, consts: list, dtype: np.dtype) -> int | None:
    """Integer index arithmetic on constants, computed directly (the common case, kept fast)."""
    fn = _INDEX_FOLDS.get(name)
    if fn is None or dtype.kind != "i" or len(consts) != 2:
        return None
    return wrap_int(fn(int(consts[0]), int(consts[1])), dtype)


def _llvm_constant(c: Const):
    """A constant's value as its LLVM type holds it: bfloat16 (an i16 register) as its bits."""
    if c.dtype == bfloat16:
        return int(np.asarray(c.value, np.float32).astype(bfloat16).view(np.uint16))
    return c.value


def _python_value(x, dtype: np.dtype):
    if dtype == bool_:
        return bool(x)
    return float(x) if is_float(dtype) else int(x)


def render_kernel(mc: ModuleContext, kernel: Kernel) -> ir.Function:
    """Add ``kernel`` to the module as an internal function of noalias buffer pointers."""
    scalar_loops: set = set()
    array_locals: set = set()
    serial_loops: set = set()
    scalar_tails: set = set()
    for _ in range(64):
        r = _KernelRenderer(mc, kernel, f"k.{kernel.name}", scalar_loops, array_locals, serial_loops, scalar_tails)
        try:
            return r.render()
        except Unsupported as why:
            mc.discard(r.created)
            if config.debug >= 3:
                print(f"[fgrad llvm] kernel {kernel.name}: {why.reason}; re-rendering without "
                      f"that {why.kind} hint", file=sys.stderr)
            target = {"loop": scalar_loops, "local": array_locals, "parallel": serial_loops,
                      "tail": scalar_tails}[why.kind]
            if why.key in target or why.key is None:
                raise RuntimeError(f"kernel {kernel.name}: cannot render ({why.reason})") from None
            target.add(why.key)
    raise RuntimeError(f"kernel {kernel.name}: too many rendering retries")


class _Scope:
    """One memo scope of the renderer: the expressions whose values it keeps (in the renderer's
    ``values``, until it ends), and the loop variable it binds when it is an unrolled
    iteration (see ``_KernelRenderer.push``)."""

    __slots__ = ("binds", "keys")

    def __init__(self, binds: str | None) -> None:
        self.binds, self.keys = binds, []
