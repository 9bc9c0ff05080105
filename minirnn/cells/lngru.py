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
import numpy as np
from numba import njit

from ..functional.activations import sigmoid, tanh
from ..functional.layernorm import ln_backward_2d, ln_forward_2d
from ..initializers import gate_blocks, glorot_uniform, orthogonal
from ._dropout import kernel_mask, mask_at, recurrent_masks
from ._checks import (check_matrix, check_options, check_params, check_sequence,
                      check_state, check_upstream)
from ._projection import batch_major

INIT_OPTIONS = ()
FORWARD_OPTIONS = ("eps", "recurrent_dropout", "dropout_where", "dropout_per", "dropout_shared")
DROPOUT_PLACEMENTS = ("update", "hidden")
_P = {"recurrent_dropout": 0.3}
GRADCHECK_CASES = ({},
                   {**_P, "dropout_where": "update", "dropout_per": "step"},
                   {**_P, "dropout_where": "hidden", "dropout_per": "sequence"},
                   {**_P, "dropout_where": "hidden", "dropout_per": "step",
                    "dropout_shared": True})
STATE_SIZE = 1
_ONE = np.float32(1.0)


def param_shapes(input_size, hidden_size):
    H = hidden_size
    return {"W": (input_size, 3 * H), "U": (H, 3 * H), "gain_zr": (2 * H,),
            "shift_zr": (2 * H,), "gain_xn": (H,), "shift_xn": (H,), "gain_hn": (H,),
            "shift_hn": (H,)}


def init(input_size, hidden_size, *, rng, dtype=np.float32):
    """Glorot-uniform W, orthogonal U (per gate), gains 1, shifts 0."""
    H = hidden_size
    params = {"W": gate_blocks(lambda: glorot_uniform(rng, input_size, H, dtype), 3),
              "U": gate_blocks(lambda: orthogonal(rng, H, dtype), 3)}
    for key, shape in param_shapes(input_size, hidden_size).items():
        if key not in params:
            params[key] = (np.ones if key.startswith("gain") else np.zeros)(shape, dtype=dtype)
    return params


@njit(cache=True, nogil=True, error_model="numpy")
def step_forward(xw_zr_t, lxn_t, h_prev, U_zr, U_n, gain_zr, shift_zr, gain_hn, shift_hn, eps,
                 m_h=None, m_n=None):
    """One timestep. xw_zr_t: (B, 2H) = x_t W_zr; lxn_t: (B, H) = LN(x_t W_n).
    Returns h: (B, H); zrn: (B, 3H) = z, r, n (n before any mask); lhn: (B, H) =
    LN(h U_n); and the normalizations' xhat_zr (B, 2H), inv_std_zr (2B,), xhat_hn
    (B, H), inv_std_hn (B,). m_h, m_n: (B, H) dropout masks on h_{t-1} in the
    recurrent products and on n, or None.
    Readable twin: ``reference/lngru.py``, ``step_forward``."""
    B, H = h_prev.shape
    hm = h_prev if m_h is None else h_prev * m_h    # what the recurrent products see
    u = xw_zr_t + hm @ U_zr
    ones, zeros = np.ones(H, dtype=u.dtype), np.zeros(H, dtype=u.dtype)
    # each (example, gate) block of H units is one row of the normalization
    xhat_rows, _, inv_std_zr = ln_forward_2d(u.reshape(2 * B, H), ones, zeros, eps)
    xhat_zr = xhat_rows.reshape(B, 2 * H)
    lhn, xhat_hn, inv_std_hn = ln_forward_2d(hm @ U_n, gain_hn, shift_hn, eps)
    zrn = np.empty((B, 3 * H), dtype=u.dtype)
    h = np.empty_like(h_prev)
    for n in range(B):
        for j in range(2 * H):
            zrn[n, j] = sigmoid(gain_zr[j] * xhat_zr[n, j] + shift_zr[j])
        for j in range(H):
            z, r = zrn[n, j], zrn[n, H + j]
            cand = tanh(lxn_t[n, j] + r * lhn[n, j])
            zrn[n, 2 * H + j] = cand
            if m_n is not None:
                cand = cand * m_n[n, j]                 # n * m_n enters the state
            h[n, j] = (_ONE - z) * h_prev[n, j] + z * cand
    return h, zrn, lhn, xhat_zr, inv_std_zr, xhat_hn, inv_std_hn


