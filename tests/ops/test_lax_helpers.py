"""JAX's lax helpers: Precision, dot and the output-shape functions, against JAX 0.10.2's
results (recorded once) and against running the operations themselves."""
from __future__ import annotations

import numpy as np
import pytest

import fgrad
import fgrad.numpy as fnp
from fgrad import lax

_CONV_CASES = [  # (lhs, rhs, strides, padding, dimension numbers) -> JAX's shape
    (((2, 3, 10, 12), (8, 3, 3, 5), (1, 2), "SAME", ("NCHW", "OIHW", "NCHW")), (2, 8, 10, 6)),
    (((2, 10, 12, 3), (3, 5, 3, 8), (2, 2), "VALID", ("NHWC", "HWIO", "NHWC")), (2, 4, 4, 8)),
    (((4, 1, 28, 28), (32, 1, 3, 3), (1, 1), ((1, 2), (0, 0)), ("NCHW", "OIHW", "NCHW")), (4, 32, 29, 26)),
    (((2, 16, 7), (4, 16, 3), (2,), "SAME", ("NCH", "OIH", "NCH")), (2, 4, 4)),
]

_WINDOW_CASES = [  # (operand, window, strides, padding, base dilation, window dilation) -> JAX's shape
    (((2, 3, 10, 12), (1, 1, 3, 3), (1, 1, 2, 2), ((0, 0), (0, 0), (1, 1), (1, 1)), None, None), (2, 3, 5, 6)),
    (((2, 3, 10, 12), (1, 1, 2, 2), (1, 1, 2, 2), ((0, 0),) * 4, None, None), (2, 3, 5, 6)),
    (((5, 9), (2, 3), (1, 2), ((1, 0), (2, 2)), (1, 1), (1, 2)), (5, 5)),
    (((5, 9), (2, 3), (1, 1), ((0, 0), (0, 0)), (2, 1), None), (8, 7)),
]


@pytest.mark.parametrize("args, expected", _CONV_CASES)
def test_conv_general_shape_tuple(args, expected):
    assert lax.conv_general_shape_tuple(*args) == expected
    lhs, rhs, strides, padding, dn = args
    out = lax.conv_general_dilated(fnp.ones(lhs), fnp.ones(rhs), strides, padding, dimension_numbers=dn)
    assert out.shape == expected


@pytest.mark.parametrize("args, expected", _WINDOW_CASES)
def test_reduce_window_shape_tuple(args, expected):
    assert lax.reduce_window_shape_tuple(*args) == expected
    operand, window, strides, padding, base, dilation = args
    out = lax.reduce_window(fnp.ones(operand), "max", window, strides, padding, base or 1, dilation or 1)
    assert out.shape == expected


def test_reduce_window_shape_tuple_also_takes_padding_names():
    assert lax.reduce_window_shape_tuple((2, 3, 10, 12), (1, 1, 3, 3), (1, 1, 2, 2), "SAME") == (2, 3, 5, 6)


def test_precision_parses_jaxs_names():
    names = {"highest": "HIGHEST", "float32": "HIGHEST", "high": "HIGH", "tensorfloat32": "HIGH",
             "bfloat16_3x": "HIGH", "default": "DEFAULT", "bfloat16": "DEFAULT", "fastest": "DEFAULT"}
    for name, level in names.items():
        assert str(lax.Precision(name)) == level == lax.Precision(name).name
    assert lax.Precision("HIGHEST") is lax.Precision.HIGHEST
    with pytest.raises(ValueError):
        lax.Precision("triple")


def test_precision_is_checked_by_the_contractions():
    a = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    for precision in (None, lax.Precision.HIGHEST, "high", ("default", lax.Precision.HIGH)):
        np.testing.assert_allclose(lax.dot_general(a, a.T, (((1,), (0,)), ((), ())), precision=precision), a @ a.T)
    for bad in ("triple", ("high",), 3.5):
        with pytest.raises(ValueError, match="dot_general: "):
            lax.dot_general(a, a.T, (((1,), (0,)), ((), ())), precision=bad)
    with pytest.raises(ValueError, match="conv_general_dilated: unknown precision"):
        lax.conv_general_dilated(np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 2, 2), np.float32), (1, 1),
                                 "VALID", precision="triple")


def test_dot_as_jax():
    m, v = np.arange(6.0, dtype=np.float32).reshape(2, 3), np.arange(3.0, dtype=np.float32)
    np.testing.assert_allclose(lax.dot(m, v), m @ v)
    np.testing.assert_allclose(lax.dot(v, m.T), v @ m.T)
    np.testing.assert_allclose(lax.dot(v, v), v @ v)
    np.testing.assert_allclose(fgrad.jit(lambda a, b: lax.dot(a, b, precision="highest"))(m, m.T), m @ m.T)
    assert lax.dot(m.astype(np.int8), m.T.astype(np.int8), preferred_element_type=np.int32).dtype == np.int32
    grad = fgrad.grad(lambda a: lax.dot(a, v).sum())(m)
    np.testing.assert_allclose(grad, np.broadcast_to(v, (2, 3)))
    with pytest.raises(TypeError, match="dot: expects rank-1 or rank-2 operands"):
        lax.dot(np.ones((2, 2, 2)), np.ones(2))
    with pytest.raises(TypeError, match="contracted sizes match"):
        lax.dot(np.ones((2, 3)), np.ones(4))
