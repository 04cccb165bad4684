"""jit output == eager output, for every primitive and for transform compositions under jit.

Each primitive gets hypothesis-drawn inputs: scalars and 0-size dims, size-1 dims that
broadcast, transposed and strided (non-contiguous) argument arrays, and every dtype it
accepts (float64/int64 under x64). ``fgrad.jit(f)(*args)`` must equal ``f(*args)`` (eager,
the NumPy definitions) exactly for integer/bool results and to a few float32 ulp for
transcendentals, with the same dtype and shape; and the program must have been compiled by
the native path (``pipeline.compiled_by_path``) unless the primitive is listed in
``FALLS_BACK`` with the reason. Primitives that cannot stand alone (collectives, control
flow, custom rules, shard) are reached through their user-level API.
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad.ad_checkpoint import checkpoint_name
from fgrad import lax, tree
from fgrad.core import dtypes as core_dtypes
from fgrad import numpy as fnp
from fgrad.core.primitive import all_primitives
from fgrad.compile import pipeline
from fgrad.ops.elementwise import _bind2
from tests.ops.test_window import window_problems

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
U8, U32, U64, I32, I64, BOOL = (np.dtype(t) for t in (np.uint8, np.uint32, np.uint64, np.int32, np.int64, np.bool_))
I8, I16, U16, BF16 = np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.uint16), core_dtypes.bfloat16
ALL_DTYPES = [F32, F64, F16, BF16, I32, I8, I16, U8, U16, U32, I64, U64, BOOL]
#: the narrow dtypes test_narrow_dtypes_jit_match_eager runs every primitive on, one at a time
NARROW_DTYPES = [I8, I16, U16, BF16]
#: [dtype]: while set, ``dtypes_of`` offers only that dtype (a case whose kind excludes it skips)
FORCED: list = [None]
KINDS = {"float": "f", "numeric": "iuf", "integer": "iu", "intbool": "iub", "any": "biuf"}
#: The longest side drawn (test_wide_primitives_match_eager raises it past the vector width).
MAX_SIDE = [4]


def shapes(min_dims: int = 0, min_side: int = 0):
    return hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=min_side, max_side=MAX_SIDE[0])

# ~90 primitives x examples x a compile each: fewer examples per primitive than the profile's.
FEW = settings(max_examples=max(6, settings().max_examples // 4))

#: dtypes whose programs run on the reference path (none: float16 lowers natively).
NO_NATIVE_DTYPES: set = set()
#: Primitives whose programs legitimately run on the reference path, with the reason (none now:
#: sort has a native lowering, jit(shard(f)) is compiled in pieces around the shard call).
FALLS_BACK: dict[str, str] = {}
#: (primitive, dtype) pairs that run on the reference path, with the reason.
FALLS_BACK_FOR_DTYPE: dict[tuple[str, np.dtype], str] = {
}


# --- inputs ---------------------------------------------------------------------------------

def dtypes_of(kind: str) -> list[np.dtype]:
    """The dtypes of ``kind``; the 64-bit ones only under x64 (outside it they narrow to 32)."""
    wide = fgrad.config.enable_x64
    if FORCED[0] is not None:
        if core_dtypes.kind(FORCED[0]) not in KINDS[kind]:
            pytest.skip(f"this primitive takes no {FORCED[0].name} operands")
        return [FORCED[0]]
    return [d for d in ALL_DTYPES if core_dtypes.kind(d) in KINDS[kind] and (wide or d not in (F64, I64, U64))]


def elements(dtype: np.dtype, small: bool = False):
    """Values of ``dtype``: edge cases (0, -0, ±1, extremes, ±inf, NaN) and ordinary ones."""
    if dtype == BF16:      # drawn as float32 and rounded (hypothesis has no bfloat16)
        return elements(F32, small).map(lambda v: float(np.float32(v).astype(BF16)))
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if small:
            return st.integers(max(int(info.min), -8), min(int(info.max), 8))
        edges = [v for v in (0, 1, -1, 2, info.min, info.max) if info.min <= v <= info.max]
        return st.one_of(st.sampled_from(edges), st.integers(int(info.min), int(info.max)))
    width = min(dtype.itemsize * 8, 64)
    edges = [0.0, -0.0, 1.0, -1.0, 0.5, 2.5, -2.5, np.inf, -np.inf, np.nan]
    ordinary = st.floats(-4, 4, width=width) if small else st.floats(-30, 30, width=width)
    return st.one_of(st.sampled_from(edges), ordinary)


def layout(draw, value: np.ndarray) -> np.ndarray:
    """``value`` itself, or the same values in a transposed or strided (non-contiguous) array."""
    how = draw(st.sampled_from(["c", "c", "T", "strided"]))
    if how == "T" and value.ndim >= 2:
        return np.ascontiguousarray(value.T).T
    if how == "strided" and value.ndim >= 1:
        big = np.zeros(value.shape[:-1] + (2 * value.shape[-1] + 1,), value.dtype)
        big[..., 1::2] = value
        return big[..., 1::2]
    return value


def array(draw, dtype: np.dtype, shape, small: bool = False) -> fgrad.Array:
    drawn_as = F32 if dtype == BF16 else dtype
    value = draw(hnp.arrays(drawn_as, shape, elements=elements(dtype, small))).astype(dtype)
    return fnp.asarray(layout(draw, value))


def broadcast_partner(draw, shape) -> tuple:
    """A shape that broadcasts to ``shape``: some dims replaced by 1, leading dims maybe dropped."""
    dims = [1 if draw(st.booleans()) else s for s in shape]
    return tuple(dims[draw(st.integers(0, len(dims))):])


def to_shape(x, shape):
    """NumPy-style broadcast of ``x`` to ``shape`` through broadcast_in_dim (size-1 dims too)."""
    x_shape = x.shape
    if x_shape == tuple(shape):
        return x
    lead = len(shape) - len(x_shape)
    keep = [i for i, s in enumerate(x_shape) if s == shape[lead + i]]
    squeezed = lax.reshape(x, tuple(x_shape[i] for i in keep))
    return lax.broadcast_in_dim(squeezed, tuple(shape), tuple(lead + i for i in keep))


# --- the oracle -----------------------------------------------------------------------------

def assert_same(got, want, ulp: float = 0):
    got_leaves, want_leaves = tree.tree_leaves(got), tree.tree_leaves(want)
    assert len(got_leaves) == len(want_leaves)
    for g, w in zip(got_leaves, want_leaves):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, (g.shape, w.shape)
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        if w.dtype == BF16:      # every bfloat16 is a float32: compare those (with bfloat16's eps)
            eps = float(np.finfo(BF16).eps) * ulp
            g, w = g.astype(F32), w.astype(F32)
            if ulp:
                np.testing.assert_allclose(g, w, rtol=eps, atol=eps, equal_nan=True)
                continue
        if w.dtype.kind in "fc" and ulp:     # complex: the tolerance of its parts
            eps = float(np.finfo(w.dtype).eps) * ulp
            np.testing.assert_allclose(g, w, rtol=eps, atol=eps, equal_nan=True)
        else:
            np.testing.assert_array_equal(g, w)


def check(f, args, ulp: float = 0, name: str | None = None):
    """jit(f)(*args) equals f(*args); the native path compiled it unless ``name`` falls back,
    and a fallback warned (one ``ReferencePathWarning`` per program)."""
    want = f(*args)
    before = pipeline.compiled_by_path["reference"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", fgrad.ReferencePathWarning)
        got = fgrad.jit(f)(*args)
    fell_back = pipeline.compiled_by_path["reference"] - before
    assert_same(got, want, ulp)
    if not pipeline.native_enabled():     # FGRAD_JIT_BACKEND=reference: everything falls back
        return
    warned = [w for w in caught if issubclass(w.category, fgrad.ReferencePathWarning)]
    assert len(warned) == fell_back, [str(w.message) for w in warned]
    dtypes = {np.asarray(v).dtype for v in tree.tree_leaves((args, want))}
    if name in FALLS_BACK or any((name, d) in FALLS_BACK_FOR_DTYPE for d in dtypes):
        # (a program whose outputs are all empty computes nothing: it may compile natively)
        assert fell_back or not all(np.size(w) for w in tree.tree_leaves(want)), f"{name} now compiles natively: remove it from FALLS_BACK"
    elif not dtypes & NO_NATIVE_DTYPES:
        assert not fell_back, f"{name}: the program ran on the reference path (FGRAD_DEBUG=1 says why)"


# --- one case per primitive: (draw, name) -> (f, args, tolerance in ulps of the result, dtype) ---

CASES = {}


def case(*names):
    def register(builder):
        for n in names:
            CASES[n] = builder
        return builder
    return register


def prim(name):
    return next(p for p in all_primitives if p.name == name)


TRANSCENDENTAL = ["exp", "log", "log1p", "expm1", "tanh", "logistic", "sin", "cos", "sqrt", "rsqrt",
                  # ops.special: compiled through their decompositions (a few ulp; signed zeros kept)
                  "tan", "atan", "asin", "acos", "sinh", "cosh", "asinh", "acosh", "atanh", "cbrt", "exp2",
                  "erf", "erfc", "erf_inv"]
EXACT_FLOAT = ["floor", "ceil", "is_finite"]


@case("reduce_precision")
def reduce_precision_case(draw, name):
    """Rounding to a narrower format: exact, bit for bit (NaN payloads aside)."""
    dtype = draw(st.sampled_from(dtypes_of("float")))
    x = array(draw, dtype, draw(shapes()))
    e, m = draw(st.integers(1, 11)), draw(st.integers(0, 52))
    return (lambda a: lax.reduce_precision(a, e, m)), [x], 0, dtype


@case(*TRANSCENDENTAL, *EXACT_FLOAT, "neg", "abs", "sign", "not")
def unary_case(draw, name):
    kind = {"neg": "numeric", "abs": "numeric", "sign": "numeric", "not": "intbool"}.get(name, "float")
    dtype = draw(st.sampled_from(dtypes_of(kind)))
    x = array(draw, dtype, draw(shapes()))
    p = prim(name)
    return (lambda a: p.bind(a)), [x], (4 if name in TRANSCENDENTAL else 0), dtype


@case("round")
def round_case(draw, name):
    dtype = draw(st.sampled_from(dtypes_of("float")))
    method = draw(st.sampled_from(["away_from_zero", "to_nearest_even"]))
    return (lambda a: lax.round(a, method)), [array(draw, dtype, draw(shapes()))], 0, dtype


BINARY_KINDS = {"add": "numeric", "sub": "numeric", "mul": "numeric", "div": "numeric",
                "rem": "numeric", "pow": "float", "max": "any", "min": "any", "and": "intbool",
                "or": "intbool", "xor": "intbool", "eq": "any", "ne": "any", "lt": "any",
                "le": "any", "gt": "any", "ge": "any", "shift_left": "integer",
                "shift_right_logical": "integer", "atan2": "float"}


@case(*BINARY_KINDS)
def binary_case(draw, name):
    shift = name.startswith("shift")
    dtype = draw(st.sampled_from(dtypes_of(BINARY_KINDS[name])))
    shape = draw(shapes())
    x = array(draw, dtype, broadcast_partner(draw, shape))
    y = array(draw, dtype, broadcast_partner(draw, shape))
    if shift:
        y = array(draw, dtype, y.shape, small=False) if draw(st.booleans()) else \
            fnp.asarray(np.asarray(draw(hnp.arrays(dtype, y.shape, elements=st.integers(0, 8 * dtype.itemsize)))))
    p = prim(name)
    out_shape = tuple(shape)

    ulp = 4 if name in ("pow", "div", "rem", "atan2") else 0
    if dtype.kind != "b" and draw(st.booleans()):
        # a Python scalar constant: weakly typed, it takes the array's dtype
        scalar = np.asarray(draw(elements(dtype, small=True))).item()
        return (lambda a: _bind2(p, scalar, a)), [x], ulp, dtype

    def f(a, b):
        return p.bind(to_shape(a, out_shape), to_shape(b, out_shape))
    return f, [x, y], ulp, dtype



@FEW
@given(data=st.data())
def test_python_scalar_arguments_match_eager(data):
    """Python scalars passed to the jitted function are weakly typed inputs: fgrad.numpy
    promotes them to the array's dtype in both paths."""
    dtype = data.draw(st.sampled_from([F32, I32, U8]))
    x = array(data.draw, dtype, data.draw(shapes()), small=True)
    c = data.draw(st.integers(-3, 3) if dtype.kind == "i" else st.integers(0, 3) if dtype.kind == "u"
                  else st.floats(-3, 3, width=32))
    check(lambda a, k: fnp.maximum(a * k + k, a), [x, c], ulp=4, name="python scalars")

