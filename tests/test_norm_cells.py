"""The normalized recurrent cells: bnlstm (recurrent batch norm), lnlstm (both
flavours) and lngru. Gradients against finite differences, forwards against tiny
cases by hand (and against the readable twins in ``minirnn.reference``, every
option, in tests/test_reference.py), batch norm's per-timestep and population
statistics, the layer-norm flavours, the contract (compiled = plain, float32,
inputs untouched, step by step = whole sequence), the nn layer's statistics and
the error messages.

Where finite differences cannot work, and why (the tests below keep away from it,
and test the edge itself separately):

* Batch norm over a batch of 2: each normalized value is +-d / sqrt(d^2 + eps),
  +-1 whatever the input, so the loss hardly depends on x, W, U or the state;
  their true gradients are eps-sized and drown in rounding. Training-mode
  BN-LSTM checks use batch >= 3.
* Batch norm in training mode with input size 1 (or hidden size 1): feature j of
  x_t W is x_t * W_j, and normalizing it over the batch divides |W_j| out; the
  loss is invariant to the scale of W_j (of U_j for h_{t-1} U), dL/dW ~ 0 again.
  Training-mode checks use input >= 2 and hidden >= 2.
* Layer norm over 1 feature (xhat = 0 exactly) or 2 (xhat = +-1 again): hidden >= 3.
* The paper flavour with input size 1: LN(x_t W) of a scalar x_t is sign(x_t)
  times a fixed vector up to eps, invariant to the scale of x_t, so dL/dx ~ 0 and the
  relative error is rounding over rounding. The other LN cells normalize x W (or
  x W + h U with a zero initial state) as well: input >= 2 for all three.
* A constant feature (batch norm) or row (layer norm) has the derivative
  gain / sqrt(eps) through the normalization. It compounds from step to step:
  the function is linear only within about sqrt(eps) / (that product) of the
  point, so central differences with step 1e-6 leave the linear range after a
  step or two. The edge-case tests use one step, or a larger eps.
* A small gradient tensor next to amplified rounding (see assert_gradients_match):
  rechecked with a fourth-order stencil of a larger step, which must pass.
"""

import copy

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jit_off import compiled_and_plain
from minirnn import gradcheck
from minirnn.cells import bnlstm, lngru, lnlstm
from minirnn.functional import layernorm_forward
from minirnn.reference import bnlstm as bnlstm_twin

TOL = gradcheck.TOLERANCE
seeds = st.integers(0, 2**31 - 1)
FLAVOURS = ("paper", "tensorflow")


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def random_params(cell, I, H, rng, dtype=np.float64, **init_opts):
    params = cell.init(I, H, rng=rng, dtype=dtype, **init_opts)
    for p in params.values():
        p += (0.3 * rng.standard_normal(p.shape)).astype(dtype)
    return params


def random_state(cell, B, H, rng, dtype=np.float64, scale=0.5):
    parts = tuple(
        (scale * rng.standard_normal((B, H))).astype(dtype) for _ in range(cell.STATE_SIZE)
    )
    return parts if cell.STATE_SIZE > 1 else parts[0]


def state_parts(state):
    return state if isinstance(state, tuple) else (state,)


def random_stats(H, T_max, rng, dtype=np.float64):
    """Population statistics that differ from timestep to timestep."""
    stats = bnlstm.init_statistics(H, T_max, dtype)
    for key in bnlstm.STAT_KEYS:
        shape = stats[key].shape
        stats[key] = (
            rng.uniform(0.5, 2.0, shape)
            if key.startswith("var")
            else 0.5 * rng.standard_normal(shape)
        ).astype(dtype)
    return stats


def fd_errors(cell, params, x, state, *, h=gradcheck.STEP, seed=0, **fwd):
    """check_cell for given arrays: {tensor: relative error}, and the gradients."""
    run = lambda: cell.forward(params, x, state, **fwd)
    hs, cache = run()
    R = np.random.default_rng(seed).standard_normal(hs.shape)
    dx, grads = cell.backward(params, R, cache)
    loss = lambda: float(np.sum(run()[0] * R))
    tensors = {"x": (x, dx), **{k: (params[k], grads[k]) for k in params}}
    for name, s in zip(("h0", "c0"), state_parts(state)):
        tensors[name] = (s, grads[name])
    errors = {name: gradcheck.gradient_error(g, loss, a, h) for name, (a, g) in tensors.items()}
    return errors, hs, dx, grads


class Recording:
    """A cell module that remembers what check_cell gave it: the arrays of its first
    forward call (the very arrays it perturbs), the upstream gradient R and the
    analytic gradients."""

    def __init__(self, cell):
        self._cell, self.call, self.R, self.grads = cell, None, None, None

    def __getattr__(self, attr):
        return getattr(self._cell, attr)

    def forward(self, params, x, state=None, **kwargs):
        if self.call is None:
            self.call = (params, x, state, kwargs)
        return self._cell.forward(params, x, state, **kwargs)

    def backward(self, params, dhs, cache, dstate=None):
        dx, grads = self._cell.backward(params, dhs, cache, dstate)
        self.R, self.grads = dhs, dict(grads, x=dx)
        return dx, grads

    def loss_and_arrays(self):
        params, x, state, kwargs = self.call
        loss = lambda: float(np.sum(self._cell.forward(params, x, state, **kwargs)[0] * self.R))
        arrays = {"x": x, **params, **dict(zip(("h0", "c0"), state_parts(state)))}
        return loss, arrays


# (check_cell itself now confirms such a tensor with the fourth-order stencil;
# fd_errors below does not, hence this function.)
# check_cell's central differences use a step of 1e-6, so the rounding error of
# the loss is divided by 1e-6. Normalizing a feature of small variance (batch norm
# over 3 examples, layer norm near a constant row with eps = 1e-5) amplifies that
# rounding, and a tensor whose whole gradient is small (1e-4 or less: check_cell
# moves BN-LSTM's gammas of 0.1 by 0.3 N(0, 1), and a gamma near 0 shuts a path)
# can then land above the relative 1e-6 with a right gradient. Seen, 2 in about
# 1,500 examples: dW ~ 9e-5 of a BN-LSTM at relative 1.1e-6 (8e-6 with a step of
# 1e-7: rounding, not truncation); dU ~ 3e-7 in evaluation mode at 3e-6. Such a
# tensor is checked again with a fourth-order stencil of step 1e-4 (rounding 100
# times smaller, truncation O(h^4)): 1.4e-8 for that dW. It must pass that.
def assert_gradients_match(errors, grads, arrays, loss):
    for name, err in errors.items():
        if err >= TOL:
            again = gradcheck.relative_error(
                grads[name], gradcheck.fourth_order_gradient(loss, arrays[name])
            )
            assert again < TOL, (name, err, again, errors)


def check(cell, **kwargs):
    """check_cell, asserting every tensor's error; returns the errors."""
    recording = Recording(cell)
    errors = gradcheck.check_cell(recording, **kwargs)
    loss, arrays = recording.loss_and_arrays()
    assert_gradients_match(errors, recording.grads, arrays, loss)
    return errors


def expected_keys(cell, with_state, **shape_opts):
    keys = {"x", *cell.param_shapes(1, 1, **shape_opts)}
    if with_state:
        keys |= {"h0", "c0"} if cell.STATE_SIZE == 2 else {"h0"}
    return keys


# ================================================================ gradients


@given(
    batch=st.integers(3, 5),
    time=st.integers(1, 4),
    input_size=st.integers(2, 3),
    hidden_size=st.integers(2, 3),
    seed=seeds,
    carry=st.booleans(),
    with_state=st.booleans(),
)
def test_bnlstm_training_gradients(batch, time, input_size, hidden_size, seed, carry, with_state):
    """Batch statistics: the gradient flows through each step's mean and variance.
    batch >= 3, input and hidden >= 2 (see the module docstring)."""
    errors = check(
        bnlstm,
        batch=batch,
        time=time,
        input_size=input_size,
        hidden_size=hidden_size,
        seed=seed,
        with_state=with_state,
        options={"carry_normalized_c": carry},
    )
    assert set(errors) == expected_keys(bnlstm, with_state)


@given(
    batch=st.integers(1, 4),
    time=st.integers(1, 6),
    input_size=st.integers(1, 3),
    hidden_size=st.integers(1, 3),
    seed=seeds,
    carry=st.booleans(),
    with_state=st.booleans(),
)
def test_bnlstm_evaluation_gradients(batch, time, input_size, hidden_size, seed, carry, with_state):
    """Fixed population statistics (check_cell asks bnlstm.evaluation_options for
    random ones of length time - 1, so the last step reads row T_max - 1 again).
    No example depends on another and nothing is divided out: a batch of 1 and
    sizes of 1 are fine here."""
    errors = check(
        bnlstm,
        batch=batch,
        time=time,
        input_size=input_size,
        hidden_size=hidden_size,
        seed=seed,
        with_state=with_state,
        options={"training": False, "carry_normalized_c": carry},
    )
    assert set(errors) == expected_keys(bnlstm, with_state)


