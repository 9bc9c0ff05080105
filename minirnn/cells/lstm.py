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

State: ``(h0, c0)``, each (batch, hidden), zeros when omitted. The final state is
``cache["state"] == (h_T, c_T)``, ready to be passed as the next call's ``state``.

Code names: ``xw`` is ``x_t W`` for every t (computed before the loop; ``b`` is
added where the loop reads it, which saves a pass over the (T, B, 4H) array),
``ifog`` holds the activated gates ``i, f, o, g``, ``tanh_c`` is ``tanh(c_t)``,
``da`` is dL/da_t, ``dh``/``dc`` are dL/dh_t and dL/dc_t.
"""
import numpy as np
from numba import njit

from ..functional.activations import sigmoid, tanh
from ..initializers import gate_blocks, glorot_uniform, orthogonal
from ._dropout import lstm_kernel_masks, mask_at, recurrent_masks
from ._lstm_gates import gate_gradients
from ._projection import batch_major, input_gradients, input_projection
from ._checks import (check_lstm_state, check_matrix, check_options, check_params,
                      check_sequence, check_upstream)

INIT_OPTIONS = ("forget_bias",)
FORWARD_OPTIONS = ("recurrent_dropout", "dropout_where", "dropout_per", "dropout_shared")
DROPOUT_PLACEMENTS = ("update", "hidden", "cell")
GRADCHECK_CASES = (
    {},
    {"recurrent_dropout": 0.3, "dropout_where": "update", "dropout_per": "step"},
    {"recurrent_dropout": 0.3, "dropout_where": "hidden", "dropout_per": "sequence"},
    {"recurrent_dropout": 0.3, "dropout_where": "cell", "dropout_per": "sequence",
     "dropout_shared": True},
)
STATE_SIZE = 2          # the state is (h, c)
_ONE = np.float32(1.0)


def param_shapes(input_size, hidden_size):
    H4 = 4 * hidden_size
    return {"W": (input_size, H4), "U": (hidden_size, H4), "b": (H4,)}


def init(input_size, hidden_size, *, rng, dtype=np.float32, forget_bias=1.0):
    """Glorot-uniform W, orthogonal U (per gate), b = 0 except ``forget_bias`` in f."""
    H = hidden_size
    W = gate_blocks(lambda: glorot_uniform(rng, input_size, H, dtype), 4)
    U = gate_blocks(lambda: orthogonal(rng, H, dtype), 4)
    b = np.zeros(4 * H, dtype=dtype)
    b[H:2 * H] = forget_bias
    return {"W": W, "U": U, "b": b}


@njit(cache=True, nogil=True, error_model="numpy")
def step_forward(xw_t, b, h_prev, c_prev, U, h, c, ifog, tanh_c, m_h=None, m_g=None,
                 m_c=None):
    """One timestep. xw_t: (B, 4H) = x_t W; b: (4H,); h_prev, c_prev: (B, H); U: (H, 4H).

    Writes the step's results into the buffers passed in (slices of the loop's
    (T, ...) arrays, so nothing is allocated or copied per step):
    h, c, tanh_c: (B, H) = h_t, c_t, tanh(c_t); ifog: (B, 4H) activated gates
    (g before any dropout mask). m_h, m_g, m_c: (B, H) dropout masks on h_{t-1}
    where it meets U, on g, on c_t; None where there is none (see the module notes).
    Readable twin: ``reference/lstm.py``, ``step_forward``.
    """
    B, H = h_prev.shape
    if m_h is None:
        np.dot(h_prev, U, ifog)         # h_{t-1} U, written where the gates go
    else:
        np.dot(h_prev * m_h, U, ifog)   # (h_{t-1} * m_h) U
    # Loops over contiguous runs of units, so the compiler can use SIMD: first the
    # gates a = x_t W + b + h_{t-1} U through sigmoid (i, f, o) or tanh (g), then
    # the cell and the output. The g loop runs over range(H) with the offset in
    # the index: a loop over range(3H, 4H) is not vectorized (its index cannot be
    # proven non-negative, so every access keeps its negative-index check) and
    # took 19 us per step instead of 3.
    for n in range(B):
        for j in range(3 * H):      # (x_t W + b) + h_{t-1} U: the order the sums had
            ifog[n, j] = sigmoid(xw_t[n, j] + b[j] + ifog[n, j])   # when xw held the bias
        for j in range(H):
            ifog[n, 3 * H + j] = tanh(xw_t[n, 3 * H + j] + b[3 * H + j] + ifog[n, 3 * H + j])
        for j in range(H):
            i, f, o, g = ifog[n, j], ifog[n, H + j], ifog[n, 2 * H + j], ifog[n, 3 * H + j]
            if m_g is not None:
                g = g * m_g[n, j]                           # g * m_g enters the cell
            c[n, j] = f * c_prev[n, j] + i * g
            if m_c is not None:
                c[n, j] = m_c[n, j] * c[n, j]               # the carried c_t is masked
            tanh_c[n, j] = tanh(c[n, j])
            h[n, j] = o * tanh_c[n, j]


@njit(cache=True, nogil=True, error_model="numpy")
def step_backward(dh_out, dh, dc, c_prev, ifog, tanh_c, UT, da, dc_prev, m_h=None, m_g=None,
                  m_c=None):
    """One timestep backwards.

    dh_out: (B, H) dL/dh_t from the output at t; dh, dc: (B, H) the gradients
    carried from step t+1, dL/dh_t through U and dL/dc_t; UT: (4H, H) = U^T.
    Writes da: (B, 4H) = dL/da_t and dc_prev: (B, H) = dL/dc_{t-1} = dL/dc_t * f,
    and turns dh into dL/dh_{t-1} = da U^T (dc is used as scratch on the way).
    m_h, m_g, m_c: the forward step's dropout masks (or None); each multiplies
    the local derivative where it multiplied the forward value.
    Readable twin: ``reference/lstm.py``, ``step_backward``.
    """
    B, H = dh.shape
    # Short loops, each over few arrays: a loop that touches many is not
    # vectorized (the compiler cannot rule out that they overlap, and gives up
    # checking beyond a few pairs). dh <- dL/dh_t, then dc <- dL/dc_t:
    for n in range(B):
        for j in range(H):
            dh[n, j] = dh_out[n, j] + dh[n, j]
        # c_t reaches the loss through h_t = o * tanh(c_t) and through c_{t+1}
        for j in range(H):
            tc = tanh_c[n, j]
            dc[n, j] = dc[n, j] + dh[n, j] * ifog[n, 2 * H + j] * (_ONE - tc * tc)
        if m_c is not None:     # c_t = m_c * u with u = f c_{t-1} + i g: du = dc_t * m_c
            for j in range(H):
                dc[n, j] = dc[n, j] * m_c[n, j]
    # the gates' local derivatives, shared with the normalized LSTMs
    gate_gradients(dc, dh, c_prev, ifog, tanh_c, da, dc_prev, m_g)
    np.dot(da, UT, dh)
    if m_h is not None:     # forward used h_{t-1} * m_h
        dh *= m_h


@njit(cache=True, nogil=True)
def forward_loop(xw, b, h0, c0, U, M_h=None, M_g=None, M_c=None):
    """xw: (T, B, 4H) = x_t W time-major; b: (4H,); h0, c0: (B, H); M_h, M_g, M_c:
    dropout masks (T or 1, B, H), or None.
    Returns hs, cs: (T+1, B, H) with the initial state at index 0; ifog: (T, B, 4H);
    tanh_c: (T, B, H)."""
    T, B, H = xw.shape[0], h0.shape[0], h0.shape[1]
    hs = np.empty((T + 1, B, H), dtype=xw.dtype)
    cs = np.empty((T + 1, B, H), dtype=xw.dtype)
    ifog = np.empty(xw.shape, dtype=xw.dtype)
    tanh_c = np.empty((T, B, H), dtype=xw.dtype)
    hs[0] = h0
    cs[0] = c0
    for t in range(T):
        step_forward(xw[t], b, hs[t], cs[t], U, hs[t + 1], cs[t + 1], ifog[t], tanh_c[t],
                     mask_at(M_h, t), mask_at(M_g, t), mask_at(M_c, t))
    return hs, cs, ifog, tanh_c


@njit(cache=True, nogil=True)
def backward_loop(dhs, dh_T, dc_T, cs, ifog, tanh_c, UT, M_h=None, M_g=None, M_c=None):
    """dhs: (T, B, H) time-major upstream gradient; dh_T, dc_T: (B, H) gradients of
    the final state (copied: the loop carries its own); M_*: the forward's masks.
    Returns das: (T, B, 4H) and the gradients of the initial state dh0, dc0: (B, H)."""
    das = np.empty(ifog.shape, dtype=dhs.dtype)
    dh, dc = dh_T.copy(), dc_T.copy()
    dc_prev = np.empty_like(dc)     # two buffers in turn: dL/dc_t in, dL/dc_{t-1} out
    for t in range(dhs.shape[0] - 1, -1, -1):
        step_backward(dhs[t], dh, dc, cs[t], ifog[t], tanh_c[t], UT, das[t], dc_prev,
                      mask_at(M_h, t), mask_at(M_g, t), mask_at(M_c, t))
        dc, dc_prev = dc_prev, dc
    return das, dh, dc


def _sizes(params):
    W, U = check_matrix(params, "W"), check_matrix(params, "U")
    return W.shape[0], U.shape[0]


def forward(params, x, state=None, *, training=True, rng=None, recurrent_dropout=0.0,
            dropout_where="update", dropout_per="sequence", dropout_shared=False, **options):
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache.

    Recurrent dropout (off by default): ``recurrent_dropout`` is the rate p,
    ``dropout_where`` one of "update" (g), "hidden" (h_{t-1} before U), "cell"
    (c_t); ``dropout_per`` "sequence" or "step"; ``dropout_shared`` one mask for
    the whole batch. Masks are drawn from ``rng`` when ``training`` (an error if it
    is None) and kept in ``cache["masks"]``; ``training=False`` drops nothing.
    """
    check_options("lstm.forward", options, FORWARD_OPTIONS)
    I, H = _sizes(params)
    dtype = check_params(params, param_shapes(I, H))
    check_sequence(x, I, dtype)
    B, T = x.shape[0], x.shape[1]
    masks = recurrent_masks("lstm", DROPOUT_PLACEMENTS, rate=recurrent_dropout, where=dropout_where,
                            per=dropout_per, shared=dropout_shared, training=training, rng=rng,
                            time=T, batch=B, hidden=H, dtype=dtype)
    h0, c0 = check_lstm_state("state", state, B, H, dtype)
    U = np.ascontiguousarray(params["U"])
    xw = input_projection(x, params["W"])           # b is added inside the loop
    hs, cs, ifog, tanh_c = forward_loop(xw, params["b"], h0, c0, U,
                                        *lstm_kernel_masks(masks, B))
    cache = {"x": x, "hs": hs, "cs": cs, "ifog": ifog, "tanh_c": tanh_c, "masks": masks,
             "has_state": state is not None, "state": (hs[-1], cs[-1])}
    return batch_major(hs), cache