#: ops.special_gamma / special_incomplete: float64 algorithms (series, continued fractions in a
#: while loop); jit and eager round their exp/log differently, a few hundred ulp of float64 at most
GAMMA_ULP = {F64: 2000, F32: 4, F16: 4, BF16: 4}


@case("lgamma", "digamma", "bessel_i0e", "bessel_i1e")
def gamma_case(draw, name):
    dtype = draw(st.sampled_from(dtypes_of("float")))
    p = prim(name)
    return (lambda a: p.bind(a)), [array(draw, dtype, draw(shapes()))], GAMMA_ULP[dtype], dtype


def positive(draw, dtype, shape):
    """Mostly positive values (the incomplete functions' domain), edges included."""
    values = draw(hnp.arrays(dtype, shape, elements=st.one_of(
        st.sampled_from([0.0, 1.0, 0.5, -1.0, np.inf, np.nan]), st.floats(0.125, 40, width=min(dtype.itemsize * 8, 64)))))
    return fnp.asarray(values)


@case("polygamma", "igamma", "igammac", "igamma_grad_a", "random_gamma_grad", "regularized_incomplete_beta")
def gamma_binary_case(draw, name):
    dtype = draw(st.sampled_from(dtypes_of("float")))
    shape = draw(shapes())
    p = prim(name)
    if name == "polygamma":
        order = fnp.asarray(draw(hnp.arrays(dtype, shape, elements=st.sampled_from([0.0, 1.0, 2.0, 3.0, 1.5]))))
        return (lambda m, x: p.bind(m, x)), [order, array(draw, dtype, shape)], GAMMA_ULP[dtype], dtype
    if name == "regularized_incomplete_beta":
        x = fnp.asarray(draw(hnp.arrays(dtype, shape, elements=st.floats(0, 1, width=min(dtype.itemsize * 8, 64)))))
        return (lambda a, b, u: p.bind(a, b, u)), [positive(draw, dtype, shape), positive(draw, dtype, shape), x], \
            GAMMA_ULP[dtype], dtype
    return (lambda a, x: p.bind(a, x)), [positive(draw, dtype, shape), positive(draw, dtype, shape)], GAMMA_ULP[dtype], dtype


