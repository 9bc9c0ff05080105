"""The LSTM with recurrent batch norm (Cooijmans et al. 2017) in plain NumPy, as
``tutorials/09_recurrent_normalization.md`` derives it: the readable twin of the
compiled cell ``minirnn/cells/bnlstm.py``, tested equal to it
(``tests/test_reference.py``).

One timestep, gate order i, f, o, g::

    a_t = BN(h~ U; gamma_h) + BN(x_t W; gamma_x) + b          h~ = h_{t-1} * m_h
    i = sigma(a_i)   f = sigma(a_f)   o = sigma(a_o)   g = tanh(a_g)
    u_t = f * c_{t-1} + i * (g * m_g)
    default (the paper):      c_t = m_c * u_t        h_t = o * tanh(BN(c_t; gamma_c, beta_c))
    carry_normalized_c=True:  c_t = m_c * BN(u_t; gamma_c, beta_c)       h_t = o * tanh(c_t)

m_h, m_g, m_c are the recurrent-dropout masks (``tutorials/08_recurrent_dropout.md``),
1 where nothing is dropped. BN(x_t W) does not depend on h, so ``forward``
computes it for every step before the loop (``x_stats="step"``), or with one
set of statistics over all steps (``"shared"``), or leaves x_t W as it is
(``"none"``); the step takes the result, ``bx_t``.

BN(z; gamma, beta) = gamma * (z - mean) / sqrt(var + eps) + beta per feature,
with one of three kinds of statistics (``normalize``): the batch's mean and
biased variance of this timestep ("batch"), population statistics ``stats`` of
shape (T_max, size), step t reading row min(t, T_max - 1) ("population"), or the
batch's corrected towards the population's (batch renormalization, "renorm").
``train_stats`` says which in training, ``eval_stats`` in evaluation.

Backwards: the LSTM's step (``reference/lstm.py``) with a batch-norm backward
wherever the forward has a BN: with batch statistics ``BN^T(dy) = gamma /
(M sqrt(var + eps)) (M dy - sum dy - xhat sum(dy xhat))``, with population ones
``gamma dy / sqrt(var + eps)`` (``functional.batchnorm_backward``)::

    dtanh = dh * o * (1 - tanh^2)          (the gradient at the tanh's input)
    default:        du = (BN_c^T(dtanh) + dc_next) * m_c
    carried BN(u):  du = BN_c^T((dtanh + dc_next) * m_c)
    gates from du and dh as in the LSTM
    d(h~ U) = BN_h^T(da)       d(bx_t) = da       db += sum_batch da

and after the loop d(x W) = BN_x^T(d bx), dW = sum_t x_t^T d(x_t W).
"""

from __future__ import annotations

import numpy as np

from ..functional.batchnorm import batchnorm_backward, batchnorm_forward
from ..types import Cache, Grads, Params, State
from .common import mask_at, sigmoid


def normalize(z, gamma, beta, eps, how="batch", population=None, rmax=3.0, dmax=5.0):
    """BN(z; gamma, beta) of z: (M, F) -> y: (M, F), cache (which keeps the
    statistics used). ``how``: "batch" (the batch's), "population" (``population``
    = (mean, var), (F,) each) or "renorm": batch renormalization (Ioffe 2017),

        sigma_B = sqrt(var_B + eps)    sigma = sqrt(var + eps)    (var: the population's)
        r = clip(sigma_B / sigma, 1/rmax, rmax)    d = clip((mean_B - mean) / sigma, -dmax, dmax)
        y = gamma * ((z - mean_B) / sigma_B * r + d) + beta

    with r and d constants for backward."""
    if how == "batch":
        return batchnorm_forward(z, gamma, beta, eps=eps)
    mean, var = population
    if how == "population":
        return batchnorm_forward(
            z, gamma, beta, training=False, running_mean=mean, running_var=var, eps=eps
        )
    mean_b, var_b = z.mean(axis=0), z.var(axis=0)
    sigma_b, sigma = np.sqrt(var_b + eps), np.sqrt(var + eps)
    r = np.clip(sigma_b / sigma, 1 / rmax, rmax)
    d = np.clip((mean_b - mean) / sigma, -dmax, dmax)
    xhat = (z - mean_b) / sigma_b
    cache = {
        "renorm": True,
        "xhat": xhat,
        "sigma_b": sigma_b,
        "r": r,
        "d": d,
        "gamma": gamma,
        "mean": mean_b,
        "var": var_b,
    }
    return gamma * (xhat * r + d) + beta, cache


