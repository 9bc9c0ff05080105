r"""2-D convolution (cross-correlation, as in every framework), NCHW.

Shapes: ``x: (N, C, H, W)``, ``W: (F, C, KH, KW)``, ``b: (F,)``,
``out: (N, F, OH, OW)`` with, per spatial axis, stride $s$ and zero padding $p$,

$$OH = \left\lfloor \frac{H + 2p - KH}{s} \right\rfloor + 1 .$$

Every output pixel is a dot product between the filter and one window of the
(padded) input:

$$\mathrm{out}_{n f i j} = b_f + \sum_{c, u, v} W_{f c u v}\, x_{n, c,\, s i + u,\, s j + v}.$$

**Forward as one matrix product (im2col).** Copy every window into one column of a
matrix ``cols`` of shape ``(C*KH*KW, N*OH*OW)``: rows are ordered ``(c, u, v)``,
the same as ``W.reshape(F, C*KH*KW)``, columns ``(n, i, j)``. Then

$$\mathrm{out} = W_2\, \mathrm{cols} + b, \qquad W_2 = W.\mathrm{reshape}(F, C \cdot KH \cdot KW),$$

an ``(F, N*OH*OW)`` matrix, reshaped to ``(F, N, OH, OW)`` and moved to NCHW. The
windows come from ``numpy.lib.stride_tricks.sliding_window_view`` (a view, no
copy); the one copy is ``reshape`` of the transposed view into ``cols``. (This
layout, with the batch inside the columns, lets one large matrix product do all
the work; moving ``F`` in front of ``N`` and back copies whole ``OH*OW`` images,
which is cheap.)

**Backward.** With $\delta$ = dL/dout laid out like the product, ``(F, N*OH*OW)``,
the product rule of ``W2 @ cols`` gives

$$dW_2 = \delta\, \mathrm{cols}^\top, \qquad db = \textstyle\sum_{\text{columns}} \delta,
\qquad d\,\mathrm{cols} = W_2^\top \delta .$$

``dcols`` holds one gradient per *copy* of an input pixel; a pixel that sits in
several windows receives the sum of its copies' gradients (col2im). We add them
back with one strided slice per kernel offset $(u, v)$: kernel offset $(u, v)$ of
window $(i, j)$ is input pixel $(s i + u, s j + v)$, so for fixed $(u, v)$ the
windows touch distinct pixels and a plain ``+=`` on a strided view is exact. That
is ``KH*KW`` vectorized additions, with no loop over pixels (``col2im``). Finally
the padding is cut off (its gradient is discarded: padded zeros are constants).
``conv2d_backward`` runs the same sums as one compiled pass over ``dcols``
(``add_window_copies``), writing straight into the (N, C, H, W) layout; ``col2im``
is its readable twin, and the tests hold the two equal. The strided additions
read ``dcols`` ``KH*KW`` times over a 4-D view and took about twice as long in
the CNN's training step (``benchmarks/levers.py``).

``conv2d_naive`` is the definition above as four nested loops; the tests compare
the two.
"""

import numpy as np
from numba import njit
from numpy.lib.stride_tricks import sliding_window_view

from .checks import check_image, check_pair


def _check_conv_args(x, W, b, stride, padding):
    check_image("x", x)
    check_image("W", W)
    if W.shape[1] != x.shape[1]:
        raise ValueError(
            f"W: expected shape (F, {x.shape[1]}, KH, KW) to match x's "
            f"{x.shape[1]} channels (x of shape {x.shape}), got {W.shape}"
        )
    if W.dtype != x.dtype:
        raise TypeError(
            f"x: expected dtype {W.dtype} like W, got {x.dtype}; convert one of them with .astype()"
        )
    if not isinstance(b, np.ndarray) or b.shape != (W.shape[0],):
        raise ValueError(
            f"b: expected shape ({W.shape[0]},) = (F,) for W of shape {W.shape}, "
            f"got {getattr(b, 'shape', type(b).__name__)}"
        )
    if b.dtype != W.dtype:
        raise TypeError(f"b: expected dtype {W.dtype} like W, got {b.dtype}")
    sh, sw = check_pair("stride", stride, 1)
    ph, pw = check_pair("padding", padding, 0)
    N, C, H, Wd = x.shape
    F, _, KH, KW = W.shape
    if KH < 1 or KW < 1:
        raise ValueError(f"W: expected a kernel of at least 1x1, got shape {W.shape}")
    OH = (H + 2 * ph - KH) // sh + 1
    OW = (Wd + 2 * pw - KW) // sw + 1
    if H + 2 * ph < KH or Wd + 2 * pw < KW:
        raise ValueError(
            f"x: the {KH}x{KW} kernel does not fit in the padded input: x of "
            f"shape {x.shape} with padding {(ph, pw)} is "
            f"{H + 2 * ph}x{Wd + 2 * pw}"
        )
    return (sh, sw), (ph, pw), (OH, OW)