@case("integer_pow")
def integer_pow_case(draw, name):
    dtype = draw(st.sampled_from(dtypes_of("numeric")))
    n = draw(st.integers(-3 if dtype.kind == "f" else 0, 5))
    return (lambda a: lax.integer_pow(a, n)), [array(draw, dtype, draw(shapes()), small=True)], 4, dtype


@case("convert_element_type")
def convert_case(draw, name):
    src, dst = draw(st.sampled_from(dtypes_of("any"))), draw(st.sampled_from(dtypes_of("any")))
    x = array(draw, src, draw(shapes()))
    return (lambda a: lax.convert_element_type(a, dst)), [x], 0, (src if src in (F64, I64) else dst)


_SAME_SIZE = {F32: [I32, U32], I32: [F32, U32], U32: [F32, I32], F64: [I64], I64: [F64],
              I8: [U8], U8: [I8], I16: [U16, F16, BF16], U16: [I16, F16, BF16], F16: [I16, U16, BF16],
              BF16: [I16, U16, F16]}


@case("bitcast_convert_type")
def bitcast_case(draw, name):
    src = draw(st.sampled_from([d for d in dtypes_of("any") if d in _SAME_SIZE]))
    dst = draw(st.sampled_from([d for d in _SAME_SIZE[src] if FORCED[0] is not None or d in dtypes_of("any")]))
    x = array(draw, src, draw(shapes()))
    return (lambda a: lax.bitcast_convert_type(a, dst)), [x], 0, dst


@case("select_n")
def select_n_case(draw, name):
    dtype = draw(st.sampled_from(dtypes_of("any")))
    shape = draw(shapes())
    n = draw(st.integers(1, 3))
    which = (array(draw, BOOL, shape) if n == 2 and draw(st.booleans())
             else fnp.asarray(draw(hnp.arrays(I32, shape, elements=st.integers(0, n - 1)))))
    cases = [array(draw, dtype, broadcast_partner(draw, shape)) for _ in range(n)]
    return (lambda w, *cs: lax.select_n(w, *[to_shape(c, shape) for c in cs])), [which, *cases], 0, dtype


@case("real", "imag", "conj", "complex")
def complex_parts_case(draw, name):
    """Complex programs compile as their real form (fgrad.lower.complex_split); these are exact."""
    part = draw(st.sampled_from([F32, F64] if fgrad.config.enable_x64 else [F32]))
    shape = draw(shapes())
    re, im = array(draw, part, shape), array(draw, part, shape)
    if name == "complex":
        return (lambda a, b: lax.complex(a, b)), [re, im], 0, part
    z = fnp.asarray(np.asarray(re) + 1j * np.asarray(im).astype(core_dtypes.complex_dtype(part)))
    return (lambda a: getattr(lax, name)(a)), [z], 0, part


@case("eig")
def eig_case(draw, name):
    """LAPACK's geev through a host callback inside the native program: the same routine."""
    dtype = draw(st.sampled_from([F32, F64] if fgrad.config.enable_x64 else [F32]))
    n = draw(st.integers(1, 4))
    a = fnp.asarray(draw(hnp.arrays(dtype, (n, n), elements=st.floats(-3, 3, width=dtype.itemsize * 8))))
    left, right = draw(st.booleans()), draw(st.booleans())
    return (lambda m: lax.linalg.eig(m, left, right)), [a], 0, dtype


@case("fft")
def fft_case(draw, name):
    """Through a host callback to NumPy's pocketfft inside the native program: the same function."""
    part = draw(st.sampled_from([F32, F64] if fgrad.config.enable_x64 else [F32]))
    shape = draw(shapes(min_dims=1, min_side=1))
    kind = draw(st.sampled_from(["FFT", "IFFT", "RFFT", "IRFFT"]))
    x = array(draw, part, shape, small=True)
    if kind == "RFFT":
        return (lambda a: lax.fft(a, kind, shape[-1:])), [x], 0, part
    z = lax.complex(x, x * 0.5)
    lengths = (2 * (shape[-1] - 1) or 1,) if kind == "IRFFT" else shape[-1:]
    return (lambda a: lax.fft(a, kind, lengths)), [z], 0, part


# --- shapes ---------------------------------------------------------------------------------

def any_array(draw, shape=None, kind="any"):
    dtype = draw(st.sampled_from(dtypes_of(kind)))
    return array(draw, dtype, draw(shapes()) if shape is None else shape), dtype


@case("broadcast_in_dim")
def broadcast_case(draw, name):
    shape = draw(shapes())
    x, dtype = any_array(draw, broadcast_partner(draw, shape))
    return (lambda a: to_shape(a, tuple(shape))), [x], 0, dtype


@case("reshape", "transpose", "squeeze", "expand_dims", "rev")
def shape_case(draw, name):
    x, dtype = any_array(draw)
    nd = x.ndim
    if name == "reshape":
        sizes = (x.size,) if x.size else (0, 1)
        f = lambda a: lax.reshape(a, sizes)
    elif name == "transpose":
        perm = tuple(draw(st.permutations(range(nd))))
        f = lambda a: lax.transpose(a, perm) + lax.transpose(a, perm) if dtype.kind in "iuf" else lax.transpose(a, perm)
    elif name == "squeeze":
        x = fnp.asarray(np.asarray(x).reshape((1,) + x.shape))
        f = lambda a: lax.squeeze(a, (0,))
    elif name == "expand_dims":
        d = draw(st.integers(0, nd))
        f = lambda a: lax.expand_dims(a, (d,))
    else:
        dims = tuple(i for i in range(nd) if draw(st.booleans()))
        f = lambda a: lax.rev(a, dims)
    return f, [x], 0, dtype


@case("slice")
def slice_case(draw, name):
    x, dtype = any_array(draw)
    starts = [draw(st.integers(0, s)) for s in x.shape]
    limits = [draw(st.integers(b, s)) for b, s in zip(starts, x.shape)]
    strides = [draw(st.integers(1, 3)) for _ in x.shape]
    return (lambda a: lax.slice(a, starts, limits, strides)), [x], 0, dtype


@case("dynamic_slice", "dynamic_update_slice")
def dynamic_slice_case(draw, name):
    x, dtype = any_array(draw)
    sizes = [draw(st.integers(0, s)) for s in x.shape]
    starts = [fnp.asarray(np.int32(draw(st.integers(-3, 6)))) for _ in x.shape]
    if name == "dynamic_slice":
        return (lambda a, *i: lax.dynamic_slice(a, i, sizes)), [x, *starts], 0, dtype
    upd = array(draw, dtype, tuple(sizes))
    return (lambda a, u, *i: lax.dynamic_update_slice(a, u, i)), [x, upd, *starts], 0, dtype


