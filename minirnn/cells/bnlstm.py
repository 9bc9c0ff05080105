"""LSTM with recurrent batch normalization (Cooijmans et al. 2017).

Readable twin: ``minirnn/reference/bnlstm.py``, the same equations in plain NumPy, one
timestep per Python call; ``tests/test_reference.py`` holds this kernel equal to it.

Equations, for one timestep (``tutorials/09_recurrent_normalization.md`` derives them)::

    a_t = BN(h_{t-1} U; gamma_h) + BN(x_t W; gamma_x) + b       (B, 4H)
    i = sigma(a_i)   f = sigma(a_f)   o = sigma(a_o)   g = tanh(a_g)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(BN(c_t; gamma_c, beta_c))

``BN(z; gamma, beta) = gamma * (z - mean) / sqrt(var + eps) + beta`` with the
mean and the biased variance over the batch, per feature. The two projections are
normalized separately and have no shift of their own (``b`` serves); the carried
``c_t`` is not normalized, only the copy inside the tanh.

Statistics are kept **per timestep** (the distribution of ``h_{t-1} U`` at t = 1
differs from the one at t = 20), while gamma and beta are shared over time:

* training (``training=True``): each timestep uses its own batch statistics, and
  the cache holds them (``cache["batch_stats"]``, arrays of shape (T, size));
* evaluation (``training=False``): each timestep uses population statistics
  ``stats`` of shape (T_max, size), and every ``t >= T_max`` (0-based) uses those
  of the last one. ``init_statistics`` makes them, ``update_statistics`` returns
  them moved towards a training batch's (both live in ``cells/_bn_statistics.py``
  and are reached as ``bnlstm.*``); nothing is kept in module globals.

Where the statistics come from, and why it matters at test time
(``tutorials/09_recurrent_normalization.md``, "Train/test mismatch"; the row-MNIST
measurements in ``docs/results.md``). Forward options:

* ``eps`` (1e-5, the paper's): inside every ``sqrt(var + eps)``. It also caps the
  gain of a feature that is (nearly) constant over the batch, ``gamma / sqrt(eps)``:
  blank border rows and the zero initial state make such features, and there a
  population mean that is off by d moves the output by ``gamma * d / sqrt(eps)``
  while the batch's own mean removes it exactly. eps = 1 keeps that gain at gamma.
* ``x_stats``: the statistics of ``x_t W``: "step" (per timestep, the paper),
  "shared" (one set over the batch and all timesteps, computed once before the
  loop; its population statistics have one row) or "none" (``x_t W`` is not
  normalized; ``gamma_x`` then scales nothing and gets a zero gradient).
* ``train_stats``, what a training forward normalizes with: "batch" (the paper),
  "renorm" (batch renormalization, Ioffe 2017: ``xhat = xhat_batch * r + d`` with
  ``r = clip(sigma_B / sigma, 1/rmax, rmax)``, ``d = clip((mu_B - mu) / sigma,
  -dmax, dmax)`` against the population's mu and sigma, r and d constants in
  backward; ``renorm_rmax`` 3, ``renorm_dmax`` 5) or "population" (the given
  population statistics, held constant and not updated: fine-tuning with frozen
  statistics). The last two need ``stats`` in training too.
* ``eval_stats``, what an evaluation forward normalizes with: "population" (the
  default, and the honest one: an example's output does not depend on the rest of
  its batch) or "batch" (each evaluation batch's own statistics; a diagnostic,
  ``python -m minirnn eval RUN --bn-stats batch``).
* ``stats_momentum`` (0.1): the weight of a new batch in the moving average that
  ``update_statistics`` keeps.
* ``refresh_batches`` (0): read by ``nn.Recurrent``, which keeps its last that
  many training inputs and, when switched to evaluation, replaces the moving
  average by ``population_statistics`` of them with the current parameters. The
  moving average describes the parameters of several optimizer steps ago.

``TRAINING_DEFAULTS`` = eps 1, ``x_stats`` "shared", ``refresh_batches`` 16: what a
model built by ``minirnn.nn`` (and so ``python -m minirnn train --cell bnlstm``)
starts from, under the options it is given; on row-MNIST it evaluates with
population statistics as well as with batch statistics, and as well as the LSTM.
The functions' own defaults stay the paper's, which the tutorial derives.

Option ``carry_normalized_c=True`` is the Qiita BN-LSTM note's variant: the normalized
cell ``BN(c_t)`` is what is carried to the next step (``c_t = BN(f*c_{t-1} + i*g)``),
not only what enters the tanh. The tutorial shows the difference.

Recurrent dropout (``tutorials/08_recurrent_dropout.md``; the options and the
masks are those of ``cells/lstm.py``, drawn by ``cells/_dropout.py``) multiplies
a mask m into one of three places::

    dropout_where="hidden"   a_t = BN((h_{t-1} * m_h) U; gamma_h) + ...     Gal & Ghahramani
    dropout_where="update"   u_t = f * c_{t-1} + i * (g * m_g)              Semeniuta et al.
    dropout_where="cell"     the carried cell is masked                     Moon et al.:
        default:                  c_t = m_c * u_t,  h_t = o * tanh(BN(c_t))
        carry_normalized_c=True:  c_t = m_c * BN(u_t),  h_t = o * tanh(c_t)

with ``u_t = f * c_{t-1} + i * g``. The rule for "cell" is the LSTM's: the mask
multiplies the cell that is carried to step t+1, and h_t reads that same masked
cell. So it comes *before* the normalization when the raw cell is carried (BN's
batch statistics, and ``cache["batch_stats"]``, are those of the masked cell) and
*after* it when the normalized cell is carried (a dropped unit carries exactly 0,
not beta_c). "hidden" and "update" are the same in both modes; under "hidden" the
statistics of the recurrent BN are those of ``(h_{t-1} * m_h) U``.
Backwards the mask multiplies the local derivative at its place:
``dh_{t-1} = (dL/d(h~ U) U^T) * m_h``; ``dg = du * i * m_g``, ``di = du * g * m_g``;
default "cell": ``du = (dL/dc_t) * m_c`` after BN's backward; carried-normalized
"cell": ``dL/dBN(u_t) = (dL/dc_t) * m_c`` before BN's backward.
Evaluation (``training=False``) draws and drops nothing.

Parameters::

    W: (input, 4H)  U: (H, 4H)  b: (4H,)  gamma_x, gamma_h: (4H,)  gamma_c, beta_c: (H,)

``gamma`` starts at ``gamma_init`` = 0.1 for all three (the paper: with gamma 1 the
normalized pre-activations saturate the sigmoids and tanh and the gradient vanishes),
beta at 0, ``b`` at 0 except ``forget_bias`` (default 1) in its f block.

Code names: ``bx`` = BN(x_t W) for every t, computed before the loop (it does not
depend on h); ``xhat_*``/``inv_std_*``
are BN's normalized values and ``1/sqrt(var + eps)`` that backward needs; ``cbn``
= BN(c_t); ``tanh_c`` = tanh(cbn); ``ifog`` the activated gates.
"""

