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

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import DTypeLike

from ..functional.activations import sigmoid, tanh
from ..initializers import gate_blocks, glorot_uniform, orthogonal
from ..types import Cache, Grads, Params, Shapes, State
from ._checks import check_gradients, check_inputs, check_state
from ._dropout import apply_mask, kernel_mask, mask_at, recurrent_masks
from ._projection import batch_major, input_gradients, input_projection

INIT_OPTIONS = ("reset_after",)
FORWARD_OPTIONS = (
    "reset_after",
    "recurrent_dropout",
    "dropout_where",
    "dropout_per",
    "dropout_shared",
)
DROPOUT_PLACEMENTS = ("update", "hidden")
_P = {"recurrent_dropout": 0.3}
GRADCHECK_CASES = (
    {"reset_after": False},
    {"reset_after": True},
    {"reset_after": False, **_P, "dropout_where": "update", "dropout_per": "step"},
    {
        "reset_after": True,
        **_P,
        "dropout_where": "update",
        "dropout_per": "sequence",
        "dropout_shared": True,
    },
    {"reset_after": False, **_P, "dropout_where": "hidden", "dropout_per": "sequence"},
    {"reset_after": True, **_P, "dropout_where": "hidden", "dropout_per": "step"},
)
STATE_SIZE = 1
_ONE = np.float32(1.0)


def param_shapes(input_size: int, hidden_size: int, reset_after: bool = False) -> Shapes:
    H3 = 3 * hidden_size
    shapes = {"W": (input_size, H3), "U": (hidden_size, H3), "b": (H3,)}
    if reset_after:
        shapes["bh"] = (H3,)
    return shapes


def init(
    input_size: int,
    hidden_size: int,
    *,
    rng: np.random.Generator,
    dtype: DTypeLike = np.float32,
    reset_after: bool = False,
) -> Params:
    """Glorot-uniform W, orthogonal U (per gate), zero biases."""
    H = hidden_size
    params = {
        "W": gate_blocks(lambda: glorot_uniform(rng, input_size, H, dtype), 3),
        "U": gate_blocks(lambda: orthogonal(rng, H, dtype), 3),
        "b": np.zeros(3 * H, dtype=dtype),
    }
    if reset_after:
        params["bh"] = np.zeros(3 * H, dtype=dtype)
    return params


@njit(cache=True, nogil=True, error_model="numpy")
def step_forward(
    xw_t, h_prev, U_zr, U_n, bh, reset_after, h, zrn, hu_n, hu_zr, rh, rec, hm, m_h=None, m_n=None
):
    """One timestep. xw_t: (B, 3H) = x_t W + b; h_prev: (B, H); U_zr: (H, 2H);
    U_n: (H, H); bh: (3H,) (zeros when not reset_after).
    Writes h: (B, H) = h_t; zrn: (B, 3H), the activated gates (n before any mask);
    hu_n: (B, H) = h_{t-1} U_n + bh_n when reset_after (backward needs it only then;
    left alone otherwise). Scratch: hu_zr: (B, 2H); rh, rec, hm: (B, H).
    m_h, m_n: (B, H) dropout masks on h_{t-1} in the recurrent products and on n,
    or None.
    Readable twin: ``reference/gru.py``, ``step_forward``."""
    B, H = h_prev.shape
    h_in = apply_mask(h_prev, m_h, hm)  # what the recurrent products see
    np.dot(h_in, U_zr, hu_zr)
    for n in range(B):
        for j in range(2 * H):  # z, r = sigma(x_t W + b + h_{t-1} U + bh)
            zrn[n, j] = sigmoid(xw_t[n, j] + hu_zr[n, j] + bh[j])
    # The candidate's recurrent term rec: r applied after U_n, or before it.
    if reset_after:
        np.dot(h_in, U_n, hu_n)
        for n in range(B):
            for j in range(H):
                hu_n[n, j] = hu_n[n, j] + bh[2 * H + j]
                rec[n, j] = zrn[n, H + j] * hu_n[n, j]  # r * (h_{t-1} U_n + bh_n)
    else:
        for n in range(B):
            for j in range(H):
                rh[n, j] = zrn[n, H + j] * h_in[n, j]
        np.dot(rh, U_n, rec)  # (r * h_{t-1}) U_n
    for n in range(B):
        for j in range(H):
            z = zrn[n, j]
            cand = tanh(xw_t[n, 2 * H + j] + rec[n, j])
            zrn[n, 2 * H + j] = cand
            if m_n is not None:
                cand = cand * m_n[n, j]  # n * m_n enters the state
            h[n, j] = z * h_prev[n, j] + (_ONE - z) * cand


