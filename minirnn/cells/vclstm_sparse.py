"""Sparse inference for the variable-computation LSTM (``vclstm``): the same outputs
as ``vclstm.forward``, computed with only the rows and columns of W and U that the
masks select, so that the saving ``vclstm.macs`` counts is real.

The masks are prefixes (``_vc_mask``): at step t the hidden mask is nonzero on units
0..K-1 and the input mask on inputs 0..Kx-1, and nothing else is read or updated::

    a[:, units < K] = xbar[:, :Kx] W[:Kx, units < K] + hbar[:, :K] U[:K, units < K] + b
    units K..H-1 keep their h and c

The columns of unit j are four, one per gate, spread over the gate blocks of W and
U. ``unit_major`` reorders them once, ``[i_0, f_0, o_0, g_0, i_1, ...]``, so that
the columns of units 0..K-1 are the first 4K, one contiguous slice. K is the
largest prefix over the batch: the saving is real when the examples of a batch
agree (or at batch 1); a batch mixing long and short prefixes pays for the longest.

Inference only: no cache, no backward. ``tutorials/06_variable_computation.md``
uses it; ``benchmarks/bench_vc_sparse.py`` times it against ``vclstm.forward``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from ..functional.activations import sigmoid, tanh
from ..types import Params, Shapes, State
from . import _vc_mask as vc
from ._projection import batch_major
from ._vc_mask import scheduler_and_masks

GATES = 4
_ONE = np.float32(1.0)


def param_shapes(input_size: int, hidden_size: int) -> Shapes:
    """The parameters of ``vclstm``."""
    return vc.param_shapes(input_size, hidden_size, GATES)


def unit_major(M: np.ndarray, H: int) -> np.ndarray:
    """Reorder the 4H gate columns ``[i_0..i_{H-1}, f_0.., o_0.., g_0..]`` of M as
    ``[i_0, f_0, o_0, g_0, i_1, f_1, ...]``: then the columns of units 0..K-1 are
    the first 4K, one contiguous slice."""
    lead = M.shape[:-1]
    return np.ascontiguousarray(M.reshape(*lead, 4, H).swapaxes(-1, -2).reshape(*lead, 4 * H))


@njit(cache=True, nogil=True)
def longest_prefix(e):
    """1 + the last unit whose mask is nonzero in *any* example of the batch (0 when
    none is). e: (B, D). The masks are non-increasing in the unit index."""
    K = 0
    for n in range(e.shape[0]):
        for j in range(e.shape[1] - 1, K - 1, -1):
            if e[n, j] != 0:
                K = j + 1
                break
    return K


@njit(cache=True, nogil=True, error_model="numpy")
def step_sparse(xbar, h_prev, c_prev, e, K, Kx, Wu, Uu, bu, h, c):
    """One timestep on units 0..K-1 and inputs 0..Kx-1 (K, Kx: the ``longest_prefix``
    of the hidden and the input mask). xbar: (B, I) = e^x_t * x_t; h_prev, c_prev:
    (B, H); e: (B, H) the hidden mask; Wu, Uu, bu: W, U, b in the unit-major column
    order of ``unit_major``. Writes h, c: (B, H).
    The blocks change size from step to step, so this inference kernel allocates
    them as it goes."""
    B, H = h_prev.shape
    h[:] = h_prev  # units K..H-1 keep their state
    c[:] = c_prev
    if K == 0:
        return
    # The leading blocks, copied to contiguous memory (K x 4K floats, small next to
    # the product) so that BLAS gets them as it likes them.
    a = (e[:, :K] * h_prev[:, :K]) @ np.ascontiguousarray(Uu[:K, : 4 * K])
    if Kx > 0:
        a += np.ascontiguousarray(xbar[:, :Kx]) @ np.ascontiguousarray(Wu[:Kx, : 4 * K])
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


@njit(cache=True, nogil=True)
def sparse_loop(x, xm, h0, c0, Wu, Uu, bu, w_h, mask_h, mask_x, eps, soft):
    """x: (T, B, I) time-major; xm: (T, B) -> hs: (T+1, B, H), c_T: (B, H),
    m: (T, B), and the multiply-adds done (the scheduler's ``I + H`` per example
    and step included)."""
    T, B, I = x.shape
    H = h0.shape[1]
    hs = np.empty((T + 1, B, H), dtype=x.dtype)
    m = np.empty((T, B), dtype=x.dtype)
    # scratch for the steps, allocated once; two cell buffers, in turn
    e, ex, xbar = (
        np.empty((B, H), dtype=x.dtype),
        np.empty((B, I), dtype=x.dtype),
        np.empty((B, I), dtype=x.dtype),
    )
    c, c_next = c0.copy(), np.empty_like(c0)
    hs[0] = h0
    done = 0
    for t in range(T):
        scheduler_and_masks(x[t], xm[t], hs[t], w_h, mask_h, mask_x, eps, soft, m[t], e, ex, xbar)
        K, Kx = longest_prefix(e), longest_prefix(ex)
        step_sparse(xbar, hs[t], c, e, K, Kx, Wu, Uu, bu, hs[t + 1], c_next)
        c, c_next = c_next, c
        done += B * ((Kx + K) * 4 * K + I + H)
    return hs, c, m, done


def forward_sparse(
    params: Params, x: np.ndarray, state: State | None = None, **options
) -> tuple[np.ndarray, dict[str, Any]]:
    """Inference only: the outputs of ``vclstm.forward`` (to float rounding: the
    products sum fewer zero terms, in another order), no cache for ``backward``.
    Takes the parameters, state and forward options of ``vclstm``.

    Returns ``hs: (B, T, H)`` and ``info``: ``state`` (h_T, c_T), ``m`` (B, T),
    ``macs`` done (with the scheduler), ``dense_macs`` (what ``vclstm.forward``
    multiplies), and ``penalty``/``metrics`` like ``forward``'s cache (``metrics``
    has ``mean_m`` only: no masks are kept).
    """
    opts, x_tm, xm, (h0, c0), (mask_h, mask_x, eps) = vc.forward_inputs(
        "vclstm_sparse.forward_sparse", params, x, state, options, param_shapes, 2
    )
    T, B, I = x_tm.shape
    H = h0.shape[1]
    Wu, Uu, bu = (unit_major(params[k], H) for k in ("W", "U", "b"))
    hs, c_T, m, done = sparse_loop(
        x_tm,
        xm,
        h0,
        c0,
        Wu,
        Uu,
        bu,
        np.ascontiguousarray(params["w_h"]),
        mask_h,
        mask_x,
        eps,
        opts["soft"],
    )
    penalty, _ = vc.penalty_and_gradient(m, opts["alpha"], opts["m_target"], opts["penalty"])
    info = {
        "state": (hs[-1], c_T),
        "m": np.ascontiguousarray(m.T),
        "macs": int(done),
        "dense_macs": T * B * ((I + H) * GATES * H + I + H),
        "penalty": penalty,
        "metrics": {"mean_m": float(m.mean(dtype=np.float64))},
    }
    return batch_major(hs), info
