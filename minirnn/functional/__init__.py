"""Stateless ``forward -> (out, cache)`` / ``backward(dout, cache)`` pairs."""
from .activations import (relu_backward, relu_forward, sigmoid, sigmoid_backward,
                          sigmoid_forward, tanh_backward, tanh_forward)
from .linear import affine_backward, affine_forward
from .losses import (log_softmax, mse_backward, mse_forward,
                     softmax_cross_entropy_backward, softmax_cross_entropy_forward)

__all__ = [
    "sigmoid", "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward",
    "relu_forward", "relu_backward", "affine_forward", "affine_backward",
    "log_softmax", "softmax_cross_entropy_forward", "softmax_cross_entropy_backward",
    "mse_forward", "mse_backward",
]
