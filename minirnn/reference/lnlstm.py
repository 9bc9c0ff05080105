"""The layer-normalized LSTM in plain NumPy, both flavours, as
``tutorials/09_recurrent_normalization.md`` derives them: the readable twin of the
compiled cell ``minirnn/cells/lnlstm.py``, tested equal to it
(``tests/test_reference.py``).

LN(z; gain, shift) = gain * (z - mean) / sqrt(var + eps) + shift, with the mean and
variance of each row (``functional.layernorm_forward``). h~ = h_{t-1} * m_h, and
m_h, m_g, m_c are the recurrent-dropout masks (``tutorials/08_recurrent_dropout.md``),
1 where nothing is dropped.

flavour="paper" (Ba et al. 2016; ``step_forward``, ``step_backward``)::

    a_t = LN(h~ U; gain_h) + LN(x_t W; gain_x) + b           each LN over all 4H
    i, f, o = sigma(a_i), sigma(a_f), sigma(a_o)   g = tanh(a_g)
    c_t = m_c * (f * c_{t-1} + i * (g * m_g))                 carried as it is
    h_t = o * tanh(LN(c_t; gain_c, shift_c))

flavour="tensorflow" (``LayerNormBasicLSTMCell``; ``step_forward_tf``, ``step_backward_tf``)::

    z_t = x_t W + h~ U                                       no bias
    a_k = LN(z_k; gain_k, shift_k)  for each gate block k = i, f, o, g
    c_t = m_c * LN(f * c_{t-1} + i * (g * m_g); gain_c, shift_c)      stored as the state
    h_t = o * tanh(c_t)

Backwards: the LSTM's step (``reference/lstm.py``) with layer norm's backward
(``functional.layernorm_backward``) wherever the forward has an LN. The paper's
carried c_t is the raw cell: dc_t from step t+1 joins *after* LN(c)'s backward;
tensorflow's carried c_t is LN's output: dc_t joins *before* it.
"""

from __future__ import annotations

import numpy as np

from ..functional.layernorm import layernorm_backward, layernorm_forward
from ..types import Cache, Grads, Params, State
from .common import mask_at, sigmoid


def gates(a):
    """a: (B, 4H) -> i, f, o, g."""
    H = a.shape[1] // 4
    return (
        sigmoid(a[:, :H]),
        sigmoid(a[:, H : 2 * H]),
        sigmoid(a[:, 2 * H : 3 * H]),
        np.tanh(a[:, 3 * H :]),
    )


def gates_backward(du, do, c_prev, i, f, o, g, m_g):
    """The LSTM's gate nodes backwards, from du = dL/d(f c_{t-1} + i g m_g) and
    do = dL/do -> da: (B, 4H), dc_prev: (B, H)."""
    di, df, dg = du * (g * m_g), du * c_prev, du * i * m_g
    da = np.concatenate(
        [di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g**2)], axis=1
    )
    return da, du * f


def step_forward(params, x_t, h_prev, c_prev, eps=1e-2, m_h=1.0, m_g=1.0, m_c=1.0):
    """Paper flavour. x_t: (B, I); h_prev, c_prev: (B, H) -> h, c: (B, H), cache."""
    no_shift = np.zeros(params["b"].shape, x_t.dtype)  # b serves as the shift
    lh, ln_h = layernorm_forward((h_prev * m_h) @ params["U"], params["gain_h"], no_shift, eps)
    lx, ln_x = layernorm_forward(x_t @ params["W"], params["gain_x"], no_shift, eps)
    i, f, o, g = gates(lh + lx + params["b"])
    c = m_c * (f * c_prev + i * (g * m_g))
    lc, ln_c = layernorm_forward(c, params["gain_c"], params["shift_c"], eps)
    tanh_c = np.tanh(lc)
    h = o * tanh_c
    cache = (x_t, h_prev, c_prev, i, f, o, g, tanh_c, ln_x, ln_h, ln_c, m_h, m_g, m_c)
    return h, c, cache


def step_backward(params, dh, dc_next, cache):
    """Paper flavour. dh: (B, H) total dL/dh_t; dc_next: dL/dc_t from step t+1
    -> dx_t: (B, I), dh_prev, dc_prev: (B, H), this step's grads."""
    x_t, h_prev, c_prev, i, f, o, g, tanh_c, ln_x, ln_h, ln_c, m_h, m_g, m_c = cache
    dc, dgain_c, dshift_c = layernorm_backward(dh * o * (1 - tanh_c**2), ln_c)
    du = (dc + dc_next) * m_c  # c_t feeds LN(c_t) and step t+1
    da, dc_prev = gates_backward(du, dh * tanh_c, c_prev, i, f, o, g, m_g)
    dhu, dgain_h, _ = layernorm_backward(da, ln_h)  # a = LN(h~ U) + LN(x W) + b
    dxw, dgain_x, _ = layernorm_backward(da, ln_x)
    dx_t = dxw @ params["W"].T
    dh_prev = (dhu @ params["U"].T) * m_h
    grads = {
        "W": x_t.T @ dxw,
        "U": (h_prev * m_h).T @ dhu,
        "b": da.sum(axis=0),
        "gain_x": dgain_x,
        "gain_h": dgain_h,
        "gain_c": dgain_c,
        "shift_c": dshift_c,
    }
    return dx_t, dh_prev, dc_prev, grads