import numpy as np
from numba import njit

from ..functional.activations import tanh
from ..functional.batchnorm import (
    bn_backward_2d_into,
    bn_eval_backward_2d_into,
    bn_eval_forward_2d_into,
    bn_renorm_backward_2d_into,
    bn_renorm_train_2d_into,
    bn_train_2d_into,
)
from ..initializers import gate_blocks, glorot_uniform, orthogonal

# The statistics' bookkeeping has a module of its own; users reach it as bnlstm.*
from ._bn_statistics import (  # noqa: F401 (init_statistics, ...: re-exported)
    STAT_KEYS,
    check_statistics,
    evaluation_options,
    init_statistics,
    pooled_statistics,
    update_statistics,
)
from ._checks import (
    check_lstm_state,
    check_matrix,
    check_options,
    check_params,
    check_sequence,
    check_upstream,
)
from ._dropout import lstm_kernel_masks, mask_at, recurrent_masks
from ._projection import batch_major
from .lstm import gate_gradients, gates_and_cell

INIT_OPTIONS = ("forget_bias", "gamma_init")
FORWARD_OPTIONS = (
    "stats",
    "eps",
    "x_stats",
    "train_stats",
    "eval_stats",
    "renorm_rmax",
    "renorm_dmax",
    "stats_momentum",
    "refresh_batches",
    "carry_normalized_c",
    "recurrent_dropout",
    "dropout_where",
    "dropout_per",
    "dropout_shared",
)
X_STATS = ("step", "shared", "none")
TRAIN_STATS = ("batch", "renorm", "population")
EVAL_STATS = ("population", "batch")
DROPOUT_PLACEMENTS = ("update", "hidden", "cell")
# What a model built by minirnn.nn starts from (so `python -m minirnn train --cell
# bnlstm`), under the options it is given; the functions' own defaults are the paper's.
# The module docstring says why.
TRAINING_DEFAULTS = {"eps": 1.0, "x_stats": "shared", "refresh_batches": 16}
_P = {"recurrent_dropout": 0.3}
GRADCHECK_CASES = (
    {},
    {"carry_normalized_c": True},
    {"training": False},
    {"training": False, "carry_normalized_c": True},
    {**_P, "dropout_where": "update", "dropout_per": "step"},
    {**_P, "dropout_where": "hidden", "dropout_per": "sequence"},
    {**_P, "dropout_where": "cell", "dropout_per": "step"},
    {
        **_P,
        "dropout_where": "cell",
        "dropout_per": "sequence",
        "carry_normalized_c": True,
        "dropout_shared": True,
    },
)
# With a batch of 2, each normalized value is +-1 whatever the input, and the
# gradients through the statistics nearly vanish: check with a larger batch.
GRADCHECK_SIZES = {"batch": 5}
STATE_SIZE = 2
_ONE = np.float32(1.0)


