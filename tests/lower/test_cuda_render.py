"""The CUDA renderer: op semantics text, kernel modes, launch plans (run by the interpreter),
and — where nvcc is on PATH — every rendered program compiles with ``nvcc --ptx -arch=sm_90``."""
from __future__ import annotations

import importlib.util
import pathlib
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fgrad
import fgrad.numpy as fnp
from fgrad import lax
from fgrad.lower import contraction as C
from fgrad.lower import kernel as K
from fgrad.lower import rules  # noqa: F401 - registers the lowering rules
from fgrad.lower.cuda import (
    PRELUDE, Branch, Launch, LaunchPlan, Repeat, WhileLoop, const_text, op_text, render_kernel,
    render_program,
)
from fgrad.lower.interpret import run_kernel, run_program
from fgrad.lower.schedule import lower_program
from fgrad.transforms.jit import closure_convert
from tests.lower.cuda_host import GXX, HostModule

f32 = K.float32
NVCC = shutil.which("nvcc")
ALL_DTYPES = [K.float32, K.float64, K.int32, K.int64, K.uint32, K.uint8, K.int8, K.int16, K.uint16, K.bool_]


def nvcc_compile(programs: dict[str, K.Program]) -> str:
    """Render every program into one translation unit and compile it to PTX; returns the source."""
    parts = [PRELUDE]
    for name, program in programs.items():
        source, _ = render_program(program, prefix=f"{name}_")
        assert source.startswith(PRELUDE)
        parts.append(source[len(PRELUDE):])
    source = "\n".join(parts)
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "programs.cu"
        path.write_text(source)
        result = subprocess.run([NVCC, "--ptx", "-arch=sm_90", "-o", str(pathlib.Path(tmp) / "out.ptx"),
                                 str(path)], capture_output=True, text=True, timeout=300)
        ptx = (pathlib.Path(tmp) / "out.ptx").read_text() if result.returncode == 0 else ""
    assert result.returncode == 0, result.stderr[-4000:]
    for name, program in programs.items():
        _, plan = render_program(program, prefix=f"{name}_")
        for launch in plan.launches():
            assert f".entry {launch.kernel}(" in ptx, launch.kernel
    return source


# --- scalar op text: the guards that give the IR's total semantics ---------------------------

OP_GUARDS = [
    ("div", K.int32, "fg_div", "if (b == (T)0) return (T)0;"),
    ("rem", K.int64, "fg_rem", "if (b == (T)0 || fg_minus_one(b)) return (T)0;"),
    ("floordiv", K.int32, "fg_floordiv", "((r < (T)0) != (b < (T)0))"),
    ("mod", K.uint8, "fg_mod", "(T)(r + b)"),
    ("floordiv", K.float32, "fg_floordiv", "fg_float_floordiv"),
    ("mod", K.float64, "fg_mod", "copysign((F)0, b)"),
    ("shl", K.int32, "fg_shl", "if ((U)s >= (U)fg_int<T>::bits) return (T)0;"),
    ("shr", K.int64, "fg_shr", "? (T)-1 : (T)0"),
    ("add", K.int32, "fg_add", "(T)((U)a + (U)b)"),
    ("mul", K.int64, "fg_mul", "(T)((U)a * (U)b)"),
    ("neg", K.int32, "fg_neg", "(T)(0u - (U)a)"),
    ("pow", K.int32, "fg_pow", "a == (T)-1"),
    ("max", K.float32, "fg_max", "(a > b || a != a) ? a : (a == b && !signbit(a) ? a : b)"),
    ("min", K.float64, "fg_min", "(a < b || a != a) ? a : (a == b && signbit(a) ? a : b)"),
    ("max", K.bool_, "fg_max", "return a || b;"),
    ("sign", K.float32, "fg_sign", "(a < 0.0f ? -1.0f : a)"),
    ("round", K.float32, "roundf(", None),
    ("round_even", K.float32, "rintf(", None),
    ("round_even", K.float64, "rint(", None),
    ("logistic", K.float32, "(1.0f / (1.0f + expf(-", None),
    ("log1p", K.float32, "log1pf(", None),
    ("expm1", K.float64, "expm1(", None),
    ("rsqrt", K.float32, "(1.0f / sqrtf(", None),
    ("is_finite", K.float32, "isfinite(", None),
    ("fma", K.float32, "fmaf(", None),
    ("fma", K.int32, "fg_fma", None),
    ("rem", K.float32, "fmodf(", None),
    ("pow", K.float64, "pow(", None),
    ("abs", K.float32, "fabsf(", None),
    ("abs", K.int32, "fg_abs", "fg_neg(a)"),
    ("not", K.bool_, "(!", None),
    ("not", K.uint8, "((unsigned char)~", None),
]


@pytest.mark.parametrize("name,dtype,text,guard", OP_GUARDS, ids=lambda v: str(v)[:20])
def test_op_text_has_its_guard(name, dtype, text, guard):
    arity = 3 if name == "fma" else (1 if name in K.FLOAT_UNARY + K.NUMERIC_UNARY + ("is_finite", "not")
                                     else 2)
    rendered = op_text(name, ["x", "y", "z"][:arity], dtype, dtype)
    assert text in rendered
    if guard is not None:
        assert guard in PRELUDE


def test_cast_and_bitcast_text():
    assert "fg_float_to<int>(x)" == op_text("cast", ["x"], K.float32, K.int32)
    assert "if (d != d) return (I)0;" in PRELUDE                       # NaN -> 0
    assert "if (d >= fg_limits<I>::hi)" in PRELUDE                     # saturate
    assert op_text("cast", ["x"], K.float32, K.bool_) == "(x != 0)"     # NaN -> true
    assert op_text("cast", ["x"], K.int32, K.float32) == "((float)x)"
    assert op_text("bitcast", ["x"], K.float32, K.int32) == "__float_as_int(x)"
    assert op_text("bitcast", ["x"], K.int64, K.float64) == "__longlong_as_double(x)"
    assert op_text("bitcast", ["x"], K.int32, K.uint32) == "fg_bitcast<unsigned int>(x)"
    assert "memcpy(&y, &x, sizeof(To));" in PRELUDE


