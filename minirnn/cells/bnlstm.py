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
  them moved towards a training batch's; nothing is kept in module globals.

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

``gamma`` starts at 0.1 for all three (the paper: with gamma 1 the normalized
pre-activations saturate the sigmoids and tanh and the gradient vanishes), beta
at 0, ``b`` at 0 except ``forget_bias`` (default 1) in its f block.

Code names: ``bx`` = BN(x_t W) for every t, computed before the loop (it does not
depend on h); ``xhat_*``/``inv_std_*``
are BN's normalized values and ``1/sqrt(var + eps)`` that backward needs; ``cbn``
= BN(c_t); ``tanh_c`` = tanh(cbn); ``ifog`` the activated gates.
"""
import numpy as np
from numba import njit

from ..functional.activations import tanh
from ..functional.batchnorm import (bn_backward_2d_into, bn_eval_backward_2d_into,
                                    bn_eval_forward_2d_into, bn_train_2d_into,
                                    update_running_stats)
from ..initializers import gate_blocks, glorot_uniform, orthogonal
from ._dropout import lstm_kernel_masks, mask_at, recurrent_masks
from ._lstm_gates import gate_gradients, gates_and_cell
from ._checks import (check_lstm_state, check_matrix, check_options, check_params,
                      check_sequence, check_upstream)
from ._projection import batch_major

INIT_OPTIONS = ("forget_bias", "gamma_init")
FORWARD_OPTIONS = ("stats", "eps", "carry_normalized_c", "recurrent_dropout", "dropout_where",
                   "dropout_per", "dropout_shared")
DROPOUT_PLACEMENTS = ("update", "hidden", "cell")
_P = {"recurrent_dropout": 0.3}
GRADCHECK_CASES = ({}, {"carry_normalized_c": True}, {"training": False},
                   {"training": False, "carry_normalized_c": True},
                   {**_P, "dropout_where": "update", "dropout_per": "step"},
                   {**_P, "dropout_where": "hidden", "dropout_per": "sequence"},
                   {**_P, "dropout_where": "cell", "dropout_per": "step"},
                   {**_P, "dropout_where": "cell", "dropout_per": "sequence",
                    "carry_normalized_c": True, "dropout_shared": True})
# With a batch of 2, each normalized value is +-1 whatever the input, and the
# gradients through the statistics nearly vanish: check with a larger batch.
GRADCHECK_SIZES = {"batch": 5}
STATE_SIZE = 2
_ONE = np.float32(1.0)
STAT_KEYS = ("mean_x", "var_x", "mean_h", "var_h", "mean_c", "var_c")


def param_shapes(input_size, hidden_size):
    H, H4 = hidden_size, 4 * hidden_size
    return {"W": (input_size, H4), "U": (H, H4), "b": (H4,), "gamma_x": (H4,),
            "gamma_h": (H4,), "gamma_c": (H,), "beta_c": (H,)}


def init(input_size, hidden_size, *, rng, dtype=np.float32, forget_bias=1.0, gamma_init=0.1):
    """Glorot-uniform W, orthogonal U, gamma = ``gamma_init`` (0.1), beta = 0,
    b = 0 except ``forget_bias`` in the f block."""
    H = hidden_size
    params = {"W": gate_blocks(lambda: glorot_uniform(rng, input_size, H, dtype), 4),
              "U": gate_blocks(lambda: orthogonal(rng, H, dtype), 4),
              "b": np.zeros(4 * H, dtype=dtype)}
    params["b"][H:2 * H] = forget_bias
    for key in ("gamma_x", "gamma_h", "gamma_c"):
        params[key] = np.full(4 * H if key != "gamma_c" else H, gamma_init, dtype=dtype)
    params["beta_c"] = np.zeros(H, dtype=dtype)
    return params


def init_statistics(hidden_size, max_time, dtype=np.float32):
    """Population statistics for ``max_time`` timesteps: means 0, variances 1."""
    H4, H = 4 * hidden_size, hidden_size
    size = {"x": H4, "h": H4, "c": H}
    stats = {}
    for part, n in size.items():
        stats[f"mean_{part}"] = np.zeros((max_time, n), dtype=dtype)
        stats[f"var_{part}"] = np.ones((max_time, n), dtype=dtype)
    return stats


def evaluation_options(hidden_size, time, rng):
    """Forward options for a gradient check in evaluation mode: random population
    statistics one step shorter than the sequence, so the rule "t >= T_max uses
    the last statistics" is exercised too."""
    stats = init_statistics(hidden_size, max(1, time - 1), np.float64)
    for key in STAT_KEYS:
        stats[key] = (rng.uniform(0.5, 2.0, stats[key].shape) if key.startswith("var")
                      else 0.3 * rng.standard_normal(stats[key].shape))
    return {"stats": stats}