def step_forward_tf(params, x_t, h_prev, c_prev, eps=1e-2, m_h=1.0, m_g=1.0, m_c=1.0):
    """TensorFlow flavour. x_t: (B, I); h_prev, c_prev: (B, H) -> h, c: (B, H), cache."""
    z = x_t @ params["W"] + (h_prev * m_h) @ params["U"]
    blocks = [
        layernorm_forward(z_k, gain_k, shift_k, eps)  # one LN per gate
        for z_k, gain_k, shift_k in zip(
            np.split(z, 4, axis=1), np.split(params["gain"], 4), np.split(params["shift"], 4)
        )
    ]
    i, f, o, g = gates(np.concatenate([a_k for a_k, _ in blocks], axis=1))
    c_ln, ln_c = layernorm_forward(
        f * c_prev + i * (g * m_g), params["gain_c"], params["shift_c"], eps
    )
    c = m_c * c_ln  # stored, and read by h_t
    tanh_c = np.tanh(c)
    h = o * tanh_c
    cache = (x_t, h_prev, c_prev, i, f, o, g, tanh_c, [ln for _, ln in blocks], ln_c, m_h, m_g, m_c)
    return h, c, cache


def step_backward_tf(params, dh, dc_next, cache):
    """TensorFlow flavour, as ``step_backward``."""
    x_t, h_prev, c_prev, i, f, o, g, tanh_c, ln_gates, ln_c, m_h, m_g, m_c = cache
    dc = (dc_next + dh * o * (1 - tanh_c**2)) * m_c  # c_t feeds the tanh and step t+1
    du, dgain_c, dshift_c = layernorm_backward(dc, ln_c)
    da, dc_prev = gates_backward(du, dh * tanh_c, c_prev, i, f, o, g, m_g)
    blocks = [
        layernorm_backward(da_k, ln_k) for da_k, ln_k in zip(np.split(da, 4, axis=1), ln_gates)
    ]
    dz = np.concatenate([dz_k for dz_k, _, _ in blocks], axis=1)
    dx_t = dz @ params["W"].T  # z = x W + h~ U: dz reaches both
    dh_prev = (dz @ params["U"].T) * m_h
    grads = {
        "W": x_t.T @ dz,
        "U": (h_prev * m_h).T @ dz,
        "gain": np.concatenate([dgain for _, dgain, _ in blocks]),
        "shift": np.concatenate([dshift for _, _, dshift in blocks]),
        "gain_c": dgain_c,
        "shift_c": dshift_c,
    }
    return dx_t, dh_prev, dc_prev, grads


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    flavour: str = "paper",
    eps: float = 1e-2,
    masks: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, Cache]:
    """x: (B, T, I) -> hs: (B, T, H), cache. ``state`` is (h0, c0), zeros when None;
    ``masks`` is a compiled cell's ``cache["masks"]`` (None: no dropout)."""
    step = step_forward_tf if flavour == "tensorflow" else step_forward
    B, T, _ = x.shape
    zeros = np.zeros((B, params["U"].shape[0]), x.dtype)
    h, c = (zeros, zeros) if state is None else state
    hs, steps = [], []
    for t in range(T):
        m_h, m_g, m_c = (mask_at(masks, where, t) for where in ("hidden", "update", "cell"))
        h, c, step_cache = step(params, x[:, t], h, c, eps, m_h, m_g, m_c)
        hs.append(h)
        steps.append(step_cache)
    cache = {"steps": steps, "flavour": flavour, "has_state": state is not None, "state": (h, c)}
    return np.stack(hs, axis=1), cache


def backward(
    params: Params, dhs: np.ndarray, cache: Cache, dstate: State | None = None
) -> tuple[np.ndarray, Grads]:
    """dhs: (B, T, H) -> dx: (B, T, I), grads (the keys of params, and h0, c0 when
    ``forward`` was given a state). ``dstate``: (dh_T, dc_T), or None."""
    step = step_backward_tf if cache["flavour"] == "tensorflow" else step_backward
    T = dhs.shape[1]
    zeros = np.zeros_like(dhs[:, 0])
    dh_next, dc_next = (zeros, zeros) if dstate is None else dstate
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dxs = [None] * T
    for t in reversed(range(T)):
        dxs[t], dh_next, dc_next, step_grads = step(
            params, dhs[:, t] + dh_next, dc_next, cache["steps"][t]
        )
        for k, g in step_grads.items():
            grads[k] += g
    if cache["has_state"]:
        grads["h0"], grads["c0"] = dh_next, dc_next
    return np.stack(dxs, axis=1), grads
