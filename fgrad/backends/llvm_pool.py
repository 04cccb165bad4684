"""Compile many LLVM modules at once: this process and a few worker processes share the jobs.

``compile_modules(jobs, target)`` takes an iterable of ``(name, ir_text, pipeline)``
(usually a generator that renders each module only when asked, so rendering in Python
overlaps with LLVM working in the workers) and returns ``{name: object_bytes}``. Each job
goes to whichever is free first: a worker process (``llvm_worker.py``, started on first
need and kept for the life of the process) or, once every job is rendered, this process.

Workers: ``FGRAD_COMPILE_WORKERS`` (default: the usable cores less one; ``0`` compiles
everything in this process). A worker that dies or cannot start is not fatal: its jobs
are compiled here instead, and it is not started again.
"""
from __future__ import annotations

import atexit
import os
import queue
import subprocess
import sys
import threading
from typing import Iterable

from fgrad.backends import llvm_worker
from fgrad.config import positive_int_env
from fgrad.lower.llvm_base import Target

_WORKER_FILE = os.path.abspath(llvm_worker.__file__)
# run the worker file without the script's folder on sys.path (it would shadow nothing today,
# but fgrad/backends is not a place to import from)
_BOOT = "import sys, runpy; sys.path.pop(0); runpy.run_path(sys.argv[1], run_name='__main__')"


class CompileError(RuntimeError):
    """LLVM rejected a module (a renderer bug): the message names the module and LLVM's error."""


def worker_count() -> int:
    """How many worker processes compile beside this one: ``FGRAD_COMPILE_WORKERS``, else the
    usable cores less one."""
    if os.environ.get("FGRAD_COMPILE_WORKERS", "").strip() == "0":
        return 0
    configured = positive_int_env("FGRAD_COMPILE_WORKERS")
    if configured is not None:
        return configured
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(cores - 1, 0)


class Worker:
    """One worker process and the pipe protocol of ``llvm_worker``."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", _BOOT, _WORKER_FILE],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def compile(self, job: int, text: str, target: Target, pipeline: str) -> tuple[bool, object]:
        """(True, object code) or (False, LLVM's error); OSError when the worker does not
        answer in the protocol (it died, or ``sys.executable`` is not a Python that runs it)."""
        try:
            llvm_worker.write_message(self.process.stdin,
                                      (job, text, target.triple, target.cpu, target.features, pipeline))
            reply = llvm_worker.read_message(self.process.stdout)
        except OSError:
            raise
        except Exception as error:  # a garbled reply: treated as a dead worker
            raise OSError(f"the compile worker's reply is not readable ({error})") from None
        if not (isinstance(reply, tuple) and len(reply) == 3 and reply[0] == job):
            raise OSError("the compile worker stopped")
        return reply[1], reply[2]

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()


_workers: list[Worker] = []
_started = False
_pool_lock = threading.Lock()


def _ensure_workers() -> list[Worker]:
    global _started
    with _pool_lock:
        if not _started:
            _started = True
            for _ in range(worker_count()):
                try:
                    _workers.append(Worker())
                except OSError:
                    break
            atexit.register(shutdown)
        return list(_workers)


def start_workers() -> None:
    """Start the worker processes now, if they are not running, without waiting for them: a
    compile that is about to lower a program calls it, so that the workers' start (a Python
    process importing llvmlite, ~0.1 s) overlaps the lowering instead of delaying their first job."""
    if worker_count():
        _ensure_workers()


def _forget_inherited_workers() -> None:
    """In a child made by fork: the parent's workers and pipes are the parent's, never ours
    (two processes writing requests to one worker would mix their messages)."""
    global _started, _pool_lock
    _workers.clear()
    _started = False
    _pool_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_workers)


def shutdown() -> None:
    """Stop the worker processes (they are started again on the next need)."""
    global _started
    with _pool_lock:
        for worker in _workers:
            worker.close()
        _workers.clear()
        _started = False


def compile_here(name: str, text: str, target: Target, pipeline: str) -> bytes:
    """Object code for one module, compiled in this process (``CompileError`` names it)."""
    try:
        return llvm_worker.optimise_to_object(text, target.triple, target.cpu, target.features, pipeline)
    except RuntimeError as error:
        raise CompileError(f"LLVM rejected module {name}: {error}") from None


def compile_modules(jobs: Iterable[tuple[str, str, str]], target: Target) -> dict[str, bytes]:
    """Object code for each ``(name, ir_text, pipeline)`` job, compiled by the workers and
    this process together; ``{name: object bytes}``."""
    pending: queue.Queue = queue.Queue()
    results: dict[str, bytes] = {}
    errors: list[Exception] = []
    workers = _ensure_workers() if worker_count() else []
    threads = [threading.Thread(target=_feed, args=(w, pending, results, errors, target), daemon=True)
               for w in workers]
    for thread in threads:
        thread.start()
    try:
        for job in jobs:
            pending.put(job)
        # every job is rendered: this process compiles what the workers have not taken yet
        while True:
            try:
                name, text, pipeline = pending.get_nowait()
            except queue.Empty:
                break
            results[name] = compile_here(name, text, target, pipeline)
    finally:
        for _ in threads:
            pending.put(None)
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return results


def _feed(worker: Worker, pending: queue.Queue, results: dict, errors: list, target: Target) -> None:
    """A worker's loop: take jobs until the stop marker; compile here if the worker fails."""
    alive = True
    while True:
        job = pending.get()
        if job is None:
            return
        name, text, pipeline = job
        try:
            if alive:
                ok, value = worker.compile(id(job), text, target, pipeline)
                if not ok:
                    raise CompileError(f"LLVM rejected module {name}: {value}")
                results[name] = value
                continue
        except OSError:
            alive = False
            _forget(worker)
        except CompileError as error:
            errors.append(error)
            continue
        try:
            results[name] = compile_here(name, text, target, pipeline)
        except CompileError as error:
            errors.append(error)


def _forget(worker: Worker) -> None:
    with _pool_lock:
        if worker in _workers:
            _workers.remove(worker)
    worker.close()
