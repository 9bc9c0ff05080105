"""The LSTM with recurrent batch norm (Cooijmans et al. 2017) in plain NumPy, as
``tutorials/09_recurrent_normalization.md`` derives it: the readable twin of the
compiled cell ``minirnn/cells/bnlstm.py``, tested equal to it
(``tests/test_reference.py``).

One timestep, gate order i, f, o, g::

    a_t = BN(h~ U; gamma_h) + BN(x_t W; gamma_x) + b          h~ = h_{t-1} * m_h
    i = sigma(a_i)   f = sigma(a_f)   o = sigma(a_o)   g = tanh(a_g)
    u_t = f * c_{t-1} + i * (g * m_g)
    default (the paper):           c_t = m_c * u_t        h_t = o * tanh(BN(c_t; gamma_c, beta_c))
    carry_normalized_c=True:       c_t = m_c * BN(u_t; gamma_c, beta_c)        h_t = o * tanh(c_t)

BN(z; gamma, beta) = gamma * (z - mean) / sqrt(var + eps) + beta per feature: in
training with the batch's mean and (biased) variance of this timestep, in
evaluation with population statistics ``stats`` of shape (T_max, size), step t
reading row min(t, T_max - 1). m_h, m_g, m_c are the recurrent-dropout masks
(``tutorials/08_recurrent_dropout.md``), 1 where nothing is dropped.

Backwards: the LSTM's step (``reference/lstm.py``) with a batch-norm backward
wherever the forward has a BN, ``BN^T(dy) = gamma / (M sqrt(var + eps)) (M dy -
sum dy - xhat sum(dy xhat))`` in training and ``gamma dy / sqrt(var + eps)`` in
evaluation (``functional.batchnorm_backward``)::

    dtanh = dh * o * (1 - tanh^2)          (the gradient at the tanh's input)
    default:        du = (BN_c^T(dtanh) + dc_next) * m_c
    carried BN(u):  du = BN_c^T((dtanh + dc_next) * m_c)
    gates from du and dh as in the LSTM
    d(h~ U) = BN_h^T(da)       d(x_t W) = BN_x^T(da)        db += sum_batch da
"""
import numpy as np

from ..functional.batchnorm import batchnorm_backward, batchnorm_forward
from .common import mask_at, sigmoid


def batchnorm(z, gamma, beta, eps, population=None):
    """BN(z; gamma, beta) of z: (B, F) with the batch's statistics, or with the
    population's ``(mean, var)`` -> y: (B, F), cache (which keeps mean and var)."""
    if population is None:
        return batchnorm_forward(z, gamma, beta, eps=eps)
    mean, var = population
    return batchnorm_forward(z, gamma, beta, training=False, running_mean=mean,
                             running_var=var, eps=eps)


def step_forward(params, x_t, h_prev, c_prev, *, eps=1e-5, carry_normalized_c=False,
                 population=None, m_h=1.0, m_g=1.0, m_c=1.0):
    """x_t: (B, I); h_prev, c_prev: (B, H); ``population``: None in training, else
    {"x": (mean, var), "h": ..., "c": ...} of this step -> h, c: (B, H), cache."""
    H = h_prev.shape[1]
    pop = population or dict.fromkeys("xhc")
    no_shift = np.zeros(4 * H, x_t.dtype)           # b serves as the shift of both terms
    bx, bn_x = batchnorm(x_t @ params["W"], params["gamma_x"], no_shift, eps, pop["x"])
    bh, bn_h = batchnorm((h_prev * m_h) @ params["U"], params["gamma_h"], no_shift, eps,
                         pop["h"])
    a = bh + bx + params["b"]
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2 * H])
    o = sigmoid(a[:, 2 * H:3 * H])
    g = np.tanh(a[:, 3 * H:])
    u = f * c_prev + i * (g * m_g)
    if carry_normalized_c:                          # BN(u_t) is carried, and read by h_t
        u_bn, bn_c = batchnorm(u, params["gamma_c"], params["beta_c"], eps, pop["c"])
        c = m_c * u_bn
        tanh_c = np.tanh(c)
    else:                                           # u_t is carried; BN only in the tanh
        c = m_c * u
        c_bn, bn_c = batchnorm(c, params["gamma_c"], params["beta_c"], eps, pop["c"])
        tanh_c = np.tanh(c_bn)
    h = o * tanh_c
    cache = (x_t, h_prev, c_prev, i, f, o, g, tanh_c, carry_normalized_c, m_h, m_g, m_c,
             {"x": bn_x, "h": bn_h, "c": bn_c})
    return h, c, cache