@case("gather")
def gather_case(draw, name):
    shape = draw(shapes(1))
    axes = tuple(sorted(draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
    # gathering from an empty axis runs on the reference path (test_gather_from_an_empty_axis)
    shape = tuple(max(s, 1) if i in axes else s for i, s in enumerate(shape))
    x, dtype = any_array(draw, shape)
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3))
    idx = fnp.asarray(draw(hnp.arrays(I32, batch + (len(axes),), elements=st.integers(-2, 5))))
    mode = draw(st.sampled_from(["clip", "fill"]))
    return (lambda a, i: lax.gather(a, i, axes, mode=mode)), [x, idx], 0, dtype


@case("scatter")
def scatter_case(draw, name):
    shape = draw(shapes(1))
    mode = draw(st.sampled_from(["set", "add", "max", "min", "mul"]))
    x, dtype = any_array(draw, shape, "numeric" if mode in ("add", "mul") else "any")
    axes = tuple(sorted(draw(st.sets(st.integers(0, len(shape) - 1), min_size=1))))
    if mode == "set":
        # duplicate index vectors would leave the winner unspecified: draw distinct ones
        # (out-of-bounds ones, -1 and size, included: they are dropped)
        candidates = list(itertools.product(*[range(-1, shape[a] + 1) for a in axes]))
        picked = draw(st.permutations(candidates))[:draw(st.integers(0, min(5, len(candidates))))]
        batch = (len(picked),)
        idx_values = np.array(picked, np.int32).reshape(batch + (len(axes),))
    else:
        batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3))
        idx_values = draw(hnp.arrays(I32, batch + (len(axes),), elements=st.integers(-1, 4)))
    rest = tuple(s for i, s in enumerate(shape) if i not in axes)
    upd = array(draw, dtype, batch + rest, small=True)
    return (lambda a, i, u: lax.scatter(a, i, u, axes, mode=mode)), [x, fnp.asarray(idx_values), upd], 4, dtype


@case("pad")
def pad_case(draw, name):
    x, dtype = any_array(draw)
    config = [(draw(st.integers(-1, 2)), draw(st.integers(-1, 2)), draw(st.integers(0, 2))) for _ in x.shape]
    grown = lambda s, lo, hi, d: (s + (s - 1) * d if s else 0) + lo + hi
    config = [(lo, hi, d) if grown(s, lo, hi, d) >= 0 else (0, 0, d) for (lo, hi, d), s in zip(config, x.shape)]
    value = array(draw, dtype, ())
    return (lambda a, v: lax.pad(a, v, config)), [x, value], 0, dtype


@case("concatenate")
def concatenate_case(draw, name):
    shape = draw(shapes(1))
    dtype = draw(st.sampled_from(dtypes_of("any")))
    dim = draw(st.integers(0, len(shape) - 1))
    parts = [array(draw, dtype, shape[:dim] + (draw(st.integers(0, 3)),) + shape[dim + 1:])
             for _ in range(draw(st.integers(1, 3)))]
    return (lambda *ps: lax.concatenate(ps, dim)), parts, 0, dtype


@case("iota")
def iota_case(draw, name):
    dtype = draw(st.sampled_from(dtypes_of("numeric")))
    shape = draw(shapes(1))
    dim = draw(st.integers(0, len(shape) - 1))
    x = array(draw, dtype, shape)
    return (lambda a: a + lax.broadcasted_iota(dtype, shape, dim)), [x], 0, dtype


# --- reductions, contractions, windows ---------------------------------------------------------

REDUCE_KINDS = {"reduce_sum": "numeric", "reduce_prod": "numeric", "reduce_max": "any",
                "reduce_min": "any", "reduce_and": "intbool", "reduce_or": "intbool"}


@case(*REDUCE_KINDS)
def reduce_case(draw, name):
    x, dtype = any_array(draw, kind=REDUCE_KINDS[name])
    if name == "reduce_prod" and dtype.kind == "f":
        x = array(draw, dtype, x.shape, small=True)
    axes = tuple(i for i in range(x.ndim) if draw(st.booleans()))
    fn = getattr(lax, name)
    # sums reassociate: allow float rounding (relative to the summands' scale)
    return (lambda a: fn(a, axes)), [x], (64 if name in ("reduce_sum", "reduce_prod") else 0), dtype


@case("argmax", "argmin")
def arg_case(draw, name):
    shape = draw(shapes(1, 1))
    x, dtype = any_array(draw, shape, "any")
    axis = draw(st.integers(0, len(shape) - 1))
    fn = getattr(lax, name)
    return (lambda a: fn(a, axis, np.int32)), [x], 0, dtype


@case("cumsum")
def cumsum_case(draw, name):
    shape = draw(shapes(1))
    dtype = draw(st.sampled_from(dtypes_of("numeric")))
    x = array(draw, dtype, shape, small=True)
    axis, reverse = draw(st.integers(0, len(shape) - 1)), draw(st.booleans())
    return (lambda a: lax.cumsum(a, axis, reverse)), [x], 64, dtype


@case("dot_general")
def dot_case(draw, name):
    """A batched or plain matmul with its operand dims in any order (the gradients' transposed
    forms: contracting dim first or last, batch dim anywhere)."""
    dtype = draw(st.sampled_from(dtypes_of("numeric")))
    b, m, k, n = (draw(st.integers(0, MAX_SIDE[0])) for _ in range(4))
    batched = draw(st.booleans())
    lhs_dims, rhs_dims = (["b", "m", "k"], ["b", "k", "n"]) if batched else (["m", "k"], ["k", "n"])
    lhs_dims, rhs_dims = draw(st.permutations(lhs_dims)), draw(st.permutations(rhs_dims))
    size = dict(b=b, m=m, k=k, n=n)
    lhs = array(draw, dtype, tuple(size[d] for d in lhs_dims), small=True)
    rhs = array(draw, dtype, tuple(size[d] for d in rhs_dims), small=True)
    batch = ((lhs_dims.index("b"),), (rhs_dims.index("b"),)) if batched else ((), ())
    dims = (((lhs_dims.index("k"),), (rhs_dims.index("k"),)), batch)
    return (lambda x, y: lax.dot_general(x, y, dims)), [lhs, rhs], 64, dtype


@case("conv_general_dilated")
def conv_case(draw, name):
    dtype = draw(st.sampled_from(dtypes_of("numeric" if FORCED[0] is not None else "float")))
    groups = draw(st.integers(1, 2))
    by_batch = groups > 1 and draw(st.booleans())     # batch_group_count: a weight gradient's
    n, c, o, h, w = (draw(st.integers(1, 3)) for _ in range(5))
    n, c, o = (n * groups, c, o * groups) if by_batch else (n, c * groups, o * groups)
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = h + kh - 1, w + kw - 1
    layout_ = draw(st.sampled_from([("NCHW", "OIHW", "NCHW"), ("NHWC", "HWIO", "NHWC"), ("NHWC", "OIHW", "NCHW")]))
    place = lambda spec, sizes: tuple(sizes[ch] for ch in spec)
    lhs = array(draw, dtype, place(layout_[0], dict(N=n, C=c, H=h, W=w)), small=True)
    rhs = array(draw, dtype, place(layout_[1], dict(O=o, I=c if by_batch else c // groups, H=kh, W=kw)),
                small=True)
    strides = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["VALID", "SAME", ((1, 0), (0, 1)), ((-1, 2), (1, 1))]))
    lhs_dil = draw(st.sampled_from([(1, 1), (2, 1), (2, 2)]))
    rhs_dil = draw(st.sampled_from([(1, 1), (1, 2), (2, 2)]))
    f = lambda x, y: lax.conv_general_dilated(x, y, strides, padding, lhs_dilation=lhs_dil,
                                              rhs_dilation=rhs_dil, dimension_numbers=layout_,
                                              feature_group_count=1 if by_batch else groups,
                                              batch_group_count=groups if by_batch else 1)
    return f, [lhs, rhs], 64, dtype


