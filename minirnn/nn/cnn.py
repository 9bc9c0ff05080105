r"""The convolutional network of the Qiita batch-norm CNN note, for MNIST, with or
without batch norm.

    x: (N, 1, 28, 28)
    -> Conv2D(32, 3x3, valid) -> [BatchNorm per channel] -> ReLU -> MaxPool 2x2   (N, 32, 13, 13)
    -> Conv2D(64, 3x3, valid) -> [BatchNorm per channel] -> ReLU -> MaxPool 2x2   (N, 64, 5, 5)
    -> Flatten (N, 1600) -> Dense(10) -> logits; softmax and a cost on top

The convolutions keep their bias even before batch norm, as ``tf.layers.Conv2D``
does by default: batch norm subtracts each channel's batch mean, so in training
mode that bias cancels and its gradient is exactly zero (in evaluation mode it
shifts the output like any bias).

Two costs (``cost=``):

``"stable"``
    softmax cross-entropy from the logits through log-sum-exp
    (``functional.softmax_cross_entropy_forward``); finite for any logits.
``"clipped"``
    the Qiita batch-norm CNN note's cost on the softmax *probabilities* ``p``,
    ``-mean(sum(t * log(clip(p, 1e-10, 1))))`` with one-hot ``t``:

    $$L = -\frac{1}{N} \sum_n \log \operatorname{clip}(p_{n y_n}, 10^{-10}, 1),$$

    $$\frac{\partial L}{\partial p_{nk}} = -\frac{[k = y_n]}{N\, p_{n y_n}}
    \ \text{ if } 10^{-10} \le p_{n y_n} \le 1, \qquad 0 \ \text{ if it was clipped}.$$

    Through the softmax, $dz = p \odot (dp - \langle dp, p \rangle)$, an unclipped
    example gets the usual $(p_n - \mathrm{onehot}(y_n))/N$ and a clipped one gets
    **nothing**: an example whose correct class has probability below $10^{-10}$
    (the most confidently wrong ones) cannot move the weights at all, and its
    cost sits at $-\log 10^{-10} \approx 23.03$.

The boundaries follow ``tf.clip_by_value``'s gradient: it passes where
``low <= p <= high`` and is zero where ``p < low`` or ``p > high``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .. import functional as F
from .conv import Conv2D, Flatten, MaxPool2D, ReLU
from .layers import Dense, Sequential

CLIP_LOW, CLIP_HIGH = 1e-10, 1.0
COSTS = ("stable", "clipped")


def softmax_forward(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z: (N, K) -> (p: (N, K) = softmax of each row, cache). Stable: the row max is
    subtracted first, so ``exp`` never overflows (tiny probabilities underflow to 0)."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    return p, p


def softmax_backward(dp: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """dp: (N, K) -> dz = p * (dp - sum_k dp_k p_k), the softmax Jacobian
    diag(p) - p p^T applied to each row."""
    p = cache
    return p * (dp - (dp * p).sum(axis=1, keepdims=True))


def clipped_cross_entropy_forward(
    p: ArrayLike, labels: ArrayLike, low: float = CLIP_LOW, high: float = CLIP_HIGH
) -> tuple[np.floating, tuple]:
    """p: (N, K) probabilities, labels: (N,) ints -> (-mean log clip(p[n, y_n]), cache).

    The mean of ``-sum_k t_nk log clip(p_nk)`` with one-hot ``t``: only the
    correct class's probability of each example enters."""
    p, labels = np.asarray(p), np.asarray(labels)
    if p.ndim != 2:
        raise ValueError(f"p: expected shape (N, K), got {p.shape}")
    if labels.shape != (p.shape[0],):
        raise ValueError(
            f"labels: expected shape ({p.shape[0]},) to match p {p.shape}, got {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels: expected an integer dtype, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= p.shape[1]):
        raise ValueError(
            f"labels: expected values in [0, {p.shape[1]}), "
            f"got min {labels.min()} and max {labels.max()}"
        )
    n = p.shape[0]
    p_true = p[np.arange(n), labels]
    loss = -np.log(np.clip(p_true, low, high)).mean()
    return p.dtype.type(loss), (p_true, labels, p.shape, low, high)


def clipped_cross_entropy_backward(dloss: float, cache: tuple) -> np.ndarray:
    """dloss: scalar -> dp: (N, K), -dloss / (N p[n, y_n]) at the correct class where
    p was not clipped, 0 everywhere else (the clip's gradient is 0 where it clips)."""
    p_true, labels, shape, low, high = cache
    n = shape[0]
    dp = np.zeros(shape, dtype=p_true.dtype)
    inside = (p_true >= low) & (p_true <= high)
    safe = np.where(inside, p_true, 1)  # no division by a clipped 0
    dp[np.arange(n), labels] = np.where(inside, -dloss / (n * safe), 0)
    return dp


class CNNClassifier(Sequential):
    """The Qiita batch-norm CNN note's CNN: two Conv -> [BatchNorm] -> ReLU -> MaxPool
    blocks, Flatten, Dense. x: (N, in_channels, image_size, image_size), any real
    dtype (cast to ``dtype``; raw uint8 pixels are fine) -> logits (N, n_classes).

    Keyword arguments:
      batchnorm     put a per-channel BatchNorm after each convolution
      rng           np.random.Generator for the Glorot-uniform weights
      dtype         np.float32 to train, np.float64 for gradient checks
      cost          "stable" (log-sum-exp softmax cross-entropy) or "clipped"
                    (the Qiita batch-norm CNN note's cost; see the module notes)
      bn_convention the BatchNorm's defaults (momentum, eps), "tensorflow" as in
                    the Qiita batch-norm CNN note (momentum 0.99, eps 1e-3) or
                    "pytorch"
      in_channels, image_size, filters, kernel_size, pool, n_classes
                    the architecture; the defaults are the Qiita note's (filters
                    (32, 64), 3x3 kernels, 2x2 pools, 28x28 single-channel input)

    ``params`` keys are ``"<layer>.<name>"`` (with batch norm: 0.W, 0.b, 1.gamma,
    1.beta, 4.W, 4.b, 5.gamma, 5.beta, 9.W, 9.b); ``buffers()`` returns batch
    norm's running statistics (1.running_mean, 1.running_var, 5.running_mean,
    5.running_var), which a checkpoint must keep for ``eval()`` mode.
    """

    def __init__(
        self,
        *,
        batchnorm: bool = True,
        rng: np.random.Generator,
        dtype: DTypeLike = np.float32,
        cost: str = "stable",
        bn_convention: str = "tensorflow",
        in_channels: int = 1,
        image_size: int = 28,
        filters: tuple[int, ...] = (32, 64),
        kernel_size: int = 3,
        pool: int = 2,
        n_classes: int = 10,
    ) -> None:
        if cost not in COSTS:
            raise ValueError(f"cost: expected one of {COSTS}, got {cost!r}")
        layers, channels, size = [], in_channels, image_size
        for n_filters in filters:
            first = not layers  # its input is the images: no gradient needed
            layers.append(
                Conv2D(channels, n_filters, kernel_size, rng=rng, dtype=dtype, input_grad=not first)
            )
            if batchnorm:
                from .normalization import BatchNorm

                layers.append(BatchNorm(n_filters, convention=bn_convention, dtype=dtype))
            layers += [ReLU(), MaxPool2D(pool)]
            channels, size = n_filters, (size - kernel_size + 1) // pool
            if size < 1:
                raise ValueError(
                    f"image_size: {image_size} is too small for "
                    f"{len(filters)} blocks of {kernel_size}x{kernel_size} "
                    f"convolution and {pool}x{pool} pooling"
                )
        layers += [Flatten(), Dense(channels * size * size, n_classes, rng=rng, dtype=dtype)]
        super().__init__(*layers)
        self.dtype = np.dtype(dtype)
        self.cost = cost
        self.batchnorm = batchnorm
        self.input_shape = (in_channels, image_size, image_size)
        self.n_classes = n_classes

    def forward(self, x: ArrayLike) -> np.ndarray:
        return super().forward(self.checked_input(x))

    def checked_input(self, x: ArrayLike) -> np.ndarray:
        """x as the model's dtype; ValueError unless it is (N, C, H, W) of the model's
        channels and image size."""
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1:] != self.input_shape:
            raise ValueError(
                f"x: expected shape (N, {', '.join(map(str, self.input_shape))})"
                f" = (batch, channels, height, width), got {x.shape}"
                + (
                    "; add the channel axis with x[:, None]"
                    if x.shape[1:] == self.input_shape[1:]
                    else ""
                )
            )
        return x.astype(self.dtype, copy=False)

    def predict(self, x: ArrayLike) -> np.ndarray:
        """Logits (N, n_classes), in whatever mode the model is in (call ``eval()``
        first to use batch norm's population statistics)."""
        return self.forward(x)

    def cost_forward(self, logits: np.ndarray, labels: np.ndarray) -> tuple[np.floating, Any]:
        """(cost, cache) of the configured cost on logits; ``cost_backward`` -> dlogits."""
        if self.cost == "stable":
            return F.softmax_cross_entropy_forward(logits, labels)
        p, softmax_cache = softmax_forward(logits)
        loss, ce_cache = clipped_cross_entropy_forward(p, labels)
        return loss, (softmax_cache, ce_cache)

    def cost_backward(self, dloss: float, cache: Any) -> np.ndarray:
        if self.cost == "stable":
            return F.softmax_cross_entropy_backward(dloss, cache)
        softmax_cache, ce_cache = cache
        return softmax_backward(clipped_cross_entropy_backward(dloss, ce_cache), softmax_cache)

    def loss_and_backward(self, x: ArrayLike, labels: np.ndarray) -> tuple[np.floating, np.ndarray]:
        """Returns (mean cost, logits: (N, n_classes)); gradients land in self.grads."""
        logits = self.forward(x)
        loss, cache = self.cost_forward(logits, labels)
        self.backward(self.cost_backward(1.0, cache))
        return loss, logits
