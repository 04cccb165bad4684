"""Data sets: ``mnist()`` returns MNIST as uint8 arrays, each file checked by SHA-256.

    >>> from fgrad.datasets import mnist
    >>> X_train, Y_train, X_test, Y_test = mnist()
    >>> X_train.shape, X_train.dtype, Y_train[:5].tolist()
    ((60000, 1, 28, 28), dtype('uint8'), [5, 0, 4, 1, 9])

Each of the four MNIST files is taken from the first of these that holds a valid copy:

1. ``$FGRAD_DATA_DIR/mnist/`` (or ``data_dir/mnist/``): the user's copy, only ever read;
2. the cache, ``$XDG_CACHE_HOME/fgrad/mnist/`` or ``~/.cache/fgrad/mnist/``;
3. a download from a public mirror into the cache (a temporary file, renamed when complete).

A copy is valid when its gzip stream is complete, its IDX header is well formed and the
SHA-256 of its decompressed content is the known one. An invalid copy is reported with a
``DatasetWarning`` naming the file and the problem, and never used. With no valid copy and
no download, ``DatasetUnavailableError`` says where to put the files.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.client
import math
import os
import struct
import tempfile
import urllib.request
import warnings
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tqdm import tqdm

from fgrad import numpy as fnp

__all__ = ["mnist", "DatasetUnavailableError", "DatasetWarning", "MNIST_FILES", "MNIST_MIRRORS"]

# Hashes of the decompressed content: re-compressing a .gz changes its bytes, not its content.
MNIST_FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
_DOWNLOAD_TIMEOUT_S = 30
_CHUNK_BYTES = 1 << 20

# IDX type codes; multi-byte values are big-endian in the file.
_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetUnavailableError(RuntimeError):
    """No valid local copy of a data set file exists and it could not be downloaded."""


class DatasetWarning(UserWarning):
    """A local or downloaded data set file was unusable (truncated, malformed, wrong hash)."""


class _BadFile(Exception):
    """A file that must not be used; the message says why."""


class _Checked(NamedTuple):
    array: np.ndarray | None
    problem: str | None


def mnist(data_dir: str | os.PathLike | None = None, download: bool = True):
    """Return MNIST as ``(X_train, Y_train, X_test, Y_test)``.

    ``X_train`` is uint8 of shape (60000, 1, 28, 28), ``Y_train`` uint8 (60000,), ``X_test``
    (10000, 1, 28, 28), ``Y_test`` (10000,); pixels are 0..255 and labels 0..9.

    ``data_dir`` replaces ``$FGRAD_DATA_DIR``: the folder that holds ``mnist/``. With
    ``download=False`` a missing file raises instead of being fetched.

    The files are read and verified once per process (repeated calls are cheap); the results
    are immutable fgrad Arrays on the default device; ``np.array(x)`` gives a writable NumPy copy.

        >>> X_train, Y_train, X_test, Y_test = mnist()
        >>> x = X_train[:128].astype(np.float32) / 255.0
    """
    user_dir = _user_mnist_dir(data_dir)
    if not isinstance(download, bool):
        raise TypeError(f"mnist(download=...) takes True or False, got {download!r}")
    cache_dir = _cache_dir()
    problems = _layout_problems(user_dir, cache_dir)
    try:
        arrays = [_find_or_fetch(name, user_dir, cache_dir, download, problems)
                  for name in MNIST_FILES]
    finally:
        for problem in problems:
            warnings.warn(problem, DatasetWarning, stacklevel=2)
    train_images, train_labels, test_images, test_labels = arrays
    return (_to_array(_with_channel_axis(train_images)), _to_array(train_labels),
            _to_array(_with_channel_axis(test_images)), _to_array(test_labels))


def _with_channel_axis(images: np.ndarray) -> np.ndarray:
    return images.reshape(images.shape[0], 1, *images.shape[1:])


def _user_mnist_dir(data_dir: str | os.PathLike | None) -> Path | None:
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"mnist(data_dir=...) takes a path (the folder holding mnist/) or None, "
                        f"got {type(data_dir).__name__}")
    base = data_dir if data_dir is not None else os.environ.get("FGRAD_DATA_DIR") or None
    return None if base is None else Path(base).expanduser() / "mnist"


def _layout_problems(user_dir: Path | None, cache_dir: Path) -> list[str]:
    # A FGRAD_DATA_DIR without mnist/ is most likely a mistake, e.g. pointing at mnist/ itself.
    if user_dir is None or user_dir.is_dir():
        return []
    return [f"{user_dir} is not a folder, so MNIST is looked for in {cache_dir}; FGRAD_DATA_DIR "
            f"(or data_dir) should name the folder that holds mnist/"]


def _cache_dir() -> Path:
    # XDG says a relative XDG_CACHE_HOME is invalid and must be ignored.
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return root / "fgrad" / "mnist"


def _find_or_fetch(name: str, user_dir: Path | None, cache_dir: Path, download: bool,
                   problems: list[str]) -> np.ndarray:
    """The verified content of MNIST file ``name``: local copies first, then a download."""
    for folder in (user_dir, cache_dir):
        if folder is not None:
            array = _first_valid_copy(folder, name, problems)
            if array is not None:
                return array
    if not download:
        raise DatasetUnavailableError(_unavailable_message(
            name, user_dir, cache_dir, "no valid local copy, and download=False"))
    return _fetch(name, user_dir, cache_dir, problems)


def _first_valid_copy(folder: Path, name: str, problems: list[str]) -> np.ndarray | None:
    # The uncompressed name is accepted too, as other tools (torchvision) leave it beside the .gz.
    for path in (folder / f"{name}.gz", folder / name):
        if path.is_file():
            checked = _check_file(path, name)
            if checked.problem is None:
                return checked.array
            problems.append(f"not using {path}: {checked.problem}")
    return None


def _fetch(name: str, user_dir: Path | None, cache_dir: Path, problems: list[str]) -> np.ndarray:
    """Download ``name`` into the cache from the first mirror that serves a valid copy."""
    dest = cache_dir / f"{name}.gz"
    failures = []
    for mirror in MNIST_MIRRORS:
        url = mirror + dest.name
        try:
            _download(url, dest)
        except (OSError, http.client.HTTPException, ValueError) as error:
            failures.append(f"{url}: {error}")
            continue
        checked = _check_file(dest, name)
        if checked.problem is None:
            return checked.array
        dest.unlink(missing_ok=True)  # the cache is ours; a bad copy there would only be re-checked
        problems.append(f"downloaded {url} is unusable: {checked.problem}")
        failures.append(f"{url}: {checked.problem}")
    reason = "no valid local copy, and the download failed:\n    " + "\n    ".join(failures)
    raise DatasetUnavailableError(_unavailable_message(name, user_dir, cache_dir, reason))


def _unavailable_message(name: str, user_dir: Path | None, cache_dir: Path, reason: str) -> str:
    listing = "\n".join(f"      {file}.gz" for file in MNIST_FILES)
    where = f"{user_dir} and {cache_dir}" if user_dir is not None else f"{cache_dir} (FGRAD_DATA_DIR is unset)"
    return (f"MNIST file {name}.gz is unavailable: {reason}\n"
            f"Searched {where}.\n"
            f"To use MNIST offline, get the four files (e.g. from {MNIST_MIRRORS[0]}) and lay them out as\n"
            f"  <folder>/\n    mnist/\n{listing}\n"
            f"then set FGRAD_DATA_DIR=<folder> (or call mnist(data_dir=<folder>)).")


def _check_file(path: Path, name: str) -> _Checked:
    """Read and verify ``path``; the result is cached per resolved path and modification."""
    stat = path.stat()
    return _read_verified(str(path.resolve()), path.suffix == ".gz", MNIST_FILES[name],
                          stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _read_verified(resolved: str, compressed: bool, sha256: str, mtime_ns: int, size: int) -> _Checked:
    # mtime_ns and size are only key parts: a file changed on disk is read again.
    try:
        content = _read_content(Path(resolved), compressed)
        array = _parse_idx(content)
    except _BadFile as error:
        return _Checked(None, str(error))
    digest = hashlib.sha256(content).hexdigest()
    if digest != sha256:
        return _Checked(None, f"wrong SHA-256 of its content ({digest}, expected {sha256}): "
                              f"a corrupted or different file")
    return _Checked(array, None)


def _read_content(path: Path, compressed: bool) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise _BadFile(f"cannot be read ({error})") from error
    if not compressed:
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as error:
        raise _BadFile("truncated gzip file (the compressed stream ends early)") from error
    except (OSError, zlib.error) as error:
        raise _BadFile(f"not a valid gzip file ({error})") from error


def _parse_idx(content: bytes) -> np.ndarray:
    """Parse an IDX file: a 4-byte magic (0, 0, type code, ndim), ndim big-endian uint32 dims, data.

    The result is read-only and in native byte order.
    """
    if len(content) < 4:
        raise _BadFile(f"malformed IDX header: {len(content)} bytes, fewer than the 4-byte magic number")
    magic = content[:4]
    if magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES:
        raise _BadFile(f"malformed IDX header: magic number 0x{magic.hex()} is not 0x0000TTNN "
                       f"with a type code TT in {{{', '.join(f'{c:02x}' for c in _IDX_DTYPES)}}}")
    dtype, ndim = np.dtype(_IDX_DTYPES[magic[2]]), magic[3]
    header_bytes = 4 + 4 * ndim
    if len(content) < header_bytes:
        raise _BadFile(f"malformed IDX header: {ndim} dimensions need {header_bytes} header bytes, "
                       f"the file has {len(content)}")
    shape = struct.unpack(f">{ndim}I", content[4:header_bytes])
    count = math.prod(shape)
    data_bytes = len(content) - header_bytes
    if data_bytes != count * dtype.itemsize:
        raise _BadFile(f"malformed IDX file: the header declares shape {shape} of {dtype.name} "
                       f"({count * dtype.itemsize} bytes) but {data_bytes} data bytes follow")
    array = np.frombuffer(content, dtype, count=count, offset=header_bytes).reshape(shape)
    array = array.astype(dtype.newbyteorder("="), copy=False)
    array.flags.writeable = False
    return array


def _download(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` atomically: into a temporary file beside it, then renamed.

    Readers thus see either no file or a complete one, even with concurrent downloads.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "fgrad"})
    with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                _copy_with_progress(response, out, dest.name)
            os.replace(temp_name, dest)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise


def _copy_with_progress(response, out, label: str) -> None:
    total = int(response.headers.get("Content-Length") or 0) or None
    received = 0
    # disable=None: a bar on a terminal, silence in logs and CI.
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
              disable=None) as bar:
        while chunk := response.read(_CHUNK_BYTES):
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if total is not None and received != total:
        raise OSError(f"download ended after {received} of {total} bytes")


# The one place where NumPy arrays become what mnist() returns: fgrad Arrays on the
# default device.
def _to_array(x: np.ndarray) -> Any:
    return fnp.asarray(x)
