"""The float approximations JAX's samplers get from XLA, rebuilt from fgrad primitives, so that
fgrad's samplers round as JAX's do.

``normal`` is ``sqrt(2) * erf_inv(u)``, and XLA's ``erf_inv`` is not the correctly rounded
function (fgrad's ``lax.erf_inv`` is): it is M. Giles' polynomial ("Approximating the erfinv
function", GPU Computing Gems Jade, 2011) in ``w = -log1p(-x*x)``, single-precision
coefficients for float32 (float16 computes in float32) and double-precision ones for float64.
XLA's ``log1p`` is a Cephes rational function below ``sqrt(2) - 1`` and ``log(1 + x)`` above.
XLA's CPU code contracts every ``a * b + c`` into a fused multiply-add; ``fma`` here rounds
once as well (see its docstring). Evaluated in the same order, the only differences left come
from ``log`` itself (XLA's and fgrad's both round within a few ulp).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core.trace import get_aval
from fgrad.ops.elementwise import convert_element_type_p

# Cephes' log1p: x - x^2/2 + x^3 * P(x) / Q(x) for |x| < sqrt(2) - 1 (highest power first)
_LOG1P_P = (4.5270000862445199635215e-5, 4.9854102823193375972212e-1, 6.5787325942061044846969e0,
            2.9911919328553073277375e1, 6.0949667980987787057556e1, 5.7112963590585538103336e1,
            2.0039553499201281259648e1)
_LOG1P_Q = (1.0, 1.5062909083469192043167e1, 8.3047565967967209469434e1, 2.2176239823732856465394e2,
            3.0909872225312059774938e2, 2.1642788614495947685003e2, 6.0118660497603843919306e1)
_LOG1P_SMALL = 0.41421356237309504880

# Giles' erfinv, single precision: w < 5 and w >= 5 (highest power first)
_ERFINV32_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                     -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERFINV32_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
                  -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)
# Giles' erfinv, double precision: w < 6.25, w < 16, w >= 16
_ERFINV64_A = (-3.6444120640178196996e-21, -1.685059138182016589e-19, 1.2858480715256400167e-18,
               1.115787767802518096e-17, -1.333171662854620906e-16, 2.0972767875968561637e-17,
               6.6376381343583238325e-15, -4.0545662729752068639e-14, -8.1519341976054721522e-14,
               2.6335093153082322977e-12, -1.2975133253453532498e-11, -5.4154120542946279317e-11,
               1.051212273321532285e-09, -4.1126339803469836976e-09, -2.9070369957882005086e-08,
               4.2347877827932403518e-07, -1.3654692000834678645e-06, -1.3882523362786468719e-05,
               0.0001867342080340571352, -0.00074070253416626697512, -0.0060336708714301490533,
               0.24015818242558961693, 1.6536545626831027356)
_ERFINV64_B = (2.2137376921775787049e-09, 9.0756561938885390979e-08, -2.7517406297064545428e-07,
               1.8239629214389227755e-08, 1.5027403968909827627e-06, -4.013867526981545969e-06,
               2.9234449089955446044e-06, 1.2475304481671778723e-05, -4.7318229009055733981e-05,
               6.8284851459573175448e-05, 2.4031110387097893999e-05, -0.0003550375203628474796,
               0.00095328937973738049703, -0.0016882755560235047313, 0.0024914420961078508066,
               -0.0037512085075692412107, 0.005370914553590063617, 1.0052589676941592334,
               3.0838856104922207635)
_ERFINV64_C = (-2.7109920616438573243e-11, -2.5556418169965252055e-10, 1.5076572693500548083e-09,
               -3.7894654401267369937e-09, 7.6157012080783393804e-09, -1.4960026627149240478e-08,
               2.9147953450901080826e-08, -6.7711997758452339498e-08, 2.2900482228026654717e-07,
               -9.9298272942317002539e-07, 4.5260625972231537039e-06, -1.9681778105531670567e-05,
               7.5995277030017761139e-05, -0.00021503011930044477347, -0.00013871931833623122026,
               1.0103004648645343977, 4.8499064014085844221)


def _const(x: Any, value: float) -> Any:
    return np.asarray(value, get_aval(x).dtype)


def _convert_exactly(x: Any, dtype: np.dtype) -> Any:
    # the primitive itself: lax.convert_element_type would narrow float64 to float32 without x64
    return convert_element_type_p.bind(x, new_dtype=np.dtype(dtype), weak_type=False)


def _veltkamp_split(x: Any) -> tuple[Any, Any]:
    scaled = x * np.float64(2.0 ** 27 + 1)
    high = scaled - (scaled - x)
    return high, x - high


def _fma_float64(a: Any, b: Any, c: Any) -> Any:
    """``a * b + c`` from Dekker's exact product and Knuth's exact sum, rounded at the end
    (faithful; equal to a true fma except in rare near-tie cases)."""
    product = a * b
    a_high, a_low = _veltkamp_split(a)
    b_high, b_low = _veltkamp_split(b)
    product_error = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low
    total = product + c
    c_part = total - product
    sum_error = (product - (total - c_part)) + (c - c_part)
    return total + (sum_error + product_error)


def fma(a: Any, b: Any, c: Any) -> Any:
    """``a * b + c`` with one rounding, in ``c``'s dtype (float16/32/64), as XLA's contracted
    multiply-adds round. float16/32 compute in float64, where the product is exact, then round
    once more (a double rounding differs from a true fma only on exact ties, about 2**-29 of
    values); float64 uses ``_fma_float64``."""
    dtype = get_aval(c).dtype
    shape = np.broadcast_shapes(*(tuple(fnp.shape(v)) for v in (a, b, c)))
    a, b, c = (fnp.broadcast_to(fnp.asarray(v).astype(dtype), shape) for v in (a, b, c))
    if dtype == np.float64:
        return _fma_float64(a, b, c)
    wide = [_convert_exactly(v, np.float64) for v in (a, b, c)]
    return _convert_exactly(lax.add(lax.mul(wide[0], wide[1]), wide[2]), dtype)


def _polynomial(x: Any, coefficients: tuple) -> Any:
    p = fnp.broadcast_to(_const(x, coefficients[0]), fnp.shape(x))
    for c in coefficients[1:]:
        p = fma(p, x, _const(x, c))
    return p


def log1p(x: Any) -> Any:
    """``log(1 + x)`` computed as XLA's CPU backend computes it (see the module docstring)."""
    x_squared = x * x
    ratio = _polynomial(x, _LOG1P_P) / _polynomial(x, _LOG1P_Q)
    small = x + fma(_const(x, -0.5), x_squared, (x * x_squared) * ratio)
    large = fnp.log(x + _const(x, 1.0))
    return fnp.where(fnp.abs(x) < _const(x, _LOG1P_SMALL), small, large)


