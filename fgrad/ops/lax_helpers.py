"""JAX's ``lax`` helpers that programs written for JAX (``example_libraries.stax``, Flax) call:
``dot`` and the output shapes of convolutions and window reductions (``Precision`` lives with
the contractions it configures).

The shape functions evaluate the operation abstractly (a trace on shapes, no data), so they
always agree with what ``conv_general_dilated`` and ``reduce_window`` produce.
"""
from __future__ import annotations

from typing import Any, Sequence

from fgrad.core import dtypes
from fgrad.core.trace import get_aval, trace_to_jaxpr
from fgrad.core.types import ShapedArray
from fgrad.ops.contraction import Precision, canonical_precision, conv_general_dilated, dot_general
from fgrad.ops.window import reduce_window

__all__ = ["Precision", "dot", "batch_matmul", "conv_general_shape_tuple", "reduce_window_shape_tuple"]


def dot(lhs: Any, rhs: Any, precision: Any = None, preferred_element_type: Any = None) -> Any:
    """Vector/matrix products as JAX's ``lax.dot``: contracts the last axis of ``lhs`` (rank 1
    or 2) with the first axis of ``rhs`` (rank 1 or 2).

    >>> dot(fnp.ones((2, 3)), fnp.ones(3))   # shape (2,)    # doctest: +SKIP
    """
    canonical_precision(precision, "dot")
    lshape, rshape = get_aval(lhs).shape, get_aval(rhs).shape
    if len(lshape) not in (1, 2) or len(rshape) not in (1, 2) or lshape[-1] != rshape[0]:
        raise TypeError(f"dot: expects rank-1 or rank-2 operands whose contracted sizes match "
                        f"(lhs's last, rhs's first); got shapes {lshape} and {rshape}. "
                        "Use dot_general for higher ranks")
    return dot_general(lhs, rhs, (((len(lshape) - 1,), (0,)), ((), ())),
                       preferred_element_type=preferred_element_type)


def batch_matmul(lhs: Any, rhs: Any, precision: Any = None) -> Any:
    """``jax.lax.batch_matmul(lhs, rhs, precision=None)``: matrix products over the last two
    dimensions, batched over the leading ones, which must be equal (no broadcasting).

    >>> batch_matmul(fnp.ones((2, 3, 4)), fnp.ones((2, 4, 5))).shape   # doctest: +SKIP
    (2, 3, 5)
    """
    canonical_precision(precision, "batch_matmul")
    lshape, rshape = get_aval(lhs).shape, get_aval(rhs).shape
    if len(lshape) != len(rshape):
        raise ValueError(f"batch_matmul: arguments must have the same ndim, got {len(lshape)}, {len(rshape)}")
    if len(lshape) < 2:
        raise ValueError(f"batch_matmul: arguments must be at least 2D, got {len(lshape)}")
    batch = tuple(range(len(lshape) - 2))
    return dot_general(lhs, rhs, (((len(lshape) - 1,), (len(rshape) - 2,)), (batch, batch)))


def _abstract_shape(fun, *shapes: Sequence[int]) -> tuple:
    avals = [ShapedArray(tuple(int(d) for d in s), dtypes.float32) for s in shapes]
    closed = trace_to_jaxpr(lambda *xs: [fun(*xs)], avals, dce=False)
    return tuple(closed.jaxpr.outvars[0].aval.shape)


def conv_general_shape_tuple(lhs_shape: Sequence[int], rhs_shape: Sequence[int],
                             window_strides: Sequence[int], padding: Any, dimension_numbers: Any) -> tuple:
    """The output shape of ``conv_general_dilated(lhs, rhs, window_strides, padding,
    dimension_numbers=dimension_numbers)`` (JAX's ``lax.conv_general_shape_tuple``)."""
    return _abstract_shape(lambda x, w: conv_general_dilated(x, w, window_strides, padding,
                                                             dimension_numbers=dimension_numbers),
                           lhs_shape, rhs_shape)


def reduce_window_shape_tuple(operand_shape: Sequence[int], window_dimensions: Sequence[int],
                              window_strides: Sequence[int], padding: Any,
                              base_dilation: Sequence[int] | None = None,
                              window_dilation: Sequence[int] | None = None) -> tuple:
    """The output shape of ``reduce_window`` (JAX's ``lax.reduce_window_shape_tuple``)."""
    return _abstract_shape(lambda x: reduce_window(x, "sum", window_dimensions, window_strides, padding,
                                                   base_dilation if base_dilation is not None else 1,
                                                   window_dilation if window_dilation is not None else 1),
                           operand_shape)
