"""Variable computation (Jernite et al. 2017): the scheduler, the masks, the penalty.

Shared by ``vcrnn``, ``vcgru`` and ``vclstm``; ``tutorials/06_variable_computation.md``
derives everything here. One timestep, for a batch of B examples (row vectors)::

    m_t   = sigma(x_t w_x + h_{t-1} w_h + b_m)                 (B,)   the scheduler
    s_i   = sigma(lambda * (m_t * D - i))     i = 0, ..., D-1   (B, D)
    (e_t)_i = Thres_eps(s_i)                                    (B, D) the mask

with ``D = hidden`` for the hidden mask ``e`` and ``D = input`` for the input mask
``e^x`` (same ``m_t``, same formula). Parameters: ``w_x: (input,)``,
``w_h: (hidden,)``, ``b_m: (1,)`` (a length-1 vector rather than a 0-d array, so
that optimizers, checkpoints and ``params[k][...] = g`` treat it like any bias).

**Index origin: units count from 0**, as in the Qiita variable-computation note's code
(``range(n_units)``); the paper counts from 1. With 0-based indices ``m_t = 1`` gives
every unit ``s_i >= sigma(lambda)``, so a sharp enough mask
(``lambda > ln((1-eps)/eps)``) updates all units and the cell becomes the plain cell;
1-based, the last unit would get ``s_D = sigma(0) = 1/2`` even at ``m_t = 1`` and
could never be fully updated (in the hard mode: never at all). The price: unit 0 has
``s_0 = sigma(lambda m_t D) >= 1/2``, so in the soft mode it is never clamped to
0 (the hard mode does switch it off when ``s_0 <= 1 - eps``). The masks are
non-increasing in ``i``: the units a step updates are always a prefix
``0, ..., K-1`` (what makes the sparse kernel of ``vclstm_sparse`` possible).

Two threshold modes, the forward option ``threshold``:

* ``"soft"`` (the paper): ``Thres_eps(v) = 0 if v < eps, 1 if v > 1 - eps, v
  otherwise``. Inside the identity band ``eps <= s_i <= 1 - eps`` the mask is
  differentiable, ``d e_i / d m = lambda * D * s_i * (1 - s_i)``; where it is
  clamped the derivative is 0. The scheduler learns *where* to compute through
  the few units in the band (about ``2 ln((1-eps)/eps) / lambda`` of them).
* ``"hard"`` (the Qiita variable-computation note's code,
  ``relu(sign(s - (1 - eps)))``): ``e_i = 1 if s_i > 1 - eps else 0``. Binary,
  piecewise constant in ``m``: no gradient reaches the scheduler through the mask,
  only through the penalty below, so the scheduler learns to meet the budget
  ``m_target`` and nothing else.

The threshold jumps at both edges (from 0 to eps, and from 1 - eps to 1), so the
loss is discontinuous there; finite differences must stay away from them
(``distance_to_edges``).

Computation penalty (forward options ``alpha``, ``m_target``, ``penalty``)::

    penalty = alpha * sum_t mean_n |m_{t,n} - m_target|        ("l1")
    penalty = alpha * sum_t mean_n (m_{t,n} - m_target)^2      ("l2")

summed over time and averaged over the batch, like a per-sequence budget paid
by the average example (the data losses in ``functional`` are batch means too).
The cells store it in ``cache["penalty"]`` and their ``backward`` adds its
gradient, as if the loss were ``L + penalty``: the layer above only adds the
number to the loss it reports. (The L1 subgradient at ``m = m_target`` is 0.)

In the code the mask's argument ``lambda (m D - i)`` is computed as
``lam_D * m - lam_i[i]`` with ``lam_D = lambda * D`` and ``lam_i = lambda * i``
precomputed in the parameters' dtype (``mask_constants``): in a compiled
float32 kernel an integer ``i`` or a Python float would promote the arithmetic
to float64, and the float64 sigmoid is the slow, exact one.
"""

import math

import numpy as np
from numba import njit

from ..functional.activations import sigmoid
from ..initializers import glorot_uniform
from ._checks import check_inputs, check_lstm_state, check_state
from ._projection import time_major