@given(time=st.integers(3, 6), t_max=st.integers(1, 2), seed=seeds, carry=st.booleans())
def test_bnlstm_evaluation_gradients_far_beyond_t_max(time, t_max, seed, carry):
    """Statistics much shorter than the sequence: every step t >= T_max reads the
    last row, and its gradient is still right."""
    rng = np.random.default_rng(seed)
    params = random_params(bnlstm, 2, 3, rng)
    x = rng.standard_normal((2, time, 2))
    state = random_state(bnlstm, 2, 3, rng)
    fwd = dict(training=False, stats=random_stats(3, t_max, rng), carry_normalized_c=carry)
    errors, hs, dx, grads = fd_errors(bnlstm, params, x, state, seed=seed % 1000, **fwd)
    R = np.random.default_rng(seed % 1000).standard_normal(hs.shape)
    loss = lambda: float(np.sum(bnlstm.forward(params, x, state, **fwd)[0] * R))
    arrays = {"x": x, **params, "h0": state[0], "c0": state[1]}
    assert_gradients_match(errors, dict(grads, x=dx), arrays, loss)


@given(
    flavour=st.sampled_from(FLAVOURS),
    batch=st.integers(1, 3),
    time=st.integers(1, 4),
    input_size=st.integers(2, 3),
    hidden_size=st.integers(3, 4),
    seed=seeds,
    eps=st.sampled_from([1e-5, 1e-3]),
    with_state=st.booleans(),
)
def test_lnlstm_gradients(flavour, batch, time, input_size, hidden_size, seed, eps, with_state):
    errors = check(
        lnlstm,
        batch=batch,
        time=time,
        input_size=input_size,
        hidden_size=hidden_size,
        seed=seed,
        with_state=with_state,
        options={"flavour": flavour, "eps": eps},
    )
    assert set(errors) == expected_keys(lnlstm, with_state, flavour=flavour)


@given(
    batch=st.integers(1, 3),
    time=st.integers(1, 4),
    input_size=st.integers(2, 3),
    hidden_size=st.integers(3, 4),
    seed=seeds,
    eps=st.sampled_from([1e-5, 1e-3]),
    with_state=st.booleans(),
)
def test_lngru_gradients(batch, time, input_size, hidden_size, seed, eps, with_state):
    errors = check(
        lngru,
        batch=batch,
        time=time,
        input_size=input_size,
        hidden_size=hidden_size,
        seed=seed,
        with_state=with_state,
        options={"eps": eps},
    )
    assert set(errors) == expected_keys(lngru, with_state)


# ---------------------------------------------------------------- the edges


@pytest.mark.parametrize("carry", [False, True])
def test_bnlstm_batch_of_one_in_training(carry):
    """M = 1: every feature is normalized against itself, xhat = 0 exactly, so
    BN(.) = beta and h_t = sigma(b_o) * tanh(beta_c) whatever x, W, U and the state.
    Outputs and gradients are finite; the gradients of everything that only reaches
    h through a normalization are exactly 0 (finite differences agree: the loss is
    exactly constant in them)."""
    rng = np.random.default_rng(3)
    H = 3
    params = random_params(bnlstm, 2, H, rng)
    x = rng.standard_normal((1, 4, 2))
    state = random_state(bnlstm, 1, H, rng)
    errors, hs, dx, grads = fd_errors(bnlstm, params, x, state, carry_normalized_c=carry)
    assert max(errors.values()) < TOL, errors
    o = sigmoid(params["b"][2 * H : 3 * H])
    np.testing.assert_allclose(
        hs, np.broadcast_to(o * np.tanh(params["beta_c"]), hs.shape), rtol=1e-14
    )
    assert all(np.isfinite(g).all() for g in grads.values())
    for key in ("W", "U", "gamma_x", "gamma_h", "gamma_c", "h0", "c0"):
        assert not grads[key].any(), key
    assert not dx.any()
    b = grads["b"]
    assert not b[: 2 * H].any() and not b[3 * H :].any() and b[2 * H : 3 * H].all()
    # a batch of one has no variance to give the population statistics: they are
    # returned unchanged (and a training run whose last batch has one example goes on)
    _, cache = bnlstm.forward(params, x, state)
    stats = bnlstm.init_statistics(H, 4)
    new = bnlstm.update_statistics(stats, cache)
    for key in stats:
        np.testing.assert_array_equal(new[key], stats[key])
        assert new[key] is not stats[key]
    _, eval_cache = bnlstm.forward(params, x, state, training=False, stats=stats)
    with pytest.raises(ValueError, match="training forward"):
        bnlstm.update_statistics(stats, eval_cache)


def test_bnlstm_constant_features_in_training():
    """All examples equal: every feature is constant over the batch, var = 0,
    xhat = 0 exactly and the output is finite. The gradient to each example's x and
    state is gamma / sqrt(eps) * (dy - mean(dy)) at each normalization: large but
    finite and right (eps = 1e-3 keeps one step inside the linear range of the
    central differences, see the module docstring). A weight shared by all examples
    moves them together, the batch stays constant and the loss does not change: the
    gradients of W and U are 0 up to rounding, those of the gammas exactly 0."""
    rng = np.random.default_rng(1)
    params = random_params(bnlstm, 3, 4, rng)
    x = np.repeat(rng.standard_normal((1, 1, 3)), 3, axis=0)
    state = tuple(np.repeat(s, 3, axis=0) for s in random_state(bnlstm, 1, 4, rng))
    for eps in (1e-5, 1e-3):
        errors, hs, dx, grads = fd_errors(bnlstm, params, x, state, eps=eps)
        assert np.isfinite(hs).all() and np.isfinite(dx).all()
        assert all(np.isfinite(g).all() for g in grads.values())
        _, cache = bnlstm.forward(params, x, state, eps=eps)
        for key in ("xhat_x", "xhat_h", "xhat_c"):
            assert not cache[key].any(), key
        scale = max(np.abs(g).max() for g in grads.values())
        for key in ("W", "U"):
            assert np.abs(grads[key]).max() < 1e-12 * scale, key
        for key in ("gamma_x", "gamma_h", "gamma_c"):
            assert not grads[key].any(), key
        if eps == 1e-3:
            for key in ("x", "h0", "c0", "b", "beta_c"):
                assert errors[key] < TOL, (key, errors)
    # the rule at the last normalization, by hand: dh_T reaches c_pre through
    # BN(c) as gamma_c / sqrt(var + eps) * (dy - mean(dy)) with var = 0
    eps = 1e-5
    hs, cache = bnlstm.forward(params, x, state, eps=eps)
    R = np.random.default_rng(0).standard_normal(hs.shape)
    dx, grads = bnlstm.backward(params, R, cache)
    H = 4
    o = cache["ifog"][0, :, 2 * H : 3 * H]
    dcbn = R[:, 0] * o * (1 - cache["tanh_c"][0] ** 2)
    dc_pre = params["gamma_c"] / np.sqrt(eps) * (dcbn - dcbn.mean(axis=0))
    f = cache["ifog"][0, :, H : 2 * H]
    np.testing.assert_allclose(grads["c0"], dc_pre * f, rtol=1e-10)


@pytest.mark.parametrize(
    "cell,opts",
    [(lnlstm, {"flavour": "paper"}), (lnlstm, {"flavour": "tensorflow"}), (lngru, {})],
    ids=["lnlstm-paper", "lnlstm-tensorflow", "lngru"],
)
def test_layer_norm_of_constant_rows(cell, opts):
    """Blank input, zero state, fresh parameters: every normalized row is constant
    (x W = 0, h U = 0, and c = f * 0 + sigma(0) * tanh(0) = 0). Outputs are exactly
    0 and finite, gradients finite; over one step they match finite differences.
    Over several, the derivative gain / sqrt(eps) per normalization compounds: each
    normalization on the recurrent path is 10 times steeper with eps = 1e-5 than
    with 1e-3 (one on the GRU's path, LN(h U) and LN(c) on the LSTMs'), so two more
    blank steps multiply the ratio by 100 (GRU) or 10^4 (LSTMs)."""
    rng = np.random.default_rng(0)
    params = cell.init(3, 4, rng=rng, dtype=np.float64, **opts)
    state = tuple(np.zeros((2, 4)) for _ in range(cell.STATE_SIZE))
    state = state if cell.STATE_SIZE > 1 else state[0]
    growth = {}
    for eps in (1e-5, 1e-3):
        for T in (1, 3):
            x = np.zeros((2, T, 3))
            errors, hs, dx, grads = fd_errors(cell, params, x, state, eps=eps, **opts)
            assert not hs.any()
            assert np.isfinite(dx).all() and all(np.isfinite(g).all() for g in grads.values())
            if T == 1 and eps == 1e-3:
                assert max(errors.values()) < TOL, errors
            growth[eps, T] = np.abs(grads["h0"]).max()
    # the blow-up over blank steps grows much faster with the smaller eps
    ratio = (growth[1e-5, 3] / growth[1e-5, 1]) / (growth[1e-3, 3] / growth[1e-3, 1])
    assert ratio > (50 if cell is lngru else 5000), ratio


