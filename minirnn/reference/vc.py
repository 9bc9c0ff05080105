"""What the variable-computation twins share (Jernite et al. 2017;
``tutorials/06_variable_computation.md``): the scheduler, the unit masks and the
computation penalty, in plain NumPy. The cells are ``reference/vcrnn.py``,
``vcgru.py`` and ``vclstm.py``, twins of ``minirnn/cells/vcrnn.py``, ``vcgru.py``
and ``vclstm.py``.

For a batch of B examples::

    m_t = sigma(x_t w_x + h_{t-1} w_h + b_m)                        (B,)
    s_i = sigma(lambda (m_t D - i)),   i = 0, ..., D-1                (B, D)
    (e_t)_i = Thres_eps(s_i)    soft: 0 below eps, 1 above 1 - eps, s_i in between
                                hard: 1 above 1 - eps, 0 otherwise

with D = H for the hidden mask e and D = I for the input mask e^x. Inside the band
eps <= s_i <= 1 - eps the soft mask has de_i/dm = lambda D s_i (1 - s_i); it is 0
where the mask is clamped and everywhere in the hard mode.

The penalty, alpha * sum_t mean_n |m_t - m_target| ("l1") or with squares ("l2"),
is added to the loss: its gradient joins dL/dm_t in each step's backward.
"""

import numpy as np

from .common import sigmoid


def scheduler(params, x_t, h_prev):
    """m_t = sigma(x_t w_x + h_{t-1} w_h + b_m): x_t: (B, I), h_prev: (B, H) -> (B,)."""
    return sigmoid(x_t @ params["w_x"] + h_prev @ params["w_h"] + params["b_m"][0])


def unit_mask(m, size, sharpness, eps, threshold):
    """m: (B,) -> the mask e: (B, size) and de/dm: (B, size)."""
    s = sigmoid(sharpness * (m[:, None] * size - np.arange(size, dtype=m.dtype)))
    if threshold == "hard":
        return np.where(s > 1 - eps, 1.0, 0.0).astype(m.dtype), np.zeros_like(s)
    in_band = (eps <= s) & (s <= 1 - eps)
    e = np.where(s > 1 - eps, 1.0, np.where(in_band, s, 0.0))
    return e.astype(m.dtype), np.where(in_band, sharpness * size * s * (1 - s), 0.0)


def penalty(m, alpha, m_target, kind):
    """One step's share of the penalty, and its gradient: m: (B,) -> (float, (B,))."""
    d = m - m_target
    if kind == "l1":
        return alpha * np.abs(d).mean(), alpha * np.sign(d) / len(m)
    return alpha * (d**2).mean(), 2 * alpha * d / len(m)
