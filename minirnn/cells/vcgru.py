"""Variable-computation GRU (VCGRU, Jernite et al. 2017).

Readable twin: ``minirnn/reference/vcgru.py``, the same equations in plain NumPy, one
timestep per Python call; ``tests/test_reference.py`` holds this kernel equal to it.

The inner cell is ``gru`` with ``reset_after=False`` (Cho et al. 2014, TensorFlow's
``GRUCell``: the reset gate acts on the state before ``U_n``), gates z, r, n in
that order, ``z = 1`` keeping the old state. One timestep
(``tutorials/06_variable_computation.md``; scheduler, masks, modes and penalty
in ``_vc_mask.py``)::

    m_t   = sigma(x_t w_x + h_{t-1} w_h + b_m)                      (B,)
    e_t   = Thres_eps(sigma(lambda (m_t H - i))),  i = 0..H-1        (B, H)
    e^x_t = Thres_eps(sigma(lambda (m_t I - k))),  k = 0..I-1        (B, I)
    xbar = e^x_t * x_t          hbar = e_t * h_{t-1}
    z = sigma(xbar W_z + hbar U_z + b_z)      r = sigma(xbar W_r + hbar U_r + b_r)
    n = tanh(xbar W_n + (r * hbar) U_n + b_n)
    h~ = z * hbar + (1 - z) * n                                  the GRU on (xbar, hbar)
    h_t = e_t * h~ + (1 - e_t) * h_{t-1}

Parameters: ``W: (input, 3H)``, ``U: (H, 3H)``, ``b: (3H,)`` (those of
``gru`` with ``reset_after=False``), and the scheduler's ``w_x: (input,)``,
``w_h: (H,)``, ``b_m: (1,)`` (``init(..., scheduler_bias=0.0)``). State ``h0``;
``cache["state"] == h_T``. Forward options, ``cache["penalty"]``,
``cache["metrics"]`` and what is hoisted: as in ``vcrnn``.

Backward, one step (``dh`` = total dL/dh_t)::

    dh~ = dh * e
    da_n = dh~ (1 - z)(1 - n^2)       da_z = dh~ (hbar - n) z (1 - z)
    d(r hbar) = da_n U_n^T            da_r = d(r hbar) * hbar * r (1 - r)
    dhbar = dh~ z + d(r hbar) r + [da_z, da_r] [U_z, U_r]^T
    dh_{t-1} = dh (1 - e) + dhbar e + dz w_h
    de = dh (h~ - h_{t-1}) + dhbar h_{t-1}
    (then dm, dz, dx_t as in ``vcrnn``)
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import DTypeLike

from ..functional.activations import sigmoid, tanh
from ..initializers import gate_blocks, glorot_uniform, orthogonal
from ..types import Cache, Grads, Params, Shapes, State
from . import _vc_mask as vc
from ._checks import check_gradients
from ._projection import batch_major
from ._vc_mask import init_scheduler, scheduler_and_masks, scheduler_and_masks_backward

INIT_OPTIONS = ("scheduler_bias",)
FORWARD_OPTIONS = vc.FORWARD_OPTIONS
GRADCHECK_CASES = vc.GRADCHECK_CASES
STATE_SIZE = 1
GATES = 3
_ONE = np.float32(1.0)


def param_shapes(input_size: int, hidden_size: int, **options) -> Shapes:
    """Shapes by name; no option changes them (options are accepted for callers
    that pass a case's options along)."""
    return vc.param_shapes(input_size, hidden_size, GATES)


def init(
    input_size: int,
    hidden_size: int,
    *,
    rng: np.random.Generator,
    dtype: DTypeLike = np.float32,
    scheduler_bias: float = 0.0,
) -> Params:
    """As ``gru.init`` (Glorot W, orthogonal U per gate, zero b), and the scheduler."""
    H = hidden_size
    params = {
        "W": gate_blocks(lambda: glorot_uniform(rng, input_size, H, dtype), 3),
        "U": gate_blocks(lambda: orthogonal(rng, H, dtype), 3),
        "b": np.zeros(3 * H, dtype=dtype),
    }
    params.update(init_scheduler(input_size, hidden_size, rng, dtype, scheduler_bias))
    return params


@njit(cache=True, nogil=True, error_model="numpy")
def step_forward(
    x_t,
    xm_t,
    h_prev,
    W,
    U_zr,
    U_n,
    b,
    w_h,
    mask_h,
    mask_x,
    eps,
    soft,
    h,
    m,
    e,
    ex,
    zrn,
    h_tilde,
    xbar,
    hbar,
    xw,
    hu_zr,
    rh,
    rec,
):
    """One timestep. x_t: (B, I); xm_t: (B,) = x_t w_x + b_m; h_prev: (B, H);
    W: (I, 3H); U_zr: (H, 2H), U_n: (H, H) the column blocks of U; b: (3H,); w_h: (H,);
    mask_h, mask_x, eps, soft as in ``vcrnn.step_forward``.
    Writes h: (B, H), m: (B,), e: (B, H), ex: (B, I), zrn: (B, 3H) activated gates,
    h_tilde: (B, H). Scratch: xbar: (B, I); hbar, rh, rec: (B, H); xw: (B, 3H);
    hu_zr: (B, 2H).
    Readable twin: ``reference/vcgru.py``, ``step_forward``."""
    B, H = h_prev.shape
    scheduler_and_masks(x_t, xm_t, h_prev, w_h, mask_h, mask_x, eps, soft, m, e, ex, xbar)
    np.multiply(e, h_prev, hbar)  # hbar = e_t * h_{t-1}
    np.dot(xbar, W, xw)
    np.dot(hbar, U_zr, hu_zr)
    for n in range(B):
        for j in range(2 * H):  # z, r = sigma(xbar W + hbar U + b)
            zrn[n, j] = sigmoid(xw[n, j] + hu_zr[n, j] + b[j])
        for j in range(H):
            rh[n, j] = zrn[n, H + j] * hbar[n, j]
    np.dot(rh, U_n, rec)  # (r * hbar) U_n
    for n in range(B):
        for j in range(H):
            z = zrn[n, j]
            cand = tanh(xw[n, 2 * H + j] + rec[n, j] + b[2 * H + j])
            zrn[n, 2 * H + j] = cand
            h_tilde[n, j] = z * hbar[n, j] + (_ONE - z) * cand
            h[n, j] = e[n, j] * h_tilde[n, j] + (_ONE - e[n, j]) * h_prev[n, j]


@njit(cache=True, nogil=True, error_model="numpy")
def step_backward(
    dh_out,
    dh,
    dm_pen,
    x_t,
    h_prev,
    h_tilde,
    m,
    e,
    zrn,
    WT,
    UT_zr,
    UT_n,
    w_h,
    mask_h,
    mask_x,
    eps,
    soft,
    da,
    dxbar,
    dz,
    dh_prev,
    hbar,
    da_zr,
    da_n,
    d_rh,
    dhbar,
    de,
    dm,
    dex,
):
    """One timestep backwards. dh_out: (B, H) dL/dh_t from the output at t; dh: (B, H)
    dL/dh_t through step t+1 (overwritten); dm_pen: (B,); WT: (3H, I), UT_zr: (2H, H),
    UT_n: (H, H) transposed. Writes da: (B, 3H) = dL/d(pre-activations of z, r, n),
    dxbar: (B, I) (soft mode), dz: (B,), dh_prev: (B, H). Scratch: da_zr: (B, 2H);
    hbar, da_n, d_rh, dhbar, de: (B, H); dm: (B,); dex: (B, I).
    Readable twin: ``reference/vcgru.py``, ``step_backward``."""
    B, H = dh.shape
    np.multiply(e, h_prev, hbar)
    for n in range(B):
        for j in range(H):
            dh[n, j] = dh_out[n, j] + dh[n, j]  # dh <- dL/dh_t
            z, cand = zrn[n, j], zrn[n, 2 * H + j]
            dht = dh[n, j] * e[n, j]  # dL/dh~
            da_n[n, j] = dht * (_ONE - z) * (_ONE - cand * cand)
            da_zr[n, j] = dht * (hbar[n, j] - cand) * z * (_ONE - z)
    np.dot(da_n, UT_n, d_rh)  # dL/d(r * hbar)
    for n in range(B):
        for j in range(H):
            r = zrn[n, H + j]
            da_zr[n, H + j] = d_rh[n, j] * hbar[n, j] * r * (_ONE - r)
    np.dot(da_zr, UT_zr, dhbar)
    for n in range(B):
        for j in range(H):
            dhbar[n, j] += dh[n, j] * e[n, j] * zrn[n, j] + d_rh[n, j] * zrn[n, H + j]
            dh_prev[n, j] = dh[n, j] * (_ONE - e[n, j]) + dhbar[n, j] * e[n, j]
        for j in range(2 * H):
            da[n, j] = da_zr[n, j]
        for j in range(H):
            da[n, 2 * H + j] = da_n[n, j]
    if soft:
        for n in range(B):
            for j in range(H):
                de[n, j] = dh[n, j] * (h_tilde[n, j] - h_prev[n, j]) + dhbar[n, j] * h_prev[n, j]
    scheduler_and_masks_backward(
        dm_pen, de, da, x_t, m, WT, w_h, mask_h, mask_x, eps, soft, dxbar, dz, dh_prev, dm, dex
    )


@njit(cache=True, nogil=True)
def forward_loop(x, xm, h0, W, U_zr, U_n, b, w_h, mask_h, mask_x, eps, soft):
    """x: (T, B, I) time-major; xm: (T, B) -> hs: (T+1, B, H) with hs[0] = h0,
    m: (T, B), e: (T, B, H), ex: (T, B, I), zrn: (T, B, 3H), h_tilde: (T, B, H)."""
    T, B, H = x.shape[0], h0.shape[0], h0.shape[1]
    dt = x.dtype
    hs = np.empty((T + 1, B, H), dtype=dt)
    m = np.empty((T, B), dtype=dt)
    e = np.empty((T, B, H), dtype=dt)
    ex = np.empty(x.shape, dtype=dt)
    zrn = np.empty((T, B, 3 * H), dtype=dt)
    h_tilde = np.empty((T, B, H), dtype=dt)
    # scratch for the steps, allocated once
    xbar, xw, hu_zr = (
        np.empty((B, x.shape[2]), dtype=dt),
        np.empty((B, 3 * H), dtype=dt),
        np.empty((B, 2 * H), dtype=dt),
    )
    hbar, rh, rec = (
        np.empty((B, H), dtype=dt),
        np.empty((B, H), dtype=dt),
        np.empty((B, H), dtype=dt),
    )
    hs[0] = h0
    for t in range(T):
        step_forward(
            x[t],
            xm[t],
            hs[t],
            W,
            U_zr,
            U_n,
            b,
            w_h,
            mask_h,
            mask_x,
            eps,
            soft,
            hs[t + 1],
            m[t],
            e[t],
            ex[t],
            zrn[t],
            h_tilde[t],
            xbar,
            hbar,
            xw,
            hu_zr,
            rh,
            rec,
        )
    return hs, m, e, ex, zrn, h_tilde


@njit(cache=True, nogil=True)
def backward_loop(
    dhs, dh_T, dm_pen, x, hs, h_tilde, m, e, zrn, WT, UT_zr, UT_n, w_h, mask_h, mask_x, eps, soft
):
    """dhs: (T, B, H) time-major; dh_T: (B, H) -> das: (T, B, 3H), dxbars: (T, B, I)
    (soft; one unused step in the hard mode), dzs: (T, B), dh0: (B, H)."""
    T, B, I = x.shape
    H = dhs.shape[2]
    dt = dhs.dtype
    das = np.empty_like(zrn)
    dxbars = np.empty((T if soft else 1, B, I), dtype=dt)
    dzs = np.empty((T, B), dtype=dt)
    dh, dh_prev = dh_T.copy(), np.empty_like(dh_T)  # two buffers, in turn
    # scratch for the steps, allocated once
    da_zr = np.empty((B, 2 * H), dtype=dt)
    hbar, da_n, d_rh, dhbar, de = (
        np.empty((B, H), dtype=dt),
        np.empty((B, H), dtype=dt),
        np.empty((B, H), dtype=dt),
        np.empty((B, H), dtype=dt),
        np.empty((B, H), dtype=dt),
    )
    dm, dex = np.empty(B, dtype=dt), np.empty((B, I), dtype=dt)
    for t in range(T - 1, -1, -1):
        t_dxbar = t if soft else 0
        step_backward(
            dhs[t],
            dh,
            dm_pen[t],
            x[t],
            hs[t],
            h_tilde[t],
            m[t],
            e[t],
            zrn[t],
            WT,
            UT_zr,
            UT_n,
            w_h,
            mask_h,
            mask_x,
            eps,
            soft,
            das[t],
            dxbars[t_dxbar],
            dzs[t],
            dh_prev,
            hbar,
            da_zr,
            da_n,
            d_rh,
            dhbar,
            de,
            dm,
            dex,
        )
        dh, dh_prev = dh_prev, dh
    return das, dxbars, dzs, dh


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    training: bool = True,
    rng: np.random.Generator | None = None,
    **options,
) -> tuple[np.ndarray, Cache]:
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache.
    ``state`` is h0: (batch, hidden). ``training`` and ``rng``: the common contract."""
    opts, x_tm, xm, (h0,), (mask_h, mask_x, eps) = vc.forward_inputs(
        "vcgru.forward", params, x, state, options, param_shapes, STATE_SIZE
    )
    U, H = params["U"], params["U"].shape[0]
    hs, m, e, ex, zrn, h_tilde = forward_loop(
        x_tm,
        xm,
        h0,
        np.ascontiguousarray(params["W"]),
        np.ascontiguousarray(U[:, : 2 * H]),
        np.ascontiguousarray(U[:, 2 * H :]),
        params["b"],
        np.ascontiguousarray(params["w_h"]),
        mask_h,
        mask_x,
        eps,
        opts["soft"],
    )
    masks = (mask_h, mask_x, eps)
    cache = vc.sequence_cache(
        x, x_tm, state, opts, masks, hs, m, e, ex, hs[-1], zrn=zrn, h_tilde=h_tilde
    )
    return batch_major(hs), cache


def backward(
    params: Params,
    dhs: np.ndarray,
    cache: Cache,
    dstate: State | None = None,
    *,
    input_grad: bool = True,
) -> tuple[np.ndarray | None, Grads]:
    """dhs: (batch, time, hidden) -> (dx, grads), the gradient of ``L + cache["penalty"]``.
    ``dstate``, optional: dL/dh_T. ``grads`` holds ``"h0"`` when a state was passed.
    ``input_grad=False`` skips dx (returned as None) when the input is data."""
    x_tm, hs, e, zrn = cache["x_tm"], cache["hs"], cache["e"], cache["zrn"]
    dhs, (dh_T,) = check_gradients(dhs, dstate, hs, x_tm.dtype, STATE_SIZE)
    T, B, H = dhs.shape
    soft = cache["options"]["soft"]
    U = params["U"]
    das, dxbar, dz, dh0 = backward_loop(
        dhs,
        dh_T,
        cache["dm_penalty"],
        x_tm,
        hs,
        cache["h_tilde"],
        cache["m"],
        e,
        zrn,
        np.ascontiguousarray(params["W"].T),
        np.ascontiguousarray(U[:, : 2 * H].T),
        np.ascontiguousarray(U[:, 2 * H :].T),
        np.ascontiguousarray(params["w_h"]),
        cache["mask_h"],
        cache["mask_x"],
        cache["eps"],
        soft,
    )
    dx, dW, db, dw_x, db_m = vc.input_side_gradients(
        x_tm, cache["ex"], das, dxbar if soft else None, dz, params["W"], params["w_x"], input_grad
    )
    h_prev = hs[:-1].reshape(T * B, H)
    hbar = (e * hs[:-1]).reshape(T * B, H)
    da = das.reshape(T * B, 3 * H)
    r = zrn[:, :, H : 2 * H].reshape(T * B, H)
    dU = np.empty_like(U)
    dU[:, : 2 * H] = hbar.T @ da[:, : 2 * H]
    dU[:, 2 * H :] = (r * hbar).T @ da[:, 2 * H :]
    grads = {
        "W": dW,
        "U": dU,
        "b": db,
        "w_x": dw_x,
        "w_h": h_prev.T @ dz.reshape(T * B),
        "b_m": db_m,
    }
    if cache["has_state"]:
        grads["h0"] = dh0
    return dx, grads


def macs(cache: Cache) -> dict[str, int | float]:
    """Multiply-adds the forward's steps needed given their masks (``_vc_mask.count_macs``)."""
    return vc.count_macs(cache["e"], cache["ex"], GATES)
