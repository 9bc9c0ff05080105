"""Variable-computation LSTM (VCLSTM, Jernite et al. 2017; the Qiita variable-computation
note).

Readable twin: ``minirnn/reference/vclstm.py``, the same equations in plain NumPy, one
timestep per Python call; ``tests/test_reference.py`` holds this kernel equal to it.

One timestep (``tutorials/06_variable_computation.md``; the scheduler, the masks,
the threshold modes and the penalty are in ``_vc_mask.py``)::

    m_t   = sigma(x_t w_x + h_{t-1} w_h + b_m)                      (B,)
    e_t   = Thres_eps(sigma(lambda (m_t H - i))),  i = 0..H-1        (B, H)
    e^x_t = Thres_eps(sigma(lambda (m_t I - k))),  k = 0..I-1        (B, I)
    xbar = e^x_t * x_t     hbar = e_t * h_{t-1}     cbar = e_t * c_{t-1}
    a = xbar W + hbar U + b              gates i, f, o, g as in ``lstm``
    c~ = f * cbar + i * g                h~ = o * tanh(c~)
    c_t = e_t * c~ + (1 - e_t) * c_{t-1}
    h_t = e_t * h~ + (1 - e_t) * h_{t-1}

Parameters: ``W: (input, 4H)``, ``U: (H, 4H)``, ``b: (4H,)`` in the gate order
i, f, o, g of ``lstm`` (``init(..., forget_bias=1.0)`` writes the f block of
``b``), and the scheduler's ``w_x: (input,)``, ``w_h: (H,)``, ``b_m: (1,)``
(``init(..., scheduler_bias=0.0)``). State ``(h0, c0)``, zeros when omitted;
``cache["state"] == (h_T, c_T)``.

Forward options as in every VC cell (``_vc_mask.DEFAULTS``): ``sharpness=1.0``,
``eps=0.1``, ``threshold="soft"|"hard"``, ``alpha=0.0``, ``m_target=0.5``,
``penalty="l1"|"l2"``; ``cache["penalty"]`` and ``cache["metrics"]`` as in
``vcrnn``, and ``backward`` differentiates ``L + penalty``.

Hoisted: ``x_t w_x + b_m`` before the loop; ``dW``, ``dU``, the scheduler's
weight gradients (and, hard mode, ``da W^T``) after it. ``xbar W`` stays in the
loop because ``e^x_t`` depends on ``h_{t-1}`` through ``m_t``.

Backward, one step (``dh``, ``dc`` = dL/dh_t, dL/dc_t)::

    dh~ = dh * e        dc~ = dc * e + dh~ * o * (1 - tanh^2 c~)
    da_i = dc~ g i(1-i)  da_f = dc~ cbar f(1-f)  da_o = dh~ tanh(c~) o(1-o)  da_g = dc~ i (1-g^2)
    dhbar = da U^T       dcbar = dc~ * f          dxbar = da W^T
    dh_{t-1} = dh (1 - e) + dhbar e + dz w_h      dc_{t-1} = dc (1 - e) + dcbar e
    de = dh (h~ - h_{t-1}) + dc (c~ - c_{t-1}) + dhbar h_{t-1} + dcbar c_{t-1}
    (then dm, dz, dx_t as in ``vcrnn``)

The inner cell is the LSTM's own code (``lstm.gates_and_cell``, ``output_gate``,
``gate_gradients``) run on (xbar, hbar, cbar). ``macs`` counts the multiply-adds
the masks of a forward call needed; ``vclstm_sparse.forward_sparse`` is the
inference kernel that skips the masked-off rows and columns of W and U for real.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import DTypeLike

from ..initializers import gate_blocks, glorot_uniform, orthogonal
from ..types import Cache, Grads, Params, Shapes, State
from . import _vc_mask as vc
from ._checks import check_gradients
from ._projection import batch_major
from ._vc_mask import init_scheduler, scheduler_and_masks, scheduler_and_masks_backward
from .lstm import gate_gradients, gates_and_cell, output_gate

INIT_OPTIONS = ("forget_bias", "scheduler_bias")
FORWARD_OPTIONS = vc.FORWARD_OPTIONS
GRADCHECK_CASES = vc.GRADCHECK_CASES
STATE_SIZE = 2  # the state is (h, c)
GATES = 4
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
    forget_bias: float = 1.0,
    scheduler_bias: float = 0.0,
) -> Params:
    """As ``lstm.init`` (Glorot W, orthogonal U per gate, ``forget_bias`` in the f block
    of b), and the scheduler: Glorot-uniform ``[w_x; w_h]``, ``b_m = scheduler_bias``."""
    H = hidden_size
    params = {
        "W": gate_blocks(lambda: glorot_uniform(rng, input_size, H, dtype), 4),
        "U": gate_blocks(lambda: orthogonal(rng, H, dtype), 4),
        "b": np.zeros(4 * H, dtype=dtype),
    }
    params["b"][H : 2 * H] = forget_bias
    params.update(init_scheduler(input_size, hidden_size, rng, dtype, scheduler_bias))
    return params


@njit(cache=True, nogil=True, error_model="numpy")
def step_forward(
    x_t,
    xm_t,
    h_prev,
    c_prev,
    W,
    U,
    b,
    w_h,
    mask_h,
    mask_x,
    eps,
    soft,
    h,
    c,
    m,
    e,
    ex,
    ifog,
    c_tilde,
    tanh_c,
    xbar,
    hbar,
    cbar,
    xw,
    hu,
):
    """One timestep. x_t: (B, I); xm_t: (B,) = x_t w_x + b_m; h_prev, c_prev: (B, H);
    W: (I, 4H); U: (H, 4H); b: (4H,); w_h: (H,); mask_h, mask_x, eps, soft as in
    ``vcrnn.step_forward``. Writes h, c: (B, H), m: (B,), e: (B, H), ex: (B, I),
    ifog: (B, 4H) activated gates, c_tilde, tanh_c: (B, H) (c~ and tanh(c~)).
    Scratch: xbar: (B, I); hbar, cbar: (B, H); xw, hu: (B, 4H).
    Readable twin: ``reference/vclstm.py``, ``step_forward``."""
    scheduler_and_masks(x_t, xm_t, h_prev, w_h, mask_h, mask_x, eps, soft, m, e, ex, xbar)
    np.multiply(e, h_prev, hbar)  # hbar = e_t * h_{t-1}
    np.multiply(e, c_prev, cbar)  # cbar = e_t * c_{t-1}
    np.dot(xbar, W, xw)
    np.dot(hbar, U, hu)
    gates_and_cell(xw, cbar, ifog, c_tilde, None, b, hu)  # the LSTM: c~ = f cbar + i g
    output_gate(c_tilde, ifog, tanh_c, h)  # h~ = o tanh(c~), in h
    B, H = h.shape
    for n in range(B):
        for j in range(H):  # only the updated units change
            e_j = e[n, j]
            c[n, j] = e_j * c_tilde[n, j] + (_ONE - e_j) * c_prev[n, j]
            h[n, j] = e_j * h[n, j] + (_ONE - e_j) * h_prev[n, j]


@njit(cache=True, nogil=True, error_model="numpy")
def step_backward(
    dh_out,
    dh,
    dc,
    dm_pen,
    x_t,
    h_prev,
    c_prev,
    m,
    e,
    ifog,
    c_tilde,
    tanh_c,
    WT,
    UT,
    w_h,
    mask_h,
    mask_x,
    eps,
    soft,
    da,
    dxbar,
    dz,
    dh_prev,
    dc_prev,
    cbar,
    dht,
    dct,
    dcbar,
    dhbar,
    de,
    dm,
    dex,
):
    """One timestep backwards. dh_out: (B, H) dL/dh_t from the output at t; dh, dc:
    (B, H) dL/dh_t through step t+1 (overwritten) and dL/dc_t; dm_pen: (B,)
    dpenalty/dm_t; WT: (4H, I), UT: (4H, H) transposed. Writes da: (B, 4H), dxbar:
    (B, I) (soft mode), dz: (B,), dh_prev, dc_prev: (B, H). Scratch: cbar, dht, dct,
    dcbar, dhbar, de: (B, H); dm: (B,); dex: (B, I).
    Readable twin: ``reference/vclstm.py``, ``step_backward``."""
    B, H = dh.shape
    for n in range(B):
        for j in range(H):
            dh[n, j] = dh_out[n, j] + dh[n, j]  # dh <- dL/dh_t
            e_j, tc = e[n, j], tanh_c[n, j]
            dht[n, j] = dh[n, j] * e_j  # dL/dh~
            dct[n, j] = dc[n, j] * e_j + dht[n, j] * ifog[n, 2 * H + j] * (_ONE - tc * tc)
            cbar[n, j] = e_j * c_prev[n, j]
    gate_gradients(dct, dht, cbar, ifog, tanh_c, da, dcbar)  # the LSTM's, on (hbar, cbar)
    np.dot(da, UT, dhbar)
    for n in range(B):
        for j in range(H):
            dc_prev[n, j] = dc[n, j] * (_ONE - e[n, j]) + dcbar[n, j] * e[n, j]
            dh_prev[n, j] = dh[n, j] * (_ONE - e[n, j]) + dhbar[n, j] * e[n, j]
    if soft:
        for n in range(B):
            for j in range(H):
                h_tilde = ifog[n, 2 * H + j] * tanh_c[n, j]
                de[n, j] = (
                    dh[n, j] * (h_tilde - h_prev[n, j])
                    + dc[n, j] * (c_tilde[n, j] - c_prev[n, j])
                    + dhbar[n, j] * h_prev[n, j]
                    + dcbar[n, j] * c_prev[n, j]
                )
    scheduler_and_masks_backward(
        dm_pen, de, da, x_t, m, WT, w_h, mask_h, mask_x, eps, soft, dxbar, dz, dh_prev, dm, dex
    )


@njit(cache=True, nogil=True)
def forward_loop(x, xm, h0, c0, W, U, b, w_h, mask_h, mask_x, eps, soft):
    """x: (T, B, I) time-major; xm: (T, B). Returns hs, cs: (T+1, B, H) with the
    initial state at index 0, m: (T, B), e: (T, B, H), ex: (T, B, I),
    ifog: (T, B, 4H), c_tilde, tanh_c: (T, B, H)."""
    T, B, H = x.shape[0], h0.shape[0], h0.shape[1]
    dt = x.dtype
    hs = np.empty((T + 1, B, H), dtype=dt)
    cs = np.empty((T + 1, B, H), dtype=dt)
    m = np.empty((T, B), dtype=dt)
    e = np.empty((T, B, H), dtype=dt)
    ex = np.empty(x.shape, dtype=dt)
    ifog = np.empty((T, B, 4 * H), dtype=dt)
    c_tilde = np.empty((T, B, H), dtype=dt)
    tanh_c = np.empty((T, B, H), dtype=dt)
    # scratch for the steps, allocated once
    xbar, hbar, cbar = (
        np.empty((B, x.shape[2]), dtype=dt),
        np.empty((B, H), dtype=dt),
        np.empty((B, H), dtype=dt),
    )
    xw, hu = np.empty((B, 4 * H), dtype=dt), np.empty((B, 4 * H), dtype=dt)
    hs[0] = h0
    cs[0] = c0
    for t in range(T):
        step_forward(
            x[t],
            xm[t],
            hs[t],
            cs[t],
            W,
            U,
            b,
            w_h,
            mask_h,
            mask_x,
            eps,
            soft,
            hs[t + 1],
            cs[t + 1],
            m[t],
            e[t],
            ex[t],
            ifog[t],
            c_tilde[t],
            tanh_c[t],
            xbar,
            hbar,
            cbar,
            xw,
            hu,
        )
    return hs, cs, m, e, ex, ifog, c_tilde, tanh_c


@njit(cache=True, nogil=True)
def backward_loop(
    dhs,
    dh_T,
    dc_T,
    dm_pen,
    x,
    hs,
    cs,
    m,
    e,
    ifog,
    c_tilde,
    tanh_c,
    WT,
    UT,
    w_h,
    mask_h,
    mask_x,
    eps,
    soft,
):
    """dhs: (T, B, H) time-major; dh_T, dc_T: (B, H) gradients of the final state.
    Returns das: (T, B, 4H), dxbars: (T, B, I) (soft; one unused step in the hard
    mode), dzs: (T, B), dh0, dc0: (B, H)."""
    T, B, I = x.shape
    dt = dhs.dtype
    das = np.empty(ifog.shape, dtype=dt)
    dxbars = np.empty((T if soft else 1, B, I), dtype=dt)
    dzs = np.empty((T, B), dtype=dt)
    # two buffers for each carried gradient, in turn: dL/d(state_t) in, dL/d(state_{t-1}) out
    dh, dc = dh_T.copy(), dc_T.copy()
    dh_prev, dc_prev = np.empty_like(dh), np.empty_like(dc)
    # scratch for the steps, allocated once
    cbar, dht, dct = np.empty_like(dh), np.empty_like(dh), np.empty_like(dh)
    dcbar, dhbar, de = np.empty_like(dh), np.empty_like(dh), np.empty_like(dh)
    dm, dex = np.empty(B, dtype=dt), np.empty((B, I), dtype=dt)
    for t in range(T - 1, -1, -1):
        t_dxbar = t if soft else 0
        step_backward(
            dhs[t],
            dh,
            dc,
            dm_pen[t],
            x[t],
            hs[t],
            cs[t],
            m[t],
            e[t],
            ifog[t],
            c_tilde[t],
            tanh_c[t],
            WT,
            UT,
            w_h,
            mask_h,
            mask_x,
            eps,
            soft,
            das[t],
            dxbars[t_dxbar],
            dzs[t],
            dh_prev,
            dc_prev,
            cbar,
            dht,
            dct,
            dcbar,
            dhbar,
            de,
            dm,
            dex,
        )
        dh, dh_prev = dh_prev, dh
        dc, dc_prev = dc_prev, dc
    return das, dxbars, dzs, dh, dc


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    training: bool = True,
    rng: np.random.Generator | None = None,
    **options,
) -> tuple[np.ndarray, Cache]:
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache. ``state`` is
    ``(h0, c0)``. ``training`` and ``rng`` are accepted for the common contract."""
    opts, x_tm, xm, (h0, c0), (mask_h, mask_x, eps) = vc.forward_inputs(
        "vclstm.forward", params, x, state, options, param_shapes, STATE_SIZE
    )
    hs, cs, m, e, ex, ifog, c_tilde, tanh_c = forward_loop(
        x_tm,
        xm,
        h0,
        c0,
        np.ascontiguousarray(params["W"]),
        np.ascontiguousarray(params["U"]),
        params["b"],
        np.ascontiguousarray(params["w_h"]),
        mask_h,
        mask_x,
        eps,
        opts["soft"],
    )
    masks, final = (mask_h, mask_x, eps), (hs[-1], cs[-1])
    arrays = {"cs": cs, "ifog": ifog, "c_tilde": c_tilde, "tanh_c": tanh_c}
    cache = vc.sequence_cache(x, x_tm, state, opts, masks, hs, m, e, ex, final, **arrays)
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
    ``dstate``, optional: ``(dh_T, dc_T)`` for a caller that used ``cache["state"]``.
    ``grads`` holds ``"h0"`` and ``"c0"`` too when a state was passed to ``forward``.
    ``input_grad=False`` skips dx (returned as None) when the input is data."""
    x_tm, hs, e = cache["x_tm"], cache["hs"], cache["e"]
    dhs, (dh_T, dc_T) = check_gradients(dhs, dstate, hs, x_tm.dtype, STATE_SIZE)
    T, B, H = dhs.shape
    soft = cache["options"]["soft"]
    das, dxbar, dz, dh0, dc0 = backward_loop(
        dhs,
        dh_T,
        dc_T,
        cache["dm_penalty"],
        x_tm,
        hs,
        cache["cs"],
        cache["m"],
        e,
        cache["ifog"],
        cache["c_tilde"],
        cache["tanh_c"],
        np.ascontiguousarray(params["W"].T),
        np.ascontiguousarray(params["U"].T),
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
    grads = {
        "W": dW,
        "U": hbar.T @ das.reshape(T * B, 4 * H),
        "b": db,
        "w_x": dw_x,
        "w_h": h_prev.T @ dz.reshape(T * B),
        "b_m": db_m,
    }
    if cache["has_state"]:
        grads["h0"], grads["c0"] = dh0, dc0
    return dx, grads


def macs(cache: Cache) -> dict[str, int | float]:
    """Multiply-adds the forward's steps needed given their masks (``_vc_mask.count_macs``);
    ``vclstm_sparse.forward_sparse`` is the kernel that does only those."""
    return vc.count_macs(cache["e"], cache["ex"], GATES)
