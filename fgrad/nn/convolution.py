"""Convolution, transposed convolution and pooling at any number of spatial dimensions, as
``torch.nn.functional``'s ``conv1d/2d/3d``, ``conv_transpose1d/2d/3d``, ``max_pool1d/2d/3d``,
``avg_pool1d/2d/3d`` and ``adaptive_avg_pool1d/2d/3d``.

Inputs are channels-first, batched ``(N, C, *spatial)`` or unbatched ``(C, *spatial)``; weights
are ``(out, in / groups, *kernel)`` for a convolution and ``(in, out / groups, *kernel)`` for a
transposed one, as in PyTorch. One implementation serves every dimension: each function is
``lax.conv_general_dilated`` or ``lax.reduce_window`` with the dimension as a parameter, so
all of them run natively under jit."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fgrad import lax
from fgrad import numpy as fnp
from fgrad.numpy._util import promote_float

#: ``padding_mode`` -> ``fnp.pad``'s mode (None: the convolution pads with zeros itself).
PADDING_MODES = {"zeros": None, "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
_LAYOUTS = {1: "NCL", 2: "NCHW", 3: "NCDHW"}
_TUPLE_NAMES = {1: "a 1-tuple", 2: "a pair", 3: "a triple"}


def ntuple(value: Any, n: int, name: str, fn: str) -> tuple[int, ...]:
    """``value`` (an int, or a sequence of ``n`` ints) as a tuple of ``n`` ints."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * n
    try:
        result = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{fn}: {name} must be an int or {_TUPLE_NAMES.get(n, f'{n}-tuple')} of ints, "
                        f"got {value!r}") from None
    if len(result) != n:
        raise ValueError(f"{fn}: {name} must be an int or {_TUPLE_NAMES.get(n, f'{n}-tuple')} of ints, "
                         f"got {value!r}")
    return result


def as_batched(x: Any, nsp: int, fn: str) -> tuple[Any, bool]:
    """``x`` with a batch axis (added for an unbatched ``(C, *spatial)`` input), and whether it was added."""
    x = fnp.asarray(x)
    if fnp.ndim(x) == nsp + 1:
        return x[None], True
    if fnp.ndim(x) != nsp + 2:
        layout = _LAYOUTS.get(nsp, f"(N, C, {nsp} spatial dims)")
        raise ValueError(f"{fn} expects an {layout} (or unbatched {layout[1:]}) input with {nsp + 2} "
                         f"(or {nsp + 1}) dimensions, got shape {fnp.shape(x)}")
    return x, False


def _add_bias(y: Any, bias: Any, nsp: int) -> Any:
    return y if bias is None else y + fnp.reshape(bias, (1, -1) + (1,) * nsp)


# --- convolution -------------------------------------------------------------------------------

def conv_padding(padding: Any, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
                 fn: str) -> tuple[tuple[int, int], ...]:
    """(low, high) zero padding per spatial dim for ``padding`` = int, tuple, ``'valid'`` or ``'same'``.

    ``'same'`` pads ``dilation * (kernel - 1)`` in all, the odd element after (PyTorch's rule), and
    like PyTorch refuses strides: the output would not have the input's size."""
    nsp = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nsp
        if padding != "same":
            raise ValueError(f"{fn}: padding must be an int, a tuple of ints, 'same' or 'valid', got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{fn}: padding='same' is not supported for strided convolutions (stride={stride}); "
                             "pad explicitly with an int or tuple")
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    pads = ntuple(padding, nsp, "padding", fn)
    if min(pads) < 0:
        raise ValueError(f"{fn}: padding must be non-negative, got {padding!r}")
    return tuple((p, p) for p in pads)


