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
beam        (FGRAD_BEAM)        0 (default) or a beam width N: programs compiled from then on
                                search the schedules of their CPU contractions (GEMMs,
                                convolutions), timing candidates here, and keep the fastest; the
                                choices are cached on disk (``fgrad/backends/beam.py``).
beam_budget_s (FGRAD_BEAM_BUDGET_S)  the most seconds one program's search may take (default 60).

JAX's option names are accepted where they mean something here (``JAX_OPTIONS``):
``jax_enable_x64`` (enable_x64), ``jax_platform_name`` / ``jax_platforms`` ('cpu', 'gpu' or
'cuda'; 'cuda,cpu' means a GPU when usable: backend), ``jax_default_device`` (a first CPU or GPU
device: backend), ``jax_default_matmul_precision`` ('highest'/'float32', or 'high'/'tensorfloat32'
and the faster ones: tf32; matmul_precision) and ``jax_log_compiles`` (debug 1). Others raise a
ValueError naming the known settings.
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


def _env_beam() -> int:
    value = os.environ.get("FGRAD_BEAM", "").strip()
    if not value:
        return 0
    try:
        width = int(value)
    except ValueError:
        width = -1
    if width < 0:
        raise ValueError(f"FGRAD_BEAM must be 0 (off) or a beam width like 2, got {value!r}")
    return width


def _env_seconds(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "false", "no", "off")


class Config:
    """Holds fgrad's global settings; change them with ``update`` or the ``FGRAD_*`` variables."""

    _defaults = {"enable_x64": False, "debug": 0, "backend": None, "matmul_precision": "highest",
                 "executable_cache_size": 1024, "disk_cache_mib": 2048, "beam": 0, "beam_budget_s": 60.0}
    _positive_ints = ("executable_cache_size", "disk_cache_mib")
    _choices = {"backend": (None, "cpu", "cuda"), "matmul_precision": ("highest", "tf32")}

    def __init__(self) -> None:
        self.enable_x64: bool = _env_flag("FGRAD_ENABLE_X64", False)
        self.debug: int = int(os.environ.get("FGRAD_DEBUG", "0") or 0)
        self.backend: str | None = os.environ.get("FGRAD_BACKEND") or None
        self.matmul_precision: str = os.environ.get("FGRAD_MATMUL_PRECISION") or "highest"
        self.executable_cache_size: int = _env_int("FGRAD_EXECUTABLE_CACHE_SIZE", 1024)
        self.disk_cache_mib: int = _env_int("FGRAD_DISK_CACHE_MIB", 2048)
        self.beam: int = _env_beam()
        self.beam_budget_s: float = _env_seconds("FGRAD_BEAM_BUDGET_S", 60.0)

    def update(self, name: str, value: Any) -> None:
        """``jax.config.update(name, value)``: set one setting by name, e.g.
        ``config.update("enable_x64", True)`` or JAX's ``config.update("jax_enable_x64", True)``."""
        name, value = self._from_jax(name, value)
        if name not in self._defaults:
            known = ", ".join(sorted(self._defaults) + sorted(JAX_OPTIONS))
            raise ValueError(f"fgrad.config has no setting {name!r}; known settings: {known}")
        if name in self._choices and value not in self._choices[name]:
            raise ValueError(f"fgrad.config.{name} must be one of {self._choices[name]}, got {value!r}")
        if name in self._positive_ints and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"fgrad.config.{name} must be a positive integer, got {value!r}")
        if name == "beam" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"fgrad.config.beam must be 0 (off) or a beam width like 2, got {value!r}")
        if name == "beam_budget_s" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                        or not value > 0):
            raise ValueError(f"fgrad.config.beam_budget_s must be a positive number of seconds, got {value!r}")
        setattr(self, name, value)

    def _from_jax(self, name: str, value: Any) -> tuple[str, Any]:
        """A JAX option's fgrad setting and value (other names pass through unchanged)."""
        if name not in JAX_OPTIONS:
            return name, value
        setting, translate = JAX_OPTIONS[name]
        return setting, translate(value, self)

    def read(self, name: str) -> Any:
        """``jax.config.read(name)``: a setting's value (``jax_enable_x64`` reads enable_x64)."""
        if name == "jax_enable_x64":
            return self.enable_x64
        if name not in self._defaults:
            raise ValueError(f"fgrad.config has no readable setting {name!r}; known settings: "
                             f"{', '.join(sorted(self._defaults))}, jax_enable_x64")
        return getattr(self, name)

    @property
    def jax_enable_x64(self) -> bool:
        """JAX's spelling of ``enable_x64``."""
        return self.enable_x64

    @contextmanager
    def override(self, **settings: Any) -> Iterator[None]:
        """Temporarily change settings: ``with config.override(enable_x64=True): ...``."""
        settings = dict(self._from_jax(name, value) for name, value in settings.items())
        old = {name: getattr(self, name) for name in settings}
        for name, value in settings.items():
            self.update(name, value)
        try:
            yield
        finally:
            for name, value in old.items():
                setattr(self, name, value)