def param_shapes(input_size, hidden_size):
    H, H4 = hidden_size, 4 * hidden_size
    return {
        "W": (input_size, H4),
        "U": (H, H4),
        "b": (H4,),
        "gamma_x": (H4,),
        "gamma_h": (H4,),
        "gamma_c": (H,),
        "beta_c": (H,),
    }


def init(input_size, hidden_size, *, rng, dtype=np.float32, forget_bias=1.0, gamma_init=0.1):
    """Glorot-uniform W, orthogonal U, gamma = ``gamma_init`` (0.1), beta = 0,
    b = 0 except ``forget_bias`` in the f block."""
    H = hidden_size
    params = {
        "W": gate_blocks(lambda: glorot_uniform(rng, input_size, H, dtype), 4),
        "U": gate_blocks(lambda: orthogonal(rng, H, dtype), 4),
        "b": np.zeros(4 * H, dtype=dtype),
    }
    params["b"][H : 2 * H] = forget_bias
    for key in ("gamma_x", "gamma_h", "gamma_c"):
        params[key] = np.full(4 * H if key != "gamma_c" else H, gamma_init, dtype=dtype)
    params["beta_c"] = np.zeros(H, dtype=dtype)
    return params


def population_statistics(params, inputs, stats, **options):
    """Population statistics computed afresh, with the parameters as they are now:
    every batch of ``inputs`` (a list of (B, T, input) arrays, at least 2
    sequences in all) runs a training forward on its own, as in training (its
    h_t depends on the statistics it was normalized with), without dropout, and
    their per-timestep statistics are pooled exactly (weighted by batch size,
    the variance made unbiased as in ``update_statistics``). Rows of ``stats``
    beyond the longest batch, and those of x W with ``x_stats="none"``, are
    kept. This is "precise batch norm" (Wu and Johnson 2021): the moving average
    describes the parameters of several steps ago, which a fast optimizer has
    already moved. ``options``: the forward's (only eps, x_stats and
    carry_normalized_c matter)."""
    options = {k: v for k, v in options.items() if k in ("eps", "x_stats", "carry_normalized_c")}
    batches = []
    for x in inputs:
        _, cache = forward(params, x, **options)
        batches.append((x.shape[0], cache["batch_stats"]))
    return pooled_statistics(stats, batches)


# Where a normalization takes its statistics (``norm[0]`` in the kernels).
BATCH, POPULATION, RENORM = 0, 1, 2


@njit(cache=True, nogil=True, error_model="numpy")
def normalize(z, gamma, beta, norm, pop, y, xhat, inv_std, batch):
    """Batch norm of z: (M, F) into y, xhat: (M, F), inv_std: (F,), with the
    statistics that ``norm`` = (mode, eps, rmax, dmax) names:

    * BATCH: the batch's mean and biased variance, written to ``batch`` =
      (mean, var, r, d), (F,) each (r and d untouched);
    * POPULATION: ``pop`` = (mean, var), (F,) each; ``batch`` untouched;
    * RENORM: batch renormalization (``bn_renorm_train_2d_into``): the batch's
      statistics corrected towards ``pop`` by r and d, all four written to
      ``batch``; ``xhat`` then holds the batch-normalized values.
    ``y`` may be ``z`` itself."""
    mode, eps, rmax, dmax = norm
    mean, var, r, d = batch
    if mode == BATCH:
        bn_train_2d_into(z, gamma, beta, eps, y, xhat, inv_std, mean, var)
    elif mode == POPULATION:
        bn_eval_forward_2d_into(z, gamma, beta, pop[0], pop[1], eps, y, xhat, inv_std)
    else:
        bn_renorm_train_2d_into(
            z, gamma, beta, eps, pop[0], pop[1], rmax, dmax, y, xhat, inv_std, mean, var, r, d
        )


@njit(cache=True, nogil=True, error_model="numpy")
def normalize_backward(dy, xhat, inv_std, gamma, mode, renorm, dz, dgamma, dbeta):
    """Backward of ``normalize``: writes dz: (M, F), adds to dgamma, dbeta: (F,).
    BATCH differentiates through the batch's mean and variance, POPULATION holds
    its statistics constant, RENORM the batch's and r, d = ``renorm``."""
    if mode == BATCH:
        bn_backward_2d_into(dy, xhat, inv_std, gamma, dz, dgamma, dbeta)
    elif mode == POPULATION:
        bn_eval_backward_2d_into(dy, xhat, inv_std, gamma, dz, dgamma, dbeta)
    else:
        bn_renorm_backward_2d_into(
            dy, xhat, inv_std, renorm[0], renorm[1], gamma, dz, dgamma, dbeta
        )