def pad_input(x: Any, pads: Sequence[tuple[int, int]], padding_mode: str, fn: str) -> Any:
    """``x`` (N, C, *spatial) padded by ``pads`` with ``padding_mode`` ('reflect', 'replicate', 'circular')."""
    sizes = fnp.shape(x)[2:]
    for size, (lo, hi) in zip(sizes, pads):
        too_big = max(lo, hi) >= size if padding_mode == "reflect" else max(lo, hi) > size
        if padding_mode != "replicate" and too_big:
            bound = "<" if padding_mode == "reflect" else "<="
            raise ValueError(f"{fn}: padding_mode={padding_mode!r} needs padding {bound} the input's size in "
                             f"each spatial dim, got padding {tuple(pads)} for input shape {fnp.shape(x)}")
    return fnp.pad(x, ((0, 0), (0, 0), *pads), mode=PADDING_MODES[padding_mode])


def check_padding_mode(padding_mode: str, fn: str) -> str:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{fn}: padding_mode must be one of {sorted(PADDING_MODES)}, got {padding_mode!r}")
    return padding_mode


def conv(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
         groups: int = 1, padding_mode: str = "zeros", *, fn: str = "conv") -> Any:
    """The N-d convolution (cross-correlation) behind ``conv1d``/``conv2d``/``conv3d``; the number of
    spatial dims is the weight's ``ndim - 2``."""
    weight = fnp.asarray(weight)
    nsp = fnp.ndim(weight) - 2
    check_padding_mode(padding_mode, fn)
    x, unbatched = as_batched(x, nsp, fn)
    kernel = tuple(fnp.shape(weight)[2:])
    stride = ntuple(stride, nsp, "stride", fn)
    dilation = ntuple(dilation, nsp, "dilation", fn)
    _check_conv_channels(fnp.shape(x), fnp.shape(weight), groups, fn)
    pads = conv_padding(padding, kernel, stride, dilation, fn)
    if padding_mode != "zeros":
        x, pads = pad_input(x, pads, padding_mode, fn), ((0, 0),) * nsp
    y = lax.conv_general_dilated(x, weight, stride, pads, rhs_dilation=dilation, feature_group_count=groups)
    y = _add_bias(y, bias, nsp)
    return y[0] if unbatched else y


def _check_conv_channels(x_shape: tuple, w_shape: tuple, groups: int, fn: str) -> None:
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive int, got {groups!r}")
    if x_shape[1] != w_shape[1] * groups:
        raise ValueError(f"{fn}: expects {w_shape[1] * groups} input channels, got {x_shape[1]} (input shape "
                         f"{x_shape}, channels first; weight {w_shape} with groups={groups})")
    if w_shape[0] % groups:
        raise ValueError(f"{fn}: the weight's {w_shape[0]} output channels are not divisible by groups={groups}")


def conv1d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1, padding_mode: str = "zeros") -> Any:
    """``conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)``, as
    ``torch.nn.functional.conv1d``: input (N, C_in, L) or (C_in, L), weight (C_out, C_in/groups, K);
    ``padding`` an int, a tuple, ``'same'`` or ``'valid'``; ``padding_mode`` as ``torch.nn.Conv1d``'s.

    >>> conv1d(fnp.ones((2, 3, 10)), fnp.ones((4, 3, 3)), padding="same").shape   # (2, 4, 10)  # doctest: +SKIP
    """
    _check_weight_ndim(weight, 1, "conv1d")
    return conv(x, weight, bias, stride, padding, dilation, groups, padding_mode, fn="conv1d")


def conv2d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1, padding_mode: str = "zeros") -> Any:
    """``conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)``, as
    ``torch.nn.functional.conv2d``: input (N, C_in, H, W) or (C_in, H, W), weight (C_out, C_in/groups, KH, KW).

    >>> conv2d(images, fnp.ones((32, 1, 3, 3))).shape   # (128, 1, 28, 28) -> (128, 32, 26, 26)  # doctest: +SKIP
    """
    _check_weight_ndim(weight, 2, "conv2d")
    return conv(x, weight, bias, stride, padding, dilation, groups, padding_mode, fn="conv2d")


