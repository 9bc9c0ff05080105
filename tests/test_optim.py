"""Tests for minirnn.optim: hand-computed updates, in-place/dtype rules, clipping,
checkpoints, the factory, and convergence on a small quadratic."""

import json
import math

import numpy as np
import pytest

from minirnn.optim import (
    SGD,
    Adam,
    Momentum,
    RMSProp,
    clip_grad_norm,
    exponential_lr,
    make_optimizer,
)

ALL_NAMES = ["sgd", "momentum", "nesterov", "adam", "rmsprop"]


def run(opt, grad_list):
    """Step ``opt`` once per gradient in ``grad_list`` (arrays for key 'w')."""
    for g in grad_list:
        opt.step({"w": np.array(g, dtype=opt.params["w"].dtype)})
    return opt.params["w"]


# -- updates computed by hand --------------------------------------------------
#
# Every test starts from w = [1, 0] and uses the gradients below; the comments show
# the arithmetic, coordinate by coordinate, straight from the update formulas.

G3 = [[1.0, -2.0], [1.0, 0.0], [0.5, 1.0]]


def w0():
    return {"w": np.array([1.0, 0.0])}


def test_sgd_by_hand():
    opt = SGD(w0(), lr=0.1)
    # w1 = [1 - .1*1, 0 + .1*2] ; w2 = w1 - .1*[1, 0] ; w3 = w2 - .1*[.5, 1]
    np.testing.assert_allclose(run(opt, G3[:1]), [0.9, 0.2], rtol=0, atol=1e-15)
    np.testing.assert_allclose(run(opt, G3[1:2]), [0.8, 0.2], rtol=0, atol=1e-15)
    np.testing.assert_allclose(run(opt, G3[2:]), [0.75, 0.1], rtol=0, atol=1e-15)


def test_sgd_default_lr():
    opt = SGD(w0())
    np.testing.assert_allclose(run(opt, G3[:1]), [0.99, 0.02], atol=1e-15)


def test_momentum_by_hand():
    opt = Momentum(w0(), lr=0.1, momentum=0.9)
    # coordinate 0: v = 1, 1.9, 2.21  -> w = 0.9, 0.71, 0.489
    # coordinate 1: v = -2, -1.8, -0.62 -> w = 0.2, 0.38, 0.442
    expected = [[0.9, 0.2], [0.71, 0.38], [0.489, 0.442]]
    for g, e in zip(G3, expected):
        np.testing.assert_allclose(run(opt, [g]), e, rtol=0, atol=1e-14)
    np.testing.assert_allclose(opt.v["w"], [2.21, -0.62], atol=1e-14)


def test_nesterov_by_hand():
    opt = Momentum(w0(), lr=0.1, momentum=0.9, nesterov=True)
    # w -= .1 * (g + .9 * v_new), v_new = .9 v + g
    # coordinate 0: v = 1, 1.9, 2.21 ; steps .1*1.9, .1*2.71, .1*2.489
    #   -> w = 0.81, 0.539, 0.2901
    # coordinate 1: v = -2, -1.8, -0.62 ; steps .1*(-3.8), .1*(-1.62), .1*(0.442)
    #   -> w = 0.38, 0.542, 0.4978
    expected = [[0.81, 0.38], [0.539, 0.542], [0.2901, 0.4978]]
    for g, e in zip(G3, expected):
        np.testing.assert_allclose(run(opt, [g]), e, rtol=0, atol=1e-14)


def test_nesterov_differs_from_plain_momentum():
    plain = run(Momentum(w0(), lr=0.1), G3)
    nest = run(Momentum(w0(), lr=0.1, nesterov=True), G3)
    assert np.abs(plain - nest).max() > 0.05