@njit(cache=True, nogil=True, error_model="numpy")
def step_backward(dh, h_prev, zrn, lhn, xhat_zr, inv_std_zr, xhat_hn, inv_std_hn,
                  gain_zr, gain_hn, UT_zr, UT_n, m_h=None, m_n=None):
    """One timestep backwards. dh: (B, H) total dL/dh_t; m_h, m_n: the forward's
    dropout masks, or None.
    Returns du: (B, 2H) = dL/d(x W_zr + h U_zr); dhn: (B, H) = dL/d(h U_n);
    dlxn: (B, H) = dL/dLN(x W_n); dh_prev; and the gradients of gain_zr, shift_zr,
    gain_hn, shift_hn.
    Readable twin: ``reference/lngru.py``, ``step_backward``."""
    B, H = dh.shape
    da_zr = np.empty((B, 2 * H), dtype=dh.dtype)     # dL/d(LN'd pre-activations of z, r)
    dlxn = np.empty_like(dh)
    dlhn = np.empty_like(dh)
    dh_prev = np.empty_like(dh)
    for n in range(B):
        for j in range(H):
            z, r, cand = zrn[n, j], zrn[n, H + j], zrn[n, 2 * H + j]
            cand_in = cand if m_n is None else cand * m_n[n, j]     # what entered h_t
            dcand = dh[n, j] * z if m_n is None else dh[n, j] * z * m_n[n, j]
            da_n = dcand * (_ONE - cand * cand)
            dlxn[n, j] = da_n
            dlhn[n, j] = da_n * r
            da_zr[n, j] = dh[n, j] * (cand_in - h_prev[n, j]) * z * (_ONE - z)
            da_zr[n, H + j] = da_n * lhn[n, j] * r * (_ONE - r)
            dh_prev[n, j] = dh[n, j] * (_ONE - z)
    dhn, dgain_hn, dshift_hn = ln_backward_2d(dlhn, xhat_hn, inv_std_hn, gain_hn)
    dgain_zr = (da_zr * xhat_zr).sum(axis=0)
    dshift_zr = da_zr.sum(axis=0)
    ones = np.ones(H, dtype=dh.dtype)
    du_rows, _, _ = ln_backward_2d((da_zr * gain_zr).reshape(2 * B, H),
                                   xhat_zr.reshape(2 * B, H), inv_std_zr, ones)
    du = du_rows.reshape(B, 2 * H)
    if m_h is None:
        dh_prev += du @ UT_zr + dhn @ UT_n
    else:                       # the products met h_{t-1} * m_h
        dh_prev += (du @ UT_zr + dhn @ UT_n) * m_h
    return du, dhn, dlxn, dh_prev, dgain_zr, dshift_zr, dgain_hn, dshift_hn


@njit(cache=True, nogil=True)
def forward_loop(xw_zr, lxn, h0, U_zr, U_n, gain_zr, shift_zr, gain_hn, shift_hn, eps,
                 M_h=None, M_n=None):
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
    hs[0] = h0
    for t in range(T):
        (hs[t + 1], zrn[t], lhn[t], xhat_zr[t], inv_std_zr[t], xhat_hn[t],
         inv_std_hn[t]) = step_forward(xw_zr[t], lxn[t], hs[t], U_zr, U_n, gain_zr, shift_zr,
                                       gain_hn, shift_hn, eps, mask_at(M_h, t),
                                       mask_at(M_n, t))
    return hs, zrn, lhn, xhat_zr, inv_std_zr, xhat_hn, inv_std_hn


@njit(cache=True, nogil=True)
def backward_loop(dhs, dh_T, hs, zrn, lhn, xhat_zr, inv_std_zr, xhat_hn, inv_std_hn,
                  gain_zr, gain_hn, UT_zr, UT_n, M_h=None, M_n=None):
    """dhs: (T, B, H); M_h, M_n: the forward's masks. Returns dus: (T, B, 2H), dhns,
    dlxns: (T, B, H), dh0, and the gain/shift gradients summed over time."""
    T, B, H = dhs.shape
    dt = dhs.dtype
    dus = np.empty((T, B, 2 * H), dtype=dt)
    dhns = np.empty((T, B, H), dtype=dt)
    dlxns = np.empty((T, B, H), dtype=dt)
    dgain_zr = np.zeros(2 * H, dtype=dt)
    dshift_zr = np.zeros(2 * H, dtype=dt)
    dgain_hn = np.zeros(H, dtype=dt)
    dshift_hn = np.zeros(H, dtype=dt)
    dh_next = dh_T
    for t in range(T - 1, -1, -1):
        dus[t], dhns[t], dlxns[t], dh_next, g1, s1, g2, s2 = step_backward(
            dhs[t] + dh_next, hs[t], zrn[t], lhn[t], xhat_zr[t], inv_std_zr[t], xhat_hn[t],
            inv_std_hn[t], gain_zr, gain_hn, UT_zr, UT_n, mask_at(M_h, t), mask_at(M_n, t))
        dgain_zr += g1
        dshift_zr += s1
        dgain_hn += g2
        dshift_hn += s2
    return dus, dhns, dlxns, dh_next, dgain_zr, dshift_zr, dgain_hn, dshift_hn