def update_statistics(stats, cache, momentum=0.1):
    """New population statistics: ``stats`` moved towards the per-timestep batch
    statistics of a training forward (``cache["batch_stats"]``), by the moving
    average of ``functional.batchnorm`` (PyTorch's convention: ``momentum`` is the
    weight of the new value). A batch longer than ``stats`` extends them.

    A batch of one example has no variance to contribute (PyTorch's convention
    divides by M - 1): its statistics are left out and ``stats`` comes back
    unchanged, so a last batch of one in an epoch does not stop training."""
    if "batch_stats" not in cache:
        raise ValueError("update_statistics: expected the cache of a training forward "
                         "(training=True), which holds the batch statistics; got one "
                         "without 'batch_stats'")
    if cache["batch_size"] < 2:
        return {key: stats[key].copy() for key in STAT_KEYS}
    batch = cache["batch_stats"]
    T = batch["mean_x"].shape[0]
    T_max = stats["mean_x"].shape[0]
    new = {}
    for key in STAT_KEYS:
        old = stats[key]
        if T > T_max:   # the new timesteps start from their last known statistics
            old = np.concatenate([old, np.repeat(old[-1:], T - T_max, axis=0)])
        new[key] = old.copy()
    for part in ("x", "h", "c"):
        m, v = update_running_stats(new[f"mean_{part}"][:T], new[f"var_{part}"][:T],
                                    batch[f"mean_{part}"], batch[f"var_{part}"],
                                    momentum=momentum, count=cache["batch_size"],
                                    convention="pytorch")
        new[f"mean_{part}"][:T], new[f"var_{part}"][:T] = m, v
    return new


@njit(cache=True, error_model="numpy")
def step_forward(bx_t, h_prev, c_prev, U, b, gamma_h, gamma_c, beta_c, eps, training, pop_h,
                 pop_c, carry_normalized_c, out, work, mask_h=None, mask_g=None, mask_c=None):
    """One timestep. bx_t: (B, 4H) = BN(x_t W); h_prev, c_prev: (B, H); b: (4H,).

    In training the statistics come from the batch; in evaluation from
    ``pop_h`` = (mean, var) of h U, (4H,) each, and ``pop_c`` = (mean, var) of
    c_t, (H,) each.
    Writes into ``out`` = (h, c, tanh_c, xhat_c: (B, H); ifog, xhat_h: (B, 4H);
    inv_std_h, mean_h, var_h: (4H,); inv_std_c, mean_c, var_c: (H,)), slices of the
    loop's buffers (the means and variances in training only), using ``work`` =
    (hu: (B, 4H), u: (B, H), zero: (4H,) zeros), scratch that every step reuses.
    mask_h, mask_g, mask_c: (B, H) dropout masks on h_{t-1} before U, on g, on the
    carried cell (before BN, or after it when carry_normalized_c); None where there
    is none.
    Readable twin: ``reference/bnlstm.py``, ``step_forward``.
    """
    (h, c, tanh_c, xhat_c, ifog, xhat_h, inv_std_h, mean_h, var_h,
     inv_std_c, mean_c, var_c) = out
    hu, u, zero = work
    B, H = h_prev.shape
    if mask_h is None:
        np.dot(h_prev, U, hu)
    else:
        np.dot(h_prev * mask_h, U, hu)    # (h_{t-1} * m_h) U
    # a_t = BN(h_{t-1} U) + BN(x_t W) + b, built in hu: normalized in place, then added
    if training:
        bn_train_2d_into(hu, gamma_h, zero, eps, hu, xhat_h, inv_std_h, mean_h, var_h)
    else:
        bn_eval_forward_2d_into(hu, gamma_h, zero, pop_h[0], pop_h[1], eps, hu, xhat_h, inv_std_h)
    for n in range(B):
        for j in range(4 * H):
            hu[n, j] = hu[n, j] + bx_t[n, j] + b[j]
    # The raw cell u_t = f c_{t-1} + i g is carried unless carry_normalized_c, in
    # which case BN(u_t) is: each goes straight into c, the other into scratch.
    raw = u if carry_normalized_c else c
    cbn = c if carry_normalized_c else u
    gates_and_cell(hu, c_prev, ifog, raw, mask_g)
    if mask_c is not None and not carry_normalized_c:
        raw *= mask_c                      # c_t = m_c * u_t, carried and normalized
    if training:
        bn_train_2d_into(raw, gamma_c, beta_c, eps, cbn, xhat_c, inv_std_c, mean_c, var_c)
    else:
        bn_eval_forward_2d_into(raw, gamma_c, beta_c, pop_c[0], pop_c[1], eps, cbn, xhat_c,
                                inv_std_c)
    if mask_c is not None and carry_normalized_c:
        cbn *= mask_c                      # c_t = m_c * BN(u_t), carried and in the tanh
    for n in range(B):
        for j in range(H):
            tanh_c[n, j] = tanh(cbn[n, j])
        for j in range(H):
            h[n, j] = ifog[n, 2 * H + j] * tanh_c[n, j]


