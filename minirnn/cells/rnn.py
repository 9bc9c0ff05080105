"""The vanilla (Elman) recurrent network.

Readable twin: ``minirnn/reference/rnn.py``, the same equations in plain NumPy, one
timestep per Python call; ``tests/test_reference.py`` holds this kernel equal to it.

One timestep (derived in ``tutorials/01_rnn_bptt.md``)::

    a_t = x_t W + h_{t-1} U + b          (B, H)
    h_t = tanh(a_t)

Parameters: ``W: (input, hidden)``, ``U: (hidden, hidden)``, ``b: (hidden,)``.
State: ``h0: (batch, hidden)``, zeros when omitted; the final state is
``cache["state"] == h_T``.

Recurrent dropout (``tutorials/08_recurrent_dropout.md``; options in
``cells/_dropout.py``): the RNN has one place for a mask, h_{t-1} where it meets
U (Gal & Ghahramani), ``a_t = x_t W + (h_{t-1} * m_h) U + b``, so backwards
``dh_{t-1} = (da U^T) * m_h`` and ``dU = sum_t (h_{t-1} * m_h)^T da_t``.
("update" and "cell" belong to the gated cells and are an error here.)

Backpropagation through time: with ``dh`` the total dL/dh_t (from the output at
t plus what step t+1 sends back), ``da = dh * (1 - h_t^2)`` and
``dh_{t-1} = da U^T``; ``dW``, ``dU``, ``db`` sum ``x_t^T da``, ``h_{t-1}^T da``
and ``da`` over t, which are single products after the loop.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import DTypeLike

from ..functional.activations import tanh
from ..initializers import glorot_uniform, orthogonal
from ..types import Cache, Grads, Params, Shapes, State
from ._checks import check_gradients, check_inputs, check_state
from ._dropout import apply_mask, kernel_mask, mask_at, recurrent_masks
from ._projection import batch_major, input_gradients, input_projection

INIT_OPTIONS = ()
FORWARD_OPTIONS = ("recurrent_dropout", "dropout_where", "dropout_per", "dropout_shared")
DROPOUT_PLACEMENTS = ("hidden",)
GRADCHECK_CASES = (
    {},
    {"recurrent_dropout": 0.3, "dropout_where": "hidden", "dropout_per": "step"},
    {
        "recurrent_dropout": 0.3,
        "dropout_where": "hidden",
        "dropout_per": "sequence",
        "dropout_shared": True,
    },
)
STATE_SIZE = 1
_ONE = np.float32(1.0)


def param_shapes(input_size: int, hidden_size: int) -> Shapes:
    return {"W": (input_size, hidden_size), "U": (hidden_size, hidden_size), "b": (hidden_size,)}


def init(
    input_size: int, hidden_size: int, *, rng: np.random.Generator, dtype: DTypeLike = np.float32
) -> Params:
    """Glorot-uniform W, orthogonal U, b = 0."""
    return {
        "W": glorot_uniform(rng, input_size, hidden_size, dtype),
        "U": orthogonal(rng, hidden_size, dtype),
        "b": np.zeros(hidden_size, dtype=dtype),
    }


@njit(cache=True, nogil=True, error_model="numpy")
def step_forward(xw_t, h_prev, U, h, hm, m_h=None):
    """One timestep. xw_t: (B, H) = x_t W + b; h_prev: (B, H); U: (H, H).
    Writes h: (B, H) = h_t. Scratch: hm: (B, H). m_h: (B, H) dropout mask on
    h_{t-1} where it meets U, or None.
    Readable twin: ``reference/rnn.py``, ``step_forward``."""
    np.dot(apply_mask(h_prev, m_h, hm), U, h)  # h_{t-1} U, or (h_{t-1} * m_h) U
    B, H = h.shape
    for n in range(B):
        for j in range(H):
            h[n, j] = tanh(xw_t[n, j] + h[n, j])  # h_t = tanh(x_t W + b + h_{t-1} U)


@njit(cache=True, nogil=True, error_model="numpy")
def step_backward(dh_out, dh, h, UT, da, dh_prev, m_h=None):
    """One timestep backwards. dh_out: (B, H) dL/dh_t from the output at t; dh: (B, H)
    dL/dh_t through U, carried from step t+1; h: (B, H) = h_t; UT: (H, H) = U^T.
    Writes da: (B, H) = dL/da_t and dh_prev: (B, H) = dL/dh_{t-1}.
    m_h: the forward's mask on h_{t-1}, or None.
    Readable twin: ``reference/rnn.py``, ``step_backward``."""
    B, H = dh.shape
    for n in range(B):
        for j in range(H):  # da = dL/dh_t * tanh'(a_t), with dL/dh_t = dh_out + dh
            da[n, j] = (dh_out[n, j] + dh[n, j]) * (_ONE - h[n, j] * h[n, j])
    np.dot(da, UT, dh_prev)  # dh_{t-1} = da U^T
    if m_h is not None:
        dh_prev *= m_h  # forward used h_{t-1} * m_h


@njit(cache=True, nogil=True)
def forward_loop(xw, h0, U, M_h=None):
    """xw: (T, B, H) time-major; h0: (B, H); M_h: dropout mask (T or 1, B, H) or
    None -> hs: (T+1, B, H), hs[0] = h0."""
    T, B, H = xw.shape
    hs = np.empty((T + 1, B, H), dtype=xw.dtype)
    hm = np.empty((B, H), dtype=xw.dtype)  # scratch for the steps
    hs[0] = h0
    for t in range(T):
        step_forward(xw[t], hs[t], U, hs[t + 1], hm, mask_at(M_h, t))
    return hs


@njit(cache=True, nogil=True)
def backward_loop(dhs, dh_T, hs, UT, M_h=None):
    """dhs: (T, B, H) time-major; dh_T: (B, H) gradient of the final state;
    M_h: the forward's mask -> das: (T, B, H), dh0: (B, H)."""
    das = np.empty_like(dhs)
    dh, dh_prev = dh_T.copy(), np.empty_like(dh_T)  # two buffers, in turn
    for t in range(dhs.shape[0] - 1, -1, -1):
        step_backward(dhs[t], dh, hs[t + 1], UT, das[t], dh_prev, mask_at(M_h, t))
        dh, dh_prev = dh_prev, dh
    return das, dh


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    training: bool = True,
    rng: np.random.Generator | None = None,
    recurrent_dropout: float = 0.0,
    dropout_where: str = "hidden",
    dropout_per: str = "sequence",
    dropout_shared: bool = False,
    **options,
) -> tuple[np.ndarray, Cache]:
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache.
    ``state`` is h0: (batch, hidden).

    Recurrent dropout (off by default): ``recurrent_dropout`` is the rate p on h_{t-1}
    where it meets U (``dropout_where="hidden"``, the only placement of the
    RNN); ``dropout_per`` "sequence" or "step"; ``dropout_shared`` one mask for
    the whole batch. Masks come from ``rng`` when ``training`` and are kept in
    ``cache["masks"]``; ``training=False`` drops nothing."""
    _, H, dtype = check_inputs("rnn.forward", params, x, options, FORWARD_OPTIONS, param_shapes)
    B, T = x.shape[0], x.shape[1]
    masks = recurrent_masks(
        "rnn",
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
    xw = input_projection(x, params["W"], params["b"])
    hs = forward_loop(xw, h0, np.ascontiguousarray(params["U"]), kernel_mask(masks, "hidden", B))
    cache = {"x": x, "hs": hs, "masks": masks, "has_state": state is not None, "state": hs[-1]}
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
    x, hs = cache["x"], cache["hs"]
    dhs, (dh_T,) = check_gradients(dhs, dstate, hs, x.dtype, STATE_SIZE)
    T, B, H = dhs.shape
    M_h = kernel_mask(cache["masks"], "hidden", B)
    das, dh0 = backward_loop(dhs, dh_T, hs, np.ascontiguousarray(params["U"].T), M_h)
    h_prev = hs[:-1] if M_h is None else hs[:-1] * M_h  # what U met
    dx, dW, db = input_gradients(x, das, params["W"], input_grad)
    grads = {"W": dW, "U": h_prev.reshape(T * B, H).T @ das.reshape(T * B, H), "b": db}
    if cache["has_state"]:
        grads["h0"] = dh0
    return dx, grads
