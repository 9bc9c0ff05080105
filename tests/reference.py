"""Plain-NumPy reference forwards, written independently of minirnn's kernels:
per-timestep Python loops, sigmoid as 1 / (1 + exp(-a)), gates sliced by name."""
import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def rnn(p, x, h):
    out = []
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ p["W"] + h @ p["U"] + p["b"])
        out.append(h)
    return np.stack(out, axis=1), h


def lstm(p, x, h, c):
    H = h.shape[1]
    out = []
    for t in range(x.shape[1]):
        a = x[:, t] @ p["W"] + h @ p["U"] + p["b"]
        i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H])
        g = np.tanh(a[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1), (h, c)


def gru(p, x, h, reset_after):
    H = h.shape[1]
    Wz, Wr, Wn = p["W"][:, :H], p["W"][:, H:2 * H], p["W"][:, 2 * H:]
    Uz, Ur, Un = p["U"][:, :H], p["U"][:, H:2 * H], p["U"][:, 2 * H:]
    bz, br, bn = p["b"][:H], p["b"][H:2 * H], p["b"][2 * H:]
    bh = p.get("bh", np.zeros(3 * H))
    out = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        z = sigmoid(xt @ Wz + bz + h @ Uz + bh[:H])
        r = sigmoid(xt @ Wr + br + h @ Ur + bh[H:2 * H])
        if reset_after:
            n = np.tanh(xt @ Wn + bn + r * (h @ Un + bh[2 * H:]))
        else:
            n = np.tanh(xt @ Wn + bn + (r * h) @ Un)
        h = z * h + (1 - z) * n
        out.append(h)
    return np.stack(out, axis=1), h


# ---------------------------------------------------------------- normalized cells
# Written from the equations in the cells' docstrings and the papers (Cooijmans et
# al. 2016; Ba et al. 2016; TensorFlow's LayerNorm cells), with np.mean / np.var
# (two-pass, biased) instead of the kernels' shifted sums.

def batchnorm(z, gamma, beta, eps, mean=None, var=None):
    """Per feature over the batch (the rows of z), with the batch's mean and biased
    variance, or with the given ones. Returns (y, mean, var)."""
    if mean is None:
        mean, var = z.mean(axis=0), z.var(axis=0)
    return gamma * (z - mean) / np.sqrt(var + eps) + beta, mean, var


def layernorm(z, gain, shift, eps):
    """Per row (the last axis) with the row's mean and biased variance."""
    mean = z.mean(axis=-1, keepdims=True)
    var = z.var(axis=-1, keepdims=True)
    return gain * (z - mean) / np.sqrt(var + eps) + shift


def bnlstm(p, x, h, c, *, training=True, stats=None, eps=1e-5, carry_normalized_c=False):
    """Recurrent batch norm (Cooijmans et al.): returns hs, (h_T, c_T) and, per step,
    a dict with the statistics used (mean_x, var_x, mean_h, var_h, mean_c, var_c),
    c_pre = f c_{t-1} + i g and cbn = BN(c_pre). In evaluation, step t reads row
    min(t, T_max - 1) of every statistic."""
    H = h.shape[1]
    out, steps = [], []
    for t in range(x.shape[1]):
        if training:
            pick = {}
        else:
            s = min(t, stats["mean_x"].shape[0] - 1)
            pick = {k: v[s] for k, v in stats.items()}
        zero = np.zeros(4 * H)
        bx, m_x, v_x = batchnorm(x[:, t] @ p["W"], p["gamma_x"], zero, eps,
                                 pick.get("mean_x"), pick.get("var_x"))
        bh, m_h, v_h = batchnorm(h @ p["U"], p["gamma_h"], zero, eps,
                                 pick.get("mean_h"), pick.get("var_h"))
        a = bh + bx + p["b"]
        i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H])
        g = np.tanh(a[:, 3 * H:])
        c_pre = f * c + i * g
        cbn, m_c, v_c = batchnorm(c_pre, p["gamma_c"], p["beta_c"], eps,
                                  pick.get("mean_c"), pick.get("var_c"))
        h = o * np.tanh(cbn)
        c = cbn if carry_normalized_c else c_pre
        out.append(h)
        steps.append(dict(mean_x=m_x, var_x=v_x, mean_h=m_h, var_h=v_h, mean_c=m_c,
                          var_c=v_c, c_pre=c_pre, cbn=cbn))
    return np.stack(out, axis=1), (h, c), steps


def lnlstm_paper(p, x, h, c, eps):
    """Ba et al.: one LN over all 4H of each projection, LN(c) only inside the
    tanh, the raw c carried. Returns hs, (h_T, c_T)."""
    H = h.shape[1]
    out = []
    for t in range(x.shape[1]):
        zero = np.zeros(4 * H)
        a = (layernorm(h @ p["U"], p["gain_h"], zero, eps)
             + layernorm(x[:, t] @ p["W"], p["gain_x"], zero, eps) + p["b"])
        i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H])
        g = np.tanh(a[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(layernorm(c, p["gain_c"], p["shift_c"], eps))
        out.append(h)
    return np.stack(out, axis=1), (h, c)


def lnlstm_tensorflow(p, x, h, c, eps, forget_bias=0.0):
    """TensorFlow's LayerNormBasicLSTMCell: z = x W + h U without bias, a separate
    LN per gate, ``forget_bias`` added to the f block after its LN (as TensorFlow
    does), c stored as LN(f c + i g). Returns hs, (h_T, c_T)."""
    H = h.shape[1]
    out = []
    for t in range(x.shape[1]):
        z = x[:, t] @ p["W"] + h @ p["U"]
        blocks = [layernorm(z[:, k * H:(k + 1) * H], p["gain"][k * H:(k + 1) * H],
                            p["shift"][k * H:(k + 1) * H], eps) for k in range(4)]
        i, f, o = sigmoid(blocks[0]), sigmoid(blocks[1] + forget_bias), sigmoid(blocks[2])
        g = np.tanh(blocks[3])
        c = layernorm(f * c + i * g, p["gain_c"], p["shift_c"], eps)
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out, axis=1), (h, c)


def lngru(p, x, h, eps):
    """TensorFlow's LayerNormBasicGRUCell: LN per gate of [x, h] W_z and [x, h] W_r,
    LN(x W_n) and LN(h U_n) separately; z = 1 takes the candidate."""
    H = h.shape[1]
    W, U = p["W"], p["U"]
    out = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        z = sigmoid(layernorm(xt @ W[:, :H] + h @ U[:, :H], p["gain_zr"][:H],
                              p["shift_zr"][:H], eps))
        r = sigmoid(layernorm(xt @ W[:, H:2 * H] + h @ U[:, H:2 * H], p["gain_zr"][H:],
                              p["shift_zr"][H:], eps))
        n = np.tanh(layernorm(xt @ W[:, 2 * H:], p["gain_xn"], p["shift_xn"], eps)
                    + r * layernorm(h @ U[:, 2 * H:], p["gain_hn"], p["shift_hn"], eps))
        h = (1 - z) * h + z * n
        out.append(h)
    return np.stack(out, axis=1), h