def test_momentum_zero_is_sgd():
    a = run(Momentum(w0(), lr=0.1, momentum=0.0), G3)
    b = run(SGD(w0(), lr=0.1), G3)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_first_step_is_lr_times_sign(dtype):
    rng = np.random.default_rng(0)
    g = rng.normal(size=(5, 7)).astype(dtype)
    g[np.abs(g) < 1e-2] = 0.5  # keep |g| >> eps so the claim is sharp
    p0 = rng.normal(size=(5, 7)).astype(dtype)
    params = {"w": p0.copy()}
    Adam(params, lr=0.01).step({"w": g})
    # After one step m^ = g and v^ = g^2 exactly, so the move is lr * g / (|g| + eps):
    # lr * sign(g) up to a relative eps/|g| <= 1e-6.
    moved = p0.astype(np.float64) - params["w"]
    if dtype == np.float64:
        np.testing.assert_allclose(moved, 0.01 * np.sign(g), rtol=0, atol=1e-8)
        np.testing.assert_allclose(moved, 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)
    else:  # float32 subtraction near |p| ~ 3 rounds at ~2e-7
        np.testing.assert_allclose(moved, 0.01 * np.sign(g), rtol=0, atol=1e-6)


def test_adam_by_hand():
    opt = Adam(w0(), lr=0.1)
    # coordinate 0, g = 2 then 1:
    #   t=1: m = .2, v = .004, m^ = 2, v^ = 4, w = 1 - .1*2/(2+1e-8) = 0.9000000005
    #   t=2: m = .9*.2 + .1*1 = .28, v = .999*.004 + .001*1 = .004996,
    #        m^ = .28/.19 = 1.47368421, v^ = .004996/.001999 = 2.49924962,
    #        w = .9000000005 - .1*1.47368421/(1.58090152 + 1e-8) = 0.80678204
    # coordinate 1, g = -.5 twice: m^ = -.5, v^ = .25 each time, so it moves by
    #   .1*.5/(.5+1e-8) = 0.099999998 per step.
    np.testing.assert_allclose(run(opt, [[2.0, -0.5]]), [0.9000000005, 0.099999998], rtol=1e-9)
    assert opt.t == 1
    np.testing.assert_allclose(run(opt, [[1.0, -0.5]]), [0.80678204, 0.199999996], rtol=1e-8)
    assert opt.t == 2
    np.testing.assert_allclose(opt.m["w"], [0.28, -0.095], rtol=1e-12)
    np.testing.assert_allclose(opt.v["w"], [0.004996, 0.00049975], rtol=1e-12)


def test_rmsprop_by_hand():
    opt = RMSProp(w0(), lr=0.01)
    # coordinate 0, g = 2 then 1: v = .4, then .36 + .1 = .46
    #   w = 1 - .01*2/(sqrt(.4)+1e-7) = 0.9683772284 ; then - .01/(sqrt(.46)+1e-7) = 0.9536330350
    # coordinate 1, g = -.5 twice: v = .025, then .0225 + .025 = .0475
    #   w = .01*.5/(sqrt(.025)+1e-7) = 0.0316227566 ; then + .005/sqrt(.0475) = 0.0545643195
    np.testing.assert_allclose(run(opt, [[2.0, -0.5]]), [0.9683772284, 0.0316227566], rtol=1e-9)
    np.testing.assert_allclose(run(opt, [[1.0, -0.5]]), [0.9536330350, 0.0545643195], rtol=1e-9)
    np.testing.assert_allclose(opt.v["w"], [0.46, 0.0475], rtol=1e-12)


def test_rmsprop_matches_keras_documented_example():
    # Keras's RMSprop docstring: lr=0.1, loss = w**2/2 from w = 10 -> 9.683772 after
    # one step. (eps placement differs, but is negligible at v = 10.)
    params = {"w": np.array(10.0, dtype=np.float32)}
    opt = RMSProp(params, lr=0.1)
    opt.step({"w": params["w"].copy()})
    assert float(params["w"]) == pytest.approx(9.683772, abs=1e-6)


def test_rmsprop_eps_is_outside_the_sqrt():
    # With g = 0 then g tiny, sqrt(v + eps) and sqrt(v) + eps differ by orders of magnitude.
    params = {"w": np.array([0.0])}
    opt = RMSProp(params, lr=1.0, rho=0.0, eps=1e-2)
    opt.step({"w": np.array([1e-6])})
    # outside: 1e-6 / (1e-6 + 1e-2) ~ 9.999e-5 ; inside would be 1e-6/sqrt(1e-12+1e-2) = 1e-5
    assert params["w"][0] == pytest.approx(-1e-6 / (1e-6 + 1e-2), rel=1e-12)


def test_lr_can_change_between_steps():
    opt = SGD(w0(), lr=0.1)
    run(opt, [[1.0, 0.0]])
    opt.lr = 0.5
    np.testing.assert_allclose(run(opt, [[1.0, 0.0]]), [0.4, 0.0], atol=1e-15)


