"""MNIST as Kaggle's "Digit Recognizer" CSV files, and a seeded train/validation split.

Kaggle ships the digits as text, one image per row, pixels in row-major order:

    train.csv:  label,pixel0,pixel1,...,pixel783     (785 columns)
    test.csv:   pixel0,pixel1,...,pixel783           (784 columns, no labels)

    x, y = load_kaggle_csv("train.csv")   # x: (N, 28, 28) uint8, y: (N,) uint8
    x, y = load_kaggle_csv("test.csv")    # y is None
    (x_train, y_train), (x_val, y_val) = train_val_split(x, y)   # holds out 10%

Labels are uint8, like those of ``load_mnist``, so either source feeds the same code.
The Qiita batch-norm CNN note reads train.csv and holds out 10% for validation with a
seeded shuffle; ``train_val_split`` does the same without scikit-learn.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, MissingFileError

__all__ = ["load_kaggle_csv", "train_val_split", "KAGGLE_PIXEL_COLUMNS"]

KAGGLE_PIXEL_COLUMNS = tuple(f"pixel{k}" for k in range(28 * 28))
_TRAIN_HEADER = ("label",) + KAGGLE_PIXEL_COLUMNS
_TEST_HEADER = KAGGLE_PIXEL_COLUMNS


def _short(columns, keep=4):
    """'a,b,c,...,z (785 columns)' -- headers are too long to print whole."""
    shown = (
        ",".join(columns)
        if len(columns) <= 2 * keep
        else (",".join(columns[:keep]) + ",...," + ",".join(columns[-2:]))
    )
    return f"{shown!r} ({len(columns)} columns)"


def _check_header(header, path):
    """Return True if the file has a label column, False if not; raise if neither fits."""
    if header == _TRAIN_HEADER:
        return True
    if header == _TEST_HEADER:
        return False
    # Point at the first column that differs from the closer of the two layouts.
    expected = _TRAIN_HEADER if header[:1] == ("label",) else _TEST_HEADER
    first_bad = next(
        (k for k, (got, want) in enumerate(zip(header, expected)) if got != want),
        min(len(header), len(expected)),
    )
    got_name = header[first_bad] if first_bad < len(header) else "(nothing)"
    want_name = expected[first_bad] if first_bad < len(expected) else "(nothing)"
    raise FileFormatError(
        f"{path}: expected the header {_short(_TRAIN_HEADER)} of train.csv or "
        f"{_short(_TEST_HEADER)} of test.csv; got {_short(header)}, "
        f"whose column {first_bad} is {got_name!r} where {want_name!r} belongs"
    )


def _read_rows(f, path, header):
    """The rows after the header, from the open file ``f``: (N, columns) int64."""
    try:
        with warnings.catch_warnings():
            # An empty body is a valid, empty data set, not a warning.
            warnings.filterwarnings("ignore", message=".*input contained no data")
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except UnicodeDecodeError:
        raise
    except ValueError as exc:  # a row np.loadtxt cannot read: find out which
        where = _first_bad_row(path, header) or str(exc).splitlines()[0]
        raise FileFormatError(
            f"{path}: expected {len(header)} integer columns in every "
            f"row, as in the header; {where}"
        ) from None
    return table.reshape(0, len(header)) if table.size == 0 else table


def _first_bad_row(path, header):
    """Where a CSV file first breaks the header's layout: the first row with another
    number of columns, or with a value that is not an integer (None if none does)."""
    with open(path, encoding="utf-8-sig", newline=None) as f:
        f.readline()
        for line_number, line in enumerate(f, start=2):
            if not line.strip():
                continue
            values = line.rstrip("\n").split(",")
            if len(values) != len(header):
                return f"line {line_number} has {len(values)}"
            for name, value in zip(header, values):
                try:
                    int(value)
                except ValueError:
                    return f"line {line_number} has {value.strip()!r} in column {name!r}"
    return None


def load_kaggle_csv(path):
    """Read a Kaggle Digit Recognizer CSV file (train.csv or test.csv).

    path: a CSV file whose header is 'label,pixel0,...,pixel783' or 'pixel0,...,pixel783'.
    returns:
      x: (N, 28, 28) uint8, pixels 0..255
      y: (N,) uint8 digits 0..9, or None when the file has no label column
    raises MissingFileError (a FileNotFoundError) when there is no such file, and
    FileFormatError (a ValueError) on a wrong header, a row with the wrong number of
    columns or a value that is not an integer, or values out of range (pixels
    outside 0..255, labels outside 0..9); the message names the file and the line.
    """
    if not Path(path).is_file():
        raise MissingFileError(
            f"{path}: expected Kaggle's Digit Recognizer train.csv or "
            f"test.csv, but there is no such file"
        )
    try:
        # utf-8-sig drops the byte-order mark that spreadsheet programs like to add.
        with open(path, encoding="utf-8-sig", newline=None) as f:
            header = tuple(column.strip() for column in f.readline().strip().split(","))
            has_labels = _check_header(header, path)
            table = _read_rows(f, path, header)
    except UnicodeDecodeError:
        raise FileFormatError(
            f"{path}: expected a CSV text file, got bytes that are not UTF-8 text"
        ) from None
    n_columns = len(header)
    if table.shape[1] != n_columns:
        raise FileFormatError(
            f"{path}: the header has {n_columns} columns but the rows have {table.shape[1]}"
        )

    labels, pixels = (table[:, 0], table[:, 1:]) if has_labels else (None, table)
    if pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise FileFormatError(
            f"{path}: expected pixels in 0..255, got values from {pixels.min()} to {pixels.max()}"
        )
    if labels is not None and labels.size and (labels.min() < 0 or labels.max() > 9):
        raise FileFormatError(
            f"{path}: expected labels 0..9, got values from {labels.min()} to {labels.max()}"
        )
    x = pixels.astype(np.uint8).reshape(-1, 28, 28)
    y = None if labels is None else labels.astype(np.uint8)
    return x, y


def train_val_split(x, y, val_fraction=0.1, seed=0):
    """Shuffle with a seed and hold out a fraction for validation.

    x: (N, ...) any array;  y: (N, ...) any array with the same first dimension.
    val_fraction: in (0, 1); the validation set has round(N * val_fraction) examples.
    seed: the same seed always gives the same split.
    returns ((x_train, y_train), (x_val, y_val)), both in shuffled order; together
    they hold every example exactly once.
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"expected x and y of the same length, got {len(x)} and {len(y)}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"expected val_fraction strictly between 0 and 1, got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(len(x) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    return (x[train], y[train]), (x[val], y[val])
