"""``fgrad.image``: JAX's ``jax.image`` (``resize``, ``scale_and_translate``, ``ResizeMethod``).

A resize is separable: along each spatial dimension whose size changes, the output is the input
contracted with an ``(input size, output size)`` weight matrix built from the method's kernel
(half-centred pixels; when downsampling with ``antialias`` the kernel is stretched by the inverse
scale, a low-pass filter). Everything is ordinary ``fgrad.numpy``, so ``jit``, ``vmap`` and ``grad``
(in the image, and in ``scale`` / ``translation``) work as for any other function.

Example: ``fgrad.image.resize(image, (64, 64, 3), "bilinear")``
"""
from __future__ import annotations

import enum
import operator
from typing import Any, Callable, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.core.trace import get_aval

__all__ = ["ResizeMethod", "resize", "scale_and_translate"]


class ResizeMethod(enum.Enum):
    """How ``resize`` samples: ``NEAREST``, ``LINEAR`` (triangle kernel), ``LANCZOS3``,
    ``LANCZOS5``, ``CUBIC`` (Keys, a = -0.5), ``CUBIC_PYTORCH`` (a = -0.75 with repeated
    edges when ``antialias`` is off, else ``CUBIC``) and ``AREA`` (pixel-overlap averaging)."""
    NEAREST = 0
    LINEAR = 1
    LANCZOS3 = 2
    LANCZOS5 = 3
    CUBIC = 4
    CUBIC_PYTORCH = 5
    AREA = 6

    @staticmethod
    def from_string(s: str) -> "ResizeMethod":
        """The method a name selects (JAX's spellings, case-sensitive): ``"nearest"``;
        ``"linear"``, ``"bilinear"``, ``"trilinear"``, ``"triangle"``; ``"lanczos3"``;
        ``"lanczos5"``; ``"cubic"``, ``"bicubic"``, ``"tricubic"``; ``"cubic-pytorch"``,
        ``"bicubic-pytorch"``; ``"area"``."""
        for method, names in _NAMES.items():
            if s in names:
                return method
        raise ValueError(f'Unknown resize method "{s}"')


_NAMES: dict[ResizeMethod, tuple[str, ...]] = {
    ResizeMethod.NEAREST: ("nearest",),
    ResizeMethod.LINEAR: ("linear", "bilinear", "trilinear", "triangle"),
    ResizeMethod.LANCZOS3: ("lanczos3",),
    ResizeMethod.LANCZOS5: ("lanczos5",),
    ResizeMethod.CUBIC: ("cubic", "bicubic", "tricubic"),
    ResizeMethod.CUBIC_PYTORCH: ("cubic-pytorch", "bicubic-pytorch"),
    ResizeMethod.AREA: ("area",),
}


# --- kernels (functions of the distance |x| >= 0 between a sample and an input pixel centre) ---------

def _lanczos(radius: float, x: Any) -> Any:
    y = radius * fnp.sin(np.pi * x) * fnp.sin(np.pi * x / radius)
    # the limit at 0 is 1; below 1e-3 the quotient loses all its digits
    out = fnp.where(x > 1e-3, y / fnp.where(x != 0, np.pi ** 2 * x ** 2, 1), 1)
    return fnp.where(x > radius, 0., out)


def _keys_cubic(x: Any) -> Any:
    near = ((1.5 * x - 2.5) * x) * x + 1.
    far = ((-0.5 * x + 2.5) * x - 4.) * x + 2.
    return fnp.where(x >= 2., 0., fnp.where(x >= 1., far, near))


def _opencv_cubic(x: Any) -> Any:
    a = -0.75
    near = ((a + 2.) * x - (a + 3.)) * x * x + 1.
    far = ((a * x - 5. * a) * x + 8. * a) * x - 4. * a
    return fnp.where(x >= 2., 0., fnp.where(x >= 1., far, near))


def _triangle(x: Any) -> Any:
    return fnp.maximum(0, 1 - fnp.abs(x))


#: method -> (kernel radius, kernel); AREA's "kernel" is the overlap of pixel intervals
_KERNELS: dict[ResizeMethod, tuple[int, Callable[[Any], Any] | None]] = {
    ResizeMethod.LINEAR: (1, _triangle),
    ResizeMethod.LANCZOS3: (3, lambda x: _lanczos(3., x)),
    ResizeMethod.LANCZOS5: (5, lambda x: _lanczos(5., x)),
    ResizeMethod.CUBIC: (2, _keys_cubic),
    ResizeMethod.CUBIC_PYTORCH: (2, _opencv_cubic),
    ResizeMethod.AREA: (1, None),
}


