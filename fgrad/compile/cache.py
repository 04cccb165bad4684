"""The one in-memory cache of compiled programs: bounded, least recently used out first.

Every compiled program (``jit``'s, a ``shard`` stage's, an eager GPU operation's) is kept
here under a key its caller chooses, with the objects the key refers to held alongside so an
``id`` in a key cannot be reused while the entry lives. Past ``config.executable_cache_size``
entries the least recently used one is dropped: its ``on_evict`` callbacks run (a jitted
function's fast path forgets its reference, so the program and its device constants can be
freed) and the next call compiles it again.
"""
from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Hashable

from fgrad.config import config


class ExecutableCache:
    """A thread-safe LRU map ``key -> executable`` bounded by ``maxsize`` (a callable, so the
    bound follows ``fgrad.config`` when it changes)."""

    def __init__(self, maxsize: Callable[[], int] = lambda: config.executable_cache_size):
        self._maxsize = maxsize
        self._entries: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0

    def get(self, key: Hashable) -> Any | None:
        """The executable stored under ``key`` (now the most recently used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def get_or_compile(self, key: Hashable, build: Callable[[], Any], keep_alive: Any = None,
                       on_evict: Callable[[], None] | None = None) -> Any:
        """The executable under ``key``, compiling it (``build()``) and storing it on a miss.
        ``keep_alive``: objects the key names by ``id`` (held while the entry lives);
        ``on_evict``: called when the entry is dropped."""
        found = self.get(key)
        if found is not None:
            if on_evict is not None:
                self.add_evict_callback(key, on_evict)
            return found
        executable = build()
        self.put(key, executable, keep_alive, on_evict)
        return executable

    def put(self, key: Hashable, executable: Any, keep_alive: Any = None,
            on_evict: Callable[[], None] | None = None) -> None:
        """Store ``executable`` under ``key``, dropping the least recently used entries past the bound."""
        callbacks = [] if on_evict is None else [on_evict]
        dropped = []
        with self._lock:
            self._entries[key] = (executable, keep_alive, callbacks)
            self._entries.move_to_end(key)
            while len(self._entries) > max(1, self._maxsize()):
                _, old = self._entries.popitem(last=False)
                self.evictions += 1
                dropped.append(old)
        _run_callbacks(dropped)

    def add_evict_callback(self, key: Hashable, on_evict: Callable[[], None]) -> None:
        """Also call ``on_evict`` when the entry under ``key`` is dropped."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry[2].append(on_evict)

    def programs(self, kind: str) -> list:
        """The executables stored under keys whose first element is ``kind`` (e.g. "program",
        "gpu-jit", "gpu-eager"), least recently used first."""
        with self._lock:
            return [entry[0] for key, entry in self._entries.items() if key[0] == kind]

    def discard(self, kind: str) -> None:
        """Drop every entry whose key starts with ``kind`` (running their callbacks)."""
        with self._lock:
            keys = [key for key in self._entries if key[0] == kind]
            dropped = [self._entries.pop(key) for key in keys]
        _run_callbacks(dropped)

    def clear(self) -> None:
        """Drop every entry (running their callbacks)."""
        with self._lock:
            dropped = list(self._entries.values())
            self._entries.clear()
        _run_callbacks(dropped)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries


def _run_callbacks(dropped: list) -> None:
    for _, _, callbacks in dropped:
        for callback in callbacks:
            callback()


#: The process's compiled programs (see the module doc).
executables = ExecutableCache()
