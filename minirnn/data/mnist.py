"""MNIST from its four IDX files: find them, verify them, read them.

    (x_train, y_train), (x_test, y_test) = load_mnist()

    x_train: (60000, 28, 28) uint8, pixels 0..255, 0 is background
    y_train: (60000,)        uint8, digits 0..9
    x_test:  (10000, 28, 28) uint8
    y_test:  (10000,)        uint8

This is the same layout as ``keras.datasets.mnist.load_data()``. Labels stay uint8,
as in the files; cast them if a loss wants another integer type.

Where the files come from
-------------------------
A directory counts only if it holds all four files, each either gzip-compressed
(``train-images-idx3-ubyte.gz``) or not (``train-images-idx3-ubyte``). The first such
directory wins, in this order:

1. the ``root`` argument;
2. the directory named by the ``MINIRNN_DATA`` environment variable;
3. ``data/mnist/`` of the repository (bundled with the source tree);
4. the user cache, ``$XDG_CACHE_HOME/minirnn/mnist`` (default ``~/.cache/minirnn/mnist``).

If none qualifies, the missing files are downloaded from public mirrors into the user
cache. A download goes to a temporary file next to its final place, is decompressed
and checked against the SHA-256 below, flushed to disk, and only then renamed into
place; anything that fails is deleted and the next mirror is tried. Files that passed
the check are kept even if another file could not be fetched, so a later call only
fetches what is still missing.

Every file is checked against the SHA-256 of its *decompressed* bytes, whichever
directory it came from, so a truncated or altered file raises :class:`ChecksumError`
and no array is returned. When no directory has the files and no mirror can deliver
them, :class:`MNISTNotFoundError` (an ``OSError``) says where we looked and where to
put the files.

The IDX format (big-endian): a magic number whose third byte is the element type
(0x08 = unsigned byte) and whose fourth byte is the number of dimensions, then one
4-byte size per dimension, then the elements in row-major order. MNIST images have
magic 2051 (0x00000803: ubyte, 3 dimensions) and labels 2049 (0x00000801: ubyte, 1).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, MissingFileError

__all__ = [
    "ChecksumError",
    "IDXFormatError",
    "MNISTNotFoundError",
    "MNIST_FILES",
    "DEFAULT_MIRRORS",
    "load_mnist",
    "read_idx",
    "find_mnist_dir",
    "bundled_mnist_dir",
    "default_cache_dir",
]

# The decompressed size and SHA-256 of each canonical file, copied from the table in
# data/mnist/README.md (which records the provenance of the bundled copies). Hashing
# the decompressed bytes accepts any gzip wrapper, including the mirrors' own.
MNIST_FILES = {
    "train-images-idx3-ubyte": (
        47040016,
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    "train-labels-idx1-ubyte": (
        60008,
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    "t10k-images-idx3-ubyte": (
        7840016,
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    "t10k-labels-idx1-ubyte": (
        10008,
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
}

# Each mirror serves <base><name>.gz. They are tried in this order.
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

DOWNLOAD_TIMEOUT_SECONDS = 30

IMAGES_MAGIC = 2051  # 0x00000803
LABELS_MAGIC = 2049  # 0x00000801
_UBYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class ChecksumError(FileFormatError):
    """A file's decompressed bytes do not have the expected SHA-256 (a ``ValueError``)."""

    def __init__(self, path, expected, actual, detail=""):
        self.path, self.expected, self.actual = Path(path), expected, actual
        message = f"{path}: SHA-256 of the decompressed bytes is {actual}, expected {expected}"
        if detail:
            message += f" ({detail})"
        message += ". The file is truncated or altered; delete it and fetch it again."
        super().__init__(message)


class IDXFormatError(FileFormatError):
    """A file is not a well-formed IDX file of unsigned bytes (a ``ValueError``)."""


class MNISTNotFoundError(MissingFileError):
    """No directory holds the four MNIST files and no mirror could deliver them (a
    ``FileNotFoundError``). Its message is one line, as the command line prints it."""


# -- reading one IDX file ------------------------------------------------------------


def _read_decompressed(path, max_bytes=None):
    """All bytes of `path`, gunzipped if it starts with the gzip magic.

    Returns (data, problem): `problem` describes a broken gzip stream, in which case
    `data` holds what could be decompressed before the break. Reading stops after
    `max_bytes` + 1 bytes, so a bad file cannot fill the memory.
    """
    path = Path(path)
    with open(path, "rb") as raw:
        is_gzip = raw.read(2) == _GZIP_MAGIC
    data = bytearray()  # mutable, so the arrays built on it are writable
    try:
        with gzip.open(path, "rb") if is_gzip else open(path, "rb") as f:
            while max_bytes is None or len(data) <= max_bytes:
                chunk = f.read1(_CHUNK)  # read1 keeps what came before a break
                if not chunk:
                    break
                data += chunk
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        return data, f"the gzip stream is damaged: {exc}"
    return data, ""


