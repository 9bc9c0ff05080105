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