def step_backward(params, dh, dc_next, cache):
    """dh: (B, H) total dL/dh_t; dc_next: (B, H) dL/dc_t from step t+1
    -> dx_t: (B, I), dh_prev, dc_prev: (B, H), this step's grads."""
    x_t, h_prev, c_prev, i, f, o, g, tanh_c, carry_normalized_c, m_h, m_g, m_c, bn = cache
    do = dh * tanh_c
    dtanh = dh * o * (1 - tanh_c ** 2)
    if carry_normalized_c:                          # c_t = m_c * BN(u_t) feeds both
        du, dgamma_c, dbeta_c = batchnorm_backward((dtanh + dc_next) * m_c, bn["c"])
    else:                                           # c_t = m_c * u_t feeds BN and step t+1
        dc, dgamma_c, dbeta_c = batchnorm_backward(dtanh, bn["c"])
        du = (dc + dc_next) * m_c
    di, df, dg = du * (g * m_g), du * c_prev, du * i * m_g
    dc_prev = du * f
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f),
                         do * o * (1 - o), dg * (1 - g ** 2)], axis=1)
    dhu, dgamma_h, _ = batchnorm_backward(da, bn["h"])     # a = BN(h~ U) + BN(x W) + b
    dxw, dgamma_x, _ = batchnorm_backward(da, bn["x"])
    dx_t = dxw @ params["W"].T
    dh_prev = (dhu @ params["U"].T) * m_h
    grads = {"W": x_t.T @ dxw, "U": (h_prev * m_h).T @ dhu, "b": da.sum(axis=0),
             "gamma_x": dgamma_x, "gamma_h": dgamma_h, "gamma_c": dgamma_c,
             "beta_c": dbeta_c}
    return dx_t, dh_prev, dc_prev, grads


def forward(params, x, state=None, *, training=True, stats=None, eps=1e-5,
            carry_normalized_c=False, masks=None):
    """x: (B, T, I) -> hs: (B, T, H), cache. ``state`` is (h0, c0), zeros when None.
    ``stats``: population statistics (``mean_x``, ``var_x``, ``mean_h``, ...,
    each (T_max, size)) for ``training=False``. In training, ``cache["batch_stats"]``
    holds each step's batch means and variances, (T, size) each. ``masks`` is a
    compiled cell's ``cache["masks"]`` (None: no dropout)."""
    B, T, _ = x.shape
    zeros = np.zeros((B, params["U"].shape[0]), x.dtype)
    h, c = (zeros, zeros) if state is None else state
    hs, steps = [], []
    for t in range(T):
        population = None
        if not training:                            # step t reads row t, or the last one
            s = min(t, len(stats["mean_x"]) - 1)
            population = {p: (stats[f"mean_{p}"][s], stats[f"var_{p}"][s]) for p in "xhc"}
        m_h, m_g, m_c = (mask_at(masks, where, t) for where in ("hidden", "update", "cell"))
        h, c, step = step_forward(params, x[:, t], h, c, eps=eps,
                                  carry_normalized_c=carry_normalized_c,
                                  population=population, m_h=m_h, m_g=m_g, m_c=m_c)
        hs.append(h)
        steps.append(step)
    cache = {"steps": steps, "has_state": state is not None, "state": (h, c)}
    if training:
        bns = [step[-1] for step in steps]
        cache["batch_stats"] = {f"{stat}_{p}": np.stack([bn[p][stat] for bn in bns])
                                for p in "xhc" for stat in ("mean", "var")}
    return np.stack(hs, axis=1), cache


def backward(params, dhs, cache, dstate=None):
    """dhs: (B, T, H) -> dx: (B, T, I), grads (the keys of params, and h0, c0 when
    ``forward`` was given a state). ``dstate``: (dh_T, dc_T), or None."""
    T = dhs.shape[1]
    zeros = np.zeros_like(dhs[:, 0])
    dh_next, dc_next = (zeros, zeros) if dstate is None else dstate
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dxs = [None] * T
    for t in reversed(range(T)):
        dxs[t], dh_next, dc_next, step_grads = step_backward(
            params, dhs[:, t] + dh_next, dc_next, cache["steps"][t])
        for k, g in step_grads.items():
            grads[k] += g
    if cache["has_state"]:
        grads["h0"], grads["c0"] = dh_next, dc_next
    return np.stack(dxs, axis=1), grads