FORWARD_OPTIONS = ("sharpness", "eps", "threshold", "alpha", "m_target", "penalty")
DEFAULTS = {
    "sharpness": 1.0,
    "eps": 0.1,
    "threshold": "soft",
    "alpha": 0.0,
    "m_target": 0.5,
    "penalty": "l1",
}
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
# The option combinations the gradient checker runs for every VC cell: both
# thresholds, a sharper mask, and the penalty in both norms.
GRADCHECK_CASES = (
    {"threshold": "soft"},
    {"threshold": "hard"},
    {"threshold": "soft", "sharpness": 3.0},
    {"threshold": "soft", "alpha": 0.5, "m_target": 0.3},
    {"threshold": "hard", "alpha": 0.5, "m_target": 0.3, "penalty": "l2"},
)


# ---------------------------------------------------------------- options


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    return value


def check_options(where, sharpness, eps, threshold, alpha, m_target, penalty):
    """Validate the variable-computation forward options; returns them as a dict
    of plain Python values (``soft`` is True for ``threshold="soft"``)."""
    sharpness = _number(f"{where}: sharpness", sharpness)
    if sharpness <= 0:
        raise ValueError(f"{where}: sharpness (lambda) must be > 0, got {sharpness}")
    eps = _number(f"{where}: eps", eps)
    if not 0 <= eps < 0.5:
        raise ValueError(
            f"{where}: eps must satisfy 0 <= eps < 0.5 (the band is [eps, 1 - eps]), got {eps}"
        )
    if threshold not in ("soft", "hard"):
        raise ValueError(
            f"{where}: threshold must be 'soft' (the paper's, with a "
            f"gradient to the scheduler) or 'hard' (binary), got {threshold!r}"
        )
    alpha = _number(f"{where}: alpha", alpha)
    if alpha < 0:
        raise ValueError(f"{where}: alpha (the penalty weight) must be >= 0, got {alpha}")
    m_target = _number(f"{where}: m_target", m_target)
    if not 0 <= m_target <= 1:
        raise ValueError(f"{where}: m_target must lie in [0, 1] like m_t, got {m_target}")
    if penalty not in ("l1", "l2"):
        raise ValueError(f"{where}: penalty must be 'l1' or 'l2', got {penalty!r}")
    return {
        "sharpness": sharpness,
        "eps": eps,
        "soft": threshold == "soft",
        "threshold": threshold,
        "alpha": alpha,
        "m_target": m_target,
        "penalty": penalty,
    }


def init_scheduler(input_size, hidden_size, rng, dtype, scheduler_bias):
    """The scheduler's parameters: w = [w_x; w_h] Glorot-uniform as one (I + H, 1)
    layer, b_m = scheduler_bias."""
    w = glorot_uniform(rng, input_size + hidden_size, 1, dtype)[:, 0]
    return {
        "w_x": w[:input_size].copy(),
        "w_h": w[input_size:].copy(),
        "b_m": np.full(1, scheduler_bias, dtype=dtype),
    }


def mask_constants(sharpness, size, dtype):
    """``(lambda * D, lambda * [0, 1, ..., D-1])`` in ``dtype``: the mask's argument
    ``lambda (m D - i)`` is ``lam_D * m - lam_i[i]``."""
    dtype = np.dtype(dtype)
    return dtype.type(sharpness * size), (sharpness * np.arange(size)).astype(dtype)


def scheduler_input(x_tm, w_x, b_m):
    """The scheduler's term that does not depend on the previous step, for every t
    at once: x_tm: (T, B, I) -> (T, B) = x_t w_x + b_m (one product before the loop)."""
    T, B, I = x_tm.shape
    xm = x_tm.reshape(T * B, I) @ w_x
    xm += b_m[0]
    return xm.reshape(T, B)


def param_shapes(input_size, hidden_size, gates):
    """The parameters of a VC cell whose inner cell has ``gates`` blocks (1 RNN,
    3 GRU, 4 LSTM): W: (I, gates H), U: (H, gates H), b: (gates H,), and the
    scheduler's w_x: (I,), w_h: (H,), b_m: (1,)."""
    I, G = input_size, gates * hidden_size
    return {
        "W": (I, G),
        "U": (hidden_size, G),
        "b": (G,),
        "w_x": (I,),
        "w_h": (hidden_size,),
        "b_m": (1,),
    }