@njit(cache=True, nogil=True, error_model="numpy")
def step_forward(
    bx_t,
    h_prev,
    c_prev,
    U,
    b,
    gamma_h,
    gamma_c,
    beta_c,
    norm,
    pop_h,
    pop_c,
    carry_normalized_c,
    out,
    work,
    mask_h=None,
    mask_g=None,
    mask_c=None,
):
    """One timestep. bx_t: (B, 4H) = BN(x_t W); h_prev, c_prev: (B, H); b: (4H,).

    ``norm`` = (mode, eps, rmax, dmax) says where the statistics come from (see
    ``normalize``): the batch (BATCH), ``pop_h`` = (mean, var) of h U, (4H,)
    each, and ``pop_c`` = (mean, var) of c_t, (H,) each (POPULATION), or the
    batch's corrected towards those (RENORM).
    Writes into ``out`` = (h, c, tanh_c, xhat_c: (B, H); ifog, xhat_h: (B, 4H);
    inv_std_h, mean_h, var_h, r_h, d_h: (4H,); inv_std_c, mean_c, var_c, r_c, d_c:
    (H,)), slices of the loop's buffers (the means and variances with batch
    statistics only, r and d with RENORM only), using ``work`` =
    (hu: (B, 4H), u: (B, H), zero: (4H,) zeros), scratch that every step reuses.
    mask_h, mask_g, mask_c: (B, H) dropout masks on h_{t-1} before U, on g, on the
    carried cell (before BN, or after it when carry_normalized_c); None where there
    is none.
    Readable twin: ``reference/bnlstm.py``, ``step_forward``.
    """
    (
        h,
        c,
        tanh_c,
        xhat_c,
        ifog,
        xhat_h,
        inv_std_h,
        mean_h,
        var_h,
        r_h,
        d_h,
        inv_std_c,
        mean_c,
        var_c,
        r_c,
        d_c,
    ) = out
    hu, u, zero = work
    B, H = h_prev.shape
    if mask_h is None:
        np.dot(h_prev, U, hu)
    else:
        np.dot(h_prev * mask_h, U, hu)  # (h_{t-1} * m_h) U
    # a_t = BN(h_{t-1} U) + BN(x_t W) + b, built in hu: normalized in place, then added
    normalize(hu, gamma_h, zero, norm, pop_h, hu, xhat_h, inv_std_h, (mean_h, var_h, r_h, d_h))
    for n in range(B):
        for j in range(4 * H):
            hu[n, j] = hu[n, j] + bx_t[n, j] + b[j]
    # The raw cell u_t = f c_{t-1} + i g is carried unless carry_normalized_c, in
    # which case BN(u_t) is: each goes straight into c, the other into scratch.
    raw = u if carry_normalized_c else c
    cbn = c if carry_normalized_c else u
    gates_and_cell(hu, c_prev, ifog, raw, mask_g)
    if mask_c is not None and not carry_normalized_c:
        raw *= mask_c  # c_t = m_c * u_t, carried and normalized
    normalize(raw, gamma_c, beta_c, norm, pop_c, cbn, xhat_c, inv_std_c, (mean_c, var_c, r_c, d_c))
    if mask_c is not None and carry_normalized_c:
        cbn *= mask_c  # c_t = m_c * BN(u_t), carried and in the tanh
    for n in range(B):
        for j in range(H):
            tanh_c[n, j] = tanh(cbn[n, j])
        for j in range(H):
            h[n, j] = ifog[n, 2 * H + j] * tanh_c[n, j]


