"""Variable-computation RNN (VCRNN, Jernite et al. 2017): a vanilla RNN that updates
only the first units of its state, as many as a scheduler decides, at each step.

Readable twin: ``minirnn/reference/vcrnn.py``, the same equations in plain NumPy, one
timestep per Python call; ``tests/test_reference.py`` holds this kernel equal to it.

One timestep (``tutorials/06_variable_computation.md`` derives it; the scheduler,
the masks, the threshold modes and the penalty are in ``_vc_mask.py``)::

    m_t   = sigma(x_t w_x + h_{t-1} w_h + b_m)                      (B,)
    e_t   = Thres_eps(sigma(lambda (m_t H - i))),  i = 0..H-1        (B, H)
    e^x_t = Thres_eps(sigma(lambda (m_t I - k))),  k = 0..I-1        (B, I)
    xbar  = e^x_t * x_t          hbar = e_t * h_{t-1}
    h~    = tanh(xbar W + hbar U + b)                                the vanilla RNN
    h_t   = e_t * h~ + (1 - e_t) * h_{t-1}

Parameters: ``W: (input, hidden)``, ``U: (hidden, hidden)``, ``b: (hidden,)`` (those
of ``rnn``), and the scheduler's ``w_x: (input,)``, ``w_h: (hidden,)``,
``b_m: (1,)``. State: ``h0: (batch, hidden)``, zeros when omitted;
``cache["state"] == h_T``.

Forward options (``FORWARD_OPTIONS``, defaults in ``_vc_mask.DEFAULTS``):
``sharpness=1.0`` (lambda), ``eps=0.1``, ``threshold="soft"`` or ``"hard"``,
``alpha=0.0``, ``m_target=0.5``, ``penalty="l1"`` or ``"l2"``. ``cache["penalty"]``
holds ``alpha * sum_t mean_n |m_t - m_target|`` (squared for l2), whose gradient
``backward`` includes; ``cache["metrics"]`` holds ``mean_m`` and
``update_fraction``. Init option: ``scheduler_bias=0.0``, the initial ``b_m``
(0 gives m_t near 1/2: about half the units updated at the start).

What is hoisted out of the loop: ``x_t w_x + b_m`` for every t (one product).
``x_t W`` is not: the input mask ``e^x_t`` depends on ``m_t``, hence on
``h_{t-1}``, so ``xbar W`` is one (B, I) x (I, H) product per step (small next
to ``hbar U`` when I < H). After the loop: ``dW = sum_t xbar_t^T da_t``,
``dU = sum_t hbar_t^T da_t``, the scheduler's ``dw_x``, ``dw_h`` and, in the hard
mode, ``dxbar = da W^T`` (in the soft mode the loop needs it for dL/dm).

Backward, one step (``dh`` = total dL/dh_t)::

    dh~ = dh * e                  da = dh~ * (1 - h~^2)
    dhbar = da U^T                dxbar = da W^T
    dh_{t-1} = dh * (1 - e) + dhbar * e + dz w_h
    de = dh * (h~ - h_{t-1}) + dhbar * h_{t-1}          de^x = dxbar * x_t
    dm = sum_i de_i de_i/dm + sum_k de^x_k de^x_k/dm + dpenalty/dm   (soft)
    dm = dpenalty/dm                                                 (hard)
    dz = dm * m (1 - m)           dx_t = dxbar * e^x + dz w_x
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import DTypeLike

from ..functional.activations import tanh
from ..initializers import glorot_uniform, orthogonal
from ..types import Cache, Grads, Params, Shapes, State
from . import _vc_mask as vc
from ._checks import check_gradients
from ._projection import batch_major
from ._vc_mask import init_scheduler, scheduler_and_masks, scheduler_and_masks_backward

INIT_OPTIONS = ("scheduler_bias",)
FORWARD_OPTIONS = vc.FORWARD_OPTIONS
GRADCHECK_CASES = vc.GRADCHECK_CASES
STATE_SIZE = 1
GATES = 1
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
    scheduler_bias: float = 0.0,
) -> Params:
    """Glorot-uniform W, orthogonal U, b = 0 (as ``rnn``), and the scheduler."""
    params = {
        "W": glorot_uniform(rng, input_size, hidden_size, dtype),
        "U": orthogonal(rng, hidden_size, dtype),
        "b": np.zeros(hidden_size, dtype=dtype),
    }
    params.update(init_scheduler(input_size, hidden_size, rng, dtype, scheduler_bias))
    return params


@njit(cache=True, nogil=True, error_model="numpy")
def step_forward(
    x_t, xm_t, h_prev, W, U, b, w_h, mask_h, mask_x, eps, soft, h, m, e, ex, h_tilde, xbar, hbar, hu
):
    """One timestep. x_t: (B, I); xm_t: (B,) = x_t w_x + b_m; h_prev: (B, H);
    W: (I, H); U: (H, H); b: (H,); w_h: (H,); mask_h = (lambda H, lambda [0..H-1])
    and mask_x = (lambda I, lambda [0..I-1]) (``_vc_mask.mask_constants``).
    Writes h: (B, H), m: (B,), e: (B, H), ex: (B, I), h_tilde: (B, H).
    Scratch: xbar: (B, I); hbar, hu: (B, H).
    Readable twin: ``reference/vcrnn.py``, ``step_forward``."""
    scheduler_and_masks(x_t, xm_t, h_prev, w_h, mask_h, mask_x, eps, soft, m, e, ex, xbar)
    np.multiply(e, h_prev, hbar)  # hbar = e_t * h_{t-1}
    np.dot(xbar, W, h_tilde)
    np.dot(hbar, U, hu)
    B, H = h.shape
    for n in range(B):
        for j in range(H):
            h_tilde[n, j] = tanh(h_tilde[n, j] + hu[n, j] + b[j])  # tanh(xbar W + hbar U + b)
            h[n, j] = e[n, j] * h_tilde[n, j] + (_ONE - e[n, j]) * h_prev[n, j]


@njit(cache=True, nogil=True, error_model="numpy")
def step_backward(
    dh_out,
    dh,
    dm_pen,
    x_t,
    h_prev,
    h_tilde,
    m,
    e,
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
    dhbar,
    de,
    dm,
    dex,
):
    """One timestep backwards. dh_out: (B, H) dL/dh_t from the output at t; dh: (B, H)
    dL/dh_t through step t+1 (overwritten); dm_pen: (B,) dpenalty/dm_t; WT: (H, I),
    UT: (H, H) transposed. Writes da: (B, H) = dL/d(pre-activation), dxbar: (B, I) =
    dL/dxbar (soft mode; in the hard mode it is one product after the loop), dz:
    (B,) = dL/dz of the scheduler, dh_prev: (B, H). Scratch: dhbar, de: (B, H);
    dm: (B,); dex: (B, I).
    Readable twin: ``reference/vcrnn.py``, ``step_backward``."""
    B, H = dh.shape
    for n in range(B):
        for j in range(H):
            dh[n, j] = dh_out[n, j] + dh[n, j]  # dh <- dL/dh_t
            da[n, j] = dh[n, j] * e[n, j] * (_ONE - h_tilde[n, j] * h_tilde[n, j])
    np.dot(da, UT, dhbar)
    for n in range(B):
        for j in range(H):
            dh_prev[n, j] = dh[n, j] * (_ONE - e[n, j]) + dhbar[n, j] * e[n, j]
    if soft:
        for n in range(B):
            for j in range(H):
                de[n, j] = dh[n, j] * (h_tilde[n, j] - h_prev[n, j]) + dhbar[n, j] * h_prev[n, j]
    scheduler_and_masks_backward(
        dm_pen, de, da, x_t, m, WT, w_h, mask_h, mask_x, eps, soft, dxbar, dz, dh_prev, dm, dex
    )


@njit(cache=True, nogil=True)
def forward_loop(x, xm, h0, W, U, b, w_h, mask_h, mask_x, eps, soft):
    """x: (T, B, I) time-major; xm: (T, B) -> hs: (T+1, B, H) with hs[0] = h0,
    m: (T, B), e: (T, B, H), ex: (T, B, I), h_tilde: (T, B, H)."""
    T, B, H = x.shape[0], h0.shape[0], h0.shape[1]
    hs = np.empty((T + 1, B, H), dtype=x.dtype)
    m = np.empty((T, B), dtype=x.dtype)
    e = np.empty((T, B, H), dtype=x.dtype)
    ex = np.empty(x.shape, dtype=x.dtype)
    h_tilde = np.empty((T, B, H), dtype=x.dtype)
    # scratch for the steps, allocated once
    xbar, hbar, hu = (
        np.empty(x.shape[1:], dtype=x.dtype),
        np.empty((B, H), dtype=x.dtype),
        np.empty((B, H), dtype=x.dtype),
    )
    hs[0] = h0
    for t in range(T):
        step_forward(
            x[t],
            xm[t],
            hs[t],
            W,
            U,
            b,
            w_h,
            mask_h,
            mask_x,
            eps,
            soft,
            hs[t + 1],
            m[t],
            e[t],
            ex[t],
            h_tilde[t],
            xbar,
            hbar,
            hu,
        )
    return hs, m, e, ex, h_tilde


@njit(cache=True, nogil=True)
def backward_loop(dhs, dh_T, dm_pen, x, hs, h_tilde, m, e, WT, UT, w_h, mask_h, mask_x, eps, soft):
    """dhs: (T, B, H) time-major; dh_T: (B, H) gradient of the final state;
    dm_pen: (T, B). Returns das: (T, B, H), dxbars: (T, B, I) (soft; one unused
    step in the hard mode), dzs: (T, B), dh0: (B, H)."""
    T, B, I = x.shape
    das = np.empty_like(dhs)
    dxbars = np.empty((T if soft else 1, B, I), dtype=dhs.dtype)
    dzs = np.empty((T, B), dtype=dhs.dtype)
    dh, dh_prev = dh_T.copy(), np.empty_like(dh_T)  # two buffers, in turn
    # scratch for the steps, allocated once
    dhbar, de = np.empty_like(dh), np.empty_like(dh)
    dm, dex = np.empty(B, dtype=dhs.dtype), np.empty((B, I), dtype=dhs.dtype)
    for t in range(T - 1, -1, -1):
        t_dxbar = t if soft else 0
        step_backward(
            dhs[t],
            dh,
            dm_pen[t],
            x[t],
            hs[t],
            h_tilde[t],
            m[t],
            e[t],
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
            dhbar,
            de,
            dm,
            dex,
        )
        dh, dh_prev = dh_prev, dh
    return das, dxbars, dzs, dh


def forward(
    params: Params,
    x: np.ndarray,
    state: State | None = None,
    *,
    training: bool = True,
    rng: np.random.Generator | None = None,
    **options,
) -> tuple[np.ndarray, Cache]:
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache.
    ``state`` is h0: (batch, hidden). ``training`` and ``rng`` are accepted for the
    common contract; nothing here is random or differs in evaluation."""
    opts, x_tm, xm, (h0,), (mask_h, mask_x, eps) = vc.forward_inputs(
        "vcrnn.forward", params, x, state, options, param_shapes, STATE_SIZE
    )
    hs, m, e, ex, h_tilde = forward_loop(
        x_tm,
        xm,
        h0,
        np.ascontiguousarray(params["W"]),
        np.ascontiguousarray(params["U"]),
        params["b"],
        np.ascontiguousarray(params["w_h"]),
        mask_h,
        mask_x,
        eps,
        opts["soft"],
    )
    masks = (mask_h, mask_x, eps)
    cache = vc.sequence_cache(x, x_tm, state, opts, masks, hs, m, e, ex, hs[-1], h_tilde=h_tilde)
    return batch_major(hs), cache


