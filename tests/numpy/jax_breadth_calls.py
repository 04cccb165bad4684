"""The calls whose JAX 0.10.2 answers tests/numpy/test_jax_recorded_breadth.py compares against
(recorded by scripts/record_jax_numpy_breadth.py into data/jax_numpy_breadth.npz). Each entry is
``(name, f)`` with ``f(m)`` written against a NumPy-like module ``m`` (jax.numpy or fgrad.numpy)."""
import numpy as np

rng = np.random.default_rng(0)
A = rng.standard_normal((3,4,5)).astype(np.float32)
AN = A.copy()
AN[0, 1, :] = np.nan
AN[1, 2, 3] = np.nan
Q = np.array([0., .25, .5, .75, 1.])
CALLS = [
 ("quantile nearest", lambda m: m.quantile(np.arange(4.0), 0.5, method="nearest")),
 ("quantile nearest2", lambda m: m.quantile(np.arange(6.0), Q, method="nearest")),
 ("quantile all", lambda m: [m.quantile(A, Q, axis=1, method=k) for k in ["linear","lower","higher","midpoint","nearest"]]),
 ("nanquantile all", lambda m: [m.nanquantile(AN, Q, axis=(0,2), method=k, keepdims=True) for k in ["linear","lower","higher","midpoint","nearest"]]),
 ("median nan", lambda m: m.median(AN, axis=2)),
 ("nanmedian", lambda m: m.nanmedian(AN, axis=2)),
 ("partition", lambda m: m.partition(np.array([3,1,4,1,5,9,2,6]), 3)),
 ("argpartition", lambda m: m.argpartition(np.array([3,1,4,1,5,9,2,6]), 3)),
 ("partition2", lambda m: m.partition(A, 2, axis=1)),
 ("argpartition2", lambda m: m.argpartition(A, 2, axis=1)),
 ("nan reds", lambda m: [getattr(m, n)(AN, axis=2) for n in ["nansum","nanprod","nanmean","nanvar","nanstd","nanmin","nanmax","nanargmin","nanargmax"]]),
 ("nanvar ddof", lambda m: m.nanvar(AN, axis=2, ddof=4)),
 ("nancum", lambda m: [m.nancumsum(AN, axis=1), m.nancumprod(AN)]),
 ("cumprod bool", lambda m: m.cumprod(np.array([True, False, True]))),
 ("cumprod u8", lambda m: m.cumprod(np.array([3, 200, 2], np.uint8))),
 ("cumulative_prod", lambda m: m.cumulative_prod(np.array([1,2,3]), include_initial=True)),
 ("diff bool", lambda m: m.diff(np.array([True, False, False, True]), n=2)),
 ("diff prepend", lambda m: m.diff(np.arange(5), prepend=np.array([7]), append=1)),
 ("ediff1d", lambda m: m.ediff1d(np.arange(5.)**2, to_begin=-1, to_end=np.array([8, 9]))),
 ("gradient", lambda m: m.gradient(A)),
 ("gradient int", lambda m: m.gradient(np.arange(6)**2, 2.0)),
 ("trapezoid", lambda m: m.trapezoid(A, dx=2.)),
 ("interp", lambda m: m.interp(np.linspace(-1, 5, 13), np.array([0., 1., 1., 4.]), np.array([1., 3., -1., 2.]))),
 ("interp lr", lambda m: m.interp(np.linspace(-1, 5, 13), np.array([0., 1., 2.5, 4.]), np.array([1., 3., -1., 2.]), left=-5, right=5)),
 ("interp period", lambda m: m.interp(np.linspace(-5, 15, 23), np.array([0., 1., 2.5, 4.]), np.array([1., 3., -1., 2.]), period=-3.5)),
 ("convolve", lambda m: [m.convolve(A[0,0], A[0,1,:k], mode) for k in (1,2,3,4,5) for mode in ("full","same","valid")]),
 ("correlate", lambda m: [m.correlate(A[0,0,:k], A[0,1], mode) for k in (1,2,3,4,5) for mode in ("full","same","valid")]),
 ("cov", lambda m: [m.cov(A[0]), m.cov(A[0], A[1], rowvar=False, bias=True), m.cov(A[0], fweights=np.array([1,2,1,3,1]), aweights=np.abs(A[1,0]))]),
 ("cov ddof big", lambda m: m.cov(A[0,:, :2], ddof=3)),
 ("corrcoef", lambda m: [m.corrcoef(A[0]), m.corrcoef(A[0,0])]),
 ("isclose", lambda m: m.isclose(np.array([1., np.inf, -np.inf, np.nan, 0.]), np.array([1., np.inf, np.inf, np.nan, 1e-9]))),
 ("array_equiv", lambda m: [m.array_equiv(A[0], A[0,0]), m.array_equiv(np.ones((2,2)), 1.)]),
 ("unravel", lambda m: m.unravel_index(np.array([-1, 13, -13, 5, -12, 12]), (3,4))),
 ("ravel_multi", lambda m: m.ravel_multi_index((np.array([0, 2, 5]), np.array([3, -1, 1])), (3, 4), mode="clip")),
 ("select", lambda m: m.select([A > 0, A < -1], [A, -A], default=9.)),
 ("piecewise", lambda m: m.piecewise(A, [A < 0, A > 1], [lambda v: -v, 7., 3.])),
 ("piecewise int", lambda m: m.piecewise(np.arange(5), [np.arange(5) > 2], [lambda v: v * 2.5, 1.5])),
 ("choose", lambda m: m.choose(np.array([0, 1, 5, -1]), [np.arange(4), np.arange(4) * 10], mode="clip")),
 ("compress", lambda m: m.compress(np.array([True, False, True]), A[0], axis=0)),
 ("compress size", lambda m: m.compress(np.array([True, False, True]), np.arange(3.), size=3, fill_value=-1)),
 ("extract", lambda m: m.extract(A > 0.5, A, size=10, fill_value=-2)),
 ("insert", lambda m: [m.insert(np.arange(4), 1, np.array([9, 8])), m.insert(np.arange(6).reshape(2, 3), np.array([1, 1, -1]), 9, axis=1), m.insert(np.arange(6).reshape(2,3), 1, np.array([7,8]), axis=1), m.insert(np.arange(6).reshape(2,3), np.array([2]), np.array([7,8,9]), axis=0), m.insert(np.arange(6.), 2, 1.5)]),
 ("delete", lambda m: [m.delete(np.arange(5), np.array([1, -1])), m.delete(A, slice(0, 4, 2), axis=2), m.delete(np.arange(5), 2)]),
 ("block", lambda m: m.block([[np.ones((2, 2)), np.zeros((2, 1))], [np.full((1, 3), 2.)]])),
 ("fill_diagonal", lambda m: [m.fill_diagonal(np.zeros((3, 4)), np.array([1., 2.]), inplace=False), m.fill_diagonal(np.zeros((4, 3)), 5., inplace=False), m.fill_diagonal(np.zeros((3,3,3)), np.arange(2.), inplace=False)]),
 ("put_along_axis", lambda m: m.put_along_axis(A, np.argsort(A, 1)[:, :2], -1., axis=1, inplace=False)),
 ("put_along_axis neg", lambda m: m.put_along_axis(np.zeros((2, 3)), np.array([[-1], [5]]), 2., axis=1, inplace=False)),
 ("put", lambda m: [m.put(np.zeros(5), np.array([1, 7, -1]), np.array([3., 4.]), mode=md, inplace=False) for md in (None, "clip", "wrap")]),
 ("vander", lambda m: [m.vander(np.array([1, 2, 3])), m.vander(np.array([1., -2, 3]), 5, increasing=True)]),
 ("resize", lambda m: m.resize(A, (7, 11))),
 ("rollaxis", lambda m: [m.rollaxis(A, 2, 0), m.rollaxis(A, 0, 3), m.rollaxis(A, -1, -2)]),
 ("trim_zeros", lambda m: m.trim_zeros(np.array([0, 0, 1, 0, 2, 0]))),
 ("lexsort", lambda m: m.lexsort((np.array([3, 3, 1, 1, 0]), np.array([1, 0, 1, 0, 2])))),
 ("indices", lambda m: m.indices((2, 3))),
 ("mgrid", lambda m: [m.mgrid[0:3, 1:5:2], m.mgrid[0:1:5j], m.mgrid[-1:1:0.5]]),
 ("ogrid", lambda m: m.ogrid[0:3, 1:5:2]),
 ("r_", lambda m: [m.r_[np.array([1, 2]), 0, 3:6], m.r_["0,2", np.array([1, 2]), np.array([3, 4])], m.r_["1,2,0", np.array([1, 2]), np.array([3, 4])], m.r_[0:1:5j, np.array([7.])], m.r_['0,2,-1', np.array([1,2]), np.array([[3,4]])]]),
 ("c_", lambda m: [m.c_[np.array([1, 2]), np.array([3, 4])], m.c_[np.ones((2,2)), np.array([3., 4.])], m.c_[1:3, np.array([5, 6])]]),
 ("frexp", lambda m: m.frexp(np.array([0., 1., -3., 1e-40, np.inf, -0.0, np.nan], np.float32))),
 ("ldexp", lambda m: m.ldexp(np.float32([1., 2., 3., 1e-40, 7., 3e38, 1.]), np.array([3, -200, 130, 100, -140, -300, -149]))),
 ("modf", lambda m: m.modf(np.array([-0.0, -2.5, 3.25, np.inf, np.nan]))),
 ("spacing", lambda m: m.spacing(np.float32([1., -1., 0., -0.0, 1e-40, np.inf, np.nan, 3.4e38]))),
 ("heaviside", lambda m: m.heaviside(np.array([-1., 0., -0.0, 2., np.nan]), np.array([0.5]))),
 ("gcd lcm", lambda m: [m.gcd(np.array([12, -8, 0, 0, 270]), np.array([18, 12, 5, 0, -192])), m.lcm(np.array([12, -8, 0, 0, 21]), np.array([18, 12, 5, 0, -6]))]),
 ("i0", lambda m: m.i0(np.linspace(-30, 30, 13))),
 ("geomspace", lambda m: [m.geomspace(1., 1000., 4), m.geomspace(-1., -1000., 5, endpoint=False), m.geomspace(np.array([1., 2.]), np.array([100., 50.]), 4, axis=1)]),
 ("packbits", lambda m: [m.packbits(np.array([[1, 0, 1], [0, 1, 1]]), axis=1, bitorder='little'), m.packbits(np.array([1, -1, 0, 2, 0, 0, 0, 0, 1]))]),
 ("unpackbits", lambda m: [m.unpackbits(np.array([5, 255], np.uint8), count=-3), m.unpackbits(np.array([[5], [255]], np.uint8), axis=1, count=10, bitorder='little')]),
 ("bitwise_count", lambda m: m.bitwise_count(np.array([-1, 7, 0, -2**31, 2**31 - 1], np.int32))),
 ("matvec", lambda m: [m.matvec(A, A[:, 0]), m.vecmat(A[:, :, 0], A)]),
 ("apply_along_axis", lambda m: m.apply_along_axis(lambda v: v[::-1][:2] * v.sum(), 0, A)),
 ("apply_over_axes", lambda m: m.apply_over_axes(m.sum, A, [0, 2])),
 ("vectorize", lambda m: m.vectorize(lambda mm, v: mm @ v, signature='(m,n),(n)->(m)')(A, A[:, 0])),
 ("diagflat", lambda m: m.diagflat(np.array([[1, 2], [3, 4]]), -1)),
 ("split", lambda m: [m.hsplit(A, 2), m.vsplit(A, [1]), m.dsplit(A, [1, 3])]),
 ("tri idx", lambda m: [m.tril_indices(4, 1, 3), m.triu_indices_from(np.ones((3, 5)), -1), m.diag_indices(3, 3), m.mask_indices(3, m.triu, 1)]),
 ("iscomplex", lambda m: [m.iscomplex(np.array([1., 2.])), m.isreal(np.array([1, 2]))]),
]

