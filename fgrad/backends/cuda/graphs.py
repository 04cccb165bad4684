"""CUDA graphs: the driver's stream-capture and graph-launch calls (ctypes), and replaying a
compiled program's launches as a graph (``GraphReplay``, a part of ``CudaExecutable``).

A straight-line plan (launches, and loops without an iteration counter; no scalar read back)
is captured into a CUDA graph the second time a call uses the same device pointers (inputs,
outputs, constants, arena), and replayed with one ``cuGraphLaunch`` from then on (up to
``GRAPH_CACHE_SIZE`` graphs per program). A graph bakes its kernels' pointers in, so it is
looked up by exactly those pointers; for them to recur in a training loop, a program asks the
allocator for the blocks its outputs (and copied-in inputs, and arena) had in its last two
calls. pycuda has no graph API: ``CudaGraphApi`` calls the driver API in ``libcuda.so.1``
through ctypes. ``FGRAD_CUDA_GRAPHS=0`` turns graphs off (plain launches; read at every call);
a failing capture falls back to plain launches and turns graphs off for that program (logged
at ``FGRAD_DEBUG=1``). A capture records everything queued on the device's stream, so a
program must not be called while another thread queues work on the same GPU.
"""
from __future__ import annotations

import ctypes
import sys
from collections import OrderedDict
from typing import Any, Callable

from fgrad.backends.cuda.util import CudaError, log as _log
from fgrad.config import _env_flag
from fgrad.lower.cuda import Launch, Repeat

CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1     # only this thread's unsafe calls break the capture
CU_STREAM_CAPTURE_STATUS_NONE = 0


