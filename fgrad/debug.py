"""``fgrad.debug``: ``print`` and ``callback``, which work inside ``jit``, ``vmap``, ``grad``
and control flow (JAX's ``jax.debug``).

Under ``jit`` the compiled program calls back into Python from inside its native call
(``fgrad.lower.host_callback``); the callback gets NumPy copies of the operands. It runs where
the program reaches it: in a function being differentiated, in the forward pass (and in the
backward pass when it sits there, e.g. in a ``custom_vjp`` rule); under ``vmap`` once per
batch element; inside ``scan``/``while_loop`` once per iteration. Programs run their steps in
order, so callbacks always run in program order (``ordered=True`` is accepted, and holds).
On the GPU a program holding one runs on the host CPU (``HostFallbackWarning``).
"""
from __future__ import annotations

import string
import sys
from typing import Any, Callable

import numpy as np

from fgrad.ops import callback as cb

__all__ = ["print", "callback"]



def callback(callback: Callable[..., Any] | None = None, *args: Any, ordered: bool = False,
             partitioned: bool = False, **kwargs: Any) -> Any:
    """``jax.debug.callback(callback, *args, ordered=False, partitioned=False, **kwargs)``: call
    ``callback(*args, **kwargs)`` for its effects (it returns nothing), eagerly or from inside
    a compiled program; array leaves arrive as NumPy arrays, other leaves (strings, None...)
    as they are. The two-call form ``callback(ordered=True)(fn, *args)`` works too."""
    if callback is None:
        if args or kwargs:
            raise TypeError(f"debug_callback received unexpected arguments in the two-call form: "
                            f"args={args} kwargs={kwargs}")
        return lambda fn, *a, **k: _debug_callback(fn, a, k, ordered)
    _debug_callback(callback, args, kwargs, ordered)
    return None


def _debug_callback(fn: Callable[..., Any], args: tuple, kwargs: dict, ordered: bool) -> None:
    if not callable(fn):
        raise TypeError(f"first argument to fgrad.debug.callback must be callable, but got an object "
                        f"of type {type(fn).__name__}")
    in_tree, static, arrays = cb.flatten_arguments(args, kwargs, static_others=True)
    cb.debug_callback_p.bind(*arrays, callback=cb.HostCallback(fn, in_tree, static), ordered=bool(ordered))


class _FormatChecker(string.Formatter):
    """Checks a format string against its arguments without formatting (JAX's errors)."""

    def format_field(self, value: Any, format_spec: str) -> str:
        return ""

    def check_unused_args(self, used_args, args, kwargs) -> None:
        unused = [a for i, a in enumerate(args) if i not in used_args]
        if unused:
            raise ValueError(f"Unused positional arguments to `fgrad.debug.print`: {unused}")
        unused_kw = [k for k in kwargs if k not in used_args]
        if unused_kw:
            raise ValueError(f"Unused keyword arguments to `fgrad.debug.print`: {unused_kw}. You may be "
                             "passing an f-string (i.e, `f\"{x}\"`) into `fgrad.debug.print` and instead "
                             "should pass in a regular string.")


def print(fmt: str | None = None, *args: Any, ordered: bool = False, partitioned: bool = False,  # noqa: A001
          skip_format_check: bool = False, **kwargs: Any) -> Any:
    """``jax.debug.print(fmt, *args, ordered=False, partitioned=False, **kwargs)``: print
    ``fmt.format(*args, **kwargs)`` with the arrays' values, where the program computes them
    (``fgrad.debug.print("x = {x}", x=x)``; not an f-string: formatting happens later). A
    format without placeholders prints its arguments after it, space-separated. NumPy's print
    options at the time of the call apply. The two-call form ``print(ordered=True)(fmt, ...)``
    works too."""
    if fmt is None:
        if args or kwargs:
            raise TypeError(f"debug_print received unexpected arguments in the two-call form: "
                            f"args={args} kwargs={kwargs}")
        return lambda f, *a, **k: _debug_print(f, a, k, ordered, skip_format_check)
    _debug_print(fmt, args, kwargs, ordered, skip_format_check)
    return None


def _debug_print(fmt: str, args: tuple, kwargs: dict, ordered: bool, skip_check: bool) -> None:
    if not isinstance(fmt, str):
        raise TypeError(f"fgrad.debug.print: fmt must be a format string, got {type(fmt).__name__}")
    if not skip_check:
        _FormatChecker().format(fmt, *args, **kwargs)
    has_placeholders = bool(fmt) and next(iter(string.Formatter().parse(fmt)))[1] is not None
    options = np.get_printoptions()

    def emit(*a: Any, **k: Any) -> None:
        with np.printoptions(**options):
            message = fmt.format(*a, **k) if has_placeholders else " ".join((fmt, *(str(x) for x in a)))
        sys.stdout.write(message + "\n")

    emit.__qualname__ = f"debug.print({fmt!r})"          # how jaxprs show the callback
    _debug_callback(emit, args, kwargs, ordered)
