"""Batch normalization (Ioffe & Szegedy 2015), forward and hand-derived backward.

Training mode normalizes every feature with the statistics of the batch, the mean
and the *biased* variance (divided by M, not M - 1), with ``eps`` inside the
square root; ``gamma`` and ``beta`` then scale and shift:

$$\\mu = \\frac{1}{M}\\sum_n x_n, \\quad \\sigma^2 = \\frac{1}{M}\\sum_n (x_n - \\mu)^2, \\quad
\\hat x = \\frac{x - \\mu}{\\sqrt{\\sigma^2 + \\epsilon}}, \\quad y = \\gamma \\hat x + \\beta.$$

Evaluation mode uses running statistics instead, so each example's output no longer
depends on the rest of the batch, and backward treats them as constants:
$dx = dy\\,\\gamma / \\sqrt{\\sigma^2_{\\text{run}} + \\epsilon}$.

Layouts. One 2-D core serves every layout: the input is seen as ``(M, F)``, M rows
of F features, and the statistics are taken over the rows.

=============  ==================  ==============================  ==============
x              F (features)        statistics over                 M
=============  ==================  ==============================  ==============
(N, F)         F                   the batch                       N
(B, T, F)      F                   batch and time                  B * T
(N, C, H, W)   C (channels)        batch, height and width         N * H * W
=============  ==================  ==============================  ==============

The rank tells them apart (2, 3 or 4 axes). ``to_2d`` and ``from_2d`` do the
reshaping (and, for images, the transpose that puts the channel axis last).
Images have compiled kernels of their own (``bn_train_images`` and the rest, on
the ``(N, C, H*W)`` view of the input): they read each channel where it lies,
instead of copying the batch to ``(N*H*W, C)`` and back around the 2-D core, which
takes two to three times as long (``benchmarks/levers.py``). Their caches hold ``xhat`` as
``(N, C, H*W)``.

The compiled core. ``bn_train_2d``, ``bn_eval_2d`` and ``bn_backward_2d``, and for
evaluation mode with a backward pass ``bn_eval_forward_2d`` and
``bn_eval_backward_2d``, are Numba functions over 2-D float32/float64 arrays that
keep the dtype, so the recurrent batch-norm cells can call them from inside their
own compiled timestep loops (normalizing ``h_{t-1} U`` with that step's batch
statistics). Each has an ``*_into`` form that writes into arrays it is given
(the allocating form calls it): the cells pass slices of their (T, ...) buffers,
so that a timestep allocates and copies nothing. The training-mode backward pass is the closed form

$$dx = \\frac{\\gamma}{M\\sqrt{\\sigma^2 + \\epsilon}}\\Big(M\\,dy - \\sum_n dy_n
- \\hat x \\sum_n dy_n \\hat x_n\\Big), \\quad d\\gamma = \\sum_n dy_n \\hat x_n, \\quad
d\\beta = \\sum_n dy_n,$$

derived node by node in ``bn_backward_staged`` (plain NumPy, through the graph
mu -> centred -> var -> inv_std -> xhat -> y) and in ``tutorials/05_batch_norm.md``.

Running statistics: the API. ``batchnorm_forward`` never modifies its arguments.
In training mode, when ``running_mean`` and ``running_var`` are given, it returns
the *updated* statistics as new arrays in ``cache["running_mean"]`` and
``cache["running_var"]``; the caller keeps them (``nn.BatchNorm`` copies them into
its own arrays). Calling forward twice on the same inputs therefore gives the same
result twice, which is what a gradient check needs. ``update_running_stats`` is the
update on its own, for the recurrent cells' per-timestep statistics.

The two conventions of the exponential moving average (``momentum`` and ``eps``
default to the convention's values when not given; initial running mean 0 and
running variance 1 in both frameworks):

==============  ============================================  =========  ======
convention      update                                        momentum   eps
==============  ============================================  =========  ======
``pytorch``     ``run = (1 - m) * run + m * stat``,            0.1        1e-5
                variance: the *unbiased* ``M / (M - 1) * var``
``tensorflow``  ``run = m * run + (1 - m) * stat``,            0.99       1e-3
                variance: the biased ``var``
==============  ============================================  =========  ======

In PyTorch ``momentum`` is the weight of the new value, in TensorFlow/Keras that of
the old one. Both normalize the batch itself with the biased variance.

Edge cases, the rules:

* A batch of one value per feature (M = 1) in training mode: mean = x, var = 0,
  xhat = 0 and y = beta exactly; ``eps`` keeps 1/sqrt(var + eps) finite, and the
  gradient to x is exactly 0 (each feature is normalized against itself).
* A constant feature (M > 1, all rows equal): the same forward, var = 0, xhat = 0,
  y = beta exactly (the mean is computed relative to the first row, so it is
  exactly that constant). Its gradient to x is *not* zero:
  ``dx = gamma / sqrt(eps) * (dy - mean(dy))``, the true derivative, which finite
  differences confirm (a shift common to all rows cancels; any other does not).
* PyTorch's unbiased running variance with M = 1 is 0/0: ``update_running_stats``
  (and so ``batchnorm_forward`` with running statistics) raises ValueError, as
  ``torch.nn.BatchNorm*`` does ("Expected more than 1 value per channel when
  training"). Skipping the factor would quietly drag the running variance to 0 and
  blow up evaluation. The ``tensorflow`` convention has no factor and updates.
* Bad arguments raise at once with the argument's name, the expected and the actual
  shape or dtype; NumPy would otherwise broadcast a ``(1, F)`` gamma silently.
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from .checks import check_eps, check_float_array, check_upstream, check_vector

BN_CONVENTIONS = {
    "pytorch": {"momentum": 0.1, "eps": 1e-5},
    "tensorflow": {"momentum": 0.99, "eps": 1e-3},
}
_LAYOUTS = {2: "(N, F)", 3: "(B, T, F)", 4: "(N, C, H, W)"}


# ------------------------------------------------------------ the compiled core


def as_dtype_of(value, a):
    """``value`` as a scalar of ``a``'s dtype.

    Inside a kernel a Python number is float64 (or int64), and float32 combined
    with it is computed in float64: ``x[n, j] / M`` with an integer M promotes.
    The kernels convert their constants once with this function.
    """
    return a.dtype.type(value)


@overload(as_dtype_of, jit_options={"error_model": "numpy"})
def _as_dtype_of_compiled(value, a):
    if a.dtype == types.float32:
        return lambda value, a: np.float32(value)
    return lambda value, a: np.float64(value)


@njit(cache=True, error_model="numpy")
def bn_train_2d_into(x, gamma, beta, eps, y, xhat, inv_std, mean, var):
    """``bn_train_2d`` writing into given arrays: y, xhat (M, F); inv_std, mean,
    var (F,). The recurrent cells pass slices of their (T, ...) buffers, so a
    timestep allocates nothing. ``y`` may be ``x`` itself (normalized in place)."""
    M, F = x.shape
    m = as_dtype_of(M, x)
    # Each loop runs over the contiguous feature axis, so it vectorizes.
    # The mean relative to the first row: a constant feature gives exactly its
    # value, so that its centred values are exactly 0.
    for j in range(F):
        mean[j] = 0
        var[j] = 0
    for n in range(M):
        for j in range(F):
            mean[j] += x[n, j] - x[0, j]
    for j in range(F):
        mean[j] = x[0, j] + mean[j] / m
    # The variance from the centred values (two passes: no cancellation).
    for n in range(M):
        for j in range(F):
            d = x[n, j] - mean[j]
            var[j] += d * d
    for j in range(F):
        var[j] = var[j] / m
    # then normalize with these statistics, as evaluation mode does with its own
    bn_eval_forward_2d_into(x, gamma, beta, mean, var, eps, y, xhat, inv_std)


@njit(cache=True, error_model="numpy")
def bn_train_2d(x, gamma, beta, eps):
    """Training-mode forward with batch statistics.

    x: (M, F); gamma, beta: (F,); eps: scalar.
    Returns y, xhat: (M, F) and inv_std, mean, var: (F,), with var the biased
    batch variance and inv_std = 1 / sqrt(var + eps).
    """
    M, F = x.shape
    y, xhat = np.empty_like(x), np.empty_like(x)
    inv_std, mean, var = (
        np.empty(F, dtype=x.dtype),
        np.empty(F, dtype=x.dtype),
        np.empty(F, dtype=x.dtype),
    )
    bn_train_2d_into(x, gamma, beta, eps, y, xhat, inv_std, mean, var)
    return y, xhat, inv_std, mean, var


@njit(cache=True, error_model="numpy")
def bn_eval_2d(x, gamma, beta, mean, var, eps):
    """Evaluation-mode forward with given (running) statistics.

    x: (M, F); gamma, beta, mean, var: (F,) -> y: (M, F).
    """
    M, F = x.shape
    one, eps = as_dtype_of(1, x), as_dtype_of(eps, x)
    inv_std = np.empty(F, dtype=x.dtype)
    for j in range(F):
        inv_std[j] = one / np.sqrt(var[j] + eps)
    y = np.empty_like(x)
    for n in range(M):
        for j in range(F):
            y[n, j] = gamma[j] * (x[n, j] - mean[j]) * inv_std[j] + beta[j]
    return y


@njit(cache=True, error_model="numpy")
def bn_eval_forward_2d_into(x, gamma, beta, mean, var, eps, y, xhat, inv_std):
    """``bn_eval_forward_2d`` writing into y, xhat: (M, F) and inv_std: (F,)."""
    M, F = x.shape
    one, eps = as_dtype_of(1, x), as_dtype_of(eps, x)
    for j in range(F):
        inv_std[j] = one / np.sqrt(var[j] + eps)
    for n in range(M):
        for j in range(F):
            xhat[n, j] = (x[n, j] - mean[j]) * inv_std[j]
        for j in range(F):
            y[n, j] = gamma[j] * xhat[n, j] + beta[j]


@njit(cache=True, error_model="numpy")
def bn_eval_forward_2d(x, gamma, beta, mean, var, eps):
    """``bn_eval_2d`` that also returns what backward needs:
    y, xhat: (M, F) and inv_std: (F,)."""
    y, xhat, inv_std = np.empty_like(x), np.empty_like(x), np.empty(x.shape[1], dtype=x.dtype)
    bn_eval_forward_2d_into(x, gamma, beta, mean, var, eps, y, xhat, inv_std)
    return y, xhat, inv_std


@njit(cache=True, error_model="numpy")
def bn_eval_backward_2d_into(dy, xhat, inv_std, gamma, dx, dgamma, dbeta):
    """``bn_eval_backward_2d`` writing dx: (M, F) and *adding* this batch's
    dgamma, dbeta: (F,) to the given arrays (a timestep loop sums them)."""
    M, F = dy.shape
    for n in range(M):
        for j in range(F):
            dbeta[j] += dy[n, j]
        for j in range(F):
            dgamma[j] += dy[n, j] * xhat[n, j]
    for n in range(M):
        for j in range(F):
            dx[n, j] = dy[n, j] * (gamma[j] * inv_std[j])


@njit(cache=True, error_model="numpy")
def bn_eval_backward_2d(dy, xhat, inv_std, gamma):
    """Evaluation-mode backward: mean and var are constants.

    dy, xhat: (M, F); inv_std, gamma: (F,) -> dx = dy * gamma * inv_std: (M, F),
    dgamma, dbeta: (F,).
    """
    F = dy.shape[1]
    dx, dgamma, dbeta = (
        np.empty_like(dy),
        np.zeros(F, dtype=dy.dtype),
        np.zeros(F, dtype=dy.dtype),
    )
    bn_eval_backward_2d_into(dy, xhat, inv_std, gamma, dx, dgamma, dbeta)
    return dx, dgamma, dbeta


@njit(cache=True, error_model="numpy")
def bn_backward_2d_into(dy, xhat, inv_std, gamma, dx, dgamma, dbeta):
    """``bn_backward_2d`` writing dx: (M, F) and *adding* this batch's dgamma,
    dbeta: (F,) to the given arrays (a timestep loop sums them). ``dx`` may be
    ``dy`` itself."""
    M, F = dy.shape
    m = as_dtype_of(M, dy)
    sum_dy = np.zeros(F, dtype=dy.dtype)  # this batch's dbeta and dgamma
    sum_dy_xhat = np.zeros(F, dtype=dy.dtype)
    for n in range(M):
        for j in range(F):
            sum_dy[j] += dy[n, j]
        for j in range(F):
            sum_dy_xhat[j] += dy[n, j] * xhat[n, j]
    k = np.empty(F, dtype=dy.dtype)
    for j in range(F):
        k[j] = gamma[j] * inv_std[j] / m
        dbeta[j] += sum_dy[j]
        dgamma[j] += sum_dy_xhat[j]
    for n in range(M):
        for j in range(F):
            dx[n, j] = k[j] * (m * dy[n, j] - sum_dy[j] - xhat[n, j] * sum_dy_xhat[j])


@njit(cache=True, error_model="numpy")
def bn_backward_2d(dy, xhat, inv_std, gamma):
    """Training-mode backward, the closed form (gradient through mean and variance).

    dy, xhat: (M, F); inv_std, gamma: (F,) -> dx: (M, F), dgamma, dbeta: (F,).
    dx = gamma * inv_std / M * (M * dy - sum(dy) - xhat * sum(dy * xhat)),
    the sums over the M rows.
    """
    F = dy.shape[1]
    dx, dgamma, dbeta = (
        np.empty_like(dy),
        np.zeros(F, dtype=dy.dtype),
        np.zeros(F, dtype=dy.dtype),
    )
    bn_backward_2d_into(dy, xhat, inv_std, gamma, dx, dgamma, dbeta)
    return dx, dgamma, dbeta


# ------------------------------------------------------------ images, channels in place
# The same equations on x: (N, C, S), S = H*W, the statistics of channel c over n
# and s. The inner loops run over the contiguous s, so their sums vectorize only
# when reassociation is allowed (a change of rounding only).


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def bn_train_images(x, gamma, beta, eps):
    """Training-mode forward of images. x: (N, C, S); gamma, beta: (C,).
    Returns y, xhat: (N, C, S) and inv_std, mean, var: (C,), as ``bn_train_2d``."""
    N, C, S = x.shape
    m, zero = as_dtype_of(N * S, x), as_dtype_of(0, x)
    mean, var = np.empty(C, dtype=x.dtype), np.empty(C, dtype=x.dtype)
    for c in range(C):
        first, total = x[0, c, 0], zero  # relative to the first value, as in 2-D
        for n in range(N):
            for s in range(S):
                total += x[n, c, s] - first
        mean[c] = first + total / m
        squares = zero
        for n in range(N):
            for s in range(S):
                d = x[n, c, s] - mean[c]
                squares += d * d
        var[c] = squares / m
    y, xhat, inv_std = bn_eval_forward_images(x, gamma, beta, mean, var, eps)
    return y, xhat, inv_std, mean, var


@njit(cache=True, error_model="numpy")
def bn_eval_forward_images(x, gamma, beta, mean, var, eps):
    """Forward of images with given statistics. x: (N, C, S); gamma, beta, mean,
    var: (C,) -> y, xhat: (N, C, S) and inv_std: (C,)."""
    N, C, S = x.shape
    one, eps = as_dtype_of(1, x), as_dtype_of(eps, x)
    y, xhat, inv_std = np.empty_like(x), np.empty_like(x), np.empty(C, dtype=x.dtype)
    for c in range(C):
        inv_std[c] = one / np.sqrt(var[c] + eps)
    for n in range(N):
        for c in range(C):
            mu, k, g, b = mean[c], inv_std[c], gamma[c], beta[c]
            for s in range(S):
                xhat[n, c, s] = (x[n, c, s] - mu) * k
                y[n, c, s] = g * xhat[n, c, s] + b
    return y, xhat, inv_std


@njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _channel_sums(dy, xhat):
    """(sum of dy, sum of dy * xhat) over n and s, per channel: two (C,) arrays."""
    N, C, S = dy.shape
    zero = as_dtype_of(0, dy)
    sum_dy, sum_dy_xhat = np.empty(C, dtype=dy.dtype), np.empty(C, dtype=dy.dtype)
    for c in range(C):
        a, b = zero, zero
        for n in range(N):
            for s in range(S):
                a += dy[n, c, s]
                b += dy[n, c, s] * xhat[n, c, s]
        sum_dy[c], sum_dy_xhat[c] = a, b
    return sum_dy, sum_dy_xhat


@njit(cache=True, error_model="numpy")
def bn_backward_images(dy, xhat, inv_std, gamma):
    """Training-mode backward of images, the closed form of ``bn_backward_2d``.
    dy, xhat: (N, C, S); inv_std, gamma: (C,) -> dx: (N, C, S), dgamma, dbeta: (C,)."""
    N, C, S = dy.shape
    m = as_dtype_of(N * S, dy)
    dbeta, dgamma = _channel_sums(dy, xhat)
    dx = np.empty_like(dy)
    for n in range(N):
        for c in range(C):
            k, a, b = gamma[c] * inv_std[c] / m, dbeta[c], dgamma[c]
            for s in range(S):
                dx[n, c, s] = k * (m * dy[n, c, s] - a - xhat[n, c, s] * b)
    return dx, dgamma, dbeta


@njit(cache=True, error_model="numpy")
def bn_eval_backward_images(dy, xhat, inv_std, gamma):
    """Evaluation-mode backward of images: dx = dy * gamma * inv_std.
    dy, xhat: (N, C, S); inv_std, gamma: (C,) -> dx: (N, C, S), dgamma, dbeta: (C,)."""
    N, C, S = dy.shape
    dbeta, dgamma = _channel_sums(dy, xhat)
    dx = np.empty_like(dy)
    for n in range(N):
        for c in range(C):
            k = gamma[c] * inv_std[c]
            for s in range(S):
                dx[n, c, s] = dy[n, c, s] * k
    return dx, dgamma, dbeta


# ------------------------------------------------------------ checks and layouts


def _check_bn_input(x):
    check_float_array("x", x)
    if x.ndim not in _LAYOUTS:
        raise ValueError(
            f"x: expected shape {', '.join(_LAYOUTS.values())}, got {x.shape} ({x.ndim}-D)"
        )
    if x.size == 0:
        raise ValueError(f"x: expected at least one example and one feature, got {x.shape}")
    return x.shape[1] if x.ndim == 4 else x.shape[-1]


def to_2d(x):
    """(N, F), (B, T, F) or (N, C, H, W) -> the (M, F) view the core works on,
    C-contiguous (a copy only for images, whose channel axis moves last)."""
    if x.ndim == 4:
        N, C, H, W = x.shape
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(N * H * W, C)
    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


def _images_view(x):
    """(N, C, H, W) -> the (N, C, H*W) view the image kernels work on, C-contiguous
    (a copy only when x is not)."""
    N, C, H, W = x.shape
    return np.ascontiguousarray(x).reshape(N, C, H * W)


def from_2d(a, shape):
    """The inverse of ``to_2d``: (M, F) back to ``shape``, C-contiguous."""
    if len(shape) == 4:
        N, C, H, W = shape
        return np.ascontiguousarray(a.reshape(N, H, W, C).transpose(0, 3, 1, 2))
    return a.reshape(shape)


# ------------------------------------------------------------ the public pair


def batchnorm_defaults(convention="pytorch", momentum=None, eps=None):
    """(momentum, eps): the given values, or the convention's defaults."""
    if convention not in BN_CONVENTIONS:
        raise ValueError(
            f"convention: expected one of {sorted(BN_CONVENTIONS)}, got {convention!r}"
        )
    defaults = BN_CONVENTIONS[convention]
    momentum = defaults["momentum"] if momentum is None else momentum
    eps = defaults["eps"] if eps is None else eps
    if not 0 <= momentum <= 1:
        raise ValueError(f"momentum: expected a number in [0, 1], got {momentum}")
    return float(momentum), check_eps(eps)