def _pad(x, ph, pw):
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def im2col(xp, KH, KW, stride, OH, OW):
    """Padded xp: (N, C, Hp, Wp) -> cols: (C*KH*KW, N*OH*OW), one window per
    column, rows in (c, u, v) order, columns in (n, i, j) order."""
    sh, sw = stride
    N, C = xp.shape[:2]
    # (N, C, Hp-KH+1, Wp-KW+1, KH, KW): every window position, as a view
    windows = sliding_window_view(xp, (KH, KW), axis=(2, 3))
    windows = windows[
        :, :, : sh * (OH - 1) + 1 : sh, : sw * (OW - 1) + 1 : sw
    ]  # (N, C, OH, OW, KH, KW)
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(C * KH * KW, N * OH * OW)


def col2im(dcols, padded_shape, KH, KW, stride, OH, OW):
    """The adjoint of ``im2col``: sum every window copy's gradient into its pixel.
    dcols: (C*KH*KW, N*OH*OW) -> dxp: padded_shape (N, C, Hp, Wp)."""
    sh, sw = stride
    N, C, Hp, Wp = padded_shape
    d6 = dcols.reshape(C, KH, KW, N, OH, OW)
    dxp = np.zeros((C, N, Hp, Wp), dtype=dcols.dtype)  # channel-first, like d6
    for u in range(KH):
        for v in range(KW):
            dxp[:, :, u : u + sh * (OH - 1) + 1 : sh, v : v + sw * (OW - 1) + 1 : sw] += d6[:, u, v]
    return dxp.transpose(1, 0, 2, 3)


@njit(cache=True, nogil=True, error_model="numpy")
def add_window_copies(dcols, KH, KW, stride, OH, OW, dxp):
    """``col2im`` as one pass over dcols: (C*KH*KW, N*OH*OW), adding the gradient of
    each copy of a pixel into dxp: (N, C, Hp, Wp), which holds zeros."""
    sh, sw = stride
    N, C = dxp.shape[:2]
    for c in range(C):
        for u in range(KH):
            for v in range(KW):
                row = (c * KH + u) * KW + v  # rows in (c, u, v) order
                for n in range(N):
                    for i in range(OH):
                        column = (n * OH + i) * OW  # columns in (n, i, j) order
                        copies = dcols[row, column : column + OW]
                        pixels = dxp[n, c, sh * i + u]
                        if sw == 1:  # an index j of range(OW): a loop that vectorizes
                            pixels = pixels[v:]
                            for j in range(OW):
                                pixels[j] += copies[j]
                        else:
                            for j in range(OW):
                                pixels[sw * j + v] += copies[j]


def conv2d_forward(x, W, b, stride=1, padding=0):
    """x: (N, C, H, W), W: (F, C, KH, KW), b: (F,) -> (out: (N, F, OH, OW), cache).

    ``stride`` and ``padding`` (zeros on both sides) are an int or a pair (rows,
    columns). ``out`` is a C-contiguous array of x's dtype.
    """
    stride, (ph, pw), (OH, OW) = _check_conv_args(x, W, b, stride, padding)
    N = x.shape[0]
    F, C, KH, KW = W.shape
    xp = _pad(x, ph, pw)
    cols = im2col(xp, KH, KW, stride, OH, OW)  # (C*KH*KW, N*OH*OW)
    out = W.reshape(F, -1) @ cols  # (F, N*OH*OW)
    out += b[:, None]
    out = np.ascontiguousarray(out.reshape(F, N, OH, OW).transpose(1, 0, 2, 3))
    return out, (cols, W, xp.shape, (ph, pw), stride, out.shape)


def conv2d_backward(dout, cache, input_grad=True):
    """dout: (N, F, OH, OW) -> (dx: (N, C, H, W), dW: (F, C, KH, KW), db: (F,)).

    ``input_grad=False`` (a network's first layer, whose input is data): dx is
    None, and the product ``W_2^T delta`` and col2im are skipped."""
    cols, W, padded_shape, (ph, pw), stride, out_shape = cache
    if np.shape(dout) != out_shape:
        raise ValueError(
            f"dout: expected the shape of the forward output (N, F, OH, OW) = "
            f"{out_shape}, got {np.shape(dout)}"
        )
    N, F, OH, OW = out_shape
    C, KH, KW = W.shape[1:]
    Hp, Wp = padded_shape[2:]
    delta = dout.transpose(1, 0, 2, 3).reshape(F, N * OH * OW)  # laid out like W2 @ cols
    dW = (delta @ cols.T).reshape(W.shape)
    db = delta.sum(axis=1)
    if not input_grad:
        return None, dW, db
    dcols = W.reshape(F, -1).T @ delta  # (C*KH*KW, N*OH*OW)
    dxp = np.zeros(padded_shape, dtype=dcols.dtype)
    add_window_copies(dcols, KH, KW, stride, OH, OW, dxp)
    dx = dxp[:, :, ph : Hp - ph, pw : Wp - pw]
    return dx, dW, db


def conv2d_naive(x, W, b, stride=1, padding=0):
    """The definition, loop by loop: the reference the tests compare against."""
    (sh, sw), (ph, pw), (OH, OW) = _check_conv_args(x, W, b, stride, padding)
    N = x.shape[0]
    F, C, KH, KW = W.shape
    xp = _pad(x, ph, pw)
    out = np.zeros((N, F, OH, OW), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(OH):
                for j in range(OW):
                    window = xp[n, :, i * sh : i * sh + KH, j * sw : j * sw + KW]
                    out[n, f, i, j] = np.sum(window * W[f]) + b[f]
    return out
