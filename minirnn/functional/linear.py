"""The affine (fully connected) layer ``y = x W + b``.

Shapes: ``x: (..., in)``, ``W: (in, out)``, ``b: (out,)``, ``y: (..., out)``.
Leading axes are flattened, so the same code serves a batch ``(N, in)`` and a
time-distributed layer on sequences ``(B, T, in)``.

Backward, with $\\delta = \\partial L / \\partial y$:
$\\partial L/\\partial x = \\delta W^\\top$, $\\partial L/\\partial W = x^\\top \\delta$,
$\\partial L/\\partial b = \\sum \\delta$ over every leading axis.
"""


def affine_forward(x, W, b):
    """x: (..., in), W: (in, out), b: (out,) -> (y: (..., out), cache)."""
    y = x @ W + b
    # The cache refers to W (no copy is made): backward needs it for dx.
    return y, (x, W)


def affine_backward(dy, cache):
    """dy: (..., out) -> (dx: (..., in), dW: (in, out), db: (out,))."""
    x, W = cache
    x2 = x.reshape(-1, x.shape[-1])
    dy2 = dy.reshape(-1, dy.shape[-1])
    dx = dy @ W.T
    dW = x2.T @ dy2
    db = dy2.sum(axis=0)
    return dx, dW, db