@njit(cache=True, nogil=True, error_model="numpy")
def step_backward(
    dh_out,
    dh,
    h_prev,
    zrn,
    hu_n,
    UT_zr,
    UT_n,
    reset_after,
    da,
    dh_prev,
    da_zr,
    da_n,
    d_rh,
    dhu_n,
    dh_zr,
    hm,
    m_h=None,
    m_n=None,
):
    """One timestep backwards. dh_out: (B, H) dL/dh_t from the output at t; dh: (B, H)
    dL/dh_t through the recurrent terms, carried from step t+1 (overwritten);
    UT_zr: (2H, H), UT_n: (H, H): the transposed blocks of U.
    Writes da: (B, 3H) = dL/d(pre-activations of z, r, n) and dh_prev: (B, H).
    Scratch: da_zr: (B, 2H); da_n, d_rh, dhu_n, dh_zr, hm: (B, H). m_h, m_n: the
    forward's masks, or None.
    Readable twin: ``reference/gru.py``, ``step_backward``."""
    B, H = dh.shape
    for n in range(B):
        for j in range(H):
            dh[n, j] = dh_out[n, j] + dh[n, j]  # dh <- dL/dh_t
        for j in range(H):
            z, cand = zrn[n, j], zrn[n, 2 * H + j]
            cand_in = cand if m_n is None else cand * m_n[n, j]  # what entered h_t
            dcand = dh[n, j] * (_ONE - z) if m_n is None else dh[n, j] * (_ONE - z) * m_n[n, j]
            da_n[n, j] = dcand * (_ONE - cand * cand)
            da_zr[n, j] = dh[n, j] * (h_prev[n, j] - cand_in) * z * (_ONE - z)
    h_in = apply_mask(h_prev, m_h, hm)  # what the recurrent products saw
    # dh_prev first collects dL/d(h_in) through the candidate's recurrent term
    if reset_after:
        # n = tanh(... + r * hu_n): dL/dr = da_n * hu_n, dL/dhu_n = da_n * r
        for n in range(B):
            for j in range(H):
                r = zrn[n, H + j]
                da_zr[n, H + j] = da_n[n, j] * hu_n[n, j] * r * (_ONE - r)
                dhu_n[n, j] = r * da_n[n, j]
        np.dot(dhu_n, UT_n, dh_prev)
    else:
        # n = tanh(... + (r * h_in) U_n): the product's gradient splits into r and h_in
        np.dot(da_n, UT_n, d_rh)
        for n in range(B):
            for j in range(H):
                r = zrn[n, H + j]
                da_zr[n, H + j] = d_rh[n, j] * h_in[n, j] * r * (_ONE - r)
                dh_prev[n, j] = d_rh[n, j] * r
    np.dot(da_zr, UT_zr, dh_zr)  # through h_{t-1} U_zr
    for n in range(B):
        for j in range(H):
            d_in = dh_prev[n, j] + dh_zr[n, j]  # dL/d(h_in): the three recurrent products
            if m_h is not None:
                d_in = d_in * m_h[n, j]  # h_in = h_prev * m_h
            # h_prev reaches h_t directly through z * h_prev, and through the products
            dh_prev[n, j] = dh[n, j] * zrn[n, j] + d_in
        for j in range(2 * H):
            da[n, j] = da_zr[n, j]
        for j in range(H):
            da[n, 2 * H + j] = da_n[n, j]


@njit(cache=True, nogil=True)
def forward_loop(xw, h0, U_zr, U_n, bh, reset_after, M_h=None, M_n=None):
    """xw: (T, B, 3H); M_h, M_n: dropout masks (T or 1, B, H) or None
    -> hs: (T+1, B, H) with hs[0] = h0, zrn: (T, B, 3H), hu_n: (T, B, H)
    (zeros when not reset_after)."""
    T, B, H = xw.shape[0], h0.shape[0], h0.shape[1]
    hs = np.empty((T + 1, B, H), dtype=xw.dtype)
    zrn = np.empty_like(xw)
    hu_n = np.zeros((T, B, H), dtype=xw.dtype)
    # scratch for the steps, allocated once
    hu_zr = np.empty((B, 2 * H), dtype=xw.dtype)
    rh, rec, hm = (
        np.empty((B, H), dtype=xw.dtype),
        np.empty((B, H), dtype=xw.dtype),
        np.empty((B, H), dtype=xw.dtype),
    )
    hs[0] = h0
    for t in range(T):
        step_forward(
            xw[t],
            hs[t],
            U_zr,
            U_n,
            bh,
            reset_after,
            hs[t + 1],
            zrn[t],
            hu_n[t],
            hu_zr,
            rh,
            rec,
            hm,
            mask_at(M_h, t),
            mask_at(M_n, t),
        )
    return hs, zrn, hu_n