P1 = np.array([2.0, -5.0, 3.0, -1.0], np.float32)
P2 = np.array([4.0, 1.0], np.float32)
PHASE = np.cumsum(np.random.default_rng(3).uniform(-4, 4, (2, 9)), axis=1).astype(np.float32)
CALLS += [
    ("poly", lambda m: [m.poly(np.array([1, 2, 3])), m.poly(2.5), m.poly(np.array([0.5, -1.0]))]),
    ("polyadd/polysub", lambda m: [m.polyadd(np.array([2, 3]), np.array([5, 4, 1])), m.polysub(np.array([2, 3]), np.array([5, 4, 1])),
                                   m.polyadd(np.array([[5, 7, 3], [8, 2, 6]]), np.array([2])), m.polysub(P1, P2)]),
    ("polymul", lambda m: [m.polymul(np.array([2, 1, 0]), np.array([0, 5, 0, 3])), m.polymul(P1, P2),
                           m.polymul(np.array([2, 1, 0]), np.array([0, 5, 0, 3]), trim_leading_zeros=True)]),
    ("polydiv", lambda m: [m.polydiv(np.array([5, 7, 9]), np.array([4, 1])), m.polydiv(P1, P2), m.polydiv(P2, P1),
                           m.polydiv(np.array([5., 7., 9.]), np.array([4., 1.]), trim_leading_zeros=True)]),
    ("polyval", lambda m: [m.polyval(np.array([2, 5, 1]), 3), m.polyval(P1, A[0]), m.polyval(np.array([2, 5, 1]), np.array([[2, 1], [3, 4]]))]),
    ("polyder", lambda m: [m.polyder(np.array([2, -5, 3, -1])), m.polyder(P1, 2), m.polyder(P1, 0), m.polyder(P2, 3)]),
    ("polyint", lambda m: [m.polyint(np.array([12, 12, 6])), m.polyint(np.array([12, 12, 6]), k=4),
                           m.polyint(np.array([12, 12, 6]), m=2, k=np.array([4, 5])), m.polyint(P1, 3)]),
    ("polyfit", lambda m: [m.polyfit(np.linspace(-2, 3, 9, dtype=np.float32), PHASE[0], deg) for deg in (0, 1, 4)]
                          + [m.polyfit(np.linspace(-2, 3, 9, dtype=np.float32), PHASE.T, 2, w=np.arange(1.0, 10.0))]),
    ("unwrap", lambda m: [m.unwrap(PHASE), m.unwrap(PHASE, axis=0), m.unwrap(PHASE, discont=4.0), m.unwrap(PHASE, period=5.0),
                          m.unwrap(np.array([0, 5, 9, 2, 14]), period=8)]),
    ("windows", lambda m: [f(n) for f in (m.bartlett, m.blackman, m.hamming, m.hanning) for n in (0, 1, 2, 5, 8)]),
    ("kaiser", lambda m: [m.kaiser(n, beta) for n in (0, 1, 4, 9) for beta in (0.0, 5.0, 14.0)]),
]

