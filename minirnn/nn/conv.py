"""Layers for convolutional networks, NCHW: Conv2D, MaxPool2D, Flatten, ReLU.

Each wraps a forward/backward pair of ``minirnn.functional`` (``conv.py``,
``pooling.py``, ``activations.py``) in the ``Layer`` contract of ``layers.py``:
``forward(x)`` keeps its cache, ``backward(dout)`` writes the parameter gradients
into ``self.grads`` in place and returns dL/dx.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from .. import functional as F
from ..functional.checks import check_pair
from .layers import Layer


def glorot_uniform_conv(
    rng: np.random.Generator, shape: tuple[int, int, int, int], dtype: DTypeLike = np.float32
) -> np.ndarray:
    """A conv kernel (F, C, KH, KW) from U(-a, a), a = sqrt(6 / (fan_in + fan_out)),
    with fan_in = C*KH*KW (the inputs of one output pixel) and fan_out = F*KH*KW
    (what TensorFlow/Keras's default ``glorot_uniform`` uses for a conv kernel).
    ``minirnn.initializers.glorot_uniform`` is the same rule for a dense matrix."""
    n_filters, channels, kh, kw = shape
    fan_in, fan_out = channels * kh * kw, n_filters * kh * kw
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape).astype(dtype)


class Conv2D(Layer):
    """out = conv2d(x, W) + b. x: (N, C, H, W) -> (N, F, OH, OW).

    ``W``: (F, C, KH, KW), Glorot-uniform; ``b``: (F,), zeros (Keras's defaults).
    ``kernel_size``, ``stride``, ``padding``: an int or a pair (rows, columns);
    padding adds zeros on both sides ("valid" is 0). ``input_grad=False`` (a
    network's first layer, whose input is data): backward returns None instead of
    the gradient of x, which it does not compute.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        rng: np.random.Generator,
        dtype: DTypeLike = np.float32,
        input_grad: bool = True,
    ) -> None:
        super().__init__()
        kh, kw = check_pair("kernel_size", kernel_size, 1)
        self.stride, self.padding = stride, padding
        self.input_grad = input_grad
        self.params = {
            "W": glorot_uniform_conv(rng, (out_channels, in_channels, kh, kw), dtype),
            "b": np.zeros(out_channels, dtype=dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self.cache = F.conv2d_forward(
            x, self.params["W"], self.params["b"], self.stride, self.padding
        )
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx, dW, db = F.conv2d_backward(dout, self.cache, self.input_grad)
        self._store({"W": dW, "b": db})
        return dx

    def __repr__(self):
        f, c, kh, kw = self.params["W"].shape
        return f"Conv2D({c} -> {f}, kernel {kh}x{kw}, stride {self.stride}, padding {self.padding})"


class MaxPool2D(Layer):
    """Max over ``size`` windows ``stride`` apart (default ``stride = size``), no
    padding. Ties: the first maximum of a window in row-major order gets the whole
    gradient (see ``functional/pooling.py``)."""

    def __init__(
        self, size: int | tuple[int, int] = 2, stride: int | tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        self.size, self.stride = size, stride

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self.cache = F.maxpool2d_forward(x, self.size, self.stride)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return F.maxpool2d_backward(dout, self.cache)

    def __repr__(self):
        return f"MaxPool2D(size {self.size}, stride {self.stride or self.size})"


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), in C order."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self.cache = F.flatten_forward(x)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return F.flatten_backward(dout, self.cache)

    def __repr__(self):
        return "Flatten()"


class ReLU(Layer):
    """max(x, 0), elementwise; the gradient at exactly 0 is taken as 0."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        out, self.cache = F.relu_forward(x)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return F.relu_backward(dout, self.cache)

    def __repr__(self):
        return "ReLU()"
