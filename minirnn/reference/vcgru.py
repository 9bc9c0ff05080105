"""The variable-computation GRU in plain NumPy, as
``tutorials/06_variable_computation.md`` derives it: the readable twin of the
compiled cell ``minirnn/cells/vcgru.py``, tested equal to it
(``tests/test_reference.py``). The scheduler, the masks and the penalty are in
``reference/vc.py``; the inner cell is ``reference/gru.py`` with
``reset_after=False`` (z = 1 keeps the state).

One timestep::

    m_t = sigma(x_t w_x + h_{t-1} w_h + b_m)     e_t, e^x_t = the masks of m_t
    xbar = e^x_t * x_t          hbar = e_t * h_{t-1}
    z = sigma(xbar W_z + hbar U_z + b_z)      r = sigma(xbar W_r + hbar U_r + b_r)
    n = tanh(xbar W_n + (r * hbar) U_n + b_n)
    h~ = z * hbar + (1 - z) * n                        the GRU on (xbar, hbar)
    h_t = e_t * h~ + (1 - e_t) * h_{t-1}

Backwards, with dh the total dL/dh_t::

    dh~ = dh * e
    da_n = dh~ (1 - z)(1 - n^2)       da_z = dh~ (hbar - n) z (1 - z)
    ds = da_n U_n^T  (s = r * hbar)   da_r = ds * hbar * r (1 - r)
    dhbar = dh~ z + ds r + [da_z | da_r] U_zr^T        dxbar = da W^T
    de = dh * (h~ - h_{t-1}) + dhbar * h_{t-1}         (then dm, dz, dx_t as in vcrnn)
"""

from __future__ import annotations

import numpy as np

from ..types import Cache, Grads, Params, State
from . import vc
from .common import sigmoid


def step_forward(params, x_t, h_prev, sharpness=1.0, eps=0.1, threshold="soft"):
    """x_t: (B, I); h_prev: (B, H) -> h: (B, H), m: (B,), cache."""
    H = h_prev.shape[1]
    U_zr, U_n = params["U"][:, : 2 * H], params["U"][:, 2 * H :]
    m = vc.scheduler(params, x_t, h_prev)
    e, de_dm = vc.unit_mask(m, H, sharpness, eps, threshold)
    ex, dex_dm = vc.unit_mask(m, x_t.shape[1], sharpness, eps, threshold)
    xbar, hbar = ex * x_t, e * h_prev
    xw = xbar @ params["W"] + params["b"]
    hu_zr = hbar @ U_zr
    z = sigmoid(xw[:, :H] + hu_zr[:, :H])
    r = sigmoid(xw[:, H : 2 * H] + hu_zr[:, H:])
    n = np.tanh(xw[:, 2 * H :] + (r * hbar) @ U_n)
    h_tilde = z * hbar + (1 - z) * n
    h = e * h_tilde + (1 - e) * h_prev
    cache = (x_t, h_prev, xbar, hbar, z, r, n, h_tilde, m, e, de_dm, ex, dex_dm)
    return h, m, cache


def step_backward(params, dh, dm_penalty, cache):
    """dh: (B, H) total dL/dh_t; dm_penalty: (B,) dpenalty/dm_t
    -> dx_t: (B, I), dh_prev: (B, H), this step's grads."""
    x_t, h_prev, xbar, hbar, z, r, n, h_tilde, m, e, de_dm, ex, dex_dm = cache
    H = h_prev.shape[1]
    U_zr, U_n = params["U"][:, : 2 * H], params["U"][:, 2 * H :]
    dh_tilde = dh * e
    da_n = dh_tilde * (1 - z) * (1 - n**2)
    da_z = dh_tilde * (hbar - n) * z * (1 - z)
    ds = da_n @ U_n.T  # s = r * hbar
    da_r = ds * hbar * r * (1 - r)
    da_zr = np.concatenate([da_z, da_r], axis=1)
    da = np.concatenate([da_zr, da_n], axis=1)
    dhbar = dh_tilde * z + ds * r + da_zr @ U_zr.T
    dxbar = da @ params["W"].T
    de = dh * (h_tilde - h_prev) + dhbar * h_prev
    dex = dxbar * x_t
    dm = (de * de_dm).sum(axis=1) + (dex * dex_dm).sum(axis=1) + dm_penalty
    dz = dm * m * (1 - m)  # m = sigma(z)
    dx_t = dxbar * ex + np.outer(dz, params["w_x"])
    dh_prev = dh * (1 - e) + dhbar * e + np.outer(dz, params["w_h"])
    grads = {
        "W": xbar.T @ da,
        "U": np.concatenate([hbar.T @ da_zr, (r * hbar).T @ da_n], axis=1),
        "b": da.sum(axis=0),
        "w_x": x_t.T @ dz,
        "w_h": h_prev.T @ dz,
        "b_m": dz.sum(keepdims=True),
    }
    return dx_t, dh_prev, grads


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
    """x: (B, T, I) -> hs: (B, T, H), cache. ``state`` is h0: (B, H), zeros when None.
    ``cache["penalty"]`` is the computation penalty, whose gradient ``backward`` adds."""
    B, T, _ = x.shape
    h = np.zeros((B, params["U"].shape[0]), x.dtype) if state is None else state
    hs, steps, total, dm_penalty = [], [], 0.0, []
    for t in range(T):
        h, m, step = step_forward(params, x[:, t], h, sharpness, eps, threshold)
        p, dp = vc.penalty(m, alpha, m_target, penalty)
        total, dm_penalty = total + p, dm_penalty + [dp]
        hs.append(h)
        steps.append(step)
    cache = {
        "steps": steps,
        "penalty": float(total),
        "dm_penalty": dm_penalty,
        "has_state": state is not None,
        "state": h,
    }
    return np.stack(hs, axis=1), cache


def backward(
    params: Params, dhs: np.ndarray, cache: Cache, dstate: State | None = None
) -> tuple[np.ndarray, Grads]:
    """dhs: (B, T, H) -> dx: (B, T, I), grads of L + penalty (the keys of params, and
    h0 when ``forward`` was given a state). ``dstate``: dL/dh_T, or None."""
    T = dhs.shape[1]
    dh_next = np.zeros_like(dhs[:, 0]) if dstate is None else dstate
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dxs = [None] * T
    for t in reversed(range(T)):
        dxs[t], dh_next, step_grads = step_backward(
            params, dhs[:, t] + dh_next, cache["dm_penalty"][t], cache["steps"][t]
        )
        for k, g in step_grads.items():
            grads[k] += g
    if cache["has_state"]:
        grads["h0"] = dh_next
    return np.stack(dxs, axis=1), grads