def forward(params, x, state=None, *, training=True, rng=None, eps=1e-2, recurrent_dropout=0.0,
            dropout_where="update", dropout_per="sequence", dropout_shared=False, **options):
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache. ``state`` is h0.

    Recurrent dropout (off by default), as in ``gru.forward``: ``recurrent_dropout``
    is the rate p, ``dropout_where`` "update" (n) or "hidden" (h_{t-1} in the
    recurrent products); ``dropout_per`` "sequence" or "step"; ``dropout_shared``
    one mask for the whole batch. Masks come from ``rng`` when ``training`` and are
    kept in ``cache["masks"]``; ``training=False`` drops nothing."""
    check_options("lngru.forward", options, FORWARD_OPTIONS)
    I, H = check_matrix(params, "W").shape[0], check_matrix(params, "U").shape[0]
    dtype = check_params(params, param_shapes(I, H))
    check_sequence(x, I, dtype)
    B, T = x.shape[:2]
    masks = recurrent_masks("lngru", DROPOUT_PLACEMENTS, rate=recurrent_dropout,
                            where=dropout_where, per=dropout_per, shared=dropout_shared,
                            training=training, rng=rng, time=T, batch=B, hidden=H, dtype=dtype)
    h0 = check_state("state h0", state, B, H, dtype)
    eps = dtype.type(eps)
    x_tm = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * B, I)
    W = params["W"]
    xw_zr = (x_tm @ W[:, :2 * H]).reshape(T, B, 2 * H)
    lxn, xhat_xn, inv_std_xn = ln_forward_2d(x_tm @ W[:, 2 * H:], params["gain_xn"],
                                             params["shift_xn"], eps)
    U = params["U"]
    hs, zrn, lhn, xhat_zr, inv_std_zr, xhat_hn, inv_std_hn = forward_loop(
        xw_zr, lxn.reshape(T, B, H), h0, np.ascontiguousarray(U[:, :2 * H]),
        np.ascontiguousarray(U[:, 2 * H:]), params["gain_zr"], params["shift_zr"],
        params["gain_hn"], params["shift_hn"], eps, kernel_mask(masks, "hidden", B),
        kernel_mask(masks, "update", B))
    cache = {"x": x, "hs": hs, "zrn": zrn, "lhn": lhn, "xhat_zr": xhat_zr,
             "inv_std_zr": inv_std_zr, "xhat_hn": xhat_hn, "inv_std_hn": inv_std_hn,
             "xhat_xn": xhat_xn, "inv_std_xn": inv_std_xn, "masks": masks,
             "has_state": state is not None,
             "state": hs[-1]}
    return batch_major(hs), cache


def backward(params, dhs, cache, dstate=None, *, input_grad=True):
    """dhs: (batch, time, hidden) -> (dx: (batch, time, input), grads).
    ``dstate``, optional: dL/dh_T for a caller that used ``cache["state"]``.
    ``input_grad=False`` skips dx (returned as None) when the input is data."""
    x, hs = cache["x"], cache["hs"]
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    I, dtype = x.shape[2], x.dtype
    dhs = check_upstream(dhs, (B, T, H), dtype)
    dh_T = check_state("dstate", dstate, B, H, dtype)
    U, W = params["U"], params["W"]
    M_h = kernel_mask(cache["masks"], "hidden", B)
    dus, dhns, dlxns, dh0, dgain_zr, dshift_zr, dgain_hn, dshift_hn = backward_loop(
        np.ascontiguousarray(dhs.transpose(1, 0, 2)), dh_T, hs, cache["zrn"], cache["lhn"],
        cache["xhat_zr"], cache["inv_std_zr"], cache["xhat_hn"], cache["inv_std_hn"],
        params["gain_zr"], params["gain_hn"], np.ascontiguousarray(U[:, :2 * H].T),
        np.ascontiguousarray(U[:, 2 * H:].T), M_h, kernel_mask(cache["masks"], "update", B))
    du = dus.reshape(T * B, 2 * H)
    dxn, dgain_xn, dshift_xn = ln_backward_2d(dlxns.reshape(T * B, H), cache["xhat_xn"],
                                              cache["inv_std_xn"], params["gain_xn"])
    x_tm = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * B, I)
    h_prev = (hs[:-1] if M_h is None else hs[:-1] * M_h).reshape(T * B, H)   # what U met
    grads = {"W": np.concatenate([x_tm.T @ du, x_tm.T @ dxn], axis=1),
             "U": np.concatenate([h_prev.T @ du, h_prev.T @ dhns.reshape(T * B, H)], axis=1),
             "gain_zr": dgain_zr, "shift_zr": dshift_zr, "gain_xn": dgain_xn,
             "shift_xn": dshift_xn, "gain_hn": dgain_hn, "shift_hn": dshift_hn}
    if cache["has_state"]:
        grads["h0"] = dh0
    if not input_grad:
        return None, grads
    dx = (du @ W[:, :2 * H].T + dxn @ W[:, 2 * H:].T).reshape(T, B, I).transpose(1, 0, 2)
    return np.ascontiguousarray(dx), grads