def update_running_stats(running_mean, running_var, mean, var, count, *, momentum, convention):
    """One step of the exponential moving averages; returns new arrays
    (new_running_mean, new_running_var). ``mean`` and ``var`` are the batch's, var
    biased; ``count`` is M, the number of values each statistic was taken over.

    pytorch:    run = (1 - momentum) * run + momentum * stat, var made unbiased
    tensorflow: run = momentum * run + (1 - momentum) * stat
    """
    dtype = running_mean.dtype.type
    if convention == "pytorch":
        if count < 2:
            raise ValueError(
                f"running_var: the pytorch convention updates it with the unbiased "
                f"batch variance M/(M-1) * var, undefined for a batch of one value per "
                f"feature (M = {count}); use a batch with M >= 2, "
                f"convention='tensorflow', or pass no running statistics"
            )
        unbiased = var * dtype(count / (count - 1))
        new_mean = dtype(1 - momentum) * running_mean + dtype(momentum) * mean
        new_var = dtype(1 - momentum) * running_var + dtype(momentum) * unbiased
    elif convention == "tensorflow":
        new_mean = dtype(momentum) * running_mean + dtype(1 - momentum) * mean
        new_var = dtype(momentum) * running_var + dtype(1 - momentum) * var
    else:
        raise ValueError(
            f"convention: expected one of {sorted(BN_CONVENTIONS)}, got {convention!r}"
        )
    return new_mean, new_var


