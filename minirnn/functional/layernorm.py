"""Layer normalization (Ba, Kiros & Hinton 2016) over the last axis.

Each row (one example, or one example at one timestep) is normalized with its *own*
mean and biased variance over its F features, then scaled by ``gain`` and shifted
by ``shift`` (both (F,)):

$$\\mu = \\frac{1}{F}\\sum_j x_j, \\quad \\sigma^2 = \\frac{1}{F}\\sum_j (x_j - \\mu)^2, \\quad
\\hat x = \\frac{x - \\mu}{\\sqrt{\\sigma^2 + \\epsilon}}, \\quad y = g \\odot \\hat x + s.$$

It is batch norm's algebra with the roles of the axes swapped: the statistics are
per row, not per feature, so no row depends on another, and there is no
train/eval difference and nothing to keep across calls. Backward is batch norm's
closed form along the row, with ``dxhat = dy * gain`` in place of ``gamma * dy``:

$$dx = \\frac{1}{F\\sqrt{\\sigma^2 + \\epsilon}}\\Big(F\\,d\\hat x - \\sum_j d\\hat x_j
- \\hat x \\sum_j d\\hat x_j \\hat x_j\\Big), \\quad dg = \\sum_{\\text{rows}} dy \\odot \\hat x,
\\quad ds = \\sum_{\\text{rows}} dy.$$

``x`` may have any leading shape, ``(..., F)``: (N, F), (B, T, F), one row (F,).

The compiled core ``ln_forward_2d`` / ``ln_backward_2d`` works on (M, F) and keeps
the dtype (float32 stays float32), for the layer-normalized cells to call from their
Numba loops. Each has an ``*_into`` form that writes into arrays it is given (the
allocating form calls it): the cells pass slices of their (T, ...) buffers, so that
a timestep allocates and copies nothing. A row whose values are all equal (and
F = 1) gives xhat = 0 and y = shift exactly, as in batch norm.

Speed: the statistics are sums *along* a row, ``s += ...``, and a compiler may not
vectorize such a sum on its own: adding in another order (eight partial sums, one
per SIMD lane) rounds differently, and IEEE arithmetic forbids that unless allowed.
The kernels allow it (``fastmath={"reassoc"}``, nothing else: no approximate
division or square root, no assumptions about inf and NaN), which made them about
three times faster on rows of 100 and 400 features; the results move by a rounding
error. Each loop also touches few arrays: a loop over many is not vectorized either,
because the compiler gives up checking at run time that they do not overlap.

epsilon: ours defaults to 1e-5 and is a parameter. TensorFlow's
``tf.contrib.rnn.LayerNormBasicLSTMCell`` normalizes with
``tf.contrib.layers.layer_norm``, which calls ``tf.nn.moments`` and
``tf.nn.batch_normalization`` with a fixed ``variance_epsilon = 1e-12`` (checked in
TensorFlow 1.x's ``contrib/layers/python/layers/layers.py`` and
``contrib/rnn/python/ops/rnn_cell.py``); pass ``eps=1e-12`` to match it. Its
``norm_gain=1.0`` and ``norm_shift=0.0`` are our ``gain`` and ``shift``.
"""

import numpy as np
from numba import njit

from .batchnorm import as_dtype_of
from .checks import check_eps, check_float_array, check_upstream, check_vector

# Reassociation lets the row sums vectorize (see the module docstring).
_FAST = {"reassoc"}


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def ln_forward_2d_into(x, gain, shift, eps, y, xhat, inv_std):
    """``ln_forward_2d`` writing into given arrays: y, xhat (M, F); inv_std (M,).
    ``y`` may be ``x`` itself (normalized in place); ``xhat`` must be an array of
    its own."""
    M, F = x.shape
    f, zero, one = as_dtype_of(F, x), as_dtype_of(0, x), as_dtype_of(1, x)
    eps = as_dtype_of(eps, x)
    for n in range(M):
        # The mean relative to the row's first value: a constant row gives exactly
        # that value, so that its centred values are exactly 0.
        x0 = x[n, 0]
        s = zero
        for j in range(F):
            s += x[n, j] - x0
        mean = x0 + s / f
        # The variance from the centred values (two passes: no cancellation).
        v = zero
        for j in range(F):
            d = x[n, j] - mean
            v += d * d
        r = one / np.sqrt(v / f + eps)
        inv_std[n] = r
        for j in range(F):
            xhat[n, j] = (x[n, j] - mean) * r
        for j in range(F):
            y[n, j] = gain[j] * xhat[n, j] + shift[j]


