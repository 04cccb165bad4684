"""Compiling LLVM modules in the background, while the program that needs them already runs.

The CPU backend compiles a program's heaviest kernels twice when it tiers them
(``cpu.TIERED``): first with the quick pipeline, so the first call comes soon, then with
their final pipeline here, in a thread of this process that hands the text to a compile
worker process of its own (``llvm_worker.py``, as ``llvm_pool`` does). When a final build
is done, ``done(object_bytes)`` runs on that thread; the backend then points the programs'
kernel tables at it. Results do not change: a kernel's builds compute the same bits, they
only run at different speeds.

A fork's child starts with no background work: what its parent had queued stays quick in
the child (still correct). At exit the queued builds are finished (for up to 30 s), so that
the disk cache holds them and the next run starts warm.
"""
from __future__ import annotations

import atexit
import os
import queue
import sys
import threading
from typing import Callable

from fgrad.backends import llvm_pool
from fgrad.config import config
from fgrad.lower.llvm_base import Target


#: the longest a final build waits for the first call of the program that needs it
AFTER_WAIT_S = 5.0


class BackgroundCompiler:
    """One thread and one worker process that compile queued modules in order."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._worker: llvm_pool.Worker | None = None
        self._pending = 0
        self._idle = threading.Condition()
        self._closing = False
        self._exiting = False

    def submit(self, name: str, text: str, target: Target, pipeline: str,
               done: Callable[[bytes], None], after: threading.Event | None = None) -> None:
        """Compile ``text`` with ``pipeline`` and call ``done(object_bytes)`` on the background
        thread (never, if LLVM rejects it: the quick build then stays, and FGRAD_DEBUG says so).
        With ``after``, not before that event is set (the program's first call returned) or
        ``AFTER_WAIT_S`` have passed."""
        with self._idle:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fgrad-background-compile", daemon=True)
                self._thread.start()
                # registered now, after anything the first compile registered: it runs first at exit
                atexit.register(self.close)
        self._queue.put((name, text, target, pipeline, done, after))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every submitted module is compiled and handed over (True), or until
        ``timeout`` seconds have passed (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    @property
    def pending(self) -> int:
        """Modules submitted and not yet handed over."""
        return self._pending

    def close(self, timeout: float = 30.0) -> None:
        """At exit: finish the queued builds (so the disk cache holds them and the next run
        starts warm) for up to ``timeout`` seconds, then drop the rest and let the one being
        compiled finish (LLVM must not be compiling in a daemon thread while the interpreter
        shuts down)."""
        self._exiting = True              # queued builds stop waiting for first calls
        if self._pending and config.debug:
            print(f"[fgrad cpu] finishing {self._pending} background builds before exit", file=sys.stderr, flush=True)
        if not self.wait(timeout):
            self._closing = True
            self.wait(timeout)
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def _wait_for(self, after: threading.Event) -> None:
        """Wait until ``after`` is set, ``AFTER_WAIT_S`` have passed (then it is set, so the
        builds queued behind it wait no more) or the process exits."""
        waited = 0.0
        while not after.wait(0.05):
            waited += 0.05
            if self._exiting or waited >= AFTER_WAIT_S:
                after.set()

    def _run(self) -> None:
        while True:
            name, text, target, pipeline, done, after = self._queue.get()
            try:
                if after is not None:
                    self._wait_for(after)
                if not self._closing:
                    done(self._compile(name, text, target, pipeline))
            except Exception as error:  # the quick build stays in use; never fatal
                print(f"[fgrad cpu] background compile of {name} failed, its quick build stays: {error}",
                      file=sys.stderr, flush=True)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _compile(self, name: str, text: str, target: Target, pipeline: str) -> bytes:
        if self._worker is None and llvm_pool.worker_count():
            try:
                self._worker = llvm_pool.Worker()
            except OSError:
                self._worker = None
        if self._worker is not None:
            try:
                ok, value = self._worker.compile(0, text, target, pipeline)
            except OSError:
                self._worker = None
            else:
                if not ok:
                    raise llvm_pool.CompileError(f"LLVM rejected module {name}: {value}")
                return value
        return llvm_pool.compile_here(name, text, target, pipeline)


compiler = BackgroundCompiler()


def _reset_in_child() -> None:
    global compiler
    compiler = BackgroundCompiler()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