def _flag(value: Any, config: Config) -> bool:
    if not isinstance(value, (bool, int)):
        raise ValueError(f"fgrad.config: jax_enable_x64 takes True or False, got {value!r}")
    return bool(value)


_PLATFORMS = {"cpu": "cpu", "gpu": "cuda", "cuda": "cuda"}


def _platform(value: Any, config: Config) -> str | None:
    """'cpu', 'gpu'/'cuda', or JAX's priority list 'cuda,cpu' (a GPU when usable: fgrad's
    automatic choice, None)."""
    if value is None or value == "":
        return None
    names = [part.strip().lower() for part in str(value).split(",") if part.strip()]
    unknown = [n for n in names if n not in _PLATFORMS]
    if unknown:
        raise ValueError(f"fgrad.config: platform {unknown[0]!r} is not available in fgrad; it runs on "
                         f"'cpu' and 'cuda' (JAX's 'gpu'), got {value!r}")
    choices = [_PLATFORMS[n] for n in names]
    if len(choices) > 1 and choices[0] == "cuda" and "cpu" in choices[1:]:
        return None
    return choices[0]


def _default_device(value: Any, config: Config) -> str | None:
    """A first CPU or GPU device selects that backend; None restores the automatic choice."""
    if value is None:
        return None
    platform, index = getattr(value, "platform", None), getattr(value, "index", None)
    if platform in ("cpu", "cuda") and index == 0:
        return platform
    raise ValueError(f"fgrad.config: jax_default_device maps to fgrad's backend, so it takes the first CPU "
                     f"or GPU device (fgrad.devices(backend='cpu')[0]) or None, got {value!r}; place arrays "
                     "on other devices with fgrad.device_put(x, device)")


_PRECISIONS = {"highest": "highest", "float32": "highest", "high": "tf32", "tensorfloat32": "tf32",
               "default": "tf32", "fastest": "tf32", "bfloat16": "tf32"}


def _matmul_precision(value: Any, config: Config) -> str:
    if value is None:
        return "highest"
    if str(value).lower() not in _PRECISIONS:
        raise ValueError(f"fgrad.config: jax_default_matmul_precision must be one of {sorted(_PRECISIONS)}, "
                         f"got {value!r}")
    return _PRECISIONS[str(value).lower()]


def _log_compiles(value: Any, config: Config) -> int:
    return max(config.debug, 1) if value else 0


#: JAX option name -> (fgrad setting, translation of the value).
JAX_OPTIONS = {
    "jax_enable_x64": ("enable_x64", _flag),
    "jax_platform_name": ("backend", _platform),
    "jax_platforms": ("backend", _platform),
    "jax_default_device": ("backend", _default_device),
    "jax_default_matmul_precision": ("matmul_precision", _matmul_precision),
    "jax_log_compiles": ("debug", _log_compiles),
}


config = Config()
