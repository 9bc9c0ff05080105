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

``forward_sparse`` is the inference kernel that skips the masked-off rows and
columns of W and U for real (see its docstring); ``macs`` counts the multiply-adds
the masks of a forward call needed.
"""
import numpy as np
from numba import njit

from ..functional.activations import sigmoid, tanh
from ..initializers import gate_blocks, glorot_uniform, orthogonal
from . import _vc_mask as vc
from ._vc_mask import (add_mask_gradient, init_scheduler, scheduler, scheduler_backward,
                       unit_mask)
from ._projection import batch_major
from ._checks import (check_lstm_state, check_matrix, check_options, check_params,
                      check_sequence, check_upstream)

INIT_OPTIONS = ("forget_bias", "scheduler_bias")
FORWARD_OPTIONS = vc.FORWARD_OPTIONS
GRADCHECK_CASES = vc.GRADCHECK_CASES
STATE_SIZE = 2          # the state is (h, c)
GATES = 4
_ONE = np.float32(1.0)


def param_shapes(input_size, hidden_size, **options):
    """Shapes by name; no option changes them (options are accepted for callers
    that pass a case's options along)."""
    I, H = input_size, hidden_size
    return {"W": (I, 4 * H), "U": (H, 4 * H), "b": (4 * H,), "w_x": (I,), "w_h": (H,),
            "b_m": (1,)}


def init(input_size, hidden_size, *, rng, dtype=np.float32, forget_bias=1.0,
         scheduler_bias=0.0):
    """As ``lstm.init`` (Glorot W, orthogonal U per gate, ``forget_bias`` in the f block
    of b), and the scheduler: Glorot-uniform ``[w_x; w_h]``, ``b_m = scheduler_bias``."""
    H = hidden_size
    params = {"W": gate_blocks(lambda: glorot_uniform(rng, input_size, H, dtype), 4),
              "U": gate_blocks(lambda: orthogonal(rng, H, dtype), 4),
              "b": np.zeros(4 * H, dtype=dtype)}
    params["b"][H:2 * H] = forget_bias
    params.update(init_scheduler(input_size, hidden_size, rng, dtype, scheduler_bias))
    return params


@njit(cache=True, nogil=True, error_model="numpy")
def step_forward(x_t, xm_t, h_prev, c_prev, W, U, b, w_h, mask_h, mask_x, eps, soft):
    """One timestep. x_t: (B, I); xm_t: (B,) = x_t w_x + b_m; h_prev, c_prev: (B, H);
    W: (I, 4H); U: (H, 4H); b: (4H,); w_h: (H,); mask_h, mask_x, eps, soft as in
    ``vcrnn.step_forward``. Returns h, c: (B, H), m: (B,), e: (B, H), ex: (B, I),
    ifog: (B, 4H) activated gates, c_tilde, tanh_c: (B, H) (tanh of c~).
    Readable twin: ``reference/vclstm.py``, ``step_forward``."""
    B, H = h_prev.shape
    m = scheduler(xm_t, h_prev, w_h)
    e = unit_mask(m, mask_h[0], mask_h[1], eps, soft)
    ex = unit_mask(m, mask_x[0], mask_x[1], eps, soft)
    a = (ex * x_t) @ W + (e * h_prev) @ U
    ifog = np.empty_like(a)
    c_tilde, tanh_c = np.empty_like(c_prev), np.empty_like(c_prev)
    h, c = np.empty_like(h_prev), np.empty_like(c_prev)
    for n in range(B):
        for j in range(3 * H):
            ifog[n, j] = sigmoid(a[n, j] + b[j])
        for j in range(H):      # range(H) + offset, not range(3H, 4H): see lstm.step_forward
            ifog[n, 3 * H + j] = tanh(a[n, 3 * H + j] + b[3 * H + j])
        for j in range(H):
            i, f, o, g = ifog[n, j], ifog[n, H + j], ifog[n, 2 * H + j], ifog[n, 3 * H + j]
            e_j = e[n, j]
            c_tilde[n, j] = f * (e_j * c_prev[n, j]) + i * g
            tanh_c[n, j] = tanh(c_tilde[n, j])
            c[n, j] = e_j * c_tilde[n, j] + (_ONE - e_j) * c_prev[n, j]
            h[n, j] = e_j * (o * tanh_c[n, j]) + (_ONE - e_j) * h_prev[n, j]
    return h, c, m, e, ex, ifog, c_tilde, tanh_c


@njit(cache=True, nogil=True, error_model="numpy")
def step_backward(dh, dc, dm_pen, x_t, h_prev, c_prev, m, e, ifog, c_tilde, tanh_c,
                  WT, UT, w_h, mask_h, mask_x, eps, soft):
    """One timestep backwards. dh: (B, H) total dL/dh_t; dc: (B, H) dL/dc_t from step
    t+1; dm_pen: (B,) dpenalty/dm_t; WT: (4H, I), UT: (4H, H) transposed.
    Returns da: (B, 4H), dxbar: (B, I) (soft; (0, 0) hard), dz: (B,),
    dh_prev, dc_prev: (B, H).
    Readable twin: ``reference/vclstm.py``, ``step_backward``."""
    B, H = dh.shape
    da = np.empty_like(ifog)
    dcbar = np.empty_like(dh)
    dc_prev = np.empty_like(dh)
    for n in range(B):
        for j in range(H):
            i, f = ifog[n, j], ifog[n, H + j]
            o, g = ifog[n, 2 * H + j], ifog[n, 3 * H + j]
            e_j, tc = e[n, j], tanh_c[n, j]
            dht = dh[n, j] * e_j                                  # dL/dh~
            dct = dc[n, j] * e_j + dht * o * (_ONE - tc * tc)     # dL/dc~
            da[n, j] = dct * g * i * (_ONE - i)
            da[n, H + j] = dct * (e_j * c_prev[n, j]) * f * (_ONE - f)
            da[n, 2 * H + j] = dht * tc * o * (_ONE - o)
            da[n, 3 * H + j] = dct * i * (_ONE - g * g)
            dcbar[n, j] = dct * f
            dc_prev[n, j] = dc[n, j] * (_ONE - e_j) + dcbar[n, j] * e_j
    dhbar = da @ UT
    dh_prev = np.empty_like(dh)
    for n in range(B):
        for j in range(H):
            dh_prev[n, j] = dh[n, j] * (_ONE - e[n, j]) + dhbar[n, j] * e[n, j]
    dm = dm_pen.copy()
    if soft:
        h_tilde = ifog[:, 2 * H:3 * H] * tanh_c
        de = (dh * (h_tilde - h_prev) + dc * (c_tilde - c_prev) + dhbar * h_prev
              + dcbar * c_prev)
        dxbar = da @ WT
        add_mask_gradient(dm, de, m, mask_h[0], mask_h[1], eps)
        add_mask_gradient(dm, dxbar * x_t, m, mask_x[0], mask_x[1], eps)
    else:
        dxbar = np.empty((0, 0), dtype=dh.dtype)
    dz = scheduler_backward(dm, m, w_h, dh_prev)
    return da, dxbar, dz, dh_prev, dc_prev


@njit(cache=True, nogil=True)
def forward_loop(x, xm, h0, c0, W, U, b, w_h, mask_h, mask_x, eps, soft):
    """x: (T, B, I) time-major; xm: (T, B). Returns hs, cs: (T+1, B, H) with the
    initial state at index 0, m: (T, B), e: (T, B, H), ex: (T, B, I),
    ifog: (T, B, 4H), c_tilde, tanh_c: (T, B, H)."""
    T, B, H = x.shape[0], h0.shape[0], h0.shape[1]
    hs = np.empty((T + 1, B, H), dtype=x.dtype)
    cs = np.empty((T + 1, B, H), dtype=x.dtype)
    m = np.empty((T, B), dtype=x.dtype)
    e = np.empty((T, B, H), dtype=x.dtype)
    ex = np.empty(x.shape, dtype=x.dtype)
    ifog = np.empty((T, B, 4 * H), dtype=x.dtype)
    c_tilde = np.empty((T, B, H), dtype=x.dtype)
    tanh_c = np.empty((T, B, H), dtype=x.dtype)
    hs[0] = h0
    cs[0] = c0
    for t in range(T):
        (hs[t + 1], cs[t + 1], m[t], e[t], ex[t], ifog[t], c_tilde[t],
         tanh_c[t]) = step_forward(x[t], xm[t], hs[t], cs[t], W, U, b, w_h, mask_h, mask_x,
                                   eps, soft)
    return hs, cs, m, e, ex, ifog, c_tilde, tanh_c


@njit(cache=True, nogil=True)
def backward_loop(dhs, dh_T, dc_T, dm_pen, x, hs, cs, m, e, ifog, c_tilde, tanh_c,
                  WT, UT, w_h, mask_h, mask_x, eps, soft):
    """dhs: (T, B, H) time-major; dh_T, dc_T: (B, H) gradients of the final state.
    Returns das: (T, B, 4H), dxbar: (T, B, I) (soft; (0, B, I) hard), dz: (T, B),
    dh0, dc0: (B, H)."""
    T, B, I = x.shape
    das = np.empty(ifog.shape, dtype=dhs.dtype)
    dxbars = np.empty((T if soft else 0, B, I), dtype=dhs.dtype)
    dzs = np.empty((T, B), dtype=dhs.dtype)
    dh_next, dc_next = dh_T, dc_T
    for t in range(T - 1, -1, -1):
        das[t], dxbar, dzs[t], dh_next, dc_next = step_backward(
            dhs[t] + dh_next, dc_next, dm_pen[t], x[t], hs[t], cs[t], m[t], e[t], ifog[t],
            c_tilde[t], tanh_c[t], WT, UT, w_h, mask_h, mask_x, eps, soft)
        if soft:
            dxbars[t] = dxbar
    return das, dxbars, dzs, dh_next, dc_next



def _prepare(where, params, x, state, options):
    """The checks and the loop's arguments shared by ``forward`` and ``forward_sparse``."""
    check_options(where, options, FORWARD_OPTIONS)
    opts = vc.check_options(where, **{**vc.DEFAULTS, **options})
    I, H = check_matrix(params, "W").shape[0], check_matrix(params, "U").shape[0]
    dtype = check_params(params, param_shapes(I, H))
    check_sequence(x, I, dtype)
    B = x.shape[0]
    h0, c0 = check_lstm_state("state", state, B, H, dtype)
    x_tm = np.ascontiguousarray(x.transpose(1, 0, 2))
    xm = vc.scheduler_input(x_tm, params["w_x"], params["b_m"])
    masks = (vc.mask_constants(opts["sharpness"], H, dtype),
             vc.mask_constants(opts["sharpness"], I, dtype), dtype.type(opts["eps"]))
    return opts, x_tm, xm, h0, c0, masks


def forward(params, x, state=None, *, training=True, rng=None, **options):
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache. ``state`` is
    ``(h0, c0)``. ``training`` and ``rng`` are accepted for the common contract."""
    opts, x_tm, xm, h0, c0, (mask_h, mask_x, eps) = _prepare("vclstm.forward", params, x,
                                                             state, options)
    hs, cs, m, e, ex, ifog, c_tilde, tanh_c = forward_loop(
        x_tm, xm, h0, c0, np.ascontiguousarray(params["W"]), np.ascontiguousarray(params["U"]),
        params["b"], np.ascontiguousarray(params["w_h"]), mask_h, mask_x, eps, opts["soft"])
    penalty, dm_pen = vc.penalty_and_gradient(m, opts["alpha"], opts["m_target"],
                                              opts["penalty"])
    cache = {"x": x, "x_tm": x_tm, "hs": hs, "cs": cs, "m": m, "e": e, "ex": ex,
             "ifog": ifog, "c_tilde": c_tilde, "tanh_c": tanh_c, "mask_h": mask_h,
             "mask_x": mask_x, "eps": eps, "options": opts, "dm_penalty": dm_pen,
             "penalty": penalty, "metrics": vc.metrics(m, e),
             "has_state": state is not None, "state": (hs[-1], cs[-1])}
    return batch_major(hs), cache


def backward(params, dhs, cache, dstate=None, *, input_grad=True):
    """dhs: (batch, time, hidden) -> (dx, grads), the gradient of ``L + cache["penalty"]``.
    ``dstate``, optional: ``(dh_T, dc_T)`` for a caller that used ``cache["state"]``.
    ``grads`` holds ``"h0"`` and ``"c0"`` too when a state was passed to ``forward``.
    ``input_grad=False`` skips dx (returned as None) when the input is data."""
    x_tm, hs, e = cache["x_tm"], cache["hs"], cache["e"]
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    dtype = x_tm.dtype
    dhs = check_upstream(dhs, (B, T, H), dtype)
    dh_T, dc_T = check_lstm_state("dstate", dstate, B, H, dtype, ("dh_T", "dc_T"))
    dh_T, dc_T = dh_T.copy(), dc_T.copy()
    soft = cache["options"]["soft"]
    das, dxbar, dz, dh0, dc0 = backward_loop(
        np.ascontiguousarray(dhs.transpose(1, 0, 2)), dh_T, dc_T, cache["dm_penalty"], x_tm,
        hs, cache["cs"], cache["m"], e, cache["ifog"], cache["c_tilde"], cache["tanh_c"],
        np.ascontiguousarray(params["W"].T), np.ascontiguousarray(params["U"].T),
        np.ascontiguousarray(params["w_h"]), cache["mask_h"], cache["mask_x"], cache["eps"],
        soft)
    dx, dW, db, dw_x, db_m = vc.input_side_gradients(
        x_tm, cache["ex"], das, dxbar if soft else None, dz, params["W"], params["w_x"],
        input_grad)
    h_prev = hs[:-1].reshape(T * B, H)
    hbar = (e * hs[:-1]).reshape(T * B, H)
    grads = {"W": dW, "U": hbar.T @ das.reshape(T * B, 4 * H), "b": db, "w_x": dw_x,
             "w_h": h_prev.T @ dz.reshape(T * B), "b_m": db_m}
    if cache["has_state"]:
        grads["h0"], grads["c0"] = dh0, dc0
    return dx, grads


def macs(cache):
    """Multiply-adds the forward's steps needed given their masks (``_vc_mask.count_macs``)."""
    return vc.count_macs(cache["e"], cache["ex"], GATES)


# ---------------------------------------------------------------- sparse inference

def unit_major(M, H):
    """Reorder the 4H gate columns ``[i_0..i_{H-1}, f_0.., o_0.., g_0..]`` of M as
    ``[i_0, f_0, o_0, g_0, i_1, f_1, ...]``: then the columns of units 0..K-1 are
    the first 4K, one contiguous slice."""
    lead = M.shape[:-1]
    return np.ascontiguousarray(M.reshape(*lead, 4, H).swapaxes(-1, -2).reshape(*lead, 4 * H))


@njit(cache=True, nogil=True, error_model="numpy")
def step_sparse(x_t, xm_t, h_prev, c_prev, Wu, Uu, bu, w_h, mask_h, mask_x, eps, soft):
    """One timestep computing only what the masks need. Wu, Uu, bu: W, U, b in the
    unit-major column order of ``unit_major``. With K (Kx) = 1 + the last unit whose
    hidden (input) mask is nonzero in *any* example of the batch, the products use
    rows 0..Kx-1 of W, rows 0..K-1 of U and their first 4K columns only; units K..H-1
    keep their state. Returns h, c: (B, H), m: (B,), and the multiply-adds done."""
    B, H = h_prev.shape
    m = scheduler(xm_t, h_prev, w_h)
    e = unit_mask(m, mask_h[0], mask_h[1], eps, soft)
    ex = unit_mask(m, mask_x[0], mask_x[1], eps, soft)
    K, Kx = 0, 0
    for n in range(B):           # masks are non-increasing in the unit index
        for j in range(H - 1, K - 1, -1):
            if e[n, j] != 0:
                K = j + 1
                break
        for k in range(ex.shape[1] - 1, Kx - 1, -1):
            if ex[n, k] != 0:
                Kx = k + 1
                break
    h, c = h_prev.copy(), c_prev.copy()
    if K == 0:           # every unit of every example keeps its state
        return h, c, m, B * (ex.shape[1] + H)
    # The leading blocks, copied to contiguous memory (K x 4K floats, small next to
    # the product) so that BLAS gets them as it likes them.
    a = (e[:, :K] * h_prev[:, :K]) @ np.ascontiguousarray(Uu[:K, :4 * K])
    if Kx > 0:
        a += (ex[:, :Kx] * x_t[:, :Kx]) @ np.ascontiguousarray(Wu[:Kx, :4 * K])
    for n in range(B):
        for j in range(K):
            e_j = e[n, j]
            i = sigmoid(a[n, 4 * j] + bu[4 * j])
            f = sigmoid(a[n, 4 * j + 1] + bu[4 * j + 1])
            o = sigmoid(a[n, 4 * j + 2] + bu[4 * j + 2])
            g = tanh(a[n, 4 * j + 3] + bu[4 * j + 3])
            c_tilde = f * (e_j * c_prev[n, j]) + i * g
            c[n, j] = e_j * c_tilde + (_ONE - e_j) * c_prev[n, j]
            h[n, j] = e_j * (o * tanh(c_tilde)) + (_ONE - e_j) * h_prev[n, j]
    return h, c, m, B * ((Kx + K) * 4 * K + ex.shape[1] + H)


@njit(cache=True, nogil=True)
def sparse_loop(x, xm, h0, c0, Wu, Uu, bu, w_h, mask_h, mask_x, eps, soft):
    """x: (T, B, I) time-major -> hs: (T+1, B, H), c_T: (B, H), m: (T, B), macs done."""
    T, B, H = x.shape[0], h0.shape[0], h0.shape[1]
    hs = np.empty((T + 1, B, H), dtype=x.dtype)
    m = np.empty((T, B), dtype=x.dtype)
    hs[0] = h0
    c = c0
    done = 0
    for t in range(T):
        hs[t + 1], c, m[t], macs_t = step_sparse(x[t], xm[t], hs[t], c, Wu, Uu, bu, w_h,
                                                 mask_h, mask_x, eps, soft)
        done += macs_t
    return hs, c, m, done


def forward_sparse(params, x, state=None, **options):
    """Inference only: the same outputs as ``forward`` (to float rounding: the
    products sum fewer zero terms, in another order) computed with the rows and
    columns of W and U that the masks select, no cache for ``backward``.

    The masks are prefixes (``_vc_mask``), so the work of a step is a product with
    the leading ``Kx x 4K`` block of W and ``K x 4K`` block of U (columns in unit-major
    order, computed once here). K is the largest prefix over the batch: the saving
    is real when the examples of a batch agree (or at batch 1); a batch mixing
    long and short prefixes pays for the longest. Returns ``hs: (B, T, H)`` and
    ``info``: ``state`` (h_T, c_T), ``m`` (B, T), ``macs`` done (with the scheduler),
    ``dense_macs`` (what ``forward`` multiplies), and ``penalty``/``metrics`` like
    ``forward``'s cache (``metrics`` has ``mean_m`` only: no masks are kept).
    """
    opts, x_tm, xm, h0, c0, (mask_h, mask_x, eps) = _prepare("vclstm.forward_sparse",
                                                             params, x, state, options)
    T, B, I = x_tm.shape
    H = h0.shape[1]
    Wu, Uu, bu = (unit_major(params[k], H) for k in ("W", "U", "b"))
    hs, c_T, m, done = sparse_loop(x_tm, xm, h0, c0, Wu, Uu, bu,
                                   np.ascontiguousarray(params["w_h"]), mask_h, mask_x, eps,
                                   opts["soft"])
    penalty, _ = vc.penalty_and_gradient(m, opts["alpha"], opts["m_target"], opts["penalty"])
    info = {"state": (hs[-1], c_T), "m": np.ascontiguousarray(m.T), "macs": int(done),
            "dense_macs": T * B * ((I + H) * 4 * H + I + H), "penalty": penalty,
            "metrics": {"mean_m": float(m.mean(dtype=np.float64))}}
    return batch_major(hs), info
