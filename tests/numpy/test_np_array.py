"""The Array surface: metadata, conversions, repr, immutability, methods, operators; and the
rule that bad arguments raise TypeError/ValueError (never AttributeError) naming the op."""
import pickle

import numpy as np
import pytest

import fgrad
from fgrad import numpy as fnp

from np_helpers import assert_matches
from tests.util import check_grads, check_vmap


def test_metadata_and_conversions():
    x = fnp.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and x.dtype == np.float32
    assert x.itemsize == 4 and x.nbytes == 24 and len(x) == 2
    assert isinstance(x, fgrad.Array) and isinstance(x, fnp.ndarray)
    assert x.tolist() == [[0, 1, 2], [3, 4, 5]] and x[1, 2].item() == 5.0 and x.item(4) == 4.0
    assert float(x[0, 1]) == 1.0 and int(x[1, 0]) == 3 and bool(x[0, 1]) and complex(x[0, 1]) == 1 + 0j
    assert f"{x[0, 1]:.2f}" == "1.00" and round(fnp.asarray(2.6)) == 3.0
    assert [row.tolist() for row in x] == [[0, 1, 2], [3, 4, 5]]
    assert np.asarray(x).dtype == np.float32 and np.asarray(x, np.float64).dtype == np.float64
    assert np.array(x).flags.writeable  # a copy the caller may change
    assert list(range(10))[fnp.asarray(3)] == 3  # __index__
    y = pickle.loads(pickle.dumps(x))
    assert y.tolist() == x.tolist() and y.dtype == x.dtype
    assert x.copy().tolist() == x.tolist() and x.block_until_ready() is x


def test_repr_shows_values_and_dtype():
    assert repr(fnp.asarray([1.0, 2.5])) == "Array([1. , 2.5], dtype=float32)"
    assert repr(fnp.asarray(np.int32(3))) == "Array(3, dtype=int32)"
    assert repr(fnp.asarray(2.0)) == "Array(2., dtype=float32, weak_type=True)"
    assert "dtype=bool" in repr(fnp.asarray([True])) and str(fnp.asarray([1, 2])) == "[1 2]"
    assert repr(fnp.zeros((0, 3))) == "Array([], shape=(0, 3), dtype=float32)"


def test_arrays_are_immutable():
    data = np.arange(3.0)
    x = fnp.asarray(data)
    data[0] = 9.0
    assert x.tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(TypeError, match=r"immutable.*x\.at\[idx\]\.set"):
        x[0] = 1.0
    with pytest.raises(ValueError):
        np.asarray(x)[0] = 1.0
    with pytest.raises(TypeError, match="unhashable"):
        hash(x)
    z = fgrad.Array(data)
    data[1] = 7.0
    assert z.tolist() == [9.0, 1.0, 2.0]


