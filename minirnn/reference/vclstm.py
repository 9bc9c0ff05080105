"""The variable-computation LSTM in plain NumPy, as
``tutorials/06_variable_computation.md`` derives it: the readable twin of the
compiled cell ``minirnn/cells/vclstm.py``, tested equal to it
(``tests/test_reference.py``). The scheduler, the masks and the penalty are in
``reference/vc.py``; the inner cell is ``reference/lstm.py`` (gates i, f, o, g).

One timestep::

    m_t = sigma(x_t w_x + h_{t-1} w_h + b_m)     e_t, e^x_t = the masks of m_t
    xbar = e^x_t * x_t     hbar = e_t * h_{t-1}     cbar = e_t * c_{t-1}
    a = xbar W + hbar U + b              i, f, o, g as in the LSTM
    c~ = f * cbar + i * g                h~ = o * tanh(c~)
    c_t = e_t * c~ + (1 - e_t) * c_{t-1}
    h_t = e_t * h~ + (1 - e_t) * h_{t-1}

Backwards, with dh the total dL/dh_t and dc the dL/dc_t from step t+1::

    dh~ = dh * e        dc~ = dc * e + dh~ * o * (1 - tanh^2 c~)
    da = [dc~ g i(1-i) | dc~ cbar f(1-f) | dh~ tanh(c~) o(1-o) | dc~ i (1-g^2)]
    dhbar = da U^T      dcbar = dc~ * f      dxbar = da W^T
    de = dh (h~ - h_{t-1}) + dc (c~ - c_{t-1}) + dhbar h_{t-1} + dcbar c_{t-1}
    dh_{t-1} = dh (1 - e) + dhbar e + dz w_h      dc_{t-1} = dc (1 - e) + dcbar e
    (dm, dz, dx_t as in vcrnn)
"""

from __future__ import annotations

import numpy as np

from ..types import Cache, Grads, Params, State
from . import vc
from .common import sigmoid


def step_forward(params, x_t, h_prev, c_prev, sharpness=1.0, eps=0.1, threshold="soft"):
    """x_t: (B, I); h_prev, c_prev: (B, H) -> h, c: (B, H), m: (B,), cache."""
    H = h_prev.shape[1]
    m = vc.scheduler(params, x_t, h_prev)
    e, de_dm = vc.unit_mask(m, H, sharpness, eps, threshold)
    ex, dex_dm = vc.unit_mask(m, x_t.shape[1], sharpness, eps, threshold)
    xbar, hbar, cbar = ex * x_t, e * h_prev, e * c_prev
    a = xbar @ params["W"] + hbar @ params["U"] + params["b"]
    i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), sigmoid(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    c_tilde = f * cbar + i * g
    tanh_c = np.tanh(c_tilde)
    h_tilde = o * tanh_c
    c = e * c_tilde + (1 - e) * c_prev
    h = e * h_tilde + (1 - e) * h_prev
    cache = (
        x_t,
        h_prev,
        c_prev,
        xbar,
        hbar,
        cbar,
        i,
        f,
        o,
        g,
        c_tilde,
        tanh_c,
        h_tilde,
        m,
        e,
        de_dm,
        ex,
        dex_dm,
    )
    return h, c, m, cache


def step_backward(params, dh, dc, dm_penalty, cache):
    """dh: (B, H) total dL/dh_t; dc: (B, H) dL/dc_t from step t+1; dm_penalty: (B,)
    -> dx_t: (B, I), dh_prev, dc_prev: (B, H), this step's grads."""
    (
        x_t,
        h_prev,
        c_prev,
        xbar,
        hbar,
        cbar,
        i,
        f,
        o,
        g,
        c_tilde,
        tanh_c,
        h_tilde,
        m,
        e,
        de_dm,
        ex,
        dex_dm,
    ) = cache
    dh_tilde = dh * e
    dc_tilde = dc * e + dh_tilde * o * (1 - tanh_c**2)
    da = np.concatenate(
        [
            dc_tilde * g * i * (1 - i),
            dc_tilde * cbar * f * (1 - f),
            dh_tilde * tanh_c * o * (1 - o),
            dc_tilde * i * (1 - g**2),
        ],
        axis=1,
    )
    dhbar, dxbar = da @ params["U"].T, da @ params["W"].T
    dcbar = dc_tilde * f
    de = dh * (h_tilde - h_prev) + dc * (c_tilde - c_prev) + dhbar * h_prev + dcbar * c_prev
    dex = dxbar * x_t
    dm = (de * de_dm).sum(axis=1) + (dex * dex_dm).sum(axis=1) + dm_penalty
    dz = dm * m * (1 - m)  # m = sigma(z)
    dx_t = dxbar * ex + np.outer(dz, params["w_x"])
    dh_prev = dh * (1 - e) + dhbar * e + np.outer(dz, params["w_h"])
    dc_prev = dc * (1 - e) + dcbar * e
    grads = {
        "W": xbar.T @ da,
        "U": hbar.T @ da,
        "b": da.sum(axis=0),
        "w_x": x_t.T @ dz,
        "w_h": h_prev.T @ dz,
        "b_m": dz.sum(keepdims=True),
    }
    return dx_t, dh_prev, dc_prev, grads


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    sharpness: float = 1.0,
    eps: float = 0.1,
    threshold: str = "soft",
    alpha: float = 0.0,
    m_target: float = 0.5,
    penalty: str = "l1",
) -> tuple[np.ndarray, Cache]:
    """x: (B, T, I) -> hs: (B, T, H), cache. ``state`` is (h0, c0), zeros when None.
    ``cache["penalty"]`` is the computation penalty, whose gradient ``backward`` adds."""
    B, T, _ = x.shape
    zeros = np.zeros((B, params["U"].shape[0]), x.dtype)
    h, c = (zeros, zeros) if state is None else state
    hs, steps, total, dm_penalty = [], [], 0.0, []
    for t in range(T):
        h, c, m, step = step_forward(params, x[:, t], h, c, sharpness, eps, threshold)
        p, dp = vc.penalty(m, alpha, m_target, penalty)
        total, dm_penalty = total + p, dm_penalty + [dp]
        hs.append(h)
        steps.append(step)
    cache = {
        "steps": steps,
        "penalty": float(total),
        "dm_penalty": dm_penalty,
        "has_state": state is not None,
        "state": (h, c),
    }
    return np.stack(hs, axis=1), cache


def backward(
    params: Params, dhs: np.ndarray, cache: Cache, dstate: State | None = None
) -> tuple[np.ndarray, Grads]:
    """dhs: (B, T, H) -> dx: (B, T, I), grads of L + penalty (the keys of params, and
    h0, c0 when ``forward`` was given a state). ``dstate``: (dh_T, dc_T), or None."""
    T = dhs.shape[1]
    zeros = np.zeros_like(dhs[:, 0])
    dh_next, dc_next = (zeros, zeros) if dstate is None else dstate
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dxs = [None] * T
    for t in reversed(range(T)):
        dxs[t], dh_next, dc_next, step_grads = step_backward(
            params, dhs[:, t] + dh_next, dc_next, cache["dm_penalty"][t], cache["steps"][t]
        )
        for k, g in step_grads.items():
            grads[k] += g
    if cache["has_state"]:
        grads["h0"], grads["c0"] = dh_next, dc_next
    return np.stack(dxs, axis=1), grads