NEXT_X = np.float32([0, 1, -1, np.inf, -np.inf, np.nan, 3e38, 1e-45, -0.0, 2.5])
NEXT_Y = np.float32([1, 2, -2, 0, 0, 1, np.inf, 0, -1, 2.5])
CALLS += [
    ("nextafter", lambda m: [m.nextafter(NEXT_X, NEXT_Y), m.nextafter(NEXT_Y, NEXT_X)]),
    ("unstack", lambda m: [m.unstack(A, axis=1), m.unstack(np.arange(3))]),
    ("place", lambda m: m.place(np.arange(6).reshape(2, 3), np.arange(6).reshape(2, 3) > 2, np.array([44, 55]), inplace=False)),
    ("fromfunction", lambda m: [m.fromfunction(lambda i, j: i * 10 + j, (2, 3), dtype=int),
                                m.fromfunction(lambda i, j, k: i * 1.5 - j * k, (2, 3, 4))]),
]

E0 = np.zeros((0,), np.float32)
CALLS += [
    ("cov corners", lambda m: [m.cov(np.zeros((2, 0), np.float32)), m.cov(np.zeros((1, 0), np.float32)),
                               m.cov(np.zeros((0, 3), np.float32)), m.cov(A[0, :1], rowvar=False),
                               m.cov(A[0, 0], A[0, 1], rowvar=False), m.cov(A[0], fweights=np.array([1, -2, 1, 3, 1])),
                               m.cov(A[0, :, :4], A[1, :, :4].T, rowvar=False, aweights=np.array([1., 2., -1., .5]))]),
    ("empties", lambda m: [m.cumprod(E0), m.diff(np.zeros((0, 3), np.float32), axis=0), m.nansum(E0), m.nanmean(E0),
                           m.nanmedian(np.zeros((0, 3), np.float32), axis=1), m.interp(E0, np.array([0., 1.]), np.array([1., 2.])),
                           m.insert(E0, 0, 1.), m.packbits(np.zeros(0, np.uint8)), m.unwrap(E0), m.vander(E0, 3),
                           m.gradient(np.zeros((0, 3), np.float32), axis=1), m.geomspace(1., 2., 0)]),
]


