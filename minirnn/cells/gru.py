"""Gated recurrent unit (Cho et al. 2014), in both conventions users meet.

Readable twin: ``minirnn/reference/gru.py``, the same equations in plain NumPy, one
timestep per Python call; ``tests/test_reference.py`` holds this kernel equal to it.

Gates z (update), r (reset), n (candidate), in that order along the last axis::

    z = sigma(x_t W_z + h_{t-1} U_z + b_z)        r = sigma(x_t W_r + h_{t-1} U_r + b_r)
    h_t = z * h_{t-1} + (1 - z) * n

and the candidate ``n`` in one of two ways, chosen by ``reset_after``:

* ``reset_after=False`` (Cho et al. 2014, TensorFlow's ``GRUCell``): the reset
  gate acts on the state *before* the product with ``U_n``::

      n = tanh(x_t W_n + (r * h_{t-1}) U_n + b_n)

* ``reset_after=True`` (cuDNN, PyTorch, tf.keras's default since TensorFlow 2):
  it acts *after* it, and a second, recurrent bias ``bh`` sits inside every recurrent term::

      z = sigma(x_t W_z + b_z + h_{t-1} U_z + bh_z)   (likewise r)
      n = tanh(x_t W_n + b_n + r * (h_{t-1} U_n + bh_n))

Parameters: ``W: (input, 3H)``, ``U: (H, 3H)``, ``b: (3H,)``, and ``bh: (3H,)``
only when ``reset_after=True``. Pass ``reset_after`` to ``init`` and to
``forward`` alike; a mismatch with the parameters is an error.

Recurrent dropout (``tutorials/08_recurrent_dropout.md``; options in
``cells/_dropout.py``) multiplies a mask m into one of two places::

    dropout_where="update"   h_t = z * h_{t-1} + (1 - z) * (n * m_n)       Semeniuta et al.
    dropout_where="hidden"   h_{t-1} * m_h replaces h_{t-1} in the three recurrent
                             products (h U_z, h U_r and the candidate's), not in
                             z * h_{t-1}                                  Gal & Ghahramani

and backwards the mask multiplies the local derivative there:
``dn = dh_t * (1 - z) * m_n`` (and ``dz = dh_t * (h_{t-1} - n * m_n)``);
``dh_{t-1} = dh_t * z + (dL/d(h_{t-1} * m_h)) * m_h``.

Note the direction of z: ``z = 1`` keeps the old state, as in Cho et al. (2014),
PyTorch and Keras; Chung et al. (2014) write it the other way round, which only
renames z to 1 - z.

Code names: ``xw = x_t W + b``; ``zrn`` holds the activated z, r, n;
``hu_n = h_{t-1} U_n + bh_n`` (reset_after only); ``U_zr``/``U_n`` are the
column blocks of U, split so each product in the loop is on contiguous memory.
"""
import numpy as np
from numba import njit

from ..functional.activations import sigmoid, tanh
from ..initializers import gate_blocks, glorot_uniform, orthogonal
from ._dropout import kernel_mask, mask_at, recurrent_masks
from ._projection import batch_major, input_gradients, input_projection
from ._checks import (check_matrix, check_options, check_params, check_sequence,
                      check_state, check_upstream)

INIT_OPTIONS = ("reset_after",)
FORWARD_OPTIONS = ("reset_after", "recurrent_dropout", "dropout_where", "dropout_per",
                   "dropout_shared")
DROPOUT_PLACEMENTS = ("update", "hidden")
_P = {"recurrent_dropout": 0.3}
GRADCHECK_CASES = (
    {"reset_after": False},
    {"reset_after": True},
    {"reset_after": False, **_P, "dropout_where": "update", "dropout_per": "step"},
    {"reset_after": True, **_P, "dropout_where": "update", "dropout_per": "sequence",
     "dropout_shared": True},
    {"reset_after": False, **_P, "dropout_where": "hidden", "dropout_per": "sequence"},
    {"reset_after": True, **_P, "dropout_where": "hidden", "dropout_per": "step"},
)
STATE_SIZE = 1
_ONE = np.float32(1.0)


def param_shapes(input_size, hidden_size, reset_after=False):
    H3 = 3 * hidden_size
    shapes = {"W": (input_size, H3), "U": (hidden_size, H3), "b": (H3,)}
    if reset_after:
        shapes["bh"] = (H3,)
    return shapes


def init(input_size, hidden_size, *, rng, dtype=np.float32, reset_after=False):
    """Glorot-uniform W, orthogonal U (per gate), zero biases."""
    H = hidden_size
    params = {"W": gate_blocks(lambda: glorot_uniform(rng, input_size, H, dtype), 3),
              "U": gate_blocks(lambda: orthogonal(rng, H, dtype), 3),
              "b": np.zeros(3 * H, dtype=dtype)}
    if reset_after:
        params["bh"] = np.zeros(3 * H, dtype=dtype)
    return params


