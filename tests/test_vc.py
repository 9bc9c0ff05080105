"""Variable-computation cells (vcrnn, vcgru, vclstm): gradients in every mask regime
and on both sides of both threshold edges, the penalty, the hard mask against
the Qiita variable-computation note's formula, the plain cells at m_t = 1, compiled
against plain Python, float32, errors, the sparse inference kernel, the MAC count and
the schedule."""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from jit_off import compiled_and_plain
from minirnn import gradcheck
from minirnn.cells import _vc_mask as vc
from minirnn.cells import gru, lstm, rnn, vcgru, vclstm, vclstm_sparse, vcrnn
from minirnn.optim import sharpness_at

VC = {"vcrnn": vcrnn, "vcgru": vcgru, "vclstm": vclstm}
PLAIN = {"vcrnn": rnn, "vcgru": gru, "vclstm": lstm}
NAMES = list(VC)
MODES = ["soft", "hard"]
MARGIN = 1e-4  # skip points whose mask is this close to a jump of the threshold


def logit(p):
    return math.log(p / (1 - p))


def random_params(cell, I, H, rng, dtype=np.float64, **init_opts):
    params = cell.init(I, H, rng=rng, dtype=dtype, **init_opts)
    for p in params.values():
        p += (0.3 * rng.standard_normal(p.shape)).astype(dtype)
    return params


def random_state(cell, B, H, rng, dtype=np.float64):
    parts = tuple((0.5 * rng.standard_normal((B, H))).astype(dtype) for _ in range(cell.STATE_SIZE))
    return parts if cell.STATE_SIZE > 1 else parts[0]


def parts(state):
    return state if isinstance(state, tuple) else (state,)


def edge_distance(cache):
    """How far the forward of ``cache`` is from the threshold's jumps (both masks)."""
    o = cache["options"]
    H, I = cache["e"].shape[2], cache["ex"].shape[2]
    return min(
        vc.distance_to_edges(cache["m"], H, o["sharpness"], o["eps"]),
        vc.distance_to_edges(cache["m"], I, o["sharpness"], o["eps"]),
    )


def l1_distance(cache):
    o = cache["options"]
    if o["alpha"] == 0 or o["penalty"] != "l1":
        return math.inf
    return float(np.abs(cache["m"] - o["m_target"]).min())


NOISE = 1e-9  # the rounding noise of a central difference: ~ 1e-16 |L| / h, |L| < 10


def assert_gradients_pass(errors, grads):
    """Every relative error below gradcheck.TOLERANCE, or else an absolute error
    below NOISE. The exception is for tensors whose gradient is tiny everywhere (the
    scheduler's, through m (1 - m) near 0 times a small x or dL/dm): there the
    max-norm relative error measures the rounding of the central difference, not
    the gradient (measured: relative 1e-5 at absolute 4e-12 for a 3.6e-7 gradient).
    A wrong gradient still fails: its relative error is near 1."""
    for key, err in errors.items():
        if err < gradcheck.TOLERANCE:
            continue
        a = float(np.abs(grads[key]).max())
        # max(|analytic|, |numeric|) <= |analytic| / (1 - err) when err < 1
        assert err < 0.5 and err * a / (1 - err) < NOISE, (key, err, a, errors)


class Recording:
    """A cell module that remembers the cache of its first forward (the point
    ``check_cell`` differentiates at, so that the test can ask how far it is from
    the threshold's edges) and the gradients of its backward."""

    def __init__(self, cell):
        self.cell, self.first, self.grads = cell, None, None

    def __getattr__(self, attr):
        return getattr(self.cell, attr)

    def forward(self, *args, **kwargs):
        hs, cache = self.cell.forward(*args, **kwargs)
        if self.first is None:
            self.first = cache
        return hs, cache

    def backward(self, *args, **kwargs):
        dx, grads = self.cell.backward(*args, **kwargs)
        self.grads = dict(grads, x=dx)
        return dx, grads


