r"""Finite-difference gradient checking, for any cell module or functional op.

The scalar that is differentiated is ``L = sum(out * R)`` with ``R`` a fixed
random array: its upstream gradient ``dL/dout = R`` is random, so no term of
the backward pass can hide behind a symmetric upstream gradient (an all-ones
``dout`` makes batch norm's input gradient zero whatever the code does).

Every entry of every tensor is perturbed in float64 and the central difference

$$\frac{\partial L}{\partial \theta_k} \approx
\frac{L(\theta + h e_k) - L(\theta - h e_k)}{2h}$$

is compared with the analytic gradient by the max-norm relative error

$$\mathrm{err} = \frac{\max_k |a_k - n_k|}{\max(\max_k |a_k|, \max_k |n_k|, 10^{-12})}.$$

With ``h = 1e-6`` the truncation error is ``O(h^2)`` and the rounding error
about ``1e-16 |L| / h``; a correct gradient lands near ``1e-9``, a wrong one near 1.

The rounding error is relative to the loss, not to the gradient: a tensor whose
whole gradient is small beside the loss (an LSTM's h0 at batch 1, hidden 1: seen
at 1.2e-6) can land above the tolerance with a right gradient. A tensor that does
is checked once more with the fourth-order stencil

$$\frac{-L(\theta + 2h) + 8 L(\theta + h) - 8 L(\theta - h) + L(\theta - 2h)}{12 h}$$

at ``h = 1e-4`` (rounding 100 times smaller, truncation ``O(h^4)``), and the
smaller of the two errors counts. A wrong gradient stays near 1 in both.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .cells import CELLS, split_options
from .types import State

TOLERANCE = 1e-6
STEP = 1e-6


def relative_error(analytic: ArrayLike, numeric: ArrayLike) -> float:
    """Max-norm relative error between two arrays of the same shape."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(
            f"analytic gradient has shape {analytic.shape}, numeric gradient {numeric.shape}"
        )
    if analytic.size == 0:
        return 0.0
    scale = max(np.abs(analytic).max(), np.abs(numeric).max(), 1e-12)
    return float(np.abs(analytic - numeric).max() / scale)


def numeric_gradient(f: Callable[[], float], a: np.ndarray, h: float = STEP) -> np.ndarray:
    """Central differences of the scalar function ``f()`` with respect to every
    entry of the float64 array ``a``, which ``f`` reads and which is restored."""
    grad = np.zeros_like(a)
    flat, gflat = a.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + h
        plus = f()
        flat[k] = old - h
        minus = f()
        flat[k] = old
        gflat[k] = (plus - minus) / (2 * h)
    return grad


