"""Tests for minirnn.data: MNIST files, downloads, Kaggle CSV, sequence views, sine/cos.

No test touches the internet: downloads go to an http.server on 127.0.0.1, and the
default mirrors are replaced by a closed local port for every test.
"""

import gzip
import hashlib
import http.server
import socket
import threading

import numpy as np
import pytest

import minirnn.data.mnist as mnist_module
from minirnn.data import (
    MNIST_FILES,
    VIEWS,
    ChecksumError,
    IDXFormatError,
    MNISTNotFoundError,
    as_sequences,
    bundled_mnist_dir,
    default_cache_dir,
    find_mnist_dir,
    load_kaggle_csv,
    load_mnist,
    permuted_pixel_view,
    pixel_permutation,
    pixel_view,
    read_idx,
    row_view,
    sine_cos_dataset,
    train_val_split,
)

BUNDLED = bundled_mnist_dir()
SMALL = "t10k-labels-idx1-ubyte"  # 10 KB: the file we damage, read first by the loader


def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens, so connecting fails at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real mirrors, no MINIRNN_DATA from the caller, a private user cache."""
    monkeypatch.setattr(mnist_module, "DEFAULT_MIRRORS", (closed_port_url(),))
    monkeypatch.delenv("MINIRNN_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    """The full data set, loaded once, through the default search (finds the bundle)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MINIRNN_DATA", raising=False)
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        return load_mnist(download=False)


def decompressed(name):
    return gzip.decompress((BUNDLED / f"{name}.gz").read_bytes())


def mnist_dir(path, damaged=None):
    """A directory holding the bundled files (as symlinks), SMALL replaced by `damaged`."""
    path.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        if name == SMALL and damaged is not None:
            (path / damaged[0]).write_bytes(damaged[1])
        else:
            (path / f"{name}.gz").symlink_to(BUNDLED / f"{name}.gz")
    return path


def empty_files_dir(path, names=tuple(MNIST_FILES)):
    """A directory with placeholder files: enough for the search, not for loading."""
    path.mkdir(parents=True, exist_ok=True)
    for name in names:
        (path / name).touch()
    return path


# -- the bundled data --------------------------------------------------------------------