def check_point(cell, params, x, state, options, seed=0):
    """Finite differences of ``L = sum(hs * R) + cache["penalty"]`` (the loss the
    cells' backward differentiates) at the given point, float64. check_cell's loss
    has no penalty term, so the penalty is checked here."""
    R = np.random.default_rng(seed).standard_normal(
        (x.shape[0], x.shape[1], params["w_h"].shape[0])
    )
    hs, cache = cell.forward(params, x, state, **options)
    dx, grads = cell.backward(params, R, cache)

    def loss():
        out, c = cell.forward(params, x, state, **options)
        return float(np.sum(out * R)) + c["penalty"]

    grads = dict(grads, x=dx)
    errors = {"x": gradcheck.gradient_error(dx, loss, x)}
    for key, p in params.items():
        errors[key] = gradcheck.gradient_error(grads[key], loss, p)
    if state is not None:
        for key, s in zip(("h0", "c0"), parts(state)):
            errors[key] = gradcheck.gradient_error(grads[key], loss, s)
    return errors, cache, grads


# Regimes of the scheduler, through init's scheduler_bias (b_m) and the sharpness:
# "off": m ~ 0, every unit clamped to 0 (soft: all but unit 0, whose s_0 >= 1/2);
# "band": m ~ 1/2 and a soft mask, most units inside [eps, 1 - eps];
# "on": m ~ 1, every unit clamped to 1; "any": anything in between. The clamped
# regimes come from sharp masks rather than a saturated scheduler: with m (1 - m)
# near 1e-5 the scheduler's gradients drown in the finite differences' rounding.
# (scheduler_bias range, sharpness range)
REGIMES = {
    "off": (-6.0, -4.0, 6.0, 12.0),
    "band": (-1.0, 1.0, 0.3, 1.5),
    "on": (4.0, 6.0, 6.0, 12.0),
    "any": (-4.0, 4.0, 0.3, 8.0),
}


@st.composite
def regime_options(draw, threshold):
    regime = draw(st.sampled_from(sorted(REGIMES)))
    b_lo, b_hi, s_lo, s_hi = REGIMES[regime]
    return {
        "threshold": threshold,
        "scheduler_bias": draw(st.floats(b_lo, b_hi)),
        "sharpness": draw(st.floats(s_lo, s_hi)),
        "eps": draw(st.sampled_from([0.05, 0.1, 0.2])),
    }


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("threshold", MODES)
@pytest.mark.parametrize("name", NAMES)
@given(
    data=st.data(),
    batch=st.integers(1, 3),
    time=st.integers(1, 4),
    input_size=st.integers(1, 3),
    hidden_size=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    with_state=st.booleans(),
)
def test_gradients_match_finite_differences(
    name, threshold, data, batch, time, input_size, hidden_size, seed, with_state
):
    options = data.draw(regime_options(threshold))
    cell = Recording(VC[name])
    errors = gradcheck.check_cell(
        cell,
        batch=batch,
        time=time,
        input_size=input_size,
        hidden_size=hidden_size,
        seed=seed,
        options=options,
        with_state=with_state,
    )
    assume(edge_distance(cell.first) > MARGIN)
    expected = {"x", *VC[name].param_shapes(1, 1)}
    if with_state:
        expected |= {"h0", "c0"} if name == "vclstm" else {"h0"}
    assert set(errors) == expected
    assert_gradients_pass(errors, cell.grads)


@pytest.mark.parametrize("name", NAMES)
def test_registered_gradcheck_cases_pass_at_the_default_point(name):
    """What ``python -m minirnn gradcheck`` runs for the cell once it is registered."""
    cell = VC[name]
    assert {o["threshold"] for o in cell.GRADCHECK_CASES} == {"soft", "hard"}
    for options in cell.GRADCHECK_CASES:
        recording = Recording(cell)
        errors = gradcheck.check_cell(recording, options=options)
        assert edge_distance(recording.first) > 1e-3
        assert max(errors.values()) < gradcheck.TOLERANCE, (options, errors)