@njit(cache=True, error_model="numpy")
def ln_forward_2d(x, gain, shift, eps):
    """x: (M, F); gain, shift: (F,) -> y, xhat: (M, F), inv_std: (M,), one per row."""
    y, xhat, inv_std = np.empty_like(x), np.empty_like(x), np.empty(x.shape[0], dtype=x.dtype)
    ln_forward_2d_into(x, gain, shift, eps, y, xhat, inv_std)
    return y, xhat, inv_std


@njit(cache=True, error_model="numpy", fastmath=_FAST)
def ln_backward_2d_into(dy, xhat, inv_std, gain, dx, dgain, dshift):
    """``ln_backward_2d`` writing dx: (M, F) and *adding* this batch's dgain,
    dshift: (F,) to the given arrays (a timestep loop sums them). ``dx`` may be
    ``dy`` itself, but a separate array is faster: the compiler's run-time overlap
    check fails for dx = dy and the last loop then runs one value at a time.
    dgain and dshift must be arrays of their own."""
    M, F = dy.shape
    f, zero = as_dtype_of(F, dy), as_dtype_of(0, dy)
    for n in range(M):
        for j in range(F):  # y = gain * xhat + shift
            dshift[j] += dy[n, j]
            dgain[j] += dy[n, j] * xhat[n, j]
        s1, s2 = zero, zero  # sum(dxhat) and sum(dxhat * xhat) along the row
        for j in range(F):
            dxhat = dy[n, j] * gain[j]
            s1 += dxhat
            s2 += dxhat * xhat[n, j]
        k = inv_std[n] / f
        for j in range(F):  # reads dy[n, j] before writing dx[n, j]
            dx[n, j] = k * (f * (dy[n, j] * gain[j]) - s1 - xhat[n, j] * s2)


@njit(cache=True, error_model="numpy")
def ln_backward_2d(dy, xhat, inv_std, gain):
    """dy, xhat: (M, F); inv_std: (M,); gain: (F,) -> dx: (M, F), dgain, dshift: (F,)."""
    F = dy.shape[1]
    dx, dgain, dshift = (
        np.empty_like(dy),
        np.zeros(F, dtype=dy.dtype),
        np.zeros(F, dtype=dy.dtype),
    )
    ln_backward_2d_into(dy, xhat, inv_std, gain, dx, dgain, dshift)
    return dx, dgain, dshift


def layernorm_forward(x, gain, shift, eps=1e-5):
    """x: (..., F); gain, shift: (F,) of x's dtype -> (y: like x, cache)."""
    check_float_array("x", x)
    if x.ndim < 1 or x.size == 0:
        raise ValueError(
            f"x: expected shape (..., F) with at least one row and one feature, got {x.shape}"
        )
    F = x.shape[-1]
    context = f"x of shape {x.shape} (..., F)"
    gain = check_vector("gain", gain, F, x.dtype, context)
    shift = check_vector("shift", shift, F, x.dtype, context)
    eps = check_eps(eps)
    x2 = np.ascontiguousarray(x).reshape(-1, F)
    y2, xhat, inv_std = ln_forward_2d(x2, gain, shift, eps)
    cache = {"shape": x.shape, "xhat": xhat, "inv_std": inv_std, "gain": gain, "eps": eps}
    return y2.reshape(x.shape), cache


def layernorm_backward(dy, cache):
    """dy: like y -> (dx: like x, dgain: (F,), dshift: (F,))."""
    shape = cache["shape"]
    dy2 = np.ascontiguousarray(check_upstream(dy, shape, cache["gain"].dtype))
    dx2, dgain, dshift = ln_backward_2d(
        dy2.reshape(-1, shape[-1]), cache["xhat"], cache["inv_std"], cache["gain"]
    )
    return dx2.reshape(shape), dgain, dshift