# every function on int32, bool, uint8 and float32 input
base = np.random.default_rng(0).integers(0, 4, (3, 5))
DTYPE_INPUTS = {"int32": base.astype(np.int32), "bool": (base > 1), "uint8": base.astype(np.uint8), "float32": base.astype(np.float32) - 1.5}
DTYPE_FUNCS = {
 "isclose": lambda m, x: m.isclose(x, x[::-1]),
 "cumprod": lambda m, x: m.cumprod(x, axis=1),
 "cumulative_prod": lambda m, x: m.cumulative_prod(x, axis=1),
 "diff": lambda m, x: m.diff(x),
 "ediff1d": lambda m, x: m.ediff1d(x),
 "gradient": lambda m, x: m.gradient(x, axis=1),
 "trapezoid": lambda m, x: m.trapezoid(x),
 "interp": lambda m, x: m.interp(x, np.array([0, 1, 3]), np.array([1, 5, 2])),
 "convolve": lambda m, x: m.convolve(x[0], x[1, :2]),
 "correlate": lambda m, x: m.correlate(x[0], x[1, :2]),
 "median": lambda m, x: m.median(x, axis=1),
 "quantile lower": lambda m, x: m.quantile(x, 0.3, axis=1, method="lower"),
 "percentile": lambda m, x: m.percentile(x, 30),
 "nansum": lambda m, x: m.nansum(x, axis=1),
 "nanprod": lambda m, x: m.nanprod(x, axis=1),
 "nanmean": lambda m, x: m.nanmean(x, axis=1),
 "nanvar": lambda m, x: m.nanvar(x, axis=1),
 "nanstd": lambda m, x: m.nanstd(x),
 "nanmin": lambda m, x: m.nanmin(x, axis=1),
 "nanmax": lambda m, x: m.nanmax(x),
 "nanargmin": lambda m, x: m.nanargmin(x, axis=1),
 "nancumsum": lambda m, x: m.nancumsum(x, axis=1),
 "nancumprod": lambda m, x: m.nancumprod(x, axis=1),
 "nanmedian": lambda m, x: m.nanmedian(x),
 "cov": lambda m, x: m.cov(x),
 "corrcoef": lambda m, x: m.corrcoef(x),
 "select": lambda m, x: m.select([x > 1], [x], 0),
 "piecewise": lambda m, x: m.piecewise(x, [x > 1], [lambda v: v * 2, 1]),
 "choose": lambda m, x: m.choose(np.array([0, 1, 0, 1, 1]), [x[0], x[1]]),
 "insert": lambda m, x: m.insert(x, 1, 1, axis=1),
 "append": lambda m, x: m.append(x, 2),
 "vander": lambda m, x: m.vander(x[0], 3),
 "resize": lambda m, x: m.resize(x, (4, 4)),
 "fill_diagonal": lambda m, x: m.fill_diagonal(x, 1, inplace=False),
 "put": lambda m, x: m.put(x, np.array([0, 3]), 1, inplace=False),
 "partition": lambda m, x: m.partition(x, 1, axis=1),
 "argpartition": lambda m, x: m.argpartition(x, 1, axis=1),
 "lexsort": lambda m, x: m.lexsort([x[0], x[1]]),
 "heaviside": lambda m, x: m.heaviside(x, 0.5),
 "i0": lambda m, x: m.i0(x),
 "modf": lambda m, x: m.modf(x),
 "spacing": lambda m, x: m.spacing(x),
 "frexp": lambda m, x: m.frexp(x),
 "ldexp": lambda m, x: m.ldexp(x, np.int32(2)),
 "packbits": lambda m, x: m.packbits(x),
 "bitwise_count": lambda m, x: m.bitwise_count(x),
 "gcd": lambda m, x: m.gcd(x, x[::-1]),
 "lcm": lambda m, x: m.lcm(x, x[::-1]),
 "polyval": lambda m, x: m.polyval(x[0], x[1]),
 "polyadd": lambda m, x: m.polyadd(x[0], x[1, :3]),
 "polymul": lambda m, x: m.polymul(x[0], x[1, :3]),
 "polyder": lambda m, x: m.polyder(x[0]),
 "polyint": lambda m, x: m.polyint(x[0]),
 "poly": lambda m, x: m.poly(x[0]),
 "unwrap": lambda m, x: m.unwrap(x),
 "nextafter": lambda m, x: m.nextafter(x, x[::-1]),
 "geomspace": lambda m, x: m.geomspace(x[0, 0] * 0 + 1, 10, 3),
 "place": lambda m, x: m.place(x, x > 1, x[0, :1], inplace=False),
 "iscomplex": lambda m, x: m.iscomplex(x),
 "array_equal": lambda m, x: m.array_equal(x, x),
 "apply_along_axis": lambda m, x: m.apply_along_axis(lambda v: v.sum(), 1, x),
}
#: JAX raises on these; fgrad too, except on the FGRAD_ACCEPTS ones (it also takes bools there)
JAX_REJECTS = {("ediff1d", "bool"), ("vander", "bool"), ("partition", "bool"), ("argpartition", "bool"),
               ("packbits", "float32"), ("bitwise_count", "float32"), ("gcd", "bool"), ("gcd", "float32"),
               ("lcm", "bool"), ("lcm", "float32"), ("polyadd", "bool")}