@njit(cache=True, error_model="numpy")
def step_backward(dh, dc_next, c_prev, ifog, tanh_c, xhat_h, inv_std_h, xhat_c, inv_std_c,
                  gamma_h, gamma_c, UT, training, carry_normalized_c, out, grads, work,
                  mask_h=None, mask_g=None, mask_c=None):
    """One timestep backwards. dh: (B, H) total dL/dh_t; dc_next: (B, H) dL/d(carried
    c_t) from step t+1.

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
        if carry_normalized_c:          # the next step read BN(c_t) as its c_{t-1}
            for j in range(H):
                dcbn[n, j] += dc_next[n, j]
    if mask_c is not None and carry_normalized_c:
        dcbn *= mask_c              # c_t = mask_c * BN(u_t): dL/dBN(u_t) = dL/dc_t * mask_c
    if training:
        bn_backward_2d_into(dcbn, xhat_c, inv_std_c, gamma_c, dc, dgamma_c, dbeta_c)
    else:
        bn_eval_backward_2d_into(dcbn, xhat_c, inv_std_c, gamma_c, dc, dgamma_c, dbeta_c)
    # the raw c_t reaches the loss through BN(c_t), and also directly through
    # step t+1 unless the normalized one is what is carried
    if not carry_normalized_c:
        dc += dc_next
        if mask_c is not None:      # c_t = mask_c * u_t: du = dL/dc_t * mask_c
            dc *= mask_c
    gate_gradients(dc, dh, c_prev, ifog, tanh_c, da, dc_prev, mask_g)
    if training:
        bn_backward_2d_into(da, xhat_h, inv_std_h, gamma_h, dhu, dgamma_h, dbeta_h)
    else:
        bn_eval_backward_2d_into(da, xhat_h, inv_std_h, gamma_h, dhu, dgamma_h, dbeta_h)
    np.dot(dhu, UT, dh_prev)
    if mask_h is not None:          # the product met h_{t-1} * mask_h
        dh_prev *= mask_h


@njit(cache=True)
def normalize_steps(z, gamma, beta, eps, training, pop_mean, pop_var, y, xhat, inv_std, mean,
                    var):
    """Batch norm of every timestep of z: (T, B, F) with that timestep's statistics:
    the batch's in training (written to mean, var: (T, F)), the population's
    ``pop_mean, pop_var`` (T_max, F) in evaluation, where t >= T_max uses the last.
    Writes y, xhat: (T, B, F) and inv_std: (T, F)."""
    T_max = pop_mean.shape[0]
    for t in range(z.shape[0]):
        if training:
            bn_train_2d_into(z[t], gamma, beta, eps, y[t], xhat[t], inv_std[t], mean[t], var[t])
        else:
            s = min(t, T_max - 1)
            bn_eval_forward_2d_into(z[t], gamma, beta, pop_mean[s], pop_var[s], eps, y[t],
                                    xhat[t], inv_std[t])


@njit(cache=True)
def normalize_steps_backward(dy, xhat, inv_std, gamma, training, dz, dgamma, dbeta):
    """Backward of ``normalize_steps``: dy, xhat: (T, B, F), inv_std: (T, F) ->
    writes dz: (T, B, F) and adds the gradients of gamma and beta, summed over
    time, to dgamma, dbeta: (F,)."""
    for t in range(dy.shape[0]):
        if training:
            bn_backward_2d_into(dy[t], xhat[t], inv_std[t], gamma, dz[t], dgamma, dbeta)
        else:
            bn_eval_backward_2d_into(dy[t], xhat[t], inv_std[t], gamma, dz[t], dgamma, dbeta)


@njit(cache=True)
def forward_loop(bx, h0, c0, U, b, gamma_h, gamma_c, beta_c, eps, training, stats_h_mean,
                 stats_h_var, stats_c_mean, stats_c_var, carry_normalized_c, M_h=None, M_g=None,
                 M_c=None):
    """bx: (T, B, 4H) = BN(x_t W) for every t; population statistics (T_max, size)
    (read in evaluation only); M_h, M_g, M_c: dropout masks (T or 1, B, H) or None.
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
    mean_h = np.zeros((T, 4 * H), dtype=dt)
    var_h = np.zeros((T, 4 * H), dtype=dt)
    mean_c = np.zeros((T, H), dtype=dt)
    var_c = np.zeros((T, H), dtype=dt)
    work = (np.empty((B, 4 * H), dtype=dt), np.empty((B, H), dtype=dt),
            np.zeros(4 * H, dtype=dt))
    hs[0] = h0
    cs[0] = c0
    T_max = stats_h_mean.shape[0]
    for t in range(T):
        s = min(t, T_max - 1)       # beyond the statistics' length, the last ones serve
        step_forward(bx[t], hs[t], cs[t], U, b, gamma_h, gamma_c, beta_c, eps, training,
                     (stats_h_mean[s], stats_h_var[s]), (stats_c_mean[s], stats_c_var[s]),
                     carry_normalized_c,
                     (hs[t + 1], cs[t + 1], tanh_c[t], xhat_c[t], ifog[t], xhat_h[t],
                      inv_std_h[t], mean_h[t], var_h[t], inv_std_c[t], mean_c[t], var_c[t]),
                     work, mask_at(M_h, t), mask_at(M_g, t), mask_at(M_c, t))
    return (hs, cs, ifog, tanh_c, xhat_h, inv_std_h, mean_h, var_h, xhat_c, inv_std_c,
            mean_c, var_c)


