"""C text of the kernel IR's scalar ops for the CUDA renderer: C types, ``op_text`` and its
tables, casts, exact literals, and ``PRELUDE`` (the helpers that give C the IR's semantics:
wrapping integers, total division and shifts, NaN-propagating min/max, saturating casts).
Each op of ``scalar_ops.TABLE`` has one entry in these tables (``RENDERED_OPS``, checked
at import)."""
from __future__ import annotations

import numpy as np

from fgrad.lower.kernel import (
    bfloat16, bool_, float16, float32, float64, int8, int16, int32, int64, is_float, uint8, uint16, uint32,
    uint64,
)
from fgrad.lower.scalar_ops import check_coverage


C_TYPES = {float16: "fg_half", bfloat16: "fg_bfloat16", float32: "float", float64: "double",
           int8: "signed char", int16: "short", int32: "int", int64: "long long", uint8: "unsigned char",
           uint16: "unsigned short", uint32: "unsigned int", uint64: "unsigned long long", bool_: "bool"}
#: the C literal's cast for the integer types without a literal suffix of their own
_SMALL_INT_CASTS = {int8: "signed char", int16: "short", uint8: "unsigned char", uint16: "unsigned short"}
NARROW_TYPES = {**C_TYPES, int64: "int"}     # a kernel whose index values all fit in 32 bits

# --- scalar ops ----------------------------------------------------------------------------------

_FLOAT_FN = {"exp": "exp", "log": "log", "log1p": "log1p", "expm1": "expm1", "tanh": "tanh",
             "sin": "sin", "cos": "cos", "sqrt": "sqrt", "floor": "floor", "ceil": "ceil",
             "round": "round", "round_even": "rint", "abs": "fabs", "pow": "pow", "rem": "fmod",
             "fma": "fma"}
_INFIX = {"and": "&", "or": "|", "xor": "^", "eq": "==", "ne": "!=", "lt": "<", "le": "<=",
          "gt": ">", "ge": ">="}
PLAIN_DIVISION = {"floordiv": "/", "div": "/", "mod": "%", "rem": "%"}
_HELPER = {"div": "fg_div", "rem": "fg_rem", "floordiv": "fg_floordiv", "mod": "fg_mod",
           "pow": "fg_pow", "max": "fg_max", "min": "fg_min", "shl": "fg_shl", "shr": "fg_shr",
           "abs": "fg_abs", "sign": "fg_sign", "add": "fg_add", "sub": "fg_sub", "mul": "fg_mul",
           "neg": "fg_neg", "fma": "fg_fma"}


def op_text(name: str, args: list[str], dtype: np.dtype, out: np.dtype, types: dict = C_TYPES) -> str:
    """C text of scalar op ``name`` on argument texts; ``dtype`` is the operands' dtype
    (the source dtype for ``cast``/``bitcast``) and ``out`` the result's; ``types`` names
    the C type of each dtype (``NARROW_TYPES`` in a kernel with 32-bit indices)."""
    if name == "cast":
        return cast_text(args[0], dtype, out, types)
    if name == "bitcast":
        return bitcast_text(args[0], dtype, out, types)
    if name == "select":
        return f"({args[0]} ? {args[1]} : {args[2]})"
    if name in _INFIX:
        return f"({args[0]} {_INFIX[name]} {args[1]})"
    if name == "not":
        return f"(!{args[0]})" if dtype == bool_ else f"(({types[dtype]})~{args[0]})"
    if is_float(dtype):
        return _float_op_text(name, args, dtype)
    return f"{_HELPER[name]}({', '.join(args)})"


def _float_op_text(name: str, args: list[str], dtype: np.dtype) -> str:
    f = "f" if dtype == float32 else ""
    one = const_text(1.0, dtype)
    if name in ("add", "sub", "mul", "div"):
        sym = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[name]
        return f"({args[0]} {sym} {args[1]})"
    if name == "neg":
        return f"(-{args[0]})"
    if name == "logistic":
        return f"({one} / ({one} + exp{f}(-{args[0]})))"
    if name == "rsqrt":
        return f"({one} / sqrt{f}({args[0]}))"
    if name == "is_finite":
        return f"isfinite({args[0]})"
    if name in _FLOAT_FN:
        return f"{_FLOAT_FN[name]}{f}({', '.join(args)})"
    return f"{_HELPER[name]}({', '.join(args)})"     # sign, max, min, floordiv, mod


