"""Data for minirnn: MNIST (IDX files or Kaggle CSV), its sequence views, synthetic sets.

    mnist.py      load_mnist: find, download, verify and read the four IDX files
    kaggle.py     load_kaggle_csv, train_val_split
    sequences.py  row / pixel / permuted-pixel views: images -> (N, T, I) float32
    synthetic.py  sine_cos_dataset: sin in, cos out, at every step

This package depends on numpy, the standard library and ``minirnn.errors`` only;
models and training import it, never the other way round.
"""

from .kaggle import KAGGLE_PIXEL_COLUMNS, load_kaggle_csv, train_val_split
from .mnist import (
    DEFAULT_MIRRORS,
    MNIST_FILES,
    ChecksumError,
    IDXFormatError,
    MNISTNotFoundError,
    bundled_mnist_dir,
    default_cache_dir,
    find_mnist_dir,
    load_mnist,
    read_idx,
)
from .sequences import (
    VIEWS,
    as_sequences,
    permuted_pixel_view,
    pixel_permutation,
    pixel_view,
    row_view,
)
from .synthetic import SINE_STEP_SIZE, sine_cos_dataset

__all__ = [
    "load_mnist",
    "read_idx",
    "find_mnist_dir",
    "bundled_mnist_dir",
    "default_cache_dir",
    "ChecksumError",
    "IDXFormatError",
    "MNISTNotFoundError",
    "MNIST_FILES",
    "DEFAULT_MIRRORS",
    "load_kaggle_csv",
    "train_val_split",
    "KAGGLE_PIXEL_COLUMNS",
    "VIEWS",
    "row_view",
    "pixel_view",
    "permuted_pixel_view",
    "pixel_permutation",
    "as_sequences",
    "SINE_STEP_SIZE",
    "sine_cos_dataset",
]