@pytest.mark.parametrize(
    "cell,opts",
    [(lnlstm, {"flavour": "paper"}), (lnlstm, {"flavour": "tensorflow"}), (lngru, {})],
    ids=["lnlstm-paper", "lnlstm-tensorflow", "lngru"],
)
def test_layer_norm_over_one_unit_is_finite(cell, opts):
    """hidden = 1: the per-gate and cell normalizations see one value (xhat = 0,
    LN = shift); nothing divides by zero."""
    rng = np.random.default_rng(2)
    params = random_params(cell, 2, 1, rng, **opts)
    x = rng.standard_normal((2, 3, 2))
    state = random_state(cell, 2, 1, rng)
    hs, cache = cell.forward(params, x, state, **opts)
    dx, grads = cell.backward(params, rng.standard_normal(hs.shape), cache)
    assert np.isfinite(hs).all() and np.isfinite(dx).all()
    assert all(np.isfinite(g).all() for g in grads.values())


# ================================================================ forward values

# ---------------------------------------------------------------- by hand


def test_bnlstm_tiny_case_by_hand():
    """Batch 2, one unit, one step, zero state. Over two examples BN gives
    +-d / sqrt(d^2 + eps) times gamma; h0 U = 0 is a constant feature (BN = 0)."""
    eps = 1e-5
    s = lambda v: 1 / (1 + np.exp(-v))
    p = {
        "W": np.array([[1.0, 1.0, 1.0, 1.0]]),
        "U": np.array([[0.3, -0.2, 0.5, 0.1]]),
        "b": np.array([0.0, 1.0, 0.2, 0.0]),
        "gamma_x": np.array([0.5, 1.0, 2.0, 1.5]),
        "gamma_h": np.full(4, 0.7),
        "gamma_c": np.array([0.8]),
        "beta_c": np.array([0.1]),
    }
    x = np.array([[[1.0]], [[3.0]]])  # x W: 1 and 3, mean 2, d = 1
    hs, cache = bnlstm.forward(p, x)
    k = 1 / np.sqrt(1 + eps)  # |xhat| of both examples
    for n, sign in ((0, -1), (1, 1)):
        i, o, g = s(sign * 0.5 * k), s(sign * 2.0 * k + 0.2), np.tanh(sign * 1.5 * k)
        assert cache["ifog"][0, n, 0] == pytest.approx(i, rel=1e-13)
        assert cache["ifog"][0, n, 2] == pytest.approx(o, rel=1e-13)
        assert cache["ifog"][0, n, 3] == pytest.approx(g, rel=1e-13)
    c = np.array([s(-0.5 * k) * np.tanh(-1.5 * k), s(0.5 * k) * np.tanh(1.5 * k)])
    d = (c[1] - c[0]) / 2  # BN(c): +-d / sqrt(d^2 + eps)
    cbn = 0.8 * np.array([-d, d]) / np.sqrt(d * d + eps) + 0.1
    o = np.array([s(-2.0 * k + 0.2), s(2.0 * k + 0.2)])
    np.testing.assert_allclose(hs[:, 0, 0], o * np.tanh(cbn), rtol=1e-13)
    np.testing.assert_allclose(cache["state"][1][:, 0], c, rtol=1e-13)  # raw c carried
    _, cache = bnlstm.forward(p, x, carry_normalized_c=True)
    np.testing.assert_allclose(cache["state"][1][:, 0], cbn, rtol=1e-13)  # BN(c) carried


def test_lngru_tiny_case_by_hand():
    """Two units, one step, h0 = 0. LN over 2 values gives +-d / sqrt(d^2 + eps);
    LN(h0 U_n) = LN(0) = shift_hn; and h = (1 - z) * 0 + z * n: z = 1 takes n."""
    eps = 1e-3
    s = lambda v: 1 / (1 + np.exp(-v))
    p = {
        "W": np.array([[0.0, 2.0, 1.0, -1.0, 0.0, 2.0]]),
        "U": np.zeros((2, 6)),
        "gain_zr": np.array([1.0, 2.0, 0.5, 0.5]),
        "shift_zr": np.array([0.1, 0.0, 0.0, 0.2]),
        "gain_xn": np.array([1.0, 1.0]),
        "shift_xn": np.array([0.0, 0.3]),
        "gain_hn": np.array([1.0, 1.0]),
        "shift_hn": np.array([0.3, -0.2]),
    }
    hs, _ = lngru.forward(p, np.array([[[1.0]]]), eps=eps)
    k = 1 / np.sqrt(1 + eps)  # each pair differs by 2: d = 1
    z = s(np.array([-k + 0.1, 2 * k]))
    r = s(np.array([0.5 * k, -0.5 * k + 0.2]))
    n = np.tanh(np.array([-k, k + 0.3]) + r * np.array([0.3, -0.2]))
    np.testing.assert_allclose(hs[0, 0], z * n, rtol=1e-13)


# ================================================================ batch-norm statistics


