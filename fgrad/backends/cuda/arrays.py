"""``CudaArray``, the user-visible array on a GPU, and placement: ``put`` (host or another
device -> a GPU), ``common_device`` (where an operation on several arrays runs) and the
error for arrays on two devices.

Eager operations on a ``CudaArray`` (outside ``jit``) run per-primitive GPU programs. Building
those is the compile layer's work, above this backend, so the backend only declares the hook:
``fgrad.compile.gpu`` installs its ``eager_apply`` with ``set_eager_apply`` when it is
imported, and ``CudaArray._device_process`` (what the eager interpreter calls) forwards to
it, or raises a ``RuntimeError`` saying what is missing. Every public way to make a
``CudaArray`` (``fgrad.device_put``, ``jit``) goes through ``fgrad.compile.gpu``, so the hook
is in place before the first GPU array exists.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from fgrad.backends.base import Device, PlacementError
from fgrad.backends.cuda.devices import local_gpu_devices, runtime
from fgrad.backends.cuda.memory import CudaBuffer
from fgrad.core.array import Array
from fgrad.core.trace import get_aval
from fgrad.core.types import ShapedArray

#: [eager_apply(primitive, args, params)] once the compile layer installed it (see above).
_eager_apply: list[Callable[[Any, Sequence[Any], dict], Any]] = []


def set_eager_apply(apply: Callable[[Any, Sequence[Any], dict], Any]) -> None:
    """Install ``apply(primitive, args, params)``, which runs one primitive on GPU arrays
    (``fgrad.compile.gpu.eager_apply``), as the eager path of every ``CudaArray``."""
    _eager_apply[:] = [apply]


def _no_eager_path(primitive, args, params):
    raise RuntimeError(f"{primitive} on a GPU array outside jit: no eager GPU path is installed; "
                       "fgrad.compile.gpu installs it when imported (import fgrad, not only "
                       "fgrad.backends.cuda)")


class CudaArray(Array):
    """An ``fgrad.Array`` whose data live on a GPU until they are read.

    Reading (``np.asarray``, ``.item()``, printing, comparisons in Python) copies the
    data to the host once, waiting for the GPU; ``block_until_ready()`` only waits.
    Operations on it run on its GPU; combining it with an array on another device
    raises an error that suggests ``fgrad.device_put``.
    """

    __slots__ = ("_buffer", "_host")

    def __init__(self, *args, **kwargs):
        raise TypeError("create GPU arrays with fgrad.device_put(x, device) or by running a "
                        "function on a GPU")

    @classmethod
    def _wrap(cls, buffer: CudaBuffer, aval: ShapedArray) -> CudaArray:
        self = object.__new__(cls)
        self.aval = aval
        self._device = buffer.runtime.device
        self._buffer = buffer
        self._host = None
        return self

    @property
    def _value(self) -> np.ndarray:
        host = self._host
        if host is None:
            host = self._buffer.to_numpy()
            host.flags.writeable = False
            self._host = host
        return host

    def block_until_ready(self) -> CudaArray:
        """Wait until the GPU has computed this array."""
        self._buffer.runtime.synchronize()
        return self

    def copy(self) -> CudaArray:
        """The array itself (arrays are immutable)."""
        return self

    def __reduce__(self):
        return (Array, (np.array(self._value), self.aval))

    @staticmethod
    def _device_process(primitive, args, params):
        """The eager interpreter's hook: run ``primitive`` on the arguments' GPU (through the
        function ``set_eager_apply`` installed)."""
        apply = _eager_apply[0] if _eager_apply else _no_eager_path
        return apply(primitive, args, params)


def put(x: Any, device: Device, aval: ShapedArray | None = None) -> CudaArray:
    """Place ``x`` on GPU ``device`` (a no-op when it is already there).

    ``x`` is an fgrad ``Array`` (on any device), or host data of abstract value ``aval``
    (default: ``get_aval(x)``, a NumPy array's own dtype; ``fgrad.device_put`` converts
    other host data with ``fgrad.numpy.asarray`` first).
    """
    if isinstance(x, CudaArray):
        if x.device == device:
            return x
        return CudaArray._wrap(runtime(device).put(x._value), x.aval)  # GPU -> host -> GPU
    if aval is None:
        if isinstance(x, Array):
            aval, x = x.aval, x._value
        else:
            aval = get_aval(x)
    return CudaArray._wrap(runtime(device).put(np.asarray(x, aval.dtype)), aval)


def placement_error(a: Device, b: Device) -> PlacementError:
    """The error for combining arrays committed to devices ``a`` and ``b``."""
    return PlacementError(f"arrays on two devices, {a!r} and {b!r}, were combined; move one of them "
                      f"first, e.g. x = fgrad.device_put(x, fgrad.devices()[0]) (or device_put(x, "
                      f"{b!r})), so that every operand is on the same device", (a, b))


def common_device(args: Sequence[Any], default: Device | None = None) -> Device:
    """The one device the arrays among ``args`` are committed to (by ``device_put``, or as GPU
    arrays), else ``default`` or this process's first GPU; two different ones raise the
    two-devices error. Uncommitted host arrays follow."""
    found = None
    for x in args:
        d = x.committed_device if isinstance(x, Array) else None
        if d is None:
            continue
        if found is None:
            found = d
        elif d != found:
            raise placement_error(found, d)
    if found is None:
        found = default if default is not None else local_gpu_devices()[0]
    return found