@case("reduce_window_sum", "reduce_window_max", "reduce_window_min")
def window_case(draw, name):
    x, params = draw(window_problems())
    choices = [F32, F64, I32] if name == "reduce_window_sum" else [F32, I32, U8, F64]
    dtype = draw(st.sampled_from(dtypes_of("numeric") if FORCED[0] is not None else choices))
    x = fnp.asarray(layout(draw, np.asarray(x).astype(dtype)))
    comp = name.rsplit("_", 1)[1]
    f = lambda a: lax.reduce_window(a, comp, params["window_dimensions"], params["window_strides"],
                                    params["padding"], params["base_dilation"], params["window_dilation"])
    return f, [x], 64, dtype


@case("select_and_gather_add", "select_and_scatter_add")
def pool_grad_case(draw, name):
    x, params = draw(window_problems())
    x = fnp.asarray(np.round(np.asarray(x, np.float32) / 4))     # ties
    select = draw(st.sampled_from(["max", "min"]))
    p = prim(name)
    if name == "select_and_gather_add":
        t = array(draw, F32, x.shape, small=True)
        return (lambda a, b: p.bind(a, b, select=select, **params)), [t, x], 0, F32
    out_shape = lax.reduce_window(x, "max", **params).shape
    ct = array(draw, F32, out_shape, small=True)
    return (lambda c, v: p.bind(c, v, select=select, **params)), [ct, x], 4, F32


# --- the rest -------------------------------------------------------------------------------

@case("sort")
def sort_case(draw, name):
    shape = draw(shapes(1))
    x, dtype = any_array(draw, shape, "numeric")
    dim = draw(st.integers(0, len(shape) - 1))
    return (lambda a: lax.sort(a, dim)), [x], 0, dtype


@case("threefry2x32")
def threefry_case(draw, name):
    shape = draw(shapes())
    words = [array(draw, U32, shape if draw(st.booleans()) else ()) for _ in range(4)]
    return (lambda *w: lax.threefry2x32(*w)), words, 0, U32


@case("stop_gradient")
def stop_gradient_case(draw, name):
    x, dtype = any_array(draw, kind="float")
    return (lambda a: lax.stop_gradient(a) * 2), [x], 0, dtype


@case("name")
def checkpoint_name_case(draw, name):
    x, dtype = any_array(draw)
    return (lambda a: checkpoint_name(a, "x")), [x], 0, dtype


@case("psum", "pmax", "pmin", "all_gather", "psum_scatter", "ppermute", "axis_index")
def collective_case(draw, name):
    """Collectives bind only under a named axis: vmap(axis_name=...) inside the jitted function."""
    n = draw(st.integers(1, 4))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3))
    dtype = draw(st.sampled_from([F32, I32]))
    x = array(draw, dtype, (n,) + shape, small=True)
    body = {
        "psum": lambda a: lax.psum(a, "i"),
        "pmax": lambda a: lax.pmax(a, "i"),
        "pmin": lambda a: lax.pmin(a, "i"),
        "all_gather": lambda a: lax.all_gather(a, "i"),
        "psum_scatter": lambda a: lax.psum_scatter(lax.broadcast_in_dim(a, (n,) + a.shape, tuple(range(1, a.ndim + 1))), "i"),
        "ppermute": lambda a: lax.ppermute(a, "i", [(j, (j + 1) % n) for j in range(n)]),
        "axis_index": lambda a: a + lax.convert_element_type(lax.axis_index("i"), a.dtype),
    }[name]
    return fgrad.vmap(body, axis_name="i"), [x], (64 if name.startswith("psum") else 0), dtype


@case("cond")
def cond_case(draw, name):
    x = array(draw, F32, draw(shapes()), small=True)
    if draw(st.booleans()):
        pred = fnp.asarray(np.bool_(draw(st.booleans())))
        return (lambda p, a: lax.cond(p, lambda v: lax.exp(v), lambda v: v * 2, a)), [pred, x], 4, F32
    index = fnp.asarray(np.int32(draw(st.integers(-1, 3))))     # switch clamps its index
    branches = [lambda v: v + 1, lambda v: lax.sin(v), lambda v: lax.reduce_sum(v, ()) * v]
    return (lambda i, a: lax.switch(i, branches, a)), [index, x], 4, F32


@case("while")
def while_case(draw, name):
    x = array(draw, I32, draw(shapes()), small=True)
    n = fnp.asarray(np.int32(draw(st.integers(-1, 5))))
    def f(k, a):
        return lax.while_loop(lambda c: c[0] < k, lambda c: (c[0] + 1, c[1] * 2 + 1), (np.int32(0), a))
    return f, [n, x], 0, I32


@case("scan")
def scan_case(draw, name):
    length = draw(st.integers(0, 4))
    xs = array(draw, F32, (length,) + tuple(draw(shapes())), small=True)
    reverse = draw(st.booleans())
    def f(v):
        return lax.scan(lambda c, x: (c + x, c * x), fnp.zeros(v.shape[1:], np.float32), v, reverse=reverse)
    return f, [xs], 4, F32


@case("jit")
def jit_case(draw, name):
    """A jit inside a function that is not itself jitted: a jit primitive under vmap."""
    x = array(draw, F32, draw(shapes()), small=True)
    inner = fgrad.jit(lambda a: lax.tanh(a) * a)
    return (lambda a: fgrad.vmap(inner)(lax.expand_dims(a, (0,)))), [x], 4, F32


@case("remat")
def remat_case(draw, name):
    x = array(draw, F32, draw(shapes()), small=True)
    g = fgrad.grad(lambda a: fnp.sum(fgrad.checkpoint(lambda v: lax.sin(v) * v)(a)))
    return g, [x], 4, F32


@case("custom_jvp_call")
def custom_jvp_case(draw, name):
    @fgrad.custom_jvp
    def softplus(v):
        return fnp.log1p(fnp.exp(v))
    softplus.defjvp(lambda p, t: (softplus(p[0]), t[0] * lax.logistic(p[0])))
    x = array(draw, F32, draw(shapes()), small=True)
    return (lambda a: (softplus(a), fgrad.jvp(softplus, (a,), (a,)))), [x], 8, F32


@case("custom_vjp_call", "custom_lin")
def custom_vjp_case(draw, name):
    @fgrad.custom_vjp
    def clip_grad(v):
        return v * v
    clip_grad.defvjp(lambda v: (v * v, v), lambda v, ct: (fnp.clip(ct * 2 * v, -1, 1),))
    x = array(draw, F32, draw(shapes()), small=True)
    return (lambda a: (clip_grad(a), fgrad.grad(lambda v: fnp.sum(clip_grad(v)))(a))), [x], 4, F32