def normalize_backward(dy, cache):
    """dy: (M, F) -> dz: (M, F), dgamma, dbeta: (F,)."""
    if not cache.get("renorm"):
        return batchnorm_backward(dy, cache)
    xhat, r, d = cache["xhat"], cache["r"], cache["d"]
    dxhat = dy * cache["gamma"] * r  # batch norm's backward, gain gamma * r
    M = len(dy)
    dz = (M * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0)) / (
        M * cache["sigma_b"]
    )
    return dz, (dy * (xhat * r + d)).sum(axis=0), dy.sum(axis=0)


def step_forward(
    params, bx_t, h_prev, c_prev, bn, carry_normalized_c=False, m_h=1.0, m_g=1.0, m_c=1.0
):
    """bx_t: (B, 4H) = BN(x_t W; gamma_x); h_prev, c_prev: (B, H); ``bn(z, gamma,
    beta, part)``: ``normalize`` with this step's statistics of ``part``, "h" (of
    h~ U) or "c" (of the cell) -> h, c: (B, H), cache."""
    H = h_prev.shape[1]
    no_shift = np.zeros(4 * H, bx_t.dtype)  # b serves as the shift
    bh, bn_h = bn((h_prev * m_h) @ params["U"], params["gamma_h"], no_shift, "h")
    a = bh + bx_t + params["b"]
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H : 2 * H])
    o = sigmoid(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    u = f * c_prev + i * (g * m_g)
    if carry_normalized_c:  # BN(u_t) is carried, and read by h_t
        u_bn, bn_c = bn(u, params["gamma_c"], params["beta_c"], "c")
        c = m_c * u_bn
        tanh_c = np.tanh(c)
    else:  # u_t is carried; BN only in the tanh
        c = m_c * u
        c_bn, bn_c = bn(c, params["gamma_c"], params["beta_c"], "c")
        tanh_c = np.tanh(c_bn)
    h = o * tanh_c
    cache = (h_prev, c_prev, i, f, o, g, tanh_c, carry_normalized_c, m_h, m_g, m_c, bn_h, bn_c)
    return h, c, cache


def step_backward(params, dh, dc_next, cache):
    """dh: (B, H) total dL/dh_t; dc_next: (B, H) dL/dc_t from step t+1
    -> dbx_t: (B, 4H) = dL/d(bx_t), dh_prev, dc_prev: (B, H), this step's grads."""
    h_prev, c_prev, i, f, o, g, tanh_c, carry_normalized_c, m_h, m_g, m_c, bn_h, bn_c = cache
    do = dh * tanh_c
    dtanh = dh * o * (1 - tanh_c**2)
    if carry_normalized_c:  # c_t = m_c * BN(u_t) feeds both
        du, dgamma_c, dbeta_c = normalize_backward((dtanh + dc_next) * m_c, bn_c)
    else:  # c_t = m_c * u_t feeds BN and step t+1
        dc, dgamma_c, dbeta_c = normalize_backward(dtanh, bn_c)
        du = (dc + dc_next) * m_c
    di, df, dg = du * (g * m_g), du * c_prev, du * i * m_g
    dc_prev = du * f
    da = np.concatenate(
        [di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g**2)], axis=1
    )
    dhu, dgamma_h, _ = normalize_backward(da, bn_h)  # a = BN(h~ U) + bx_t + b
    dh_prev = (dhu @ params["U"].T) * m_h
    grads = {
        "U": (h_prev * m_h).T @ dhu,
        "b": da.sum(axis=0),
        "gamma_h": dgamma_h,
        "gamma_c": dgamma_c,
        "beta_c": dbeta_c,
    }
    return da, dh_prev, dc_prev, grads


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    training: bool = True,
    stats: dict[str, np.ndarray] | None = None,
    eps: float = 1e-5,
    x_stats: str = "step",
    train_stats: str = "batch",
    eval_stats: str = "population",
    renorm_rmax: float = 3.0,
    renorm_dmax: float = 5.0,
    carry_normalized_c: bool = False,
    stats_momentum: float = 0.1,
    refresh_batches: int = 0,
    masks: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, Cache]:
    """x: (B, T, I) -> hs: (B, T, H), cache. ``state`` is (h0, c0), zeros when None.
    ``stats``: population statistics (``mean_x``, ``var_x``, ``mean_h``, ...,
    each (T_max, size); those of x W have one row with ``x_stats="shared"``), read
    unless the statistics are the batch's. When they are the batch's (or renormalized),
    ``cache["batch_stats"]`` holds each step's batch means and variances, (T, size)
    each. ``masks`` is a compiled cell's ``cache["masks"]`` (None: no dropout).
    ``stats_momentum`` and ``refresh_batches`` change nothing in this call: they say
    how the population statistics are kept between calls (the compiled cell's
    ``update_statistics`` and the ``nn.Recurrent`` layer read them)."""
    B, T, _ = x.shape
    H = params["U"].shape[0]
    how = train_stats if training else eval_stats

    def population(part, t):  # row t of the population's statistics, or the last row
        if how == "batch":
            return None
        s = min(t, len(stats[f"mean_{part}"]) - 1)
        return stats[f"mean_{part}"][s], stats[f"var_{part}"][s]

    def bn_at(t):  # batch norm with the statistics of step t
        return lambda z, gamma, beta, part: normalize(
            z, gamma, beta, eps, how, population(part, t), renorm_rmax, renorm_dmax
        )

    # BN(x_t W) does not depend on h: every step's, before the loop
    xw = x @ params["W"]  # (B, T, 4H)
    no_shift = np.zeros(4 * H, x.dtype)
    if x_stats == "none":
        bx, bn_x = xw, []
    elif x_stats == "shared":  # one set of statistics over all steps
        bx, bn_shared = bn_at(0)(xw.reshape(B * T, 4 * H), params["gamma_x"], no_shift, "x")
        bx, bn_x = bx.reshape(B, T, 4 * H), [bn_shared]
    else:
        steps_x = [bn_at(t)(xw[:, t], params["gamma_x"], no_shift, "x") for t in range(T)]
        bx, bn_x = np.stack([y for y, _ in steps_x], axis=1), [c for _, c in steps_x]

    zeros = np.zeros((B, H), x.dtype)
    h, c = (zeros, zeros) if state is None else state
    hs, steps = [], []
    for t in range(T):
        m_h, m_g, m_c = (mask_at(masks, where, t) for where in ("hidden", "update", "cell"))
        h, c, step = step_forward(
            params, bx[:, t], h, c, bn_at(t), carry_normalized_c, m_h, m_g, m_c
        )
        hs.append(h)
        steps.append(step)
    cache = {
        "x": x,
        "x_stats": x_stats,
        "bn_x": bn_x,
        "steps": steps,
        "stats_momentum": stats_momentum,
        "has_state": state is not None,
        "state": (h, c),
    }
    if how != "population":  # the batch's statistics of every step
        bns = {"x": bn_x, "h": [step[-2] for step in steps], "c": [step[-1] for step in steps]}
        cache["batch_stats"] = {
            f"{stat}_{p}": np.stack([bn[stat] for bn in bns[p]])
            for p in "xhc"
            for stat in ("mean", "var")
            if bns[p]
        }
    return np.stack(hs, axis=1), cache


