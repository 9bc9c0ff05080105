"""The LSTM in plain NumPy, as ``tutorials/02_lstm.md`` derives it: the readable twin
of the compiled cell ``minirnn/cells/lstm.py``, tested equal to it
(``tests/test_reference.py``).

One timestep, gate order i, f, o, g (W: (I, 4H), U: (H, 4H), b: (4H,))::

    a_t = x_t W + (h_{t-1} * m_h) U + b
    i = sigma(a_i)   f = sigma(a_f)   o = sigma(a_o)   g = tanh(a_g)
    c_t = m_c * (f * c_{t-1} + i * (g * m_g))
    h_t = o * tanh(c_t)

m_h, m_g, m_c are the recurrent-dropout masks on h_{t-1}, on the candidate g and on
the cell (``tutorials/08_recurrent_dropout.md``); each is 1 where nothing is
dropped, and a cell drops at one place at most.

Backwards, with dh the total dL/dh_t and dc_next the dL/dc_t that step t+1 sends
back::

    do = dh * tanh(c_t)          dc = dc_next + dh * o * (1 - tanh^2(c_t))
    du = dc * m_c                (u = f c_{t-1} + i g m_g, the cell before its mask)
    di = du * g * m_g            df = du * c_{t-1}      dg = du * i * m_g
    dc_{t-1} = du * f
    da = [di i(1-i) | df f(1-f) | do o(1-o) | dg (1-g^2)]
    dx_t = da W^T                dh_{t-1} = (da U^T) * m_h
    dW += x_t^T da               dU += (h_{t-1} * m_h)^T da       db += sum_batch da
"""

from __future__ import annotations

import numpy as np

from ..types import Cache, Grads, Params, State
from .common import mask_at, sigmoid


def step_forward(params, x_t, h_prev, c_prev, m_h=1.0, m_g=1.0, m_c=1.0):
    """x_t: (B, I); h_prev, c_prev: (B, H); masks: (B, H) or 1.0 -> h, c: (B, H), cache."""
    H = h_prev.shape[1]
    a = x_t @ params["W"] + (h_prev * m_h) @ params["U"] + params["b"]
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H : 2 * H])
    o = sigmoid(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    c = m_c * (f * c_prev + i * (g * m_g))
    tanh_c = np.tanh(c)
    h = o * tanh_c
    cache = (x_t, h_prev, c_prev, i, f, o, g, tanh_c, m_h, m_g, m_c)
    return h, c, cache


def step_backward(params, dh, dc_next, cache):
    """dh: (B, H) total dL/dh_t; dc_next: (B, H) dL/dc_t from step t+1
    -> dx_t: (B, I), dh_prev, dc_prev: (B, H), this step's grads."""
    x_t, h_prev, c_prev, i, f, o, g, tanh_c, m_h, m_g, m_c = cache
    do = dh * tanh_c  # output node
    dc = dc_next + dh * o * (1 - tanh_c**2)  # squash node, and c_t's fan-out
    du = dc * m_c  # c_t = m_c * u: the cell's mask
    di, df, dg = du * (g * m_g), du * c_prev, du * i * m_g  # cell node
    dc_prev = du * f
    da = np.concatenate(
        [
            di * i * (1 - i),
            df * f * (1 - f),  # gate nodes
            do * o * (1 - o),
            dg * (1 - g**2),
        ],
        axis=1,
    )
    dx_t = da @ params["W"].T  # pre-activation node
    dh_prev = (da @ params["U"].T) * m_h
    grads = {"W": x_t.T @ da, "U": (h_prev * m_h).T @ da, "b": da.sum(axis=0)}
    return dx_t, dh_prev, dc_prev, grads


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    masks: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, Cache]:
    """x: (B, T, I) -> hs: (B, T, H), cache. ``state`` is (h0, c0), zeros when None;
    ``masks`` is a compiled cell's ``cache["masks"]`` (None: no dropout)."""
    B, T, _ = x.shape
    zeros = np.zeros((B, params["U"].shape[0]), x.dtype)
    h, c = (zeros, zeros) if state is None else state
    hs, steps = [], []
    for t in range(T):
        m_h, m_g, m_c = (mask_at(masks, where, t) for where in ("hidden", "update", "cell"))
        h, c, step = step_forward(params, x[:, t], h, c, m_h, m_g, m_c)
        hs.append(h)
        steps.append(step)
    cache = {"steps": steps, "has_state": state is not None, "state": (h, c)}
    return np.stack(hs, axis=1), cache


def backward(
    params: Params, dhs: np.ndarray, cache: Cache, dstate: State | None = None
) -> tuple[np.ndarray, Grads]:
    """dhs: (B, T, H) -> dx: (B, T, I), grads: W, U, b (and h0, c0 when ``forward``
    was given a state). ``dstate``: (dh_T, dc_T) of ``cache["state"]``, or None."""
    T = dhs.shape[1]
    zeros = np.zeros_like(dhs[:, 0])
    dh_next, dc_next = (zeros, zeros) if dstate is None else dstate
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dxs = [None] * T
    for t in reversed(range(T)):
        dxs[t], dh_next, dc_next, step_grads = step_backward(
            params, dhs[:, t] + dh_next, dc_next, cache["steps"][t]
        )
        for k, g in step_grads.items():
            grads[k] += g
    if cache["has_state"]:
        grads["h0"], grads["c0"] = dh_next, dc_next
    return np.stack(dxs, axis=1), grads