def backward(
    params: Params,
    dhs: np.ndarray,
    cache: Cache,
    dstate: State | None = None,
    *,
    input_grad: bool = True,
) -> tuple[np.ndarray | None, Grads]:
    """dhs: (batch, time, hidden) -> (dx: (batch, time, input), grads), the gradient
    of ``L + cache["penalty"]``. ``dstate``, optional: dL/dh_T for a caller that
    used ``cache["state"]``. ``grads`` holds ``"h0"`` too when a state was passed.
    ``input_grad=False`` skips dx (returned as None) when the input is data."""
    x_tm, hs, e = cache["x_tm"], cache["hs"], cache["e"]
    dhs, (dh_T,) = check_gradients(dhs, dstate, hs, x_tm.dtype, STATE_SIZE)
    T, B, H = dhs.shape
    soft = cache["options"]["soft"]
    das, dxbar, dz, dh0 = backward_loop(
        dhs,
        dh_T,
        cache["dm_penalty"],
        x_tm,
        hs,
        cache["h_tilde"],
        cache["m"],
        e,
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
        "U": hbar.T @ das.reshape(T * B, H),
        "b": db,
        "w_x": dw_x,
        "w_h": h_prev.T @ dz.reshape(T * B),
        "b_m": db_m,
    }
    if cache["has_state"]:
        grads["h0"] = dh0
    return dx, grads


def macs(cache: Cache) -> dict[str, int | float]:
    """Multiply-adds the forward's steps needed given their masks (``_vc_mask.count_macs``)."""
    return vc.count_macs(cache["e"], cache["ex"], GATES)
