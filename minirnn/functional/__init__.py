"""Stateless ``forward -> (out, cache)`` / ``backward(dout, cache)`` pairs."""

from .activations import (
    relu_backward,
    relu_forward,
    sigmoid,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from .linear import affine_backward, affine_forward
from .losses import (
    log_softmax,
    mse_backward,
    mse_forward,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)

__all__ = [
    "sigmoid",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
    "relu_forward",
    "relu_backward",
    "affine_forward",
    "affine_backward",
    "log_softmax",
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
    "mse_forward",
    "mse_backward",
]

from .conv import conv2d_backward, conv2d_forward, conv2d_naive
from .pooling import (
    flatten_backward,
    flatten_forward,
    maxpool2d_backward,
    maxpool2d_backward_strided,
    maxpool2d_forward,
)

__all__ += [
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_naive",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "maxpool2d_backward_strided",
    "flatten_forward",
    "flatten_backward",
]

from .batchnorm import (
    BN_CONVENTIONS,
    batchnorm_backward,
    batchnorm_defaults,
    batchnorm_forward,
    bn_backward_2d,
    bn_backward_staged,
    bn_eval_2d,
    bn_eval_backward_2d,
    bn_eval_forward_2d,
    bn_train_2d,
    update_running_stats,
)
from .layernorm import layernorm_backward, layernorm_forward, ln_backward_2d, ln_forward_2d

__all__ += [
    "batchnorm_forward",
    "batchnorm_backward",
    "batchnorm_defaults",
    "update_running_stats",
    "bn_train_2d",
    "bn_eval_2d",
    "bn_backward_2d",
    "bn_eval_forward_2d",
    "bn_eval_backward_2d",
    "bn_backward_staged",
    "BN_CONVENTIONS",
    "layernorm_forward",
    "layernorm_backward",
    "ln_forward_2d",
    "ln_backward_2d",
]