@case("linear_solve")
def linear_solve_case(draw, name):
    n = draw(st.integers(1, 4))
    m = np.eye(n, dtype=np.float32) * 4 + array(draw, F32, (n, n), small=True) * 0.5
    b = array(draw, F32, (n,), small=True)

    def solve(mat, rhs):
        return lax.custom_linear_solve(lambda v: mat @ v, rhs, lambda mv, r: fnp.linalg.solve(mat, r),
                                       lambda vm, r: fnp.linalg.solve(mat.T, r))
    return (lambda a, c: (solve(a, c), fgrad.grad(lambda v: fnp.sum(solve(a, v)))(c))), [m, b], 64, F32


@case("shard")
def shard_case(draw, name):
    from fgrad.sharding import Mesh, P
    mesh = Mesh(fgrad.devices()[:1], ("i",))
    x = array(draw, F32, (draw(st.integers(0, 3)), 2), small=True)
    return fgrad.shard(lambda a: lax.psum(a * 2, "i"), mesh, P("i"), P()), [x], 0, F32


@case("pvary")
def pvary_case(draw, name):
    from fgrad.sharding import Mesh, P
    mesh = Mesh(fgrad.devices()[:1], ("i",))
    w = array(draw, F32, (2,), small=True)
    x = array(draw, F32, (draw(st.integers(0, 3)), 2), small=True)
    # the replicated w meets the split x: tracing casts it with pvary (lowered as the identity)
    return fgrad.shard(lambda v, a: lax.psum(a * v, "i"), mesh, (P(), P("i")), P()), [w, x], 0, F32


# --- decompositions (fgrad.ops.linalg): well-conditioned float32/float64 matrices -----------------

LINALG_TOLERANCE = 2000     # ulps: LAPACK's blocking may differ between the eager and native calls