@njit(cache=True, nogil=True, error_model="numpy")
def step_backward(
    dh,
    dc_next,
    c_prev,
    ifog,
    tanh_c,
    xhat_h,
    inv_std_h,
    xhat_c,
    inv_std_c,
    gamma_h,
    gamma_c,
    UT,
    mode,
    renorm_h,
    renorm_c,
    carry_normalized_c,
    out,
    grads,
    work,
    mask_h=None,
    mask_g=None,
    mask_c=None,
):
    """One timestep backwards. dh: (B, H) total dL/dh_t; dc_next: (B, H) dL/d(carried
    c_t) from step t+1. ``mode``: the forward's (``normalize``); renorm_h = (r_h,
    d_h): (4H,) each, renorm_c = (r_c, d_c): (H,) each, read with RENORM only.

    Writes ``out`` = (da, dhu: (B, 4H), dh_prev, dc_prev: (B, H)) with da = dL/da_t
    and dhu = dL/d(h_{t-1} U); ``dc_prev`` may be ``dc_next`` itself (read first).
    Adds this step's gradients to ``grads`` = (dgamma_h: (4H,), dgamma_c,
    dbeta_c: (H,)). ``work`` = (dcbn, dc: (B, H), dbeta_h: (4H,)) is scratch.
    mask_h, mask_g, mask_c: the forward step's dropout masks (or None); each
    multiplies the local derivative where it multiplied the forward value.
    Readable twin: ``reference/bnlstm.py``, ``step_backward``."""
    da, dhu, dh_prev, dc_prev = out
    dgamma_h, dgamma_c, dbeta_c = grads
    dcbn, dc, dbeta_h = work
    B, H = dh.shape
    for n in range(B):
        for j in range(H):
            tc = tanh_c[n, j]
            dcbn[n, j] = dh[n, j] * ifog[n, 2 * H + j] * (_ONE - tc * tc)
        if carry_normalized_c:  # the next step read BN(c_t) as its c_{t-1}
            for j in range(H):
                dcbn[n, j] += dc_next[n, j]
    if mask_c is not None and carry_normalized_c:
        dcbn *= mask_c  # c_t = mask_c * BN(u_t): dL/dBN(u_t) = dL/dc_t * mask_c
    normalize_backward(dcbn, xhat_c, inv_std_c, gamma_c, mode, renorm_c, dc, dgamma_c, dbeta_c)
    # the raw c_t reaches the loss through BN(c_t), and also directly through
    # step t+1 unless the normalized one is what is carried
    if not carry_normalized_c:
        dc += dc_next
        if mask_c is not None:  # c_t = mask_c * u_t: du = dL/dc_t * mask_c
            dc *= mask_c
    gate_gradients(dc, dh, c_prev, ifog, tanh_c, da, dc_prev, mask_g)
    normalize_backward(da, xhat_h, inv_std_h, gamma_h, mode, renorm_h, dhu, dgamma_h, dbeta_h)
    np.dot(dhu, UT, dh_prev)
    if mask_h is not None:  # the product met h_{t-1} * mask_h
        dh_prev *= mask_h


@njit(cache=True, nogil=True)
def normalize_steps(z, gamma, beta, norm, pop_mean, pop_var, y, xhat, inv_std, batch):
    """Batch norm of every timestep of z: (T, B, F) with that timestep's statistics
    (``normalize``): the batch's (written to ``batch`` = (mean, var, r, d), (T, F)
    each), or the population's ``pop_mean, pop_var`` (T_max, F), where t >= T_max
    uses the last row. Writes y, xhat: (T, B, F) and inv_std: (T, F).
    Statistics shared over time are the same call on a (1, T * B, F) view."""
    T_max = pop_mean.shape[0]
    mean, var, r, d = batch
    for t in range(z.shape[0]):
        s = min(t, T_max - 1)
        normalize(
            z[t],
            gamma,
            beta,
            norm,
            (pop_mean[s], pop_var[s]),
            y[t],
            xhat[t],
            inv_std[t],
            (mean[t], var[t], r[t], d[t]),
        )


@njit(cache=True, nogil=True)
def normalize_steps_backward(dy, xhat, inv_std, gamma, mode, r, d, dz, dgamma, dbeta):
    """Backward of ``normalize_steps``: dy, xhat: (T, B, F), inv_std, r, d: (T, F)
    -> writes dz: (T, B, F) and adds the gradients of gamma and beta, summed over
    time, to dgamma, dbeta: (F,)."""
    for t in range(dy.shape[0]):
        normalize_backward(
            dy[t], xhat[t], inv_std[t], gamma, mode, (r[t], d[t]), dz[t], dgamma, dbeta
        )


