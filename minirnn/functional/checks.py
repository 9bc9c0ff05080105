"""Argument checks shared by ``functional`` and ``cells``.

NumPy broadcasts silently: a gamma of shape ``(1, F)`` or an upstream gradient of
the wrong shape would run and give wrong numbers. The ops call these checks on
entry, so that a bad argument fails at once with its name, the expected and the
actual shape or dtype. Each check returns the argument (converted where it says
so), so that a call reads ``gamma = check_vector("gamma", gamma, ...)``.
"""

import numpy as np


def check_float_array(name, a):
    """``a`` itself, or TypeError unless it is a float32/float64 NumPy array."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy array, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")
    return a


def check_vector(name, a, size, dtype, context):
    """A per-feature vector: shape (size,) and the dtype of x; contiguous."""
    check_float_array(name, a)
    if a.shape != (size,):
        raise ValueError(
            f"{name}: expected shape ({size},), one value per feature of {context}, got {a.shape}"
        )
    if a.dtype != dtype:
        raise TypeError(
            f"{name}: expected dtype {dtype} like x, got {a.dtype}; "
            f"convert one of them with .astype()"
        )
    return np.ascontiguousarray(a)


def check_eps(eps):
    """A normalization's eps as a float: finite and > 0."""
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(
            f"eps: expected a finite number > 0 (it keeps 1/sqrt(var + eps) finite), got {eps}"
        )
    return float(eps)


def check_upstream(dy, shape, dtype, name="dy", output="the output y"):
    """The upstream gradient: exactly the shape of the output it belongs to;
    returned in ``dtype``."""
    check_float_array(name, dy)
    if dy.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)} like {output}, got {dy.shape}")
    return dy.astype(dtype, copy=False)


def check_image(name, x):
    """A batch of images (N, C, H, W), float32 or float64."""
    check_float_array(name, x)
    if x.ndim != 4:
        raise ValueError(
            f"{name}: expected shape (N, C, H, W), got {x.shape} ({x.ndim}-D); "
            f"a batch of single-channel images (N, H, W) needs x[:, None]"
        )
    return x


def check_pair(name, value, minimum):
    """An int or a pair of ints (a kernel size, a stride, a padding) -> (a, b),
    each at least ``minimum``."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    else:
        try:
            pair = tuple(int(v) for v in value)
            ok = len(pair) == 2 and all(float(v) == int(v) for v in value)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name}: expected values >= {minimum}, got {value!r}")
    return pair
