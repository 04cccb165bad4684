"""What every part of the CUDA backend shares: its error type, its debug log and its lock."""
from __future__ import annotations

import sys
import threading

from fgrad.config import config

#: Guards the backend's process-wide tables (runtimes, compiled images, the driver class).
lock = threading.RLock()


class CudaError(RuntimeError):
    """The GPU, its driver or its compiler failed (the message says which step and why)."""


def log(level: int, message: str) -> None:
    """Print ``message`` to stderr when ``FGRAD_DEBUG`` is at least ``level``."""
    if config.debug >= level:
        print(f"[fgrad cuda] {message}", file=sys.stderr, flush=True)