@njit(cache=True, nogil=True, error_model="numpy")
def step_forward(xw_t, h_prev, U_zr, U_n, bh, reset_after, m_h=None, m_n=None):
    """One timestep. xw_t: (B, 3H) = x_t W + b; h_prev: (B, H); U_zr: (H, 2H);
    U_n: (H, H); bh: (3H,) (zeros when not reset_after); m_h, m_n: (B, H)
    dropout masks on h_{t-1} in the recurrent products and on n, or None.
    Returns h: (B, H), zrn: (B, 3H) activated gates (n before any mask), hu_n:
    (B, H) (zeros when not reset_after: backward needs it only in that convention).
    Readable twin: ``reference/gru.py``, ``step_forward``."""
    B, H = h_prev.shape
    zrn = np.empty_like(xw_t)
    h = np.empty_like(h_prev)
    hm = h_prev if m_h is None else h_prev * m_h    # what the recurrent products see
    hu_zr = hm @ U_zr
    for n in range(B):
        for j in range(H):
            zrn[n, j] = sigmoid(xw_t[n, j] + hu_zr[n, j] + bh[j])
            zrn[n, H + j] = sigmoid(xw_t[n, H + j] + hu_zr[n, H + j] + bh[H + j])
    # The candidate's recurrent term: r applied after U_n, or before it.
    if reset_after:
        hu_n = hm @ U_n + bh[2 * H:]
        recurrent = zrn[:, H:2 * H] * hu_n
    else:
        hu_n = np.zeros_like(h_prev)
        recurrent = (zrn[:, H:2 * H] * hm) @ U_n
    for n in range(B):
        for j in range(H):
            z = zrn[n, j]
            cand = tanh(xw_t[n, 2 * H + j] + recurrent[n, j])
            zrn[n, 2 * H + j] = cand
            if m_n is not None:
                cand = cand * m_n[n, j]                 # n * m_n enters the state
            h[n, j] = z * h_prev[n, j] + (_ONE - z) * cand
    return h, zrn, hu_n


@njit(cache=True, nogil=True, error_model="numpy")
def step_backward(dh, h_prev, zrn, hu_n, UT_zr, UT_n, reset_after, m_h=None, m_n=None):
    """One timestep backwards. dh: (B, H) total dL/dh_t; UT_zr: (2H, H) and
    UT_n: (H, H) are the transposed blocks of U; m_h, m_n: the forward's masks.
    Returns da: (B, 3H) = dL/d(pre-activations of z, r, n) and dh_prev: (B, H).
    Readable twin: ``reference/gru.py``, ``step_backward``."""
    B, H = dh.shape
    da_zr = np.empty((B, 2 * H), dtype=dh.dtype)
    da_n = np.empty_like(dh)
    for n in range(B):
        for j in range(H):
            z, cand = zrn[n, j], zrn[n, 2 * H + j]
            cand_in = cand if m_n is None else cand * m_n[n, j]     # what entered h_t
            dcand = dh[n, j] * (_ONE - z) if m_n is None else dh[n, j] * (_ONE - z) * m_n[n, j]
            da_n[n, j] = dcand * (_ONE - cand * cand)
            da_zr[n, j] = dh[n, j] * (h_prev[n, j] - cand_in) * z * (_ONE - z)
    r = zrn[:, H:2 * H]
    hm = h_prev if m_h is None else h_prev * m_h    # what the recurrent products saw
    if reset_after:
        # n = tanh(... + r * hu_n): dL/dr = da_n * hu_n, dL/dhu_n = da_n * r
        dr = da_n * hu_n
        d_hm = (r * da_n) @ UT_n
    else:
        # n = tanh(... + (r * hm) U_n): the product's gradient splits into r and hm
        d_rh = da_n @ UT_n
        dr = d_rh * hm
        d_hm = d_rh * r
    for n in range(B):
        for j in range(H):
            r_j = zrn[n, H + j]
            da_zr[n, H + j] = dr[n, j] * r_j * (_ONE - r_j)
    d_hm += da_zr @ UT_zr       # dL/d(hm): the three recurrent products
    if m_h is not None:
        d_hm *= m_h             # hm = h_prev * m_h
    # h_prev reaches h_t directly through z * h_prev, and through the products
    return np.concatenate((da_zr, da_n), axis=1), dh * zrn[:, :H] + d_hm


@njit(cache=True, nogil=True)
def forward_loop(xw, h0, U_zr, U_n, bh, reset_after, M_h=None, M_n=None):
    """xw: (T, B, 3H); M_h, M_n: dropout masks (T or 1, B, H) or None
    -> hs: (T+1, B, H) with hs[0] = h0, zrn: (T, B, 3H), hu_n: (T, B, H)."""
    T, B, H = xw.shape[0], h0.shape[0], h0.shape[1]
    hs = np.empty((T + 1, B, H), dtype=xw.dtype)
    zrn = np.empty_like(xw)
    hu_n = np.empty((T, B, H), dtype=xw.dtype)
    hs[0] = h0
    for t in range(T):
        hs[t + 1], zrn[t], hu_n[t] = step_forward(xw[t], hs[t], U_zr, U_n, bh, reset_after,
                                                  mask_at(M_h, t), mask_at(M_n, t))
    return hs, zrn, hu_n


