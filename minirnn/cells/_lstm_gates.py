"""The LSTM's elementwise equations, shared by the normalized LSTMs (bnlstm, lnlstm),
which differ from the plain LSTM only in what they do to the pre-activations and
to the cell before its tanh::

    i, f, o = sigma(a_i), sigma(a_f), sigma(a_o)    g = tanh(a_g)
    c = f * c_prev + i * g

and backwards, given dL/dc (before any normalization of c) and dL/dh_t::

    da_i = dc g i (1 - i)    da_f = dc c_prev f (1 - f)
    da_o = dh tanh_c o (1 - o)    da_g = dc i (1 - g^2)    dc_prev = dc f

Recurrent dropout's ``update`` placement (``cells/_dropout.py``) lives here too:
with a mask ``m_g`` on the candidate, ``c = f * c_prev + i * (g * m_g)``, and
backwards ``da_i = dc (g m_g) i (1 - i)``, ``da_g = dc i m_g (1 - g^2)``. ``ifog``
keeps g before the mask. ``m_g=None`` (no dropout) compiles the masks away.
"""
import numpy as np
from numba import njit

from ..functional.activations import sigmoid, tanh

_ONE = np.float32(1.0)


@njit(cache=True, error_model="numpy")
def gates_and_cell(a, c_prev, ifog, c_pre, m_g=None):
    """The LSTM's elementwise part: ifog from pre-activations a (B, 4H), and
    c_pre = f * c_prev + i * g (g * m_g with a (B, H) dropout mask m_g)."""
    B, H = c_prev.shape
    for n in range(B):
        for j in range(3 * H):
            ifog[n, j] = sigmoid(a[n, j])
        for j in range(3 * H, 4 * H):
            ifog[n, j] = tanh(a[n, j])
        for j in range(H):
            g = ifog[n, 3 * H + j]
            if m_g is not None:
                g = g * m_g[n, j]                   # g * m_g enters the cell
            c_pre[n, j] = ifog[n, H + j] * c_prev[n, j] + ifog[n, j] * g


@njit(cache=True, error_model="numpy")
def gate_gradients(dc, dh, c_prev, ifog, tanh_c, da, dc_prev, m_g=None):
    """dL/da from dL/dc_t (before any LN of c) and dL/dh_t; dc_prev = dc * f.
    m_g: the forward's dropout mask on g, or None."""
    B, H = dc.shape
    for n in range(B):
        for j in range(H):
            i, f = ifog[n, j], ifog[n, H + j]
            o, g = ifog[n, 2 * H + j], ifog[n, 3 * H + j]
            g_in = g if m_g is None else g * m_g[n, j]            # what entered the cell
            dg = dc[n, j] * i if m_g is None else dc[n, j] * i * m_g[n, j]
            da[n, j] = dc[n, j] * g_in * i * (_ONE - i)
            da[n, H + j] = dc[n, j] * c_prev[n, j] * f * (_ONE - f)
            da[n, 2 * H + j] = dh[n, j] * tanh_c[n, j] * o * (_ONE - o)
            da[n, 3 * H + j] = dg * (_ONE - g * g)
            dc_prev[n, j] = dc[n, j] * f