@njit(cache=True, nogil=True)
def backward_loop(dhs, dh_T, hs, zrn, hu_n, UT_zr, UT_n, reset_after, M_h=None, M_n=None):
    """dhs: (T, B, H) time-major; dh_T: (B, H) gradient of the final state;
    M_h, M_n: the forward's masks -> das: (T, B, 3H), dh0: (B, H)."""
    T, B, H = dhs.shape
    das = np.empty_like(zrn)
    dh, dh_prev = dh_T.copy(), np.empty_like(dh_T)  # two buffers, in turn
    # scratch for the steps, allocated once
    da_zr = np.empty((B, 2 * H), dtype=dhs.dtype)
    da_n, d_rh, dhu_n, dh_zr, hm = (
        np.empty_like(dh),
        np.empty_like(dh),
        np.empty_like(dh),
        np.empty_like(dh),
        np.empty_like(dh),
    )
    for t in range(T - 1, -1, -1):
        step_backward(
            dhs[t],
            dh,
            hs[t],
            zrn[t],
            hu_n[t],
            UT_zr,
            UT_n,
            reset_after,
            das[t],
            dh_prev,
            da_zr,
            da_n,
            d_rh,
            dhu_n,
            dh_zr,
            hm,
            mask_at(M_h, t),
            mask_at(M_n, t),
        )
        dh, dh_prev = dh_prev, dh
    return das, dh


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    training: bool = True,
    rng: np.random.Generator | None = None,
    reset_after: bool = False,
    recurrent_dropout: float = 0.0,
    dropout_where: str = "update",
    dropout_per: str = "sequence",
    dropout_shared: bool = False,
    **options,
) -> tuple[np.ndarray, Cache]:
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache.
    ``state`` is h0: (batch, hidden).

    Recurrent dropout (off by default): ``recurrent_dropout`` is the rate p,
    ``dropout_where`` "update" (n) or "hidden" (h_{t-1} in the recurrent
    products); ``dropout_per`` "sequence" or "step"; ``dropout_shared`` one mask
    for the whole batch. Masks come from ``rng`` when ``training`` and are kept
    in ``cache["masks"]``; ``training=False`` drops nothing."""
    if isinstance(params, dict) and ("bh" in params) != bool(reset_after):
        raise KeyError(
            f"params: reset_after={reset_after} expects "
            f"{'a' if reset_after else 'no'} recurrent bias 'bh', got keys "
            f"{sorted(params)}; pass the same reset_after to init and forward"
        )
    _, H, dtype = check_inputs(
        "gru.forward", params, x, options, FORWARD_OPTIONS, param_shapes, reset_after=reset_after
    )
    B, T = x.shape[0], x.shape[1]
    masks = recurrent_masks(
        "gru",
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
    U = params["U"]
    bh = params["bh"] if reset_after else np.zeros(3 * H, dtype=dtype)
    xw = input_projection(x, params["W"], params["b"])
    hs, zrn, hu_n = forward_loop(
        xw,
        h0,
        np.ascontiguousarray(U[:, : 2 * H]),
        np.ascontiguousarray(U[:, 2 * H :]),
        bh,
        bool(reset_after),
        kernel_mask(masks, "hidden", B),
        kernel_mask(masks, "update", B),
    )
    cache = {
        "x": x,
        "hs": hs,
        "zrn": zrn,
        "hu_n": hu_n,
        "reset_after": bool(reset_after),
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
    ``grads`` holds ``"h0"`` too when a state was passed to ``forward``.
    ``input_grad=False`` skips dx (returned as None) when the input is data."""
    x, hs, zrn, reset_after = cache["x"], cache["hs"], cache["zrn"], cache["reset_after"]
    dhs, (dh_T,) = check_gradients(dhs, dstate, hs, x.dtype, STATE_SIZE)
    T, B, H = dhs.shape
    U = params["U"]
    M_h = kernel_mask(cache["masks"], "hidden", B)
    das, dh0 = backward_loop(
        dhs,
        dh_T,
        hs,
        zrn,
        cache["hu_n"],
        np.ascontiguousarray(U[:, : 2 * H].T),
        np.ascontiguousarray(U[:, 2 * H :].T),
        reset_after,
        M_h,
        kernel_mask(cache["masks"], "update", B),
    )
    # U met h_{t-1} * m_h under "hidden" dropout: h_in in step_forward
    h_prev = (hs[:-1] if M_h is None else hs[:-1] * M_h).reshape(T * B, H)
    da = das.reshape(T * B, 3 * H)
    r = zrn[:, :, H : 2 * H].reshape(T * B, H)
    dU = np.empty_like(U)
    dU[:, : 2 * H] = h_prev.T @ da[:, : 2 * H]
    dx, dW, db = input_gradients(x, das, params["W"], input_grad)
    grads = {"W": dW, "U": dU, "b": db}
    if reset_after:
        # the recurrent terms saw r * dL/da_n for the candidate block
        dhu = da.copy()
        dhu[:, 2 * H :] *= r
        dU[:, 2 * H :] = h_prev.T @ dhu[:, 2 * H :]
        grads["bh"] = dhu.sum(axis=0)
    else:
        dU[:, 2 * H :] = (r * h_prev).T @ da[:, 2 * H :]
    if cache["has_state"]:
        grads["h0"] = dh0
    return dx, grads
