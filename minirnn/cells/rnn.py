"""The vanilla (Elman) recurrent network.

One timestep (derived in ``tutorials/01_rnn_bptt.md``)::

    a_t = x_t W + h_{t-1} U + b          (B, H)
    h_t = tanh(a_t)

Parameters: ``W: (input, hidden)``, ``U: (hidden, hidden)``, ``b: (hidden,)``.
State: ``h0: (batch, hidden)``, zeros when omitted; the final state is
``cache["state"] == h_T``.

Backpropagation through time: with ``dh`` the total dL/dh_t (from the output at
t plus what step t+1 sends back), ``da = dh * (1 - h_t^2)`` and
``dh_{t-1} = da U^T``; ``dW``, ``dU``, ``db`` sum ``x_t^T da``, ``h_{t-1}^T da``
and ``da`` over t, which are single products after the loop.
"""
import numpy as np
from numba import njit

from ..functional.activations import tanh
from ..initializers import glorot_uniform, orthogonal
from ._projection import batch_major, input_gradients, input_projection
from ._checks import (check_matrix, check_options, check_params, check_sequence,
                      check_state, check_upstream)

INIT_OPTIONS = ()
FORWARD_OPTIONS = ()
GRADCHECK_CASES = ({},)
STATE_SIZE = 1
_ONE = np.float32(1.0)


def param_shapes(input_size, hidden_size):
    return {"W": (input_size, hidden_size), "U": (hidden_size, hidden_size),
            "b": (hidden_size,)}


def init(input_size, hidden_size, *, rng, dtype=np.float32):
    """Glorot-uniform W, orthogonal U, b = 0."""
    return {"W": glorot_uniform(rng, input_size, hidden_size, dtype),
            "U": orthogonal(rng, hidden_size, dtype),
            "b": np.zeros(hidden_size, dtype=dtype)}


@njit(cache=True, error_model="numpy")
def step_forward(xw_t, h_prev, U):
    """xw_t: (B, H) = x_t W + b; h_prev: (B, H); U: (H, H) -> h: (B, H)."""
    a = xw_t + h_prev @ U
    h = np.empty_like(a)
    for n in range(a.shape[0]):
        for j in range(a.shape[1]):
            h[n, j] = tanh(a[n, j])
    return h


@njit(cache=True)
def step_backward(dh, h, UT):
    """dh: (B, H) total dL/dh_t; h: (B, H) = h_t; UT: (H, H) = U transposed.
    Returns da: (B, H) = dL/da_t and dh_prev = dL/dh_{t-1}."""
    da = dh * (_ONE - h * h)
    return da, da @ UT


@njit(cache=True)
def forward_loop(xw, h0, U):
    """xw: (T, B, H) time-major; h0: (B, H) -> hs: (T+1, B, H), hs[0] = h0."""
    T, B, H = xw.shape
    hs = np.empty((T + 1, B, H), dtype=xw.dtype)
    hs[0] = h0
    for t in range(T):
        hs[t + 1] = step_forward(xw[t], hs[t], U)
    return hs


@njit(cache=True)
def backward_loop(dhs, dh_T, hs, UT):
    """dhs: (T, B, H) time-major; dh_T: (B, H) gradient of the final state
    -> das: (T, B, H), dh0: (B, H)."""
    T = dhs.shape[0]
    das = np.empty_like(dhs)
    dh_next = dh_T
    for t in range(T - 1, -1, -1):
        das[t], dh_next = step_backward(dhs[t] + dh_next, hs[t + 1], UT)
    return das, dh_next


def forward(params, x, state=None, *, training=True, rng=None, **options):
    """x: (batch, time, input) -> hs: (batch, time, hidden), cache.
    ``state`` is h0: (batch, hidden)."""
    check_options("rnn.forward", options, FORWARD_OPTIONS)
    I, H = check_matrix(params, "W").shape[0], check_matrix(params, "U").shape[0]
    dtype = check_params(params, param_shapes(I, H))
    check_sequence(x, I, dtype)
    h0 = check_state("state h0", state, x.shape[0], H, dtype)
    xw = input_projection(x, params["W"], params["b"])
    hs = forward_loop(xw, h0, np.ascontiguousarray(params["U"]))
    cache = {"x": x, "hs": hs, "has_state": state is not None, "state": hs[-1]}
    return batch_major(hs), cache


def backward(params, dhs, cache, dstate=None):
    """dhs: (batch, time, hidden) -> (dx: (batch, time, input), grads).
    ``dstate``, optional: dL/dh_T for a caller that used ``cache["state"]``.
    ``grads`` holds ``"h0"`` too when a state was passed to ``forward``."""
    x, hs = cache["x"], cache["hs"]
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    dhs = check_upstream(dhs, (B, T, H), x.dtype)
    dh_T = check_state("dstate", dstate, B, H, x.dtype).copy()
    das, dh0 = backward_loop(np.ascontiguousarray(dhs.transpose(1, 0, 2)), dh_T, hs,
                             np.ascontiguousarray(params["U"].T))
    dx, dW, db = input_gradients(x, das, params["W"])
    grads = {"W": dW, "U": hs[:-1].reshape(T * B, H).T @ das.reshape(T * B, H), "b": db}
    if cache["has_state"]:
        grads["h0"] = dh0
    return dx, grads