def batchnorm_forward(
    x,
    gamma,
    beta,
    *,
    training=True,
    running_mean=None,
    running_var=None,
    momentum=None,
    eps=None,
    convention="pytorch",
):
    """Batch normalization of x: (N, F), (B, T, F) or (N, C, H, W) -> (y, cache).

    gamma, beta: (F,) (C for images), the dtype of x. Training mode normalizes with
    the batch statistics; when ``running_mean`` and ``running_var`` (both, (F,)) are
    given, the updated statistics are returned as new arrays in
    ``cache["running_mean"]`` and ``cache["running_var"]`` (None when not given);
    no argument is modified. Evaluation mode (``training=False``) needs the running
    statistics and normalizes with them; the cache then holds them unchanged.
    ``momentum`` and ``eps`` default to the ``convention``'s values (see the module
    docstring); ``cache["mean"]`` and ``cache["var"]`` are the statistics used.
    """
    momentum, eps = batchnorm_defaults(convention, momentum, eps)
    F = _check_bn_input(x)
    context = f"x of shape {x.shape} {_LAYOUTS[x.ndim]}"
    gamma = check_vector("gamma", gamma, F, x.dtype, context)
    beta = check_vector("beta", beta, F, x.dtype, context)
    if (running_mean is None) != (running_var is None):
        given = "running_mean" if running_var is None else "running_var"
        raise ValueError(f"running_mean, running_var: expected both or neither, got only {given}")
    if running_mean is not None:
        running_mean = check_vector("running_mean", running_mean, F, x.dtype, context)
        running_var = check_vector("running_var", running_var, F, x.dtype, context)
    images = x.ndim == 4
    x2 = _images_view(x) if images else to_2d(x)
    M = x2.shape[0] * x2.shape[2] if images else x2.shape[0]
    if training:
        train = bn_train_images if images else bn_train_2d
        y2, xhat, inv_std, mean, var = train(x2, gamma, beta, eps)
        new_mean = new_var = None
        if running_mean is not None:
            new_mean, new_var = update_running_stats(
                running_mean, running_var, mean, var, M, momentum=momentum, convention=convention
            )
        cache = {
            "training": True,
            "shape": x.shape,
            "xhat": xhat,
            "inv_std": inv_std,
            "gamma": gamma,
            "mean": mean,
            "var": var,
            "eps": eps,
            "running_mean": new_mean,
            "running_var": new_var,
        }
    else:
        if running_mean is None:
            raise ValueError(
                "running_mean, running_var: evaluation mode (training=False) "
                "normalizes with the running statistics; pass both"
            )
        eval_forward = bn_eval_forward_images if images else bn_eval_forward_2d
        y2, xhat, inv_std = eval_forward(x2, gamma, beta, running_mean, running_var, eps)
        cache = {
            "training": False,
            "shape": x.shape,
            "xhat": xhat,
            "inv_std": inv_std,
            "gamma": gamma,
            "mean": running_mean.copy(),
            "var": running_var.copy(),
            "eps": eps,
            "running_mean": running_mean,
            "running_var": running_var,
        }
    return (y2.reshape(x.shape) if images else from_2d(y2, x.shape)), cache


