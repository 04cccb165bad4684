"""Never silently slow: the one place that says a program left its native path.

A jitted program whose jaxpr the native path cannot lower runs on the *reference path*
(eager NumPy evaluation of the jaxpr, primitive by primitive: often 10x slower or worse);
a GPU program whose kernels cannot run on the GPU runs natively on the host CPU. Either
way ``warn_fallback`` emits one warning per program, naming the program, the equation and
its primitive, and why, whatever ``FGRAD_DEBUG`` says. Choosing the reference path
(``FGRAD_JIT_BACKEND=reference``) is not a fallback and does not warn.

    >>> import warnings, fgrad
    >>> warnings.simplefilter("error", fgrad.ReferencePathWarning)   # make a fallback fail loudly
"""
from __future__ import annotations

import os
import sys
import threading
import warnings
from typing import Any

__all__ = ["ReferencePathWarning", "HostFallbackWarning", "warn_fallback"]


class ReferencePathWarning(UserWarning):
    """A jitted program runs on the reference path (eager NumPy evaluation of its jaxpr)
    because the native path cannot lower one of its equations."""


class HostFallbackWarning(UserWarning):
    """A program compiled for a GPU runs on the host CPU instead (still native code)."""


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_MAX_EQUATION_TEXT = 240
_warned: dict[int, Any] = {}      # id(program key) -> the key, held so that the id stays unique
_lock = threading.Lock()


def describe_equation(eqn: Any) -> str:
    """``eqn`` as one short line: its printed form (cut) and its primitive."""
    text = " ".join(repr(eqn).split())
    if len(text) > _MAX_EQUATION_TEXT:
        text = text[:_MAX_EQUATION_TEXT - 3] + "..."
    return f"equation `{text}` (primitive '{eqn.primitive.name}')"


def warn_fallback(program: str, why: Any, key: Any, eqn: Any = None,
                  category: type[Warning] = ReferencePathWarning) -> None:
    """Warn (once per ``key``, e.g. the program's jaxpr) that program ``program`` left its
    native path: to the reference path (``ReferencePathWarning``) or, for a GPU program, to
    the host CPU (``HostFallbackWarning``); ``eqn`` is the equation that could not be
    lowered, ``why`` the reason."""
    with _lock:
        if id(key) in _warned and _warned[id(key)] is key:
            return
        _warned[id(key)] = key
    where = ("runs on the reference path (eager NumPy evaluation of its jaxpr, much slower)"
             if category is ReferencePathWarning else "runs on the host CPU, not the GPU")
    culprit = f" because of {describe_equation(eqn)}" if eqn is not None else ""
    warnings.warn(f"fgrad: program '{program}' {where}{culprit}: {why}", category,
                  stacklevel=_user_stacklevel())


def _user_stacklevel() -> int:
    """The stacklevel of the innermost caller outside the fgrad package (so the warning points
    at the user's line)."""
    frame, level = sys._getframe(2), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level