class CudaGraphApi:
    """Stream capture and graph replay from the CUDA driver API, loaded with ctypes from
    ``libcuda.so.1`` (the library pycuda loaded: the same driver state and contexts).

    Handles (streams, graphs, executable graphs) are pointer-sized; every call's ``CUresult``
    is checked and a failure raises ``CudaError`` naming the call and the driver's message.
    """

    def __init__(self, path: str = "libcuda.so.1") -> None:
        lib = ctypes.CDLL(path)
        P, R = ctypes.c_void_p, ctypes.c_int

        def bind(name: str, *argtypes) -> Callable:
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = list(argtypes), R
            return fn
        self._get_error_string = bind("cuGetErrorString", R, ctypes.POINTER(ctypes.c_char_p))
        self._begin_capture = bind("cuStreamBeginCapture_v2", P, R)
        self._end_capture = bind("cuStreamEndCapture", P, ctypes.POINTER(P))
        self._is_capturing = bind("cuStreamIsCapturing", P, ctypes.POINTER(R))
        self._instantiate = bind("cuGraphInstantiateWithFlags", ctypes.POINTER(P), P, ctypes.c_ulonglong)
        self._launch = bind("cuGraphLaunch", P, P)
        self._exec_destroy = bind("cuGraphExecDestroy", P)
        self._graph_destroy = bind("cuGraphDestroy", P)
        self.path = path

    def _check(self, result: int, call: str) -> None:
        if result:
            text = ctypes.c_char_p()
            if self._get_error_string(result, ctypes.byref(text)) or not text.value:
                message = "unknown error"
            else:
                message = text.value.decode(errors="replace")
            raise CudaError(f"{call} failed: CUDA error {result}: {message}")

    def begin_capture(self, stream: int) -> None:
        """Start capturing the work queued on ``stream`` (nothing runs until the graph does)."""
        self._check(self._begin_capture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture_v2")

    def end_capture(self, stream: int) -> int:
        """End the capture on ``stream`` and instantiate it: the executable graph's handle.
        The stream is out of capture mode afterwards, also when this raises."""
        graph = ctypes.c_void_p()
        result = self._end_capture(stream, ctypes.byref(graph))
        try:
            self._check(result, "cuStreamEndCapture")
            if not graph.value:
                raise CudaError("cuStreamEndCapture returned no graph")
            executable = ctypes.c_void_p()
            self._check(self._instantiate(ctypes.byref(executable), graph, 0), "cuGraphInstantiateWithFlags")
            return executable.value
        finally:
            if graph.value:           # the executable graph does not need its template
                self._graph_destroy(graph)

    def abort_capture(self, stream: int) -> None:
        """End a capture whose work is not wanted (discard the graph); raises if the stream
        is still capturing afterwards."""
        graph = ctypes.c_void_p()
        self._end_capture(stream, ctypes.byref(graph))
        if graph.value:
            self._graph_destroy(graph)
        status = ctypes.c_int()
        self._check(self._is_capturing(stream, ctypes.byref(status)), "cuStreamIsCapturing")
        if status.value != CU_STREAM_CAPTURE_STATUS_NONE:
            raise CudaError(f"the stream is still capturing (status {status.value}) after cuStreamEndCapture")

    def launch(self, executable: int, stream: int) -> None:
        """Queue the executable graph on ``stream``."""
        self._check(self._launch(executable, stream), "cuGraphLaunch")

    def destroy(self, executable: int) -> None:
        """Free an executable graph (work already queued still runs)."""
        self._check(self._exec_destroy(executable), "cuGraphExecDestroy")


_graph_api: list = []


def graph_api() -> CudaGraphApi | None:
    """The driver's graph calls, or None when ``libcuda.so.1`` or one of the calls is missing
    (a driver older than CUDA 11.4); loaded once."""
    if not _graph_api:
        try:
            _graph_api.append(CudaGraphApi())
        except (OSError, AttributeError) as e:
            _log(1, f"CUDA graphs unavailable, jitted programs launch kernel by kernel: {e}")
            _graph_api.append(None)
    return _graph_api[0]


def graphs_enabled() -> bool:
    """Whether jitted programs may replay as CUDA graphs (``FGRAD_CUDA_GRAPHS``, default on;
    ``0``/``false``/``off`` turns them off). Read at every call."""
    return _env_flag("FGRAD_CUDA_GRAPHS", True)


# --- replaying a program's launches -------------------------------------------------------------

GRAPH_CACHE_SIZE = 8          # graphs kept per executable (least recently used evicted)
GRAPH_SEEN_SIZE = 16          # pointer tuples remembered, not yet captured, per executable
GRAPH_MIN_LAUNCHES = 2        # a single launch gains nothing from a graph
GRAPH_MAX_LAUNCHES = 10_000   # kernels in one graph (counted loops unrolled), at most
GRAPH_GIVE_UP = 16            # captures with fewer replays than that: graphs off for the program


def graph_launches(steps: tuple) -> int | None:
    """Graph nodes one call makes when ``steps`` are straight-line (``Launch``, and ``Repeat``
    unrolled: an indexed loop's counter is a device-to-device copy from the executable's
    table of iteration numbers, one more node per iteration), else None: a while loop or a
    branch reads a scalar back from the GPU, which a graph cannot."""
    total = 0
    for s in steps:
        if isinstance(s, Launch):
            total += 1
        elif isinstance(s, Repeat):
            body = graph_launches(s.body)
            if body is None:
                return None
            total += s.count * (body + (s.index is not None))
        else:
            return None
    return total



def run_steps(fns: list, ptrs: list) -> None:
    """Run a built launch plan (a list of step closures) on the call's pointers."""
    for fn in fns:
        fn(ptrs)


class GraphReplay:
    """The CUDA-graph half of ``CudaExecutable``: which calls replay a graph, capturing them,
    and the graphs' lifetime. The executable provides ``driver``, ``program`` and ``_steps``
    (the plan built into closures) and calls ``_init_graphs`` once they exist."""

    driver: Any
    program: Any
    _steps: list

    def _init_graphs(self, steps: tuple) -> None:
        kernels = graph_launches(steps)
        supports = getattr(self.driver, "supports_graphs", None)
        self._graphable = (kernels is not None and GRAPH_MIN_LAUNCHES <= kernels <= GRAPH_MAX_LAUNCHES
                           and supports is not None and supports())
        self._graphs: OrderedDict[tuple, Any] = OrderedDict()     # pointers -> graph, LRU order
        self._seen: OrderedDict[tuple, None] = OrderedDict()      # pointers run once, not captured
        self.graph_captures = 0
        self.graph_replays = 0

    def _run_as_graph(self, ptrs: list) -> None:
        """One call: replay the graph captured for exactly these pointers, else capture one
        if they were seen before, else plain launches (remembering the pointers)."""
        key = tuple(ptrs)
        graph = self._graphs.get(key)
        if graph is not None:
            if self._launch_graph(graph):
                self._graphs.move_to_end(key)
                self.graph_replays += 1
            else:
                run_steps(self._steps, ptrs)
            return
        if key not in self._seen:
            self._seen[key] = None
            if len(self._seen) > GRAPH_SEEN_SIZE:
                self._seen.popitem(last=False)
            run_steps(self._steps, ptrs)
            return
        del self._seen[key]
        if self.graph_captures >= GRAPH_GIVE_UP and self.graph_replays < self.graph_captures:
            self._graphs_failed(f"{self.graph_captures} graphs captured, {self.graph_replays} replayed: "
                                "the pointers of calls rarely recur (e.g. outputs kept alive)")
            run_steps(self._steps, ptrs)
            return
        graph = self._capture(ptrs)
        if graph is not None:
            self._graphs[key] = graph
            while len(self._graphs) > GRAPH_CACHE_SIZE:     # (in-flight graphs are freed when done)
                self._destroy_graph(self._graphs.popitem(last=False)[1])
        if graph is None or not self._launch_graph(graph):
            run_steps(self._steps, ptrs)      # nothing ran while capturing

    def _capture(self, ptrs: list) -> Any:
        """The launches of one call captured as a graph (not run), or None when capturing
        failed (then graphs are off for this executable; the stream captures no more)."""
        driver = self.driver
        try:
            driver.begin_capture()
        except Exception as e:
            self._graphs_failed(f"beginning a stream capture failed: {e}")
            return None
        try:
            run_steps(self._steps, ptrs)
        except BaseException as e:
            try:
                driver.abort_capture()
            except Exception as abort_error:
                raise CudaError(f"program {self.program.name}: a launch failed while capturing a CUDA graph "
                                f"({e}) and ending the capture failed too: {abort_error}") from e
            if not isinstance(e, Exception):
                raise
            self._graphs_failed(f"a launch failed while capturing: {e}")
            return None
        try:
            graph = driver.end_capture()
        except Exception as e:
            self._graphs_failed(f"ending the capture failed: {e}")
            return None
        self.graph_captures += 1
        _log(1, f"program {self.program.name}: captured CUDA graph {self.graph_captures} "
                f"({len(self._graphs) + 1} cached)")
        return graph

    def _launch_graph(self, graph: Any) -> bool:
        """Queue a cached ``graph``; False (graphs off for this executable, nothing queued)
        when the launch failed."""
        try:
            self.driver.launch_graph(graph)
            return True
        except Exception as e:
            self._graphs_failed(f"launching a graph failed: {e}")
            return False

    def _graphs_failed(self, why: str) -> None:
        _log(1, f"program {self.program.name}: CUDA graphs off for this program, plain launches from now on: {why}")
        self._graphable = False
        self._seen.clear()
        self._release_graphs()

    def _destroy_graph(self, graph: Any) -> None:
        try:
            self.driver.destroy_graph(graph)
        except Exception as e:
            _log(1, f"program {self.program.name}: destroying a CUDA graph failed: {e}")

    def _release_graphs(self) -> None:
        graphs = getattr(self, "_graphs", None)
        while graphs:
            self._destroy_graph(graphs.popitem()[1])

    def __del__(self) -> None:
        try:
            if not sys.is_finalizing():     # at exit the driver may be gone; the process ends anyway
                self._release_graphs()
        except Exception:
            pass