# -- in place, dtype -------------------------------------------------------------


def _params(dtype, rng=None):
    rng = rng or np.random.default_rng(1)
    return {
        "W": rng.normal(size=(3, 4)).astype(dtype),
        "b": rng.normal(size=(4,)).astype(dtype),
    }


def _grads(params, rng):
    return {k: rng.normal(size=p.shape).astype(p.dtype) for k, p in params.items()}


@pytest.mark.parametrize("name", ALL_NAMES)
def test_update_is_in_place(name):
    params = _params(np.float64)
    ids = {k: id(p) for k, p in params.items()}
    view = params["W"][0]  # anything sharing memory must see the update
    before = view.copy()
    opt = make_optimizer(name, params, lr=0.1)
    opt.step(_grads(params, np.random.default_rng(2)))
    assert {k: id(p) for k, p in params.items()} == ids
    assert not np.array_equal(view, before)
    np.testing.assert_array_equal(view, params["W"][0])


@pytest.mark.parametrize("name", ALL_NAMES)
def test_float32_stays_float32(name):
    params = _params(np.float32)
    opt = make_optimizer(name, params, lr=np.float64(0.01))  # a float64 lr from a schedule
    rng = np.random.default_rng(3)
    for _ in range(3):
        # float64 gradients must not promote either
        opt.step({k: g.astype(np.float64) for k, g in _grads(params, rng).items()})
    assert all(p.dtype == np.float32 for p in params.values())
    for key, value in opt.state_dict().items():
        if isinstance(value, dict):
            assert all(a.dtype == np.float32 for a in value.values()), key


@pytest.mark.parametrize("name", ALL_NAMES)
def test_float32_arithmetic_even_with_float64_inputs(name):
    # float64 gradients and a numpy float64 lr must give bit for bit what float32
    # gradients and a Python float lr give: the arithmetic is float32 throughout.
    rng = np.random.default_rng(9)
    # large enough that double rounding shows up somewhere (it does in ~1% of entries)
    pa = {"W": rng.normal(size=(64, 32)).astype(np.float32), "b": np.zeros(32, np.float32)}
    pb = {k: v.copy() for k, v in pa.items()}
    a = make_optimizer(name, pa, lr=0.01)
    b = make_optimizer(name, pb, lr=np.float64(0.01))
    for _ in range(3):
        g64 = {k: rng.normal(size=p.shape) for k, p in pa.items()}
        a.step({k: g.astype(np.float32) for k, g in g64.items()})
        b.step(g64)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])


@pytest.mark.parametrize("name", ["momentum", "adam", "rmsprop"])
def test_float32_matches_float64_closely(name):
    p64 = _params(np.float64)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    o64, o32 = make_optimizer(name, p64, lr=0.01), make_optimizer(name, p32, lr=0.01)
    rng = np.random.default_rng(4)
    for _ in range(5):
        g = _grads(p64, rng)
        o64.step(g)
        o32.step({k: v.astype(np.float32) for k, v in g.items()})
    for k in p64:
        np.testing.assert_allclose(p32[k], p64[k], rtol=1e-5, atol=1e-6)


# -- bad input -----------------------------------------------------------------


def test_step_rejects_missing_and_extra_keys():
    opt = Adam(_params(np.float64))
    g = _grads(opt.params, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        opt.step({"W": g["W"]})
    with pytest.raises(ValueError, match=r"unexpected \['c'\]"):
        opt.step({**g, "c": g["b"]})


def test_step_rejects_shape_mismatch_naming_key_and_shapes():
    params = _params(np.float64)
    before = {k: v.copy() for k, v in params.items()}
    opt = Adam(params)
    g = _grads(params, np.random.default_rng(0))
    g["b"] = np.zeros((1, 4))  # would broadcast silently without the check
    with pytest.raises(ValueError) as err:
        opt.step(g)
    msg = str(err.value)
    assert "'b'" in msg and "(1, 4)" in msg and "(4,)" in msg
    # a rejected step changes nothing, not even Adam's step count
    assert opt.t == 0
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])


def test_step_notices_params_changed_after_construction():
    params = _params(np.float64)
    opt = SGD(params)
    params["b"] = np.zeros(5)
    with pytest.raises(ValueError, match=r"params\['b'\] has shape \(5,\)"):
        opt.step({"W": np.zeros((3, 4)), "b": np.zeros(5)})


