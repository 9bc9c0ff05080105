r"""Max-pooling and flattening, NCHW.

**Max-pool.** Each output is the largest value of one ``size``-window of its own
channel, windows ``stride`` apart (default: ``stride = size``, no overlap), with
no padding: an input of height $H$ gives $\lfloor (H - k)/s \rfloor + 1$ rows, so
the rows and columns that do not fill a whole window are dropped (TensorFlow's and
Keras's ``padding="valid"``; 11 -> 5 for a 2x2 pool).

$$\mathrm{out}_{n c i j} = \max_{u, v}\, x_{n, c,\, s i + u,\, s j + v}.$$

**Backward: routing.** Within a window, the max is locally the identity on its
winning entry and ignores the others, so the whole upstream gradient goes to the
winner and nothing to the rest:

$$\frac{\partial L}{\partial x_{n c p q}} =
\sum_{(i, j):\ (p, q) = \arg\max \text{ of window } (i, j)}
\frac{\partial L}{\partial\, \mathrm{out}_{n c i j}} .$$

(The sum matters only when windows overlap, ``stride < size``, and one pixel wins
several of them.) The forward pass keeps the winner's position inside each window
(its index ``u * size[1] + v`` in the flattened window); backward adds ``dout``
to the winners.

**Two forms of backward.** ``maxpool2d_backward`` runs a compiled loop
(``route_to_winners``) that adds each ``dout`` entry to its winner in one pass.
``maxpool2d_backward_strided`` is its readable twin in vectorized NumPy: one
strided ``+=`` per window offset, like col2im in ``conv.py``, ``size * size``
passes over the batch; it took twice as long in the CNN (``benchmarks/levers.py``),
and the tests hold the two equal. The forward pass is vectorized NumPy alone (a
compiled loop over the windows was slower).

**Tie rule.** When several entries of a window share the maximum, the *first* in
row-major order of the window (smallest row, then smallest column, as NumPy's
``argmax`` would choose) receives the whole gradient and the others get zero. Any choice is a
valid subgradient; the max is not differentiable there, and finite differences
disagree with every choice, which is why the gradient tests keep ties out.

**Flatten.** ``(N, C, H, W) -> (N, C*H*W)`` in C order (channel, row, column);
backward reshapes back. (TensorFlow's NHWC layout flattens (row, column, channel):
the same numbers in another order, which only permutes the next layer's weights.)
"""

import numpy as np
from numba import njit

from .checks import check_image, check_pair


def _pool_args(x, size, stride):
    """The checked (kh, kw), (sh, sw) and (OH, OW) of a max-pool of x."""
    check_image("x", x)
    kh, kw = check_pair("size", size, 1)
    sh, sw = check_pair("stride", (kh, kw) if stride is None else stride, 1)
    N, C, H, W = x.shape
    if H < kh or W < kw:
        raise ValueError(
            f"x: expected height >= {kh} and width >= {kw} for a {kh}x{kw} "
            f"pool, got x of shape {x.shape}"
        )
    return (kh, kw), (sh, sw), ((H - kh) // sh + 1, (W - kw) // sw + 1)


def maxpool2d_forward(x, size=2, stride=None):
    """x: (N, C, H, W) -> (out: (N, C, OH, OW), cache). ``size`` and ``stride`` are
    an int or a pair; ``stride`` defaults to ``size``."""
    (kh, kw), (sh, sw), (OH, OW) = _pool_args(x, size, stride)

    def at(u, v):  # entry (u, v) of every window at once: a strided view (N, C, OH, OW)
        return x[:, :, u : u + sh * (OH - 1) + 1 : sh, v : v + sw * (OW - 1) + 1 : sw]

    # A running max over the kh*kw window offsets in row-major order. Only a strictly
    # larger entry takes over, so each window's winner is its first maximum.
    out = at(0, 0).copy()
    winner = np.zeros(out.shape, dtype=np.min_scalar_type(kh * kw - 1))
    for k in range(1, kh * kw):
        candidate = at(k // kw, k % kw)
        larger = candidate > out
        np.maximum(out, candidate, out=out)
        winner += larger * (k - winner)  # winner[larger] = k, without the slow masked write
    return out, (winner, x.shape, (kh, kw), (sh, sw))


@njit(cache=True, nogil=True)
def route_to_winners(dout, winner, kw, sh, sw, dx):
    """Add each dout[n, c, i, j] to the input pixel that won window (i, j)."""
    N, C, OH, OW = dout.shape
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    k = winner[n, c, i, j]
                    dx[n, c, sh * i + k // kw, sw * j + k % kw] += dout[n, c, i, j]


def maxpool2d_backward(dout, cache):
    """dout: (N, C, OH, OW) -> dx: (N, C, H, W), dout routed to each window's winner."""
    winner, x_shape, (kh, kw), (sh, sw) = cache
    _check_pool_upstream(dout, winner)
    dout = np.asarray(dout)
    dx = np.zeros(x_shape, dtype=dout.dtype)
    route_to_winners(dout, winner, kw, sh, sw, dx)
    return dx


def _check_pool_upstream(dout, winner):
    if np.shape(dout) != winner.shape:
        raise ValueError(
            f"dout: expected the shape of the forward output (N, C, OH, OW) = "
            f"{winner.shape}, got {np.shape(dout)}"
        )


def maxpool2d_backward_strided(dout, cache):
    """``maxpool2d_backward`` in vectorized NumPy, the readable twin."""
    winner, x_shape, (kh, kw), (sh, sw) = cache
    _check_pool_upstream(dout, winner)
    OH, OW = winner.shape[2:]
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for u in range(kh):
        for v in range(kw):
            routed = dout * (winner == u * kw + v)  # zero where (u, v) did not win
            dx[:, :, u : u + sh * (OH - 1) + 1 : sh, v : v + sw * (OW - 1) + 1 : sw] += routed
    return dx


def flatten_forward(x):
    """x: (N, ...) -> (x.reshape(N, -1), cache)."""
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"x: expected at least one axis (the batch), got shape {x.shape}")
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout, cache):
    """dout: (N, prod(rest)) -> dx with x's shape."""
    shape = cache
    if np.shape(dout) != (shape[0], int(np.prod(shape[1:], dtype=np.int64))):
        raise ValueError(
            f"dout: expected shape {(shape[0], int(np.prod(shape[1:])))}, got {np.shape(dout)}"
        )
    return dout.reshape(shape)