def forward_inputs(where, params, x, state, options, param_shapes, state_size):
    """What every VC cell's ``forward`` does before its loop: check the arguments
    and the options (``DEFAULTS`` filled in), and make the loop's inputs.
    Returns ``opts`` (checked, with ``soft``); x_tm: (T, B, I), x time-major;
    xm: (T, B) = x_t w_x + b_m; the initial state, a tuple of ``state_size``
    (B, H) arrays; and ``masks`` = (mask_h, mask_x, eps), the constants of the
    hidden and input masks (``mask_constants``) and eps in the parameters' dtype."""
    I, H, dtype = check_inputs(where, params, x, options, FORWARD_OPTIONS, param_shapes)
    opts = check_options(where, **{**DEFAULTS, **options})
    B = x.shape[0]
    if state_size == 1:
        state = (check_state("state h0", state, B, H, dtype),)
    else:
        state = check_lstm_state("state", state, B, H, dtype)
    x_tm = time_major(x)
    masks = (
        mask_constants(opts["sharpness"], H, dtype),
        mask_constants(opts["sharpness"], I, dtype),
        dtype.type(opts["eps"]),
    )
    return opts, x_tm, scheduler_input(x_tm, params["w_x"], params["b_m"]), state, masks


# ---------------------------------------------------------------- kernels


@njit(cache=True, nogil=True, error_model="numpy")
def scheduler(xm_t, h_prev, w_h, m):
    """m_t = sigma(x_t w_x + b_m + h_{t-1} w_h). xm_t: (B,) = x_t w_x + b_m (hoisted);
    h_prev: (B, H); w_h: (H,). Writes m: (B,)."""
    np.dot(h_prev, w_h, m)  # h_{t-1} w_h
    for n in range(m.shape[0]):
        m[n] = sigmoid(xm_t[n] + m[n])


@njit(cache=True, nogil=True, error_model="numpy")
def threshold(v, eps, soft):
    """Thres_eps(v) (soft) or the binary [v > 1 - eps] (hard)."""
    if v > _ONE - eps:
        return _ONE + _ZERO * v  # "+ 0 * v": the dtype of v in both branches
    if soft and v >= eps:
        return v
    return _ZERO * v


@njit(cache=True, nogil=True, error_model="numpy")
def unit_mask_into(m, lam_D, lam_i, eps, soft, e):
    """(e_t)_i = Thres_eps(sigma(lambda (m D - i))). m: (B,); lam_D = lambda D;
    lam_i: (D,) = lambda i. Writes e: (B, D)."""
    B, D = e.shape
    for n in range(B):
        for i in range(D):
            e[n, i] = threshold(sigmoid(lam_D * m[n] - lam_i[i]), eps, soft)


@njit(cache=True, nogil=True, error_model="numpy")
def unit_mask(m, lam_D, lam_i, eps, soft):
    """``unit_mask_into`` returning a new e: (B, D)."""
    e = np.empty((m.shape[0], lam_i.shape[0]), dtype=m.dtype)
    unit_mask_into(m, lam_D, lam_i, eps, soft, e)
    return e


@njit(cache=True, nogil=True, error_model="numpy")
def add_mask_gradient(dm, de, m, lam_D, lam_i, eps):
    """Soft mode: dm[n] += sum_i de[n, i] * d e_i / d m, where inside the band
    (eps <= s_i <= 1 - eps) d e_i / d m = lambda D s_i (1 - s_i), and 0 where clamped.
    dm: (B,) updated in place; de: (B, D) = dL/de."""
    B, D = de.shape
    for n in range(B):
        acc = _ZERO * dm[n]
        for i in range(D):
            s = sigmoid(lam_D * m[n] - lam_i[i])
            if eps <= s and s <= _ONE - eps:
                acc += de[n, i] * lam_D * s * (_ONE - s)
        dm[n] += acc