def batchnorm_backward(dy, cache):
    """dy: like y -> (dx: like x, dgamma: (F,), dbeta: (F,)).

    Training mode: the closed form through the batch mean and variance
    (``bn_backward_2d``). Evaluation mode: mean and variance are constants, so
    dx = dy * gamma * inv_std.
    """
    shape = cache["shape"]
    dy = check_upstream(dy, shape, cache["gamma"].dtype)
    args = cache["xhat"], cache["inv_std"], cache["gamma"]
    if len(shape) == 4:
        backward = bn_backward_images if cache["training"] else bn_eval_backward_images
        dx, dgamma, dbeta = backward(_images_view(dy), *args)
        return dx.reshape(shape), dgamma, dbeta
    backward_2d = bn_backward_2d if cache["training"] else bn_eval_backward_2d
    dx2, dgamma, dbeta = backward_2d(to_2d(dy), *args)
    return from_2d(dx2, shape), dgamma, dbeta


def bn_backward_staged(dy, cache):
    """The training-mode backward node by node through the graph, in plain NumPy.

    Forward graph (per feature; sums over the M rows)::

        mu = sum(x) / M                 xc = x - mu
        var = sum(xc**2) / M            inv_std = (var + eps) ** -0.5
        xhat = xc * inv_std             y = gamma * xhat + beta

    Each line below is one node's backward, from y down to x. x fans out (into mu
    and xc) and so does xc (into var and xhat): their gradients are sums.
    Same arguments and results as ``batchnorm_backward``; the tests hold the two
    equal.
    """
    if not cache["training"]:
        raise ValueError(
            "bn_backward_staged: this is the training-mode graph; in "
            "evaluation mode mean and var are constants and "
            "dx = dy * gamma * inv_std (batchnorm_backward)"
        )
    dy = to_2d(check_upstream(dy, cache["shape"], cache["gamma"].dtype))
    xhat, inv_std, gamma = cache["xhat"], cache["inv_std"], cache["gamma"]
    if len(cache["shape"]) == 4:  # the image kernels' (N, C, H*W) layout
        xhat = to_2d(xhat.reshape(cache["shape"]))
    M = dy.shape[0]
    xc = xhat / inv_std  # the centred values x - mu
    # y = gamma * xhat + beta
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    dxhat = dy * gamma
    # xhat = xc * inv_std
    dxc = dxhat * inv_std
    dinv_std = (dxhat * xc).sum(axis=0)
    # inv_std = (var + eps) ** -0.5
    dvar = -0.5 * inv_std**3 * dinv_std
    # var = sum(xc ** 2) / M: the second path into xc
    dxc = dxc + dvar * 2 * xc / M
    # xc = x - mu
    dx = dxc
    dmu = -dxc.sum(axis=0)
    # mu = sum(x) / M: the second path into x
    dx = dx + dmu / M
    return from_2d(dx, cache["shape"]), dgamma, dbeta