@njit(cache=True, nogil=True)
def backward_loop(dhs, dh_T, hs, zrn, hu_n, UT_zr, UT_n, reset_after, M_h=None, M_n=None):
    """dhs: (T, B, H) time-major; dh_T: (B, H) gradient of the final state;
    M_h, M_n: the forward's masks -> das: (T, B, 3H), dh0: (B, H)."""
    T = dhs.shape[0]
    das = np.empty_like(zrn)
    dh_next = dh_T
    for t in range(T - 1, -1, -1):
        das[t], dh_next = step_backward(dhs[t] + dh_next, hs[t], zrn[t], hu_n[t],
                                        UT_zr, UT_n, reset_after,
                                        mask_at(M_h, t), mask_at(M_n, t))
    return das, dh_next


def forward(params, x, state=None, *, training=True, rng=None, reset_after=False,
            recurrent_dropout=0.0, dropout_where="update", dropout_per="sequence",
            dropout_shared=False, **options):
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache.
    ``state`` is h0: (batch, hidden).

    Recurrent dropout (off by default): ``recurrent_dropout`` is the rate p,
    ``dropout_where`` "update" (n) or "hidden" (h_{t-1} in the recurrent
    products); ``dropout_per`` "sequence" or "step"; ``dropout_shared`` one mask
    for the whole batch. Masks come from ``rng`` when ``training`` and are kept
    in ``cache["masks"]``; ``training=False`` drops nothing."""
    check_options("gru.forward", options, FORWARD_OPTIONS)
    I, H = check_matrix(params, "W").shape[0], check_matrix(params, "U").shape[0]
    if ("bh" in params) != bool(reset_after):
        raise KeyError(f"params: reset_after={reset_after} expects "
                       f"{'a' if reset_after else 'no'} recurrent bias 'bh', got keys "
                       f"{sorted(params)}; pass the same reset_after to init and forward")
    dtype = check_params(params, param_shapes(I, H, reset_after))
    check_sequence(x, I, dtype)
    B, T = x.shape[0], x.shape[1]
    masks = recurrent_masks("gru", DROPOUT_PLACEMENTS, rate=recurrent_dropout, where=dropout_where,
                            per=dropout_per, shared=dropout_shared, training=training, rng=rng,
                            time=T, batch=B, hidden=H, dtype=dtype)
    h0 = check_state("state h0", state, B, H, dtype)
    U = params["U"]
    bh = params["bh"] if reset_after else np.zeros(3 * H, dtype=dtype)
    xw = input_projection(x, params["W"], params["b"])
    hs, zrn, hu_n = forward_loop(xw, h0, np.ascontiguousarray(U[:, :2 * H]),
                                 np.ascontiguousarray(U[:, 2 * H:]), bh, bool(reset_after),
                                 kernel_mask(masks, "hidden", B), kernel_mask(masks, "update", B))
    cache = {"x": x, "hs": hs, "zrn": zrn, "hu_n": hu_n, "reset_after": bool(reset_after),
             "masks": masks, "has_state": state is not None, "state": hs[-1]}
    return batch_major(hs), cache


def backward(params, dhs, cache, dstate=None, *, input_grad=True):
    """dhs: (batch, time, hidden) -> (dx: (batch, time, input), grads).
    ``dstate``, optional: dL/dh_T for a caller that used ``cache["state"]``.
    ``grads`` holds ``"h0"`` too when a state was passed to ``forward``.
    ``input_grad=False`` skips dx (returned as None) when the input is data."""
    x, hs, zrn, reset_after = cache["x"], cache["hs"], cache["zrn"], cache["reset_after"]
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    dhs = check_upstream(dhs, (B, T, H), x.dtype)
    dh_T = check_state("dstate", dstate, B, H, x.dtype).copy()
    U = params["U"]
    M_h = kernel_mask(cache["masks"], "hidden", B)
    das, dh0 = backward_loop(np.ascontiguousarray(dhs.transpose(1, 0, 2)), dh_T, hs, zrn,
                             cache["hu_n"], np.ascontiguousarray(U[:, :2 * H].T),
                             np.ascontiguousarray(U[:, 2 * H:].T), reset_after,
                             M_h, kernel_mask(cache["masks"], "update", B))
    # U met h_{t-1} * m_h under "hidden" dropout: hm in step_forward
    h_prev = (hs[:-1] if M_h is None else hs[:-1] * M_h).reshape(T * B, H)
    da = das.reshape(T * B, 3 * H)
    r = zrn[:, :, H:2 * H].reshape(T * B, H)
    dU = np.empty_like(U)
    dU[:, :2 * H] = h_prev.T @ da[:, :2 * H]
    dx, dW, db = input_gradients(x, das, params["W"], input_grad)
    grads = {"W": dW, "U": dU, "b": db}
    if reset_after:
        # the recurrent terms saw r * dL/da_n for the candidate block
        dhu = da.copy()
        dhu[:, 2 * H:] *= r
        dU[:, 2 * H:] = h_prev.T @ dhu[:, 2 * H:]
        grads["bh"] = dhu.sum(axis=0)
    else:
        dU[:, 2 * H:] = (r * h_prev).T @ da[:, 2 * H:]
    if cache["has_state"]:
        grads["h0"] = dh0
    return dx, grads