@njit(cache=True, nogil=True, error_model="numpy")
def scheduler_backward(dm, m, w_h, dh_prev, dz):
    """m = sigma(z), z = x_t w_x + h_{t-1} w_h + b_m: writes dz = dm m (1 - m): (B,),
    and adds dz w_h to dL/dh_{t-1} (dh_prev: (B, H), in place)."""
    B, H = dh_prev.shape
    for n in range(B):
        dz[n] = dm[n] * m[n] * (_ONE - m[n])
        for j in range(H):
            dh_prev[n, j] += dz[n] * w_h[j]


@njit(cache=True, nogil=True, error_model="numpy")
def scheduler_and_masks(x_t, xm_t, h_prev, w_h, mask_h, mask_x, eps, soft, m, e, ex, xbar):
    """The start of every VC step: m_t, the masks e_t and e^x_t, and xbar = e^x_t * x_t.
    x_t: (B, I); xm_t: (B,) = x_t w_x + b_m; h_prev: (B, H); mask_h, mask_x: the
    ``mask_constants`` of the hidden and the input mask. Writes m: (B,), e: (B, H),
    ex, xbar: (B, I)."""
    scheduler(xm_t, h_prev, w_h, m)
    unit_mask_into(m, mask_h[0], mask_h[1], eps, soft, e)
    unit_mask_into(m, mask_x[0], mask_x[1], eps, soft, ex)
    np.multiply(ex, x_t, xbar)


@njit(cache=True, nogil=True, error_model="numpy")
def scheduler_and_masks_backward(
    dm_pen, de, da, x_t, m, WT, w_h, mask_h, mask_x, eps, soft, dxbar, dz, dh_prev, dm, dex
):
    """The end of every VC step backwards: dm = dpenalty/dm_t (dm_pen: (B,)), plus,
    in the soft mode, what reaches m_t through the band of both masks, from
    de = dL/de_t: (B, H) and dL/de^x_t = dxbar * x_t with dxbar = da W^T (da: (B, G)
    the inner cell's dL/da_t; WT: (G, I)); then dz = dm m (1 - m): (B,) and
    dh_prev += dz w_h. Writes dxbar: (B, I) (soft mode only), dz; scratch: dm: (B,),
    dex: (B, I). de is read in the soft mode only."""
    dm[:] = dm_pen
    if soft:
        np.dot(da, WT, dxbar)
        np.multiply(dxbar, x_t, dex)
        add_mask_gradient(dm, de, m, mask_h[0], mask_h[1], eps)
        add_mask_gradient(dm, dex, m, mask_x[0], mask_x[1], eps)
    scheduler_backward(dm, m, w_h, dh_prev, dz)


# ---------------------------------------------------------------- after the loop


def input_side_gradients(x_tm, ex, das, dxbar, dz, W, w_x, input_grad=True):
    """Everything on the input side, once for all t after the loop.

    x_tm: (T, B, I) time-major input; ex: (T, B, I) input masks; das: (T, B, G) =
    dL/d(pre-activations); dxbar: (T, B, I) = dL/d(e^x * x) (None: computed here
    as das W^T); dz: (T, B) = dL/dz of the scheduler.
    Returns dx: (B, T, I) (None when not ``input_grad``), dW = sum_t xbar_t^T da_t,
    db, dw_x = sum_t x_t^T dz_t, db_m.
    """
    T, B, I = x_tm.shape
    G = das.shape[2]
    flat_da = das.reshape(T * B, G)
    dx = None
    if input_grad:
        if dxbar is None:
            dxbar = (flat_da @ W.T).reshape(T, B, I)
        dx = dxbar * ex + dz[:, :, None] * w_x  # x reaches xbar and m
        dx = np.ascontiguousarray(dx.transpose(1, 0, 2))
    xbar = (ex * x_tm).reshape(T * B, I)
    x_flat = x_tm.reshape(T * B, I)
    dz_flat = dz.reshape(T * B)
    return (
        dx,
        xbar.T @ flat_da,
        flat_da.sum(axis=0),
        x_flat.T @ dz_flat,
        dz_flat.sum(keepdims=True),
    )