def backward(
    params: Params, dhs: np.ndarray, cache: Cache, dstate: State | None = None
) -> tuple[np.ndarray, Grads]:
    """dhs: (B, T, H) -> dx: (B, T, I), grads (the keys of params, and h0, c0 when
    ``forward`` was given a state). ``dstate``: (dh_T, dc_T), or None."""
    B, T, H = dhs.shape
    x = cache["x"]
    zeros = np.zeros_like(dhs[:, 0])
    dh_next, dc_next = (zeros, zeros) if dstate is None else dstate
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dbx = np.zeros((B, T, 4 * H), dhs.dtype)
    for t in reversed(range(T)):
        dbx[:, t], dh_next, dc_next, step_grads = step_backward(
            params, dhs[:, t] + dh_next, dc_next, cache["steps"][t]
        )
        for k, g in step_grads.items():
            grads[k] += g
    # the x branch, after the loop: bx = BN(x W), per step or shared, or x W itself
    if cache["x_stats"] == "none":
        dxw = dbx
    elif cache["x_stats"] == "shared":
        dxw, grads["gamma_x"], _ = normalize_backward(dbx.reshape(B * T, 4 * H), cache["bn_x"][0])
        dxw = dxw.reshape(B, T, 4 * H)
    else:
        dxw = np.zeros_like(dbx)
        for t in range(T):
            dxw[:, t], dgamma_x, _ = normalize_backward(dbx[:, t], cache["bn_x"][t])
            grads["gamma_x"] += dgamma_x
    grads["W"] = x.reshape(B * T, -1).T @ dxw.reshape(B * T, 4 * H)
    if cache["has_state"]:
        grads["h0"], grads["c0"] = dh_next, dc_next
    return dxw @ params["W"].T, grads
