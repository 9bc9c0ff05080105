"""The LSTM's elementwise equations, shared by the LSTM's backward pass and the
normalized LSTMs (bnlstm, lnlstm), which differ from the plain LSTM only in what
they do to the pre-activations and to the cell before its tanh::

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


@njit(cache=True, nogil=True, error_model="numpy")
def gates_and_cell(a, c_prev, ifog, c_pre, m_g=None):
    """The LSTM's elementwise part: ifog from pre-activations a (B, 4H), and
    c_pre = f * c_prev + i * g (g * m_g with a (B, H) dropout mask m_g)."""
    B, H = c_prev.shape
    for n in range(B):
        for j in range(3 * H):
            ifog[n, j] = sigmoid(a[n, j])
        for j in range(H):      # range(H) + offset, not range(3H, 4H): see lstm.step_forward
            ifog[n, 3 * H + j] = tanh(a[n, 3 * H + j])
        for j in range(H):
            g = ifog[n, 3 * H + j]
            if m_g is not None:
                g = g * m_g[n, j]                   # g * m_g enters the cell
            c_pre[n, j] = ifog[n, H + j] * c_prev[n, j] + ifog[n, j] * g


@njit(cache=True, nogil=True, error_model="numpy")
def gate_gradients(dc, dh, c_prev, ifog, tanh_c, da, dc_prev, m_g=None):
    """dL/da from dL/dc_t (before any LN of c) and dL/dh_t; dc_prev = dc * f.
    m_g: the forward's dropout mask on g, or None."""
    B, H = dc.shape
    # Three short loops instead of one: a loop over many arrays is not vectorized
    # (the compiler cannot rule out that they overlap); each of these reads few.
    for n in range(B):
        for j in range(H):                                   # o = sigma(a_o)
            o = ifog[n, 2 * H + j]
            da[n, 2 * H + j] = dh[n, j] * tanh_c[n, j] * o * (_ONE - o)
        for j in range(H):                                   # i = sigma(a_i), g = tanh(a_g)
            i, g = ifog[n, j], ifog[n, 3 * H + j]
            if m_g is None:
                da[n, j] = dc[n, j] * g * i * (_ONE - i)
                da[n, 3 * H + j] = dc[n, j] * i * (_ONE - g * g)
            else:                                            # g * m_g entered the cell
                da[n, j] = dc[n, j] * g * m_g[n, j] * i * (_ONE - i)
                da[n, 3 * H + j] = dc[n, j] * i * m_g[n, j] * (_ONE - g * g)
        for j in range(H):                                   # f = sigma(a_f)
            f = ifog[n, H + j]
            da[n, H + j] = dc[n, j] * c_prev[n, j] * f * (_ONE - f)
            dc_prev[n, j] = dc[n, j] * f
