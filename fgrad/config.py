"""fgrad's configuration: ``fgrad.config`` plus ``FGRAD_*`` environment variables.

    >>> import fgrad
    >>> fgrad.config.update("enable_x64", True)   # allow float64/int64

Settings
--------
enable_x64  (FGRAD_ENABLE_X64)  keep 64-bit dtypes instead of narrowing them to 32 bits.
debug       (FGRAD_DEBUG)       1 logs trace/lower/compile times and cache misses, 2 per-kernel
                                timings, 3 the kernel IR, 4 the generated LLVM IR / CUDA C.
backend     (FGRAD_BACKEND)     "cpu" or "cuda"; None picks the GPU when one is usable.
matmul_precision (FGRAD_MATMUL_PRECISION)  "highest" (default: float32 products in float32) or
                                "tf32": float32 matmuls on the GPU may use TF32 tensor cores
                                (inputs rounded to a 10-bit mantissa; about 1e-3 relative error).
executable_cache_size (FGRAD_EXECUTABLE_CACHE_SIZE)  how many compiled programs stay in memory
                                (default 1024); the least recently used one beyond that is dropped
                                (with its device constants) and recompiled if it is called again.
disk_cache_mib (FGRAD_DISK_CACHE_MIB)  the on-disk cache's size bound in MiB (default 2048):
                                past it, the least recently used entries are deleted.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator


def positive_int_env(name: str) -> int | None:
    """The positive integer in environment variable ``name``, or None when it is unset or empty;
    anything else raises a ValueError naming the variable."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return number


def _env_int(name: str, default: int) -> int:
    number = positive_int_env(name)
    return default if number is None else number


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "false", "no", "off")


class Config:
    """Holds fgrad's global settings; change them with ``update`` or the ``FGRAD_*`` variables."""

    _defaults = {"enable_x64": False, "debug": 0, "backend": None, "matmul_precision": "highest",
                 "executable_cache_size": 1024, "disk_cache_mib": 2048}
    _positive_ints = ("executable_cache_size", "disk_cache_mib")
    _choices = {"backend": (None, "cpu", "cuda"), "matmul_precision": ("highest", "tf32")}

    def __init__(self) -> None:
        self.enable_x64: bool = _env_flag("FGRAD_ENABLE_X64", False)
        self.debug: int = int(os.environ.get("FGRAD_DEBUG", "0") or 0)
        self.backend: str | None = os.environ.get("FGRAD_BACKEND") or None
        self.matmul_precision: str = os.environ.get("FGRAD_MATMUL_PRECISION") or "highest"
        self.executable_cache_size: int = _env_int("FGRAD_EXECUTABLE_CACHE_SIZE", 1024)
        self.disk_cache_mib: int = _env_int("FGRAD_DISK_CACHE_MIB", 2048)

    def update(self, name: str, value: Any) -> None:
        """Set one setting by name, e.g. ``config.update("enable_x64", True)``."""
        if name not in self._defaults:
            known = ", ".join(sorted(self._defaults))
            raise ValueError(f"fgrad.config has no setting {name!r}; known settings: {known}")
        if name in self._choices and value not in self._choices[name]:
            raise ValueError(f"fgrad.config.{name} must be one of {self._choices[name]}, got {value!r}")
        if name in self._positive_ints and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"fgrad.config.{name} must be a positive integer, got {value!r}")
        setattr(self, name, value)

    @contextmanager
    def override(self, **settings: Any) -> Iterator[None]:
        """Temporarily change settings: ``with config.override(enable_x64=True): ...``."""
        old = {name: getattr(self, name) for name in settings}
        for name, value in settings.items():
            self.update(name, value)
        try:
            yield
        finally:
            for name, value in old.items():
                setattr(self, name, value)


config = Config()
