"""The GRU in plain NumPy, in both conventions, as ``tutorials/03_gru.md`` derives it:
the readable twin of the compiled cell ``minirnn/cells/gru.py``, tested equal to it
(``tests/test_reference.py``).

Blocks z, r, n along the columns of W: (I, 3H), U: (H, 3H), b: (3H,), and
``bh: (3H,)`` when ``reset_after``. With h~ = h_{t-1} * m_h, the state the
recurrent products see (m_h: the "hidden" dropout mask, 1 without dropout)::

    z = sigma(x_t W_z + b_z + h~ U_z (+ bh_z))     r = sigma(x_t W_r + b_r + h~ U_r (+ bh_r))
    reset_after=False:  n = tanh(x_t W_n + b_n + (r * h~) U_n)            reset, then U_n
    reset_after=True:   n = tanh(x_t W_n + b_n + r * (h~ U_n + bh_n))     U_n, then reset
    h_t = z * h_{t-1} + (1 - z) * (n * m_n)

(z = 1 keeps the old state; m_n is the "update" dropout mask on the candidate,
``tutorials/08_recurrent_dropout.md``.) Backwards, with dh the total dL/dh_t::

    dz = dh * (h_{t-1} - n * m_n)    dn = dh * (1 - z) * m_n    dh_{t-1} = dh * z + ...
    da_n = dn * (1 - n^2)
    reset first:  ds = da_n U_n^T (s = r * h~)   dr = ds * h~     dh~ = ds * r
    reset after:  dr = da_n * hu_n (hu_n = h~ U_n + bh_n)         dh~ = (da_n * r) U_n^T
    da_z = dz z(1-z)    da_r = dr r(1-r)    dh~ += [da_z | da_r] U_zr^T
    dh_{t-1} = dh * z + dh~ * m_h        dx_t = da W^T        da = [da_z | da_r | da_n]
"""

from __future__ import annotations

import numpy as np

from ..types import Cache, Grads, Params, State
from .common import mask_at, sigmoid


def step_forward(params, x_t, h_prev, reset_after=False, m_h=1.0, m_n=1.0):
    """x_t: (B, I); h_prev: (B, H); masks: (B, H) or 1.0 -> h: (B, H), cache."""
    H = h_prev.shape[1]
    U_zr, U_n = params["U"][:, : 2 * H], params["U"][:, 2 * H :]
    xw = x_t @ params["W"] + params["b"]  # x_t W + b, blocks z, r, n
    hm = h_prev * m_h  # what the recurrent products see
    hu_zr = hm @ U_zr
    if reset_after:
        hu_zr = hu_zr + params["bh"][: 2 * H]
    z = sigmoid(xw[:, :H] + hu_zr[:, :H])
    r = sigmoid(xw[:, H : 2 * H] + hu_zr[:, H:])
    if reset_after:  # multiply by U_n, then reset
        hu_n = hm @ U_n + params["bh"][2 * H :]
        n = np.tanh(xw[:, 2 * H :] + r * hu_n)
    else:  # reset, then multiply by U_n
        hu_n = None
        n = np.tanh(xw[:, 2 * H :] + (r * hm) @ U_n)
    h = z * h_prev + (1 - z) * (n * m_n)
    cache = (x_t, h_prev, hm, z, r, n, hu_n, m_h, m_n)
    return h, cache


def step_backward(params, dh, cache):
    """dh: (B, H) total dL/dh_t -> dx_t: (B, I), dh_prev: (B, H), this step's grads
    (with ``bh`` when the forward step had ``reset_after``)."""
    x_t, h_prev, hm, z, r, n, hu_n, m_h, m_n = cache
    H = h_prev.shape[1]
    U_zr, U_n = params["U"][:, : 2 * H], params["U"][:, 2 * H :]
    dz = dh * (h_prev - n * m_n)  # update node
    dn = dh * (1 - z) * m_n
    dh_prev = dh * z
    da_n = dn * (1 - n**2)  # candidate node
    if hu_n is not None:  # reset after: a_n = ... + r * hu_n
        dr = da_n * hu_n
        dhu_n = da_n * r
        dhm = dhu_n @ U_n.T
        dU_n = hm.T @ dhu_n
    else:  # reset first: a_n = ... + (r * hm) U_n
        ds = da_n @ U_n.T
        dr = ds * hm
        dhm = ds * r
        dU_n = (r * hm).T @ da_n
    da_zr = np.concatenate([dz * z * (1 - z), dr * r * (1 - r)], axis=1)  # gate nodes
    dhm = dhm + da_zr @ U_zr.T
    dh_prev = dh_prev + dhm * m_h
    da = np.concatenate([da_zr, da_n], axis=1)
    dx_t = da @ params["W"].T
    grads = {
        "W": x_t.T @ da,
        "U": np.concatenate([hm.T @ da_zr, dU_n], axis=1),
        "b": da.sum(axis=0),
    }
    if hu_n is not None:
        grads["bh"] = np.concatenate([da_zr.sum(axis=0), dhu_n.sum(axis=0)])
    return dx_t, dh_prev, grads


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    reset_after: bool = False,
    masks: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, Cache]:
    """x: (B, T, I) -> hs: (B, T, H), cache. ``state`` is h0: (B, H), zeros when None;
    ``masks`` is a compiled cell's ``cache["masks"]`` (None: no dropout)."""
    B, T, _ = x.shape
    h = np.zeros((B, params["U"].shape[0]), x.dtype) if state is None else state
    hs, steps = [], []
    for t in range(T):
        h, step = step_forward(
            params,
            x[:, t],
            h,
            reset_after,
            mask_at(masks, "hidden", t),
            mask_at(masks, "update", t),
        )
        hs.append(h)
        steps.append(step)
    cache = {"steps": steps, "has_state": state is not None, "state": h}
    return np.stack(hs, axis=1), cache


def backward(
    params: Params, dhs: np.ndarray, cache: Cache, dstate: State | None = None
) -> tuple[np.ndarray, Grads]:
    """dhs: (B, T, H) -> dx: (B, T, I), grads: W, U, b (bh with ``reset_after``; h0
    when ``forward`` was given a state). ``dstate``: dL/dh_T, or None."""
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