def test_shapes_and_dtypes(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    for array in (x_train, y_train, x_test, y_test):
        assert array.dtype == np.uint8
    assert x_train.min() == 0 and x_train.max() == 255


def test_label_counts_and_first_labels_match_readme(mnist):
    (_, y_train), (_, y_test) = mnist
    train_counts = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(y_train, minlength=10).tolist() == train_counts
    assert np.bincount(y_test, minlength=10).tolist() == test_counts
    assert y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert y_test[:5].tolist() == [7, 2, 1, 0, 4]


def test_uncompressed_files_load_the_same(tmp_path, mnist):
    for name in MNIST_FILES:
        (tmp_path / name).write_bytes(decompressed(name))
    (x_train, y_train), (x_test, y_test) = load_mnist(tmp_path, download=False)
    (ex_train, ey_train), (ex_test, ey_test) = mnist
    assert np.array_equal(x_train, ex_train) and np.array_equal(y_train, ey_train)
    assert np.array_equal(x_test, ex_test) and np.array_equal(y_test, ey_test)


# -- IDX parsing ---------------------------------------------------------------------------


def idx_bytes(array, magic=None):
    magic = (0x08 << 8 | array.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_plain_and_gzip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "plain").write_bytes(idx_bytes(array))
    (tmp_path / "packed").write_bytes(gzip.compress(idx_bytes(array)))  # no .gz suffix
    for name in ("plain", "packed"):
        got = read_idx(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
        assert np.array_equal(got, array)


@pytest.mark.parametrize(
    "content, words",
    [
        (idx_bytes(np.zeros((2, 2), np.uint8), magic=0x0D02), ["magic", "3330"]),  # float
        (idx_bytes(np.zeros((2, 2), np.uint8))[:-1], ["(2, 2)", "16 bytes", "has 15"]),
        (idx_bytes(np.zeros((2, 2), np.uint8)) + b"x", ["(2, 2)", "16 bytes", "has 17"]),
        (b"\x00\x00\x08\x03\x00\x00", ["16-byte header", "6 bytes"]),
    ],
    ids=["float-magic", "short", "long", "cut-header"],
)
def test_read_idx_rejects_bad_headers(tmp_path, content, words):
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(IDXFormatError) as error:
        read_idx(tmp_path / "bad")
    for word in words:
        assert word in str(error.value)


# -- checksums -----------------------------------------------------------------------------


def damaged_variants():
    good = decompressed(SMALL)
    altered = bytearray(good)
    altered[8] = (altered[8] + 1) % 10  # change the first label: still a valid IDX file
    packed = gzip.compress(good)
    return {
        "truncated plain": (SMALL, good[:-100]),
        "altered plain": (SMALL, bytes(altered)),
        "altered, recompressed": (f"{SMALL}.gz", gzip.compress(bytes(altered))),
        "truncated gzip": (f"{SMALL}.gz", packed[: len(packed) // 2]),
    }


@pytest.mark.parametrize("variant", list(damaged_variants()))
def test_damaged_file_raises_checksum_error(tmp_path, variant):
    filename, content = damaged_variants()[variant]
    directory = mnist_dir(tmp_path / "data", damaged=(filename, content))
    with pytest.raises(ChecksumError) as error:
        load_mnist(directory, download=False)
    expected = MNIST_FILES[SMALL][1]
    message = str(error.value)
    assert str(directory / filename) in message
    assert error.value.expected == expected and expected in message
    assert len(error.value.actual) == 64 and error.value.actual != expected
    assert error.value.actual in message
    if variant == "truncated gzip":
        assert "gzip stream is damaged" in message  # no full content exists to hash
    else:
        plain = gzip.decompress(content) if filename.endswith(".gz") else content
        assert error.value.actual == hashlib.sha256(plain).hexdigest()


def test_bundled_files_match_the_hard_coded_hashes():
    for name, (size, sha256) in MNIST_FILES.items():
        content = decompressed(name)
        assert len(content) == size
        assert hashlib.sha256(content).hexdigest() == sha256


# -- search order ----------------------------------------------------------------------------


def test_search_order(tmp_path, monkeypatch):
    root = empty_files_dir(tmp_path / "root")
    env = empty_files_dir(tmp_path / "env")
    cache = empty_files_dir(tmp_path / "cache")
    monkeypatch.setenv("MINIRNN_DATA", str(env))
    assert find_mnist_dir(root, cache_dir=cache) == root
    assert find_mnist_dir(None, cache_dir=cache) == env
    monkeypatch.delenv("MINIRNN_DATA")
    assert find_mnist_dir(None, cache_dir=cache) == BUNDLED
    monkeypatch.setattr(mnist_module, "bundled_mnist_dir", lambda: tmp_path / "nowhere")
    assert find_mnist_dir(None, cache_dir=cache) == cache


def test_directory_counts_only_with_all_four_files(tmp_path, monkeypatch):
    names = list(MNIST_FILES)
    root = empty_files_dir(tmp_path / "root", names[:3])
    (root / f"{names[3]}.gz").touch()  # compressed and plain may be mixed
    partial = empty_files_dir(tmp_path / "partial", names[:3])
    monkeypatch.setenv("MINIRNN_DATA", str(partial))
    monkeypatch.setattr(mnist_module, "bundled_mnist_dir", lambda: tmp_path / "nowhere")
    assert find_mnist_dir(root) == root
    assert find_mnist_dir(None, cache_dir=tmp_path / "cache") is None


def test_loader_follows_the_search_order(tmp_path, monkeypatch):
    # A damaged file shows which directory the loader picked, without reading 47 MB.
    bad = (SMALL, b"not the labels")
    root = mnist_dir(tmp_path / "root", damaged=bad)
    env = mnist_dir(tmp_path / "env", damaged=bad)
    monkeypatch.setenv("MINIRNN_DATA", str(env))
    with pytest.raises(ChecksumError, match=str(root)):
        load_mnist(root, download=False)
    with pytest.raises(ChecksumError, match=str(env)):
        load_mnist(download=False)


def test_default_cache_dir_honours_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "minirnn" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "minirnn" / "mnist"


# -- downloading from a local server ----------------------------------------------------------


@pytest.fixture
def serve():
    """serve(directory) -> (base URL, list of requested paths); stopped after the test."""
    running = []

    def start(directory):
        requested = []

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(directory), **kwargs)

            def do_GET(self):
                requested.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}/mnist/", requested

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def no_bundle(tmp_path, monkeypatch):
    """Hide the repository's data/mnist so that the loader has to download."""
    monkeypatch.setattr(mnist_module, "bundled_mnist_dir", lambda: tmp_path / "no-bundle")


def files_in(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_download_skips_bad_mirrors_and_fills_the_cache(tmp_path, serve, no_bundle, mnist):
    good_url, _ = serve(mnist_dir(tmp_path / "good" / "mnist").parent)
    corrupt = tmp_path / "corrupt" / "mnist"
    corrupt.mkdir(parents=True)
    (corrupt / f"{SMALL}.gz").write_bytes(gzip.compress(b"wrong content"))
    corrupt_url, corrupt_requests = serve(corrupt.parent)
    cache = tmp_path / "cache"

    mirrors = [closed_port_url(), corrupt_url, good_url]
    (x_train, y_train), (x_test, y_test) = load_mnist(mirrors=mirrors, cache_dir=cache)

    assert f"/mnist/{SMALL}.gz" in corrupt_requests  # the bad copy was fetched, then refused
    assert files_in(cache) == sorted(f"{name}.gz" for name in MNIST_FILES)  # no temp files
    for name in MNIST_FILES:
        assert hashlib.sha256(decompressed(name)).hexdigest() == MNIST_FILES[name][1]
        assert gzip.decompress((cache / f"{name}.gz").read_bytes()) == decompressed(name)
    (ex_train, ey_train), (ex_test, ey_test) = mnist
    assert np.array_equal(x_train, ex_train) and np.array_equal(y_test, ey_test)
    assert find_mnist_dir(cache_dir=cache) == cache  # the next call needs no network


def test_corrupt_mirror_leaves_nothing_in_the_cache(tmp_path, serve, no_bundle):
    corrupt = tmp_path / "corrupt" / "mnist"
    corrupt.mkdir(parents=True)
    truncated = (BUNDLED / f"{SMALL}.gz").read_bytes()[:-50]
    (corrupt / f"{SMALL}.gz").write_bytes(truncated)  # the smallest file, fetched first
    url, requests = serve(corrupt.parent)
    cache = tmp_path / "cache"
    with pytest.raises(MNISTNotFoundError) as error:
        load_mnist(mirrors=[url], cache_dir=cache)
    assert requests == [f"/mnist/{SMALL}.gz"]  # fetched, refused, and no point going on
    assert files_in(cache) == []  # neither the bad file nor its temporary copy
    message = str(error.value)
    assert f"{url}{SMALL}.gz" in message and MNIST_FILES[SMALL][1] in message


def test_offline_message_says_where_to_put_the_files(tmp_path, monkeypatch, no_bundle):
    root = tmp_path / "my-root"
    env = empty_files_dir(tmp_path / "my-env", list(MNIST_FILES)[:1])
    monkeypatch.setenv("MINIRNN_DATA", str(env))
    cache = tmp_path / "cache"
    with pytest.raises(MNISTNotFoundError) as error:
        load_mnist(root, mirrors=[closed_port_url(), closed_port_url()], cache_dir=cache)
    assert isinstance(error.value, OSError)
    message = str(error.value)
    for expected in [
        str(root),
        str(env),
        str(tmp_path / "no-bundle"),
        str(cache),
        "MINIRNN_DATA",
        "root=",
        "127.0.0.1",
        *MNIST_FILES,
    ]:
        assert expected in message
    assert files_in(cache) == []


def test_no_download_when_switched_off(tmp_path, serve, no_bundle):
    url, requests = serve(mnist_dir(tmp_path / "good" / "mnist").parent)
    with pytest.raises(MNISTNotFoundError, match="download=False"):
        load_mnist(mirrors=[url], cache_dir=tmp_path / "cache", download=False)
    assert requests == []


# -- Kaggle CSV --------------------------------------------------------------------------------


def write_csv(path, header, rows):
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


PIXELS = [f"pixel{k}" for k in range(784)]


def test_kaggle_train_and_test_csv(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(3, 784))
    labels = [7, 0, 9]
    train = write_csv(
        tmp_path / "train.csv",
        ["label"] + PIXELS,
        [[label, *row] for label, row in zip(labels, images)],
    )
    x, y = load_kaggle_csv(train)
    assert x.shape == (3, 28, 28) and x.dtype == np.uint8
    assert y.tolist() == labels and np.issubdtype(y.dtype, np.integer)
    assert x[1, 2, 5] == images[1, 2 * 28 + 5]  # row-major: pixel k is at (k // 28, k % 28)
    assert np.array_equal(x.reshape(3, 784), images)

    x_test, y_test = load_kaggle_csv(write_csv(tmp_path / "test.csv", PIXELS, images))
    assert y_test is None and np.array_equal(x_test.reshape(3, 784), images)


@pytest.mark.parametrize(
    "header, rows, words",
    [
        (["label"] + PIXELS[:-1], [[1] + [0] * 783], ["785 columns", "784 columns", "(nothing)"]),
        (
            ["label"] + PIXELS[:5] + ["pixelX"] + PIXELS[6:],
            [],
            ["column 6", "'pixelX'", "'pixel5'"],
        ),
        (["id"] + PIXELS, [], ["column 0", "'id'"]),
        (["label"] + PIXELS, [[1] + [0] * 784, [1] + [0] * 783], ["785 integer columns"]),
        (["label"] + PIXELS, [[1] + [0] * 783], ["header has 785", "rows have 784"]),
        (["label"] + PIXELS, [[1] + [0] * 783 + [256]], ["0..255", "256"]),
        (["label"] + PIXELS, [[10] + [0] * 784], ["0..9", "10"]),
    ],
    ids=["short-header", "misnamed", "unknown-first", "ragged", "narrow", "pixel", "label"],
)
def test_kaggle_csv_errors(tmp_path, header, rows, words):
    path = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(ValueError) as error:
        load_kaggle_csv(path)
    for word in words:
        assert word in str(error.value)


def test_train_val_split():
    n = 1000
    x = np.arange(n).reshape(n, 1, 1) * np.ones((1, 2, 2), dtype=int)  # image k is all k
    y = np.arange(n) * 3
    (x_train, y_train), (x_val, y_val) = train_val_split(x, y, val_fraction=0.1, seed=0)
    ids_train, ids_val = x_train[:, 0, 0], x_val[:, 0, 0]
    assert len(ids_val) == 100 and len(ids_train) == 900
    assert set(ids_train).isdisjoint(ids_val)
    assert sorted([*ids_train, *ids_val]) == list(range(n))
    assert np.array_equal(y_train, ids_train * 3) and np.array_equal(y_val, ids_val * 3)
    assert not np.array_equal(ids_val, np.arange(100))  # shuffled, not the first tenth

    (_, _), (x_again, _) = train_val_split(x, y, seed=0)
    (_, _), (x_other, _) = train_val_split(x, y, seed=1)
    assert np.array_equal(x_again, x_val) and not np.array_equal(x_other, x_val)
    with pytest.raises(ValueError, match="same length"):
        train_val_split(x, y[:-1])
    with pytest.raises(ValueError, match="between 0 and 1"):
        train_val_split(x, y, val_fraction=1.0)


# -- sequence views --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images(mnist):
    return mnist[1][0][:64]


def test_row_and_pixel_views(images):
    rows, pixels = row_view(images), pixel_view(images)
    assert rows.shape == (64, 28, 28) and pixels.shape == (64, 784, 1)
    for x in (rows, pixels):
        assert x.dtype == np.float32
        assert x.min() == 0.0 and x.max() == 1.0
    assert np.allclose(rows * 255, images)
    assert np.array_equal(pixels[:, 28 * 3 + 4, 0], rows[:, 3, 4])  # row-major order


def test_pixel_permutation_is_fixed_true_permutation():
    order = pixel_permutation(0)
    assert sorted(order.tolist()) == list(range(784))
    assert np.array_equal(order, np.random.default_rng(0).permutation(784))
    assert np.array_equal(order, pixel_permutation(0))
    assert not np.array_equal(order, pixel_permutation(1))
    assert (order != np.arange(784)).mean() > 0.9


def test_permuted_view_reorders_pixels(images):
    plain = pixel_view(images)
    permuted = permuted_pixel_view(images, seed=3)
    order = pixel_permutation(3)
    assert permuted.shape == (64, 784, 1) and permuted.dtype == np.float32
    assert np.array_equal(permuted[:, :, 0], plain[:, order, 0])
    assert not np.array_equal(permuted, plain)
    assert np.array_equal(np.sort(permuted, axis=1), np.sort(plain, axis=1))  # same pixels


def test_as_sequences_dispatches_and_rejects_unknown_views(images):
    assert np.array_equal(as_sequences(images, "row"), row_view(images))
    assert np.array_equal(as_sequences(images, "pixel"), pixel_view(images))
    assert np.array_equal(
        as_sequences(images, "permuted", seed=5), permuted_pixel_view(images, seed=5)
    )
    with pytest.raises(ValueError) as error:
        as_sequences(images, "column")
    for name in (*VIEWS, "column"):
        assert repr(name) in str(error.value)


def test_views_reject_unscaled_input_mistakes(images):
    with pytest.raises(ValueError, match="uint8"):
        row_view(images.astype(np.float32) / 255)
    with pytest.raises(ValueError, match=r"\(N, height, width\)"):
        pixel_view(images.reshape(64, 784))


# -- synthetic ---------------------------------------------------------------------------------


def test_sine_cos_dataset():
    x, y = sine_cos_dataset(16, 30, seed=0)
    assert x.shape == (16, 30, 1) and y.shape == (16, 30, 1)
    assert x.dtype == np.float32 and y.dtype == np.float32

    x, y = sine_cos_dataset(16, 30, seed=0, dtype=np.float64)
    phase = np.arctan2(x[:, 0, 0], y[:, 0, 0])  # sin and cos of the same start phase
    t = phase[:, None] + np.pi / 10 * np.arange(30)
    assert np.allclose(x[..., 0], np.sin(t), atol=1e-12)
    assert np.allclose(y[..., 0], np.cos(t), atol=1e-12)
    assert not np.allclose(x, y)
    assert np.ptp(phase) > 1.0  # random start phases, not one wave repeated

    again, _ = sine_cos_dataset(16, 30, seed=0, dtype=np.float64)
    other, _ = sine_cos_dataset(16, 30, seed=1, dtype=np.float64)
    assert np.array_equal(again, x) and not np.allclose(other, x)