@njit(cache=True, nogil=True)
def forward_loop(
    bx,
    h0,
    c0,
    U,
    b,
    gamma_h,
    gamma_c,
    beta_c,
    norm,
    stats_h_mean,
    stats_h_var,
    stats_c_mean,
    stats_c_var,
    carry_normalized_c,
    M_h=None,
    M_g=None,
    M_c=None,
):
    """bx: (T, B, 4H) = BN(x_t W) for every t; ``norm`` = (mode, eps, rmax, dmax);
    population statistics (T_max, size) (read unless mode is BATCH);
    M_h, M_g, M_c: dropout masks (T or 1, B, H) or None.
    Returns the per-step arrays the cache keeps."""
    T, B, H = bx.shape[0], h0.shape[0], h0.shape[1]
    dt = bx.dtype
    hs = np.empty((T + 1, B, H), dtype=dt)
    cs = np.empty((T + 1, B, H), dtype=dt)
    ifog = np.empty(bx.shape, dtype=dt)
    tanh_c = np.empty((T, B, H), dtype=dt)
    xhat_h = np.empty(bx.shape, dtype=dt)
    xhat_c = np.empty((T, B, H), dtype=dt)
    inv_std_h = np.empty((T, 4 * H), dtype=dt)
    inv_std_c = np.empty((T, H), dtype=dt)
    # mean, var, r, d of each step: (T, 4H) for h U, (T, H) for c
    stat_h = (
        np.zeros((T, 4 * H), dtype=dt),
        np.zeros((T, 4 * H), dtype=dt),
        np.ones((T, 4 * H), dtype=dt),
        np.zeros((T, 4 * H), dtype=dt),
    )
    stat_c = (
        np.zeros((T, H), dtype=dt),
        np.zeros((T, H), dtype=dt),
        np.ones((T, H), dtype=dt),
        np.zeros((T, H), dtype=dt),
    )
    work = (np.empty((B, 4 * H), dtype=dt), np.empty((B, H), dtype=dt), np.zeros(4 * H, dtype=dt))
    hs[0] = h0
    cs[0] = c0
    T_max = stats_h_mean.shape[0]
    for t in range(T):
        s = min(t, T_max - 1)  # beyond the statistics' length, the last ones serve
        step_forward(
            bx[t],
            hs[t],
            cs[t],
            U,
            b,
            gamma_h,
            gamma_c,
            beta_c,
            norm,
            (stats_h_mean[s], stats_h_var[s]),
            (stats_c_mean[s], stats_c_var[s]),
            carry_normalized_c,
            (
                hs[t + 1],
                cs[t + 1],
                tanh_c[t],
                xhat_c[t],
                ifog[t],
                xhat_h[t],
                inv_std_h[t],
                stat_h[0][t],
                stat_h[1][t],
                stat_h[2][t],
                stat_h[3][t],
                inv_std_c[t],
                stat_c[0][t],
                stat_c[1][t],
                stat_c[2][t],
                stat_c[3][t],
            ),
            work,
            mask_at(M_h, t),
            mask_at(M_g, t),
            mask_at(M_c, t),
        )
    return hs, cs, ifog, tanh_c, xhat_h, inv_std_h, xhat_c, inv_std_c, stat_h, stat_c


@njit(cache=True, nogil=True)
def backward_loop(
    dhs,
    dh_T,
    dc_T,
    cs,
    ifog,
    tanh_c,
    xhat_h,
    inv_std_h,
    xhat_c,
    inv_std_c,
    gamma_h,
    gamma_c,
    UT,
    mode,
    r_h,
    d_h,
    r_c,
    d_c,
    carry_normalized_c,
    M_h=None,
    M_g=None,
    M_c=None,
):
    """dhs: (T, B, H) time-major; ``mode`` and r_*, d_*: (T, size) the forward's;
    M_*: the forward's masks. Returns das, dhus: (T, B, 4H), dh0, dc0: (B, H) and
    the gradients of gamma_h, gamma_c, beta_c summed over time."""
    T, B, H = dhs.shape
    dt = dhs.dtype
    das = np.empty(ifog.shape, dtype=dt)
    dhus = np.empty(ifog.shape, dtype=dt)
    grads = (np.zeros(4 * H, dtype=dt), np.zeros(H, dtype=dt), np.zeros(H, dtype=dt))
    work = (np.empty((B, H), dtype=dt), np.empty((B, H), dtype=dt), np.zeros(4 * H, dtype=dt))
    dh = np.empty((B, H), dtype=dt)
    dh_next, dc_next = dh_T.copy(), dc_T.copy()  # carried, and rewritten, by every step
    for t in range(T - 1, -1, -1):
        for n in range(B):
            for j in range(H):
                dh[n, j] = dhs[t, n, j] + dh_next[n, j]
        step_backward(
            dh,
            dc_next,
            cs[t],
            ifog[t],
            tanh_c[t],
            xhat_h[t],
            inv_std_h[t],
            xhat_c[t],
            inv_std_c[t],
            gamma_h,
            gamma_c,
            UT,
            mode,
            (r_h[t], d_h[t]),
            (r_c[t], d_c[t]),
            carry_normalized_c,
            (das[t], dhus[t], dh_next, dc_next),
            grads,
            work,
            mask_at(M_h, t),
            mask_at(M_g, t),
            mask_at(M_c, t),
        )
    return das, dhus, dh_next, dc_next, grads[0], grads[1], grads[2]


def statistics_mode(training, train_stats="batch", eval_stats="population"):
    """BATCH, POPULATION or RENORM: what the normalizations use in this call."""
    if train_stats not in TRAIN_STATS:
        raise ValueError(f"train_stats: expected one of {TRAIN_STATS}, got {train_stats!r}")
    if eval_stats not in EVAL_STATS:
        raise ValueError(f"eval_stats: expected one of {EVAL_STATS}, got {eval_stats!r}")
    name = train_stats if training else eval_stats
    return {"batch": BATCH, "population": POPULATION, "renorm": RENORM}[name]