def backward(params, dhs, cache, dstate=None, *, input_grad=True):
    """dhs: (batch, time, hidden) = dL/dhs -> (dx: (batch, time, input), grads).

    ``dstate``, optional, is the gradient of the final state ``(dh_T, dc_T)``
    when the caller used ``cache["state"]`` (e.g. carried it into the next
    chunk of a long sequence). ``grads`` has the keys of ``params`` and, when a
    state was passed to ``forward``, ``"h0"`` and ``"c0"``. ``input_grad=False``
    skips dx (returned as None) when the input is data.
    """
    x, hs = cache["x"], cache["hs"]
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    dhs = check_upstream(dhs, (B, T, H), x.dtype)
    dh_T, dc_T = check_lstm_state("dstate", dstate, B, H, x.dtype, ("dh_T", "dc_T"))
    UT = np.ascontiguousarray(params["U"].T)
    M_h, M_g, M_c = lstm_kernel_masks(cache["masks"], B)
    das, dh0, dc0 = backward_loop(np.ascontiguousarray(dhs.transpose(1, 0, 2)), dh_T, dc_T,
                                  cache["cs"], cache["ifog"], cache["tanh_c"], UT,
                                  M_h, M_g, M_c)
    # Weight gradients do not depend on the loop order: one product each. U met
    # h_{t-1} * m_h under "hidden" dropout.
    h_prev = hs[:-1] if M_h is None else hs[:-1] * M_h
    dx, dW, db = input_gradients(x, das, params["W"], input_grad)
    grads = {"W": dW, "U": h_prev.reshape(T * B, H).T @ das.reshape(T * B, 4 * H), "b": db}
    if cache["has_state"]:
        grads["h0"], grads["c0"] = dh0, dc0
    return dx, grads