# ------------------------------------------------------------ batch renormalization


@njit(cache=True, error_model="numpy")
def bn_renorm_train_2d_into(
    x, gamma, beta, eps, pop_mean, pop_var, rmax, dmax, y, xhat_b, inv_std, mean, var, r, d
):
    """Batch renormalization (Ioffe 2017), training forward, writing into given arrays.

    x: (M, F); gamma, beta, pop_mean, pop_var: (F,). With the batch's mean and
    biased variance (written to mean, var: (F,)) and sigma_B = sqrt(var + eps),
    sigma = sqrt(pop_var + eps)::

        r = clip(sigma_B / sigma, 1/rmax, rmax)
        d = clip((mean - pop_mean) / sigma, -dmax, dmax)
        xhat_b = (x - mean) / sigma_B
        y = gamma * (xhat_b * r + d) + beta

    Unclipped, ``xhat_b * r + d = (x - pop_mean) / sigma``: the population's
    normalization, which is what evaluation uses; clipped, it stays near the
    batch's. r and d (written to r, d: (F,)) are constants for backward.
    Writes y, xhat_b: (M, F) (the batch-normalized values, which backward needs)
    and inv_std = 1 / sigma_B: (F,).
    """
    M, F = x.shape
    one, eps = as_dtype_of(1, x), as_dtype_of(eps, x)
    rmax, dmax = as_dtype_of(rmax, x), as_dtype_of(dmax, x)
    bn_train_2d_into(x, gamma, beta, eps, y, xhat_b, inv_std, mean, var)
    for j in range(F):
        sigma = np.sqrt(pop_var[j] + eps)
        r[j] = min(max(np.sqrt(var[j] + eps) / sigma, one / rmax), rmax)
        d[j] = min(max((mean[j] - pop_mean[j]) / sigma, -dmax), dmax)
    for n in range(M):
        for j in range(F):
            y[n, j] = gamma[j] * (xhat_b[n, j] * r[j] + d[j]) + beta[j]


