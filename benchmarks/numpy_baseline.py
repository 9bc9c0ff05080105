"""The same cells as plain NumPy: a Python loop over timesteps, each step a few
vectorized NumPy calls. This is the baseline ``bench_cells.py`` compares the
compiled kernels with; ``check()`` holds it equal to minirnn's results first, so
the comparison is between two computations of the same thing.

Like the kernels, it hoists ``x W`` and the weight gradients out of the loop.
"""
import numpy as np


def _sig(a):
    return 0.5 * np.tanh(0.5 * a) + 0.5


def rnn(p, x, dhs):
    T, H = x.shape[1], p["U"].shape[0]
    xw = x.transpose(1, 0, 2) @ p["W"] + p["b"]
    hs = [np.zeros((x.shape[0], H), x.dtype)]
    for t in range(T):
        hs.append(np.tanh(xw[t] + hs[-1] @ p["U"]))
    das, dh = np.empty_like(xw), np.zeros_like(hs[0])
    for t in reversed(range(T)):
        das[t] = (dhs[:, t] + dh) * (1 - hs[t + 1] ** 2)
        dh = das[t] @ p["U"].T
    return _grads(p, x, np.stack(hs[:-1]), das)


def lstm(p, x, dhs):
    T, B, H = x.shape[1], x.shape[0], p["U"].shape[0]
    xw = x.transpose(1, 0, 2) @ p["W"] + p["b"]
    h, c = np.zeros((B, H), x.dtype), np.zeros((B, H), x.dtype)
    hs, cs, gates, tcs = [h], [c], [], []
    for t in range(T):
        a = xw[t] + h @ p["U"]
        i, f, o, g = _sig(a[:, :H]), _sig(a[:, H:2 * H]), _sig(a[:, 2 * H:3 * H]), np.tanh(a[:, 3 * H:])
        c = f * c + i * g
        tc = np.tanh(c)
        h = o * tc
        hs.append(h), cs.append(c), gates.append((i, f, o, g)), tcs.append(tc)
    das = np.empty_like(xw)
    dh, dc = np.zeros_like(h), np.zeros_like(c)
    for t in reversed(range(T)):
        i, f, o, g = gates[t]
        dh = dhs[:, t] + dh
        dc = dc + dh * o * (1 - tcs[t] ** 2)
        das[t] = np.concatenate([dc * g * i * (1 - i), dc * cs[t] * f * (1 - f),
                                 dh * tcs[t] * o * (1 - o), dc * i * (1 - g * g)], axis=1)
        dc = dc * f
        dh = das[t] @ p["U"].T
    return _grads(p, x, np.stack(hs[:-1]), das)


def gru(p, x, dhs, reset_after):
    T, B, H = x.shape[1], x.shape[0], p["U"].shape[0]
    U, bh = p["U"], p.get("bh", np.zeros(3 * H, x.dtype))
    xw = x.transpose(1, 0, 2) @ p["W"] + p["b"]
    h = np.zeros((B, H), x.dtype)
    hs, saved = [h], []
    for t in range(T):
        hu = h @ U + bh
        z, r = _sig(xw[t, :, :H] + hu[:, :H]), _sig(xw[t, :, H:2 * H] + hu[:, H:2 * H])
        rec = r * hu[:, 2 * H:] if reset_after else (r * h) @ U[:, 2 * H:]
        n = np.tanh(xw[t, :, 2 * H:] + rec)
        saved.append((z, r, n, hu[:, 2 * H:]))
        h = z * h + (1 - z) * n
        hs.append(h)
    das, dh = np.empty_like(xw), np.zeros_like(h)
    dU = np.zeros_like(U)
    for t in reversed(range(T)):
        z, r, n, hu_n = saved[t]
        dh = dhs[:, t] + dh
        da_n = dh * (1 - z) * (1 - n * n)
        if reset_after:
            dr, d_prev = da_n * hu_n, (r * da_n) @ U[:, 2 * H:].T
            dU[:, 2 * H:] += hs[t].T @ (r * da_n)
        else:
            d_rh = da_n @ U[:, 2 * H:].T
            dr, d_prev = d_rh * hs[t], d_rh * r
            dU[:, 2 * H:] += (r * hs[t]).T @ da_n
        das[t] = np.concatenate([dh * (hs[t] - n) * z * (1 - z), dr * r * (1 - r), da_n], axis=1)
        dh = dh * z + d_prev + das[t, :, :2 * H] @ U[:, :2 * H].T
    dx, grads = _grads(p, x, np.stack(hs[:-1]), das)
    grads["U"][:, 2 * H:] = dU[:, 2 * H:]
    return dx, grads


def _grads(p, x, h_prev, das):
    """Weight gradients as single products after the loop."""
    T, B = das.shape[:2]
    flat = das.reshape(T * B, -1)
    grads = {"W": x.transpose(1, 0, 2).reshape(T * B, -1).T @ flat,
             "U": h_prev.reshape(T * B, -1).T @ flat, "b": flat.sum(0)}
    return (das @ p["W"].T).transpose(1, 0, 2), grads


def run(name, options, p, x, dhs):
    if name == "gru":
        return gru(p, x, dhs, options.get("reset_after", False))
    return {"rnn": rnn, "lstm": lstm}[name](p, x, dhs)


def check(name, options):
    """Assert that this baseline computes what minirnn's cell computes (float64)."""
    from minirnn.cells import get_cell
    cell = get_cell(name)
    rng = np.random.default_rng(0)
    p = cell.init(3, 5, rng=rng, dtype=np.float64, **options)
    x = rng.standard_normal((4, 6, 3))
    fwd = {k: v for k, v in options.items() if k in cell.FORWARD_OPTIONS}
    hs, cache = cell.forward(p, x, **fwd)
    dhs = rng.standard_normal(hs.shape)
    dx, grads = cell.backward(p, dhs, cache)
    dx_ref, grads_ref = run(name, options, p, x, dhs)
    np.testing.assert_allclose(dx_ref, dx, rtol=1e-9, atol=1e-12)
    for k in ("W", "U", "b"):
        np.testing.assert_allclose(grads_ref[k], grads[k], rtol=1e-9, atol=1e-12, err_msg=k)