@pytest.mark.parametrize(
    "bad",
    [[1.0, 2.0], {"w": [1.0, 2.0]}, {"w": np.array([1, 2])}],
    ids=["not-a-dict", "list-value", "int-array"],
)
def test_constructor_rejects_bad_params(bad):
    with pytest.raises(TypeError):
        SGD(bad)


@pytest.mark.parametrize(
    "factory",
    [
        lambda p: SGD(p, lr=-0.1),
        lambda p: Momentum(p, momentum=1.0),
        lambda p: Adam(p, beta1=1.0),
        lambda p: Adam(p, beta2=-0.1),
        lambda p: Adam(p, eps=-1.0),
        lambda p: RMSProp(p, rho=1.5),
        lambda p: RMSProp(p, lr=float("nan")),
    ],
)
def test_constructor_rejects_bad_hyperparameters(factory):
    with pytest.raises(ValueError):
        factory(w0())


# -- clipping ------------------------------------------------------------------


def test_clip_below_threshold_is_untouched():
    grads = {"a": np.array([3.0, 4.0]), "b": np.array([[12.0]])}
    a = grads["a"]
    before = {k: v.copy() for k, v in grads.items()}
    norm = clip_grad_norm(grads, 13.0)  # norm is exactly 13: not above
    assert norm == 13.0 and isinstance(norm, float)
    assert grads["a"] is a
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])


def test_clip_above_threshold_scales_to_max_norm():
    grads = {"a": np.array([3.0, 4.0]), "b": np.array([[12.0]])}
    a = grads["a"]
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(13.0, rel=1e-15)
    assert grads["a"] is a  # in place
    np.testing.assert_allclose(grads["a"], [3 / 13, 4 / 13], rtol=1e-15)
    np.testing.assert_allclose(grads["b"], [[12 / 13]], rtol=1e-15)
    after = math.sqrt(sum(float(np.sum(g**2)) for g in grads.values()))
    assert after == pytest.approx(1.0, rel=1e-14)
    # a second call now sees the clipped norm and leaves it alone
    assert clip_grad_norm(grads, 1.0) == pytest.approx(1.0, rel=1e-14)


def test_clip_float32_and_random():
    rng = np.random.default_rng(5)
    shapes = {"W": (8, 16), "b": (16,)}
    grads = {k: rng.normal(size=s).astype(np.float32) * 10 for k, s in shapes.items()}
    direction = {k: v / np.linalg.norm(v) for k, v in grads.items()}
    norm = clip_grad_norm(grads, 0.5)
    assert norm > 0.5
    assert all(g.dtype == np.float32 for g in grads.values())
    after = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
    assert after == pytest.approx(0.5, rel=1e-6)
    for k in grads:  # direction of each array is kept
        np.testing.assert_allclose(grads[k] / np.linalg.norm(grads[k]), direction[k], rtol=1e-5)


@pytest.mark.parametrize("max_norm", [0.0, -1.0, float("nan")])
def test_clip_rejects_nonpositive_max_norm(max_norm):
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm({"a": np.array([3.0, 4.0])}, max_norm)


def test_clip_nonfinite_norm_is_reported_and_grads_untouched():
    grads = {"a": np.array([np.inf, 1.0])}
    assert clip_grad_norm(grads, 1.0) == math.inf
    np.testing.assert_array_equal(grads["a"], [np.inf, 1.0])


def test_clip_empty():
    assert clip_grad_norm({}, 1.0) == 0.0


# -- checkpoints -----------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_dict_round_trip_is_bit_identical(name, dtype):
    rng = np.random.default_rng(6)
    grads = [_grads(_params(dtype), rng) for _ in range(8)]
    params_a = _params(dtype)
    a = make_optimizer(name, params_a, lr=0.05)
    for g in grads[:4]:
        a.step(g)

    state = a.state_dict()
    # only plain scalars besides the arrays: the rest must be JSON-serialisable
    json.dumps({k: v for k, v in state.items() if not isinstance(v, dict)})
    # b starts with other hyperparameters and fresh state; loading must fix both
    params_b = {k: v.copy() for k, v in params_a.items()}
    b = make_optimizer(name, params_b, lr=0.3)
    b.load_state_dict(state)
    assert b.lr == a.lr

    for g in grads[4:]:
        a.step(g)
        b.step(g)
    for k in params_a:
        np.testing.assert_array_equal(params_a[k], params_b[k])