def cast_text(x: str, src: np.dtype, dst: np.dtype, types: dict = C_TYPES) -> str:
    """C text converting ``x`` from ``src`` to ``dst`` with the IR's cast semantics."""
    if src == dst:
        return x
    if float16 in (src, dst):     # the IR casts float16 only to and from float32
        return f"fg_h2f({x})" if src == float16 else f"fg_f2h({x})"
    if dst == bool_:
        return f"({x} != 0)"
    if is_float(src) and not is_float(dst):
        return f"fg_float_to<{types[dst]}>({x})"
    return f"(({types[dst]}){x})"


def bitcast_text(x: str, src: np.dtype, dst: np.dtype, types: dict = C_TYPES) -> str:
    """C text reinterpreting the bits of ``x`` (``src``) as ``dst``."""
    if src == dst or {src, dst} == {bfloat16, uint16}:   # bfloat16 is its bits, in C
        return x
    intrinsic = {(float32, int32): "__float_as_int", (int32, float32): "__int_as_float",
                 (float32, uint32): "__float_as_uint", (uint32, float32): "__uint_as_float",
                 (float64, int64): "__double_as_longlong", (int64, float64): "__longlong_as_double"}
    if (src, dst) in intrinsic:
        return f"{intrinsic[src, dst]}({x})"
    return f"fg_bitcast<{types[dst]}>({x})"


def const_text(value, dtype: np.dtype) -> str:
    """An exact C literal of ``value`` as ``dtype``."""
    dtype = np.dtype(dtype)
    if dtype == bool_:
        return "true" if value else "false"
    if dtype == float16:
        return f"((fg_half)0x{int(np.float16(value).view(np.uint16)):04x})"
    if dtype == bfloat16:
        return f"((fg_bfloat16)0x{int(np.asarray(value, np.float32).astype(bfloat16).view(np.uint16)):04x})"
    if is_float(dtype):
        v = dtype.type(value)
        if np.isnan(v):
            return "__int_as_float(0x7fffffff)" if dtype == float32 else \
                "__longlong_as_double(0x7ff8000000000000LL)"
        if np.isinf(v):
            inf = "__int_as_float(0x7f800000)" if dtype == float32 else \
                "__longlong_as_double(0x7ff0000000000000LL)"
            return inf if v > 0 else f"(-{inf})"
        text = repr(float(v)) if dtype == float64 else str(v)
        if "." not in text and "e" not in text:
            text += ".0"
        text += "f" if dtype == float32 else ""
        return f"({text})" if text.startswith("-") else text
    v = int(value)
    if dtype == int64:
        return "(-9223372036854775807LL - 1)" if v == -(1 << 63) else (
            f"({v}LL)" if v < 0 else f"{v}LL")
    if dtype == int32:
        return "(-2147483647 - 1)" if v == -(1 << 31) else (f"({v})" if v < 0 else str(v))
    if dtype == uint32:
        return f"{v}u"
    if dtype == uint64:
        return f"{v}ull"
    return f"(({_SMALL_INT_CASTS[dtype]}){v})"


C_RESERVED = frozenset("""
alignas alignof and and_eq asm auto bitand bitor bool break case catch char char16_t char32_t


class compl const constexpr const_cast continue decltype default delete do double dynamic_cast
else enum explicit export extern false float for friend goto if inline int long mutable namespace
new noexcept not not_eq nullptr operator or or_eq private protected public register
reinterpret_cast return short signed sizeof static static_assert static_cast struct switch
template this thread_local throw true try typedef typeid typename union unsigned using virtual
void volatile wchar_t while xor xor_eq threadIdx blockIdx blockDim gridDim warpSize main
""".split())