def test_operators_match_numpy():
    a = np.array([[1, -2, 3], [4, 5, -6]], np.int32)
    b = np.array([2, 3, -4], np.int32)
    A, B = fnp.asarray(a), fnp.asarray(b)
    for got, want in [(A + B, a + b), (A - B, a - b), (A * B, a * b), (A / B, a / b), (A // B, a // b),
                      (A % B, a % b), (A ** 2, a ** 2), (-A, -a), (+A, +a), (abs(A), abs(a)),
                      (A & B, a & b), (A | B, a | b), (A ^ B, a ^ b), (~A, ~a), (A << 2, a << 2), (A >> 1, a >> 1),
                      (A < B, a < b), (A <= B, a <= b), (A > B, a > b), (A >= B, a >= b), (A == B, a == b),
                      (A != B, a != b), (A @ B, a @ b), (2 - A, 2 - a), (10 // B, 10 // b), (3 ** fnp.asarray(b[:2] * 0 + 2),
                                                                                          3 ** (b[:2] * 0 + 2))]:
        assert_matches(got, want)
    q, r = divmod(A, B)
    assert_matches(q, a // b) and assert_matches(r, a % b)
    # NumPy operands defer to fgrad, in either order
    assert isinstance(a + B, fgrad.Array) and isinstance(B + a, fgrad.Array)
    assert_matches(a.astype(np.float32) @ fnp.asarray(b.astype(np.float32)), (a @ b).astype(np.float32))


def test_equality_with_non_arrays_is_identity():
    x = fnp.ones(2)
    assert (x == None) is False and (x != None) is True  # noqa: E711
    assert x not in [None, "a"]


def test_methods():
    x = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    X = fnp.asarray(x)
    assert_matches(X.reshape(4, 3), x.reshape(4, 3))
    assert_matches(X.reshape((2, -1)), x.reshape((2, -1)))
    assert_matches(X.transpose(1, 0), x.transpose(1, 0))
    assert_matches(X.transpose((1, 0)), x.transpose((1, 0)))
    assert_matches(X.astype(fnp.int32), x.astype(np.int32))
    assert_matches(X.astype(bool), x.astype(bool))
    assert_matches(X.ravel(), x.ravel())
    assert_matches(X[None].squeeze(0), x)
    assert_matches(X.swapaxes(0, 1), x.swapaxes(0, 1))
    assert_matches(X.clip(-1, 2), x.clip(-1, 2))
    assert_matches(X.round(), x.round())
    assert_matches(X.dot(X.T), x.dot(x.T))
    assert_matches(X.take([0, 5]), x.take([0, 5]))
    assert_matches(X.diagonal(), x.diagonal())
    assert_matches(X.trace(), x.trace())
    assert_matches(X.ptp(axis=0), np.ptp(x, axis=0))
    assert_matches(X.argsort(axis=0), x.argsort(axis=0))
    assert_matches(X.nonzero()[1], x.nonzero()[1])
    assert_matches(X.conj(), x) and assert_matches(X.real, x) and assert_matches(X.imag, np.zeros_like(x))


def test_float_to_int_casts_truncate_like_numpy():
    x = np.array([-2.7, -0.5, 0.5, 2.7], np.float32)
    assert_matches(fnp.asarray(x).astype(fnp.int32), x.astype(np.int32))
    assert_matches(fnp.asarray(x).astype(fnp.uint8)[2:], x[2:].astype(np.uint8))


@pytest.mark.parametrize("call, exc, pattern", [
    (lambda: fnp.add(fnp.ones(2), None), TypeError, "add: expected an array"),
    (lambda: fnp.sum("abc"), TypeError, "sum: expected an array|cannot convert"),
    (lambda: fnp.exp([1, "a"]), TypeError, "cannot convert"),
    (lambda: fnp.reshape(fnp.ones(4), "ab"), TypeError, "reshape: shape must be an integer"),
    (lambda: fnp.concatenate(5), TypeError, "concatenate: expected a sequence of arrays .*got int"),
    (lambda: fnp.stack(fnp.asarray(1.0)), TypeError, "stack: expected a sequence of arrays, got a 0-d array"),
    (lambda: fnp.vstack("ab"), TypeError, "vstack: expected a sequence of arrays .*got str"),
    (lambda: fnp.hstack([]), ValueError, "hstack: need at least one array"),
    (lambda: fnp.ones(3).astype("not-a-dtype"), TypeError, "not a dtype"),
    (lambda: fnp.matmul(fnp.ones(3), object()), TypeError, "matmul: expected an array"),
    (lambda: fnp.einsum(3, fnp.ones(2)), TypeError, "subscripts string"),
    (lambda: fnp.where(fnp.ones(2) > 0, fnp.ones(2)), TypeError, "both x and y"),
    (lambda: fnp.take(fnp.ones(3), fnp.ones(2)), TypeError, "indices must be integers"),
    (lambda: fnp.sum(fnp.ones(2), axis="0"), TypeError, "axis must be an integer"),
    (lambda: fnp.transpose(fnp.ones((2, 2)), (0, 2)), ValueError, "out of bounds"),
    (lambda: fnp.invert(fnp.ones(2)), TypeError, "invert: requires integer or bool"),
    (lambda: fnp.bitwise_and(fnp.ones(2), 1), TypeError, "bitwise_and: requires integer or bool"),
    (lambda: fnp.left_shift(fnp.ones(2), 1), TypeError, "left_shift: requires integer"),
    (lambda: -fnp.asarray([True]), TypeError, "negative.*bool"),
    (lambda: fnp.subtract(fnp.asarray([True]), True), TypeError, "boolean subtraction"),
    (lambda: fnp.tile(fnp.ones(2), 1.5), TypeError, "reps must be an integer"),
    (lambda: fnp.repeat(fnp.ones(2), -1), ValueError, "non-negative"),
    (lambda: fnp.eye(-1), ValueError, "negative dimensions"),
    (lambda: len(fnp.asarray(1.0)), TypeError, "0-d"),
    (lambda: iter(fnp.asarray(1.0)), TypeError, "0-d"),
    (lambda: fnp.argmax(fnp.ones(2), axis=(0,)), TypeError, "axis must be an integer"),
])
def test_bad_arguments_raise_type_or_value_errors(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_traced_values_where_python_needs_concrete_ones():
    with pytest.raises(fgrad.ConcretizationError, match="fgrad.lax.cond"):
        fgrad.jit(lambda x: 1.0 if x > 0 else 0.0)(fnp.ones(()))
    with pytest.raises(fgrad.ConcretizationError):
        fgrad.jit(lambda n: fnp.zeros(n))(3)
    with pytest.raises(fgrad.ConcretizationError):
        fgrad.jit(lambda x: fnp.arange(x))(fnp.asarray(3))
    with pytest.raises(TypeError, match="size="):
        fgrad.jit(lambda x: fnp.argwhere(x))(fnp.ones(3))


# --- every public Array method under every transform (issue 17: x.var() under jit) -------------
# name -> (call on a (3, 4) float array, differentiable). Properties are read inside the call.
METHOD_CALLS = {
    "T": (lambda x: x.T, True), "mT": (lambda x: x.mT, True),
    "all": (lambda x: x.all(axis=0), False), "any": (lambda x: (x > 0).any(axis=1), False),
    "argmax": (lambda x: x.argmax(axis=1), False), "argmin": (lambda x: x.argmin(axis=0), False),
    "argsort": (lambda x: x.argsort(axis=0, descending=True), False),
    "astype": (lambda x: x.astype(fnp.float32) * 2, True),
    "at": (lambda x: x.at[0, 1].add(2.0), True),
    "clip": (lambda x: x.clip(-0.5, 0.5), True),
    "conj": (lambda x: x.conj(), True), "conjugate": (lambda x: x.conjugate(), True),
    "copy": (lambda x: x.copy() * 3, True),
    "cumsum": (lambda x: x.cumsum(axis=1), True),
    "cumprod": (lambda x: x.cumprod(axis=1), True),
    "searchsorted": (lambda x: fnp.sort(x[0]).searchsorted(x[1]), False),
    "compress": (lambda x: x.compress(fnp.asarray([True, False, True]), axis=0), True),
    "choose": (lambda x: (x > 0).astype(fnp.int32).choose([x, -x], mode="clip"), True),
    "argpartition": (lambda x: x.argpartition(1, axis=1)[:, 1], False),
    "diagonal": (lambda x: x.diagonal(), True),
    "dot": (lambda x: x.dot(x.T), True),
    "dtype": (lambda x: x.astype(x.dtype), True),
    "flatten": (lambda x: x.flatten(), True),
    "imag": (lambda x: x.imag + x, True), "real": (lambda x: x.real, True),
    "itemsize": (lambda x: x * x.itemsize, True), "nbytes": (lambda x: x * x.nbytes, True),
    "ndim": (lambda x: x * x.ndim, True), "size": (lambda x: x * x.size, True),
    "shape": (lambda x: x.reshape(x.shape[::-1]), True),
    "weak_type": (lambda x: x + float(x.weak_type), True),
    "max": (lambda x: x.max(axis=0), True), "min": (lambda x: x.min(axis=1), True),
    "mean": (lambda x: x.mean(axis=0), True), "prod": (lambda x: x.prod(axis=1), True),
    "ptp": (lambda x: x.ptp(axis=0), True),
    "std": (lambda x: x.std(axis=0), True), "var": (lambda x: x.var(), True),
    "sum": (lambda x: x.sum(axis=1), True),
    "nonzero": (lambda x: (x > 0).nonzero(size=5)[1], False),
    "ravel": (lambda x: x.ravel(), True),
    "repeat": (lambda x: x.repeat(2, axis=0), True),
    "reshape": (lambda x: x.reshape(4, 3), True),
    "round": (lambda x: x.round(1), True),
    "sort": (lambda x: x.sort(axis=0), True),
    "squeeze": (lambda x: x[None].squeeze(0), True),
    "swapaxes": (lambda x: x.swapaxes(0, 1), True),
    "take": (lambda x: x.take(fnp.asarray([0, 5])), True),
    "trace": (lambda x: x.trace(), True),
    "transpose": (lambda x: x.transpose(1, 0), True),
    "view": (lambda x: x.view(fnp.int32) & 0xFF, False),
}
# methods of concrete arrays only (they read or manage the buffer; under jit they have no value)
CONCRETE_ONLY = {"aval", "block_until_ready", "committed_device", "device", "is_deleted", "item", "to_device",
                 "tolist", "devices", "committed", "is_fully_replicated", "is_ready", "copy_to_host_async",
                 "on_device_size_in_bytes", "tobytes", "flat"}
METHOD_X = np.array([[0.3, -1.2, 2.1, 0.7], [-0.4, 1.6, -2.3, 1.3], [0.9, -0.8, 1.4, -1.9]])


def test_method_table_covers_every_public_array_method():
    public = {n for n in dir(fgrad.core.array.Array) if not n.startswith("_")}
    assert public == set(METHOD_CALLS) | CONCRETE_ONLY


def test_tracers_have_no_public_attribute_that_hides_a_method():
    from fgrad.core.trace import Tracer
    public = {n for n in dir(fgrad.core.array.Array) if not n.startswith("_")}
    for cls in Tracer.__subclasses__():
        slots = set(getattr(cls, "__slots__", ()))
        assert not (slots & public), f"{cls.__name__}'s attributes {slots & public} hide Array methods"


@pytest.mark.parametrize("name", sorted(METHOD_CALLS))
def test_every_array_method_under_jit_make_jaxpr_and_vmap(name):
    call, _ = METHOD_CALLS[name]
    x = fnp.asarray(METHOD_X, dtype=fnp.float32)
    eager = call(x)
    np.testing.assert_allclose(np.asarray(fgrad.jit(call)(x)), np.asarray(eager), rtol=1e-6, atol=1e-6)
    assert "let" in str(fgrad.make_jaxpr(call)(x))
    batch = np.stack([METHOD_X, -METHOD_X[::-1]]).astype(np.float32)
    check_vmap(call, (fnp.asarray(batch),))


@pytest.mark.parametrize("name", sorted(n for n, (_, diff) in METHOD_CALLS.items() if diff))
def test_every_differentiable_array_method_under_grad(name):
    call, _ = METHOD_CALLS[name]
    check_grads(lambda x: fnp.sum(call(x) * fnp.arange(1.0, 1.0 + np.size(call(x)),
                                                       dtype=x.dtype).reshape(call(x).shape)),
                (METHOD_X,), order=1, modes=("rev",))


def test_more_jax_array_methods():
    # jax.Array's methods and attributes, with JAX 0.10.2's answers
    a = fnp.arange(4.0)
    np.testing.assert_array_equal(np.asarray(a.cumprod()), [0, 0, 0, 0])
    np.testing.assert_array_equal(np.asarray((a + 1).cumprod()), [1, 2, 6, 24])
    assert int(a.searchsorted(2.5)) == 3
    np.testing.assert_array_equal(np.asarray(a.compress(fnp.array([True, False, True, False]))), [0, 2])
    np.testing.assert_array_equal(np.asarray(fnp.array([1, 0]).choose([fnp.array([5, 6]), fnp.array([7, 8])])),
                                  [7, 6])
    assert np.asarray(fnp.array([3.0, 1.0, 2.0]).argpartition(1))[1] == 2
    assert a.devices() == {a.device} and a.is_fully_replicated and not a.committed and a.is_ready()
    assert a.copy_to_host_async() is None and a.on_device_size_in_bytes() == 16
    assert a.tobytes() == np.arange(4.0, dtype=np.float32).tobytes()
    with pytest.raises(NotImplementedError, match="flatten"):
        a.flat
    np.testing.assert_array_equal(np.asarray(fgrad.jit(lambda x: (x + 1).cumprod() + x.searchsorted(2.5))(a)),
                                  [4, 5, 9, 27])
