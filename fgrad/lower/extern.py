"""External routines that programs call by name (``kernel.ExternCall``): where their code is.

Generated code calls an external routine by symbol (``fgrad_lapack_dpotrf``), never by an
address baked into it: object code is cached on disk and loaded by other processes, where
the routine lives elsewhere. The CPU backend binds each symbol a program calls to its
address in this process (``llvm.add_symbol``) before loading the program's code; the
interpreter calls the routine through ctypes. Both ask ``routine_address``.

LAPACK and BLAS come from SciPy, as Numba takes them: ``scipy.linalg.cython_lapack`` and
``cython_blas`` export each routine's C function pointer in a capsule
(``__pyx_capi__``), with Fortran's calling convention (every argument a pointer, no
hidden string lengths). ``fgrad_lapack_<name>`` is the symbol of routine ``<name>``
(``dpotrf``, ``strsm``...). Other providers may ``register_routine``.
"""
from __future__ import annotations

import ctypes
import threading
from typing import Callable, Sequence

#: the symbol prefix of LAPACK and BLAS routines (the rest is the routine's name)
LAPACK_PREFIX = "fgrad_lapack_"

_resolvers: dict[str, Callable[[], int]] = {}
_addresses: dict[str, int] = {}
_lock = threading.Lock()


class MissingSciPy(ImportError):
    """SciPy, which provides LAPACK to compiled programs, is not installed."""


def lapack_symbol(routine: str) -> str:
    """The symbol generated code calls LAPACK/BLAS routine ``routine`` (``"dpotrf"``) by."""
    return LAPACK_PREFIX + routine


def register_routine(symbol: str, resolve: Callable[[], int]) -> None:
    """Make ``symbol`` callable from programs: ``resolve()`` gives its address in this process
    (called once, when a program calling it is first loaded or interpreted)."""
    if not symbol.isidentifier():
        raise ValueError(f"extern routine symbol {symbol!r} is not an identifier")
    with _lock:
        _resolvers[symbol] = resolve
        _addresses.pop(symbol, None)


def routine_address(symbol: str) -> int:
    """The address of external routine ``symbol`` in this process (LAPACK/BLAS through SciPy,
    or a registered routine); raises ``MissingSciPy`` without SciPy, ``KeyError`` for an
    unknown symbol."""
    with _lock:
        address = _addresses.get(symbol)
        if address is None:
            resolve = _resolvers.get(symbol)
            if resolve is not None:
                address = resolve()
            elif symbol.startswith(LAPACK_PREFIX):
                address = _scipy_address(symbol[len(LAPACK_PREFIX):])
            else:
                raise KeyError(f"no external routine is named {symbol!r}: LAPACK/BLAS routines are "
                               f"'{LAPACK_PREFIX}<name>', others must be registered (register_routine)")
            _addresses[symbol] = address
    return address


def call_routine(symbol: str, pointers: Sequence[int], returns_status: bool = False) -> int:
    """Call ``void symbol(void *, ...)`` with these addresses (the interpreter's ``ExternCall``,
    and workspace queries at lowering time); with ``returns_status``, the routine returns an
    ``int32``, which this returns (else 0)."""
    proto = ctypes.CFUNCTYPE(ctypes.c_int32 if returns_status else None,
                             *([ctypes.c_void_p] * len(pointers)))
    status = proto(routine_address(symbol))(*[ctypes.c_void_p(p) for p in pointers])
    return int(status) if returns_status else 0


# --- routines that stop the program (ExternCall.returns_status) ---------------------------------

_pending = threading.local()


def set_pending_error(error: BaseException) -> None:
    """Keep ``error`` for ``raise_pending_error``: what a routine that returns a nonzero status
    (``ExternCall.returns_status``, which ends the program) does first, in the thread running
    the program (a Python exception cannot cross the generated code)."""
    if getattr(_pending, "error", None) is None:
        _pending.error = error


def has_pending_error() -> bool:
    """Whether a routine of a program running in this thread has stopped it with an error."""
    return getattr(_pending, "error", None) is not None


def raise_pending_error() -> None:
    """Raise (and forget) the error a routine kept with ``set_pending_error``, if any: whoever
    runs a program whose routines may stop it calls this once the program has returned."""
    error = getattr(_pending, "error", None)
    if error is not None:
        _pending.error = None
        raise error


def scipy_modules():
    """``(cython_lapack, cython_blas)``; ``MissingSciPy`` (saying how to install it) without SciPy."""
    try:
        from scipy.linalg import cython_blas, cython_lapack
    except ImportError as why:
        raise MissingSciPy(
            "fgrad: compiled decompositions (cholesky, triangular_solve, lu, qr, eigh, svd under jit) "
            "call LAPACK through SciPy, which is not installed: pip install scipy "
            f"(it is a dependency of fgrad; import failed: {why})") from why
    return cython_lapack, cython_blas


def _scipy_address(routine: str) -> int:
    lapack, blas = scipy_modules()
    capsule = lapack.__pyx_capi__.get(routine) or blas.__pyx_capi__.get(routine)
    if capsule is None:
        raise KeyError(f"SciPy's LAPACK and BLAS have no routine {routine!r}")
    return _capsule_pointer(capsule)


def _capsule_pointer(capsule) -> int:
    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule))
