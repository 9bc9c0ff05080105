"""The LSTM's elementwise equations, shared by the normalized LSTMs (bnlstm, lnlstm),
which differ from the plain LSTM only in what they do to the pre-activations and
to the cell before its tanh::

    i, f, o = sigma(a_i), sigma(a_f), sigma(a_o)    g = tanh(a_g)
    c = f * c_prev + i * g

and backwards, given dL/dc (before any normalization of c) and dL/dh_t::

    da_i = dc g i (1 - i)    da_f = dc c_prev f (1 - f)
    da_o = dh tanh_c o (1 - o)    da_g = dc i (1 - g^2)    dc_prev = dc f
"""
import numpy as np
from numba import njit

from ..functional.activations import sigmoid, tanh

_ONE = np.float32(1.0)


@njit(cache=True, error_model="numpy")
def gates_and_cell(a, c_prev, ifog, c_pre):
    """The LSTM's elementwise part: ifog from pre-activations a (B, 4H), and
    c_pre = f * c_prev + i * g."""
    B, H = c_prev.shape
    for n in range(B):
        for j in range(3 * H):
            ifog[n, j] = sigmoid(a[n, j])
        for j in range(3 * H, 4 * H):
            ifog[n, j] = tanh(a[n, j])
        for j in range(H):
            c_pre[n, j] = ifog[n, H + j] * c_prev[n, j] + ifog[n, j] * ifog[n, 3 * H + j]


@njit(cache=True, error_model="numpy")
def gate_gradients(dc, dh, c_prev, ifog, tanh_c, da, dc_prev):
    """dL/da from dL/dc_t (before any LN of c) and dL/dh_t; dc_prev = dc * f."""
    B, H = dc.shape
    for n in range(B):
        for j in range(H):
            i, f = ifog[n, j], ifog[n, H + j]
            o, g = ifog[n, 2 * H + j], ifog[n, 3 * H + j]
            da[n, j] = dc[n, j] * g * i * (_ONE - i)
            da[n, H + j] = dc[n, j] * c_prev[n, j] * f * (_ONE - f)
            da[n, 2 * H + j] = dh[n, j] * tanh_c[n, j] * o * (_ONE - o)
            da[n, 3 * H + j] = dc[n, j] * i * (_ONE - g * g)
            dc_prev[n, j] = dc[n, j] * f
