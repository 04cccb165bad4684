"""The on-disk cache of compiled code the backends share (``FGRAD_CACHE_DIR``).

Entries are ``magic + sha256(data) + data`` files, written atomically (a temporary file,
then ``os.replace``); an entry whose checksum does not match is reported, removed and
rebuilt by the caller. ``FGRAD_CACHE_DIR`` names the root (default ``~/.cache/fgrad``);
``""``, ``0``, ``off``, ``none`` or ``false`` turn the cache off.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Callable


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

    def read(self, path: Path) -> bytes | None:
        """The entry's data, or None when it is missing or corrupt (a corrupt one is removed)."""
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        magic, head = self.magic, len(self.magic) + 32
        if blob[:len(magic)] == magic and hashlib.sha256(blob[head:]).digest() == blob[len(magic):head]:
            return blob[head:]
        self.log(1, f"disk cache entry {path.name} is corrupt; rebuilding it")
        try:
            path.unlink()
        except OSError:
            pass
        return None

    def write(self, path: Path, data: bytes) -> None:
        """Store ``data`` at ``path`` (a failure to write is logged, not raised)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
            tmp.write_bytes(self.magic + hashlib.sha256(data).digest() + data)
            os.replace(tmp, path)
        except OSError as e:
            self.log(1, f"could not write the disk cache ({e}); continuing without it")