def penalty_and_gradient(m, alpha, m_target, kind):
    """m: (T, B) -> (penalty: float, dpenalty/dm: (T, B)), with the batch mean
    and the sum over time of the module notes."""
    B = m.shape[1]
    diff = m - m.dtype.type(m_target)
    if alpha == 0:
        return 0.0, np.zeros_like(m)
    if kind == "l1":
        return (
            float(alpha * np.abs(diff).sum(dtype=np.float64) / B),
            (np.sign(diff) * (alpha / B)).astype(m.dtype),
        )
    return (
        float(alpha * np.square(diff).sum(dtype=np.float64) / B),
        (diff * (2 * alpha / B)).astype(m.dtype),
    )


def sequence_cache(x, x_tm, state, opts, masks, hs, m, e, ex, final_state, **arrays):
    """The cache of every variable-computation cell's ``forward``: its input (as
    given and time-major), the states hs, the scheduler's m and the masks e, ex,
    the mask constants ``masks`` = (mask_h, mask_x, eps), the options, the
    computation penalty and its gradient (``penalty_and_gradient``), the metrics,
    the final state, and the cell's own per-step ``arrays`` (gates, cells)."""
    mask_h, mask_x, eps = masks
    penalty, dm_pen = penalty_and_gradient(m, opts["alpha"], opts["m_target"], opts["penalty"])
    return {
        "x": x,
        "x_tm": x_tm,
        "hs": hs,
        "m": m,
        "e": e,
        "ex": ex,
        **arrays,
        "mask_h": mask_h,
        "mask_x": mask_x,
        "eps": eps,
        "options": opts,
        "dm_penalty": dm_pen,
        "penalty": penalty,
        "metrics": metrics(m, e),
        "has_state": state is not None,
        "state": final_state,
    }


def metrics(m, e):
    """The numbers a training log wants: mean m_t, and the mean of the hidden mask
    (the fraction of hidden units updated; fractional band values count as such)."""
    return {
        "mean_m": float(m.mean(dtype=np.float64)),
        "update_fraction": float(e.mean(dtype=np.float64)),
    }


# ---------------------------------------------------------------- real savings


def prefix_length(e):
    """K: 1 + the index of the last nonzero unit of each mask (0 when all are 0).
    e: (..., D) -> (...,) int. Masks are prefixes, so units K, ..., D-1 are idle."""
    nonzero = e != 0
    D = e.shape[-1]
    return np.where(nonzero.any(axis=-1), D - np.argmax(nonzero[..., ::-1], axis=-1), 0)


def count_macs(e, ex, gates):
    """Multiply-adds of the steps given their masks, summed over (T, B).

    e: (T, B, H), ex: (T, B, I); ``gates`` = 1 (RNN), 3 (GRU), 4 (LSTM). A step of
    one example needs the rows of W with a nonzero input mask (``Kx`` of them), the
    rows of U with a nonzero hidden mask (``K``), and only the columns of the ``K``
    units it updates: ``(Kx + K) * gates * K``; the scheduler adds ``I + H``
    (``x_t w_x + h_{t-1} w_h``, always dense). Elementwise work is not counted.
    Returns ``{"needed", "dense", "fraction"}`` (ints and their ratio).
    """
    T, B, H = e.shape
    I = ex.shape[2]
    K = prefix_length(e).astype(np.int64)
    Kx = prefix_length(ex).astype(np.int64)
    needed = int(((Kx + K) * gates * K).sum()) + T * B * (I + H)
    dense = T * B * ((I + H) * gates * H + I + H)
    return {"needed": needed, "dense": dense, "fraction": needed / dense}


def distance_to_edges(m, size, sharpness, eps):
    """min over the mask entries of |s_i - eps| and |s_i - (1 - eps)|, with
    s_i = sigma(lambda (m D - i)), in float64: how far a point is from the jumps
    of the threshold (finite differences closer than a few steps are wrong)."""
    m = np.asarray(m, dtype=np.float64)[..., None]
    s = 0.5 * np.tanh(0.5 * sharpness * (m * size - np.arange(size))) + 0.5
    return float(np.minimum(np.abs(s - eps), np.abs(s - (1 - eps))).min())