def test_bnlstm_init_gamma_beta_and_forget_bias():
    p = bnlstm.init(2, 3, rng=np.random.default_rng(0))
    for key in ("gamma_x", "gamma_h", "gamma_c"):
        assert p[key].dtype == np.float32
        np.testing.assert_array_equal(p[key], np.float32(0.1))
    np.testing.assert_array_equal(p["beta_c"], 0)
    np.testing.assert_array_equal(p["b"], [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = bnlstm.init(2, 3, rng=np.random.default_rng(0), gamma_init=1.0, forget_bias=0.5)
    np.testing.assert_array_equal(p["gamma_c"], 1.0)
    np.testing.assert_array_equal(p["b"][3:6], 0.5)


def _batch_stats_by_hand(params, x, B):
    """Per-step statistics from the readable twin, the variance made unbiased."""
    _, cache = bnlstm_twin.forward(params, x)
    return {
        k: v * (B / (B - 1) if k.startswith("var") else 1) for k, v in cache["batch_stats"].items()
    }


def test_update_statistics_follows_the_moving_average():
    """run = (1 - m) * run + m * stat, the variance unbiased (B / (B - 1)): by hand
    over two updates, the second with a longer batch (the new rows start from the
    last known ones) and a third with a shorter one (later rows untouched)."""
    rng = np.random.default_rng(4)
    B, H = 4, 2
    params = random_params(bnlstm, 3, H, rng)
    stats0 = bnlstm.init_statistics(H, 3, np.float64)
    x1 = rng.standard_normal((B, 3, 3))
    _, cache1 = bnlstm.forward(params, x1)
    kept0, kept_cache = copy.deepcopy(stats0), copy.deepcopy(cache1["batch_stats"])
    stats1 = bnlstm.update_statistics(stats0, cache1)  # momentum 0.1
    b1 = _batch_stats_by_hand(params, x1, B)
    for key in bnlstm.STAT_KEYS:
        np.testing.assert_allclose(stats1[key], 0.9 * stats0[key] + 0.1 * b1[key], rtol=1e-12)
        np.testing.assert_array_equal(stats0[key], kept0[key])  # never mutated
        np.testing.assert_array_equal(cache1["batch_stats"][key], kept_cache[key])
        assert not np.shares_memory(stats1[key], stats0[key])
    x2 = rng.standard_normal((B, 5, 3))
    _, cache2 = bnlstm.forward(params, x2)
    stats2 = bnlstm.update_statistics(stats1, cache2, momentum=0.25)
    b2 = _batch_stats_by_hand(params, x2, B)
    for key in bnlstm.STAT_KEYS:
        assert stats1[key].shape[0] == 3 and stats2[key].shape[0] == 5
        old = np.concatenate([stats1[key], stats1[key][[-1, -1]]])
        np.testing.assert_allclose(stats2[key], 0.75 * old + 0.25 * b2[key], rtol=1e-12)
    x3 = rng.standard_normal((B, 2, 3))
    _, cache3 = bnlstm.forward(params, x3)
    stats3 = bnlstm.update_statistics(stats2, cache3, momentum=0.5)
    b3 = _batch_stats_by_hand(params, x3, B)
    for key in bnlstm.STAT_KEYS:
        np.testing.assert_allclose(
            stats3[key][:2], 0.5 * stats2[key][:2] + 0.5 * b3[key], rtol=1e-12
        )
        np.testing.assert_array_equal(stats3[key][2:], stats2[key][2:])


def test_evaluation_reads_stats_t_and_then_the_last_row():
    rng = np.random.default_rng(5)
    B, T, H, T_max = 3, 6, 3, 3
    params = random_params(bnlstm, 2, H, rng)
    x = rng.standard_normal((B, T, 2))
    stats = random_stats(H, T_max, rng)
    kept = copy.deepcopy(stats)
    hs, _ = bnlstm.forward(params, x, training=False, stats=stats)
    for key in stats:
        np.testing.assert_array_equal(stats[key], kept[key])
    # the same as statistics written out for every step, the last row repeated
    long = {k: np.concatenate([v, np.repeat(v[-1:], T - T_max, axis=0)]) for k, v in stats.items()}
    np.testing.assert_array_equal(bnlstm.forward(params, x, training=False, stats=long)[0], hs)
    # row k is read at step k (and row T_max - 1 at every later step): changing it
    # leaves the earlier steps alone and changes step k
    for k in range(T_max):
        moved = copy.deepcopy(stats)
        for key in moved:
            moved[key][k] *= 1.5
        hs_k, _ = bnlstm.forward(params, x, training=False, stats=moved)
        np.testing.assert_array_equal(hs_k[:, :k], hs[:, :k])
        assert not np.allclose(hs_k[:, k], hs[:, k]), k
    # the rows differ, so one shared set of statistics (row 0 everywhere) does not
    # give the same result
    shared = {k: np.repeat(v[:1], T, axis=0) for k, v in stats.items()}
    assert not np.allclose(bnlstm.forward(params, x, training=False, stats=shared)[0], hs)


@pytest.mark.parametrize("training", [True, False])
def test_carry_normalized_c(training):
    """The default carries the raw c_t = f c_{t-1} + i g; carry_normalized_c=True
    (the Qiita BN-LSTM note) carries BN(c_t), the value that also enters the tanh.
    The first step is the same in both, the later ones differ."""
    rng = np.random.default_rng(6)
    B, T, H = 4, 3, 3
    params = random_params(bnlstm, 2, H, rng)
    x = rng.standard_normal((B, T, 2))
    h0, c0 = random_state(bnlstm, B, H, rng)
    opts = {} if training else {"training": False, "stats": random_stats(H, T, rng)}
    hs = {}
    for carry in (False, True):
        hs[carry], cache = bnlstm.forward(params, x, (h0, c0), carry_normalized_c=carry, **opts)
        for t in range(T):
            # the raw cell u_t = f c_{t-1} + i g from the step's gates, and BN(u_t)
            # with the step's statistics: the batch's, or row t of the population's
            i, f, g = (cache["ifog"][t][:, k * H : (k + 1) * H] for k in (0, 1, 3))
            u = f * cache["cs"][t] + i * g
            if training:
                mean, var = u.mean(axis=0), u.var(axis=0)
            else:
                mean, var = opts["stats"]["mean_c"][t], opts["stats"]["var_c"][t]
            bn_u = params["gamma_c"] * (u - mean) / np.sqrt(var + 1e-5) + params["beta_c"]
            np.testing.assert_allclose(
                cache["cs"][t + 1], bn_u if carry else u, rtol=1e-10, atol=1e-12
            )
        assert not np.allclose(cache["state"][1], u if carry else bn_u)
    np.testing.assert_allclose(hs[True][:, 0], hs[False][:, 0], rtol=1e-14)
    assert not np.allclose(hs[True][:, 1:], hs[False][:, 1:])


# ================================================================ layer-norm flavours


def test_lnlstm_init_layouts_and_forget_bias():
    p = lnlstm.init(2, 3, rng=np.random.default_rng(0), flavour="paper", forget_bias=2.0)
    assert set(p) == {"W", "U", "b", "gain_x", "gain_h", "gain_c", "shift_c"}
    np.testing.assert_array_equal(p["b"], [0, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0, 0])
    p = lnlstm.init(2, 3, rng=np.random.default_rng(0), flavour="tensorflow", forget_bias=2.0)
    assert set(p) == {"W", "U", "gain", "shift", "gain_c", "shift_c"}
    np.testing.assert_array_equal(p["shift"], [0, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(p["gain"], 1)


@pytest.mark.parametrize("forget_bias", [1.0, -0.7])
def test_lnlstm_tensorflow_forget_bias_in_shift_is_a_constant_after_ln(forget_bias):
    """TensorFlow adds forget_bias to the f block after its LN; init writes it into
    shift's f block instead. The cell as TensorFlow writes it adds the constant and
    keeps shift's f block without it: the same function."""
    rng = np.random.default_rng(7)
    H = 3
    params = lnlstm.init(
        2, H, rng=rng, dtype=np.float64, flavour="tensorflow", forget_bias=forget_bias
    )
    for key in ("W", "U", "gain", "gain_c", "shift_c"):
        params[key] += 0.3 * rng.standard_normal(params[key].shape)
    params["shift"] += 0.3 * rng.standard_normal(4 * H)
    x = rng.standard_normal((2, 4, 2))
    h0, c0 = random_state(lnlstm, 2, H, rng)
    hs, _ = lnlstm.forward(params, x, (h0, c0), flavour="tensorflow", eps=1e-3)
    without = dict(params, shift=params["shift"].copy())
    without["shift"][H : 2 * H] -= forget_bias
    h, c, tf_hs = h0, c0, []  # LayerNormBasicLSTMCell, step by step
    for t in range(x.shape[1]):
        z = x[:, t] @ without["W"] + h @ without["U"]
        a = [
            layernorm_forward(
                z[:, k * H : (k + 1) * H],
                without["gain"][k * H : (k + 1) * H],
                without["shift"][k * H : (k + 1) * H],
                1e-3,
            )[0]
            for k in range(4)
        ]
        i, f, o, g = sigmoid(a[0]), sigmoid(a[1] + forget_bias), sigmoid(a[2]), np.tanh(a[3])
        c = layernorm_forward(f * c + i * g, without["gain_c"], without["shift_c"], 1e-3)[0]
        h = o * np.tanh(c)
        tf_hs.append(h)
    np.testing.assert_allclose(hs, np.stack(tf_hs, axis=1), rtol=1e-10, atol=1e-12)


def test_lnlstm_stored_c_is_normalized_only_in_the_tensorflow_flavour():
    rng = np.random.default_rng(8)
    H, eps = 4, 1e-3
    x = rng.standard_normal((3, 3, 2))
    for flavour in FLAVOURS:
        params = lnlstm.init(2, H, rng=rng, dtype=np.float64, flavour=flavour)
        params["W"] += 0.3 * rng.standard_normal(params["W"].shape)
        h0, c0 = random_state(lnlstm, 3, H, rng)
        _, cache = lnlstm.forward(params, x, (h0, c0), flavour=flavour, eps=eps)
        c = cache["state"][1]
        # with gain_c = 1, shift_c = 0 a normalized row has mean 0 and variance
        # var / (var + eps) < 1
        row_means, row_vars = c.mean(axis=1), c.var(axis=1)
        ln_c, _ = layernorm_forward(c, np.ones(H), np.zeros(H), eps)
        if flavour == "tensorflow":
            np.testing.assert_allclose(row_means, 0, atol=1e-12)
            assert np.all(row_vars < 1) and np.all(row_vars > 0.9)
            np.testing.assert_allclose(cache["cs"][1:].mean(axis=2), 0, atol=1e-12)
        else:
            assert not np.allclose(row_means, 0, atol=1e-3)
            assert not np.allclose(c, ln_c)


def test_lnlstm_default_eps_is_the_documented_one():
    rng = np.random.default_rng(9)
    for flavour in FLAVOURS:
        params = random_params(lnlstm, 2, 3, rng, flavour=flavour)
        x = 0.01 * rng.standard_normal((2, 3, 2))  # small rows: eps matters
        got, _ = lnlstm.forward(params, x, flavour=flavour)
        want, _ = lnlstm.forward(params, x, flavour=flavour, eps=1e-2)
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_lngru_default_eps_is_the_documented_one():
    rng = np.random.default_rng(9)
    params = random_params(lngru, 2, 3, rng)
    x = 0.01 * rng.standard_normal((2, 3, 2))
    got, _ = lngru.forward(params, x)
    np.testing.assert_allclose(got, lngru.forward(params, x, eps=1e-2)[0], rtol=1e-12)
    assert not np.allclose(got, lngru.forward(params, x, eps=1e-5)[0], rtol=1e-6)


# ================================================================ the contract

CONTRACT_CASES = [
    (bnlstm, {}),
    (bnlstm, {"carry_normalized_c": True}),
    (bnlstm, {"training": False}),
    (bnlstm, {"training": False, "carry_normalized_c": True}),
    (bnlstm, {"x_stats": "shared", "train_stats": "renorm", "renorm_rmax": 1.5}),
    (bnlstm, {"x_stats": "none", "train_stats": "population"}),
    (bnlstm, {"training": False, "eval_stats": "batch", "x_stats": "shared"}),
    (lnlstm, {"flavour": "paper"}),
    (lnlstm, {"flavour": "tensorflow"}),
    (lngru, {}),
]
CONTRACT_IDS = [
    c.__name__.split(".")[-1] + "".join(f"-{k}={v}" for k, v in o.items())
    for c, o in CONTRACT_CASES
]


def _forward_options(cell, opts, H, T, rng, dtype):
    fwd = dict(opts)
    if cell is bnlstm and (not opts.get("training", True) or "train_stats" in opts):
        fwd["stats"] = random_stats(H, max(1, T - 2), rng, dtype)
        if opts.get("x_stats") == "shared":
            fwd["stats"].update(mean_x=fwd["stats"]["mean_x"][:1], var_x=fwd["stats"]["var_x"][:1])
    return fwd


_NOJIT_SCRIPT = r"""
import json, sys
import numpy as np
from minirnn.cells import bnlstm, lngru, lnlstm
cases = [(bnlstm, {}), (bnlstm, {"carry_normalized_c": True}),
         (bnlstm, {"training": False}), (bnlstm, {"training": False, "carry_normalized_c": True}),
         (bnlstm, {"x_stats": "shared", "train_stats": "renorm", "renorm_rmax": 1.5}),
         (bnlstm, {"x_stats": "none", "train_stats": "population"}),
         (bnlstm, {"training": False, "eval_stats": "batch", "x_stats": "shared"}),
         (lnlstm, {"flavour": "paper"}), (lnlstm, {"flavour": "tensorflow"}), (lngru, {})]
out = {}
for cell, opts in cases:
    rng = np.random.default_rng(7)
    init = {k: v for k, v in opts.items() if k in cell.INIT_OPTIONS}
    p = cell.init(3, 4, rng=rng, dtype=np.float64, **init)
    for v in p.values():
        v += 0.3 * rng.standard_normal(v.shape)
    x = rng.standard_normal((3, 5, 3))
    fwd = dict(opts)
    if not opts.get("training", True) or "train_stats" in opts:
        fwd["stats"] = bnlstm.evaluation_options(4, 5, rng)["stats"]
        if opts.get("x_stats") == "shared":
            fwd["stats"].update(mean_x=fwd["stats"]["mean_x"][:1],
                                var_x=fwd["stats"]["var_x"][:1])
    hs, cache = cell.forward(p, x, **fwd)
    dx, g = cell.backward(p, rng.standard_normal(hs.shape), cache)
    res = [hs.tolist(), dx.tolist()] + [g[k].tolist() for k in sorted(g)]
    if "batch_stats" in cache and cache["training"]:
        new = bnlstm.update_statistics(bnlstm.init_statistics(4, 3, np.float64), cache)
        res += [new[k].tolist() for k in sorted(new)]
    out[cell.__name__ + str(sorted(opts.items()))] = res
json.dump(out, sys.stdout)
"""


def test_compiled_loops_equal_the_same_code_without_jit():
    jit, plain = compiled_and_plain(_NOJIT_SCRIPT)
    assert jit.keys() == plain.keys() and len(jit) == len(CONTRACT_CASES)
    for key in jit:
        assert len(jit[key]) == len(plain[key])
        for a, b in zip(jit[key], plain[key]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13, err_msg=key)


@pytest.mark.parametrize("cell,opts", CONTRACT_CASES, ids=CONTRACT_IDS)
def test_float32_in_float32_out_and_inputs_untouched(cell, opts):
    rng = np.random.default_rng(1)
    init = {k: v for k, v in opts.items() if k in cell.INIT_OPTIONS}
    params = random_params(cell, 5, 6, rng, dtype=np.float32, **init)
    x = rng.standard_normal((4, 7, 5)).astype(np.float32)
    state = random_state(cell, 4, 6, rng, np.float32)
    fwd = _forward_options(cell, opts, 6, 7, rng, np.float32)
    before = copy.deepcopy((x, params, state, fwd))
    hs, cache = cell.forward(params, x, state, **fwd)
    dhs = rng.standard_normal(hs.shape).astype(np.float32)
    dhs_before = dhs.copy()
    dx, grads = cell.backward(params, dhs, cache)
    assert hs.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
    assert all(s.dtype == np.float32 for s in state_parts(cache["state"]))
    for s in cache.get("batch_stats", {}).values():
        assert s.dtype == np.float32
    assert set(grads) == set(params) | ({"h0", "c0"} if cell.STATE_SIZE == 2 else {"h0"})
    x0, params0, state0, fwd0 = before
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dhs, dhs_before)
    for k in params:
        np.testing.assert_array_equal(params[k], params0[k])
    for a, b in zip(state_parts(state), state_parts(state0)):
        np.testing.assert_array_equal(a, b)
    for k in fwd.get("stats", {}):
        np.testing.assert_array_equal(fwd["stats"][k], fwd0["stats"][k])
    # float32 agrees with float64 to float32 precision
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    s64 = tuple(s.astype(np.float64) for s in state_parts(state))
    hs64, _ = cell.forward(p64, x.astype(np.float64), s64 if len(s64) > 1 else s64[0], **fwd)
    np.testing.assert_allclose(hs, hs64, atol=1e-4)


def _step_by_step(cell, params, x, state, dhs, step_options):
    """Forward one timestep per call, carrying cache["state"]; backward from the
    last call to the first, feeding each call's state gradient to the one before
    as ``dstate``. step_options(t) gives the forward options of step t."""
    steps, caches, s = [], [], state
    for t in range(x.shape[1]):
        h_t, c = cell.forward(params, x[:, t : t + 1], s, **step_options(t))
        steps.append(h_t)
        caches.append(c)
        s = c["state"]
    dstate, dxs = None, []
    total = {k: np.zeros_like(v) for k, v in params.items()}
    for t in reversed(range(x.shape[1])):
        dx_t, g = cell.backward(params, dhs[:, t : t + 1], caches[t], dstate)
        dxs.insert(0, dx_t)
        for k in total:
            total[k] += g[k]
        dstate = (g["h0"], g["c0"]) if cell.STATE_SIZE == 2 else g["h0"]
    return np.concatenate(steps, axis=1), np.concatenate(dxs, axis=1), total, dstate, caches


def _assert_same_gradients(a, b):
    hs_a, dx_a, grads_a, dstate_a = a
    hs_b, dx_b, grads_b, dstate_b = b
    np.testing.assert_allclose(hs_a, hs_b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx_a, dx_b, rtol=1e-10, atol=1e-12)
    for k in grads_b:
        np.testing.assert_allclose(grads_a[k], grads_b[k], rtol=1e-10, atol=1e-12, err_msg=k)
    for got, want in zip(state_parts(dstate_a), state_parts(dstate_b)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def _whole(cell, params, x, state, dhs, **fwd):
    hs, cache = cell.forward(params, x, state, **fwd)
    dx, grads = cell.backward(params, dhs, cache)
    dstate = (grads["h0"], grads["c0"]) if cell.STATE_SIZE == 2 else grads["h0"]
    return hs, dx, {k: grads[k] for k in params}, dstate, cache


@pytest.mark.parametrize(
    "cell,opts",
    [(lnlstm, {"flavour": "paper"}), (lnlstm, {"flavour": "tensorflow"}), (lngru, {})],
    ids=["lnlstm-paper", "lnlstm-tensorflow", "lngru"],
)
@given(batch=st.integers(1, 3), time=st.integers(1, 4), seed=seeds)
def test_layer_norm_cells_step_by_step_equal_whole_sequence(cell, opts, batch, time, seed):
    rng = np.random.default_rng(seed)
    params = random_params(cell, 2, 3, rng, **opts)
    x = rng.standard_normal((batch, time, 2))
    state = random_state(cell, batch, 3, rng)
    dhs = rng.standard_normal((batch, time, 3))
    whole = _whole(cell, params, x, state, dhs, **opts)
    steps = _step_by_step(cell, params, x, state, dhs, lambda t: opts)
    _assert_same_gradients(steps[:4], whole[:4])


@given(batch=st.integers(3, 4), time=st.integers(2, 4), seed=seeds, carry=st.booleans())
def test_bnlstm_step_by_step(batch, time, seed, carry):
    """Training: the statistics of step t are taken over the batch at step t only,
    so one call per step gives the same outputs and gradients. What differs is
    where the statistics land: every one-step call reports its statistics as
    timestep 0, so update_statistics from step-by-step calls would pile them all
    into row 0. Evaluation: each call starts again at t = 0, so it reads row 0 of
    the statistics; it equals the whole sequence only when step t is given row t
    (stats sliced from t)."""
    rng = np.random.default_rng(seed)
    H = 3
    params = random_params(bnlstm, 2, H, rng)
    x = rng.standard_normal((batch, time, 2))
    state = random_state(bnlstm, batch, H, rng)
    dhs = rng.standard_normal((batch, time, H))
    fwd = {"carry_normalized_c": carry}
    whole = _whole(bnlstm, params, x, state, dhs, **fwd)
    steps = _step_by_step(bnlstm, params, x, state, dhs, lambda t: fwd)
    _assert_same_gradients(steps[:4], whole[:4])
    for key in bnlstm.STAT_KEYS:
        per_step = np.concatenate([c["batch_stats"][key] for c in steps[4]])
        np.testing.assert_allclose(per_step, whole[4]["batch_stats"][key], rtol=1e-12)

    stats = random_stats(H, time, rng)
    ev = dict(fwd, training=False)
    whole = _whole(bnlstm, params, x, state, dhs, stats=stats, **ev)
    sliced = _step_by_step(
        bnlstm,
        params,
        x,
        state,
        dhs,
        lambda t: dict(ev, stats={k: v[t:] for k, v in stats.items()}),
    )
    _assert_same_gradients(sliced[:4], whole[:4])
    restarted = _step_by_step(bnlstm, params, x, state, dhs, lambda t: dict(ev, stats=stats))
    np.testing.assert_allclose(restarted[0][:, 0], whole[0][:, 0], rtol=1e-12)
    assert not np.allclose(restarted[0][:, 1:], whole[0][:, 1:])


# ---------------------------------------------------------------- statistics options
# x_stats (per step, shared over time, none), train_stats (batch, renorm,
# population) and eval_stats (population, batch): tutorials/09 explains why.


def option_stats(H, time, x_stats, rng, renorm=False):
    """Population statistics for a forward that reads them: random ones of length
    time - 1 (so the last step reads the last row again), one row for x when it
    is shared. With ``renorm``, a variance so large and a mean so far away that r
    and d sit on their clips for every feature, where they really are constant
    (the backward holds them constant: elsewhere finite differences see r and d
    move, and the two cannot agree)."""
    stats = random_stats(H, max(1, time - 1), rng)
    if x_stats == "shared":
        stats["mean_x"], stats["var_x"] = stats["mean_x"][:1], stats["var_x"][:1]
    if renorm:
        for key in bnlstm.STAT_KEYS:
            stats[key] = (
                np.full_like(stats[key], 1e4) if key.startswith("var") else 1e3 + stats[key]
            )
    return stats


MODES = {
    "batch": {"training": True},
    "renorm": {"training": True, "train_stats": "renorm", "renorm_rmax": 2.0, "renorm_dmax": 0.5},
    "frozen": {"training": True, "train_stats": "population"},
    "population": {"training": False},
    "eval-batch": {"training": False, "eval_stats": "batch"},
}


@given(
    mode=st.sampled_from(sorted(MODES)),
    x_stats=st.sampled_from(bnlstm.X_STATS),
    eps=st.sampled_from([1e-5, 1e-2, 1.0]),
    batch=st.integers(3, 5),
    time=st.integers(1, 4),
    input_size=st.integers(2, 3),
    hidden_size=st.integers(2, 3),
    seed=seeds,
    carry=st.booleans(),
)
def test_bnlstm_statistics_options_gradients(
    mode, x_stats, eps, batch, time, input_size, hidden_size, seed, carry
):
    """Every combination of where the statistics come from, in training and in
    evaluation, against finite differences (float64, random upstream gradient).
    A random initial state: from the zero state, h_0 U is a constant feature (see
    the module docstring), which the tests through check_cell cover."""
    rng = np.random.default_rng(seed)
    params = random_params(bnlstm, input_size, hidden_size, rng)
    x = rng.standard_normal((batch, time, input_size))
    state = random_state(bnlstm, batch, hidden_size, rng)
    fwd = dict(MODES[mode], x_stats=x_stats, eps=eps, carry_normalized_c=carry)
    if mode in ("renorm", "frozen", "population"):
        fwd["stats"] = option_stats(hidden_size, time, x_stats, rng, renorm=mode == "renorm")
    errors, hs, dx, grads = fd_errors(bnlstm, params, x, state, seed=seed % 1000, **fwd)
    R = np.random.default_rng(seed % 1000).standard_normal(hs.shape)
    loss = lambda: float(np.sum(bnlstm.forward(params, x, state, **fwd)[0] * R))
    arrays = {"x": x, **params, **dict(zip(("h0", "c0"), state))}
    assert_gradients_match(errors, dict(grads, x=dx), arrays, loss)
    assert set(errors) == expected_keys(bnlstm, True)
    if x_stats == "none":  # gamma_x scales nothing
        assert not grads["gamma_x"].any()


def _renorm_numpy(x, gamma, beta, eps, pop_mean, pop_var, rmax, dmax, r=None, d=None):
    """Batch renormalization written out; r and d are computed unless given."""
    mean, var = x.mean(axis=0), x.var(axis=0)
    sigma = np.sqrt(pop_var + eps)
    if r is None:
        r = np.clip(np.sqrt(var + eps) / sigma, 1 / rmax, rmax)
        d = np.clip((mean - pop_mean) / sigma, -dmax, dmax)
    return gamma * ((x - mean) / np.sqrt(var + eps) * r + d) + beta, r, d


@given(
    M=st.integers(3, 6),
    F=st.integers(1, 4),
    seed=seeds,
    clip=st.sampled_from([(1.5, 0.3), (1e6, 1e6)]),
)
def test_batch_renorm_kernels(M, F, seed, clip):
    """Forward against the formula; r and d on and off their clips; backward
    against finite differences of the same function with r and d held at their
    values (what Ioffe 2017's backward differentiates); unclipped, the output is
    the population's normalization. M >= 3: over two rows the batch-normalized
    values are +-1 whatever x (the module docstring)."""
    from minirnn.functional import batchnorm as bn

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((M, F)) * rng.uniform(0.5, 2, F) + rng.standard_normal(F)
    gamma, beta = rng.uniform(0.5, 1.5, F), rng.standard_normal(F)
    pop_mean, pop_var = rng.standard_normal(F), rng.uniform(0.3, 3, F)
    eps, (rmax, dmax) = 1e-3, clip
    out = [np.empty((M, F)), np.empty((M, F))] + [np.empty(F) for _ in range(5)]
    bn.bn_renorm_train_2d_into(x, gamma, beta, eps, pop_mean, pop_var, rmax, dmax, *out)
    y, xhat_b, inv_std, mean, _, r, d = out
    want, want_r, want_d = _renorm_numpy(x, gamma, beta, eps, pop_mean, pop_var, rmax, dmax)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r, want_r, rtol=1e-12)
    np.testing.assert_allclose(d, want_d, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-12, atol=1e-14)
    if rmax > 1e5:
        np.testing.assert_allclose(
            y, gamma * (x - pop_mean) / np.sqrt(pop_var + eps) + beta, rtol=1e-10, atol=1e-12
        )
    dy = rng.standard_normal((M, F))
    dx, dgamma, dbeta = np.empty((M, F)), np.zeros(F), np.zeros(F)
    bn.bn_renorm_backward_2d_into(dy, xhat_b, inv_std, r, d, gamma, dx, dgamma, dbeta)
    args = [x, gamma, beta]  # perturbed in place by numeric_gradient
    held = lambda: float(
        np.sum(_renorm_numpy(*args, eps, pop_mean, pop_var, rmax, dmax, r.copy(), d.copy())[0] * dy)
    )
    for got, arg in ((dx, 0), (dgamma, 1), (dbeta, 2)):
        numeric = gradcheck.numeric_gradient(held, args[arg])
        assert gradcheck.relative_error(got, numeric) < TOL, arg


@pytest.mark.parametrize("x_stats", bnlstm.X_STATS)
def test_frozen_and_unclipped_renorm_train_like_evaluation(x_stats):
    """train_stats="population" is evaluation's forward with training's dropout,
    and leaves the statistics where they are; renorm with clips that never bite
    normalizes exactly as the population does, and still moves the statistics."""
    rng = np.random.default_rng(3)
    B, T, H = 4, 5, 3
    params = random_params(bnlstm, 2, H, rng)
    x = rng.standard_normal((B, T, 2))
    stats = option_stats(H, T, x_stats, rng)
    opts = {"x_stats": x_stats, "stats": stats}
    want, _ = bnlstm.forward(params, x, training=False, **opts)
    frozen, cache = bnlstm.forward(params, x, train_stats="population", **opts)
    np.testing.assert_array_equal(frozen, want)
    assert "batch_stats" not in cache
    kept = bnlstm.update_statistics(stats, cache)
    for key in stats:
        np.testing.assert_array_equal(kept[key], stats[key])
    renorm, cache = bnlstm.forward(
        params, x, train_stats="renorm", renorm_rmax=1e9, renorm_dmax=1e9, **opts
    )
    np.testing.assert_allclose(renorm, want, rtol=1e-10, atol=1e-12)
    moved = bnlstm.update_statistics(stats, cache)
    assert not np.allclose(moved["mean_h"], stats["mean_h"][:1])
    # with dropout, the population forward drops units in training only
    drop = dict(opts, recurrent_dropout=0.5, rng=np.random.default_rng(0))
    assert not np.allclose(bnlstm.forward(params, x, train_stats="population", **drop)[0], want)


def test_evaluation_with_batch_statistics_is_the_training_forward_without_dropout():
    rng = np.random.default_rng(4)
    B, T, H = 5, 4, 3
    params = random_params(bnlstm, 2, H, rng)
    x = rng.standard_normal((B, T, 2))
    for x_stats in bnlstm.X_STATS:
        want, _ = bnlstm.forward(params, x, x_stats=x_stats)
        got, cache = bnlstm.forward(
            params, x, training=False, eval_stats="batch", x_stats=x_stats, recurrent_dropout=0.5
        )
        np.testing.assert_array_equal(got, want)
        with pytest.raises(
            ValueError, match="update_statistics: expected the cache of a training forward"
        ):
            bnlstm.update_statistics(bnlstm.init_statistics(H, T, np.float64), cache)
    with pytest.raises(
        ValueError,
        match=r"eval_stats: expected one of \('population', "
        r"'batch'\), got 'test'",
    ):
        bnlstm.forward(params, x, training=False, eval_stats="test")
    with pytest.raises(ValueError, match="train_stats: expected one of"):
        bnlstm.forward(params, x, train_stats="ema")
    with pytest.raises(ValueError, match="x_stats: expected one of"):
        bnlstm.forward(params, x, x_stats="time")


def _bnlstm_x_branch_numpy(p, x, h, c, eps, x_stats):
    """A training forward written out for the three x_stats (zero initial state
    given as h, c): returns hs (B, T, H)."""
    B, T, _ = x.shape
    H = h.shape[1]
    bn = lambda z, g, beta: g * (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + eps) + beta
    sig = lambda a: 1 / (1 + np.exp(-a))
    xw = x @ p["W"]  # (B, T, 4H)
    if x_stats == "shared":
        bx = bn(xw.reshape(B * T, 4 * H), p["gamma_x"], 0).reshape(B, T, 4 * H)
    elif x_stats == "step":
        bx = np.stack([bn(xw[:, t], p["gamma_x"], 0) for t in range(T)], axis=1)
    else:
        bx = xw
    out = []
    for t in range(T):
        a = bn(h @ p["U"], p["gamma_h"], 0) + bx[:, t] + p["b"]
        i, f, o, g = (
            sig(a[:, :H]),
            sig(a[:, H : 2 * H]),
            sig(a[:, 2 * H : 3 * H]),
            np.tanh(a[:, 3 * H :]),
        )
        c = f * c + i * g
        h = o * np.tanh(bn(c, p["gamma_c"], p["beta_c"]))
        out.append(h)
    return np.stack(out, axis=1)


@pytest.mark.parametrize("x_stats", bnlstm.X_STATS)
def test_x_statistics_per_step_shared_or_none(x_stats):
    """The forward against the equations written out, the statistics it reports
    (one row when shared over time, none when x W is not normalized) and their
    moving average (a shared row counts B * T values)."""
    rng = np.random.default_rng(5)
    B, T, I, H = 4, 6, 3, 2
    params = random_params(bnlstm, I, H, rng)
    x = rng.standard_normal((B, T, I)) + np.linspace(-2, 2, T)[:, None]
    zeros = np.zeros((B, H))
    hs, cache = bnlstm.forward(params, x, x_stats=x_stats, eps=1e-3)
    np.testing.assert_allclose(
        hs, _bnlstm_x_branch_numpy(params, x, zeros, zeros, 1e-3, x_stats), rtol=1e-10, atol=1e-12
    )
    stats = bnlstm.init_statistics(H, 1, np.float64)
    new = bnlstm.update_statistics(stats, cache, momentum=0.5)
    xw = (x @ params["W"]).reshape(B * T, 4 * H)
    if x_stats == "shared":
        assert cache["batch_stats"]["mean_x"].shape == (1, 4 * H)
        np.testing.assert_allclose(cache["batch_stats"]["var_x"][0], xw.var(axis=0), rtol=1e-12)
        np.testing.assert_allclose(new["var_x"][0], 0.5 + 0.5 * xw.var(axis=0, ddof=1), rtol=1e-12)
        assert new["mean_h"].shape == (T, 4 * H)
    elif x_stats == "none":
        assert "mean_x" not in cache["batch_stats"]
        np.testing.assert_array_equal(new["var_x"], stats["var_x"])
    else:
        assert new["mean_x"].shape == (T, 4 * H)
    # evaluation: shared statistics have one row; per-step ones may be longer
    long = bnlstm.init_statistics(H, T, np.float64)
    if x_stats == "shared":
        with pytest.raises(ValueError, match=r"x_stats='shared' uses one set of statistics"):
            bnlstm.forward(params, x, training=False, stats=long, x_stats=x_stats)
    else:
        bnlstm.forward(params, x, training=False, stats=long, x_stats=x_stats)


def test_stats_momentum_option_sets_the_moving_average():
    """update_statistics without a momentum uses the forward's stats_momentum; an
    explicit momentum wins; the layer's default (None) leaves it to the cell."""
    from minirnn.nn import Recurrent

    rng = np.random.default_rng(12)
    B, T, H = 4, 3, 2
    params = random_params(bnlstm, 2, H, rng)
    x = rng.standard_normal((B, T, 2))
    stats = bnlstm.init_statistics(H, T, np.float64)
    _, cache = bnlstm.forward(params, x, stats_momentum=0.5)
    unbiased = cache["batch_stats"]["var_c"] * B / (B - 1)
    np.testing.assert_allclose(
        bnlstm.update_statistics(stats, cache)["var_c"], 0.5 + 0.5 * unbiased, rtol=1e-12
    )
    np.testing.assert_allclose(
        bnlstm.update_statistics(stats, cache, momentum=0.25)["var_c"],
        0.75 + 0.25 * unbiased,
        rtol=1e-12,
    )
    with pytest.raises(ValueError, match=r"stats_momentum: expected a number in \(0, 1\]"):
        bnlstm.forward(params, x, stats_momentum=0.0)
    # a layer's stats_momentum (the same name as the cell's option) or, when it is
    # None, the cell's option set on the layer: momentum 1 keeps the last batch's
    for layer in (
        Recurrent(
            "bnlstm", 2, H, rng=np.random.default_rng(0), dtype=np.float64, stats_momentum=1.0
        ),
        Recurrent("bnlstm", 2, H, rng=np.random.default_rng(0), dtype=np.float64),
    ):
        if layer.stats_momentum is None:
            layer.set_option("stats_momentum", 1.0)
        layer.train().forward(x)
        np.testing.assert_allclose(layer.stats["mean_h"], layer.cache["batch_stats"]["mean_h"])


@pytest.mark.parametrize("x_stats", bnlstm.X_STATS)
def test_population_statistics_pool_batches_exactly(x_stats):
    """Each batch runs on its own, as in training (its h_t depends on the
    statistics it was normalized with), and their statistics are pooled: mean
    of the means, mean of var + mean^2 minus the squared mean, weighted by batch
    size, made unbiased. For x W, which no normalization feeds, that is the
    statistics of one batch holding them all. Rows beyond the batches' length,
    and x W's rows with x_stats="none", are kept; dropout is left out."""
    rng = np.random.default_rng(13)
    H, T = 3, 4
    params = random_params(bnlstm, 2, H, rng)
    batches = [rng.standard_normal((n, T, 2)) for n in (3, 5, 2)]
    start = random_stats(H, T + 2, rng)
    if x_stats == "shared":
        start["mean_x"], start["var_x"] = start["mean_x"][:1], start["var_x"][:1]
    got = bnlstm.population_statistics(
        params, batches, start, x_stats=x_stats, eps=0.5, recurrent_dropout=0.3
    )
    caches = [
        bnlstm.forward(params, b, x_stats=x_stats, eps=0.5)[1]["batch_stats"] for b in batches
    ]
    n = np.array([len(b) for b in batches], float)[:, None, None]
    N = n.sum()
    for part in "xhc":
        if x_stats == "none" and part == "x":
            np.testing.assert_array_equal(got["mean_x"], start["mean_x"])
            continue
        means = np.stack([c[f"mean_{part}"] for c in caches])
        variances = np.stack([c[f"var_{part}"] for c in caches])
        mean = (n * means).sum(axis=0) / N
        var = ((n * (variances + means**2)).sum(axis=0) / N - mean**2) * N / (N - 1)
        rows = len(mean)
        np.testing.assert_allclose(got[f"mean_{part}"][:rows], mean, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got[f"var_{part}"][:rows], var, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(got[f"var_{part}"][rows:], start[f"var_{part}"][rows:])
    if x_stats != "none":
        whole = bnlstm.forward(params, np.concatenate(batches), x_stats=x_stats, eps=0.5)[1]
        np.testing.assert_allclose(
            got["var_x"][:T], whole["batch_stats"]["var_x"] * N / (N - 1), rtol=1e-10
        )
    with pytest.raises(ValueError, match="at least 2 sequences"):
        bnlstm.population_statistics(params, [batches[2][:1]], start)


def test_recurrent_layer_refreshes_statistics_before_evaluation():
    """With refresh_batches = K the layer keeps its last K training inputs and,
    on eval(), replaces the moving average with statistics recomputed from them
    with the current parameters; with 0 (or frozen statistics) it keeps the moving
    average."""
    from minirnn.nn import Recurrent

    rng = np.random.default_rng(14)
    xs = [rng.standard_normal((4, 5, 3)).astype(np.float32) for _ in range(3)]
    for keep in (0, 2):
        layer = Recurrent("bnlstm", 3, 4, rng=np.random.default_rng(0), refresh_batches=keep)
        layer.train()
        for x in xs:
            layer.forward(x)
        for p in layer.params.values():  # as if the optimizer moved after the last batch
            p += np.float32(0.05)
        moving = copy.deepcopy(layer.stats)
        layer.eval()
        want = (
            bnlstm.population_statistics(layer.params, xs[-keep:], moving, **layer.forward_options)
            if keep
            else moving
        )
        for key in want:
            np.testing.assert_array_equal(layer.stats[key], want[key])
        assert (keep == 0) == all(np.array_equal(layer.stats[k], moving[k]) for k in moving)
        kept = copy.deepcopy(layer.stats)
        layer.eval()  # nothing new to refresh from
        for key in kept:
            np.testing.assert_array_equal(layer.stats[key], kept[key])
    frozen = Recurrent(
        "bnlstm", 3, 4, rng=np.random.default_rng(0), refresh_batches=2, train_stats="population"
    )
    frozen.train().forward(xs[0])
    before = copy.deepcopy(frozen.stats)
    frozen.eval()
    for key in before:
        np.testing.assert_array_equal(frozen.stats[key], before[key])


def test_recurrent_layer_renorm_and_frozen_statistics():
    """The layer hands its statistics to the training forward too: renorm reads
    and moves them, frozen ("population") reads them and keeps them."""
    from minirnn.nn import Recurrent

    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    renorm = Recurrent("bnlstm", 3, 4, rng=np.random.default_rng(0), train_stats="renorm", eps=1.0)
    renorm.train().forward(x)
    first = copy.deepcopy(renorm.stats)
    hs = renorm.forward(x)
    want, _ = bnlstm.forward(renorm.params, x, stats=first, **renorm.forward_options)
    np.testing.assert_array_equal(hs, want)
    assert not np.allclose(renorm.stats["mean_c"], first["mean_c"])
    frozen = Recurrent("bnlstm", 3, 4, rng=np.random.default_rng(0), eps=1.0)
    frozen.train().forward(x)
    frozen.set_option("train_stats", "population")
    kept = copy.deepcopy(frozen.stats)
    hs = frozen.forward(x)
    fwd = {k: v for k, v in frozen.forward_options.items() if k != "train_stats"}
    np.testing.assert_array_equal(
        hs, bnlstm.forward(frozen.params, x, training=False, stats=kept, **fwd)[0]
    )
    for key in kept:
        np.testing.assert_array_equal(frozen.stats[key], kept[key])


def test_cli_eval_with_population_or_batch_statistics(tmp_path, capsys):
    """``eval --bn-stats batch`` normalizes each evaluation batch with its own
    statistics and says so; the default is the population's. A model without
    recurrent batch norm has nothing to switch: one error line, exit 2."""
    from minirnn import cli

    tiny = [
        "--task",
        "sine",
        "--hidden",
        "3",
        "--limit",
        "16",
        "--batch-size",
        "8",
        "--max-steps",
        "4",
        "--quiet",
    ]
    run = tmp_path / "bn"
    assert cli.main(["train", *tiny, "--cell", "bnlstm", "--out", str(run)]) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(run)]) == 0
    population = capsys.readouterr().out
    assert cli.main(["eval", str(run), "--bn-stats", "batch", "--batch-size", "5"]) == 0
    batch = capsys.readouterr().out
    assert "batches of 5" in batch and "batches of" not in population
    loss = lambda text, split: float(text.split(f"{split}: loss ")[1].split()[0].rstrip(","))
    assert loss(population, "test") != loss(batch, "test")
    plain = tmp_path / "lstm"
    assert cli.main(["train", *tiny, "--cell", "lstm", "--out", str(plain)]) == 0
    capsys.readouterr()
    assert cli.main(["eval", str(plain), "--bn-stats", "batch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --bn-stats batch") and "lstm" in err[0]


# ---------------------------------------------------------------- the nn layer


def test_recurrent_layer_keeps_and_uses_bnlstm_statistics(tmp_path):
    from minirnn.checkpoint import load_checkpoint, save_checkpoint
    from minirnn.nn import Recurrent, SequenceClassifier

    rng = np.random.default_rng(10)
    B, T, I, H = 4, 5, 3, 6
    # (refresh_batches=0: the moving average alone; the refresh is tested above)
    layer = Recurrent(
        "bnlstm", I, H, rng=np.random.default_rng(0), stats_momentum=0.2, refresh_batches=0
    )
    fwd = layer.forward_options  # the cell's TRAINING_DEFAULTS
    assert fwd["eps"] == bnlstm.TRAINING_DEFAULTS["eps"]
    x1 = rng.standard_normal((B, T, I)).astype(np.float32)
    x2 = rng.standard_normal((B, T, I)).astype(np.float32)
    start = bnlstm.init_statistics(H, 1)
    assert layer.stats.keys() == start.keys()
    # train mode: batch statistics, and the population statistics move after each forward
    layer.train()
    hs1 = layer.forward(x1)
    np.testing.assert_array_equal(hs1, bnlstm.forward(layer.params, x1, **fwd)[0])
    want = bnlstm.update_statistics(start, layer.cache, momentum=0.2)
    layer.forward(x2)
    want = bnlstm.update_statistics(want, layer.cache, momentum=0.2)
    for key in want:
        rows = 1 if key.endswith("_x") else T  # x W's statistics shared over time
        assert layer.stats[key].shape == (rows, 4 * H if not key.endswith("_c") else H)
        np.testing.assert_allclose(layer.stats[key], want[key], rtol=1e-6)
    # eval mode: the population statistics, which stay as they are
    layer.eval()
    kept = copy.deepcopy(layer.stats)
    hs_eval = layer.forward(x1)
    np.testing.assert_array_equal(
        hs_eval, bnlstm.forward(layer.params, x1, training=False, stats=layer.stats, **fwd)[0]
    )
    assert not np.allclose(hs_eval, hs1)
    for key in kept:
        np.testing.assert_array_equal(layer.stats[key], kept[key])
    dx = layer.backward(np.ones_like(hs_eval))
    assert dx.shape == x1.shape and np.isfinite(dx).all()
    # buffers round-trip, directly and through a checkpoint file
    other = Recurrent("bnlstm", I, H, rng=np.random.default_rng(1)).eval()
    for key in layer.params:
        other.params[key][...] = layer.params[key]
    assert not np.allclose(other.forward(x1), hs_eval)  # fresh statistics
    other.load_buffers(layer.buffers())
    np.testing.assert_array_equal(other.forward(x1), hs_eval)
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, layer.params, {}, {"step": 2}, buffers=layer.buffers())
    _, _, meta = load_checkpoint(path)
    third = Recurrent("bnlstm", I, H, rng=np.random.default_rng(1)).eval()
    for key in layer.params:
        third.params[key][...] = layer.params[key]
    third.load_buffers(meta["buffers"])
    np.testing.assert_array_equal(third.forward(x1), hs_eval)
    with pytest.raises(KeyError, match="bnlstm statistics: expected"):
        third.load_buffers({"mean_x": layer.stats["mean_x"]})
    # in a model, the buffers are prefixed with the layer's index
    model = SequenceClassifier("bnlstm", I, H, 10, rng=np.random.default_rng(2))
    assert set(model.buffers()) == {f"0.{k}" for k in bnlstm.STAT_KEYS}
    # a layer-norm cell has no statistics
    assert Recurrent("lnlstm", I, H, rng=np.random.default_rng(0)).buffers() == {}


# ================================================================ bad input


def test_bad_flavour_is_named():
    rng = np.random.default_rng(0)
    with pytest.raises(
        ValueError,
        match=r"flavour: expected one of \['paper', 'tensorflow'\], "
        r"got 'keras'",
    ):
        lnlstm.init(2, 3, rng=rng, flavour="keras")
    params = lnlstm.init(2, 3, rng=rng)
    x = np.zeros((1, 2, 2), np.float32)
    with pytest.raises(ValueError, match="flavour: expected one of"):
        lnlstm.forward(params, x, flavour="Paper")
    # parameters of one flavour run with the other: the keys say what is wrong
    with pytest.raises(KeyError, match=r"missing \['gain', 'shift'\]"):
        lnlstm.forward(params, x, flavour="tensorflow")
    with pytest.raises(TypeError, match="unexpected option"):
        lngru.forward(lngru.init(2, 3, rng=rng), x, flavour="paper")


def test_bad_statistics_are_named():
    rng = np.random.default_rng(0)
    params = bnlstm.init(2, 3, rng=rng)
    x = np.zeros((2, 4, 2), np.float32)
    with pytest.raises(
        ValueError,
        match=r"stats: evaluation \(training=False\) needs the "
        "population statistics",
    ):
        bnlstm.forward(params, x, training=False)
    stats = bnlstm.init_statistics(3, 4)
    bad = dict(stats, mean_h=np.zeros((4, 3), np.float32))
    with pytest.raises(
        ValueError,
        match=r"stats\['mean_h'\]: expected shape \(T_max, 12\), "
        r"got \(4, 3\)",
    ):
        bnlstm.forward(params, x, training=False, stats=bad)
    bad = dict(stats, var_c=np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"stats\['var_c'\]: expected shape \(T_max, 3\)"):
        bnlstm.forward(params, x, training=False, stats=bad)
    bad = {k: v for k, v in stats.items() if k != "var_x"}
    with pytest.raises(KeyError, match="stats: expected keys"):
        bnlstm.forward(params, x, training=False, stats=bad)
    with pytest.raises(TypeError, match=r"state: expected a tuple \(h, c\)"):
        bnlstm.forward(params, x, np.zeros((2, 3), np.float32))


def test_statistics_of_different_lengths_are_rejected():
    params = bnlstm.init(2, 3, rng=np.random.default_rng(0), dtype=np.float64)
    stats = bnlstm.init_statistics(3, 4, np.float64)
    # (mean_x shorter, not var_h: a shorter var_h would be read out of bounds)
    stats["mean_x"] = stats["mean_x"][:1]
    with pytest.raises(ValueError, match="stats"):
        bnlstm.forward(params, np.zeros((2, 4, 2)), training=False, stats=stats)