def well_conditioned(draw, shape, dtype):
    """A random matrix batch of ``shape`` with its diagonal boosted (a well-conditioned
    triangle, LU without tiny pivots)."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1), label="seed"))
    x = rng.standard_normal(shape)
    k = min(shape[-2:])
    x[..., range(k), range(k)] += 3.0 * np.sign(x[..., range(k), range(k)] + 0.5)
    return x.astype(dtype)


@case("complex_decomposition")
def complex_decomposition_case(draw, name):
    """A decomposition of a complex matrix: jit splits it into its parts' complex_decomposition
    (complex LAPACK inside the native program); eager calls the decomposition itself."""
    part = draw(st.sampled_from([F32, F64] if fgrad.config.enable_x64 else [F32]))
    m = draw(st.integers(1, 4))
    re, im = well_conditioned(draw, (m, m), part), well_conditioned(draw, (m, m), part)
    z = re + 1j * im.astype(core_dtypes.complex_dtype(part))
    L = lax.linalg
    which = draw(st.sampled_from(["cholesky", "lu", "qr", "eigh", "svd", "triangular_solve"]))
    if which == "cholesky":
        return L.cholesky, [fnp.asarray(z @ z.conj().T + m * np.eye(m))], LINALG_TOLERANCE, part
    if which == "triangular_solve":
        return (lambda a, b: L.triangular_solve(a, b, left_side=True, lower=True)), \
            [fnp.asarray(z), fnp.asarray(z[:, :1])], LINALG_TOLERANCE, part
    if which == "eigh":
        return (lambda a: L.eigh(a)), [fnp.asarray(z + z.conj().T)], LINALG_TOLERANCE, part
    return getattr(L, which), [fnp.asarray(z)], LINALG_TOLERANCE, part


@case("scatter_parts")
def scatter_parts_case(draw, name):
    """A complex max/min/mul scatter: jit lowers it as scatter_parts, one kernel for both parts."""
    part = draw(st.sampled_from([F32, F64] if fgrad.config.enable_x64 else [F32]))
    n = draw(st.integers(1, 5))
    values = lambda size: draw(hnp.arrays(part, size, elements=st.floats(-3, 3, width=part.itemsize * 8)))
    x = values(n) + 1j * values(n)
    k = draw(st.integers(0, 6))
    updates = values(k) + 1j * values(k)
    idx = np.asarray(draw(st.lists(st.integers(-n, n + 1), min_size=k, max_size=k)), np.int32)
    mode = draw(st.sampled_from(["max", "min", "multiply"]))
    return (lambda x, u: getattr(x.at[idx], mode)(u)), [fnp.asarray(x), fnp.asarray(updates)], 0, part


@case("cholesky", "triangular_solve", "lu", "qr", "eigh", "svd")
def linalg_case(draw, name):
    choices = [d for d in dtypes_of("float") if d not in (F16, BF16)]
    if not choices:
        pytest.skip("the decompositions take float32 and float64 (as LAPACK and JAX on the CPU)")
    dtype = draw(st.sampled_from(choices))
    batch = tuple(draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=2)))
    m, n = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    square = well_conditioned(draw, batch + (m, m), dtype)
    flags = draw(st.lists(st.booleans(), min_size=4, max_size=4))
    L = lax.linalg
    if name == "cholesky":
        spd = fnp.asarray(np.matmul(square, np.swapaxes(square, -1, -2)) + m * np.eye(m, dtype=dtype))
        return L.cholesky, [spd], LINALG_TOLERANCE, dtype
    if name == "eigh":
        return (lambda a: L.eigh(a, lower=flags[0])), [fnp.asarray(square)], LINALG_TOLERANCE, dtype
    if name == "triangular_solve":
        b = well_conditioned(draw, batch + ((m, n) if flags[0] else (n, m)), dtype)
        solve = lambda a, b: L.triangular_solve(a, b, left_side=flags[0], lower=flags[1], transpose_a=flags[2],
                                                unit_diagonal=flags[3])
        return solve, [fnp.asarray(square), fnp.asarray(b)], LINALG_TOLERANCE, dtype
    rect = fnp.asarray(well_conditioned(draw, batch + (m, n), dtype))
    if name == "lu":
        return L.lu, [rect], LINALG_TOLERANCE, dtype
    if name == "qr":
        return (lambda a: L.qr(a, full_matrices=flags[0])), [rect], LINALG_TOLERANCE, dtype
    return (lambda a: L.svd(a, full_matrices=flags[0], compute_uv=flags[1])), [rect], LINALG_TOLERANCE, dtype


# --- host callbacks (fgrad.ops.callback): the Python function called from the native program ----------

@case("pure_callback", "io_callback", "debug_callback")
def callback_case(draw, name):
    dtype = draw(st.sampled_from(dtypes_of("any")))
    x = array(draw, dtype, draw(shapes()))
    host = lambda v: np.flip(v, tuple(range(v.ndim))).copy()           # any dtype, any shape
    spec = fgrad.ShapeDtypeStruct(x.shape, x.dtype)
    if name == "pure_callback":
        return (lambda a: fgrad.pure_callback(host, spec, a)), [x], 0, dtype
    if name == "io_callback":
        return (lambda a: fgrad.experimental.io_callback(host, spec, a)), [x], 0, dtype
    seen = []

    def f(a):                                 # the result: what the debug callback saw (run first)
        fgrad.debug.callback(lambda v: seen.append(np.array(v)), a)
        return fgrad.pure_callback(lambda v: seen.pop(), spec, a)
    return f, [x], 0, dtype


def test_every_primitive_has_a_case():
    missing = sorted({p.name for p in all_primitives} - set(CASES))
    assert not missing, f"primitives without a jit-vs-eager case: {missing}"


@pytest.mark.parametrize("name", sorted(CASES))
@FEW
@given(data=st.data())
def test_primitive_jit_matches_eager(name, data):
    with fgrad.config.override(enable_x64=data.draw(st.booleans(), label="x64")):
        f, args, ulp, _ = CASES[name](data.draw, name)
        check(f, args, ulp, name)


#: The case builders that pick their dtype with ``dtypes_of``: each runs on every narrow dtype
#: its kind admits (the others use fixed dtypes: control flow, collectives, pool gradients...).
NARROW_CASES = sorted(n for n in CASES if n not in {
    "select_and_gather_add", "select_and_scatter_add", "threefry2x32", "psum", "pmax", "pmin",
    "all_gather", "psum_scatter", "ppermute", "axis_index", "cond", "while", "scan", "jit", "remat",
    "custom_jvp_call", "custom_vjp_call", "custom_lin", "linear_solve", "shard", "pvary", "real", "imag", "conj", "complex", "fft", "eig",
    "complex_decomposition", "scatter_parts"})
NARROW = settings(max_examples=max(2, settings().max_examples // 12))


@pytest.mark.parametrize("dtype", NARROW_DTYPES, ids=[d.name for d in NARROW_DTYPES])
@pytest.mark.parametrize("name", NARROW_CASES)
@NARROW
@given(data=st.data())
def test_narrow_dtypes_jit_match_eager(name, dtype, data):
    """Each primitive on int8, int16, uint16 and bfloat16 operands (those its kind admits):
    jit equals eager, compiled natively, and the drawn program really holds the dtype."""
    with fgrad.config.override(enable_x64=data.draw(st.booleans(), label="x64")):
        FORCED[0] = dtype
        try:
            f, args, ulp, _ = CASES[name](data.draw, name)
        finally:
            FORCED[0] = None
        assert dtype in {np.asarray(a).dtype for a in tree.tree_leaves(args)}
        check(f, args, ulp, name)


#: Cases re-run with sides up to 13: past the 8-lane vector width, with remainder loops.
WIDE = ["exp", "tanh", "log1p", "add", "mul", "max", "div", "eq", "select_n", "convert_element_type",
        "broadcast_in_dim", "transpose", "slice", "rev", "pad", "concatenate", "iota", "reduce_sum",
        "reduce_max", "reduce_and", "argmax", "cumsum", "dot_general", "gather", "scatter"]
WIDER = settings(max_examples=max(3, settings().max_examples // 8))


@pytest.mark.parametrize("name", WIDE)
@WIDER
@given(data=st.data())
def test_wide_primitives_match_eager(name, data):
    with fgrad.config.override(enable_x64=data.draw(st.booleans(), label="x64")):
        MAX_SIDE[0] = 13
        try:
            f, args, ulp, _ = CASES[name](data.draw, name)
        finally:
            MAX_SIDE[0] = 4
        check(f, args, ulp, name)     # float64 arguments run under the x64 they were drawn under


def _big(rng, *shape):
    return fnp.asarray(rng.standard_normal(shape).astype(np.float32))


#: Programs big enough for parallel loops (>= 32768 elements) and blocked contractions.
BIG_PROGRAMS = {
    "elementwise over a transpose": (lambda a: lax.tanh(lax.transpose(a, (1, 0)) * 2 + 1) * 3,
                                     lambda r: [_big(r, 300, 170)]),
    "strided input": (lambda a: a * a + 1, lambda r: [fnp.asarray(np.asarray(_big(r, 200, 400))[:, ::2])]),
    "row and column reductions": (lambda a: (fnp.sum(a, 0), fnp.max(a, 1), fnp.argmax(a, 0)),
                                  lambda r: [_big(r, 257, 300)]),
    "cumsum": (lambda a: fnp.cumsum(a, axis=1), lambda r: [_big(r, 180, 200)]),
    "matmul": (lambda a, b: a @ b, lambda r: [_big(r, 130, 140), _big(r, 140, 150)]),
    "matmul with transposed operands": (lambda a, b: a.T @ b.T, lambda r: [_big(r, 140, 130), _big(r, 150, 140)]),
    "conv": (lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME"),
             lambda r: [_big(r, 8, 4, 30, 30), _big(r, 16, 4, 3, 3)]),
    "max pool and its gradient": (
        lambda x: fgrad.value_and_grad(lambda v: fnp.sum(lax.reduce_window(
            v, "max", (1, 1, 2, 2), (1, 1, 2, 2)) ** 2))(x),
        lambda r: [fnp.asarray(np.round(np.asarray(_big(r, 8, 8, 26, 26))))]),
    "gather and scatter-add": (
        lambda x, i: (x[i], fnp.zeros((300, 120), np.float32).at[i].add(x[i] * 2)),
        lambda r: [_big(r, 300, 120), fnp.asarray(r.integers(0, 300, 500).astype(np.int32))]),
}


@pytest.mark.slow
@pytest.mark.parametrize("program", list(BIG_PROGRAMS))
@settings(max_examples=3)
@given(seed=st.integers(0, 2 ** 31))
def test_parallel_programs_match_eager(program, seed):
    f, make = BIG_PROGRAMS[program]
    check(f, make(np.random.default_rng(seed)), ulp=512, name=program)


@pytest.mark.parametrize("op", ["shift_left", "shift_right_logical"])
def test_int64_shifts(op):
    """Shift amounts past the width (and negative ones) shift everything out, on both paths."""
    with fgrad.config.override(enable_x64=True):
        x = fnp.asarray(np.array([1, -8, 5, -1], np.int64))
        y = fnp.asarray(np.array([1, 2, 70, -1], np.int64))
        check(getattr(lax, op), [x, y], name=op)


def test_gather_from_an_empty_axis():
    """Every index is out of bounds of an empty axis: fill values, compiled natively."""
    x = fnp.asarray(np.zeros((0, 3), np.float32))
    idx = fnp.asarray(np.array([[0], [2]], np.int32))
    f = lambda a, i: lax.gather(a, i, (0,), mode="fill", fill_value=7.0)
    before = pipeline.compiled_by_path["reference"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", fgrad.ReferencePathWarning)
        got = fgrad.jit(f)(x, idx)
    assert pipeline.compiled_by_path["reference"] == before
    assert_same(got, f(x, idx))
    np.testing.assert_array_equal(np.asarray(got), np.full((2, 3), 7.0, np.float32))


# --- transform compositions under jit ---------------------------------------------------------

_W = np.linspace(-1, 1, 8, dtype=np.float32).reshape(4, 2)
_K = np.linspace(-0.5, 0.5, 3 * 2 * 3 * 3, dtype=np.float32).reshape(3, 2, 3, 3)
_IDX = np.array([0, 2, 2, 4], np.int32)


def _elementwise(x):
    return fnp.sum(fnp.tanh(x * 2 + 1) * x + fnp.exp(-x * x))


def _reduction(x):
    return fnp.sum(fnp.max(x, axis=1) * fnp.sum(fnp.mean(x, axis=0)))


def _dot(x):
    return fnp.sum(fnp.tanh(x @ _W))


def _conv(x):
    return fnp.sum(lax.conv_general_dilated(x, fnp.asarray(_K), (1, 1), "SAME") ** 2)


def _pool(x):
    return fnp.sum(lax.reduce_window(fnp.maximum(x, 0), "max", (1, 1, 2, 2), (1, 1, 2, 2)) ** 2)


def _indexing(x):
    taken = x[_IDX]
    return fnp.sum(taken * taken) + fnp.sum(fnp.zeros(5, np.float32).at[_IDX].add(x[:4]) * x)


def _cumsum(x):
    return fnp.sum(fnp.cumsum(x) * x)


def _cond(x):
    return lax.cond(fnp.sum(x) > 0, lambda v: fnp.sum(fnp.sin(v)), lambda v: fnp.sum(v * v), x)


def _loop(x):
    return fnp.sum(lax.fori_loop(0, 3, lambda i, c: fnp.sin(c) * x, x))


def _scan(x):
    carry, ys = lax.scan(lambda c, v: (c * 0.5 + v, c * v), np.float32(0), x)
    return carry + fnp.sum(ys)


#: name -> (function of one float32 array, its shape as a strategy)
FUNCTIONS = {
    "elementwise": (_elementwise, st.tuples(st.integers(0, 5))),
    "reduction": (_reduction, st.tuples(st.integers(1, 3), st.integers(1, 4))),
    "dot": (_dot, st.tuples(st.integers(0, 3), st.just(4))),
    "conv": (_conv, st.tuples(st.integers(1, 2), st.just(2), st.integers(3, 5), st.integers(3, 5))),
    "pool": (_pool, st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(2, 5), st.integers(2, 5))),
    "indexing": (_indexing, st.just((5,))),
    "cumsum": (_cumsum, st.tuples(st.integers(0, 5))),
    "cond": (_cond, st.tuples(st.integers(0, 4))),
    "loop": (_loop, st.tuples(st.integers(0, 4))),
    "scan": (_scan, st.tuples(st.integers(0, 5))),
}
#: hessian builds the biggest programs: only on these (small) ones
HESSIAN_OK = ["elementwise", "reduction", "dot", "indexing", "cumsum", "cond", "scan"]


def _with_aux(f):
    return lambda x: (f(x), {"double": x * 2})


COMPOSITIONS = {
    "jit(grad f)": lambda f: (fgrad.jit(fgrad.grad(f)), fgrad.grad(f)),
    "jit(vmap f)": lambda f: (fgrad.jit(fgrad.vmap(f)), fgrad.vmap(f)),
    "jit(jvp f)": lambda f: (fgrad.jit(lambda x: fgrad.jvp(f, (x,), (fnp.cos(x),))),
                             lambda x: fgrad.jvp(f, (x,), (fnp.cos(x),))),
    "vmap(jit f)": lambda f: (fgrad.vmap(fgrad.jit(f)), fgrad.vmap(f)),
    "grad(jit f)": lambda f: (fgrad.grad(fgrad.jit(f)), fgrad.grad(f)),
    "jit(value_and_grad f, has_aux)": lambda f: (
        fgrad.jit(fgrad.value_and_grad(_with_aux(f), has_aux=True)),
        fgrad.value_and_grad(_with_aux(f), has_aux=True)),
    "jit(hessian f)": lambda f: (fgrad.jit(fgrad.hessian(f)), fgrad.hessian(f)),
}
COMPOSED = settings(max_examples=max(3, settings().max_examples // 8))


@pytest.mark.parametrize("composition,fname", [
    (c, f) for c in COMPOSITIONS for f in sorted(FUNCTIONS) if c != "jit(hessian f)" or f in HESSIAN_OK])
@COMPOSED
@given(data=st.data())
def test_composition_under_jit_matches_eager(composition, fname, data):
    f, shape = FUNCTIONS[fname]
    shape = data.draw(shape, label="shape")
    if "vmap" in composition:
        shape = (data.draw(st.integers(0, 3), label="batch"),) + shape
    x = data.draw(hnp.arrays(F32, shape, elements=st.floats(-2, 2, width=32)), label="x")
    x = fnp.asarray(layout(data.draw, x))
    jitted, eager = COMPOSITIONS[composition](f)
    want = eager(x)
    before = pipeline.compiled_by_path["reference"]
    got = jitted(x)
    assert_same(got, want, ulp=256)
    if pipeline.native_enabled():
        assert pipeline.compiled_by_path["reference"] == before, "a program ran on the reference path"


# --- fusion: chains over transposed, sliced, reversed and broadcast intermediates ------------

@st.composite
def chains(draw):
    """A random program of 1-6 steps on one array, with a fresh argument per binary step:
    transposes, strided slices and reversals feeding elementwise ops, reductions broadcast
    back (the schedule fuses all of these into their consumers)."""
    dtype = draw(st.sampled_from(dtypes_of("float")[:2]))
    shape = tuple(draw(shapes(1)))
    args = [array(draw, dtype, shape, small=True)]
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        step = draw(st.sampled_from(["tanh", "exp", "abs", "mul", "max", "transpose", "slice",
                                     "rev", "sum", "reduce_max"]))
        nd = len(shape)
        if step in ("mul", "max"):
            args.append(array(draw, dtype, broadcast_partner(draw, shape), small=True))
            steps.append((step, len(args) - 1, shape))
        elif step == "transpose":
            perm = tuple(draw(st.permutations(range(nd))))
            steps.append((step, perm))
            shape = tuple(shape[p] for p in perm)
        elif step == "slice":
            starts = tuple(draw(st.integers(0, s)) for s in shape)
            strides = tuple(draw(st.integers(1, 2)) for _ in shape)
            steps.append((step, starts, shape, strides))
            shape = tuple(len(range(b, s, k)) for b, s, k in zip(starts, shape, strides))
        elif step == "rev":
            steps.append((step, tuple(i for i in range(nd) if draw(st.booleans()))))
        elif step in ("sum", "reduce_max"):
            axes = tuple(i for i in range(nd) if draw(st.booleans()) and (step == "sum" or shape[i]))
            steps.append((step, axes, shape))
        else:
            steps.append((step,))
    return steps, args


def run_chain(steps, *args):
    x = args[0]
    for step in steps:
        op = step[0]
        if op in ("tanh", "exp", "abs"):
            x = getattr(lax, op)(x)
        elif op == "mul":
            x = x * to_shape(args[step[1]], step[2])
        elif op == "max":
            x = lax.max(x, to_shape(args[step[1]], step[2]))
        elif op == "transpose":
            x = lax.transpose(x, step[1])
        elif op == "slice":
            x = lax.slice(x, step[1], step[2], step[3])
        elif op == "rev":
            x = lax.rev(x, step[1])
        else:
            _, axes, shape = step
            reduced = (lax.reduce_sum if op == "sum" else lax.reduce_max)(x, axes)
            kept = tuple(i for i in range(len(shape)) if i not in axes)
            x = x + lax.broadcast_in_dim(reduced, shape, kept)
    return x


@FEW
@given(data=st.data())
def test_fused_chains_match_eager(data):
    with fgrad.config.override(enable_x64=data.draw(st.booleans(), label="x64")):
        steps, args = data.draw(chains(), label="chain")
        check(lambda *a: run_chain(steps, *a), args, ulp=64, name="chain")