@njit(cache=True)
def backward_loop(dhs, dh_T, dc_T, cs, ifog, tanh_c, xhat_h, inv_std_h, xhat_c, inv_std_c,
                  gamma_h, gamma_c, UT, training, carry_normalized_c, M_h=None, M_g=None,
                  M_c=None):
    """dhs: (T, B, H) time-major; M_*: the forward's masks. Returns das, dhus:
    (T, B, 4H), dh0, dc0: (B, H) and the gradients of gamma_h, gamma_c, beta_c
    summed over time."""
    T, B, H = dhs.shape
    dt = dhs.dtype
    das = np.empty(ifog.shape, dtype=dt)
    dhus = np.empty(ifog.shape, dtype=dt)
    grads = (np.zeros(4 * H, dtype=dt), np.zeros(H, dtype=dt), np.zeros(H, dtype=dt))
    work = (np.empty((B, H), dtype=dt), np.empty((B, H), dtype=dt), np.zeros(4 * H, dtype=dt))
    dh = np.empty((B, H), dtype=dt)
    dh_next, dc_next = dh_T.copy(), dc_T.copy()     # carried, and rewritten, by every step
    for t in range(T - 1, -1, -1):
        for n in range(B):
            for j in range(H):
                dh[n, j] = dhs[t, n, j] + dh_next[n, j]
        step_backward(dh, dc_next, cs[t], ifog[t], tanh_c[t], xhat_h[t], inv_std_h[t],
                      xhat_c[t], inv_std_c[t], gamma_h, gamma_c, UT, training,
                      carry_normalized_c, (das[t], dhus[t], dh_next, dc_next), grads, work,
                      mask_at(M_h, t), mask_at(M_g, t), mask_at(M_c, t))
    return das, dhus, dh_next, dc_next, grads[0], grads[1], grads[2]


def _check_stats(stats, H, dtype):
    if stats is None:
        raise ValueError("stats: evaluation (training=False) needs the population statistics "
                         "from init_statistics/update_statistics; got None")
    for key in STAT_KEYS:
        if key not in stats:
            raise KeyError(f"stats: expected keys {list(STAT_KEYS)}, got {sorted(stats)}")
        size = H if key.endswith("_c") else 4 * H
        a = stats[key]
        if a.ndim != 2 or a.shape[1] != size or a.shape[0] < 1:
            raise ValueError(f"stats['{key}']: expected shape (T_max, {size}), got {a.shape}")
    lengths = {key: stats[key].shape[0] for key in STAT_KEYS}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"stats: expected one T_max for all statistics, got lengths {lengths}")
    return {k: np.ascontiguousarray(stats[k], dtype=dtype) for k in STAT_KEYS}


