"""The recurrent cells: gradients, forwards by hand, contract, errors. (Each cell
against its readable twin in minirnn.reference: tests/test_reference.py.)"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jit_off import compiled_and_plain
from minirnn import gradcheck
from minirnn.cells import CELLS, gru, lstm, rnn, split_options

# Recurrent dropout cases need an rng and have no dropout-free reference:
# tests/test_dropout.py checks them (gradients, masks, compiled against plain).
# The plain cells; the normalized and variable-computation cells have test files
# of their own (test_norm_cells.py, test_vc.py) with their references and edge cases.
PLAIN = {name: CELLS[name] for name in ("rnn", "lstm", "gru")}
CASES = [
    (name, opts)
    for name, cell in PLAIN.items()
    for opts in cell.GRADCHECK_CASES
    if not opts.get("recurrent_dropout")
]
CASE_IDS = [name + "".join(f"-{k}={v}" for k, v in o.items()) for name, o in CASES]


def random_params(cell, I, H, rng, dtype=np.float64, **init_opts):
    params = cell.init(I, H, rng=rng, dtype=dtype, **init_opts)
    for p in params.values():
        p += (0.3 * rng.standard_normal(p.shape)).astype(dtype)
    return params


def random_state(cell, B, H, rng, dtype=np.float64):
    parts = tuple(rng.standard_normal((B, H)).astype(dtype) for _ in range(cell.STATE_SIZE))
    return parts if cell.STATE_SIZE > 1 else parts[0]


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("name,opts", CASES, ids=CASE_IDS)
@given(
    batch=st.integers(1, 3),
    time=st.integers(1, 4),
    input_size=st.integers(1, 3),
    hidden_size=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    with_state=st.booleans(),
)
def test_gradients_match_finite_differences(
    name, opts, batch, time, input_size, hidden_size, seed, with_state
):
    errors = gradcheck.check_cell(
        CELLS[name],
        batch=batch,
        time=time,
        input_size=input_size,
        hidden_size=hidden_size,
        seed=seed,
        options=opts,
        with_state=with_state,
    )
    expected = {"x", *CELLS[name].param_shapes(1, 1, **opts)}
    if with_state:
        expected |= {"h0", "c0"} if name == "lstm" else {"h0"}
    assert set(errors) == expected
    assert max(errors.values()) < gradcheck.TOLERANCE, errors


class _Sabotaged:
    """An LSTM whose dU is off by 0.1%: the checker must notice."""

    def __getattr__(self, attr):
        return getattr(lstm, attr)

    @staticmethod
    def backward(params, dhs, cache):
        dx, grads = lstm.backward(params, dhs, cache)
        grads["U"] = grads["U"] * 1.001
        return dx, grads


def test_gradient_check_fails_on_a_wrong_gradient():
    errors = gradcheck.check_cell(_Sabotaged())
    assert errors["U"] > 1e-4
    assert errors["W"] < gradcheck.TOLERANCE


@pytest.mark.slow
def test_gradcheck_command_passes_every_row(capsys):
    from minirnn.cli import main

    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.count("PASS") >= 25
    for name in CELLS:
        assert f"\n{name} " in out, name


# ---------------------------------------------------------------- forward values


def _params(**arrays):
    return {k: np.array(v, dtype=np.float64) for k, v in arrays.items()}


def test_rnn_tiny_case_by_hand():
    # one unit: h1 = tanh(0.5*1 + 0 + 0.1), h2 = tanh(0.5*2 - 1*h1 + 0.1)
    p = _params(W=[[0.5]], U=[[-1.0]], b=[0.1])
    hs, _ = rnn.forward(p, np.array([[[1.0], [2.0]]]))
    h1 = math.tanh(0.6)
    np.testing.assert_allclose(hs.ravel(), [h1, math.tanh(1.1 - h1)], rtol=1e-14)


def test_lstm_tiny_case_by_hand():
    # one unit, one step, zero state: gates i, f, o, g from a = x*W + b
    s = lambda v: 1 / (1 + math.exp(-v))
    p = _params(W=[[0.1, 0.2, 0.3, 0.4]], U=[[0.0, 0.0, 0.0, 0.0]], b=[0.0, 1.0, 0.0, 0.0])
    hs, cache = lstm.forward(p, np.array([[[2.0]]]))
    i, o, g = s(0.2), s(0.6), math.tanh(0.8)
    c = i * g  # f * c0 vanishes with c0 = 0
    assert cache["state"][1][0, 0] == pytest.approx(c, rel=1e-14)
    assert hs[0, 0, 0] == pytest.approx(o * math.tanh(c), rel=1e-14)
    # a second step sees c1 through the forget gate f = s(0.4 + 1)
    hs2, cache2 = lstm.forward(p, np.array([[[2.0], [2.0]]]))
    c2 = s(1.4) * c + i * g
    assert cache2["state"][1][0, 0] == pytest.approx(c2, rel=1e-14)


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_tiny_case_by_hand(reset_after):
    s = lambda v: 1 / (1 + math.exp(-v))
    p = _params(W=[[0.5, -0.5, 1.0]], U=[[0.2, 0.3, -0.4]], b=[0.1, 0.2, 0.3])
    if reset_after:
        p["bh"] = np.array([0.05, -0.05, 0.5])
    h0 = np.array([[0.7]])
    hs, _ = gru.forward(p, np.array([[[1.0]]]), h0, reset_after=reset_after)
    bh = p["bh"] if reset_after else np.zeros(3)
    z = s(0.5 + 0.1 + 0.2 * 0.7 + bh[0])
    r = s(-0.5 + 0.2 + 0.3 * 0.7 + bh[1])
    if reset_after:
        n = math.tanh(1.0 + 0.3 + r * (-0.4 * 0.7 + bh[2]))
    else:
        n = math.tanh(1.0 + 0.3 + (r * 0.7) * -0.4)
    assert hs[0, 0, 0] == pytest.approx(z * 0.7 + (1 - z) * n, rel=1e-14)


def test_lstm_forget_bias_is_in_b_and_nowhere_else():
    p = lstm.init(2, 3, rng=np.random.default_rng(0), forget_bias=2.5)
    np.testing.assert_array_equal(p["b"], [0, 0, 0, 2.5, 2.5, 2.5, 0, 0, 0, 0, 0, 0])
    # with W = U = 0 and x = 0, f = sigma(b_f) exactly: forward adds no constant
    p = {k: np.zeros_like(v) for k, v in p.items()}
    p["b"][3:6] = 0.0
    p["b"][9:] = 5.0  # g = tanh(5), i = 1/2
    c0 = np.ones((1, 3), np.float32)
    _, cache = lstm.forward(p, np.zeros((1, 1, 2), np.float32), (c0 * 0, c0))
    np.testing.assert_allclose(cache["state"][1], 0.5 * 1 + 0.5 * np.tanh(5), rtol=1e-6)


@given(T_max=st.floats(2.5, 5000.0), H=st.integers(1, 40), seed=st.integers(0, 2**16))
@settings(deadline=None, max_examples=25)
def test_lstm_chrono_init_spreads_the_forget_time_scales(T_max, H, seed):
    p = lstm.init(2, H, rng=np.random.default_rng(seed), chrono=T_max, dtype=np.float64)
    b_i, b_f, rest = p["b"][:H], p["b"][H : 2 * H], p["b"][2 * H :]
    u = np.exp(b_f)
    assert np.all((u >= 1.0 - 1e-12) & (u <= T_max - 1.0 + 1e-9))
    np.testing.assert_array_equal(b_i, -b_f)
    np.testing.assert_array_equal(rest, 0.0)
    # the forget gate keeps a unit's cell for 1 / (1 - f) = 1 + u steps
    f = 1 / (1 + np.exp(-b_f))
    np.testing.assert_allclose(1 / (1 - f), 1 + u, rtol=1e-9)


def test_lstm_chrono_init_draws_uniform_time_scales():
    b_f = lstm.chrono_forget_bias(784, 20000, np.random.default_rng(0))
    counts, _ = np.histogram(np.exp(b_f), bins=4, range=(1, 783))
    assert np.all(np.abs(counts - 5000) < 300)  # uniform u, not uniform log u


@pytest.mark.parametrize("bad", [2, 1.5, -3, "long", True])
def test_lstm_chrono_init_rejects_what_is_not_a_time_scale(bad):
    with pytest.raises(ValueError, match="chrono: expected .* above 2"):
        lstm.init(2, 3, rng=np.random.default_rng(0), chrono=bad)


# ---------------------------------------------------------------- the contract


@pytest.mark.parametrize("name,opts", CASES, ids=CASE_IDS)
@given(batch=st.integers(1, 3), time=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_step_by_step_equals_whole_sequence(name, opts, batch, time, seed):
    """Carrying cache["state"] from one call to the next is the same as one call,
    forwards, and backwards when the gradient of the carried state is fed back."""
    rng = np.random.default_rng(seed)
    cell = CELLS[name]
    fwd = {k: v for k, v in opts.items() if k in cell.FORWARD_OPTIONS}
    params = random_params(cell, 2, 3, rng, **opts)
    x = rng.standard_normal((batch, time, 2))
    state = random_state(cell, batch, 3, rng)
    hs, cache = cell.forward(params, x, state, **fwd)
    dhs = rng.standard_normal(hs.shape)
    dx, grads = cell.backward(params, dhs, cache)

    steps, caches, s = [], [], state
    for t in range(time):
        h_t, c = cell.forward(params, x[:, t : t + 1], s, **fwd)
        steps.append(h_t)
        caches.append(c)
        s = c["state"]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), hs, rtol=1e-12, atol=1e-14)

    # backwards through the steps: the state gradient of step t is the final-state
    # gradient (dstate) of step t-1
    dstate, dxs = None, []
    total = {k: np.zeros_like(v) for k, v in params.items()}
    for t in reversed(range(time)):
        dx_t, g = cell.backward(params, dhs[:, t : t + 1], caches[t], dstate)
        dxs.insert(0, dx_t)
        for k in total:
            total[k] += g[k]
        dstate = (g["h0"], g["c0"]) if name == "lstm" else g["h0"]
    np.testing.assert_allclose(np.concatenate(dxs, axis=1), dx, rtol=1e-10, atol=1e-12)
    for k in total:
        np.testing.assert_allclose(total[k], grads[k], rtol=1e-10, atol=1e-12)
    for got, key in zip(state_parts(dstate), ("h0", "c0")):
        np.testing.assert_allclose(got, grads[key], rtol=1e-10, atol=1e-12)


def state_parts(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("name,opts", CASES, ids=CASE_IDS)
def test_float32_in_float32_out_and_inputs_untouched(name, opts):
    rng = np.random.default_rng(1)
    cell = CELLS[name]
    fwd = {k: v for k, v in opts.items() if k in cell.FORWARD_OPTIONS}
    params = random_params(cell, 5, 6, rng, dtype=np.float32, **opts)
    x = rng.standard_normal((4, 7, 5)).astype(np.float32)
    state = random_state(cell, 4, 6, rng, np.float32)
    before = [a.copy() for a in (x, *params.values(), *state_parts(state))]
    hs, cache = cell.forward(params, x, state, **fwd)
    dhs = rng.standard_normal(hs.shape).astype(np.float32)
    dhs_before = dhs.copy()
    dx, grads = cell.backward(params, dhs, cache)
    assert hs.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
    assert set(grads) == set(params) | ({"h0", "c0"} if name == "lstm" else {"h0"})
    after = [x, *params.values(), *state_parts(state)]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dhs, dhs_before)
    # float32 agrees with float64 to float32 precision
    p64 = {k: v.astype(np.float64) for k, v in params.items()}
    s64 = tuple(s.astype(np.float64) for s in state) if name == "lstm" else state.astype(np.float64)
    hs64, _ = cell.forward(p64, x.astype(np.float64), s64, **fwd)
    np.testing.assert_allclose(hs, hs64, atol=1e-5)


_NOJIT_SCRIPT = r"""
import json, sys
import numpy as np
from minirnn.cells import CELLS
out = {}
for name in ("rnn", "lstm", "gru"):
    cell = CELLS[name]
    for opts in cell.GRADCHECK_CASES:
        if opts.get("recurrent_dropout"):
            continue
        rng = np.random.default_rng(7)
        p = cell.init(3, 4, rng=rng, dtype=np.float64, **opts)
        for v in p.values():
            v += 0.3 * rng.standard_normal(v.shape)
        x = rng.standard_normal((2, 5, 3))
        fwd = {k: v for k, v in opts.items() if k in cell.FORWARD_OPTIONS}
        hs, cache = cell.forward(p, x, **fwd)
        dx, g = cell.backward(p, rng.standard_normal(hs.shape), cache)
        key = name + str(sorted(opts.items()))
        out[key] = [hs.tolist(), dx.tolist()] + [g[k].tolist() for k in sorted(g)]
