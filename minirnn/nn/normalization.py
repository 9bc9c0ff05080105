"""Normalization layers: ``BatchNorm`` and ``LayerNorm``.

Both wrap the functional pairs of ``minirnn/functional/batchnorm.py`` and
``layernorm.py`` (where the equations, conventions and edge-case rules are
documented) in the ``Layer`` interface: ``params``, ``grads``, ``forward``,
``backward``, ``train()`` / ``eval()``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from .. import functional as F
from .layers import Layer


class BatchNorm(Layer):
    """Batch normalization of (N, F), (B, T, F) or (N, C, H, W) inputs.

    ``num_features`` is F (C for images). Statistics are per feature, over the
    batch; over batch and time for sequences (B, T, F); over batch, height and
    width for images. ``params``: ``gamma`` (initialised to 1) and ``beta`` (0).
    The running statistics are attributes, not parameters (no gradient, the
    optimizer leaves them alone): ``running_mean`` (initialised to 0) and
    ``running_var`` (1), of shape (F,); ``buffers()`` / ``load_buffers()`` hand
    them to checkpoints.

    ``train()`` mode (the default) normalizes with the batch statistics and
    updates the running statistics in place (the arrays stay the same objects);
    ``eval()`` mode normalizes with the running statistics and does not change
    them. ``momentum`` and ``eps`` default to the ``convention``'s values:
    ``"pytorch"`` (momentum 0.1 is the weight of the new batch, eps 1e-5, running
    variance updated with the unbiased batch variance) or ``"tensorflow"``
    (momentum 0.99 is the weight of the old value, eps 1e-3, biased variance).
    With the pytorch convention a training batch of one value per feature raises
    ValueError, as in PyTorch.

    The Stack Overflow BN-in-LSTM question puts
    ``tf.layers.batch_normalization(outputs, momentum=0.4, training=True)`` (then
    dropout) on an RNN's outputs of shape (batch, time, H).
    ``BatchNorm(H, momentum=0.4, convention="tensorflow")`` reproduces it: the
    statistics per feature over batch and time (TensorFlow's ``axis=-1``), eps
    1e-3 (TensorFlow's default), gamma 1 and beta 0 at the start, and
    ``moving = 0.4 * moving + 0.6 * batch`` for the mean and the biased variance
    (the test suite checks this by hand over two steps). Two differences in use:
    the question passes ``training=True`` always, so it normalizes test data with
    the test batch's statistics too (keep this layer in ``train()`` mode to do the
    same; ``eval()`` uses the running statistics instead); and TensorFlow 1.x
    updates its moving averages only if the ops in ``tf.GraphKeys.UPDATE_OPS`` run
    with the training step, which the snippet does not show, while this layer
    always updates them in train mode.
    """

    def __init__(
        self,
        num_features: int,
        *,
        momentum: float | None = None,
        eps: float | None = None,
        convention: str = "pytorch",
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        self.momentum, self.eps = F.batchnorm_defaults(convention, momentum, eps)
        self.convention = convention
        self.num_features = num_features
        self.params = {
            "gamma": np.ones(num_features, dtype=dtype),
            "beta": np.zeros(num_features, dtype=dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.running_mean = np.zeros(num_features, dtype=dtype)
        self.running_var = np.ones(num_features, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, self.cache = F.batchnorm_forward(
            x,
            self.params["gamma"],
            self.params["beta"],
            training=self.training,
            running_mean=self.running_mean,
            running_var=self.running_var,
            momentum=self.momentum,
            eps=self.eps,
            convention=self.convention,
        )
        if self.training:
            self.running_mean[...] = self.cache["running_mean"]
            self.running_var[...] = self.cache["running_var"]
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx, dgamma, dbeta = F.batchnorm_backward(dy, self.cache)
        self._store({"gamma": dgamma, "beta": dbeta})
        return dx

    def buffers(self) -> dict[str, np.ndarray]:
        """The running statistics, for checkpoints: name -> array (the layer's own)."""
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def load_buffers(self, buffers: dict[str, np.ndarray]) -> None:
        """Restore what ``buffers()`` returned, into the existing arrays."""
        if set(buffers) != {"running_mean", "running_var"}:
            raise KeyError(
                f"BatchNorm buffers: expected ['running_mean', 'running_var'], "
                f"got {sorted(buffers)}"
            )
        for name, value in buffers.items():
            own = getattr(self, name)
            if np.shape(value) != own.shape:
                raise ValueError(
                    f"BatchNorm buffers['{name}']: expected shape {own.shape}, "
                    f"got {np.shape(value)}"
                )
            own[...] = value

    def __repr__(self):
        return (
            f"BatchNorm({self.num_features}, momentum={self.momentum}, eps={self.eps}, "
            f"convention={self.convention!r})"
        )


class LayerNorm(Layer):
    """Layer normalization over the last axis of x: (..., num_features).

    ``params``: ``gain`` (initialised to 1) and ``shift`` (0). Each row is
    normalized with its own statistics, so train and eval modes are the same.
    """

    def __init__(
        self, num_features: int, *, eps: float = 1e-5, dtype: DTypeLike = np.float32
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.params = {
            "gain": np.ones(num_features, dtype=dtype),
            "shift": np.zeros(num_features, dtype=dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, self.cache = F.layernorm_forward(x, self.params["gain"], self.params["shift"], self.eps)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx, dgain, dshift = F.layernorm_backward(dy, self.cache)
        self._store({"gain": dgain, "shift": dshift})
        return dx

    def __repr__(self):
        return f"LayerNorm({self.num_features}, eps={self.eps})"
