"""Layer-normalized GRU, with the semantics of TensorFlow's ``LayerNormBasicGRUCell``
(the layer-normalized GRU of the answer to the Stack Overflow BN-in-LSTM question).

Readable twin: ``minirnn/reference/lngru.py``, the same equations in plain NumPy, one
timestep per Python call; ``tests/test_reference.py`` holds this kernel equal to it.

Equations, for one timestep::

    (u_z, u_r) = x_t W_zr + h_{t-1} U_zr                   one projection of [x, h]
    z = sigma(LN(u_z; gain_z, shift_z))   r = sigma(LN(u_r; gain_r, shift_r))
    n = tanh(LN(x_t W_n; gain_xn, shift_xn) + r * LN(h_{t-1} U_n; gain_hn, shift_hn))
    h_t = (1 - z) * h_{t-1} + z * n

Note the convention: here ``z = 1`` takes the *new* candidate, as in that cell
(and in Chung et al. 2014), whereas ``cells/gru.py`` follows Cho et al., PyTorch
and Keras, where ``z = 1`` keeps the old state.

``LN(u; gain, shift) = gain * (u - mean) / sqrt(var + eps) + shift`` over the H
units of each example, one normalization per gate.

Parameters (gate order z, r, n along the columns of W and U)::

    W: (I, 3H)  U: (H, 3H)  gain_zr, shift_zr: (2H,)  gain_xn, shift_xn, gain_hn, shift_hn: (H,)

No biases: the shifts serve. ``eps`` defaults to 1e-2, as in ``lnlstm`` (see
there why not 1e-5). Gains start at 1, shifts at 0. ``LN(x_t W_n)`` does
not depend on h, so it is computed for all timesteps before the loop, and so is
``x_t W_zr``.

Recurrent dropout (``tutorials/08_recurrent_dropout.md``; the options and the
masks are those of ``cells/gru.py``, drawn by ``cells/_dropout.py``) multiplies a
mask m into one of two places (a GRU has no cell: "cell" is an error)::

    dropout_where="update"   h_t = (1 - z) * h_{t-1} + z * (n * m_n)          Semeniuta et al.
    dropout_where="hidden"   h_{t-1} * m_h replaces h_{t-1} in both recurrent
                             products, h U_zr and h U_n (so before their LNs),
                             not in (1 - z) * h_{t-1}                      Gal & Ghahramani

(mind the z convention above: here z mixes the candidate in). Backwards the mask
multiplies the local derivative there: ``dn = dh_t * z * m_n`` and
``dz = dh_t * (n * m_n - h_{t-1})``; ``dh_{t-1} = dh_t * (1 - z) +
(du U_zr^T + dhn U_n^T) * m_h`` with du, dhn the gradients of the two products,
and ``dU = (h_{t-1} * m_h)^T [du, dhn]``. Evaluation (``training=False``) draws
and drops nothing.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import DTypeLike

from ..functional.activations import sigmoid, tanh
from ..functional.layernorm import (
    ln_backward_2d,
    ln_backward_2d_into,
    ln_forward_2d,
    ln_forward_2d_into,
)
from ..initializers import gate_blocks, glorot_uniform, orthogonal
from ..types import Cache, Grads, Params, Shapes, State
from ._checks import check_gradients, check_inputs, check_state
from ._dropout import apply_mask, kernel_mask, mask_at, recurrent_masks
from ._projection import batch_major, time_major

INIT_OPTIONS = ()
FORWARD_OPTIONS = ("eps", "recurrent_dropout", "dropout_where", "dropout_per", "dropout_shared")
DROPOUT_PLACEMENTS = ("update", "hidden")
_P = {"recurrent_dropout": 0.3}
GRADCHECK_CASES = (
    {},
    {**_P, "dropout_where": "update", "dropout_per": "step"},
    {**_P, "dropout_where": "hidden", "dropout_per": "sequence"},
    {**_P, "dropout_where": "hidden", "dropout_per": "step", "dropout_shared": True},
)
STATE_SIZE = 1
_ONE = np.float32(1.0)


def param_shapes(input_size: int, hidden_size: int) -> Shapes:
    H = hidden_size
    return {
        "W": (input_size, 3 * H),
        "U": (H, 3 * H),
        "gain_zr": (2 * H,),
        "shift_zr": (2 * H,),
        "gain_xn": (H,),
        "shift_xn": (H,),
        "gain_hn": (H,),
        "shift_hn": (H,),
    }


def init(
    input_size: int, hidden_size: int, *, rng: np.random.Generator, dtype: DTypeLike = np.float32
) -> Params:
    """Glorot-uniform W, orthogonal U (per gate), gains 1, shifts 0."""
    H = hidden_size
    params = {
        "W": gate_blocks(lambda: glorot_uniform(rng, input_size, H, dtype), 3),
        "U": gate_blocks(lambda: orthogonal(rng, H, dtype), 3),
    }
    for key, shape in param_shapes(input_size, hidden_size).items():
        if key not in params:
            params[key] = (np.ones if key.startswith("gain") else np.zeros)(shape, dtype=dtype)
    return params


@njit(cache=True, nogil=True, error_model="numpy")
def step_forward(
    xw_zr_t,
    lxn_t,
    h_prev,
    U_zr,
    U_n,
    gain_zr,
    shift_zr,
    gain_hn,
    shift_hn,
    ones_h,
    zeros_h,
    eps,
    h,
    zrn,
    lhn,
    xhat_zr,
    inv_std_zr,
    xhat_hn,
    inv_std_hn,
    u,
    hm,
    m_h=None,
    m_n=None,
):
    """One timestep. xw_zr_t: (B, 2H) = x_t W_zr; lxn_t: (B, H) = LN(x_t W_n);
    h_prev: (B, H); U_zr: (H, 2H), U_n: (H, H); gain_zr, shift_zr: (2H,); gain_hn,
    shift_hn: (H,); ones_h, zeros_h: (H,), the gain 1 and shift 0 of the per-gate LN
    of u (gain_zr and shift_zr are applied after it).
    Writes h: (B, H); zrn: (B, 3H) = z, r, n (n before any mask); lhn: (B, H) =
    LN(h U_n); xhat_zr (B, 2H), inv_std_zr (2B,) of the per-gate LN of u (rows are
    (example, gate)); xhat_hn (B, H), inv_std_hn (B,) of LN(h U_n).
    Scratch: u: (B, 2H), hm: (B, H). m_h, m_n: (B, H) dropout masks on h_{t-1} in the
    recurrent products and on n, or None.
    Readable twin: ``reference/lngru.py``, ``step_forward``."""
    B, H = h_prev.shape
    h_in = apply_mask(h_prev, m_h, hm)  # what the recurrent products see
    np.dot(h_in, U_zr, u)
    for n in range(B):
        for j in range(2 * H):
            u[n, j] = xw_zr_t[n, j] + u[n, j]  # (u_z, u_r) = x_t W_zr + h_{t-1} U_zr
    # Each (example, gate) block of H units is one row of the normalization, with
    # gain 1 and shift 0, in place (that y only repeats xhat); gain_zr, shift_zr below.
    u_rows = u.reshape(2 * B, H)
    ln_forward_2d_into(u_rows, ones_h, zeros_h, eps, u_rows, xhat_zr.reshape(2 * B, H), inv_std_zr)
    np.dot(h_in, U_n, lhn)
    ln_forward_2d_into(lhn, gain_hn, shift_hn, eps, lhn, xhat_hn, inv_std_hn)  # LN(h U_n)
    for n in range(B):
        for j in range(2 * H):
            zrn[n, j] = sigmoid(gain_zr[j] * xhat_zr[n, j] + shift_zr[j])
        for j in range(H):
            z, r = zrn[n, j], zrn[n, H + j]
            cand = tanh(lxn_t[n, j] + r * lhn[n, j])
            zrn[n, 2 * H + j] = cand
            if m_n is not None:
                cand = cand * m_n[n, j]  # n * m_n enters the state
            h[n, j] = (_ONE - z) * h_prev[n, j] + z * cand


@njit(cache=True, nogil=True, error_model="numpy")
def step_backward(
    dh_out,
    dh,
    h_prev,
    zrn,
    lhn,
    xhat_zr,
    inv_std_zr,
    xhat_hn,
    inv_std_hn,
    gain_zr,
    gain_hn,
    ones_h,
    UT_zr,
    UT_n,
    du,
    dhn,
    dlxn,
    dh_prev,
    dgain_zr,
    dshift_zr,
    dgain_hn,
    dshift_hn,
    da_zr,
    dlhn,
    dh_zr,
    dh_n,
    dgain_rows,
    dshift_rows,
    m_h=None,
    m_n=None,
):
    """One timestep backwards. dh_out: (B, H) dL/dh_t from the output at t; dh: (B, H)
    dL/dh_t through the recurrent products, carried from step t+1 (overwritten);
    UT_zr: (2H, H), UT_n: (H, H): the transposed blocks of U.
    Writes du: (B, 2H) = dL/d(x W_zr + h U_zr); dhn: (B, H) = dL/d(h U_n); dlxn:
    (B, H) = dL/dLN(x W_n); dh_prev: (B, H); adds this step's gradients to gain_zr's,
    shift_zr's: (2H,) and gain_hn's, shift_hn's: (H,).
    Scratch: da_zr: (B, 2H); dlhn, dh_zr, dh_n: (B, H); dgain_rows, dshift_rows: (H,)
    (the unused gradients of the per-gate LN's gain 1 and shift 0).
    m_h, m_n: the forward's dropout masks, or None.
    Readable twin: ``reference/lngru.py``, ``step_backward``."""
    B, H = dh.shape
    for n in range(B):
        for j in range(H):
            dh[n, j] = dh_out[n, j] + dh[n, j]  # dh <- dL/dh_t
        for j in range(H):
            z, r, cand = zrn[n, j], zrn[n, H + j], zrn[n, 2 * H + j]
            cand_in = cand if m_n is None else cand * m_n[n, j]  # what entered h_t
            dcand = dh[n, j] * z if m_n is None else dh[n, j] * z * m_n[n, j]
            da_n = dcand * (_ONE - cand * cand)
            dlxn[n, j] = da_n
            dlhn[n, j] = da_n * r
            da_zr[n, j] = dh[n, j] * (cand_in - h_prev[n, j]) * z * (_ONE - z)
            da_zr[n, H + j] = da_n * lhn[n, j] * r * (_ONE - r)
            dh_prev[n, j] = dh[n, j] * (_ONE - z)
    ln_backward_2d_into(dlhn, xhat_hn, inv_std_hn, gain_hn, dhn, dgain_hn, dshift_hn)
    # the gates' pre-activations are xhat_zr * gain_zr + shift_zr: gain's and shift's
    # gradients, then da_zr becomes dL/dxhat_zr, in place, for the per-gate LN (gain 1)
    for n in range(B):
        for j in range(2 * H):
            dshift_zr[j] += da_zr[n, j]
        for j in range(2 * H):
            dgain_zr[j] += da_zr[n, j] * xhat_zr[n, j]
        for j in range(2 * H):
            da_zr[n, j] *= gain_zr[j]
    ln_backward_2d_into(
        da_zr.reshape(2 * B, H),
        xhat_zr.reshape(2 * B, H),
        inv_std_zr,
        ones_h,
        du.reshape(2 * B, H),
        dgain_rows,
        dshift_rows,
    )
    np.dot(du, UT_zr, dh_zr)
    np.dot(dhn, UT_n, dh_n)
    for n in range(B):
        for j in range(H):  # h_{t-1} reaches h_t through (1 - z) h_{t-1} and the products
            d_in = dh_zr[n, j] + dh_n[n, j]
            if m_h is not None:
                d_in = d_in * m_h[n, j]  # the products met h_{t-1} * m_h
            dh_prev[n, j] += d_in


@njit(cache=True, nogil=True)
def forward_loop(
    xw_zr, lxn, h0, U_zr, U_n, gain_zr, shift_zr, gain_hn, shift_hn, eps, M_h=None, M_n=None
):
    """xw_zr: (T, B, 2H); lxn: (T, B, H); M_h, M_n: dropout masks (T or 1, B, H) or
    None. Returns the per-step arrays the cache keeps."""
    T, B, H = lxn.shape
    dt = lxn.dtype
    hs = np.empty((T + 1, B, H), dtype=dt)
    zrn = np.empty((T, B, 3 * H), dtype=dt)
    lhn = np.empty((T, B, H), dtype=dt)
    xhat_zr = np.empty((T, B, 2 * H), dtype=dt)
    inv_std_zr = np.empty((T, 2 * B), dtype=dt)
    xhat_hn = np.empty((T, B, H), dtype=dt)
    inv_std_hn = np.empty((T, B), dtype=dt)
    # scratch for the steps, allocated once; the per-gate LN's gain and shift
    u, hm = np.empty((B, 2 * H), dtype=dt), np.empty((B, H), dtype=dt)
    ones_h, zeros_h = np.ones(H, dtype=dt), np.zeros(H, dtype=dt)
    hs[0] = h0
    for t in range(T):
        step_forward(
            xw_zr[t],
            lxn[t],
            hs[t],
            U_zr,
            U_n,
            gain_zr,
            shift_zr,
            gain_hn,
            shift_hn,
            ones_h,
            zeros_h,
            eps,
            hs[t + 1],
            zrn[t],
            lhn[t],
            xhat_zr[t],
            inv_std_zr[t],
            xhat_hn[t],
            inv_std_hn[t],
            u,
            hm,
            mask_at(M_h, t),
            mask_at(M_n, t),
        )
    return hs, zrn, lhn, xhat_zr, inv_std_zr, xhat_hn, inv_std_hn


@njit(cache=True, nogil=True)
def backward_loop(
    dhs,
    dh_T,
    hs,
    zrn,
    lhn,
    xhat_zr,
    inv_std_zr,
    xhat_hn,
    inv_std_hn,
    gain_zr,
    gain_hn,
    UT_zr,
    UT_n,
    M_h=None,
    M_n=None,
):
    """dhs: (T, B, H); M_h, M_n: the forward's masks. Returns dus: (T, B, 2H), dhns,
    dlxns: (T, B, H), dh0, and the gain/shift gradients summed over time."""
    T, B, H = dhs.shape
    dt = dhs.dtype
    dus = np.empty((T, B, 2 * H), dtype=dt)
    dhns = np.empty((T, B, H), dtype=dt)
    dlxns = np.empty((T, B, H), dtype=dt)
    dgain_zr, dshift_zr = np.zeros(2 * H, dtype=dt), np.zeros(2 * H, dtype=dt)
    dgain_hn, dshift_hn = np.zeros(H, dtype=dt), np.zeros(H, dtype=dt)
    dh, dh_prev = dh_T.copy(), np.empty_like(dh_T)  # two buffers, in turn
    # scratch for the steps, allocated once
    da_zr = np.empty((B, 2 * H), dtype=dt)
    dlhn, dh_zr, dh_n = (
        np.empty((B, H), dtype=dt),
        np.empty((B, H), dtype=dt),
        np.empty((B, H), dtype=dt),
    )
    ones_h, dgain_rows, dshift_rows = (
        np.ones(H, dtype=dt),
        np.zeros(H, dtype=dt),
        np.zeros(H, dtype=dt),
    )
    for t in range(T - 1, -1, -1):
        step_backward(
            dhs[t],
            dh,
            hs[t],
            zrn[t],
            lhn[t],
            xhat_zr[t],
            inv_std_zr[t],
            xhat_hn[t],
            inv_std_hn[t],
            gain_zr,
            gain_hn,
            ones_h,
            UT_zr,
            UT_n,
            dus[t],
            dhns[t],
            dlxns[t],
            dh_prev,
            dgain_zr,
            dshift_zr,
            dgain_hn,
            dshift_hn,
            da_zr,
            dlhn,
            dh_zr,
            dh_n,
            dgain_rows,
            dshift_rows,
            mask_at(M_h, t),
            mask_at(M_n, t),
        )
        dh, dh_prev = dh_prev, dh
    return dus, dhns, dlxns, dh, dgain_zr, dshift_zr, dgain_hn, dshift_hn


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    training: bool = True,
    rng: np.random.Generator | None = None,
    eps: float = 1e-2,
    recurrent_dropout: float = 0.0,
    dropout_where: str = "update",
    dropout_per: str = "sequence",
    dropout_shared: bool = False,
    **options,
) -> tuple[np.ndarray, Cache]:
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache. ``state`` is h0.

    Recurrent dropout (off by default), as in ``gru.forward``: ``recurrent_dropout``
    is the rate p, ``dropout_where`` "update" (n) or "hidden" (h_{t-1} in the
    recurrent products); ``dropout_per`` "sequence" or "step"; ``dropout_shared``
    one mask for the whole batch. Masks come from ``rng`` when ``training`` and are
    kept in ``cache["masks"]``; ``training=False`` drops nothing."""
    I, H, dtype = check_inputs("lngru.forward", params, x, options, FORWARD_OPTIONS, param_shapes)
    B, T = x.shape[:2]
    masks = recurrent_masks(
        "lngru",
        DROPOUT_PLACEMENTS,
        rate=recurrent_dropout,
        where=dropout_where,
        per=dropout_per,
        shared=dropout_shared,
        training=training,
        rng=rng,
        time=T,
        batch=B,
        hidden=H,
        dtype=dtype,
    )
    h0 = check_state("state h0", state, B, H, dtype)
    eps = dtype.type(eps)
    x_tm = time_major(x).reshape(T * B, I)
    W, U = params["W"], params["U"]
    xw_zr = (x_tm @ W[:, : 2 * H]).reshape(T, B, 2 * H)
    lxn, xhat_xn, inv_std_xn = ln_forward_2d(
        x_tm @ W[:, 2 * H :], params["gain_xn"], params["shift_xn"], eps
    )
    hs, zrn, lhn, xhat_zr, inv_std_zr, xhat_hn, inv_std_hn = forward_loop(
        xw_zr,
        lxn.reshape(T, B, H),
        h0,
        np.ascontiguousarray(U[:, : 2 * H]),
        np.ascontiguousarray(U[:, 2 * H :]),
        params["gain_zr"],
        params["shift_zr"],
        params["gain_hn"],
        params["shift_hn"],
        eps,
        kernel_mask(masks, "hidden", B),
        kernel_mask(masks, "update", B),
    )
    cache = {
        "x": x,
        "hs": hs,
        "zrn": zrn,
        "lhn": lhn,
        "xhat_zr": xhat_zr,
        "inv_std_zr": inv_std_zr,
        "xhat_hn": xhat_hn,
        "inv_std_hn": inv_std_hn,
        "xhat_xn": xhat_xn,
        "inv_std_xn": inv_std_xn,
        "masks": masks,
        "has_state": state is not None,
        "state": hs[-1],
    }
    return batch_major(hs), cache


def backward(
    params: Params,
    dhs: np.ndarray,
    cache: Cache,
    dstate: State | None = None,
    *,
    input_grad: bool = True,
) -> tuple[np.ndarray | None, Grads]:
    """dhs: (batch, time, hidden) -> (dx: (batch, time, input), grads).
    ``dstate``, optional: dL/dh_T for a caller that used ``cache["state"]``.
    ``input_grad=False`` skips dx (returned as None) when the input is data."""
    x, hs = cache["x"], cache["hs"]
    dhs, (dh_T,) = check_gradients(dhs, dstate, hs, x.dtype, STATE_SIZE)
    T, B, H = dhs.shape
    I = x.shape[2]
    U, W = params["U"], params["W"]
    M_h = kernel_mask(cache["masks"], "hidden", B)
    dus, dhns, dlxns, dh0, dgain_zr, dshift_zr, dgain_hn, dshift_hn = backward_loop(
        dhs,
        dh_T,
        hs,
        cache["zrn"],
        cache["lhn"],
        cache["xhat_zr"],
        cache["inv_std_zr"],
        cache["xhat_hn"],
        cache["inv_std_hn"],
        params["gain_zr"],
        params["gain_hn"],
        np.ascontiguousarray(U[:, : 2 * H].T),
        np.ascontiguousarray(U[:, 2 * H :].T),
        M_h,
        kernel_mask(cache["masks"], "update", B),
    )
    du = dus.reshape(T * B, 2 * H)
    dxn, dgain_xn, dshift_xn = ln_backward_2d(
        dlxns.reshape(T * B, H), cache["xhat_xn"], cache["inv_std_xn"], params["gain_xn"]
    )
    x_tm = time_major(x).reshape(T * B, I)
    h_prev = (hs[:-1] if M_h is None else hs[:-1] * M_h).reshape(T * B, H)  # what U met
    grads = {
        "W": np.concatenate([x_tm.T @ du, x_tm.T @ dxn], axis=1),
        "U": np.concatenate([h_prev.T @ du, h_prev.T @ dhns.reshape(T * B, H)], axis=1),
        "gain_zr": dgain_zr,
        "shift_zr": dshift_zr,
        "gain_xn": dgain_xn,
        "shift_xn": dshift_xn,
        "gain_hn": dgain_hn,
        "shift_hn": dshift_hn,
    }
    if cache["has_state"]:
        grads["h0"] = dh0
    if not input_grad:
        return None, grads
    dx = (du @ W[:, : 2 * H].T + dxn @ W[:, 2 * H :].T).reshape(T, B, I).transpose(1, 0, 2)
    return np.ascontiguousarray(dx), grads
