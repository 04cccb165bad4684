"""fgrad.numpy as a Python array API namespace: its version, ``__array_namespace_info__()``
(capabilities, default dtypes, dtypes by kind, devices) and what ``Array.__array_namespace__``
and ``Array.device`` / ``to_device`` call."""
from __future__ import annotations

import sys
from typing import Any

import numpy as np

from fgrad.config import config
from fgrad.core import dtypes
from fgrad.core.array import Array
from fgrad.core.types import ShapedArray
from fgrad.numpy._util import host_device, host_to_array, place
from fgrad.runtime.devices import local_devices

__array_api_version__ = "2024.12"
SUPPORTED_API_VERSIONS = ("2021.12", "2022.12", "2023.12", "2024.12")

_STANDARD_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32",
                    "float64", "complex64", "complex128")
_KINDS = {
    "bool": lambda d: d == dtypes.bool_,
    "signed integer": lambda d: d.kind == "i",
    "unsigned integer": lambda d: d.kind == "u",
    "integral": lambda d: d.kind in "iu",
    "real floating": lambda d: d.kind == "f",
    "complex floating": lambda d: d.kind == "c",
    "numeric": lambda d: d.kind in "iufc",
}


def _namespace_for(api_version: str | None) -> Any:
    """``fgrad.numpy`` for ``x.__array_namespace__(api_version=...)``."""
    if api_version is not None and api_version not in SUPPORTED_API_VERSIONS:
        raise ValueError(f"__array_namespace__: api_version={api_version!r} is not supported; fgrad.numpy "
                         f"implements {', '.join(SUPPORTED_API_VERSIONS)} (pass None for {__array_api_version__})")
    return sys.modules["fgrad.numpy"]


def from_dlpack(x: Any, /, *, device: Any = None, copy: bool | None = None) -> Any:
    """``fnp.from_dlpack(x, /, *, device=None, copy=None)``: an fgrad array of any object that
    exports DLPack from host memory (a NumPy array, a CPU PyTorch tensor, another fgrad array).

    With ``copy`` None or False the memory is shared when its dtype is one fgrad keeps as is
    (changing the source afterwards changes the fgrad array too, as in JAX); ``copy=True``
    gives an independent copy. Data that must be converted (64-bit data with ``enable_x64``
    off) is always copied, and ``copy=False`` then raises.
    """
    host = np.from_dlpack(x, copy=copy)
    target = dtypes.canonicalize(host.dtype)
    if target != host.dtype:
        if copy is False:
            raise ValueError(f"from_dlpack: {host.dtype} data becomes {target} (enable_x64 is off), which needs "
                             "a copy; pass copy=None, or enable 64-bit types with fgrad.config.update('enable_x64', True)")
        return place(host_to_array(host, target), device, "from_dlpack")
    view = host.view()
    view.flags.writeable = False
    return place(Array._from_numpy(view, ShapedArray(view.shape, target)), device, "from_dlpack")


class ArrayNamespaceInfo:
    """What ``fgrad.numpy.__array_namespace_info__()`` returns (the array API's inspection
    object)."""

    def capabilities(self) -> dict:
        """Boolean-mask indexing and data-dependent output shapes work on concrete arrays only
        (as in JAX: under ``jit`` they need ``size=``), so both are reported False."""
        return {"boolean indexing": False, "data-dependent shapes": False, "max dimensions": 64}

    def default_device(self) -> Any:
        """Where arrays are created when no device is given: this process's first CPU device."""
        return host_device()

    def devices(self) -> list:
        """Every device this process can place arrays on (its CPU devices, then its GPUs)."""
        found = list(local_devices(backend="cpu"))
        try:
            found += list(local_devices(backend="cuda"))
        except Exception:   # no usable GPU stack: the CPU devices are all there is
            pass
        return found

    def default_dtypes(self, *, device: Any = None) -> dict:
        """The default dtypes (64-bit ones only with ``enable_x64``)."""
        self._check_device(device)
        index = dtypes.default_int()
        return {"real floating": dtypes.default_float(), "complex floating": dtypes.default_complex(), "integral": index,
                "indexing": index}

    def dtypes(self, *, device: Any = None, kind: Any = None) -> dict:
        """The supported dtypes the standard names (float16 and bfloat16, which fgrad also has,
        are not among them), by name, of ``kind`` (a kind name, or a tuple of them) when given."""
        self._check_device(device)
        available = [d for d in dtypes.SUPPORTED if d.name in _STANDARD_DTYPES
                     and dtypes.canonicalize(d) == d]
        if kind is not None:
            kinds = kind if isinstance(kind, tuple) else (kind,)
            for k in kinds:
                if k not in _KINDS:
                    raise ValueError(f"dtypes: kind={k!r} is not a dtype kind; use one of {sorted(_KINDS)}")
            available = [d for d in available if any(_KINDS[k](d) for k in kinds)]
        return {d.name: d for d in available}

    def _check_device(self, device: Any) -> None:
        if device is not None and device not in self.devices() and device != "cpu":
            raise ValueError(f"{device!r} is not one of this process's devices: {self.devices()}")


def __array_namespace_info__() -> ArrayNamespaceInfo:
    """The array API's inspection object for ``fgrad.numpy``."""
    return ArrayNamespaceInfo()