def _parse_idx(data, path):
    """Turn the bytes of an IDX file of unsigned bytes into an array (no copy)."""
    if len(data) < 4:
        raise IDXFormatError(f"{path}: expected an IDX header, got only {len(data)} bytes")
    reserved, dtype_code, ndim = data[0:2], data[2], data[3]
    if reserved != b"\x00\x00" or dtype_code != _UBYTE or ndim == 0:
        magic = int.from_bytes(data[:4], "big")
        raise IDXFormatError(
            f"{path}: expected an IDX magic number 0x000008NN (unsigned bytes, NN "
            f"dimensions), e.g. {IMAGES_MAGIC} for images or {LABELS_MAGIC} for labels; "
            f"got {magic} (0x{magic:08x})"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IDXFormatError(
            f"{path}: expected a {header_size}-byte header for {ndim} dimensions, "
            f"got {len(data)} bytes in all"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    expected_size = header_size + int(np.prod(shape))
    if len(data) != expected_size:
        raise IDXFormatError(
            f"{path}: header says shape {shape}, which needs {expected_size} bytes; "
            f"the file has {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def read_idx(path, *, sha256=None, size=None):
    """Read one IDX file of unsigned bytes, gzip-compressed or not.

    path:   an IDX file; compression is recognised by its content, not its name.
    sha256: if given, the expected hex SHA-256 of the decompressed bytes; a mismatch
            raises ChecksumError before anything is parsed.
    size:   if given, the expected decompressed size in bytes; reading stops just past
            it, so an oversized file cannot exhaust the memory.
    returns: uint8 array with the shape in the header, e.g. (N, 28, 28) or (N,).
    """
    data, problem = _read_decompressed(path, max_bytes=size)
    if sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if problem or actual != sha256:
            detail = f"{len(data)} bytes" + (f", expected {size}" if size is not None else "")
            raise ChecksumError(path, sha256, actual, "; ".join(filter(None, [detail, problem])))
    elif problem:
        raise IDXFormatError(f"{path}: {problem}")
    return _parse_idx(data, path)


def _read_mnist_file(path, name):
    """Read and verify one of the four canonical files; check what it claims to be."""
    size, sha256 = MNIST_FILES[name]
    array = read_idx(path, sha256=sha256, size=size)
    # With the checksum right these cannot fail; they state what the file must hold.
    expected_magic, expected_shape = (
        (IMAGES_MAGIC, "(N, 28, 28)") if "images" in name else (LABELS_MAGIC, "(N,)")
    )
    magic = (_UBYTE << 8) | array.ndim
    if magic != expected_magic or ("images" in name and array.shape[1:] != (28, 28)):
        raise IDXFormatError(
            f"{path}: expected magic {expected_magic} and shape {expected_shape}, "
            f"got magic {magic} and shape {array.shape}"
        )
    return array


# -- where to look ---------------------------------------------------------------------


def bundled_mnist_dir():
    """The repository's data/mnist/ (minirnn/data/mnist.py -> repo root -> data/mnist)."""
    return Path(__file__).resolve().parents[2] / "data" / "mnist"


def default_cache_dir():
    """$XDG_CACHE_HOME/minirnn/mnist, or ~/.cache/minirnn/mnist.

    The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "minirnn" / "mnist"


def _file_in(directory, name):
    """The path of `name` in `directory`, uncompressed preferred, or None."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing_files(directory):
    return [name for name in MNIST_FILES if _file_in(directory, name) is None]


def _search_dirs(root, cache_dir):
    """The candidate directories in search order, as (path or None, why) pairs."""
    env = os.environ.get("MINIRNN_DATA", "")
    return [
        (Path(root).expanduser() if root is not None else None, "root argument"),
        (Path(env).expanduser() if env else None, "MINIRNN_DATA environment variable"),
        (bundled_mnist_dir(), "bundled with the repository"),
        (
            Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(),
            "user cache, where downloads go",
        ),
    ]


def find_mnist_dir(root=None, *, cache_dir=None):
    """The first directory in the search order that holds all four files, or None."""
    for directory, _ in _search_dirs(root, cache_dir):
        if directory is not None and not _missing_files(directory):
            return directory
    return None


def _describe_search(root, cache_dir):
    """Each candidate directory and what it lacks, on one line."""
    places = []
    for number, (directory, why) in enumerate(_search_dirs(root, cache_dir), start=1):
        if directory is None:
            places.append(f"{number}. ({why}: not given)")
        elif not directory.is_dir():
            places.append(f"{number}. {directory} ({why}; does not exist)")
        else:
            missing = ", ".join(_missing_files(directory))
            places.append(f"{number}. {directory} ({why}; missing {missing})")
    return "; ".join(places)


# -- downloading -----------------------------------------------------------------------


def _download_one(name, mirrors, cache_dir):
    """Fetch <name>.gz into cache_dir from the first mirror that serves a good copy.

    Returns a list of the failures met on the way; raises nothing itself. The file
    appears under its final name only after it was verified and synced.
    """
    size, sha256 = MNIST_FILES[name]
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + f"/{name}.gz"
        fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=f".{name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
                    shutil.copyfileobj(response, out, _CHUNK)
                out.flush()
                read_idx(tmp, sha256=sha256, size=size)  # raises if the copy is bad
                os.fsync(out.fileno())
            os.replace(tmp, cache_dir / f"{name}.gz")
            return []
        except (OSError, ValueError, EOFError, http.client.HTTPException) as exc:
            failures.append(f"{url}: {exc}")
        finally:
            tmp.unlink(missing_ok=True)  # already gone after a successful os.replace
    return failures


def _fsync_directory(directory):
    """Make renames inside `directory` durable, where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _download_missing(mirrors, cache_dir):
    """Download every file cache_dir lacks; returns the failures, empty on success."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Smallest first; stop at the first file no mirror has, since all four are needed
    # and, offline, every further attempt would only wait for its own time-out.
    for name in sorted(_missing_files(cache_dir), key=lambda name: MNIST_FILES[name][0]):
        failures = _download_one(name, mirrors, cache_dir)
        if _file_in(cache_dir, name) is None:
            return failures or [f"{name}.gz: no mirrors were given"]
    _fsync_directory(cache_dir)
    return []


# -- the loader ------------------------------------------------------------------------


def _download_or_explain(root, mirrors, cache_dir, download):
    """Return the cache directory once it holds all four files, or raise saying why not."""
    where = _describe_search(root, cache_dir)  # before downloading changes the cache
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if not download:
        reason = "downloading is switched off (download=False)"
    else:
        failures = _download_missing(DEFAULT_MIRRORS if mirrors is None else mirrors, cache)
        if not failures:
            return cache
        reason = "downloading failed: " + "; ".join(failures)
    # One line, so that the command line can print it as its one error line.
    raise MNISTNotFoundError(
        f"MNIST not found: looked for the four files {', '.join(MNIST_FILES)} "
        f"(each gzip-compressed with .gz, or not) in {where}; and {reason}. "
        f"Put the four files into one of these directories, for example "
        f"{bundled_mnist_dir()}, or into a directory of your choice and pass it as "
        f"load_mnist(root=...) (on the command line: --data DIR) or set MINIRNN_DATA "
        f"to it."
    )


def load_mnist(root=None, *, mirrors=None, cache_dir=None, download=True):
    """Load MNIST as ((x_train, y_train), (x_test, y_test)), verified.

    root:      a directory to look in first (see the module docstring for the order).
    mirrors:   base URLs to download from, each serving <base><file>.gz;
               defaults to DEFAULT_MIRRORS.
    cache_dir: where downloads go, and the last place searched;
               defaults to default_cache_dir().
    download:  if False, never touch the network.

    returns:
      x_train: (60000, 28, 28) uint8    y_train: (60000,) uint8
      x_test:  (10000, 28, 28) uint8    y_test:  (10000,) uint8
    raises:
      ChecksumError       a file is truncated or altered (names it, both hashes);
      MNISTNotFoundError  no directory has the files and downloading failed or was off.
    """
    directory = find_mnist_dir(root, cache_dir=cache_dir)
    if directory is None:
        directory = _download_or_explain(root, mirrors, cache_dir, download)
    # Smallest file first, so a damaged label file is reported before 47 MB are read.
    arrays = {
        name: _read_mnist_file(_file_in(directory, name), name)
        for name in sorted(MNIST_FILES, key=lambda name: MNIST_FILES[name][0])
    }
    for split in ("train", "t10k"):
        images = arrays[f"{split}-images-idx3-ubyte"]
        labels = arrays[f"{split}-labels-idx1-ubyte"]
        if len(images) != len(labels):  # impossible for verified files; cheap to state
            raise IDXFormatError(
                f"{directory}: {split} has {len(images)} images but {len(labels)} labels"
            )
    return (
        (arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"]),
        (arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"]),
    )