@pytest.mark.parametrize("name", NAMES)
@given(
    threshold=st.sampled_from(MODES),
    penalty=st.sampled_from(["l1", "l2"]),
    alpha=st.floats(0.05, 2.0),
    m_target=st.floats(0.0, 1.0),
    regime=st.sampled_from(["band", "any"]),
    batch=st.integers(1, 3),
    time=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_penalty_gradient_matches_finite_differences(
    name, threshold, penalty, alpha, m_target, regime, batch, time, seed
):
    cell = VC[name]
    rng = np.random.default_rng(seed)
    b_lo, b_hi, s_lo, s_hi = REGIMES[regime]
    params = random_params(cell, 2, 3, rng, scheduler_bias=rng.uniform(b_lo, b_hi))
    x = rng.standard_normal((batch, time, 2))
    state = random_state(cell, batch, 3, rng)
    options = {
        "threshold": threshold,
        "alpha": alpha,
        "m_target": m_target,
        "penalty": penalty,
        "sharpness": rng.uniform(s_lo, s_hi),
    }
    errors, cache, grads = check_point(cell, params, x, state, options, seed)
    assume(edge_distance(cache) > MARGIN and l1_distance(cache) > MARGIN)
    assert cache["penalty"] > 0
    assert_gradients_pass(errors, grads)
    if threshold == "hard":
        # the scheduler learns from the penalty alone: without it, no gradient at all
        _, c0 = cell.forward(params, x, state, **dict(options, alpha=0.0))
        _, g0 = cell.backward(params, np.ones((batch, time, 3)), c0)
        assert np.all(g0["b_m"] == 0) and np.all(g0["w_h"] == 0)
        assert np.any(grads["b_m"] != 0)


def test_penalty_and_metrics_values():
    rng = np.random.default_rng(3)
    params = random_params(vcgru, 3, 5, rng)
    x = rng.standard_normal((4, 6, 3))
    for kind, f in (("l1", np.abs), ("l2", np.square)):
        _, cache = vcgru.forward(params, x, alpha=0.3, m_target=0.2, penalty=kind)
        m = cache["m"]  # (T, B)
        assert m.shape == (6, 4)
        assert cache["penalty"] == pytest.approx(0.3 * f(m - 0.2).mean(axis=1).sum(), rel=1e-12)
    assert cache["metrics"] == {
        "mean_m": pytest.approx(m.mean(), rel=1e-12),
        "update_fraction": pytest.approx(cache["e"].mean(), rel=1e-12),
    }
    assert all(type(v) is float for v in cache["metrics"].values())
    _, cache = vcgru.forward(params, x)
    assert cache["penalty"] == 0.0  # alpha defaults to 0


# ---------------------------------------------------------------- both sides of each edge


def place_unit(cell, threshold, edge, side, delta, unit, seed, time=2, lam=4.0):
    """Parameters and input that put hidden unit ``unit`` of example 0 at step 0 at
    s = edge + side * delta (edge: "low" = eps, "high" = 1 - eps)."""
    eps, H, I, B = 0.1, 4, 2, 2
    rng = np.random.default_rng(seed)
    params = random_params(cell, I, H, rng)
    x = rng.standard_normal((B, time, I))
    state = random_state(cell, B, H, rng)
    s = (eps if edge == "low" else 1 - eps) + side * delta
    m = (unit + logit(s) / lam) / H  # lambda (m H - unit) = logit(s)
    assert 0 < m < 1
    h0 = parts(state)[0]
    params["b_m"][0] = logit(m) - x[0, 0] @ params["w_x"] - h0[0] @ params["w_h"]
    options = {"threshold": threshold, "sharpness": lam, "eps": eps}
    return params, x, state, options


EDGE_CASES = [("soft", "low", 1), ("soft", "high", 0), ("soft", "high", 2), ("hard", "high", 1)]


@pytest.mark.parametrize("side", [-1, 1], ids=["below", "above"])
@pytest.mark.parametrize("threshold,edge,unit", EDGE_CASES)
@pytest.mark.parametrize("name", NAMES)
@given(delta=st.floats(1e-3, 0.05), seed=st.integers(0, 2**31 - 1))
def test_gradients_on_each_side_of_each_edge(name, threshold, edge, unit, side, delta, seed):
    cell = VC[name]
    params, x, state, options = place_unit(cell, threshold, edge, side, delta, unit, seed)
    errors, cache, grads = check_point(cell, params, x, state, options, seed)
    s = (options["eps"] if edge == "low" else 1 - options["eps"]) + side * delta
    if threshold == "hard":
        want = float(side > 0)
    elif edge == "low":
        want = s if side > 0 else 0.0  # below eps: clamped to 0
    else:
        want = 1.0 if side > 0 else s  # above 1 - eps: clamped to 1
    assert cache["e"][0, 0, unit] == pytest.approx(want, abs=1e-12)
    assume(edge_distance(cache) > MARGIN)  # the other units and steps
    assert_gradients_pass(errors, grads)


def test_band_side_gives_the_scheduler_a_gradient_and_the_clamped_side_none():
    """One step, one unit near the upper edge, every other mask entry clamped: the
    gradient reaching b_m is lambda H s (1 - s) dL/de on the band side, 0 beyond."""
    got = {}
    for side in (-1, 1):
        # lambda = 8: the band is narrower than one unit, so its neighbours are clamped
        params, x, state, options = place_unit(
            vcrnn, "soft", "high", side, 0.01, 1, seed=5, time=1, lam=8.0
        )
        hs, cache = vcrnn.forward(params, x[:1], state[:1], **options)
        e, ex = cache["e"][0, 0], cache["ex"][0, 0]
        in_band = (e > 0) & (e < 1)
        assert in_band.sum() == (side < 0) and np.all((ex == 0) | (ex == 1))
        dhs = np.random.default_rng(1).standard_normal(hs.shape)
        _, grads = vcrnn.backward(params, dhs, cache)
        got[side] = grads["b_m"][0]
    assert got[-1] != 0 and got[1] == 0


# ---------------------------------------------------------------- the masks


def qiita_vc_mask(m, size, lam, eps):
    """The Qiita variable-computation note's code:
    relu(sign(sigmoid(lam * (m * n - range(n))) - (1 - eps)))."""
    s = 1 / (1 + np.exp(-lam * (m[:, None] * size - np.arange(size)[None, :])))
    return np.maximum(np.sign(s - (1 - eps)), 0), s


@pytest.mark.parametrize("name", NAMES)
@given(seed=st.integers(0, 2**31 - 1), sharpness=st.floats(0.2, 8.0), eps=st.floats(0.01, 0.4))
def test_hard_mask_is_the_qiita_notes_formula(name, seed, sharpness, eps):
    cell = VC[name]
    rng = np.random.default_rng(seed)
    params = random_params(cell, 5, 7, rng, scheduler_bias=rng.uniform(-3, 3))
    x = rng.standard_normal((3, 4, 5))
    _, cache = cell.forward(params, x, threshold="hard", sharpness=sharpness, eps=eps)
    for key, size in (("e", 7), ("ex", 5)):
        want, s = qiita_vc_mask(cache["m"].reshape(-1), size, sharpness, eps)
        far = np.abs(s - (1 - eps)) > 1e-9
        np.testing.assert_array_equal(cache[key].reshape(-1, size)[far], want[far])
    # and the soft mask is Thres_eps of the same s, non-increasing in the unit index
    _, soft = cell.forward(params, x, sharpness=sharpness, eps=eps)
    _, s = qiita_vc_mask(soft["m"].reshape(-1), 7, sharpness, eps)
    want = np.where(s < eps, 0.0, np.where(s > 1 - eps, 1.0, s))
    np.testing.assert_allclose(soft["e"].reshape(-1, 7), want, atol=1e-12)
    assert np.all(np.diff(soft["e"], axis=-1) <= 0)


@pytest.mark.parametrize("threshold", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_m_forced_to_one_is_the_plain_cell(name, threshold):
    """b_m = 50 gives m_t = 1 in float64; with lambda > ln((1-eps)/eps) every mask
    entry is 1 (units count from 0), and forward and backward are the plain cell's."""
    cell, plain = VC[name], PLAIN[name]
    rng = np.random.default_rng(11)
    params = random_params(cell, 3, 5, rng, scheduler_bias=50.0)
    x = rng.standard_normal((2, 6, 3))
    state = random_state(cell, 2, 5, rng)
    hs, cache = cell.forward(params, x, state, threshold=threshold, sharpness=5.0)
    assert np.all(cache["m"] == 1) and np.all(cache["e"] == 1) and np.all(cache["ex"] == 1)
    assert cache["metrics"] == {"mean_m": 1.0, "update_fraction": 1.0}
    p_plain = {k: params[k] for k in ("W", "U", "b")}
    hs_p, cache_p = plain.forward(p_plain, x, state)
    np.testing.assert_allclose(hs, hs_p, rtol=1e-12, atol=1e-14)
    for a, b in zip(parts(cache["state"]), parts(cache_p["state"])):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    dhs = rng.standard_normal(hs.shape)
    dx, grads = cell.backward(params, dhs, cache)
    dx_p, grads_p = plain.backward(p_plain, dhs, cache_p)
    np.testing.assert_allclose(dx, dx_p, rtol=1e-10, atol=1e-13)
    for k in grads_p:
        np.testing.assert_allclose(grads[k], grads_p[k], rtol=1e-10, atol=1e-13, err_msg=k)
    for k in ("w_x", "w_h", "b_m"):
        assert np.all(grads[k] == 0)


@pytest.mark.parametrize("name", NAMES)
def test_m_forced_to_zero_hard_keeps_the_state(name):
    cell = VC[name]
    rng = np.random.default_rng(2)
    params = random_params(cell, 3, 5, rng, scheduler_bias=-50.0)
    x = rng.standard_normal((2, 4, 3))
    state = random_state(cell, 2, 5, rng)
    hs, cache = cell.forward(params, x, state, threshold="hard")
    assert np.all(cache["e"] == 0) and np.all(cache["ex"] == 0)
    np.testing.assert_array_equal(hs, np.repeat(parts(state)[0][:, None], 4, axis=1))
    assert cell.macs(cache)["needed"] == 2 * 4 * (3 + 5)  # the scheduler only


# ---------------------------------------------------------------- the contract


@pytest.mark.parametrize("threshold", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_step_by_step_equals_whole_sequence(name, threshold):
    """cache["state"] carried from call to call (and dstate fed back) is one call,
    penalty included: it is a sum over time."""
    cell = VC[name]
    rng = np.random.default_rng(4)
    opts = {"threshold": threshold, "alpha": 0.3, "penalty": "l2", "sharpness": 1.5}
    params = random_params(cell, 2, 3, rng)
    x = rng.standard_normal((2, 5, 2))
    state = random_state(cell, 2, 3, rng)
    hs, cache = cell.forward(params, x, state, **opts)
    dhs = rng.standard_normal(hs.shape)
    dx, grads = cell.backward(params, dhs, cache)
    steps, caches, s = [], [], state
    for t in range(5):
        h_t, c = cell.forward(params, x[:, t : t + 1], s, **opts)
        steps.append(h_t)
        caches.append(c)
        s = c["state"]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), hs, rtol=1e-12, atol=1e-14)
    assert sum(c["penalty"] for c in caches) == pytest.approx(cache["penalty"], rel=1e-12)
    dstate, dxs = None, []
    total = {k: np.zeros_like(v) for k, v in params.items()}
    for t in reversed(range(5)):
        dx_t, g = cell.backward(params, dhs[:, t : t + 1], caches[t], dstate)
        dxs.insert(0, dx_t)
        for k in total:
            total[k] += g[k]
        dstate = (g["h0"], g["c0"]) if cell.STATE_SIZE == 2 else g["h0"]
    np.testing.assert_allclose(np.concatenate(dxs, axis=1), dx, rtol=1e-10, atol=1e-12)
    for k in total:
        np.testing.assert_allclose(total[k], grads[k], rtol=1e-10, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("threshold", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_float32_in_float32_out_and_inputs_untouched(name, threshold):
    cell = VC[name]
    rng = np.random.default_rng(1)
    params = random_params(cell, 5, 6, rng, dtype=np.float32)
    x = rng.standard_normal((4, 7, 5)).astype(np.float32)
    state = random_state(cell, 4, 6, rng, np.float32)
    opts = {"threshold": threshold, "alpha": 0.1, "sharpness": 2.0}
    before = [a.copy() for a in (x, *params.values(), *parts(state))]
    hs, cache = cell.forward(params, x, state, **opts)
    dhs = rng.standard_normal(hs.shape).astype(np.float32)
    dx, grads = cell.backward(params, dhs, cache)
    assert hs.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
    assert all(type(v) is float for v in (cache["penalty"], *cache["metrics"].values()))
    assert set(grads) == set(params) | ({"h0", "c0"} if cell.STATE_SIZE == 2 else {"h0"})
    for a, b in zip(before, [x, *params.values(), *parts(state)]):
        np.testing.assert_array_equal(a, b)
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    s64 = tuple(s.astype(np.float64) for s in parts(state))
    hs64, cache64 = cell.forward(
        p64, x.astype(np.float64), s64 if cell.STATE_SIZE == 2 else s64[0], **opts
    )
    assert edge_distance(cache64) > MARGIN  # the same masks in both
    np.testing.assert_allclose(hs, hs64, atol=1e-5)


_NOJIT_SCRIPT = r"""
import json, sys
import numpy as np
from minirnn.cells import vcgru, vclstm, vclstm_sparse, vcrnn
out = {}
for cell in (vcrnn, vcgru, vclstm):
    for opts in ({"threshold": "soft", "alpha": 0.2, "sharpness": 1.5},
                 {"threshold": "hard", "alpha": 0.2, "penalty": "l2", "sharpness": 1.5}):
        rng = np.random.default_rng(7)
        p = cell.init(3, 4, rng=rng, dtype=np.float64)
        for v in p.values():
            v += 0.3 * rng.standard_normal(v.shape)
        x = rng.standard_normal((2, 5, 3))
        hs, cache = cell.forward(p, x, **opts)
        dx, g = cell.backward(p, rng.standard_normal(hs.shape), cache)
        key = cell.__name__ + str(sorted(opts.items()))
        out[key] = [hs.tolist(), dx.tolist(), cache["penalty"]] + [g[k].tolist() for k in sorted(g)]
        if cell is vclstm:
            hs_sparse, info = vclstm_sparse.forward_sparse(p, x, **opts)
            out[key + "sparse"] = [hs_sparse.tolist(), info["macs"]]
json.dump(out, sys.stdout)
"""


def test_compiled_loops_equal_the_same_code_without_jit():
    jit, plain = compiled_and_plain(_NOJIT_SCRIPT)
    assert jit.keys() == plain.keys() and len(jit) == 8
    for key in jit:
        for a, b in zip(jit[key], plain[key]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13, err_msg=key)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "options,error,message",
    [
        ({"threshold": "medium"}, ValueError, "threshold must be 'soft'"),
        ({"sharpness": 0.0}, ValueError, "sharpness (lambda) must be > 0, got 0.0"),
        ({"sharpness": "5"}, TypeError, "sharpness: expected a number, got str"),
        ({"eps": 0.5}, ValueError, "eps must satisfy 0 <= eps < 0.5"),
        ({"eps": float("nan")}, ValueError, "eps: expected a finite number"),
        ({"alpha": -1}, ValueError, "alpha (the penalty weight) must be >= 0"),
        ({"m_target": 1.5}, ValueError, "m_target must lie in [0, 1]"),
        ({"penalty": "l3"}, ValueError, "penalty must be 'l1' or 'l2', got 'l3'"),
        ({"lambda_": 2.0}, TypeError, "unexpected option(s) ['lambda_']"),
        ({"reset_after": True}, TypeError, "unexpected option(s) ['reset_after']"),
    ],
)
@pytest.mark.parametrize("name", NAMES)
def test_bad_options_are_named(name, options, error, message):
    cell = VC[name]
    params = cell.init(3, 4, rng=np.random.default_rng(0))
    with pytest.raises(error) as info:
        cell.forward(params, np.zeros((2, 5, 3), np.float32), **options)
    assert message in str(info.value) and f"{name}.forward" in str(info.value)


def test_bad_params_state_and_upstream_are_named():
    params = vclstm.init(3, 4, rng=np.random.default_rng(0))
    x = np.zeros((2, 5, 3), np.float32)
    with pytest.raises(ValueError, match=r"params\['b_m'\]: expected shape \(1,\), got \(\)"):
        vclstm.forward(dict(params, b_m=np.zeros((), np.float32)), x)
    with pytest.raises(ValueError, match=r"params\['w_h'\]: expected shape \(4,\), got \(3,\)"):
        vclstm.forward(dict(params, w_h=np.zeros(3, np.float32)), x)
    with pytest.raises(KeyError, match=r"missing \['w_x'\]"):
        vclstm.forward({k: v for k, v in params.items() if k != "w_x"}, x)
    with pytest.raises(TypeError, match=r"params\['w_x'\]: expected dtype float32"):
        vclstm.forward(dict(params, w_x=params["w_x"].astype(np.float64)), x)
    with pytest.raises(TypeError, match=r"state: expected a tuple \(h, c\) for an LSTM"):
        vclstm.forward(params, x, np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="x: expected input size 3 to match"):
        vclstm_sparse.forward_sparse(params, np.zeros((2, 5, 2), np.float32))
    p = vcrnn.init(3, 4, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"state h0: expected shape \(2, 4\)"):
        vcrnn.forward(p, x, np.zeros((4,), np.float32))
    with pytest.raises(TypeError, match="x: expected dtype float32 like the parameters"):
        vcgru.forward(vcgru.init(3, 4, rng=np.random.default_rng(0)), x.astype(np.float64))
    hs, cache = vcrnn.forward(p, x)
    with pytest.raises(ValueError, match=r"dhs: expected shape \(2, 5, 4\) like the outputs"):
        vcrnn.backward(p, hs[:, 0], cache)


# ---------------------------------------------------------------- real savings


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("threshold", MODES)
@given(
    seed=st.integers(0, 2**31 - 1),
    batch=st.integers(1, 5),
    time=st.integers(1, 6),
    bias=st.floats(-3, 3),
    sharpness=st.floats(0.3, 8.0),
    with_state=st.booleans(),
)
def test_sparse_inference_equals_the_dense_forward(
    threshold, dtype, tol, seed, batch, time, bias, sharpness, with_state
):
    rng = np.random.default_rng(seed)
    params = random_params(vclstm, 6, 9, rng, dtype=dtype, scheduler_bias=bias)
    x = rng.standard_normal((batch, time, 6)).astype(dtype)
    state = random_state(vclstm, batch, 9, rng, dtype) if with_state else None
    opts = {"threshold": threshold, "sharpness": sharpness, "alpha": 0.1}
    hs, cache = vclstm.forward(params, x, state, **opts)
    hs_s, info = vclstm_sparse.forward_sparse(params, x, state, **opts)
    # float32 rounding moves m by ~1e-7: a mask entry at a jump could flip
    assume(edge_distance(cache) > MARGIN)
    assert hs_s.dtype == dtype
    np.testing.assert_allclose(hs_s, hs, rtol=tol, atol=tol)
    for a, b in zip(info["state"], cache["state"]):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    np.testing.assert_allclose(info["m"], cache["m"].T, rtol=tol, atol=tol)
    assert info["penalty"] == pytest.approx(cache["penalty"], rel=1e-4)
    # the kernel did at least what the masks need, and at most the dense work
    needed = vclstm.macs(cache)
    assert needed["needed"] <= info["macs"] <= info["dense_macs"] == needed["dense"]


def forced(cell, m, I, H, rng, dtype=np.float64):
    """Parameters whose scheduler outputs exactly sigma(b_m) = m at every step."""
    params = {
        k: (0.1 * rng.standard_normal(shape)).astype(dtype)
        for k, shape in cell.param_shapes(I, H).items()
    }
    params["w_x"][:] = 0
    params["w_h"][:] = 0
    params["b_m"][:] = logit(m)
    return params


@pytest.mark.parametrize("m,K,Kx", [(0.25, 25, 7), (0.5, 50, 14), (1.0, 100, 28)])
def test_mac_counts_with_forced_m(m, K, Kx):
    rng = np.random.default_rng(0)
    params = forced(vclstm, min(m, 1 - 1e-12), 28, 100, rng)
    if m == 1.0:
        params["b_m"][:] = 50.0
    x = rng.standard_normal((3, 2, 28))
    _, cache = vclstm.forward(params, x, threshold="hard", sharpness=20.0)
    assert np.all(vc.prefix_length(cache["e"]) == K)
    assert np.all(vc.prefix_length(cache["ex"]) == Kx)
    counts = vclstm.macs(cache)
    per_step = (Kx + K) * 4 * K + 128
    assert counts["needed"] == 6 * per_step
    assert counts["dense"] == 6 * (128 * 400 + 128)
    _, info = vclstm_sparse.forward_sparse(params, x, threshold="hard", sharpness=20.0)
    assert info["macs"] == counts["needed"]  # every example agrees on K
    for cell, gates in ((vcrnn, 1), (vcgru, 3)):
        _, c = cell.forward(
            forced(cell, min(m, 1 - 1e-12), 28, 100, rng), x, threshold="hard", sharpness=20.0
        )
        if m < 1:
            assert cell.macs(c)["needed"] == 6 * ((Kx + K) * gates * K + 128)


def test_prefix_length():
    e = np.array([[1.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.2]])
    np.testing.assert_array_equal(vc.prefix_length(e), [2, 0, 4])


# ---------------------------------------------------------------- schedule and layer


def test_sharpness_schedule():
    assert sharpness_at(0, 1.0, 10.0, 100) == 1.0
    assert sharpness_at(50, 1.0, 10.0, 100) == pytest.approx(5.5)
    assert sharpness_at(50, 1.0, 100.0, 100, kind="exponential") == pytest.approx(10.0)
    assert sharpness_at(1000, 1.0, 10.0, 100) == 10.0  # held at the end
    assert sharpness_at(1000, 1.0, 10.0, 100, kind="exponential") == pytest.approx(10.0)
    with pytest.raises(ValueError, match="kind must be 'linear' or 'exponential'"):
        sharpness_at(0, 1.0, 10.0, 100, kind="cosine")
    with pytest.raises(ValueError, match="steps must be > 0"):
        sharpness_at(0, 1.0, 10.0, 0)


def test_recurrent_layer_reads_penalty_metrics_and_takes_the_schedule(monkeypatch):
    from minirnn.cells import CELLS
    from minirnn.nn.layers import Recurrent

    monkeypatch.setitem(CELLS, "vclstm", vclstm)
    layer = Recurrent(
        "vclstm", 3, 4, rng=np.random.default_rng(0), alpha=0.5, scheduler_bias=1.0, forget_bias=1.0
    )
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)
    layer.forward(x)
    assert layer.penalty() > 0 and set(layer.metrics()) == {"mean_m", "update_fraction"}
    for step in (0, 500, 1000):
        layer.set_option("sharpness", sharpness_at(step, 1.0, 20.0, 1000))
        hs = layer.forward(x)
        assert layer.cache["options"]["sharpness"] == sharpness_at(step, 1.0, 20.0, 1000)
    layer.backward(np.ones_like(hs))
    assert np.any(layer.grads["b_m"] != 0)