def _parse_c_float(text: str, dtype) -> float:
    text = text.strip("()")
    return float(np.dtype(dtype).type(text[:-1] if text.endswith("f") else text))


@settings(max_examples=60, deadline=None)
@given(value=st.floats(allow_nan=False, allow_infinity=False, width=32), double=st.booleans())
def test_float_literals_are_exact(value, double):
    dtype = K.float64 if double else K.float32
    text = const_text(value, dtype)
    assert _parse_c_float(text, dtype) == float(dtype.type(value))
    assert text.endswith("f") or text.endswith("f)") or double


def test_special_literals():
    assert const_text(np.inf, f32) == "__int_as_float(0x7f800000)"
    assert const_text(-np.inf, K.float64).startswith("(-__longlong_as_double")
    assert "0x7fffffff" in const_text(np.nan, f32)
    assert const_text(-2 ** 31, K.int32) == "(-2147483647 - 1)"
    assert const_text(-2 ** 63, K.int64) == "(-9223372036854775807LL - 1)"
    assert const_text(7, K.uint32) == "7u" and const_text(True, K.bool_) == "true"


# --- kernels and their launch modes ------------------------------------------------------------

def elementwise_kernel(n: int, parallel: bool) -> K.Kernel:
    x, out, i = K.Param("x", f32, n), K.Param("out", f32, n), K.Var("i")
    body = (K.Range(i, 0, n, (out.store(i, K.op("tanh", x[i] * 2.0 + 1.0) * x[i]),), parallel=parallel,
                    vectorize=K.AUTO),)
    return K.Kernel("ew", (x, out), body)


def test_parallel_range_is_a_grid_stride_loop():
    text, mode, grid, block = render_kernel(elementwise_kernel(1 << 20, True))
    assert mode == "grid" and block == 256 and grid == (1 << 20) // 256
    assert "blockIdx.x * (int)blockDim.x + (int)threadIdx.x" in text and "fg_threads" in text
    assert 'extern "C" __global__ void ew(const float* __restrict__ x, float* __restrict__ out)' in text


def test_independent_outer_loop_is_distributed_even_unmarked():
    _, mode, grid, block = render_kernel(elementwise_kernel(40, False))
    assert (mode, grid, block) == ("grid", 1, 64)


def test_nested_parallel_ranges_flatten():
    x, out, i, j = K.Param("x", f32, 12), K.Param("out", f32, 12), K.Var("i"), K.Var("j")
    inner = K.Range(j, 0, 4, (out.store(i * 4 + j, x[j * 3 + i]),), parallel=True)
    text, mode, _, block = render_kernel(K.Kernel("t", (x, out), (K.Range(i, 0, 3, (inner,), parallel=True),)))
    assert mode == "grid" and block == 32
    assert "fg_flat < 12;" in text and "(fg_flat / 4)" in text and "(fg_flat % 4)" in text


def test_full_reduction_runs_on_one_thread():
    x, out, i = K.Param("x", f32, 100), K.Param("out", f32, 1), K.Var("i")
    acc = K.Local("acc", f32)
    k = K.Kernel("sum", (x, out), (K.DefineLocal(acc, K.Const(0.0, f32)),
                                   K.Range(i, 0, 100, (acc.accumulate(0, "add", x[i]),)),
                                   out.store(0, acc[0])))
    text, mode, grid, block = render_kernel(k)
    assert (mode, grid, block) == ("single", 1, 1)
    assert "acc[0] = (acc[0] + fg_t" in text


def test_init_then_update_runs_in_one_block_with_barriers():
    """Initialise out (distributable), then accumulate over the outer axis (not: the store
    index does not use that axis): one block, thread 0 for the second, a barrier between."""
    x, out, i, j, r = K.Param("x", f32, 12), K.Param("out", f32, 4), K.Var("i"), K.Var("j"), K.Var("r")
    init = K.Range(i, 0, 4, (out.store(i, K.Const(0.0, f32)),))
    update = K.Range(r, 0, 3, (K.Range(j, 0, 4, (out.store(j, out[j] + x[r * 4 + j]),)),))
    text, mode, grid, block = render_kernel(K.Kernel("red", (x, out), (init, update)))
    assert (mode, grid, block) == ("block", 1, 32)
    assert text.count("__syncthreads();") == 1 and "if (threadIdx.x == 0)" in text