def test_without_restoring_state_the_runs_diverge():
    # guards the round-trip test: fresh Adam state must give different numbers
    rng = np.random.default_rng(7)
    grads = [_grads(_params(np.float64), rng) for _ in range(4)]
    pa = _params(np.float64)
    a = Adam(pa, lr=0.05)
    for g in grads[:2]:
        a.step(g)
    pb = {k: v.copy() for k, v in pa.items()}
    b = Adam(pb, lr=0.05)
    for g in grads[2:]:
        a.step(g)
        b.step(g)
    assert not np.array_equal(pa["W"], pb["W"])


def test_state_dict_is_a_snapshot():
    opt = Adam(w0(), lr=0.1)
    run(opt, [[1.0, 1.0]])
    state = opt.state_dict()
    m = state["m"]["w"].copy()
    run(opt, [[5.0, 5.0]])
    assert state["t"] == 1
    np.testing.assert_array_equal(state["m"]["w"], m)


def test_state_dict_contents():
    opt = Adam(w0(), lr=0.1)
    run(opt, [[1.0, 1.0]])
    state = opt.state_dict()
    assert state["name"] == "adam" and state["lr"] == 0.1 and state["t"] == 1
    assert (state["beta1"], state["beta2"], state["eps"]) == (0.9, 0.999, 1e-8)
    assert set(state["m"]) == set(state["v"]) == {"w"}
    mom = Momentum(w0(), nesterov=True).state_dict()
    assert mom["name"] == "momentum" and mom["nesterov"] is True
    assert set(SGD(w0()).state_dict()) == {"name", "lr"}


def test_load_state_dict_rejects_other_kind():
    state = Adam(w0()).state_dict()
    with pytest.raises(ValueError, match="'adam'.*'rmsprop'"):
        RMSProp(w0()).load_state_dict(state)


def test_load_state_dict_rejects_other_param_names():
    state = Adam(w0()).state_dict()
    with pytest.raises(ValueError, match=r"missing \['u'\], unexpected \['w'\]"):
        Adam({"u": np.zeros(2)}).load_state_dict(state)


def test_load_state_dict_rejects_other_shapes_and_changes_nothing():
    src = Adam({"w": np.zeros(3)})
    src.step({"w": np.ones(3)})
    dst = Adam(w0(), lr=0.5)
    with pytest.raises(ValueError) as err:
        dst.load_state_dict(src.state_dict())
    assert "'w'" in str(err.value) and "(3,)" in str(err.value) and "(2,)" in str(err.value)
    assert dst.lr == 0.5 and dst.t == 0


def test_load_state_dict_rejects_incomplete_state():
    state = Adam(w0()).state_dict()
    del state["v"]
    with pytest.raises(ValueError, match="missing entries"):
        Adam(w0()).load_state_dict(state)


# -- factory -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, cls, default_lr",
    [
        ("sgd", SGD, 0.01),
        ("momentum", Momentum, 0.01),
        ("nesterov", Momentum, 0.01),
        ("adam", Adam, 0.001),
        ("rmsprop", RMSProp, 0.001),
        ("Adam", Adam, 0.001),
    ],
)
def test_make_optimizer(name, cls, default_lr):
    params = w0()
    opt = make_optimizer(name, params)
    assert type(opt) is cls and opt.params is params and opt.lr == default_lr
    assert make_optimizer(name, params, lr=0.5).lr == 0.5
    if cls is Momentum:
        assert opt.nesterov == (name == "nesterov")


def test_make_optimizer_passes_kwargs():
    opt = make_optimizer("adam", w0(), beta2=0.99, eps=1e-6)
    assert (opt.beta1, opt.beta2, opt.eps) == (0.9, 0.99, 1e-6)
    assert make_optimizer("rmsprop", w0(), rho=0.5).rho == 0.5


def test_make_optimizer_nesterov_conflict():
    with pytest.raises(ValueError, match="nesterov=False"):
        make_optimizer("nesterov", w0(), nesterov=False)
    assert make_optimizer("momentum", w0(), nesterov=True).nesterov is True


