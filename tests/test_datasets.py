"""Tests for fgrad.datasets: the real MNIST files, the IDX parser, and every fallback path.

No test touches the network: an autouse fixture replaces the downloader with one that fails
the test, and points the cache at an empty temporary folder. Tests that exercise re-fetching
install a fake downloader that copies the real files and counts its calls.
"""
from __future__ import annotations

import gzip
import os
import shutil
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import fgrad
from fgrad import datasets
from fgrad.datasets import MNIST_FILES, DatasetUnavailableError, DatasetWarning, _read_verified, mnist

NAMES = list(MNIST_FILES)
SMALL = "t10k-labels-idx1-ubyte"  # the file the corruption tests spoil: 4.5 kB, fast to re-check
_real_download = datasets._download  # bound at import, before the autouse fixture replaces it


def _real_mnist_dir() -> Path | None:
    candidates = [os.environ.get("FGRAD_DATA_DIR"), Path(__file__).resolve().parents[2] / "shared" / "data",
                  "/work/shared/data"]
    for base in candidates:
        if base and all((Path(base) / "mnist" / f"{name}.gz").is_file() for name in NAMES):
            return (Path(base) / "mnist").resolve()
    return None


REAL = _real_mnist_dir()
needs_real = pytest.mark.skipif(
    REAL is None, reason="the real MNIST files are not present: set FGRAD_DATA_DIR to the folder "
                         "holding mnist/ (CI uses ../shared/data)")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network and an empty cache; FGRAD_DATA_DIR is left to each test."""
    def no_network(url, dest):
        pytest.fail(f"the test tried to download {url}")
    monkeypatch.setattr(datasets, "_download", no_network)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FGRAD_DATA_DIR", raising=False)


@pytest.fixture
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache" / "fgrad" / "mnist"


@pytest.fixture
def fake_mirror(monkeypatch):
    """A downloader that copies the real file named by the URL; ``fake_mirror.urls`` lists calls."""
    def copy_real(url, dest):
        copy_real.urls.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REAL / url.rsplit("/", 1)[1], dest)
    copy_real.urls = []
    monkeypatch.setattr(datasets, "_download", copy_real)
    return copy_real


def _user_dir(tmp_path, monkeypatch, spoil: dict[str, bytes] | None = None) -> Path:
    """A FGRAD_DATA_DIR whose mnist/ links to the real files except those in ``spoil`` (name -> bytes).

    Links keep these tests fast: the in-memory cache is keyed by the resolved path.
    """
    folder = tmp_path / "user" / "mnist"
    folder.mkdir(parents=True)
    for name in NAMES:
        if spoil and name in spoil:
            (folder / f"{name}.gz").write_bytes(spoil[name])
        else:
            (folder / f"{name}.gz").symlink_to(REAL / f"{name}.gz")
    monkeypatch.setenv("FGRAD_DATA_DIR", str(folder.parent))
    return folder


def _real_content(name: str) -> bytes:
    return gzip.decompress((REAL / f"{name}.gz").read_bytes())


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.lstat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _assert_is_real_mnist(data):
    x_train, y_train, x_test, y_test = data
    assert np.array_equal(y_test, np.frombuffer(_real_content("t10k-labels-idx1-ubyte"), np.uint8, offset=8))
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert x_train.shape == (60000, 1, 28, 28) and x_test.shape == (10000, 1, 28, 28)


# --- the real files ---------------------------------------------------------------------------

@needs_real
def test_real_mnist_shapes_dtypes_ranges_and_known_values(monkeypatch):
    monkeypatch.setenv("FGRAD_DATA_DIR", str(REAL.parent))
    x_train, y_train, x_test, y_test = mnist()
    assert x_train.shape == (60000, 1, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 1, 28, 28) and y_test.shape == (10000,)
    assert all(a.dtype == np.uint8 for a in (x_train, y_train, x_test, y_test))
    assert y_train.min() == 0 and y_train.max() == 9 and y_test.min() == 0 and y_test.max() == 9
    assert x_train.min() == 0 and x_train.max() == 255 and x_test.max() == 255
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    # Known class counts and the usual normalisation constants (mean 0.1307, std 0.3081).
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert abs(x_train.mean() / 255 - 0.1307) < 1e-4 and abs((x_train / 255).std() - 0.3081) < 1e-4
    # Pixels in the same order as the file: row-major 28x28 after a 16-byte header.
    raw = np.frombuffer(_real_content("t10k-images-idx3-ubyte"), np.uint8, offset=16)
    assert np.array_equal(x_test.reshape(-1), raw)


@needs_real
def test_repeated_calls_read_the_files_once_and_return_immutable_arrays(monkeypatch):
    monkeypatch.setenv("FGRAD_DATA_DIR", str(REAL.parent))
    first = mnist()
    hits = _read_verified.cache_info().hits
    second = mnist()
    assert _read_verified.cache_info().hits == hits + 4   # no file read again
    for a, b in zip(first, second):
        assert isinstance(a, fgrad.Array)
        assert np.array_equal(np.asarray(a), np.asarray(b))
        with pytest.raises(TypeError, match=r"\.at\["):
            a[(0,) * a.ndim] = 1
    assert np.array(first[1]).flags.writeable  # the documented way to get a writable NumPy copy


@needs_real
def test_data_dir_argument_overrides_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FGRAD_DATA_DIR", str(tmp_path / "nowhere"))
    _assert_is_real_mnist(mnist(data_dir=REAL.parent))
    _assert_is_real_mnist(mnist(data_dir=str(REAL.parent), download=False))


@needs_real
def test_uncompressed_copies_are_accepted(monkeypatch, tmp_path):
    folder = _user_dir(tmp_path, monkeypatch)
    (folder / f"{SMALL}.gz").unlink()
    (folder / SMALL).write_bytes(_real_content(SMALL))
    _assert_is_real_mnist(mnist(download=False))


# --- spoiled local copies are reported and re-fetched -----------------------------------------

def _truncated() -> bytes:
    gz = (REAL / f"{SMALL}.gz").read_bytes()
    return gz[: len(gz) // 2]


def _wrong_hash() -> bytes:
    content = bytearray(_real_content(SMALL))
    content[100] = (content[100] + 1) % 10  # still a valid label file, just not MNIST's
    return gzip.compress(bytes(content))


def _bad_header() -> bytes:
    content = bytearray(_real_content(SMALL))
    content[7] += 1  # the declared count no longer matches the data
    return gzip.compress(bytes(content))


SPOILED = [(_truncated, "truncated"), (_wrong_hash, "SHA-256"), (_bad_header, "malformed IDX")]


@needs_real
@pytest.mark.parametrize("make, problem", SPOILED, ids=["truncated", "wrong-hash", "bad-header"])
def test_spoiled_user_copy_is_reported_and_refetched_into_the_cache(
        make, problem, monkeypatch, tmp_path, cache_dir, fake_mirror):
    folder = _user_dir(tmp_path, monkeypatch, spoil={SMALL: make()})
    before = _snapshot(folder)
    with pytest.warns(DatasetWarning, match=rf"{SMALL}\.gz.*{problem}"):
        data = mnist()
    _assert_is_real_mnist(data)
    assert fake_mirror.urls == [datasets.MNIST_MIRRORS[0] + f"{SMALL}.gz"]
    assert (cache_dir / f"{SMALL}.gz").read_bytes() == (REAL / f"{SMALL}.gz").read_bytes()
    assert _snapshot(folder) == before  # the user's copy is never written, renamed or removed
    # The next call takes the cached copy: no second download.
    with pytest.warns(DatasetWarning, match=problem):
        _assert_is_real_mnist(mnist())
    assert len(fake_mirror.urls) == 1
    assert _snapshot(folder) == before


@needs_real
def test_spoiled_cache_copy_is_replaced(monkeypatch, tmp_path, cache_dir, fake_mirror):
    _user_dir(tmp_path, monkeypatch)
    monkeypatch.delenv("FGRAD_DATA_DIR")
    cache_dir.mkdir(parents=True)
    for name in NAMES:
        if name != SMALL:
            (cache_dir / f"{name}.gz").symlink_to(REAL / f"{name}.gz")
    (cache_dir / f"{SMALL}.gz").write_bytes(_truncated())
    with pytest.warns(DatasetWarning, match="truncated"):
        _assert_is_real_mnist(mnist())
    assert len(fake_mirror.urls) == 1
    assert (cache_dir / f"{SMALL}.gz").read_bytes() == (REAL / f"{SMALL}.gz").read_bytes()


@needs_real
def test_a_file_changed_on_disk_is_checked_again(monkeypatch, tmp_path):
    folder = _user_dir(tmp_path, monkeypatch, spoil={SMALL: (REAL / f"{SMALL}.gz").read_bytes()})
    _assert_is_real_mnist(mnist(download=False))
    (folder / f"{SMALL}.gz").write_bytes(_truncated())
    with pytest.warns(DatasetWarning, match="truncated"), pytest.raises(DatasetUnavailableError):
        mnist(download=False)


# --- downloads: mirrors, offline, the downloader itself ---------------------------------------

@needs_real
def test_empty_cache_downloads_all_four_files_once(tmp_path, cache_dir, fake_mirror):
    _assert_is_real_mnist(mnist())
    assert sorted(url.rsplit("/", 1)[1] for url in fake_mirror.urls) == sorted(f"{n}.gz" for n in NAMES)
    assert sorted(p.name for p in cache_dir.iterdir()) == sorted(f"{n}.gz" for n in NAMES)
    mnist()
    assert len(fake_mirror.urls) == 4


@needs_real
def test_falls_back_to_the_next_mirror(monkeypatch, tmp_path, fake_mirror):
    _user_dir(tmp_path, monkeypatch, spoil={SMALL: _truncated()})
    copy_real = datasets._download

    def first_mirror_down(url, dest):
        if url.startswith(datasets.MNIST_MIRRORS[0]):
            fake_mirror.urls.append(url)
            raise urllib.error.URLError("connection refused")
        copy_real(url, dest)
    monkeypatch.setattr(datasets, "_download", first_mirror_down)
    with pytest.warns(DatasetWarning, match="truncated"):
        _assert_is_real_mnist(mnist())
    assert [url.split("/")[2] for url in fake_mirror.urls] == [m.split("/")[2] for m in datasets.MNIST_MIRRORS]


@needs_real
def test_a_mirror_serving_garbage_is_reported_and_skipped(monkeypatch, tmp_path, cache_dir, fake_mirror):
    _user_dir(tmp_path, monkeypatch, spoil={SMALL: _truncated()})
    copy_real = datasets._download

    def first_mirror_serves_html(url, dest):
        if url.startswith(datasets.MNIST_MIRRORS[0]):
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(b"<html>Access denied</html>")
            return
        copy_real(url, dest)
    monkeypatch.setattr(datasets, "_download", first_mirror_serves_html)
    with pytest.warns(DatasetWarning) as record:
        _assert_is_real_mnist(mnist())
    messages = [str(w.message) for w in record]
    assert any("truncated" in m for m in messages)
    assert any(m.startswith(f"downloaded {datasets.MNIST_MIRRORS[0]}") and "not a valid gzip" in m
               for m in messages)


def _assert_names_the_fix(message: str):
    assert "FGRAD_DATA_DIR" in message and "mnist/" in message
    for name in NAMES:
        assert f"{name}.gz" in message


def test_offline_without_data_raises_a_clear_error(monkeypatch, tmp_path):
    calls = []

    def offline(url, dest):
        calls.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(datasets, "_download", offline)
    with pytest.raises(DatasetUnavailableError) as info:
        mnist()
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    _assert_names_the_fix(message)
    assert "name resolution" in message and "FGRAD_DATA_DIR is unset" in message
    assert len(calls) == len(datasets.MNIST_MIRRORS)  # every mirror tried once, then a clear stop


def test_offline_with_an_empty_data_dir_warns_about_the_layout(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "_download", _raise_offline)
    monkeypatch.setenv("FGRAD_DATA_DIR", str(tmp_path / "data"))
    with pytest.warns(DatasetWarning, match="mnist"), pytest.raises(DatasetUnavailableError) as info:
        mnist()
    _assert_names_the_fix(str(info.value))
    assert str(tmp_path / "data" / "mnist") in str(info.value)


def _raise_offline(url, dest):
    raise urllib.error.URLError("offline")


def test_download_false_never_downloads():
    with pytest.raises(DatasetUnavailableError, match="download=False") as info:
        mnist(download=False)  # the autouse fixture fails the test on any download
    _assert_names_the_fix(str(info.value))


@needs_real
def test_downloader_writes_atomically_from_a_file_url(tmp_path):
    source = REAL / f"{SMALL}.gz"
    dest = tmp_path / "new" / "folder" / f"{SMALL}.gz"
    _real_download(source.as_uri(), dest)
    assert dest.read_bytes() == source.read_bytes()
    assert os.listdir(dest.parent) == [dest.name]  # no temporary file left behind


def test_failed_download_leaves_no_file(tmp_path):
    dest = tmp_path / f"{SMALL}.gz"
    with pytest.raises(OSError):
        _real_download((tmp_path / "missing.gz").as_uri(), dest)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_keeps_the_old_file_and_no_temporary(monkeypatch, tmp_path):
    source = tmp_path / "source.gz"
    source.write_bytes(b"x" * 3_000_000)
    dest = tmp_path / "cache" / "file.gz"
    dest.parent.mkdir()
    dest.write_bytes(b"old")

    def fail_midway(response, out, label):
        out.write(response.read(1000))
        raise ConnectionResetError("connection reset")
    monkeypatch.setattr(datasets, "_copy_with_progress", fail_midway)
    with pytest.raises(ConnectionResetError):
        _real_download(source.as_uri(), dest)
    assert os.listdir(dest.parent) == ["file.gz"] and dest.read_bytes() == b"old"


# --- locations and argument checks ------------------------------------------------------------

def test_cache_dir_follows_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets._cache_dir() == tmp_path / "xdg" / "fgrad" / "mnist"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for unusable in ("", "relative/path"):
        monkeypatch.setenv("XDG_CACHE_HOME", unusable)
        assert datasets._cache_dir() == tmp_path / "home" / ".cache" / "fgrad" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert datasets._cache_dir() == tmp_path / "home" / ".cache" / "fgrad" / "mnist"


def test_bad_arguments_name_the_mistake():
    with pytest.raises(TypeError, match="data_dir"):
        mnist(data_dir=3)
    with pytest.raises(TypeError, match="download"):
        mnist(download="yes")


# --- the IDX parser ---------------------------------------------------------------------------

_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C,
          np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def _idx_bytes(array: np.ndarray) -> bytes:
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    header = bytes([0, 0, _CODES[big_endian.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + big_endian.tobytes()


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(st.sampled_from(["u1", "i1", "i2", "i4", "f4", "f8"]),
                  hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)))
def test_parse_idx_round_trips(array):
    parsed = datasets._parse_idx(_idx_bytes(array))
    assert parsed.shape == array.shape and parsed.dtype == array.dtype.newbyteorder("=")
    assert parsed.dtype.isnative and not parsed.flags.writeable
    np.testing.assert_array_equal(parsed, array)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays("u1", hnp.array_shapes(min_dims=1, max_dims=3, max_side=4)), st.integers(-3, 3))
def test_parse_idx_rejects_a_wrong_data_length(array, extra):
    content = _idx_bytes(array)
    content = content + b"\0" * extra if extra >= 0 else content[:extra]
    if extra == 0 or len(content) < 4 + 4 * array.ndim:
        return
    with pytest.raises(datasets._BadFile, match="malformed IDX"):
        datasets._parse_idx(content)


@pytest.mark.parametrize("content, problem", [
    (b"", "fewer than the 4-byte magic"),
    (b"\x1f\x8b\x08\x00", "magic number 0x1f8b0800"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x00", "type code"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x01", "3 dimensions need 16 header bytes"),
])
def test_parse_idx_rejects_malformed_headers(content, problem):
    with pytest.raises(datasets._BadFile, match=problem):
        datasets._parse_idx(content)