def _erf_inv32(x: Any) -> Any:
    w = -log1p(-x * x)
    central = w < _const(x, 5.0)
    w = fnp.where(central, w - _const(x, 2.5), fnp.sqrt(w) - _const(x, 3.0))
    p = fnp.where(central, _const(x, _ERFINV32_CENTRAL[0]), _const(x, _ERFINV32_TAIL[0]))
    for c, t in zip(_ERFINV32_CENTRAL[1:], _ERFINV32_TAIL[1:]):
        p = fma(p, w, fnp.where(central, _const(x, c), _const(x, t)))
    return p * x


def _erf_inv64(x: Any) -> Any:
    w = -log1p(-x * x)
    below_625, below_16 = w < _const(x, 6.25), w < _const(x, 16.0)

    def coefficient(i: int) -> Any:
        c = _const(x, _ERFINV64_A[i])
        if i < len(_ERFINV64_B):
            c = fnp.where(below_625, c, _const(x, _ERFINV64_B[i]))
        if i < len(_ERFINV64_C):
            c = fnp.where(below_16, c, _const(x, _ERFINV64_C[i]))
        return c

    shift = fnp.where(below_16, _const(x, 3.25), _const(x, 5.0))
    w = fnp.where(below_625, w - _const(x, 3.125), fnp.sqrt(w) - shift)
    p = coefficient(0)
    for i in range(1, len(_ERFINV64_C)):
        p = fma(p, w, coefficient(i))
    for i in range(len(_ERFINV64_C), len(_ERFINV64_B)):
        p = fnp.where(below_16, fma(p, w, coefficient(i)), p)
    for i in range(len(_ERFINV64_B), len(_ERFINV64_A)):
        p = fnp.where(below_625, fma(p, w, coefficient(i)), p)
    return p * x


def erf_inv(x: Any) -> Any:
    """XLA's ``erf_inv`` (Giles' polynomials; ``±1`` give ``±inf``); float16 and bfloat16
    compute in float32, as XLA's CPU backend does."""
    dtype = get_aval(x).dtype
    half = dtype in (np.float16, fnp.bfloat16)
    wide = lax.convert_element_type(x, np.float32) if half else x
    result = _erf_inv64(wide) if dtype == np.float64 else _erf_inv32(wide)
    result = fnp.where(fnp.abs(wide) == _const(wide, 1.0), wide * _const(wide, np.inf), result)
    return lax.convert_element_type(result, dtype) if half else result