def test_index_arithmetic_is_32_bit_where_every_value_fits():
    """Loop bounds bound every index: ``int`` arithmetic, and floor division of a value never
    negative by a positive constant is C's ``/``. An index loaded from memory, or a loop
    whose counter could pass 2**31, keeps ``long long``."""
    x, out, i = K.Param("x", f32, 12), K.Param("out", f32, 12), K.Var("i")
    k = K.Kernel("small", (x, out), (K.Range(i, 0, 12, (out.store(i, x[(i // 4) * 4 + (i - 3) % 4]),)),))
    text = render_kernel(k)[0]
    assert "long long" not in text and "LL" not in text
    assert "(i / 4)" in text and "fg_mod(" in text          # i - 3 may be negative: floor mod
    idx = K.Param("idx", K.int64, 5)
    gather = K.Kernel("gather", (idx, x, out), (K.Range(i, 0, 5, (out.store(i, x[idx[i]]),)),))
    assert "for (long long i" in render_kernel(gather)[0]
    big = K.Param("big", f32, 8)
    huge = K.Kernel("huge", (big,), (K.Range(i, 0, 1 << 31, (big.store(i % 8, K.Const(1.0, f32)),)),))
    assert "long long" in render_kernel(huge)[0]


def test_data_dependent_scatter_is_serial():
    idx, upd, out, i = K.Param("idx", K.int64, 5), K.Param("upd", f32, 5), K.Param("out", f32, 8), K.Var("i")
    k = K.Kernel("scatter", (idx, upd, out), (K.Range(i, 0, 5, (out.store(idx[i], out[idx[i]] + upd[i]),)),))
    assert render_kernel(k)[1] == "single"


def test_masked_load_with_loaded_index_reads_only_under_the_mask():
    idx, x, out, i = K.Param("idx", K.int64, 4), K.Param("x", f32, 8), K.Param("out", f32, 4), K.Var("i")
    value = x.load(idx[i], mask=idx[i] < 8)
    text = render_kernel(K.Kernel("g", (idx, x, out), (K.Range(i, 0, 4, (out.store(i, value),)),)))[0]
    assert "if (fg_t" in text and "= x[" in text
    masked = x.load(i * 2, mask=i < 3)
    text = render_kernel(K.Kernel("m", (x, out), (K.Range(i, 0, 4, (out.store(i, masked),)),)))[0]
    assert "? x[" in text and ": 0.0f)" in text


def test_cse_forgets_what_a_loop_writes():
    """p[0] read before a loop that rewrites p[0]: the loop must read it again each trip."""
    p, i = K.Param("p", f32, 1), K.Var("i")
    k = K.Kernel("again", (p,), (p.store(0, p[0] + 1.0),
                                 K.Range(i, 0, 3, (p.store(0, p[0] * 2.0),))))
    text = render_kernel(k)[0]
    loop = text[text.index("for ("):]
    assert "= p[0];" in loop


def test_reserved_names_are_renamed():
    x, out, i = K.Param("int", f32, 4), K.Param("fg_t0", f32, 4), K.Var("float")
    k = K.Kernel("switch", (x, out), (K.Range(i, 0, 4, (out.store(i, x[i]),)),))
    text = render_kernel(k, "switch_k")[0]
    assert "fg_u_int" in text and "fg_u_fg_t0" in text and "fg_u_float" in text


# --- launch plans, executed by the interpreter ---------------------------------------------------

def add_kernel(n: int, name: str = "add") -> K.Kernel:
    a, b, out, i = K.Param("a", f32, n), K.Param("b", f32, n), K.Param("out", f32, n), K.Var("i")
    return K.Kernel(name, (a, b, out), (K.Range(i, 0, n, (out.store(i, a[i] + b[i]),)),))


def copy_kernel(n: int, dtype=f32) -> K.Kernel:
    a, out, i = K.Param("a", dtype, n), K.Param("out", dtype, n), K.Var("i")
    return K.Kernel("copy", (a, out), (K.Range(i, 0, n, (out.store(i, a[i]),)),))


def scan_program(rows: int = 6, n: int = 19) -> K.Program:
    xs, out = K.Buffer("xs", f32, (rows, n)), K.Buffer("out", f32, (n,))
    idx, carry, tmp = K.Buffer("i", K.int32, ()), K.Buffer("carry", f32, (n,)), K.Buffer("tmp", f32, (n,))
    px, pi, pc, po, j = K.Param("xs", f32, rows * n), K.Param("i", K.int32, 1), K.Param("c", f32, n), \
        K.Param("o", f32, n), K.Var("j")
    row = K.cast(pi[0], K.int64)
    step = K.Kernel("add_row", (px, pi, pc, po), (K.Range(j, 0, n, (po.store(j, pc[j] + px[row * n + j]),)),))
    zp = K.Param("z", f32, n)
    zero = K.Kernel("zero", (zp,), (K.Range(j, 0, n, (zp.store(j, K.Const(0.0, f32)),)),))
    return K.Program("scan", (xs,), (out,), (
        K.Call(zero, (carry,)),
        K.Loop(rows, (K.Call(step, (xs, idx, carry, tmp)), K.Call(copy_kernel(n), (tmp, carry))), index=idx),
        K.Call(copy_kernel(n), (carry, out))))


def while_program(n: int = 5) -> K.Program:
    x, out = K.Buffer("x", f32, (n,)), K.Buffer("out", f32, (n,))
    state, cond, doubled = K.Buffer("state", f32, (n,)), K.Buffer("cond", K.bool_, ()), K.Buffer("d", f32, (n,))
    ps, pc = K.Param("s", f32, n), K.Param("c", K.bool_, 1)
    less = K.Kernel("less", (ps, pc), (pc.store(0, ps[0] < 1000.0),))
    return K.Program("grow", (x,), (out,), (
        K.Call(copy_kernel(n), (x, state)),
        K.While(cond, (K.Call(less, (state, cond)),),
                (K.Call(add_kernel(n), (state, state, doubled)), K.Call(copy_kernel(n), (doubled, state)))),
        K.Call(copy_kernel(n), (state, out))))


def switch_program(n: int = 8) -> K.Program:
    sel, x, out, tmp = K.Buffer("sel", K.int32, ()), K.Buffer("x", f32, (n,)), K.Buffer("out", f32, (n,)), \
        K.Buffer("tmp", f32, (n,))
    a, o, i = K.Param("a", f32, n), K.Param("out", f32, n), K.Var("i")
    double = K.Kernel("double", (a, o), (K.Range(i, 0, n, (o.store(i, a[i] + a[i]),), parallel=True),))
    return K.Program("switchy", (sel, x), (out,), (
        K.Switch(sel, ((K.Call(copy_kernel(n), (x, out)),), (K.Call(double, (x, out)),),
                       (K.Call(double, (x, tmp)), K.Call(add_kernel(n), (tmp, x, out))))),))


def execute_plan(program: K.Program, plan: LaunchPlan, *inputs: np.ndarray, launch=None) -> list[np.ndarray]:
    """Run a launch plan as a runtime would, each launch by the interpreter (or by
    ``launch(kernel_name, arrays, grid, block)``): checks the plan's buffer indices, arena
    offsets, loops and branches against the program's semantics."""
    kernels = dict(zip(dict.fromkeys(l.kernel for l in plan.launches()), K.kernels_of(program)))
    arena = np.full(plan.arena_bytes, 0xFF, np.uint8)
    arrays = []
    for k, slot in enumerate(plan.buffers):
        if slot.kind == "temporary":
            arrays.append(arena[slot.offset:slot.offset + slot.nbytes].view(slot.dtype))
        elif slot.kind == "input":
            arrays.append(np.array(inputs[k], slot.dtype).reshape(-1))
        elif slot.kind == "constant":
            arrays.append(program.constants[program.externals[k]].reshape(-1).copy())
        else:
            arrays.append(np.empty(slot.shape, slot.dtype).reshape(-1))

    def run(steps):
        for s in steps:
            if isinstance(s, Launch) and launch is not None:
                launch(s.kernel, [arrays[a] for a in s.args], s.grid, s.block)
            elif isinstance(s, Launch):
                run_kernel(kernels[s.kernel], *(arrays[a] for a in s.args))
            elif isinstance(s, Repeat):
                for i in range(s.count):
                    if s.index is not None:
                        arrays[s.index][0] = i
                    run(s.body)
            elif isinstance(s, WhileLoop):
                while True:
                    run(s.before)
                    if not arrays[s.cond][0]:
                        break
                    run(s.body)
            else:
                run(s.branches[min(max(int(arrays[s.index][0]), 0), len(s.branches) - 1)])

    run(plan.steps)
    return [arrays[k].reshape(slot.shape) for k, slot in enumerate(plan.buffers) if slot.kind == "output"]


def test_plan_structure_of_loop_while_switch():
    _, plan = render_program(scan_program())
    assert [type(s) for s in plan.steps] == [Launch, Repeat, Launch]
    loop = plan.steps[1]
    assert loop.count == 6 and plan.buffers[loop.index].name == "i"
    assert [l.kernel for l in plan.launches()] == ["zero", "add_row", "copy", "copy_1"]
    _, plan = render_program(while_program())
    assert isinstance(plan.steps[1], WhileLoop) and plan.buffers[plan.steps[1].cond].dtype == "bool"
    _, plan = render_program(switch_program())
    assert isinstance(plan.steps[0], Branch) and len(plan.steps[0].branches) == 3
    assert plan.kernel_modes["fg_k_double"] == "grid"     # a C keyword, renamed


@pytest.mark.parametrize("branch", [-1, 1, 5])
def test_plans_compute_what_the_interpreter_does(branch):
    rng = np.random.default_rng(0)
    cases = [(scan_program(), (rng.standard_normal((6, 19)).astype(np.float32),)),
             (while_program(), (np.array([3, 1, 2, 0, -1], np.float32),)),
             (switch_program(), (np.array(branch, np.int32), rng.standard_normal(8).astype(np.float32)))]
    for program, inputs in cases:
        _, plan = render_program(program)
        for got, want in zip(execute_plan(program, plan, *inputs), run_program(program, *inputs)):
            np.testing.assert_array_equal(got, want)


def test_plan_of_a_jitted_program_with_constants():
    c = fnp.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    f = lambda x: lax.fori_loop(0, 3, lambda i, v: v * 2 + c, x) + fnp.sum(x)
    program, consts = jitted_program(f, fnp.ones((2, 3)))
    _, plan = render_program(program)
    args = [np.asarray(a) for a in consts] + [np.ones((2, 3), np.float32)]
    for got, want in zip(execute_plan(program, plan, *args), run_program(program, *args)):
        np.testing.assert_array_equal(got, want)


# --- compiling with nvcc ----------------------------------------------------------------------

def every_op_kernel(dtype, n: int = 16) -> K.Kernel:
    """One kernel applying every scalar op that takes ``dtype``, and every cast and bitcast from it."""
    a, b, c = (K.Param(name, dtype, n) for name in "abc")
    i = K.Var("i")
    x, y, z = a[i], b[i], c[i]
    stores, outs = [], []

    def out(value):
        p = K.Param(f"o{len(outs)}", value.dtype, n)
        outs.append(p)
        stores.append(p.store(i, value))

    for name in sorted(K.OPS - {"select", "cast", "bitcast"}):
        if dtype.kind not in K._kinds_for(name):
            continue
        if name == "fma":
            out(K.op(name, x, y, z))
        elif name in K.FLOAT_UNARY + K.NUMERIC_UNARY + ("is_finite", "not"):
            out(K.op(name, x))
        else:
            out(K.op(name, x, y))
    out(K.select(x == y if dtype == K.bool_ else K.op("lt", x, y), x, y))
    for target in ALL_DTYPES:
        out(K.cast(x, target))
        if target != dtype and target.itemsize == dtype.itemsize and K.bool_ not in (target, dtype):
            out(K.bitcast(x, target))
    acc = K.Local("acc", dtype, 2)
    reduce_ops = [o for o in K.REDUCE_OPS if dtype.kind in K._kinds_for(o)]
    red = K.Param("red", dtype, 1)
    r = K.Var("r")
    tail = [K.DefineLocal(acc, K.Const(1, dtype)),
            K.Range(r, 0, n, [acc.accumulate(1, o, a[r]) for o in reduce_ops]),
            red.store(0, acc[1])]
    return K.Kernel(f"ops_{K.short_name(dtype)}", (a, b, c, *outs, red),
                    (K.Range(i, 0, n, stores, parallel=True), *tail))


def single_kernel_program(kernel: K.Kernel, n_inputs: int) -> K.Program:
    bufs = [K.Buffer(f"b_{p.name}", p.dtype, p.size) for p in kernel.params]
    return K.Program(kernel.name, bufs[:n_inputs], bufs[n_inputs:], (K.Call(kernel, bufs),))


def hand_built_programs() -> dict[str, K.Program]:
    programs = {f"ops_{K.short_name(d)}": single_kernel_program(every_op_kernel(d), 3) for d in ALL_DTYPES}
    programs["ew_par"] = single_kernel_program(elementwise_kernel(1000, True), 1)
    programs["ew"] = single_kernel_program(elementwise_kernel(33, False), 1)
    programs["scan"], programs["grow"], programs["switchy"] = scan_program(), while_program(), switch_program()
    for name, (lshape, rshape, dims) in {
            "mm": ((64, 48), (48, 80), (((1,), (0,)), ((), ()))),
            "bmm": ((3, 40, 24), (3, 24, 56), (((2,), (1,)), ((0,), (0,)))),
            "mm_tn": ((24, 130), (24, 70), (((0,), (0,)), ((), ())))}.items():
        lhs, rhs = K.Buffer("lhs", f32, lshape), K.Buffer("rhs", f32, rshape)
        (lc, rc), (lb, rb) = dims
        lf = [d for d in range(len(lshape)) if d not in lc + lb]
        rf = [d for d in range(len(rshape)) if d not in rc + rb]
        out = K.Buffer("out", f32, [lshape[d] for d in lb] + [lshape[d] for d in lf] + [rshape[d] for d in rf])
        con = C.dot_general("dot", lhs, rhs, out, dims, threads=2)
        programs[name] = K.Program(name, (lhs, rhs), (out,), con.steps)
    return programs


@pytest.mark.nvcc
@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
def test_hand_built_programs_compile():
    source = nvcc_compile(hand_built_programs())
    assert "fg_float_to<unsigned char>" in source and "__syncthreads();" in source


def jitted_program(f, *args) -> tuple[K.Program, list]:
    closed = fgrad.make_jaxpr(f)(*args)
    converted, consts = closure_convert(closed)
    return lower_program(converted, target="gpu"), consts


def elementwise_cases():
    rng = np.random.default_rng(0)
    x = fnp.asarray(rng.standard_normal((4, 5)).astype(np.float32))
    y = fnp.asarray(rng.standard_normal((4, 5)).astype(np.float32))
    i = fnp.asarray(rng.integers(-9, 9, (4, 5)).astype(np.int32))
    j = fnp.asarray(rng.integers(0, 9, (4, 5)).astype(np.int32))
    u = fnp.asarray(rng.integers(0, 255, (4, 5)).astype(np.uint8))
    b = x > 0
    unary = ["neg", "exp", "log", "log1p", "expm1", "tanh", "logistic", "sin", "cos", "sqrt", "rsqrt",
             "abs", "sign", "floor", "ceil", "is_finite"]
    binary = ["add", "sub", "mul", "div", "rem", "pow", "max", "min"]
    compare = ["eq", "ne", "lt", "le", "gt", "ge"]
    cases = {f"u_{n}": (getattr(lax, n), (x,)) for n in unary}
    cases.update({f"b_{n}": (getattr(lax, n), (x, y)) for n in binary})
    cases.update({f"bi_{n}": (getattr(lax, n), (i, j)) for n in binary if n != "pow"})
    cases.update({f"c_{n}": (getattr(lax, n), (x, y)) for n in compare})
    cases.update({f"bits_{n}": (getattr(lax, n), (i, j)) for n in
                  ["bitwise_and", "bitwise_or", "bitwise_xor", "shift_left", "shift_right_logical"]})
    cases.update({
        "not_i": (lax.bitwise_not, (i,)), "not_b": (lax.bitwise_not, (b,)),
        "round_away": (lambda v: lax.round(v), (x,)), "round_even": (lambda v: lax.round(v, 1), (x,)),
        "ipow": (lambda v: lax.integer_pow(v, 3), (x,)), "ipow_neg": (lambda v: lax.integer_pow(v, -2), (x,)),
        "select": (lambda p, v, w: lax.select_n(p, v, w), (b, x, y)),
        "to_i32": (lambda v: lax.convert_element_type(v, np.int32), (x,)),
        "to_u8": (lambda v: lax.convert_element_type(v, np.uint8), (x,)),
        "u8_to_f": (lambda v: lax.convert_element_type(v, np.float32) / 255.0, (u,)),
        "u8_add": (lambda v: v + 1, (u,)), "bool_to_f": (lambda p: p.astype(np.float32), (b,)),
        "square": (lax.square, (x,)), "clip": (lambda v: fnp.clip(v, -0.5, 0.5), (x,)),
        "fused": (lambda v: fnp.tanh(v * 2 + 1) * v, (x,)),
    })
    return cases


def program_cases():
    """The shapes of /tmp-style lowering checks: reductions, matmul, conv, pooling, control flow."""
    rng = np.random.default_rng(1)
    x = fnp.asarray(rng.standard_normal((4, 5)).astype(np.float32))
    w = fnp.asarray(rng.standard_normal((5, 3)).astype(np.float32))
    imgs = fnp.asarray(rng.standard_normal((2, 1, 8, 8)).astype(np.float32))
    k = fnp.asarray(rng.standard_normal((3, 1, 3, 3)).astype(np.float32))
    conv = lambda a, b: lax.conv_general_dilated(a, b, (1, 1), ((0, 0), (0, 0)))
    pool = lambda a: fgrad.nn.max_pool2d(a, 2)
    key = fgrad.random.key(0)
    tall = fnp.asarray(rng.standard_normal((500, 3)).astype(np.float32))
    tall_i = fnp.asarray(rng.integers(-99, 99, (500, 3)).astype(np.int32))
    return {
        "sum_split": (lambda v: fnp.sum(v, axis=0), (tall,)),
        "side_by_side": (lambda a, b: (a * 2, fnp.sum(b, axis=0), a.T + 1, b[0, 0] * 3), (x, tall)), "max_split": (lambda v: fnp.max(v), (tall_i,)),
        "sum1": (lambda v: fnp.sum(v, axis=1), (x,)), "sum0": (lambda v: fnp.sum(v, axis=0), (x,)),
        "maxall": (lambda v: fnp.max(v), (x,)), "argmax": (lambda v: fnp.argmax(v, axis=1), (x,)),
        "cumsum": (lambda v: fnp.cumsum(v, axis=0), (x,)),
        "matmul": (lambda a, b: a @ b, (x, w)), "transpose": (lambda v: v.T[1:3] * 2, (x,)),
        "grad_mm": (fgrad.grad(lambda a, b: fnp.sum(fnp.tanh(a @ b))), (x, w)),
        "conv": (conv, (imgs, k)),
        "grad_conv": (fgrad.grad(lambda a, b: fnp.sum(conv(a, b) ** 2), argnums=(0, 1)), (imgs, k)),
        "pool": (pool, (imgs,)), "grad_pool": (fgrad.grad(lambda a: fnp.sum(pool(a) ** 2)), (imgs,)),
        "fori": (lambda v: lax.fori_loop(0, 3, lambda i, c: c * 2 + 1, v), (x,)),
        "cond": (lambda v: lax.cond(fnp.sum(v) > 0, lambda c: c + 1, lambda c: c - 1, v), (x,)),
        "while": (lambda v: lax.while_loop(lambda c: fnp.sum(c) < 100, lambda c: c * 2 + 1, v), (fnp.abs(x),)),
        "scan": (lambda v: lax.scan(lambda c, xi: (c + xi, c * xi), fnp.zeros(5), v), (x,)),
        "randint": (lambda kk: fgrad.random.randint(kk, (5,), 0, 100), (key,)),
        "uniform": (lambda kk: fgrad.random.uniform(kk, (5,)), (key,)),
        "gather": (lambda v, idx: v[idx], (x, fnp.asarray(np.array([0, 3, 1], np.int32)))),
        "scatter_add": (lambda v, idx: v.at[idx].add(1.0), (x, fnp.asarray(np.array([0, 3, 0], np.int32)))),
        "log_softmax": (lambda v: fgrad.nn.log_softmax(v), (x,)),
    }


@pytest.mark.nvcc
@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
def test_jitted_elementwise_primitives_and_programs_compile():
    programs = {}
    for name, (f, args) in {**elementwise_cases(), **program_cases()}.items():
        programs[name] = jitted_program(f, *args)[0]
    nvcc_compile(programs)


def test_jitted_programs_plans_match_the_interpreter():
    """Without nvcc: the launch plans of jitted control-flow programs compute the program's result."""
    for name in ("fori", "cond", "while", "scan", "cumsum", "scatter_add"):
        f, args = program_cases()[name]
        program, consts = jitted_program(f, *args)
        source, plan = render_program(program)
        values = [np.asarray(c) for c in consts] + [np.asarray(a) for a in fgrad.tree.tree_leaves(args)]
        for got, want in zip(execute_plan(program, plan, *values), run_program(program, *values)):
            np.testing.assert_array_equal(got, want)


def _mnist_step_program() -> tuple[K.Program, list[np.ndarray]]:
    """The tutorial's jitted training step (on 256 random images) and its argument values."""
    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "mnist.py"
    spec = importlib.util.spec_from_file_location("fgrad_example_mnist", path)
    mnist = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mnist)
    rng = np.random.default_rng(0)
    X = fnp.asarray(rng.integers(0, 256, (256, 1, 28, 28)).astype(np.uint8))
    Y = fnp.asarray(rng.integers(0, 10, (256,)).astype(np.uint8))
    model = mnist.Model(key=fgrad.random.key(0))
    opt = fgrad.optim.adam(1e-3)
    step = mnist.make_step(opt, X, Y, 128)
    args = (model, opt.init(model), fgrad.random.key(1))
    program, consts = jitted_program(step, *args)
    values = [np.asarray(c) for c in consts] + [np.asarray(x) for x in fgrad.tree.tree_leaves(args)]
    return program, values


@pytest.mark.nvcc
@pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")
def test_mnist_training_step_compiles():
    program, _ = _mnist_step_program()
    source, plan = render_program(program)
    modes = list(plan.kernel_modes.values())
    assert modes.count("block") + modes.count("single") <= 2, plan.kernel_modes     # GPU-wide kernels
    # conv2's three GEMMs; 34 kernels since sampling follows JAX's algorithms (randint's two draws,
    # uniform from mantissa bits: two more kernels than fgrad's own sampling had)
    assert modes.count("gemm") == 3 and len(modes) <= 34, plan.kernel_modes
    nvcc_compile({"mnist": program})


# --- the rendered C run on the host: every op on edge values vs the interpreter ----------------

LIBM_OPS = {"exp", "log", "log1p", "expm1", "tanh", "logistic", "sin", "cos", "rsqrt", "pow", "fma"}
FLOAT_EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5, 3.0, 0.49999997, 7.3, -100.7, 1e-40,
               1e30, -1e30, np.inf, -np.inf, np.nan, 2.0 ** 24 + 2, 3e9, -3e9, 1e20, 300.0]
INT_EDGES = {
    K.int32: [0, 1, -1, 2, -2, 7, -7, 31, 32, 33, 2 ** 31 - 1, -2 ** 31, 123456, -3],
    K.int64: [0, 1, -1, 2, -2, 7, -7, 63, 64, 2 ** 63 - 1, -2 ** 63, 2 ** 40 + 3, -3, 31],
    K.uint32: [0, 1, 2, 7, 31, 32, 33, 2 ** 32 - 1, 2 ** 31, 123456, 3],
    K.uint8: [0, 1, 2, 3, 7, 8, 127, 128, 255, 200],
    K.int8: [0, 1, -1, 2, -2, 7, 8, 9, -8, 127, -128, 100, -3],
    K.int16: [0, 1, -1, 2, -2, 15, 16, 17, 32767, -32768, 300, -300, -3],
    K.uint16: [0, 1, 2, 3, 15, 16, 17, 32768, 65535, 300, 255],
    K.bool_: [False, True],
}


def edges(dtype) -> np.ndarray:
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            return np.array(FLOAT_EDGES, np.float64).astype(dtype)
    return np.array(INT_EDGES[dtype], dtype)


def host_library(programs: dict[str, K.Program], tmp: pathlib.Path):
    """Compile the rendered kernels for the host (``tests/lower/cuda_host.py``); returns
    ``launch(kernel_name, arrays, grid, block)``."""
    parts = [PRELUDE]
    for name, program in programs.items():
        source, _ = render_program(program, prefix=f"{name}_")
        parts.append(source[len(PRELUDE):])
    return HostModule("\n".join(parts), tmp).launch


def emulated_launch(launch, modes: dict):
    """Grid and segments kernels on 2 blocks of 3 threads (so grid-stride loops wrap); block
    kernels on one block of 5 threads (block-stride loops wrap, barriers are real); single
    kernels on one thread; GEMM kernels as planned (their tiles assume the planned sizes)."""
    sizes = {"grid": (2, 3), "segments": (2, 3), "block": (1, 5), "single": (1, 1)}

    def run(cname, arrays, grid, block):
        launch(cname, arrays, *sizes.get(modes[cname], (grid, block)))
    return run


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_rendered_ops_run_on_the_host_like_the_interpreter(dtype, tmp_path):
    e = edges(dtype)
    a, b = np.repeat(e, len(e)), np.tile(e, len(e))
    c = np.roll(b, 3)
    n = a.size
    program = single_kernel_program(every_op_kernel(dtype, n), 3)
    _, plan = render_program(program, prefix="t_")
    launch = emulated_launch(host_library({"t": program}, tmp_path), plan.kernel_modes)
    got = execute_plan(program, plan, a, b, c, launch=launch)
    want = run_program(program, a, b, c)
    kernel = K.kernels_of(program)[0]
    names = [op_name_of(s.value) for s in kernel.body[0].body] + ["reduce"]
    for name, g, w in zip(names, got, want):
        if name in LIBM_OPS and g.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=2e-6 if g.dtype == np.float32 else 1e-14,
                                       atol=1e-30, equal_nan=True, err_msg=name)
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"{name} on {K.short_name(dtype)}")


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
def test_hand_built_programs_run_on_the_host_like_the_interpreter(tmp_path):
    """Loops, while, switch, block-mode kernels (barriers between statements, run by 5 real
    threads) and the CPU's packed GEMM templates rendered to CUDA C."""
    rng = np.random.default_rng(3)
    programs = {k: v for k, v in hand_built_programs().items() if not k.startswith("ops_")}
    launch = host_library(programs, tmp_path)
    for name, program in programs.items():
        values = [edges(b.dtype)[:b.size] if b.dtype.kind != "f" else
                  rng.standard_normal(b.shape).astype(b.dtype) for b in program.inputs]
        values = [np.resize(v, b.shape).astype(b.dtype) for v, b in zip(values, program.inputs)]
        _, plan = render_program(program, prefix=f"{name}_")
        got = execute_plan(program, plan, *values, launch=emulated_launch(launch, plan.kernel_modes))
        want = GEMMS[name](*values) if name in GEMMS else run_program(program, *values)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=name)


GEMMS = {"mm": lambda a, b: [a @ b], "bmm": lambda a, b: [a @ b], "mm_tn": lambda a, b: [a.T @ b]}


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
@pytest.mark.parametrize("precision", ["highest", "tf32"])
def test_big_contractions_are_tiled_gemms_that_run_on_the_host_like_eager(precision, tmp_path):
    """A batched matmul with a pointwise epilogue and a conv with a bias are big enough for
    the tiled shared-memory GEMM template: rendered as one, run on the host with real
    barriers (and emulated tensor cores under 'tf32'), they give eager fgrad's results
    (to TF32's precision under 'tf32', where the kernel IR itself rounds the operands, so
    the interpreter and the template agree on a small case exactly)."""
    rng = np.random.default_rng(5)
    a = fnp.asarray(rng.standard_normal((4, 256, 40)).astype(np.float32))
    b = fnp.asarray(rng.standard_normal((4, 40, 200)).astype(np.float32))
    imgs = fnp.asarray(rng.standard_normal((64, 8, 12, 12)).astype(np.float32))
    w = fnp.asarray(rng.standard_normal((32, 8, 3, 3)).astype(np.float32))
    bias = fnp.asarray(rng.standard_normal((32,)).astype(np.float32))
    g = fnp.asarray(rng.standard_normal((2, 64, 4096)).astype(np.float32))
    h = fnp.asarray(rng.standard_normal((2, 4096, 96)).astype(np.float32))
    cases = {"bmm": (lambda a, b: fnp.tanh(a @ b + 1.0), (a, b)),
             "split_k": (lambda g, h: (g @ h).sum(0) * 2.0, (g, h)),    # few tiles, long K
             "conv": (lambda x, w, c: lax.conv_general_dilated(x, w, (1, 1), ((0, 0), (0, 0)))
                      + c[None, :, None, None], (imgs, w, bias))}
    programs = {name: gpu_program(f, *args, precision=precision) for name, (f, args) in cases.items()}
    launch = host_library({name: p for name, (p, _) in programs.items()}, tmp_path)
    if NVCC is not None:
        nvcc_compile({name: p for name, (p, _) in programs.items()})
    depth = {"bmm": 40, "split_k": 4096, "conv": 72}          # terms per output
    for name, (f, args) in cases.items():
        tolerance = (1e-4 if precision == "highest" else 5e-3) * np.sqrt(depth[name])
        program, consts = programs[name]
        source, plan = render_program(program, prefix=f"{name}_")
        assert "gemm" in plan.kernel_modes.values(), plan.kernel_modes
        assert ("wmma::mma_sync" in source) == (precision == "tf32")
        values = [np.asarray(c) for c in consts] + [np.asarray(x) for x in args]
        (got,) = execute_plan(program, plan, *values, launch=emulated_launch(launch, plan.kernel_modes))
        np.testing.assert_allclose(got, np.asarray(f(*args)), rtol=tolerance, atol=tolerance, err_msg=name)
    if precision == "tf32":      # the product of the operands rounded to TF32, as the IR says
        from fgrad.lower.cuda_contraction import round_to_tf32
        a, b = (np.asarray(x, np.float64) for x in cases["bmm"][1])
        want = np.tanh(round_to_tf32(a).astype(np.float64) @ round_to_tf32(b).astype(np.float64) + 1.0)
        program, consts = programs["bmm"]
        _, plan = render_program(program, prefix="bmm_")
        (got,) = execute_plan(program, plan, *[np.asarray(c) for c in consts], np.asarray(a, np.float32),
                              np.asarray(b, np.float32), launch=emulated_launch(launch, plan.kernel_modes))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
def test_a_hand_built_gemm_with_the_templates_names_runs_like_the_interpreter(tmp_path):
    """IR loop variables and params named like the template's own variables (i, K, v, gm...)
    are renamed in the snippets, so the tiled GEMM still computes the IR's loop nest."""
    M_, N_, K_ = 64, 96, 40
    a, b, c = K.Param("K", f32, M_ * K_), K.Param("v", f32, K_ * N_), K.Param("gm", f32, M_ * N_)
    i, j, k, z = K.Var("i"), K.Var("j"), K.Var("kk"), K.Var("bz")
    acc = K.Local("acc", f32)
    body = [K.DefineLocal(acc, K.Const(0.0, f32)),
            K.Range(k, 0, K_, [acc.accumulate(0, "add", a[i * K_ + k] * b[k * N_ + j])]),
            c.store(i * N_ + j, K.op("max", acc[0], K.Const(0.0, f32)))]
    # 64 identical batches: enough 64x64 tiles for the template
    kernel = K.Kernel("named", (a, b, c), (K.Range(z, 0, 64, [K.Range(i, 0, M_, [K.Range(j, 0, N_, body)])],
                                                    parallel=True),))
    program = single_kernel_program(kernel, 2)
    source, plan = render_program(program, prefix="t_")
    assert list(plan.kernel_modes.values()) == ["gemm"] and "fg_u_K" in source
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(M_ * K_).astype(np.float32), rng.standard_normal(K_ * N_).astype(np.float32)
    launch = emulated_launch(host_library({"t": program}, tmp_path), plan.kernel_modes)
    (got,) = execute_plan(program, plan, x, y, launch=launch)
    want = np.maximum(x.reshape(M_, K_) @ y.reshape(K_, N_), 0).reshape(-1)
    np.testing.assert_allclose(got.reshape(-1), want, rtol=1e-5, atol=1e-5)


def test_tf32_programs_split_into_modules_include_mma_in_each(monkeypatch):
    """The runtime compiles a big program as several modules, each the source before the
    first kernel plus some kernels: <mma.h> must be in that shared part, not beside the
    first TF32 GEMM (a module holding a later one would not see it)."""
    from fgrad.backends import cuda
    monkeypatch.setattr(cuda.compiler, "MIN_CHUNK", 1)                    # a module per kernel
    rng = np.random.default_rng(0)
    chain = lambda a, b, c: fnp.tanh((a - a.max(axis=2, keepdims=True)) @ b) @ c    # noqa: E731 - a reduction first
    args = [fnp.asarray(rng.standard_normal(s).astype(np.float32)) for s in ((4, 256, 64), (4, 64, 256), (4, 256, 256))]
    program, _ = gpu_program(chain, *args, precision="tf32")
    source, plan = render_program(program)
    assert list(plan.kernel_modes.values())[0] != "gemm" and list(plan.kernel_modes.values()).count("gemm") == 2
    modules = cuda.split_source(source, len(plan.kernel_modes))
    assert len(modules) == len(plan.kernel_modes) >= 3
    for text, names in modules:
        if "wmma::" in text:
            assert 0 <= text.index("#include <mma.h>") < text.index("wmma::"), names


def gpu_program(f, *args, precision="highest") -> tuple[K.Program, list]:
    converted, consts = closure_convert(fgrad.make_jaxpr(f)(*args))
    return lower_program(converted, target="gpu", precision=precision), consts


def op_name_of(value: K.Expr) -> str:
    if not isinstance(value, K.Op):
        return "copy"
    return f"{value.op}->{K.short_name(value.dtype)}" if value.op in ("cast", "bitcast") else value.op


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
def test_rendered_jitted_programs_run_on_the_host_like_the_interpreter(tmp_path):
    cases = {**{k: v for k, v in elementwise_cases().items()}, **program_cases()}
    programs, inputs = {}, {}
    for name, (f, args) in cases.items():
        program, consts = jitted_program(f, *args)
        programs[name] = program
        inputs[name] = [np.asarray(x) for x in consts] + [np.asarray(x) for x in fgrad.tree.tree_leaves(args)]
    launch = host_library(programs, tmp_path)
    for name, program in programs.items():
        _, plan = render_program(program, prefix=f"{name}_")
        got = execute_plan(program, plan, *inputs[name], launch=emulated_launch(launch, plan.kernel_modes))
        for g, w in zip(got, run_program(program, *inputs[name])):
            if name[2:] in LIBM_OPS or name in ("fused", "grad_mm", "log_softmax", "u_logistic"):
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=name)
            else:
                np.testing.assert_array_equal(g, w, err_msg=name)


@pytest.mark.skipif(GXX is None, reason="g++ is not on PATH")
def test_rendered_mnist_loss_and_grads_run_on_the_host_like_eager(tmp_path):
    """Forward and backward of the tutorial's model (batch 128, dropout on), rendered to CUDA C
    and run on the host, give eager fgrad's (NumPy reference) loss and gradients."""
    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "mnist.py"
    spec = importlib.util.spec_from_file_location("fgrad_example_mnist", path)
    mnist = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mnist)
    rng = np.random.default_rng(0)
    x = fnp.asarray(rng.random((128, 1, 28, 28)).astype(np.float32))
    y = fnp.asarray(rng.integers(0, 10, (128,)).astype(np.uint8))

    def loss_and_grads(model, x, y, key):
        loss = lambda m: fgrad.nn.sparse_categorical_crossentropy(m(x, dropout_key=key), y)
        return fgrad.value_and_grad(loss)(model)

    args = (mnist.Model(key=fgrad.random.key(0)), x, y, fgrad.random.key(1))
    program, consts = jitted_program(loss_and_grads, *args)
    values = [np.asarray(c) for c in consts] + [np.asarray(a) for a in fgrad.tree.tree_leaves(args)]
    _, plan = render_program(program, prefix="m_")
    launch = emulated_launch(host_library({"m": program}, tmp_path), plan.kernel_modes)
    got = execute_plan(program, plan, *values, launch=launch)
    eager = [np.asarray(v) for v in fgrad.tree.tree_leaves(loss_and_grads(*args))]
    assert len(got) == len(eager) == 7
    for g, e in zip(got, eager):
        np.testing.assert_allclose(g, e.reshape(g.shape), rtol=1e-4, atol=1e-6)
