"""The on-disk cache of compiled code the backends share (``FGRAD_CACHE_DIR``).

Entries are ``magic + sha256(data) + data`` files, written atomically (a temporary file,
then ``os.replace``); an entry whose checksum does not match is reported, removed and
rebuilt by the caller. ``FGRAD_CACHE_DIR`` names the root (default ``~/.cache/fgrad``);
``""``, ``0``, ``off``, ``none`` or ``false`` turn the cache off.

The cache is bounded: past ``fgrad.config.disk_cache_mib`` (``FGRAD_DISK_CACHE_MIB``, default
2048) for one kind, a write deletes that kind's least recently used entries (a read refreshes
an entry's modification time) until three quarters of the bound remain. Each kind's running
total is kept in a ``.size`` file beside its entries, so a write never lists the directory.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Callable

from fgrad.config import config


class DiskCache:
    """One backend's entries: files under ``<root>/<kind>`` starting with ``magic``."""

    def __init__(self, kind: str, magic: bytes, log: Callable[[int, str], None]):
        self.kind, self.magic, self.log = kind, magic, log

    def directory(self) -> Path | None:
        """Where entries go now (None: the cache is off)."""
        value = os.environ.get("FGRAD_CACHE_DIR")
        if value is not None and value.strip().lower() in ("", "0", "off", "none", "false"):
            return None
        root = Path(value).expanduser() if value else Path.home() / ".cache" / "fgrad"
        return root / self.kind

    def entry(self, key: str, suffix: str) -> Path | None:
        """Where the entry ``key`` lives now (None: the cache is off)."""
        directory = self.directory()
        return directory / f"{key}{suffix}" if directory else None

    def read(self, path: Path) -> bytes | None:
        """The entry's data, or None when it is missing or corrupt (a corrupt one is removed)."""
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        magic, head = self.magic, len(self.magic) + 32
        if blob[:len(magic)] == magic and hashlib.sha256(blob[head:]).digest() == blob[len(magic):head]:
            _touch(path)
            return blob[head:]
        self.log(1, f"disk cache entry {path.name} is corrupt; rebuilding it")
        try:
            path.unlink()
        except OSError:
            pass
        return None

    def write(self, path: Path | None, data: bytes) -> None:
        """Store ``data`` at ``path`` (a failure to write is logged, not raised); nothing when
        ``path`` is None (``entry``'s answer while the cache is off)."""
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
            tmp.write_bytes(self.magic + hashlib.sha256(data).digest() + data)
            os.replace(tmp, path)
        except OSError as e:
            self.log(1, f"could not write the disk cache ({e}); continuing without it")
            return
        self.account(path.parent, len(data) + len(self.magic) + 32)

    def account(self, directory: Path, added: int) -> None:
        """Add ``added`` bytes to the directory's running total (a small ``.size`` ledger, so a
        write never lists the directory), and past ``config.disk_cache_mib`` delete the least
        recently used entries down to three quarters of it. Processes writing at once may
        under-count a little; the next trim recounts from the files themselves."""
        ledger = directory / ".size"
        try:
            total = int(ledger.read_text()) + added
        except (OSError, ValueError):      # no ledger yet: count the files (the new one included)
            total = sum(size for _, size, _ in _entries(directory))
        limit = config.disk_cache_mib * 2**20
        if total > limit:
            total = self._trim(directory, limit)
        try:
            tmp = ledger.with_name(f".size.tmp{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(str(total))
            os.replace(tmp, ledger)
        except OSError:
            pass

    def _trim(self, directory: Path, limit: int) -> int:
        """Delete the least recently used entries until they hold at most ``limit * 3/4``;
        returns what they hold then."""
        entries = sorted(_entries(directory), key=lambda e: e[0])
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= limit * 3 // 4:
                break
            try:
                path.unlink()
                total -= size
            except OSError:
                pass
        self.log(1, f"disk cache {directory} trimmed to {total / 2**20:.1f} MiB "
                    f"(bound {config.disk_cache_mib} MiB, FGRAD_DISK_CACHE_MIB)")
        return total


def _entries(directory: Path) -> list[tuple[float, int, Path]]:
    """(modification time, size, path) of each entry (not the ledger, not a write in progress)."""
    found = []
    try:
        for e in os.scandir(directory):
            if e.is_file() and not e.name.startswith(".") and ".tmp" not in e.name:
                st = e.stat()
                found.append((st.st_mtime, st.st_size, Path(e.path)))
    except OSError:
        pass
    return found


def _touch(path: Path) -> None:
    """Mark an entry as just used (the bound deletes the least recently used first)."""
    try:
        os.utime(path)
    except OSError:
        pass