def test_make_optimizer_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as err:
        make_optimizer("adagrad", w0())
    for name in ALL_NAMES:
        assert name in str(err.value)


def test_defaults():
    m = Momentum(w0())
    assert (m.lr, m.momentum, m.nesterov) == (0.01, 0.9, False)
    a = Adam(w0())
    assert (a.lr, a.beta1, a.beta2, a.eps, a.t) == (0.001, 0.9, 0.999, 1e-8, 0)
    r = RMSProp(w0())
    assert (r.lr, r.rho, r.eps) == (0.001, 0.9, 1e-7)


# -- they actually minimise ------------------------------------------------------


@pytest.mark.parametrize(
    "name, lr",
    [("sgd", 0.1), ("momentum", 0.05), ("nesterov", 0.05), ("adam", 0.05), ("rmsprop", 0.01)],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_minimises_a_quadratic(name, lr, dtype):
    # L = 1/2 sum_i a_i (w_i - c_i)^2 with curvatures spread over a factor 10
    rng = np.random.default_rng(8)
    a = np.linspace(0.5, 5.0, 6).astype(dtype)
    c = rng.normal(size=6).astype(dtype)
    params = {"w": np.zeros(6, dtype=dtype)}
    opt = make_optimizer(name, params, lr=lr)

    def loss():
        return 0.5 * float(np.sum(a * (params["w"] - c) ** 2))

    initial = loss()
    for _ in range(400):
        opt.step({"w": a * (params["w"] - c)})
    assert initial > 0.5
    assert loss() < 1e-4 * initial


# -- learning-rate decay -------------------------------------------------------


def test_exponential_lr_hits_both_ends_with_one_factor_per_step():
    rates = [exponential_lr(s, 0.01, 1e-4, 5) for s in range(7)]
    # by hand: 0.01 * (1e-2) ** (s / 4) = 0.01, 0.01 * 10**-0.5, 1e-3, 1e-3 * 10**-0.5, 1e-4
    expected = [0.01, 0.01 * 10**-0.5, 1e-3, 1e-3 * 10**-0.5, 1e-4, 1e-4, 1e-4]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    ratios = np.array(rates[1:5]) / np.array(rates[:4])
    np.testing.assert_allclose(ratios, 10**-0.5, rtol=1e-12)
    assert exponential_lr(0, 0.01, 1e-4, 1) == 0.01  # a one-step run: no decay
    assert exponential_lr(3, 1e-3, 1e-2, 4) == pytest.approx(1e-2)  # it may rise too


@pytest.mark.parametrize(
    "args,match",
    [
        ((0, 0.0, 1e-4, 5), "expected lr > 0 and lr_end > 0, got 0.0 and 0.0001"),
        ((0, 0.01, -1.0, 5), "expected lr > 0 and lr_end > 0, got 0.01 and -1.0"),
        ((0, 0.01, 1e-4, 0), "total_steps: expected a positive integer, got 0"),
    ],
)
def test_exponential_lr_rejects_bad_values(args, match):
    with pytest.raises(ValueError, match=match):
        exponential_lr(*args)


def test_adam_rejects_a_strided_view_it_could_not_update_in_place():
    W = np.zeros((4, 6), np.float32)
    with pytest.raises(
        TypeError,
        match=r"params\['W'\]: Adam updates each parameter in place "
        r"as one flat array, so it must be C-contiguous",
    ):
        Adam({"W": W[:, ::2]})
    Adam({"W": W[1:3]})  # a contiguous slice is fine


def test_adam_matches_the_whole_array_equations_bit_for_bit():
    # the compiled one-pass update against the equations written with NumPy arrays
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        dt = np.dtype(dtype).type
        p = rng.standard_normal((5, 3)).astype(dtype)
        opt = Adam({"w": p}, lr=0.01)
        q, m, v = p.copy(), np.zeros_like(p), np.zeros_like(p)
        for t in range(1, 6):
            g = rng.standard_normal(p.shape).astype(dtype)
            opt.step({"w": g})
            b1, b2 = dt(0.9), dt(0.999)
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * (g * g)
            q -= dt(0.01) * (m / dt(1 - 0.9**t)) / (np.sqrt(v / dt(1 - 0.999**t)) + dt(1e-8))
            np.testing.assert_array_equal(p, q)
