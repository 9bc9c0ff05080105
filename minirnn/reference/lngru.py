"""The layer-normalized GRU (TensorFlow's ``LayerNormBasicGRUCell``) in plain NumPy,
as ``tutorials/09_recurrent_normalization.md`` derives it: the readable twin of the
compiled cell ``minirnn/cells/lngru.py``, tested equal to it
(``tests/test_reference.py``).

One timestep, blocks z, r, n along the columns of W: (I, 3H) and U: (H, 3H), no
biases (the shifts serve), h~ = h_{t-1} * m_h::

    (u_z, u_r) = x_t W_zr + h~ U_zr
    z = sigma(LN(u_z; gain_z, shift_z))      r = sigma(LN(u_r; gain_r, shift_r))
    n = tanh(LN(x_t W_n; gain_xn, shift_xn) + r * LN(h~ U_n; gain_hn, shift_hn))
    h_t = (1 - z) * h_{t-1} + z * (n * m_n)

Here z = 1 takes the new candidate (the opposite of ``reference/gru.py``). m_h, m_n
are the recurrent-dropout masks (``tutorials/08_recurrent_dropout.md``), 1 where
nothing is dropped. Backwards, with dh the total dL/dh_t::

    dz = dh * (n * m_n - h_{t-1})      dn = dh * z * m_n       dh_{t-1} = dh * (1 - z) + ...
    da_n = dn * (1 - n^2)              dr = da_n * LN(h~ U_n)
    du_z = LN_z^T(dz z(1-z))            du_r = LN_r^T(dr r(1-r))
    d(x_t W_n) = LN_xn^T(da_n)          d(h~ U_n) = LN_hn^T(da_n * r)
    dh_{t-1} += ([du_z | du_r] U_zr^T + d(h~ U_n) U_n^T) * m_h
"""

from __future__ import annotations

import numpy as np

from ..functional.layernorm import layernorm_backward, layernorm_forward
from ..types import Cache, Grads, Params, State
from .common import mask_at, sigmoid


def step_forward(params, x_t, h_prev, eps=1e-2, m_h=1.0, m_n=1.0):
    """x_t: (B, I); h_prev: (B, H); masks: (B, H) or 1.0 -> h: (B, H), cache."""
    H = h_prev.shape[1]
    W, U, gain_zr, shift_zr = params["W"], params["U"], params["gain_zr"], params["shift_zr"]
    hm = h_prev * m_h  # what the recurrent products see
    u = x_t @ W[:, : 2 * H] + hm @ U[:, : 2 * H]
    lz, ln_z = layernorm_forward(u[:, :H], gain_zr[:H], shift_zr[:H], eps)
    lr, ln_r = layernorm_forward(u[:, H:], gain_zr[H:], shift_zr[H:], eps)
    z, r = sigmoid(lz), sigmoid(lr)
    lxn, ln_xn = layernorm_forward(x_t @ W[:, 2 * H :], params["gain_xn"], params["shift_xn"], eps)
    lhn, ln_hn = layernorm_forward(hm @ U[:, 2 * H :], params["gain_hn"], params["shift_hn"], eps)
    n = np.tanh(lxn + r * lhn)
    h = (1 - z) * h_prev + z * (n * m_n)
    cache = (x_t, h_prev, hm, z, r, n, lhn, ln_z, ln_r, ln_xn, ln_hn, m_h, m_n)
    return h, cache


def step_backward(params, dh, cache):
    """dh: (B, H) total dL/dh_t -> dx_t: (B, I), dh_prev: (B, H), this step's grads."""
    x_t, h_prev, hm, z, r, n, lhn, ln_z, ln_r, ln_xn, ln_hn, m_h, m_n = cache
    H = h_prev.shape[1]
    W, U = params["W"], params["U"]
    dz = dh * (n * m_n - h_prev)  # update node
    dn = dh * z * m_n
    da_n = dn * (1 - n**2)  # candidate node
    dr = da_n * lhn
    du_z, dgain_z, dshift_z = layernorm_backward(dz * z * (1 - z), ln_z)
    du_r, dgain_r, dshift_r = layernorm_backward(dr * r * (1 - r), ln_r)
    dxn, dgain_xn, dshift_xn = layernorm_backward(da_n, ln_xn)
    dhn, dgain_hn, dshift_hn = layernorm_backward(da_n * r, ln_hn)
    du = np.concatenate([du_z, du_r], axis=1)
    dx_t = du @ W[:, : 2 * H].T + dxn @ W[:, 2 * H :].T
    dh_prev = dh * (1 - z) + (du @ U[:, : 2 * H].T + dhn @ U[:, 2 * H :].T) * m_h
    grads = {
        "W": np.concatenate([x_t.T @ du, x_t.T @ dxn], axis=1),
        "U": np.concatenate([hm.T @ du, hm.T @ dhn], axis=1),
        "gain_zr": np.concatenate([dgain_z, dgain_r]),
        "shift_zr": np.concatenate([dshift_z, dshift_r]),
        "gain_xn": dgain_xn,
        "shift_xn": dshift_xn,
        "gain_hn": dgain_hn,
        "shift_hn": dshift_hn,
    }
    return dx_t, dh_prev, grads


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    eps: float = 1e-2,
    masks: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, Cache]:
    """x: (B, T, I) -> hs: (B, T, H), cache. ``state`` is h0: (B, H), zeros when None;
    ``masks`` is a compiled cell's ``cache["masks"]`` (None: no dropout)."""
    B, T, _ = x.shape
    h = np.zeros((B, params["U"].shape[0]), x.dtype) if state is None else state
    hs, steps = [], []
    for t in range(T):
        h, step = step_forward(
            params, x[:, t], h, eps, mask_at(masks, "hidden", t), mask_at(masks, "update", t)
        )
        hs.append(h)
        steps.append(step)
    cache = {"steps": steps, "has_state": state is not None, "state": h}
    return np.stack(hs, axis=1), cache


def backward(
    params: Params, dhs: np.ndarray, cache: Cache, dstate: State | None = None
) -> tuple[np.ndarray, Grads]:
    """dhs: (B, T, H) -> dx: (B, T, I), grads (the keys of params, and h0 when
    ``forward`` was given a state). ``dstate``: dL/dh_T, or None."""
    T = dhs.shape[1]
    dh_next = np.zeros_like(dhs[:, 0]) if dstate is None else dstate
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dxs = [None] * T
    for t in reversed(range(T)):
        dxs[t], dh_next, step_grads = step_backward(params, dhs[:, t] + dh_next, cache["steps"][t])
        for k, g in step_grads.items():
            grads[k] += g
    if cache["has_state"]:
        grads["h0"] = dh_next
    return np.stack(dxs, axis=1), grads