@njit(cache=True, error_model="numpy")
def bn_renorm_backward_2d_into(dy, xhat_b, inv_std, r, d, gamma, dx, dgamma, dbeta):
    """Backward of ``bn_renorm_train_2d_into`` with r and d held constant: the
    training-mode backward of ``xhat_b`` with the gain gamma * r, and
    dgamma = sum(dy * (xhat_b * r + d)). Writes dx: (M, F), *adds* to dgamma,
    dbeta: (F,). ``dx`` may be ``dy`` itself."""
    M, F = dy.shape
    m = as_dtype_of(M, dy)
    sum_dy = np.zeros(F, dtype=dy.dtype)
    sum_dy_xhat = np.zeros(F, dtype=dy.dtype)
    for n in range(M):
        for j in range(F):
            sum_dy[j] += dy[n, j]
        for j in range(F):
            sum_dy_xhat[j] += dy[n, j] * xhat_b[n, j]
    k = np.empty(F, dtype=dy.dtype)
    for j in range(F):
        k[j] = gamma[j] * r[j] * inv_std[j] / m
        dbeta[j] += sum_dy[j]
        dgamma[j] += r[j] * sum_dy_xhat[j] + d[j] * sum_dy[j]
    for n in range(M):
        for j in range(F):
            dx[n, j] = k[j] * (m * dy[n, j] - sum_dy[j] - xhat_b[n, j] * sum_dy_xhat[j])