FGRAD_ACCEPTS = {("ediff1d", "bool"), ("partition", "bool"), ("argpartition", "bool")}
CALLS += [(f"{fname} on {dname}", (lambda f, x: lambda m: f(m, x))(f, x))
          for fname, f in DTYPE_FUNCS.items() for dname, x in DTYPE_INPUTS.items()
          if (fname, dname) not in JAX_REJECTS]

# gradients of sum(w * f(x)) at ties, knots, zeros and NaNs, recorded in float64 (x64 on);
# vander and ldexp are left out on purpose: at x == 0 JAX's vander gives NaN (0 * 0**-1 from
# its float power) and JAX's ldexp gives 1 (its zero-preserving select), where fgrad gives the
# true derivatives (0 resp. 2**x2)
GX = np.array([[1.0, 2.0, 2.0, 0.0, -1.0], [3.0, 3.0, 3.0, 1.0, 0.0], [0.5, 1.5, 2.0, 0.0, 4.0]])
GNAN = np.where(np.arange(15).reshape(3, 5) == 11, np.nan, GX)
GXP, GFP = np.array([0.0, 1.0, 2.0, 4.0]), np.array([1.0, 3.0, -1.0, 2.0])
GRAD_CALLS = [
    ("median ties", lambda m, x: m.median(x, axis=1), GX),
    ("quantile ties", lambda m, x: m.quantile(x, np.array([0.0, 0.3, 0.5, 1.0]), axis=1), GX),
    ("quantile nearest", lambda m, x: m.quantile(x, np.array([0.25, 0.5, 0.75]), axis=1, method="nearest"), GX),
    ("nanmedian", lambda m, x: m.nanmedian(x, axis=1), GNAN),
    ("nanmax ties", lambda m, x: m.nanmax(x, axis=1), GNAN),
    ("nanvar", lambda m, x: m.nanvar(x, axis=1), GNAN),
    ("nanprod", lambda m, x: m.nanprod(x, axis=1), GNAN),
    ("cumprod zeros", lambda m, x: m.cumprod(x, axis=1), GX),
    ("nancumprod", lambda m, x: m.nancumprod(x, axis=1), GNAN),
    ("interp knots", lambda m, x: m.interp(x, GXP, GFP), GX),
    ("interp clamp", lambda m, x: m.interp(x * 3, GXP, GFP, left=0.5), GX),
    ("gradient", lambda m, x: m.gradient(x, 0.5, axis=1), GX),
    ("convolve", lambda m, x: m.convolve(x[0], x[1, :3], "same"), GX),
    ("cov/corrcoef", lambda m, x: m.cov(x) + m.corrcoef(x + np.arange(5.0)), GX),
    ("partition ties", lambda m, x: m.partition(x, 2, axis=1), GX),
    ("polydiv/polyfit", lambda m, x: m.polydiv(x[0], x[1, :3] + 5.0)[1] + m.polyfit(np.arange(5.0), x[2], 4), GX),
    ("i0/modf/unwrap", lambda m, x: m.i0(x * 7) + m.modf(x * 1.3)[0] + m.unwrap(x * 2), GX),
    ("select/piecewise/heaviside", lambda m, x: m.select([x > 1, x < 0.5], [x ** 2, -x], x * 3)
     + m.piecewise(x, [x > 1], [lambda v: v ** 2, lambda v: v * 3]) + m.heaviside(x, x), GX),
    ("updates", lambda m, x: m.put_along_axis(x, np.array([[1], [1], [4]]), x[:, :1] ** 2, 1, inplace=False)
     + m.fill_diagonal(x, x[0, :3], inplace=False) + m.insert(x, np.array([1, 3]), x[:, :2] * 2, axis=1)[:, :5], GX),
]
GRAD_WEIGHTS = np.random.default_rng(7).standard_normal(64)