def conv3d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1,
           groups: int = 1, padding_mode: str = "zeros") -> Any:
    """``conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1)``, as
    ``torch.nn.functional.conv3d``: input (N, C_in, D, H, W) or (C_in, D, H, W), weight
    (C_out, C_in/groups, KD, KH, KW).

    >>> conv3d(fnp.ones((1, 2, 4, 5, 6)), fnp.ones((3, 2, 3, 3, 3)), padding=1).shape  # doctest: +SKIP
    (1, 3, 4, 5, 6)
    """
    _check_weight_ndim(weight, 3, "conv3d")
    return conv(x, weight, bias, stride, padding, dilation, groups, padding_mode, fn="conv3d")


def _check_weight_ndim(weight: Any, nsp: int, fn: str) -> None:
    if fnp.ndim(weight) != nsp + 2:
        raise ValueError(f"{fn}: the weight must have {nsp + 2} dimensions (out, in/groups, {nsp} kernel dims), "
                         f"got shape {fnp.shape(weight)}")


# --- transposed convolution --------------------------------------------------------------------

def conv_transpose(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
                   output_padding: Any = 0, groups: int = 1, dilation: Any = 1, *,
                   fn: str = "conv_transpose") -> Any:
    """The N-d transposed convolution (the gradient of ``conv`` with respect to its input) behind
    ``conv_transpose1d/2d/3d``: weight (C_in, C_out/groups, *kernel); each spatial output size is
    ``(in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1``.

    It is a stride-1 convolution of the input dilated by ``stride`` with the spatially flipped
    kernel (in/out channels exchanged per group), padded ``dilation * (kernel - 1) - padding``
    before and that plus ``output_padding`` after."""
    weight = fnp.asarray(weight)
    nsp = fnp.ndim(weight) - 2
    x, unbatched = as_batched(x, nsp, fn)
    stride, dilation = ntuple(stride, nsp, "stride", fn), ntuple(dilation, nsp, "dilation", fn)
    padding = ntuple(padding, nsp, "padding", fn)
    output_padding = ntuple(output_padding, nsp, "output_padding", fn)
    _check_transpose_args(fnp.shape(x), fnp.shape(weight), groups, stride, dilation, padding, output_padding, fn)
    c_in, c_out_per_group, *kernel = fnp.shape(weight)
    w = fnp.reshape(weight, (groups, c_in // groups, c_out_per_group, *kernel))
    w = fnp.reshape(fnp.swapaxes(w, 1, 2), (groups * c_out_per_group, c_in // groups, *kernel))
    w = lax.rev(w, tuple(range(2, 2 + nsp)))
    pads = [(d * (k - 1) - p, d * (k - 1) - p + op) for k, d, p, op in zip(kernel, dilation, padding, output_padding)]
    y = lax.conv_general_dilated(x, w, (1,) * nsp, pads, lhs_dilation=stride, rhs_dilation=dilation,
                                 feature_group_count=groups)
    y = _add_bias(y, bias, nsp)
    return y[0] if unbatched else y


def _check_transpose_args(x_shape, w_shape, groups, stride, dilation, padding, output_padding, fn) -> None:
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1 or w_shape[0] % groups:
        raise ValueError(f"{fn}: groups ({groups!r}) must be a positive int dividing the weight's "
                         f"{w_shape[0]} input channels (weight shape {w_shape}: in, out/groups, *kernel)")
    if x_shape[1] != w_shape[0]:
        raise ValueError(f"{fn}: expects {w_shape[0]} input channels, got {x_shape[1]} (input shape {x_shape}, "
                         f"channels first; weight {w_shape}: in, out/groups, *kernel)")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"{fn}: stride and dilation must be >= 1 and padding >= 0, got stride={stride}, "
                         f"dilation={dilation}, padding={padding}")
    for op, s, d in zip(output_padding, stride, dilation):
        if not 0 <= op < max(s, d):
            raise ValueError(f"{fn}: output_padding {output_padding} must be smaller than either stride "
                             f"{stride} or dilation {dilation} (and >= 0)")
    for size, k, s, d, p, op in zip(x_shape[2:], w_shape[2:], stride, dilation, padding, output_padding):
        if (size - 1) * s - 2 * p + d * (k - 1) + op + 1 < 1:
            raise ValueError(f"{fn}: padding {padding} leaves no output for input shape {x_shape} and "
                             f"kernel {tuple(w_shape[2:])} (output size = (in - 1) * stride - 2 * padding "
                             "+ dilation * (kernel - 1) + output_padding + 1)")


def conv_transpose1d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Any:
    """``conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
    dilation=1)``, as ``torch.nn.functional.conv_transpose1d``: weight (C_in, C_out/groups, K).

    >>> conv_transpose1d(fnp.ones((1, 2, 5)), fnp.ones((2, 3, 3)), stride=2).shape   # (1, 3, 11)  # doctest: +SKIP
    """
    _check_weight_ndim(weight, 1, "conv_transpose1d")
    return conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation, fn="conv_transpose1d")


def conv_transpose2d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Any:
    """``conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
    dilation=1)``, as ``torch.nn.functional.conv_transpose2d``: weight (C_in, C_out/groups, KH, KW).

    >>> w = fnp.ones((8, 4, 3, 3))                                                    # doctest: +SKIP
    >>> conv_transpose2d(fnp.ones((1, 8, 7, 7)), w, stride=2, padding=1, output_padding=1).shape  # doctest: +SKIP
    (1, 4, 14, 14)
    """
    _check_weight_ndim(weight, 2, "conv_transpose2d")
    return conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation, fn="conv_transpose2d")


def conv_transpose3d(x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
                     output_padding: Any = 0, groups: int = 1, dilation: Any = 1) -> Any:
    """``conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
    dilation=1)``, as ``torch.nn.functional.conv_transpose3d``: weight (C_in, C_out/groups, KD, KH, KW).

    >>> conv_transpose3d(fnp.ones((1, 2, 3, 3, 3)), fnp.ones((2, 1, 2, 2, 2)), stride=2).shape  # doctest: +SKIP
    (1, 1, 6, 6, 6)
    """
    _check_weight_ndim(weight, 3, "conv_transpose3d")
    return conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation, fn="conv_transpose3d")


