"""Reading an image as a sequence: the three standard views of sequential MNIST.

A recurrent cell consumes x: (batch, time, input). An image (28, 28) becomes such a
sequence in one of three ways:

    row       T = 28 steps of I = 28 pixels, one image row per step (the Qiita BN-LSTM note);
    pixel     T = 784 steps of I = 1 pixel, in row-major (scanline) order;
    permuted  T = 784 steps of I = 1 pixel, in one fixed random order.

The permuted view destroys the locality that makes the pixel view easy at the start
of each row, so the model has to carry information over long distances. The order
must be the same for every image and every run, so it is drawn from a seed:
``pixel_permutation(seed)``.

Every view scales pixels from 0..255 to 0.0..1.0 and returns float32, the training
dtype. Inputs must be uint8, so a float array that is already scaled cannot be
divided by 255 a second time by mistake.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "VIEWS",
    "row_view",
    "pixel_view",
    "permuted_pixel_view",
    "pixel_permutation",
    "as_sequences",
]

VIEWS = ("row", "pixel", "permuted")


def _scaled(images):
    """(N, H, W) uint8 -> (N, H, W) float32 in [0, 1], after checking the input."""
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"expected images of shape (N, height, width) and dtype uint8 (pixels 0..255), "
            f"got shape {images.shape} and dtype {images.dtype}"
        )
    return images.astype(np.float32) / np.float32(255.0)


def row_view(images):
    """One row per step.

    images: (N, 28, 28) uint8  ->  x: (N, T=28, I=28) float32 in [0, 1]
    (any (N, H, W) works and gives (N, H, W)).
    """
    return _scaled(images)


def pixel_view(images):
    """One pixel per step, in row-major order.

    images: (N, 28, 28) uint8  ->  x: (N, T=784, I=1) float32 in [0, 1]
    """
    x = _scaled(images)
    return x.reshape(len(x), -1, 1)


def pixel_permutation(seed=0, n_pixels=28 * 28):
    """The fixed pixel order of the permuted view.

    returns: (n_pixels,) int64, a permutation of 0..n_pixels-1, equal to
    np.random.default_rng(seed).permutation(n_pixels). Step t of the permuted view
    shows pixel number order[t] of the row-major image.
    """
    return np.random.default_rng(seed).permutation(n_pixels)


def permuted_pixel_view(images, seed=0):
    """One pixel per step, in the fixed order pixel_permutation(seed).

    images: (N, 28, 28) uint8  ->  x: (N, T=784, I=1) float32 in [0, 1]
    """
    x = pixel_view(images)
    return x[:, pixel_permutation(seed, x.shape[1]), :]


def as_sequences(images, view, seed=0):
    """Dispatch on the name of a view: "row", "pixel" or "permuted".

    images: (N, 28, 28) uint8; seed is used by "permuted" only.
    returns: (N, 28, 28) float32 for "row", (N, 784, 1) float32 otherwise.
    """
    if view == "row":
        return row_view(images)
    if view == "pixel":
        return pixel_view(images)
    if view == "permuted":
        return permuted_pixel_view(images, seed=seed)
    raise ValueError(f"expected view to be one of {', '.join(map(repr, VIEWS))}; got {view!r}")