def fourth_order_gradient(f: Callable[[], float], a: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Like ``numeric_gradient``, with the fourth-order stencil
    (-f(a+2h) + 8 f(a+h) - 8 f(a-h) + f(a-2h)) / 12h for every entry of ``a``."""
    grad = np.zeros_like(a)
    flat, gflat = a.reshape(-1), grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        values = []
        for step in (2 * h, h, -h, -2 * h):
            flat[k] = old + step
            values.append(f())
        flat[k] = old
        gflat[k] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * h)
    return grad


def gradient_error(
    analytic: ArrayLike, f: Callable[[], float], a: np.ndarray, h: float = STEP
) -> float:
    """The relative error of ``analytic`` against central differences of ``f`` in
    ``a``, confirmed with the fourth-order stencil when it is above the tolerance
    (see the module notes)."""
    err = relative_error(analytic, numeric_gradient(f, a, h))
    if err >= TOLERANCE:
        err = min(err, relative_error(analytic, fourth_order_gradient(f, a)))
    return err


def check_function(
    forward: Callable[..., tuple[np.ndarray, Any]],
    backward: Callable[[np.ndarray, Any], np.ndarray | tuple[np.ndarray, ...]],
    inputs: dict[str, ArrayLike],
    *,
    seed: int = 0,
    h: float = STEP,
) -> dict[str, float]:
    """Check a functional op.

    ``forward(**inputs) -> (out, cache)`` and ``backward(dout, cache)`` returning
    the gradients in the order of ``inputs`` (a single array when there is one).
    ``inputs`` maps names to float64 arrays. Returns ``{name: relative error}``.
    """
    inputs = {k: np.array(v, dtype=np.float64) for k, v in inputs.items()}
    out, cache = forward(**inputs)
    # A stream of its own: inputs drawn from default_rng(seed) must not equal R.
    R = np.random.default_rng([seed, 0x5EED]).standard_normal(np.shape(out))
    analytic = backward(R, cache)
    if len(inputs) == 1:
        analytic = (analytic,)
    loss = lambda: float(np.sum(forward(**inputs)[0] * R))
    return {name: gradient_error(a, loss, inputs[name], h) for name, a in zip(inputs, analytic)}


def make_state(cell: ModuleType, batch: int, hidden: int, rng: np.random.Generator) -> State:
    """A random float64 initial state of the cell's kind ((h0, c0) or h0)."""
    n = getattr(cell, "STATE_SIZE", 1)
    parts = tuple(0.5 * rng.standard_normal((batch, hidden)) for _ in range(n))
    return parts if n > 1 else parts[0]


def check_cell(
    cell: ModuleType,
    *,
    batch: int = 2,
    time: int = 3,
    input_size: int = 3,
    hidden_size: int = 4,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    with_state: bool = True,
    h: float = STEP,
) -> dict[str, float]:
    """Check every parameter, the input and the initial state of a cell module.

    Parameters come from ``cell.init`` in float64 with every entry then moved by
    a random amount (so biases are non-zero); ``x`` and the state are random.
    ``options`` may hold ``training=False`` to check evaluation mode; a cell that
    needs more for it (population statistics) provides them through its
    ``evaluation_options(hidden_size, time, rng)``.
    Returns ``{tensor name: relative error}`` with keys ``x``, the parameter
    names, and ``h0`` (and ``c0``) when ``with_state``.
    """
    options = dict(options or {})
    training = options.pop("training", True)
    init_opts, fwd_opts = split_options(cell, options)
    rng = np.random.default_rng(seed)
    params = cell.init(input_size, hidden_size, rng=rng, dtype=np.float64, **init_opts)
    for p in params.values():
        p += 0.3 * rng.standard_normal(p.shape)
    x = rng.standard_normal((batch, time, input_size))
    state = make_state(cell, batch, hidden_size, rng) if with_state else None
    mask_seed = int(rng.integers(2**31))
    if not training and hasattr(cell, "evaluation_options"):
        # e.g. batch norm's population statistics, random so that they matter
        fwd_opts.update(cell.evaluation_options(hidden_size, time, rng))

    def run():
        # A fresh generator with a fixed seed: anything random (dropout masks)
        # is the same in every evaluation.
        return cell.forward(
            params, x, state, training=training, rng=np.random.default_rng(mask_seed), **fwd_opts
        )

    hs, cache = run()
    R = rng.standard_normal(hs.shape)
    dx, grads = cell.backward(params, R, cache)

    def loss():
        # A cell may add a penalty to the loss (cache["penalty"], e.g. the VC cells'
        # computation penalty); its backward includes that penalty's gradient.
        out, c = run()
        return float(np.sum(out * R)) + float(c.get("penalty", 0.0))

    errors = {"x": gradient_error(dx, loss, x, h)}
    for name in params:
        errors[name] = gradient_error(grads[name], loss, params[name], h)
    if with_state:
        parts = state if isinstance(state, tuple) else (state,)
        for name, s in zip(("h0", "c0"), parts):
            errors[name] = gradient_error(grads[name], loss, s, h)
    return errors


def functional_cases() -> list[tuple[str, Callable, Callable, dict[str, np.ndarray]]]:
    """(name, forward, backward, inputs) for every functional op, float64, with
    inputs away from kinks (relu's input is kept away from 0)."""
    from . import functional as F

    rng = np.random.default_rng(0)
    away_from_zero = rng.uniform(0.1, 2, (3, 4)) * rng.choice([-1, 1], (3, 4))
    labels = rng.integers(0, 5, 4)
    return [
        ("sigmoid", F.sigmoid_forward, F.sigmoid_backward, {"x": rng.standard_normal((3, 4))}),
        ("tanh", F.tanh_forward, F.tanh_backward, {"x": rng.standard_normal((3, 4))}),
        ("relu", F.relu_forward, F.relu_backward, {"x": away_from_zero}),
        (
            "affine",
            F.affine_forward,
            F.affine_backward,
            {
                "x": rng.standard_normal((2, 3, 3)),
                "W": rng.standard_normal((3, 5)),
                "b": rng.standard_normal(5),
            },
        ),
        (
            "softmax_cross_entropy",
            lambda logits: F.softmax_cross_entropy_forward(logits, labels),
            F.softmax_cross_entropy_backward,
            {"logits": 3 * rng.standard_normal((4, 5))},
        ),
        (
            "mse",
            lambda pred: F.mse_forward(pred, np.linspace(-1, 1, 12).reshape(3, 4)),
            F.mse_backward,
            {"pred": rng.standard_normal((3, 4))},
        ),
        (
            "batchnorm (N,F)",
            F.batchnorm_forward,
            F.batchnorm_backward,
            {
                "x": rng.standard_normal((5, 3)),
                "gamma": rng.uniform(0.5, 1.5, 3),
                "beta": rng.standard_normal(3),
            },
        ),
        (
            "batchnorm (B,T,F)",
            F.batchnorm_forward,
            F.batchnorm_backward,
            {
                "x": rng.standard_normal((3, 2, 4)),
                "gamma": rng.uniform(0.5, 1.5, 4),
                "beta": rng.standard_normal(4),
            },
        ),
        (
            "batchnorm (N,C,H,W)",
            F.batchnorm_forward,
            F.batchnorm_backward,
            {
                "x": rng.standard_normal((2, 3, 2, 2)),
                "gamma": rng.uniform(0.5, 1.5, 3),
                "beta": rng.standard_normal(3),
            },
        ),
        (
            "batchnorm eval",
            lambda x, gamma, beta: F.batchnorm_forward(
                x,
                gamma,
                beta,
                training=False,
                running_mean=np.linspace(-0.5, 0.5, 3),
                running_var=np.linspace(0.5, 2.0, 3),
            ),
            F.batchnorm_backward,
            {
                "x": rng.standard_normal((4, 3)),
                "gamma": rng.uniform(0.5, 1.5, 3),
                "beta": rng.standard_normal(3),
            },
        ),
        (
            "conv2d stride 2 pad 1",
            lambda x, W, b: F.conv2d_forward(x, W, b, stride=2, padding=1),
            F.conv2d_backward,
            {
                "x": rng.standard_normal((2, 2, 5, 5)),
                "W": rng.standard_normal((3, 2, 3, 3)),
                "b": rng.standard_normal(3),
            },
        ),
        # distinct values a step apart: no ties inside a pooling window
        (
            "maxpool2d",
            F.maxpool2d_forward,
            F.maxpool2d_backward,
            {"x": rng.permutation(32).reshape(2, 1, 4, 4) * 0.1},
        ),
        (
            "flatten",
            F.flatten_forward,
            F.flatten_backward,
            {"x": rng.standard_normal((2, 3, 2, 2))},
        ),
        (
            "layernorm",
            F.layernorm_forward,
            F.layernorm_backward,
            {
                "x": rng.standard_normal((2, 3, 5)),
                "gain": rng.uniform(0.5, 1.5, 5),
                "shift": rng.standard_normal(5),
            },
        ),
    ]


def run_all(print_fn: Callable[[str], object] = print) -> bool:
    """Check every registered cell with each of its option combinations, and every
    functional op; print a table; return True when every row passes."""
    rows = []
    for name, cell in CELLS.items():
        for options in cell.GRADCHECK_CASES:
            # a cell may need larger sizes (batch norm over a batch of 2 is degenerate)
            errors = check_cell(cell, options=options, **getattr(cell, "GRADCHECK_SIZES", {}))
            opts = ",".join(f"{k}={v}" for k, v in options.items()) or "-"
            rows += [(name, opts, tensor, err) for tensor, err in errors.items()]
    for name, fwd, bwd, inputs in functional_cases():
        errors = check_function(fwd, bwd, inputs)
        rows += [(name, "-", tensor, err) for tensor, err in errors.items()]
    widths = (
        max(len(r[0]) for r in rows),
        max(len(r[1]) for r in rows),
        max(len(r[2]) for r in rows),
    )
    header = ("cell/op", "options", "tensor")
    print_fn("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  rel. error  result")
    ok = True
    for cell, opts, tensor, err in rows:
        passed = err < TOLERANCE
        ok &= passed
        print_fn(
            f"{cell.ljust(widths[0])}  {opts.ljust(widths[1])}  {tensor.ljust(widths[2])}"
            f"  {err:10.2e}  {'PASS' if passed else 'FAIL'}"
        )
    failed = sum(err >= TOLERANCE for *_, err in rows)
    print_fn(f"{len(rows) - failed} of {len(rows)} checks pass (tolerance {TOLERANCE:g})")
    return ok