# --- pooling -----------------------------------------------------------------------------------

def pool(x: Any, kernel_size: Any, stride: Any, padding: Any, computation: str, nsp: int, fn: str) -> Any:
    """``lax.reduce_window`` over the trailing ``nsp`` dims of an (N, C, *spatial) or (C, *spatial) input;
    ``stride`` defaults to ``kernel_size``; ``max`` pads with -inf, ``sum`` with zeros."""
    kernel = ntuple(kernel_size, nsp, "kernel_size", fn)
    strides = ntuple(kernel if stride is None else stride, nsp, "stride", fn)
    pads = ntuple(padding, nsp, "padding", fn)
    if min(kernel) < 1 or min(strides) < 1 or any(not 0 <= 2 * p <= k for p, k in zip(pads, kernel)):
        raise ValueError(f"{fn}: kernel_size and stride must be >= 1 and padding between 0 and half the "
                         f"kernel, got kernel_size={kernel}, stride={strides}, padding={pads}")
    x, unbatched = as_batched(x, nsp, fn)
    out = lax.reduce_window(x, computation, (1, 1, *kernel), (1, 1, *strides),
                            ((0, 0), (0, 0), *[(p, p) for p in pads]))
    return out[0] if unbatched else out


def _window_size(kernel_size: Any, nsp: int, fn: str) -> float:
    return float(np.prod(ntuple(kernel_size, nsp, "kernel_size", fn)))


def max_pool1d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Any:
    """1-D max pooling over an (N, C, L) or (C, L) input, as ``torch.nn.functional.max_pool1d``;
    ``stride`` defaults to ``kernel_size``."""
    return pool(x, kernel_size, stride, padding, "max", 1, "max_pool1d")


def max_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Any:
    """2-D max pooling over an NCHW (or CHW) input; ``stride`` defaults to ``kernel_size``."""
    return pool(x, kernel_size, stride, padding, "max", 2, "max_pool2d")