def forward(params, x, state=None, *, training=True, rng=None, stats=None, eps=1e-5,
            carry_normalized_c=False, recurrent_dropout=0.0, dropout_where="update",
            dropout_per="sequence", dropout_shared=False, **options):
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache.

    ``stats``: population statistics, required when ``training=False``.
    In training, ``cache["batch_stats"]`` holds this batch's per-timestep
    statistics, for ``update_statistics``.

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
    I, H = check_matrix(params, "W").shape[0], check_matrix(params, "U").shape[0]
    dtype = check_params(params, param_shapes(I, H))
    check_sequence(x, I, dtype)
    B, T = x.shape[:2]
    masks = recurrent_masks("bnlstm", DROPOUT_PLACEMENTS, rate=recurrent_dropout,
                            where=dropout_where, per=dropout_per, shared=dropout_shared,
                            training=training, rng=rng, time=T, batch=B, hidden=H, dtype=dtype)
    h0, c0 = check_lstm_state("state", state, B, H, dtype)
    eps = dtype.type(eps)
    if training:
        pop = {k: np.zeros((1, 4 * H if not k.endswith("_c") else H), dtype) for k in STAT_KEYS}
    else:
        pop = _check_stats(stats, H, dtype)
    # BN(x_t W) does not depend on h: all timesteps before the loop.
    xw = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * B, I) @ params["W"]
    xw = xw.reshape(T, B, 4 * H)
    bx, xhat_x = np.empty_like(xw), np.empty_like(xw)
    inv_std_x = np.empty((T, 4 * H), dtype)
    mean_x, var_x = np.zeros((T, 4 * H), dtype), np.zeros((T, 4 * H), dtype)
    normalize_steps(xw, params["gamma_x"], np.zeros(4 * H, dtype), eps, bool(training),
                    pop["mean_x"], pop["var_x"], bx, xhat_x, inv_std_x, mean_x, var_x)
    (hs, cs, ifog, tanh_c, xhat_h, inv_std_h, mean_h, var_h, xhat_c, inv_std_c, mean_c,
     var_c) = forward_loop(bx, h0, c0, np.ascontiguousarray(params["U"]), params["b"],
                           params["gamma_h"], params["gamma_c"], params["beta_c"], eps,
                           bool(training), pop["mean_h"], pop["var_h"], pop["mean_c"],
                           pop["var_c"], bool(carry_normalized_c), *lstm_kernel_masks(masks, B))
    cache = {"x": x, "hs": hs, "cs": cs, "ifog": ifog, "tanh_c": tanh_c, "xhat_x": xhat_x,
             "inv_std_x": inv_std_x, "xhat_h": xhat_h, "inv_std_h": inv_std_h,
             "xhat_c": xhat_c, "inv_std_c": inv_std_c, "training": bool(training),
             "carry_normalized_c": bool(carry_normalized_c), "batch_size": B, "masks": masks,
             "has_state": state is not None, "state": (hs[-1], cs[-1])}
    if training:
        cache["batch_stats"] = {"mean_x": mean_x, "var_x": var_x, "mean_h": mean_h,
                                "var_h": var_h, "mean_c": mean_c, "var_c": var_c}
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
    training, carry = cache["training"], cache["carry_normalized_c"]
    U = params["U"]
    M_h, M_g, M_c = lstm_kernel_masks(cache["masks"], B)
    das, dhus, dh0, dc0, dgamma_h, dgamma_c, dbeta_c = backward_loop(
        np.ascontiguousarray(dhs.transpose(1, 0, 2)), dh_T, dc_T, cache["cs"], cache["ifog"],
        cache["tanh_c"], cache["xhat_h"], cache["inv_std_h"], cache["xhat_c"],
        cache["inv_std_c"], params["gamma_h"], params["gamma_c"], np.ascontiguousarray(U.T),
        training, carry, M_h, M_g, M_c)
    # The x branch's batch norm, per timestep, after the loop (it has no shift).
    dxw = np.empty_like(das)
    dgamma_x, no_shift = np.zeros(4 * H, dtype), np.zeros(4 * H, dtype)
    normalize_steps_backward(das, cache["xhat_x"], cache["inv_std_x"], params["gamma_x"],
                             training, dxw, dgamma_x, no_shift)
    x_tm = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * B, I)
    h_prev = hs[:-1] if M_h is None else hs[:-1] * M_h     # what U met
    grads = {"W": x_tm.T @ dxw.reshape(T * B, 4 * H),
             "U": h_prev.reshape(T * B, H).T @ dhus.reshape(T * B, 4 * H),
             "b": das.reshape(T * B, 4 * H).sum(axis=0), "gamma_x": dgamma_x, "gamma_h": dgamma_h, "gamma_c": dgamma_c,
             "beta_c": dbeta_c}
    if cache["has_state"]:
        grads["h0"], grads["c0"] = dh0, dc0
    if not input_grad:
        return None, grads
    dx = (dxw.reshape(T * B, 4 * H) @ params["W"].T).reshape(T, B, I).transpose(1, 0, 2)
    return np.ascontiguousarray(dx), grads
