"""The vanilla (Elman) RNN in plain NumPy, as ``tutorials/01_rnn_bptt.md`` derives it:
the readable twin of the compiled cell ``minirnn/cells/rnn.py``, tested equal to it
(``tests/test_reference.py``).

One timestep, with m_h the recurrent-dropout mask on h_{t-1} (Gal & Ghahramani;
``tutorials/08_recurrent_dropout.md``), 1 when nothing is dropped::

    a_t = x_t W + (h_{t-1} * m_h) U + b
    h_t = tanh(a_t)

Backwards, with dh the total dL/dh_t (from the output at t and from step t+1)::

    da = dh * (1 - h_t^2)
    dx_t = da W^T                dh_{t-1} = (da U^T) * m_h
    dW += x_t^T da               dU += (h_{t-1} * m_h)^T da        db += sum_batch da

The sequence ``forward`` and ``backward`` are Python loops over these two steps.
The compiled cell computes the same numbers faster: it hoists ``x W`` and the
weight gradients out of the loop and reuses its buffers.
"""

from __future__ import annotations

import numpy as np

from ..types import Cache, Grads, Params, State
from .common import mask_at


def step_forward(params, x_t, h_prev, m_h=1.0):
    """x_t: (B, I), h_prev: (B, H), m_h: (B, H) dropout mask or 1.0 -> h: (B, H), cache."""
    a = x_t @ params["W"] + (h_prev * m_h) @ params["U"] + params["b"]
    h = np.tanh(a)
    cache = (x_t, h_prev, h, m_h)
    return h, cache


def step_backward(params, dh, cache):
    """dh: (B, H) total dL/dh_t -> dx_t: (B, I), dh_prev: (B, H), this step's grads."""
    x_t, h_prev, h, m_h = cache
    da = dh * (1 - h**2)  # tanh node
    dx_t = da @ params["W"].T
    dh_prev = (da @ params["U"].T) * m_h
    grads = {"W": x_t.T @ da, "U": (h_prev * m_h).T @ da, "b": da.sum(axis=0)}
    return dx_t, dh_prev, grads


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    masks: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, Cache]:
    """x: (B, T, I) -> hs: (B, T, H), cache. ``state`` is h0: (B, H), zeros when None;
    ``masks`` is a compiled cell's ``cache["masks"]`` (None: no dropout)."""
    B, T, _ = x.shape
    h = np.zeros((B, params["U"].shape[0]), x.dtype) if state is None else state
    hs, steps = [], []
    for t in range(T):
        h, step = step_forward(params, x[:, t], h, mask_at(masks, "hidden", t))
        hs.append(h)
        steps.append(step)
    cache = {"steps": steps, "has_state": state is not None, "state": h}
    return np.stack(hs, axis=1), cache


def backward(
    params: Params, dhs: np.ndarray, cache: Cache, dstate: State | None = None
) -> tuple[np.ndarray, Grads]:
    """dhs: (B, T, H) -> dx: (B, T, I), grads: W, U, b (and h0 when ``forward`` was
    given a state). ``dstate``: dL/dh_T of ``cache["state"]``, or None."""
    T = dhs.shape[1]
    dh_next = np.zeros_like(dhs[:, 0]) if dstate is None else dstate
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dxs = [None] * T
    for t in reversed(range(T)):
        # h_t fans out to the output and to step t+1: the gradients add
        dxs[t], dh_next, step_grads = step_backward(params, dhs[:, t] + dh_next, cache["steps"][t])
        for k, g in step_grads.items():
            grads[k] += g
    if cache["has_state"]:
        grads["h0"] = dh_next
    return np.stack(dxs, axis=1), grads
