"""Long short-term memory (Hochreiter & Schmidhuber 1997, with a forget gate).

Readable twin: ``minirnn/reference/lstm.py``, the same equations in plain NumPy, one
timestep per Python call; ``tests/test_reference.py`` holds this kernel equal to it.

Equations, for one timestep (the tutorial ``tutorials/02_lstm.md`` derives them)::

    a_t = x_t W + h_{t-1} U + b                      pre-activations, (B, 4H)
    i = sigma(a_i)   f = sigma(a_f)   o = sigma(a_o)   g = tanh(a_g)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Recurrent dropout (``tutorials/08_recurrent_dropout.md``; options in
``cells/_dropout.py``) multiplies a mask m into one of three places::

    dropout_where="hidden"   a_t = x_t W + (h_{t-1} * m_h) U + b     Gal & Ghahramani
    dropout_where="update"   c_t = f * c_{t-1} + i * (g * m_g)       Semeniuta et al.
    dropout_where="cell"     c_t = m_c * (f * c_{t-1} + i * g)       Moon et al.

and, backwards, the same mask multiplies the local derivative at that place:
``dh_{t-1} = (da U^T) * m_h``; ``dg = dc_t * i * m_g`` (and ``di = dc_t * g * m_g``);
``du = dc_t * m_c`` for u = f c_{t-1} + i g, then di, df, dg, dc_{t-1} from du.

Parameters (gate order i, f, o, g along the last axis of each):

    W: (input, 4*hidden)   U: (hidden, 4*hidden)   b: (4*hidden,)

``init(..., forget_bias=1.0)`` writes the forget bias into the f block of ``b``
(TensorFlow's ``forget_bias``, and the initialisation of the recurrent batch
norm paper); ``forward`` adds no hidden constant, so ``b`` is the whole bias.
``init(..., chrono=T_max)`` instead draws the chrono initialization of Tallec and
Ollivier (2018) for sequences of about ``T_max`` steps: ``b_f = log(u)`` with ``u``
uniform in [1, T_max - 1] and ``b_i = -b_f``, so that at the start unit j forgets
with a time constant near ``u_j`` steps, spread from one step to ``T_max``.

State: ``(h0, c0)``, each (batch, hidden), zeros when omitted. The final state is
``cache["state"] == (h_T, c_T)``, ready to be passed as the next call's ``state``.

Code names: ``xw`` is ``x_t W`` for every t (computed before the loop; ``b`` is
added where the loop reads it, which saves a pass over the (T, B, 4H) array),
``hu`` is ``h_{t-1} U``, ``ifog`` holds the activated gates ``i, f, o, g``,
``tanh_c`` is ``tanh(c_t)``, ``da`` is dL/da_t, ``dh``/``dc`` are dL/dh_t and dL/dc_t.

The elementwise equations, ``gates_and_cell``, ``output_gate`` and their
backward ``gate_gradients``, are written once, here, and called by the
normalized LSTMs (``bnlstm``, ``lnlstm``) too. ``step_forward`` and
``step_backward`` follow the step convention of ``docs/design.md``: inputs,
parameters, the buffers they write, scratch, masks.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import DTypeLike

from ..functional.activations import sigmoid, tanh
from ..initializers import gate_blocks, glorot_uniform, orthogonal
from ..types import Cache, Grads, Params, Shapes, State
from ._checks import check_gradients, check_inputs, check_lstm_state
from ._dropout import apply_mask, lstm_kernel_masks, mask_at, recurrent_masks
from ._projection import batch_major, input_gradients, input_projection

INIT_OPTIONS = ("forget_bias", "chrono")
FORWARD_OPTIONS = ("recurrent_dropout", "dropout_where", "dropout_per", "dropout_shared")
DROPOUT_PLACEMENTS = ("update", "hidden", "cell")
GRADCHECK_CASES = (
    {},
    {"recurrent_dropout": 0.3, "dropout_where": "update", "dropout_per": "step"},
    {"recurrent_dropout": 0.3, "dropout_where": "hidden", "dropout_per": "sequence"},
    {
        "recurrent_dropout": 0.3,
        "dropout_where": "cell",
        "dropout_per": "sequence",
        "dropout_shared": True,
    },
)
STATE_SIZE = 2  # the state is (h, c)
_ONE = np.float32(1.0)


def param_shapes(input_size: int, hidden_size: int) -> Shapes:
    H4 = 4 * hidden_size
    return {"W": (input_size, H4), "U": (hidden_size, H4), "b": (H4,)}


def init(
    input_size: int,
    hidden_size: int,
    *,
    rng: np.random.Generator,
    dtype: DTypeLike = np.float32,
    forget_bias: float = 1.0,
    chrono: float | None = None,
) -> Params:
    """Glorot-uniform W, orthogonal U (per gate), b = 0 except ``forget_bias`` in f;
    with ``chrono=T_max``, the chrono biases in f and i instead (module docstring)."""
    H = hidden_size
    W = gate_blocks(lambda: glorot_uniform(rng, input_size, H, dtype), 4)
    U = gate_blocks(lambda: orthogonal(rng, H, dtype), 4)
    b = np.zeros(4 * H, dtype=dtype)
    if chrono is None:
        b[H : 2 * H] = forget_bias
    else:
        b[H : 2 * H] = chrono_forget_bias(chrono, H, rng)
        b[:H] = -b[H : 2 * H]
    return {"W": W, "U": U, "b": b}


def chrono_forget_bias(T_max: float, hidden_size: int, rng: np.random.Generator) -> np.ndarray:
    """(hidden,) forget-gate biases log(u), u ~ uniform[1, T_max - 1] (Tallec and
    Ollivier 2018): a unit with f = sigmoid(log u) = u / (1 + u) keeps its cell
    for about 1 + u steps."""
    if isinstance(T_max, bool) or not isinstance(T_max, (int, float)) or not T_max > 2:
        raise ValueError(
            f"chrono: expected the longest time scale, a number above 2, got {T_max!r}"
        )
    return np.log(rng.uniform(1.0, T_max - 1.0, size=hidden_size))


# ---------------------------------------------------------------- the gate equations
# Shared by the LSTM family: bnlstm and lnlstm differ from the plain LSTM only in
# what they do to the pre-activations and to the cell before its tanh.


@njit(cache=True, nogil=True, error_model="numpy")
def preactivation(a, b, hu, n, j):
    """Unit j of example n of the pre-activations: a[n, j], or the sum
    a[n, j] + b[j] + hu[n, j] when b and hu are given (None: compiled away)."""
    if b is None:
        return a[n, j]
    return a[n, j] + b[j] + hu[n, j]


@njit(cache=True, nogil=True, error_model="numpy")
def gates_and_cell(a, c_prev, ifog, c, m_g=None, b=None, hu=None):
    """The gates and the cell update of one step::

        i, f, o = sigma(a_i), sigma(a_f), sigma(a_o)    g = tanh(a_g)
        c = f * c_prev + i * g                          (g * m_g under "update" dropout)

    a: (B, 4H) pre-activations; or, with b: (4H,) and hu: (B, 4H), a + b + hu,
    summed in the pass that activates them (the LSTM's x_t W + b + h_{t-1} U).
    Writes ifog: (B, 4H), the gates (g before the mask), and c: (B, H).
    m_g: (B, H) dropout mask on g, or None."""
    B, H = c_prev.shape
    # Loops over contiguous runs of units, so the compiler can use SIMD. The g loop
    # runs over range(H) with the offset in the index: a loop over range(3H, 4H) is
    # not vectorized (its index cannot be proven non-negative, so every access keeps
    # its negative-index check) and took 19 us per step instead of 3.
    for n in range(B):
        for j in range(3 * H):
            ifog[n, j] = sigmoid(preactivation(a, b, hu, n, j))
        for j in range(H):
            ifog[n, 3 * H + j] = tanh(preactivation(a, b, hu, n, 3 * H + j))
        for j in range(H):
            i, f, g = ifog[n, j], ifog[n, H + j], ifog[n, 3 * H + j]
            if m_g is not None:
                g = g * m_g[n, j]  # g * m_g enters the cell
            c[n, j] = f * c_prev[n, j] + i * g


@njit(cache=True, nogil=True, error_model="numpy")
def output_gate(c, ifog, tanh_c, h):
    """h = o * tanh(c), for c: (B, H) the cell as the output sees it. Writes
    tanh_c and h: (B, H)."""
    B, H = c.shape
    for n in range(B):
        for j in range(H):
            tanh_c[n, j] = tanh(c[n, j])
        for j in range(H):
            h[n, j] = ifog[n, 2 * H + j] * tanh_c[n, j]


@njit(cache=True, nogil=True, error_model="numpy")
def state_gradients(dh_out, dh, dc, ifog, tanh_c):
    """What reaches h_t and c_t: dh <- dh_out + dh, the gradient from the output at
    t plus the one carried from step t+1; then dc <- dc + dh * o * (1 - tanh_c^2),
    c_t reaching the loss through h_t = o * tanh(c_t) and through step t+1.
    All (B, H); dh and dc are updated in place."""
    B, H = dh.shape
    # Two short loops, each over few arrays (see gate_gradients).
    for n in range(B):
        for j in range(H):
            dh[n, j] = dh_out[n, j] + dh[n, j]
        for j in range(H):
            tc = tanh_c[n, j]
            dc[n, j] = dc[n, j] + dh[n, j] * ifog[n, 2 * H + j] * (_ONE - tc * tc)


@njit(cache=True, nogil=True, error_model="numpy")
def gate_gradients(dc, dh, c_prev, ifog, tanh_c, da, dc_prev, m_g=None):
    """Backwards through ``gates_and_cell`` and the output gate, given dc = dL/dc
    (the updated cell, before anything done to it after ``gates_and_cell``) and
    dh = dL/dh_t::

        da_i = dc g i (1 - i)    da_f = dc c_prev f (1 - f)    dc_prev = dc f
        da_o = dh tanh_c o (1 - o)    da_g = dc i (1 - g^2)

    (g * m_g in place of g under "update" dropout). Writes da: (B, 4H), dc_prev: (B, H)."""
    B, H = dc.shape
    # Three short loops instead of one: a loop over many arrays is not vectorized
    # (the compiler cannot rule out that they overlap); each of these reads few.
    for n in range(B):
        for j in range(H):  # o = sigma(a_o)
            o = ifog[n, 2 * H + j]
            da[n, 2 * H + j] = dh[n, j] * tanh_c[n, j] * o * (_ONE - o)
        for j in range(H):  # i = sigma(a_i), g = tanh(a_g)
            i, g = ifog[n, j], ifog[n, 3 * H + j]
            if m_g is None:
                da[n, j] = dc[n, j] * g * i * (_ONE - i)
                da[n, 3 * H + j] = dc[n, j] * i * (_ONE - g * g)
            else:  # g * m_g entered the cell
                da[n, j] = dc[n, j] * g * m_g[n, j] * i * (_ONE - i)
                da[n, 3 * H + j] = dc[n, j] * i * m_g[n, j] * (_ONE - g * g)
        for j in range(H):  # f = sigma(a_f)
            f = ifog[n, H + j]
            da[n, H + j] = dc[n, j] * c_prev[n, j] * f * (_ONE - f)
            dc_prev[n, j] = dc[n, j] * f


# ---------------------------------------------------------------- one timestep


@njit(cache=True, nogil=True, error_model="numpy")
def step_forward(
    xw_t, h_prev, c_prev, U, b, h, c, ifog, tanh_c, hu, hm, m_h=None, m_g=None, m_c=None
):
    """One timestep. xw_t: (B, 4H) = x_t W; h_prev, c_prev: (B, H); U: (H, 4H); b: (4H,).
    Writes h, c, tanh_c: (B, H) = h_t, c_t, tanh(c_t) and ifog: (B, 4H), the gates.
    Scratch: hu: (B, 4H), hm: (B, H). m_h, m_g, m_c: (B, H) dropout masks on h_{t-1}
    where it meets U, on g, on c_t; None where there is none.
    Readable twin: ``reference/lstm.py``, ``step_forward``.
    """
    np.dot(apply_mask(h_prev, m_h, hm), U, hu)  # h_{t-1} U, or (h_{t-1} * m_h) U
    gates_and_cell(xw_t, c_prev, ifog, c, m_g, b, hu)  # a_t = x_t W + b + h_{t-1} U
    if m_c is not None:
        c *= m_c  # the carried c_t is masked
    output_gate(c, ifog, tanh_c, h)  # h_t = o * tanh(c_t)


@njit(cache=True, nogil=True, error_model="numpy")
def step_backward(
    dh_out, dh, dc, c_prev, ifog, tanh_c, UT, da, dh_prev, dc_prev, m_h=None, m_g=None, m_c=None
):
    """One timestep backwards. dh_out: (B, H) dL/dh_t from the output at t; dh, dc:
    (B, H) dL/dh_t through U and dL/dc_t, carried from step t+1 (both are overwritten);
    UT: (4H, H) = U^T. Writes da: (B, 4H) = dL/da_t, and dh_prev, dc_prev: (B, H) =
    dL/dh_{t-1}, dL/dc_{t-1}. m_h, m_g, m_c: the forward's masks (or None); each
    multiplies the local derivative where it multiplied the forward value.
    Readable twin: ``reference/lstm.py``, ``step_backward``.
    """
    state_gradients(dh_out, dh, dc, ifog, tanh_c)  # dh <- dL/dh_t, dc <- dL/dc_t
    if m_c is not None:
        dc *= m_c  # c_t = m_c * u with u = f c_{t-1} + i g: du = dc_t * m_c
    gate_gradients(dc, dh, c_prev, ifog, tanh_c, da, dc_prev, m_g)
    np.dot(da, UT, dh_prev)  # dh_{t-1} = da U^T
    if m_h is not None:
        dh_prev *= m_h  # forward used h_{t-1} * m_h


# ---------------------------------------------------------------- the loops over time


@njit(cache=True, nogil=True)
def forward_loop(xw, h0, c0, U, b, M_h=None, M_g=None, M_c=None):
    """xw: (T, B, 4H) = x_t W time-major; h0, c0: (B, H); U: (H, 4H); b: (4H,);
    M_h, M_g, M_c: dropout masks (T or 1, B, H), or None.
    Returns hs, cs: (T+1, B, H) with the initial state at index 0; ifog: (T, B, 4H);
    tanh_c: (T, B, H)."""
    T, B, H = xw.shape[0], h0.shape[0], h0.shape[1]
    hs = np.empty((T + 1, B, H), dtype=xw.dtype)
    cs = np.empty((T + 1, B, H), dtype=xw.dtype)
    ifog = np.empty(xw.shape, dtype=xw.dtype)
    tanh_c = np.empty((T, B, H), dtype=xw.dtype)
    hu, hm = np.empty((B, 4 * H), dtype=xw.dtype), np.empty((B, H), dtype=xw.dtype)
    hs[0] = h0
    cs[0] = c0
    for t in range(T):
        step_forward(
            xw[t],
            hs[t],
            cs[t],
            U,
            b,
            hs[t + 1],
            cs[t + 1],
            ifog[t],
            tanh_c[t],
            hu,
            hm,
            mask_at(M_h, t),
            mask_at(M_g, t),
            mask_at(M_c, t),
        )
    return hs, cs, ifog, tanh_c


@njit(cache=True, nogil=True)
def backward_loop(dhs, dh_T, dc_T, cs, ifog, tanh_c, UT, M_h=None, M_g=None, M_c=None):
    """dhs: (T, B, H) time-major upstream gradient; dh_T, dc_T: (B, H) gradients of
    the final state; M_*: the forward's masks.
    Returns das: (T, B, 4H) and the gradients of the initial state dh0, dc0: (B, H)."""
    das = np.empty(ifog.shape, dtype=dhs.dtype)
    # two buffers for each carried gradient, in turn: dL/d(state_t) in, dL/d(state_{t-1}) out
    dh, dc = dh_T.copy(), dc_T.copy()
    dh_prev, dc_prev = np.empty_like(dh), np.empty_like(dc)
    for t in range(dhs.shape[0] - 1, -1, -1):
        step_backward(
            dhs[t],
            dh,
            dc,
            cs[t],
            ifog[t],
            tanh_c[t],
            UT,
            das[t],
            dh_prev,
            dc_prev,
            mask_at(M_h, t),
            mask_at(M_g, t),
            mask_at(M_c, t),
        )
        dh, dh_prev = dh_prev, dh
        dc, dc_prev = dc_prev, dc
    return das, dh, dc


# ---------------------------------------------------------------- the sequence


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    training: bool = True,
    rng: np.random.Generator | None = None,
    recurrent_dropout: float = 0.0,
    dropout_where: str = "update",
    dropout_per: str = "sequence",
    dropout_shared: bool = False,
    **options,
) -> tuple[np.ndarray, Cache]:
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache.

    Recurrent dropout (off by default): ``recurrent_dropout`` is the rate p,
    ``dropout_where`` one of "update" (g), "hidden" (h_{t-1} before U), "cell"
    (c_t); ``dropout_per`` "sequence" or "step"; ``dropout_shared`` one mask for
    the whole batch. Masks are drawn from ``rng`` when ``training`` (an error if it
    is None) and kept in ``cache["masks"]``; ``training=False`` drops nothing.
    """
    _, H, dtype = check_inputs("lstm.forward", params, x, options, FORWARD_OPTIONS, param_shapes)
    B, T = x.shape[0], x.shape[1]
    masks = recurrent_masks(
        "lstm",
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
    xw = input_projection(x, params["W"])  # b is added inside the loop
    hs, cs, ifog, tanh_c = forward_loop(
        xw, h0, c0, np.ascontiguousarray(params["U"]), params["b"], *lstm_kernel_masks(masks, B)
    )
    cache = {
        "x": x,
        "hs": hs,
        "cs": cs,
        "ifog": ifog,
        "tanh_c": tanh_c,
        "masks": masks,
        "has_state": state is not None,
        "state": (hs[-1], cs[-1]),
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
    """dhs: (batch, time, hidden) = dL/dhs -> (dx: (batch, time, input), grads).

    ``dstate``, optional, is the gradient of the final state ``(dh_T, dc_T)``
    when the caller used ``cache["state"]`` (e.g. carried it into the next
    chunk of a long sequence). ``grads`` has the keys of ``params`` and, when a
    state was passed to ``forward``, ``"h0"`` and ``"c0"``. ``input_grad=False``
    skips dx (returned as None) when the input is data.
    """
    x, hs = cache["x"], cache["hs"]
    dhs, (dh_T, dc_T) = check_gradients(dhs, dstate, hs, x.dtype, STATE_SIZE)
    T, B, H = dhs.shape
    M_h, M_g, M_c = lstm_kernel_masks(cache["masks"], B)
    das, dh0, dc0 = backward_loop(
        dhs,
        dh_T,
        dc_T,
        cache["cs"],
        cache["ifog"],
        cache["tanh_c"],
        np.ascontiguousarray(params["U"].T),
        M_h,
        M_g,
        M_c,
    )
    # The weight gradients do not depend on the loop order: one product each.
    h_prev = hs[:-1] if M_h is None else hs[:-1] * M_h  # what U met
    dx, dW, db = input_gradients(x, das, params["W"], input_grad)
    grads = {"W": dW, "U": h_prev.reshape(T * B, H).T @ das.reshape(T * B, 4 * H), "b": db}
    if cache["has_state"]:
        grads["h0"], grads["c0"] = dh0, dc0
    return dx, grads