PRELUDE = r"""// generated by fgrad.lower.cuda: the kernel IR's scalar semantics, then the kernels
#define FG_D __device__ __forceinline__
#pragma nv_diag_suppress 186   // "pointless comparison of unsigned integer with zero" in templates

template <typename T> struct fg_int;
template <> struct fg_int<unsigned char> { typedef unsigned int U; enum { is_signed = 0, bits = 8 }; };
template <> struct fg_int<signed char> { typedef unsigned int U; enum { is_signed = 1, bits = 8 }; };
template <> struct fg_int<short> { typedef unsigned int U; enum { is_signed = 1, bits = 16 }; };
template <> struct fg_int<unsigned short> { typedef unsigned int U; enum { is_signed = 0, bits = 16 }; };
template <> struct fg_int<unsigned int> { typedef unsigned int U; enum { is_signed = 0, bits = 32 }; };
template <> struct fg_int<int> { typedef unsigned int U; enum { is_signed = 1, bits = 32 }; };
template <> struct fg_int<long long> { typedef unsigned long long U; enum { is_signed = 1, bits = 64 }; };
template <> struct fg_int<unsigned long long> { typedef unsigned long long U; enum { is_signed = 0, bits = 64 }; };

// float16 is stored as its bits and converted to and from float (round to nearest even)
typedef unsigned short fg_half;
// bfloat16 likewise (its upper float32 half; the IR widens and rounds it in integer arithmetic)
typedef unsigned short fg_bfloat16;
FG_D float fg_h2f(fg_half h) {
    unsigned int sign = (unsigned int)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    float mag = e == 0 ? (float)m * 5.9604644775390625e-08f                      // m * 2^-24
        : __uint_as_float(e == 31 ? 0x7f800000u | (m << 13) : ((e + 112u) << 23) | (m << 13));
    return __uint_as_float(__float_as_uint(mag) | sign);
}
FG_D fg_half fg_f2h(float f) {
    unsigned int x = __float_as_uint(f), sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
    if (a > 0x7f800000u) return (fg_half)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));   // NaN
    if (a >= 0x477ff000u) return (fg_half)(sign | 0x7c00u);                  // >= 65520: inf
    if (a < 0x38800000u)                                                      // < 2^-14: subnormal
        return (fg_half)(sign | (unsigned int)rintf(__uint_as_float(a) * 16777216.0f));
    unsigned int r = a - 0x38000000u;
    return (fg_half)(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
}

// wrapping integer arithmetic (in unsigned types: signed overflow is undefined in C)
template <typename T> FG_D T fg_add(T a, T b) { typedef typename fg_int<T>::U U; return (T)((U)a + (U)b); }
template <typename T> FG_D T fg_sub(T a, T b) { typedef typename fg_int<T>::U U; return (T)((U)a - (U)b); }
template <typename T> FG_D T fg_mul(T a, T b) { typedef typename fg_int<T>::U U; return (T)((U)a * (U)b); }
template <typename T> FG_D T fg_neg(T a) { typedef typename fg_int<T>::U U; return (T)(0u - (U)a); }
template <typename T> FG_D T fg_fma(T a, T b, T c) { return fg_add(fg_mul(a, b), c); }
template <typename T> FG_D T fg_abs(T a) { return (fg_int<T>::is_signed && a < (T)0) ? fg_neg(a) : a; }
template <typename T> FG_D T fg_sign(T a) { return a > (T)0 ? (T)1 : (a < (T)0 ? (T)-1 : (T)0); }

// x/0 and x%0 are 0; MIN/-1 wraps; div and rem truncate, floordiv and mod floor
template <typename T> FG_D bool fg_minus_one(T b) { return fg_int<T>::is_signed && b == (T)-1; }
template <typename T> FG_D T fg_div(T a, T b) {
    if (b == (T)0) return (T)0;
    if (fg_minus_one(b)) return fg_neg(a);
    return (T)(a / b);
}
template <typename T> FG_D T fg_rem(T a, T b) {
    if (b == (T)0 || fg_minus_one(b)) return (T)0;
    return (T)(a % b);
}
template <typename T> FG_D T fg_floordiv(T a, T b) {
    if (b == (T)0) return (T)0;
    if (fg_minus_one(b)) return fg_neg(a);
    T q = (T)(a / b), r = (T)(a % b);
    return (r != (T)0 && ((r < (T)0) != (b < (T)0))) ? (T)(q - 1) : q;
}
template <typename T> FG_D T fg_mod(T a, T b) {
    if (b == (T)0 || fg_minus_one(b)) return (T)0;
    T r = (T)(a % b);
    return (r != (T)0 && ((r < (T)0) != (b < (T)0))) ? (T)(r + b) : r;
}
template <typename T> FG_D T fg_pow(T a, T b) {
    if (fg_int<T>::is_signed && b < (T)0)
        return a == (T)1 ? (T)1 : (a == (T)-1 ? ((b & (T)1) ? (T)-1 : (T)1) : (T)0);
    T result = (T)1;
    for (T e = b; e != (T)0; e = (T)(e >> 1)) {
        if (e & (T)1) result = fg_mul(result, a);
        a = fg_mul(a, a);
    }
    return result;
}

// shifts by a negative amount or >= the bit width give 0 (shr of a negative: -1)
template <typename T> FG_D T fg_shl(T a, T s) {
    typedef typename fg_int<T>::U U;
    if ((U)s >= (U)fg_int<T>::bits) return (T)0;
    return (T)((U)a << (U)s);
}
template <typename T> FG_D T fg_shr(T a, T s) {
    typedef typename fg_int<T>::U U;
    if ((U)s >= (U)fg_int<T>::bits) return (fg_int<T>::is_signed && a < (T)0) ? (T)-1 : (T)0;
    return (T)(a >> (U)s);
}

// min/max: integers plainly, bools as or/and, floats propagate NaN
template <typename T> FG_D T fg_max(T a, T b) { return a > b ? a : b; }
template <typename T> FG_D T fg_min(T a, T b) { return a < b ? a : b; }
FG_D bool fg_max(bool a, bool b) { return a || b; }
FG_D bool fg_min(bool a, bool b) { return a && b; }
// NaN wins; of 0. and -0., max is 0. and min is -0. (as XLA)
FG_D float fg_max(float a, float b) { return (a > b || a != a) ? a : (a == b && !signbit(a) ? a : b); }
FG_D float fg_min(float a, float b) { return (a < b || a != a) ? a : (a == b && signbit(a) ? a : b); }
FG_D double fg_max(double a, double b) { return (a > b || a != a) ? a : (a == b && !signbit(a) ? a : b); }
FG_D double fg_min(double a, double b) { return (a < b || a != a) ? a : (a == b && signbit(a) ? a : b); }

// float sign: NaN stays NaN, ±0 keeps its sign (as XLA)
FG_D float fg_sign(float a) { return a > 0.0f ? 1.0f : (a < 0.0f ? -1.0f : a); }
FG_D double fg_sign(double a) { return a > 0.0 ? 1.0 : (a < 0.0 ? -1.0 : a); }

// floor division and floor modulo of floats, as NumPy's divmod
template <typename F> FG_D F fg_float_floordiv(F a, F b) {
    if (b == (F)0) return a / b;
    F m = fmod(a, b);
    F d = (a - m) / b;
    if (m != (F)0 && ((b < (F)0) != (m < (F)0))) d = d - (F)1;
    if (d == (F)0) return copysign((F)0, a / b);
    F fl = floor(d);
    return (d - fl > (F)0.5) ? fl + (F)1 : fl;
}
template <typename F> FG_D F fg_float_mod(F a, F b) {
    F m = fmod(a, b);
    if (m != (F)0) return ((b < (F)0) != (m < (F)0)) ? m + b : m;
    return copysign((F)0, b);
}
FG_D float fg_floordiv(float a, float b) { return fg_float_floordiv<float>(a, b); }
FG_D double fg_floordiv(double a, double b) { return fg_float_floordiv<double>(a, b); }
FG_D float fg_mod(float a, float b) { return fg_float_mod<float>(a, b); }
FG_D double fg_mod(double a, double b) { return fg_float_mod<double>(a, b); }

// float -> integer casts truncate and saturate, NaN -> 0
template <typename I> struct fg_limits;
template <> struct fg_limits<unsigned char> { static constexpr double lo = 0.0, hi = 255.0; };
template <> struct fg_limits<signed char> { static constexpr double lo = -128.0, hi = 127.0; };
template <> struct fg_limits<short> { static constexpr double lo = -32768.0, hi = 32767.0; };
template <> struct fg_limits<unsigned short> { static constexpr double lo = 0.0, hi = 65535.0; };
template <> struct fg_limits<unsigned int> { static constexpr double lo = 0.0, hi = 4294967295.0; };
template <> struct fg_limits<int> { static constexpr double lo = -2147483648.0, hi = 2147483647.0; };
template <> struct fg_limits<long long> {
    static constexpr double lo = -9223372036854775808.0, hi = 9223372036854775808.0; };
template <> struct fg_limits<unsigned long long> { static constexpr double lo = 0.0, hi = 18446744073709551616.0; };
template <typename I, typename F> FG_D I fg_float_to(F x) {
    double d = (double)x;
    if (d != d) return (I)0;
    if (d <= fg_limits<I>::lo) return fg_int<I>::is_signed ? (I)(((typename fg_int<I>::U)1) << (fg_int<I>::bits - 1)) : (I)0;
    if (d >= fg_limits<I>::hi) return (I)(fg_int<I>::is_signed ? ~(((typename fg_int<I>::U)1) << (fg_int<I>::bits - 1)) : ~(typename fg_int<I>::U)0);
    return (I)d;
}

// bit reinterpretation where no intrinsic exists
template <typename To, typename From> FG_D To fg_bitcast(From x) {
    To y;
    memcpy(&y, &x, sizeof(To));
    return y;
}
"""


#: the ops ``op_text`` renders (checked against ``scalar_ops.TABLE``): cast, bitcast, select
#: and not by their own rules, the rest through the tables above
RENDERED_OPS = check_coverage("the CUDA renderer", {
    "cast", "bitcast", "select", "not", "add", "sub", "mul", "div", "neg", "logistic", "rsqrt",
    "is_finite", *_INFIX, *_FLOAT_FN, *_HELPER})
