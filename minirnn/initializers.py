"""Weight initializers shared by the cells and layers.

The defaults follow Keras, which the source texts' TensorFlow code is close to:
Glorot-uniform input weights, orthogonal recurrent weights, zero biases.
"""

import numpy as np


def glorot_uniform(rng, fan_in, fan_out, dtype=np.float32):
    """(fan_in, fan_out) drawn from U(-a, a) with a = sqrt(6 / (fan_in + fan_out)).

    Glorot & Bengio (2010): keeps the variance of activations and of gradients
    roughly constant from layer to layer.
    """
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=(fan_in, fan_out)).astype(dtype)


def orthogonal(rng, n, dtype=np.float32):
    """(n, n) random orthogonal matrix (QR of a Gaussian, signs fixed so that the
    distribution is uniform). Its singular values are all 1, so repeated
    multiplication by it neither explodes nor vanishes at the start of training."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    q *= np.sign(np.diag(r))
    return q.astype(dtype)


def gate_blocks(init_one, n_gates):
    """Concatenate ``n_gates`` independently drawn blocks along the columns, so each
    gate's weights are initialised as if it were its own layer."""
    return np.concatenate([init_one() for _ in range(n_gates)], axis=1)
