"""NVRTC (CUDA's runtime compiler) through ctypes: CUDA C source -> cubin, in-process.

The library is ``libnvrtc.so*`` of the CUDA toolkit or of the ``nvidia-cuda-nvrtc`` wheel;
``FGRAD_NVRTC`` names one explicitly. ``find_nvrtc`` loads the first that works, once.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
from pathlib import Path
from typing import Sequence

from fgrad.backends.cuda.util import CudaError


def _nvrtc_candidates() -> list[str]:
    found = [os.environ["FGRAD_NVRTC"]] if os.environ.get("FGRAD_NVRTC") else []
    name = ctypes.util.find_library("nvrtc")
    if name:
        found.append(name)
    wheels = [f"{p}/nvidia/{sub}/lib/libnvrtc.so*" for p in sys.path if p for sub in ("cu*", "cuda_nvrtc")]
    for pattern in ("/usr/local/cuda*/targets/*/lib/libnvrtc.so*", "/usr/local/cuda*/lib64/libnvrtc.so*",
                    "/usr/lib/x86_64-linux-gnu/libnvrtc.so*", *wheels):   # wheels: nvidia-cuda-nvrtc
        found += sorted((p for p in glob.glob(pattern) if "builtins" not in p), reverse=True)
    return found


class Nvrtc:
    """NVRTC (CUDA's runtime compiler) loaded with ctypes: CUDA C source -> cubin in-process."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        P, C = ctypes.c_void_p, ctypes.c_char_p
        lib.nvrtcGetErrorString.restype = C
        lib.nvrtcCreateProgram.argtypes = [ctypes.POINTER(P), C, C, ctypes.c_int, P, P]
        lib.nvrtcCompileProgram.argtypes = [P, ctypes.c_int, ctypes.POINTER(C)]
        for fn in ("nvrtcGetProgramLogSize", "nvrtcGetCUBINSize"):
            getattr(lib, fn).argtypes = [P, ctypes.POINTER(ctypes.c_size_t)]
        for fn in ("nvrtcGetProgramLog", "nvrtcGetCUBIN"):
            getattr(lib, fn).argtypes = [P, C]
        lib.nvrtcDestroyProgram.argtypes = [ctypes.POINTER(P)]
        self.lib, self.path = lib, path
        self.include_dirs = _cuda_include_dirs(path)
        major, minor = ctypes.c_int(), ctypes.c_int()
        self._check(lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        self.version = (major.value, minor.value)

    def _check(self, result: int, what: str, log: str = "") -> None:
        if result:
            text = self.lib.nvrtcGetErrorString(result).decode()
            raise CudaError(f"NVRTC {what} failed: {text}" + (f"\n{log}" if log else ""))

    def compile(self, source: str, arch: str, options: Sequence[str]) -> bytes:
        """The cubin of ``source`` for ``arch`` (e.g. 'sm_90')."""
        lib, prog = self.lib, ctypes.c_void_p()
        self._check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"fgrad.cu", 0, None, None),
                    "nvrtcCreateProgram")
        try:
            opts = [f"--gpu-architecture={arch}", *options, *(f"-I{d}" for d in self.include_dirs)]
            opts = [o.encode() for o in opts]
            array = (ctypes.c_char_p * len(opts))(*opts)
            result = lib.nvrtcCompileProgram(prog, len(opts), array)
            if result:
                size = ctypes.c_size_t()
                lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
                log = ctypes.create_string_buffer(size.value)
                lib.nvrtcGetProgramLog(prog, log)
                self._check(result, "compilation", log.value.decode(errors="replace")[-4000:])
            size = ctypes.c_size_t()
            self._check(lib.nvrtcGetCUBINSize(prog, ctypes.byref(size)), "nvrtcGetCUBINSize")
            cubin = ctypes.create_string_buffer(size.value)
            self._check(lib.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
            return cubin.raw
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _cuda_include_dirs(nvrtc_path: str) -> list[str]:
    """Where CUDA's headers are (``mma.h`` for tensor cores is not built into NVRTC): beside the
    library (``targets/<arch>/lib`` -> ``targets/<arch>/include``), ``$CUDA_HOME``, /usr/local/cuda*."""
    lib = Path(os.path.realpath(nvrtc_path)).parent
    candidates = [lib.parent / "include", Path(os.environ.get("CUDA_HOME", "/nonexistent")) / "include",
                  Path(os.environ.get("CUDA_PATH", "/nonexistent")) / "include", Path("/usr/local/cuda/include"),
                  *sorted(Path(p) for p in glob.glob("/usr/local/cuda-*/include"))[::-1]]
    for d in candidates:
        if (d / "mma.h").is_file():
            return [str(d)]
    return []


_nvrtc: list = []


def find_nvrtc() -> Nvrtc | None:
    """NVRTC if a ``libnvrtc.so*`` loads (``FGRAD_NVRTC`` names one explicitly), else None."""
    if not _nvrtc:
        loaded = None
        for path in _nvrtc_candidates():
            try:
                loaded = Nvrtc(path)
                break
            except (OSError, AttributeError, CudaError):
                continue
        _nvrtc.append(loaded)
    return _nvrtc[0]