# --- weight matrices ---------------------------------------------------------------------------

def _normalized(weights: Any) -> Any:
    """Columns scaled to sum to one; a column whose sum is (nearly) zero becomes zero."""
    total = fnp.sum(weights, axis=0, keepdims=True)
    safe = fnp.where(total != 0, total, 1)
    return fnp.where(fnp.abs(total) > 1000. * float(np.finfo(np.float32).eps), weights / safe, 0)


def _area_weights(in_size: int, out_size: int, inv_scale: Any, translation: Any, dtype) -> Any:
    left_out = fnp.arange(out_size, dtype=dtype) * inv_scale - translation * inv_scale
    left_in = fnp.arange(in_size, dtype=dtype)
    right = fnp.minimum((left_out + inv_scale)[None, :], (left_in + 1.)[:, None])
    return fnp.maximum(0., right - fnp.maximum(left_out[None, :], left_in[:, None]))


def _edge_padded(weights: Any, positions: Any, in_size: int, out_size: int, dtype) -> Any:
    """Weights of positions outside the image moved onto the nearest edge pixel, normalized."""
    rows = fnp.clip(positions.astype(np.int32), 0, in_size - 1)
    cols = fnp.broadcast_to(fnp.arange(out_size)[None, :], (positions.shape[0], out_size))
    mat = fnp.zeros((in_size, out_size), dtype=dtype).at[rows[:, None], cols].add(weights)
    return _normalized(mat)


def _weight_matrix(in_size: int, out_size: int, scale: Any, translation: Any, method: ResizeMethod,
                   antialias: bool, edge_padding: bool) -> Any:
    """The ``(in_size, out_size)`` matrix taking one image axis to the resampled one."""
    radius, kernel = _KERNELS[method]
    dtype = fnp.result_type(scale, translation)
    inv_scale = 1. / scale
    if kernel is None:
        return _normalized(_area_weights(in_size, out_size, inv_scale, translation, dtype))
    kernel_scale = fnp.maximum(inv_scale, 1.) if antialias else 1.
    # where each output pixel's centre falls, in input pixel coordinates
    sample = (fnp.arange(out_size, dtype=dtype) + 0.5) * inv_scale - translation * inv_scale - 0.5
    pad = radius if edge_padding else 0
    positions = fnp.arange(-pad, in_size + pad, dtype=dtype)
    weights = kernel(fnp.abs(sample[None, :] - positions[:, None]) / kernel_scale)
    if edge_padding:
        return _edge_padded(weights, positions, in_size, out_size, dtype)
    inside = (sample >= -0.5) & (sample <= in_size - 0.5)
    return fnp.where(inside[None, :], _normalized(weights), 0)


def _apply_weights(x: Any, shape: tuple[int, ...], spatial_dims: Sequence[int], scale: Sequence[Any],
                   translation: Sequence[Any], method: ResizeMethod, antialias: bool, precision: Any) -> Any:
    edge_padding = method == ResizeMethod.CUBIC_PYTORCH and not antialias
    for i, d in enumerate(spatial_dims):
        d = d % x.ndim
        w = _weight_matrix(x.shape[d], shape[d], scale[i], translation[i], method, antialias,
                           edge_padding).astype(x.dtype)
        x = fnp.moveaxis(fnp.tensordot(x, w, axes=((d,), (0,)), precision=precision), -1, d)
    return x


# --- public functions --------------------------------------------------------------------------

def _method(method: str | ResizeMethod) -> ResizeMethod:
    if isinstance(method, ResizeMethod):
        return method
    if isinstance(method, str):
        return ResizeMethod.from_string(method)
    raise TypeError(f"method must be a ResizeMethod or one of its names (e.g. 'linear'), got "
                    f"{type(method).__name__}")


def _shape(shape: Any, image: Any) -> tuple[int, ...]:
    try:
        shape = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise TypeError(f"shape must be a sequence of integers, got {shape!r}") from None
    if len(shape) != len(get_aval(image).shape):
        raise ValueError("shape must have length equal to the number of dimensions of x; "
                         f" {shape} vs {get_aval(image).shape}")
    if any(s < 0 for s in shape):
        raise ValueError(f"shape must not have negative sizes, got {shape}")
    return shape