def forward(
    params,
    x,
    state=None,
    *,
    training=True,
    rng=None,
    stats=None,
    eps=1e-5,
    x_stats="step",
    train_stats="batch",
    eval_stats="population",
    renorm_rmax=3.0,
    renorm_dmax=5.0,
    stats_momentum=0.1,
    refresh_batches=0,
    carry_normalized_c=False,
    recurrent_dropout=0.0,
    dropout_where="update",
    dropout_per="sequence",
    dropout_shared=False,
    **options,
):
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache.

    ``stats``: population statistics, required when they are used: in
    evaluation (``training=False``) unless ``eval_stats="batch"``, and in
    training with ``train_stats`` "renorm" or "population". When the batch's
    statistics are computed, ``cache["batch_stats"]`` holds them per timestep,
    for ``update_statistics``. ``x_stats``: "step", "shared" or "none" (the
    module docstring).

    Recurrent dropout (off by default), as in ``lstm.forward``:
    ``recurrent_dropout`` is the rate p, ``dropout_where`` one of "update" (g),
    "hidden" (h_{t-1} before U), "cell" (the carried cell: before BN(c), or after
    it with ``carry_normalized_c``); ``dropout_per`` "sequence" or "step";
    ``dropout_shared`` one mask for the whole batch. Masks are drawn from ``rng``
    when ``training`` (an error if it is None) and kept in ``cache["masks"]``;
    ``training=False`` drops nothing. The batch statistics in training are those
    of the masked values.
    """
    check_options("bnlstm.forward", options, FORWARD_OPTIONS)
    if x_stats not in X_STATS:
        raise ValueError(f"x_stats: expected one of {X_STATS}, got {x_stats!r}")
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps: expected a finite number > 0, got {eps}")
    if not 0 < stats_momentum <= 1:
        raise ValueError(
            f"stats_momentum: expected a number in (0, 1], the weight of a new "
            f"batch in the population statistics, got {stats_momentum}"
        )
    if refresh_batches != int(refresh_batches) or refresh_batches < 0:
        raise ValueError(
            f"refresh_batches: expected a whole number >= 0 of training batches, "
            f"got {refresh_batches}"
        )
    if not (renorm_rmax >= 1 and renorm_dmax >= 0):
        raise ValueError(
            f"renorm_rmax, renorm_dmax: expected rmax >= 1 and dmax >= 0, got "
            f"{renorm_rmax}, {renorm_dmax}"
        )
    mode = statistics_mode(training, train_stats, eval_stats)
    I, H = check_matrix(params, "W").shape[0], check_matrix(params, "U").shape[0]
    dtype = check_params(params, param_shapes(I, H))
    check_sequence(x, I, dtype)
    B, T = x.shape[:2]
    masks = recurrent_masks(
        "bnlstm",
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
    norm = (mode, dtype.type(eps), dtype.type(renorm_rmax), dtype.type(renorm_dmax))
    if mode == BATCH:  # no population statistics are read
        pop = {k: np.zeros((1, 4 * H if not k.endswith("_c") else H), dtype) for k in STAT_KEYS}
    else:
        pop = check_statistics(stats, H, dtype, x_stats)
    # BN(x_t W) does not depend on h: all timesteps before the loop.
    xw = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * B, I) @ params["W"]
    xw = xw.reshape(T, B, 4 * H)
    x_cache = {}
    if x_stats == "none":
        bx = xw
    else:
        # shared: one (1, T*B, 4H) "timestep" holding every row, so one set of statistics
        Tx = T if x_stats == "step" else 1
        z = xw.reshape(Tx, T * B // Tx, 4 * H)
        x_cache = {
            "xhat_x": np.empty_like(z),
            "inv_std_x": np.empty((Tx, 4 * H), dtype),
            "stat_x": (
                np.zeros((Tx, 4 * H), dtype),
                np.zeros((Tx, 4 * H), dtype),
                np.ones((Tx, 4 * H), dtype),
                np.zeros((Tx, 4 * H), dtype),
            ),
        }
        bx = np.empty_like(z)
        normalize_steps(
            z,
            params["gamma_x"],
            np.zeros(4 * H, dtype),
            norm,
            pop["mean_x"],
            pop["var_x"],
            bx,
            x_cache["xhat_x"],
            x_cache["inv_std_x"],
            x_cache["stat_x"],
        )
        bx = bx.reshape(T, B, 4 * H)
    (hs, cs, ifog, tanh_c, xhat_h, inv_std_h, xhat_c, inv_std_c, stat_h, stat_c) = forward_loop(
        bx,
        h0,
        c0,
        np.ascontiguousarray(params["U"]),
        params["b"],
        params["gamma_h"],
        params["gamma_c"],
        params["beta_c"],
        norm,
        pop["mean_h"],
        pop["var_h"],
        pop["mean_c"],
        pop["var_c"],
        bool(carry_normalized_c),
        *lstm_kernel_masks(masks, B),
    )
    cache = {
        "x": x,
        "hs": hs,
        "cs": cs,
        "ifog": ifog,
        "tanh_c": tanh_c,
        "xhat_h": xhat_h,
        "inv_std_h": inv_std_h,
        "xhat_c": xhat_c,
        "inv_std_c": inv_std_c,
        "renorm": {"h": stat_h[2:], "c": stat_c[2:]},
        **x_cache,
        "training": bool(training),
        "mode": mode,
        "x_stats": x_stats,
        "stats_momentum": float(stats_momentum),
        "carry_normalized_c": bool(carry_normalized_c),
        "batch_size": B,
        "masks": masks,
        "has_state": state is not None,
        "state": (hs[-1], cs[-1]),
    }
    if mode != POPULATION:
        cache["batch_stats"] = {
            "mean_h": stat_h[0],
            "var_h": stat_h[1],
            "mean_c": stat_c[0],
            "var_c": stat_c[1],
        }
        if x_stats != "none":
            cache["batch_stats"].update(mean_x=x_cache["stat_x"][0], var_x=x_cache["stat_x"][1])
    return batch_major(hs), cache


def backward(params, dhs, cache, dstate=None, *, input_grad=True):
    """dhs: (batch, time, hidden) -> (dx: (batch, time, input), grads).
    ``dstate``, optional: ``(dh_T, dc_T)``, the gradient of ``cache["state"]``.
    ``input_grad=False`` skips dx (returned as None) when the input is data."""
    x, hs = cache["x"], cache["hs"]
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    I = x.shape[2]
    dtype = x.dtype
    dhs = check_upstream(dhs, (B, T, H), dtype)
    dh_T, dc_T = check_lstm_state("dstate", dstate, B, H, dtype, ("dh_T", "dc_T"))
    mode, carry = cache["mode"], cache["carry_normalized_c"]
    U = params["U"]
    M_h, M_g, M_c = lstm_kernel_masks(cache["masks"], B)
    (r_h, d_h), (r_c, d_c) = cache["renorm"]["h"], cache["renorm"]["c"]
    das, dhus, dh0, dc0, dgamma_h, dgamma_c, dbeta_c = backward_loop(
        np.ascontiguousarray(dhs.transpose(1, 0, 2)),
        dh_T,
        dc_T,
        cache["cs"],
        cache["ifog"],
        cache["tanh_c"],
        cache["xhat_h"],
        cache["inv_std_h"],
        cache["xhat_c"],
        cache["inv_std_c"],
        params["gamma_h"],
        params["gamma_c"],
        np.ascontiguousarray(U.T),
        mode,
        r_h,
        d_h,
        r_c,
        d_c,
        carry,
        M_h,
        M_g,
        M_c,
    )
    # The x branch's batch norm, after the loop (it has no shift).
    dgamma_x = np.zeros(4 * H, dtype)
    if cache["x_stats"] == "none":
        dxw = das
    else:
        xhat_x = cache["xhat_x"]  # (T, B, 4H), or (1, T*B, 4H) when shared
        dxw = np.empty_like(xhat_x)
        _, _, r_x, d_x = cache["stat_x"]
        normalize_steps_backward(
            das.reshape(xhat_x.shape),
            xhat_x,
            cache["inv_std_x"],
            params["gamma_x"],
            mode,
            r_x,
            d_x,
            dxw,
            dgamma_x,
            np.zeros(4 * H, dtype),
        )
    x_tm = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * B, I)
    h_prev = hs[:-1] if M_h is None else hs[:-1] * M_h  # what U met
    grads = {
        "W": x_tm.T @ dxw.reshape(T * B, 4 * H),
        "U": h_prev.reshape(T * B, H).T @ dhus.reshape(T * B, 4 * H),
        "b": das.reshape(T * B, 4 * H).sum(axis=0),
        "gamma_x": dgamma_x,
        "gamma_h": dgamma_h,
        "gamma_c": dgamma_c,
        "beta_c": dbeta_c,
    }
    if cache["has_state"]:
        grads["h0"], grads["c0"] = dh0, dc0
    if not input_grad:
        return None, grads
    dx = (dxw.reshape(T * B, 4 * H) @ params["W"].T).reshape(T, B, I).transpose(1, 0, 2)
    return np.ascontiguousarray(dx), grads