CALLS += [
    ("ufunc", lambda m: [m.frompyfunc(lambda a, b: a * b + 1, 2, 1).reduce(A[0], axis=1),
                         m.frompyfunc(lambda a, b: a * b + 1, 2, 1).accumulate(A[0], axis=0),
                         m.frompyfunc(lambda a, b: a - b, 2, 1, identity=0).outer(A[0, 0], A[1, 1]),
                         m.frompyfunc(lambda a, b: a + b, 2, 1).at(np.zeros(5, np.float32), np.array([1, 1, 3]),
                                                                   np.float32([1, 2, 3]), inplace=False),
                         m.frompyfunc(lambda a, b: a + b, 2, 1).reduceat(np.arange(8.0, dtype=np.float32),
                                                                        np.array([0, 4, 1, 5]))]),
]

CALLS += [
    ("angle", lambda m: [m.angle(np.array([1.0, -2.0, 0.0, -0.0, np.inf, -np.inf, np.nan])), m.angle(np.array([3, -1, 0])),
                         m.angle(A[0], deg=True)]),
    ("cross", lambda m: [m.cross(A[0, :, :3], A[1, :, :3]), m.cross(A[0, :, :2], A[1, :, :3]), m.cross(A[0, :, :2], A[1, :, :2]),
                         m.cross(A[:, :3, 0], A[0, :3, :3], axisa=0, axisb=0, axisc=0), m.cross(A[0, :3], A[1, :3], axis=0),
                         m.cross(np.array([1, 0, 0]), np.array([0, 1, 0]))]),
]
