"""Layer-normalized LSTM (Ba et al. 2016), in two documented flavours.

Readable twin: ``minirnn/reference/lnlstm.py``, the same equations in plain NumPy, one
timestep per Python call; ``tests/test_reference.py`` holds this kernel equal to it.

``LN(z; gain, shift) = gain * (z - mean) / sqrt(var + eps) + shift`` with the mean
and variance of each row (one example), so training and evaluation compute the
same thing and nothing is kept between calls.

``flavour="paper"`` (Ba et al., section 6 / appendix)::

    a_t = LN(h_{t-1} U; gain_h) + LN(x_t W; gain_x) + b      each LN over all 4H
    i, f, o = sigma(a_i), sigma(a_f), sigma(a_o)   g = tanh(a_g)
    c_t = f * c_{t-1} + i * g                               carried as it is
    h_t = o * tanh(LN(c_t; gain_c, shift_c))

    W: (I, 4H)  U: (H, 4H)  b: (4H,)  gain_x, gain_h: (4H,)  gain_c, shift_c: (H,)

The two projections have no shift of their own (``b`` serves). ``LN(x_t W)`` does
not depend on h, so it is computed for all timesteps before the loop.

``flavour="tensorflow"`` (TensorFlow 1.x ``LayerNormBasicLSTMCell``)::

    z_t = x_t W + h_{t-1} U                                 one projection, no bias
    a_k = LN(z_k; gain_k, shift_k)  for each gate k in (i, f, o, g) separately
    i, f, o = sigma(a_i), sigma(a_f + forget_bias), sigma(a_o)   g = tanh(a_g)
    c_t = LN(f * c_{t-1} + i * g; gain_c, shift_c)          stored as the state
    h_t = o * tanh(c_t)

    W: (I, 4H)  U: (H, 4H)  gain, shift: (4H,) (gain 1, shift 0)  gain_c, shift_c: (H,)

TensorFlow adds ``forget_bias`` after the normalization, as a constant. Here
``init(..., forget_bias=1.0)`` writes it into the f block of ``shift`` instead,
which computes the same function with the same gradients (shift is added right
there) and keeps forward free of hidden constants.

Recurrent dropout (``tutorials/08_recurrent_dropout.md``; the options and the
masks are those of ``cells/lstm.py``, drawn by ``cells/_dropout.py``), in both
flavours, with ``u_t = f * c_{t-1} + i * g`` the updated cell before any LN::

    dropout_where="hidden"   h_{t-1} * m_h replaces h_{t-1} in h_{t-1} U      Gal & Ghahramani
    dropout_where="update"   u_t = f * c_{t-1} + i * (g * m_g)                 Semeniuta et al.
    dropout_where="cell"     the carried cell is masked                        Moon et al.:
        paper:       c_t = m_c * u_t,       h_t = o * tanh(LN(c_t; gain_c, shift_c))
        tensorflow:  c_t = m_c * LN(u_t),   h_t = o * tanh(c_t)

The rule for "cell" is the LSTM's: the mask multiplies the cell carried to step
t+1, and h_t reads that same masked cell. The paper flavour carries the raw cell,
so the mask comes *before* LN(c) (whose row statistics then see the dropped
zeros); the tensorflow flavour carries LN(u_t), so the mask comes *after* it (a
dropped unit carries exactly 0, not shift_c).

For the tensorflow flavour, ``dropout_where="update"`` with
``recurrent_dropout=p`` is exactly ``LayerNormBasicLSTMCell``'s
``dropout_keep_prob=1-p``: that cell applies ``tf.nn.dropout(g, keep_prob)`` to
``g = tanh(a_g)`` before ``sigmoid(i) * g``, with inverted scaling ``1/keep_prob``
and the rule ``floor(keep_prob + u)`` used here, and draws a new mask per example
at every call, i.e. every step: ``dropout_per="step"``, ``dropout_shared=False``.

Backwards the mask multiplies the local derivative at its place:
``dh_{t-1} = (dL/d(h~ U) U^T) * m_h``; ``dg = du * i * m_g``, ``di = du * g * m_g``;
paper "cell": ``du = (dL/dc_t) * m_c`` (dL/dc_t collecting LN's backward and
step t+1); tensorflow "cell": ``dL/dLN(u_t) = (dL/dc_t) * m_c``, then LN's backward.
Evaluation (``training=False``) draws and drops nothing.

``eps`` defaults to 1e-2 (a forward option), not the usual 1e-5, for a reason
worth knowing: a row with zero variance (a blank MNIST row read from a zero
state makes every unit equal) has the derivative ``gain / sqrt(eps)`` through
the normalization, 316 for 1e-5. It compounds over consecutive blank rows: on
row-MNIST the first gradients overflowed float32 with 1e-5, and with 1e-3 on
some batches; 1e-2 (10 per normalization) trained in every run we made.
TensorFlow's cell uses 1e-12 (pass ``eps=1e-12`` to match it). Gate order is i, f, o, g in both
flavours (TensorFlow's own cell orders them i, j, f, o; only the layout of W, U,
gain and shift differs).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import DTypeLike

from ..functional.layernorm import (
    ln_backward_2d,
    ln_backward_2d_into,
    ln_forward_2d,
    ln_forward_2d_into,
)
from ..initializers import gate_blocks, glorot_uniform, orthogonal
from ..types import Cache, Grads, Params, Shapes, State
from ._checks import check_gradients, check_inputs, check_lstm_state
from ._dropout import apply_mask, lstm_kernel_masks, mask_at, recurrent_masks
from ._projection import batch_major, input_gradients, input_projection
from .lstm import gate_gradients, gates_and_cell, output_gate, state_gradients

FLAVOURS = ("paper", "tensorflow")
INIT_OPTIONS = ("flavour", "forget_bias")
FORWARD_OPTIONS = (
    "flavour",
    "eps",
    "recurrent_dropout",
    "dropout_where",
    "dropout_per",
    "dropout_shared",
)
DROPOUT_PLACEMENTS = ("update", "hidden", "cell")
_P = {"recurrent_dropout": 0.3}
GRADCHECK_CASES = (
    {"flavour": "paper"},
    {"flavour": "tensorflow"},
    {"flavour": "paper", **_P, "dropout_where": "update", "dropout_per": "step"},
    {"flavour": "paper", **_P, "dropout_where": "hidden", "dropout_per": "sequence"},
    {
        "flavour": "paper",
        **_P,
        "dropout_where": "cell",
        "dropout_per": "step",
        "dropout_shared": True,
    },
    {"flavour": "tensorflow", **_P, "dropout_where": "update", "dropout_per": "step"},
    {
        "flavour": "tensorflow",
        **_P,
        "dropout_where": "hidden",
        "dropout_per": "step",
        "dropout_shared": True,
    },
    {"flavour": "tensorflow", **_P, "dropout_where": "cell", "dropout_per": "sequence"},
)
STATE_SIZE = 2
_ONE = np.float32(1.0)


def _check_flavour(flavour):
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour: expected one of {list(FLAVOURS)}, got {flavour!r}")


def param_shapes(input_size: int, hidden_size: int, flavour: str = "paper") -> Shapes:
    _check_flavour(flavour)
    H, H4 = hidden_size, 4 * hidden_size
    shapes = {"W": (input_size, H4), "U": (H, H4)}
    if flavour == "paper":
        shapes.update(b=(H4,), gain_x=(H4,), gain_h=(H4,))
    else:
        shapes.update(gain=(H4,), shift=(H4,))
    shapes.update(gain_c=(H,), shift_c=(H,))
    return shapes


def init(
    input_size: int,
    hidden_size: int,
    *,
    rng: np.random.Generator,
    dtype: DTypeLike = np.float32,
    flavour: str = "paper",
    forget_bias: float = 1.0,
) -> Params:
    """Glorot-uniform W, orthogonal U, gains 1, shifts and biases 0 except
    ``forget_bias`` in the f block (of ``b`` in the paper flavour, of ``shift`` in
    the tensorflow flavour)."""
    shapes = param_shapes(input_size, hidden_size, flavour)
    H = hidden_size
    params = {
        "W": gate_blocks(lambda: glorot_uniform(rng, input_size, H, dtype), 4),
        "U": gate_blocks(lambda: orthogonal(rng, H, dtype), 4),
    }
    for key, shape in shapes.items():
        if key not in params:
            params[key] = (np.ones if key.startswith("gain") else np.zeros)(shape, dtype=dtype)
    params["b" if flavour == "paper" else "shift"][H : 2 * H] = forget_bias
    return params


# ---------------------------------------------------------------- one timestep, paper flavour


@njit(cache=True, nogil=True, error_model="numpy")
def step_forward(
    lx_t,
    h_prev,
    c_prev,
    U,
    b,
    gain_h,
    zero_4h,
    gain_c,
    shift_c,
    eps,
    h,
    c,
    ifog,
    tanh_c,
    xhat_h,
    inv_std_h,
    xhat_c,
    inv_std_c,
    hu,
    lc,
    hm,
    m_h=None,
    m_g=None,
    m_c=None,
):
    """Paper flavour, one timestep. lx_t: (B, 4H) = LN(x_t W; gain_x); h_prev,
    c_prev: (B, H); U: (H, 4H); b, gain_h: (4H,); zero_4h: (4H,) zeros, the shift
    LN(h U) does not have; gain_c, shift_c: (H,).
    Writes h, c, tanh_c: (B, H) = h_t, c_t, tanh(LN(c_t)); ifog: (B, 4H); xhat_h
    (B, 4H), inv_std_h (B,) of LN(h U); xhat_c (B, H), inv_std_c (B,) of LN(c_t).
    Scratch: hu: (B, 4H); lc, hm: (B, H). m_h, m_g, m_c: (B, H) dropout masks on
    h_{t-1} before U, on g, on c_t (before its LN); None where there is none.
    Readable twin: ``reference/lnlstm.py``, ``step_forward``."""
    np.dot(apply_mask(h_prev, m_h, hm), U, hu)  # h_{t-1} U, or (h_{t-1} * m_h) U
    ln_forward_2d_into(hu, gain_h, zero_4h, eps, hu, xhat_h, inv_std_h)  # LN(h U), in place
    gates_and_cell(lx_t, c_prev, ifog, c, m_g, b, hu)  # a_t = LN(x_t W) + b + LN(h_{t-1} U)
    if m_c is not None:
        c *= m_c  # c_t = m_c * u_t: carried, and normalized
    ln_forward_2d_into(c, gain_c, shift_c, eps, lc, xhat_c, inv_std_c)
    output_gate(lc, ifog, tanh_c, h)  # h_t = o * tanh(LN(c_t))


@njit(cache=True, nogil=True, error_model="numpy")
def step_backward(
    dh_out,
    dh,
    dc,
    c_prev,
    ifog,
    tanh_c,
    xhat_h,
    inv_std_h,
    xhat_c,
    inv_std_c,
    gain_h,
    gain_c,
    UT,
    da,
    dhu,
    dh_prev,
    dc_prev,
    dgain_h,
    dgain_c,
    dshift_c,
    dlc,
    dc_ln,
    dshift_h,
    m_h=None,
    m_g=None,
    m_c=None,
):
    """Paper flavour, one timestep backwards. dh_out: (B, H) dL/dh_t from the output
    at t; dh, dc: (B, H) dL/dh_t through U and dL/dc_t, carried from step t+1 (both
    are overwritten); UT: (4H, H) = U^T.
    Writes da, dhu: (B, 4H) = dL/da_t, dL/d(h_{t-1} U), and dh_prev, dc_prev: (B, H);
    adds this step's gradients to dgain_h: (4H,), dgain_c, dshift_c: (H,).
    Scratch: dlc, dc_ln: (B, H); dshift_h: (4H,) (LN(h U) has no shift of its own:
    b's gradient is the sum of da, taken after the loop).
    m_h, m_g, m_c: the forward's dropout masks (or None).
    Readable twin: ``reference/lnlstm.py``, ``step_backward``."""
    B, H = dh.shape
    for n in range(B):
        for j in range(H):
            dh[n, j] = dh_out[n, j] + dh[n, j]  # dh <- dL/dh_t
        for j in range(H):  # h_t = o * tanh(LN(c_t))
            tc = tanh_c[n, j]
            dlc[n, j] = dh[n, j] * ifog[n, 2 * H + j] * (_ONE - tc * tc)
    ln_backward_2d_into(dlc, xhat_c, inv_std_c, gain_c, dc_ln, dgain_c, dshift_c)
    dc += dc_ln  # c_t feeds LN(c_t) and step t+1
    if m_c is not None:
        dc *= m_c  # c_t = m_c * u_t: du = dL/dc_t * m_c
    gate_gradients(dc, dh, c_prev, ifog, tanh_c, da, dc_prev, m_g)
    ln_backward_2d_into(da, xhat_h, inv_std_h, gain_h, dhu, dgain_h, dshift_h)
    np.dot(dhu, UT, dh_prev)
    if m_h is not None:  # the product met h_{t-1} * m_h
        dh_prev *= m_h


# ---------------------------------------------------------------- one timestep, tensorflow flavour


@njit(cache=True, nogil=True, error_model="numpy")
def step_forward_tf(
    xw_t,
    h_prev,
    c_prev,
    U,
    gain,
    shift,
    gain_c,
    shift_c,
    ones_h,
    zeros_h,
    eps,
    h,
    c,
    ifog,
    tanh_c,
    xhat_z,
    inv_std_z,
    xhat_c,
    inv_std_c,
    z,
    u,
    hm,
    m_h=None,
    m_g=None,
    m_c=None,
):
    """TensorFlow flavour, one timestep. xw_t: (B, 4H) = x_t W; h_prev, c_prev: (B, H);
    U: (H, 4H); gain, shift: (4H,); gain_c, shift_c: (H,); ones_h, zeros_h: (H,), the
    gain 1 and shift 0 of the per-gate LN (its gain and shift are applied below).
    Writes h, c, tanh_c: (B, H), with c = LN(...) the stored state; ifog: (B, 4H);
    xhat_z (B, 4H), inv_std_z (4B,) of the per-gate LN (rows are (example, gate));
    xhat_c (B, H), inv_std_c (B,) of LN(c).
    Scratch: z: (B, 4H); u, hm: (B, H). m_h, m_g, m_c: (B, H) dropout masks on
    h_{t-1} before U, on g (TensorFlow's dropout_keep_prob), on the stored c_t
    (after its LN); None where there is none.
    Readable twin: ``reference/lnlstm.py``, ``step_forward_tf``."""
    B, H = h_prev.shape
    np.dot(apply_mask(h_prev, m_h, hm), U, z)  # h_{t-1} U, or (h_{t-1} * m_h) U
    for n in range(B):
        for j in range(4 * H):
            z[n, j] = xw_t[n, j] + z[n, j]  # z_t = x_t W + h_{t-1} U
    # Each (example, gate) block of H units is one row of the normalization. Gain
    # and shift differ from gate to gate, so the rows are normalized with gain 1 and
    # shift 0, in place (that y only repeats xhat), and scaled and shifted below.
    z_rows = z.reshape(4 * B, H)
    ln_forward_2d_into(z_rows, ones_h, zeros_h, eps, z_rows, xhat_z.reshape(4 * B, H), inv_std_z)
    for n in range(B):
        for j in range(4 * H):
            z[n, j] = xhat_z[n, j] * gain[j] + shift[j]  # a_t, built in z
    gates_and_cell(z, c_prev, ifog, u, m_g)
    ln_forward_2d_into(u, gain_c, shift_c, eps, c, xhat_c, inv_std_c)  # c_t = LN(u_t)
    if m_c is not None:
        c *= m_c  # c_t = m_c * LN(u_t): stored, and in the tanh
    output_gate(c, ifog, tanh_c, h)  # h_t = o * tanh(c_t)


@njit(cache=True, nogil=True, error_model="numpy")
def step_backward_tf(
    dh_out,
    dh,
    dc,
    c_prev,
    ifog,
    tanh_c,
    xhat_z,
    inv_std_z,
    xhat_c,
    inv_std_c,
    gain,
    gain_c,
    ones_h,
    UT,
    dz,
    dh_prev,
    dc_prev,
    dgain,
    dshift,
    dgain_c,
    dshift_c,
    du,
    da,
    dgain_rows,
    dshift_rows,
    m_h=None,
    m_g=None,
    m_c=None,
):
    """TensorFlow flavour, one timestep backwards. dh_out: (B, H) dL/dh_t from the
    output at t; dh, dc: (B, H) dL/dh_t through U and dL/dc_t, carried from step t+1
    (both are overwritten); UT: (4H, H) = U^T.
    Writes dz: (B, 4H) = dL/dz_t, dh_prev, dc_prev: (B, H); adds this step's
    gradients to dgain, dshift: (4H,), dgain_c, dshift_c: (H,).
    Scratch: du: (B, H), da: (B, 4H), dgain_rows, dshift_rows: (H,) (these two
    collect the unused gradients of the per-gate LN's gain 1 and shift 0).
    m_h, m_g, m_c: the forward's dropout masks (or None).
    Readable twin: ``reference/lnlstm.py``, ``step_backward_tf``."""
    B, H = dh.shape
    state_gradients(dh_out, dh, dc, ifog, tanh_c)  # the stored c_t feeds the tanh and step t+1
    if m_c is not None:
        dc *= m_c  # c_t = m_c * LN(u_t): dL/dLN(u_t) = dL/dc_t * m_c
    ln_backward_2d_into(dc, xhat_c, inv_std_c, gain_c, du, dgain_c, dshift_c)
    gate_gradients(du, dh, c_prev, ifog, tanh_c, da, dc_prev, m_g)
    # a = xhat_z * gain + shift: gain's and shift's gradients, then da becomes
    # dL/dxhat_z = da * gain, in place, for the per-gate LN's backward (gain 1)
    for n in range(B):
        for j in range(4 * H):
            dshift[j] += da[n, j]
        for j in range(4 * H):
            dgain[j] += da[n, j] * xhat_z[n, j]
        for j in range(4 * H):
            da[n, j] *= gain[j]
    ln_backward_2d_into(
        da.reshape(4 * B, H),
        xhat_z.reshape(4 * B, H),
        inv_std_z,
        ones_h,
        dz.reshape(4 * B, H),
        dgain_rows,
        dshift_rows,
    )
    np.dot(dz, UT, dh_prev)
    if m_h is not None:  # the product met h_{t-1} * m_h
        dh_prev *= m_h


# ---------------------------------------------------------------- the loops over time


@njit(cache=True, nogil=True)
def forward_loop(
    xin,
    h0,
    c0,
    U,
    b,
    gain_h,
    gain,
    shift,
    gain_c,
    shift_c,
    eps,
    tf_flavour,
    M_h=None,
    M_g=None,
    M_c=None,
):
    """xin: (T, B, 4H): LN(x_t W; gain_x) for the paper flavour, x_t W for the
    tensorflow flavour. Returns the per-step arrays the cache keeps; ``xhat_a``,
    ``inv_std_a`` belong to LN(h U) (paper, inv_std (T, B)) or to the per-gate LN of
    z (tensorflow, inv_std (T, 4B)). M_h, M_g, M_c: dropout masks (T or 1, B, H)
    or None. Each step writes straight into slices of these arrays."""
    T, B, H = xin.shape[0], h0.shape[0], h0.shape[1]
    dt = xin.dtype
    hs = np.empty((T + 1, B, H), dtype=dt)
    cs = np.empty((T + 1, B, H), dtype=dt)
    ifog = np.empty(xin.shape, dtype=dt)
    tanh_c = np.empty((T, B, H), dtype=dt)
    xhat_a = np.empty(xin.shape, dtype=dt)
    inv_std_a = np.empty((T, 4 * B if tf_flavour else B), dtype=dt)
    xhat_c = np.empty((T, B, H), dtype=dt)
    inv_std_c = np.empty((T, B), dtype=dt)
    # scratch for the steps, allocated once; constant gains and shifts
    hu, lc, hm = (
        np.empty((B, 4 * H), dtype=dt),
        np.empty((B, H), dtype=dt),
        np.empty((B, H), dtype=dt),
    )
    zeros_4h, ones_h, zeros_h = (
        np.zeros(4 * H, dtype=dt),
        np.ones(H, dtype=dt),
        np.zeros(H, dtype=dt),
    )
    hs[0] = h0
    cs[0] = c0
    for t in range(T):
        if tf_flavour:
            step_forward_tf(
                xin[t],
                hs[t],
                cs[t],
                U,
                gain,
                shift,
                gain_c,
                shift_c,
                ones_h,
                zeros_h,
                eps,
                hs[t + 1],
                cs[t + 1],
                ifog[t],
                tanh_c[t],
                xhat_a[t],
                inv_std_a[t],
                xhat_c[t],
                inv_std_c[t],
                hu,
                lc,
                hm,
                mask_at(M_h, t),
                mask_at(M_g, t),
                mask_at(M_c, t),
            )
        else:
            step_forward(
                xin[t],
                hs[t],
                cs[t],
                U,
                b,
                gain_h,
                zeros_4h,
                gain_c,
                shift_c,
                eps,
                hs[t + 1],
                cs[t + 1],
                ifog[t],
                tanh_c[t],
                xhat_a[t],
                inv_std_a[t],
                xhat_c[t],
                inv_std_c[t],
                hu,
                lc,
                hm,
                mask_at(M_h, t),
                mask_at(M_g, t),
                mask_at(M_c, t),
            )
    return hs, cs, ifog, tanh_c, xhat_a, inv_std_a, xhat_c, inv_std_c


@njit(cache=True, nogil=True)
def backward_loop(
    dhs,
    dh_T,
    dc_T,
    cs,
    ifog,
    tanh_c,
    xhat_a,
    inv_std_a,
    xhat_c,
    inv_std_c,
    gain_h,
    gain,
    gain_c,
    UT,
    tf_flavour,
    M_h=None,
    M_g=None,
    M_c=None,
):
    """dhs: (T, B, H). Returns das: (T, B, 4H) (dL/da_t for the paper flavour,
    dL/dz_t for the tensorflow flavour), dhus: (T, B, 4H) = dL/d(h_{t-1} U) (the
    same array as das in the tensorflow flavour, where z = x W + h U), dh0, dc0 and
    the gain/shift gradients summed over time (dshift_a stays 0 in the paper
    flavour). M_*: the forward's dropout masks, or None."""
    T, B, H = dhs.shape
    dt = dhs.dtype
    das = np.empty(ifog.shape, dtype=dt)
    dhus = das if tf_flavour else np.empty(ifog.shape, dtype=dt)
    dgain_a, dshift_a = np.zeros(4 * H, dtype=dt), np.zeros(4 * H, dtype=dt)
    dgain_c, dshift_c = np.zeros(H, dtype=dt), np.zeros(H, dtype=dt)
    # two buffers for each carried gradient, in turn: dL/d(state_t) in, dL/d(state_{t-1}) out
    dh, dc = dh_T.copy(), dc_T.copy()
    dh_prev, dc_prev = np.empty_like(dh), np.empty_like(dc)
    # scratch for the steps, allocated once
    d1, d2, da = np.empty((B, H), dtype=dt), np.empty((B, H), dtype=dt), np.empty_like(das[0])
    ones_h, dshift_h = np.ones(H, dtype=dt), np.zeros(4 * H, dtype=dt)
    dgain_rows, dshift_rows = np.zeros(H, dtype=dt), np.zeros(H, dtype=dt)
    for t in range(T - 1, -1, -1):
        if tf_flavour:
            step_backward_tf(
                dhs[t],
                dh,
                dc,
                cs[t],
                ifog[t],
                tanh_c[t],
                xhat_a[t],
                inv_std_a[t],
                xhat_c[t],
                inv_std_c[t],
                gain,
                gain_c,
                ones_h,
                UT,
                das[t],
                dh_prev,
                dc_prev,
                dgain_a,
                dshift_a,
                dgain_c,
                dshift_c,
                d1,
                da,
                dgain_rows,
                dshift_rows,
                mask_at(M_h, t),
                mask_at(M_g, t),
                mask_at(M_c, t),
            )
        else:
            step_backward(
                dhs[t],
                dh,
                dc,
                cs[t],
                ifog[t],
                tanh_c[t],
                xhat_a[t],
                inv_std_a[t],
                xhat_c[t],
                inv_std_c[t],
                gain_h,
                gain_c,
                UT,
                das[t],
                dhus[t],
                dh_prev,
                dc_prev,
                dgain_a,
                dgain_c,
                dshift_c,
                d1,
                d2,
                dshift_h,
                mask_at(M_h, t),
                mask_at(M_g, t),
                mask_at(M_c, t),
            )
        dh, dh_prev = dh_prev, dh
        dc, dc_prev = dc_prev, dc
    return das, dhus, dh, dc, dgain_a, dshift_a, dgain_c, dshift_c


# ---------------------------------------------------------------- the sequence


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    training: bool = True,
    rng: np.random.Generator | None = None,
    flavour: str = "paper",
    eps: float = 1e-2,
    recurrent_dropout: float = 0.0,
    dropout_where: str = "update",
    dropout_per: str = "sequence",
    dropout_shared: bool = False,
    **options,
) -> tuple[np.ndarray, Cache]:
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache.
    Layer norm has no train/eval difference; ``training`` and ``rng`` matter only
    for recurrent dropout (off by default), as in ``lstm.forward``:
    ``recurrent_dropout`` is the rate p, ``dropout_where`` one of "update" (g),
    "hidden" (h_{t-1} before U), "cell" (the carried cell: before LN(c) in the
    paper flavour, after it in the tensorflow flavour); ``dropout_per`` "sequence"
    or "step"; ``dropout_shared`` one mask for the whole batch. Masks are drawn
    from ``rng`` when ``training`` (an error if it is None) and kept in
    ``cache["masks"]``; ``training=False`` drops nothing."""
    _check_flavour(flavour)
    _, H, dtype = check_inputs(
        "lnlstm.forward", params, x, options, FORWARD_OPTIONS, param_shapes, flavour=flavour
    )
    B, T = x.shape[:2]
    masks = recurrent_masks(
        "lnlstm",
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
    h0, c0 = check_lstm_state("state", state, B, H, dtype)
    eps = dtype.type(eps)
    tf_flavour = flavour == "tensorflow"
    xw = input_projection(x, params["W"]).reshape(T * B, 4 * H)
    cache = {"x": x, "flavour": flavour, "has_state": state is not None, "masks": masks}
    unused = np.zeros(4 * H, dtype)  # the other flavour's parameters
    if tf_flavour:
        xin = xw.reshape(T, B, 4 * H)
        b, gain_h, gain, shift = unused, unused, params["gain"], params["shift"]
    else:
        # LN(x_t W) does not depend on h: every row of every timestep at once.
        lx, cache["xhat_x"], cache["inv_std_x"] = ln_forward_2d(xw, params["gain_x"], unused, eps)
        xin = lx.reshape(T, B, 4 * H)
        b, gain_h, gain, shift = params["b"], params["gain_h"], unused, unused
    (hs, cs, ifog, tanh_c, xhat_a, inv_std_a, xhat_c, inv_std_c) = forward_loop(
        xin,
        h0,
        c0,
        np.ascontiguousarray(params["U"]),
        b,
        gain_h,
        gain,
        shift,
        params["gain_c"],
        params["shift_c"],
        eps,
        tf_flavour,
        *lstm_kernel_masks(masks, B),
    )
    cache.update(
        hs=hs,
        cs=cs,
        ifog=ifog,
        tanh_c=tanh_c,
        xhat_a=xhat_a,
        inv_std_a=inv_std_a,
        xhat_c=xhat_c,
        inv_std_c=inv_std_c,
        state=(hs[-1], cs[-1]),
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
    """dhs: (batch, time, hidden) -> (dx: (batch, time, input), grads).
    ``dstate``, optional: ``(dh_T, dc_T)``, the gradient of ``cache["state"]``.
    ``input_grad=False`` skips dx (returned as None) when the input is data."""
    x, hs = cache["x"], cache["hs"]
    dhs, (dh_T, dc_T) = check_gradients(dhs, dstate, hs, x.dtype, STATE_SIZE)
    T, B, H = dhs.shape
    tf_flavour = cache["flavour"] == "tensorflow"
    unused = np.zeros(4 * H, x.dtype)
    M_h, M_g, M_c = lstm_kernel_masks(cache["masks"], B)
    das, dhus, dh0, dc0, dgain_a, dshift_a, dgain_c, dshift_c = backward_loop(
        dhs,
        dh_T,
        dc_T,
        cache["cs"],
        cache["ifog"],
        cache["tanh_c"],
        cache["xhat_a"],
        cache["inv_std_a"],
        cache["xhat_c"],
        cache["inv_std_c"],
        params.get("gain_h", unused),
        params.get("gain", unused),
        params["gain_c"],
        np.ascontiguousarray(params["U"].T),
        tf_flavour,
        M_h,
        M_g,
        M_c,
    )
    grads = {"gain_c": dgain_c, "shift_c": dshift_c}
    if tf_flavour:
        dxw = das  # z = x W + h U: the same gradient reaches both
        grads.update(gain=dgain_a, shift=dshift_a)
    else:
        flat = das.reshape(T * B, 4 * H)
        dxw, grads["gain_x"], _ = ln_backward_2d(
            flat, cache["xhat_x"], cache["inv_std_x"], params["gain_x"]
        )
        grads.update(b=flat.sum(axis=0), gain_h=dgain_a)
    dx, grads["W"], _ = input_gradients(
        x, dxw.reshape(T, B, 4 * H), params["W"], input_grad, bias=False
    )
    h_prev = hs[:-1] if M_h is None else hs[:-1] * M_h  # what U met
    grads["U"] = h_prev.reshape(T * B, H).T @ dhus.reshape(T * B, 4 * H)
    if cache["has_state"]:
        grads["h0"], grads["c0"] = dh0, dc0
    return dx, grads