json.dump(out, sys.stdout)
"""


def test_compiled_loops_equal_the_same_code_without_jit():
    jit, plain = compiled_and_plain(_NOJIT_SCRIPT)
    assert jit.keys() == plain.keys() and len(jit) == len(CASES)
    for key in jit:
        for a, b in zip(jit[key], plain[key]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13, err_msg=key)


# ---------------------------------------------------------------- bad input


def _lstm_setup():
    params = lstm.init(3, 4, rng=np.random.default_rng(0))
    return params, np.zeros((2, 5, 3), np.float32)


@pytest.mark.parametrize(
    "bad_x,message",
    [
        (np.zeros((5, 3), np.float32), "x: expected shape (batch, time, 3), got (5, 3)"),
        (np.zeros((2, 5, 4), np.float32), "x: expected input size 3 to match params['W']"),
        (np.zeros((2, 5, 3), np.int64), "x: expected dtype float32 or float64, got int64"),
        (
            np.zeros((2, 5, 3), np.float64),
            "x: expected dtype float32 like the parameters, got float64",
        ),
        (np.zeros((2, 0, 3), np.float32), "x: expected at least one example and one timestep"),
        ([[[0.0, 0.0, 0.0]]], "x: expected a NumPy array, got list"),
    ],
)
def test_bad_x_is_named_with_expected_and_actual(bad_x, message):
    params, _ = _lstm_setup()
    with pytest.raises((ValueError, TypeError)) as info:
        lstm.forward(params, bad_x)
    assert message in str(info.value)


def test_bad_state_and_params_are_named():
    params, x = _lstm_setup()
    h = np.zeros((2, 4), np.float32)
    with pytest.raises(
        ValueError, match=r"state c0: expected shape \(2, 4\) = \(batch, hidden\), got \(4,\)"
    ):
        lstm.forward(params, x, (h, np.zeros(4, np.float32)))
    with pytest.raises(TypeError, match=r"state: expected a tuple \(h, c\) for an LSTM"):
        lstm.forward(params, x, h)
    with pytest.raises(ValueError, match=r"state h0: expected shape \(2, 4\)"):
        rnn.forward(rnn.init(3, 4, rng=np.random.default_rng(0)), x, np.zeros((1, 4), np.float32))
    bad = dict(params, b=np.zeros((1, 16), np.float32))
    with pytest.raises(ValueError, match=r"params\['b'\]: expected shape \(16,\), got \(1, 16\)"):
        lstm.forward(bad, x)
    bad = dict(params, U=params["U"].astype(np.float64))
    with pytest.raises(TypeError, match=r"params\['U'\]: expected dtype float32"):
        lstm.forward(bad, x)
    with pytest.raises(KeyError, match="missing \\['b'\\]"):
        lstm.forward({"W": params["W"], "U": params["U"]}, x)
    with pytest.raises(TypeError, match="unexpected option"):
        lstm.forward(params, x, forget_bias=1.0)


def test_gru_convention_mismatch_and_bad_upstream_gradient():
    p = gru.init(3, 4, rng=np.random.default_rng(0), reset_after=True)
    x = np.zeros((2, 5, 3), np.float32)
    with pytest.raises(KeyError, match="reset_after=False expects no recurrent bias 'bh'"):
        gru.forward(p, x)
    hs, cache = gru.forward(p, x, reset_after=True)
    with pytest.raises(
        ValueError, match=r"dhs: expected shape \(2, 5, 4\) like the outputs hs, got \(2, 4\)"
    ):
        gru.backward(p, hs[:, 0], cache)


# ---------------------------------------------------------------- input_grad=False

ALL_CASES = [(name, opts) for name, cell in CELLS.items() for opts in cell.GRADCHECK_CASES]


@pytest.mark.parametrize(
    "name,opts",
    ALL_CASES,
    ids=[n + "".join(f"-{k}={v}" for k, v in o.items() if k != "stats") for n, o in ALL_CASES],
)
def test_input_grad_false_skips_dx_and_changes_no_other_gradient(name, opts):
    cell = CELLS[name]
    options = dict(opts)
    training = options.pop("training", True)
    init_opts, fwd_opts = split_options(cell, options)
    rng = np.random.default_rng(3)
    B, T, I, H = 4, 5, 3, 6
    params = random_params(cell, I, H, rng, **init_opts)
    if not training and hasattr(cell, "evaluation_options"):
        fwd_opts.update(cell.evaluation_options(H, T, rng))
    x = rng.standard_normal((B, T, I))
    state = gradcheck.make_state(cell, B, H, rng)
    hs, cache = cell.forward(
        params, x, state, training=training, rng=np.random.default_rng(5), **fwd_opts
    )
    dhs = rng.standard_normal(hs.shape)
    dx, grads = cell.backward(params, dhs, cache)
    none, grads_skipped = cell.backward(params, dhs, cache, input_grad=False)
    assert dx is not None and dx.shape == x.shape and none is None
    assert grads.keys() == grads_skipped.keys()
    for key in grads:
        np.testing.assert_array_equal(grads[key], grads_skipped[key], err_msg=key)


def test_models_skip_only_the_first_layers_input_gradient():
    from minirnn.nn import Recurrent, SequenceClassifier

    model = SequenceClassifier("lstm", 3, 5, 4, layers=2, rng=np.random.default_rng(0))
    recurrent = [layer for layer in model.layers if isinstance(layer, Recurrent)]
    assert [layer.input_grad for layer in recurrent] == [False, True]
    rng = np.random.default_rng(1)
    logits = model.forward(rng.standard_normal((2, 6, 3)).astype(np.float32))
    assert model.backward(rng.standard_normal(logits.shape)) is None  # data: no gradient


@given(
    B=st.integers(1, 5),
    T=st.integers(1, 6),
    I=st.integers(1, 3),
    G=st.integers(1, 9),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
@settings(deadline=None, max_examples=30)
def test_the_input_projection_is_x_W_plus_b_time_major(B, T, I, G, dtype, seed):
    from minirnn.cells._projection import input_projection

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    W, b = rng.standard_normal((I, G)).astype(dtype), rng.standard_normal(G).astype(dtype)
    expected = np.einsum("bti,ig->tbg", x.astype(np.float64), W.astype(np.float64))
    xw = input_projection(x, W)
    assert xw.dtype == dtype and xw.shape == (T, B, G) and xw.flags.c_contiguous
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    np.testing.assert_allclose(xw, expected, **tol)
    if I == 1:  # the broadcast outer product rounds each entry once, as a product does
        np.testing.assert_array_equal(xw, (x.transpose(1, 0, 2) @ W))
    np.testing.assert_allclose(input_projection(x, W, b), expected + b, **tol)