def max_pool3d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Any:
    """3-D max pooling over an (N, C, D, H, W) or (C, D, H, W) input; ``stride`` defaults to ``kernel_size``."""
    return pool(x, kernel_size, stride, padding, "max", 3, "max_pool3d")


def avg_pool1d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Any:
    """1-D average pooling over an (N, C, L) or (C, L) input (zero padding counts, as in PyTorch)."""
    return pool(x, kernel_size, stride, padding, "sum", 1, "avg_pool1d") / _window_size(kernel_size, 1, "avg_pool1d")


def avg_pool2d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Any:
    """2-D average pooling over an NCHW (or CHW) input (zero padding counts, as in PyTorch)."""
    return pool(x, kernel_size, stride, padding, "sum", 2, "avg_pool2d") / _window_size(kernel_size, 2, "avg_pool2d")


def avg_pool3d(x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0) -> Any:
    """3-D average pooling over an (N, C, D, H, W) or (C, D, H, W) input (zero padding counts)."""
    return pool(x, kernel_size, stride, padding, "sum", 3, "avg_pool3d") / _window_size(kernel_size, 3, "avg_pool3d")


def _adaptive_weights(in_size: int, out_size: int) -> np.ndarray:
    """(in_size, out_size) averaging weights: output ``i`` averages inputs ``floor(i * in / out)``
    to ``ceil((i + 1) * in / out)`` (PyTorch's bins, which may overlap)."""
    weights = np.zeros((in_size, out_size))
    for i in range(out_size):
        start, end = (i * in_size) // out_size, -(-(i + 1) * in_size // out_size)
        weights[start:end, i] = 1.0 / (end - start)
    return weights


def adaptive_avg_pool(x: Any, output_size: Any, nsp: int, fn: str = "adaptive_avg_pool") -> Any:
    """Average pooling to a fixed ``output_size`` over the trailing ``nsp`` dims (None keeps a dim's
    size): each spatial dim is contracted with a constant averaging matrix."""
    x, unbatched = as_batched(promote_float(fn, x), nsp, fn)
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * nsp
    if len(sizes) != nsp:
        raise ValueError(f"{fn}: output_size must be an int or a tuple of {nsp}, got {output_size!r}")
    for axis, (in_size, out_size) in enumerate(zip(fnp.shape(x)[2:], sizes), start=2):
        out_size = in_size if out_size is None else int(out_size)
        if out_size < 1 or in_size < 1:
            raise ValueError(f"{fn}: output_size {output_size!r} and the input's spatial sizes "
                             f"{fnp.shape(x)[2:]} must be positive")
        weights = fnp.asarray(_adaptive_weights(in_size, out_size).astype(x.dtype))
        x = fnp.moveaxis(fnp.tensordot(x, weights, axes=([axis], [0])), -1, axis)
    return x[0] if unbatched else x


def adaptive_avg_pool1d(x: Any, output_size: Any) -> Any:
    """``adaptive_avg_pool1d(input, output_size)``: (N, C, L) or (C, L) averaged in ``output_size``
    bins, as ``torch.nn.functional.adaptive_avg_pool1d``."""
    return adaptive_avg_pool(x, output_size, 1, "adaptive_avg_pool1d")


def adaptive_avg_pool2d(x: Any, output_size: Any) -> Any:
    """``adaptive_avg_pool2d(input, output_size)``: NCHW or CHW averaged to ``output_size`` (an int,
    or a pair whose None entries keep that size), as ``torch.nn.functional.adaptive_avg_pool2d``.

    >>> adaptive_avg_pool2d(features, 1).shape     # global average pooling: (N, C, 1, 1)  # doctest: +SKIP
    """
    return adaptive_avg_pool(x, output_size, 2, "adaptive_avg_pool2d")


def adaptive_avg_pool3d(x: Any, output_size: Any) -> Any:
    """``adaptive_avg_pool3d(input, output_size)``: (N, C, D, H, W) or (C, D, H, W) averaged to
    ``output_size``, as ``torch.nn.functional.adaptive_avg_pool3d``."""
    return adaptive_avg_pool(x, output_size, 3, "adaptive_avg_pool3d")