def _inexact(image: Any) -> Any:
    image = fnp.asarray(image)
    if fnp.issubdtype(image.dtype, fnp.inexact):
        return image
    return image.astype(fnp.result_type(image, float))


def _resize_nearest(x: Any, shape: tuple[int, ...]) -> Any:
    for d, (m, n) in enumerate(zip(x.shape, shape)):
        if m == n:
            continue
        source = fnp.floor((fnp.arange(n, dtype=np.float32) + 0.5) * m / n).astype(np.int32)
        x = fnp.take(x, source, axis=d)
    return x


def resize(image: Any, shape: Sequence[int], method: str | ResizeMethod, antialias: bool = True,
           precision: Any = lax.Precision.HIGHEST) -> Any:
    """``jax.image.resize(image, shape, method, antialias=True, precision=Precision.HIGHEST)``:
    ``image`` resampled to ``shape`` (one size per dimension; any dimension may change).

    ``method`` is a ``ResizeMethod`` or a name: ``"nearest"`` (keeps the dtype; no antialiasing),
    ``"linear"``/``"bilinear"``, ``"cubic"``/``"bicubic"``, ``"lanczos3"``, ``"lanczos5"``,
    ``"cubic-pytorch"``, ``"area"``. Other methods return a floating image (integers become the
    default float). With ``antialias`` (the default) downsampling low-pass filters first; it has no
    effect when upsampling. Dimensions whose size does not change are left untouched.

    >>> fgrad.image.resize(fnp.array([[0., 1.], [2., 3.]]), (4, 4), "linear")[0]
    Array([0.  , 0.25, 0.75, 1.  ], dtype=float32)
    """
    shape = _shape(shape, image)
    method = _method(method)
    if method == ResizeMethod.NEAREST:
        return _resize_nearest(fnp.asarray(image), shape)
    image = _inexact(image)
    spatial_dims = [d for d in range(image.ndim) if image.shape[d] != shape[d]]
    if method == ResizeMethod.CUBIC_PYTORCH and antialias:
        method = ResizeMethod.CUBIC
    scale = [1.0 if shape[d] == 0 else shape[d] / image.shape[d] for d in spatial_dims]
    return _apply_weights(image, shape, spatial_dims, scale, [0.] * len(spatial_dims), method,
                          bool(antialias), precision)


def scale_and_translate(image: Any, shape: Sequence[int], spatial_dims: Sequence[int], scale: Any,
                        translation: Any, method: str | ResizeMethod, antialias: bool = True,
                        precision: Any = lax.Precision.HIGHEST) -> Any:
    """``jax.image.scale_and_translate(image, shape, spatial_dims, scale, translation, method,
    antialias=True, precision=Precision.HIGHEST)``: resample ``image`` to ``shape`` so that input
    location ``x`` (half-centred pixels) lands at ``x * scale + translation`` along each of
    ``spatial_dims`` (``scale`` and ``translation`` hold one value per spatial dimension, and may be
    traced and differentiated). Output pixels whose sample falls outside the input are zero.

    ``method`` as in ``resize``, except ``"nearest"``, which raises ValueError as in JAX.
    """
    shape = _shape(shape, image)
    method = _method(method)
    if method == ResizeMethod.NEAREST:
        raise ValueError("Nearest neighbor resampling is not currently supported for scale_and_translate.")
    if method == ResizeMethod.CUBIC_PYTORCH and antialias:
        method = ResizeMethod.CUBIC
    image = _inexact(image)
    spatial_dims = tuple(int(d) for d in spatial_dims)
    scale, translation = _inexact(scale), _inexact(translation)
    dtype = fnp.result_type(scale, translation)
    scale, translation = scale.astype(dtype), translation.astype(dtype)
    for name, value in (("scale", scale), ("translation", translation)):
        if value.shape != (len(spatial_dims),):
            raise ValueError(f"scale_and_translate: {name} must have one entry per spatial dimension "
                             f"(shape ({len(spatial_dims)},)), got shape {value.shape}")
    if not spatial_dims:
        return image
    return _apply_weights(image, shape, spatial_dims, [scale[i] for i in range(len(spatial_dims))],
                          [translation[i] for i in range(len(spatial_dims))], method, bool(antialias),
                          precision)
