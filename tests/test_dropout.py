"""Recurrent dropout in the rnn, lstm and gru cells (``minirnn/cells/_dropout.py``).

Gradients with fixed masks for every placement, cell and mask kind; the masks
in the cache are the ones forward used; evaluation is the dropout-free cell,
bit for bit; the expected state under "update" dropout is the dropout-free
state where the state is linear in the mask; the rate, the sharing over the
batch and over time; step-by-step calls and a resumed training run see the
same masks as one call; clear errors.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jit_off import compiled_and_plain
from minirnn import gradcheck
from minirnn.cells import _dropout, gru, lstm, rnn, split_options

# (cell, where, init/forward options that pick the cell's convention)
VARIANTS = (
    [(rnn, "hidden", {})]
    + [(lstm, w, {}) for w in ("update", "hidden", "cell")]
    + [(gru, w, {"reset_after": ra}) for w in ("update", "hidden") for ra in (False, True)]
)
VARIANT_IDS = [
    f"{c.__name__.split('.')[-1]}-{w}" + "".join(f"-{k}={v}" for k, v in o.items())
    for c, w, o in VARIANTS
]
MASK_KINDS = [(per, shared) for per in ("sequence", "step") for shared in (False, True)]


def setup(cell, conv, B, T, I, H, seed, dtype=np.float64, with_state=True):
    rng = np.random.default_rng(seed)
    params = cell.init(I, H, rng=rng, dtype=dtype, **conv)
    for p in params.values():
        p += (0.3 * rng.standard_normal(p.shape)).astype(dtype)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    state = None
    if with_state:
        parts = tuple(
            0.5 * rng.standard_normal((B, H)).astype(dtype) for _ in range(cell.STATE_SIZE)
        )
        state = parts if cell.STATE_SIZE > 1 else parts[0]
    return params, x, state


def options(where, per="sequence", shared=False, p=0.3, **conv):
    return dict(
        conv, recurrent_dropout=p, dropout_where=where, dropout_per=per, dropout_shared=shared
    )


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("cell,where,conv", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("per,shared", MASK_KINDS)
def test_gradients_with_fixed_masks_every_placement_and_mask_kind(cell, where, conv, per, shared):
    errors = gradcheck.check_cell(
        cell, batch=3, time=4, seed=5, options=options(where, per, shared, **conv)
    )
    assert max(errors.values()) < gradcheck.TOLERANCE, errors


@given(
    variant=st.sampled_from(VARIANTS),
    kind=st.sampled_from(MASK_KINDS),
    p=st.sampled_from([0.1, 0.3, 0.5, 0.8]),
    batch=st.integers(1, 3),
    time=st.integers(1, 4),
    input_size=st.integers(1, 3),
    hidden_size=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    with_state=st.booleans(),
)
def test_gradients_with_fixed_masks_match_finite_differences(
    variant, kind, p, batch, time, input_size, hidden_size, seed, with_state
):
    cell, where, conv = variant
    errors = gradcheck.check_cell(
        cell,
        batch=batch,
        time=time,
        input_size=input_size,
        hidden_size=hidden_size,
        seed=seed,
        with_state=with_state,
        options=options(where, *kind, p=p, **conv),
    )
    assert max(errors.values()) < gradcheck.TOLERANCE, errors


class _MaskForgotten:
    """A cell whose backward ignores the masks: the checker must notice, which
    shows that it evaluates every forward with the same masks."""

    def __init__(self, cell):
        self.cell = cell

    def __getattr__(self, attr):
        return getattr(self.cell, attr)

    def backward(self, params, dhs, cache):
        return self.cell.backward(params, dhs, dict(cache, masks={}))


@pytest.mark.parametrize("cell,where,conv", VARIANTS, ids=VARIANT_IDS)
def test_gradient_check_fails_when_backward_forgets_the_mask(cell, where, conv):
    errors = gradcheck.check_cell(
        _MaskForgotten(cell), batch=3, time=4, seed=2, options=options(where, "step", **conv)
    )
    assert max(errors.values()) > 1e-3


def test_gradcheck_cases_cover_every_placement():
    covered = {
        (c.__name__.split(".")[-1], o.get("dropout_where"), o.get("reset_after"))
        for c in (rnn, lstm, gru)
        for o in c.GRADCHECK_CASES
        if o.get("recurrent_dropout")
    }
    expected = {(c.__name__.split(".")[-1], w, o.get("reset_after")) for c, w, o in VARIANTS}
    assert covered == expected


# ---------------------------------------------------------------- the masks


@pytest.mark.parametrize("cell,where,conv", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("per,shared", MASK_KINDS)
def test_masks_live_in_the_cache_and_repeat_with_the_seed(cell, where, conv, per, shared):
    B, T, H = 3, 5, 4
    params, x, state = setup(cell, conv, B, T, 2, H, seed=1)
    opts = options(where, per, shared, **conv)
    hs, cache = cell.forward(params, x, state, rng=np.random.default_rng(42), **opts)
    ((key, mask),) = cache["masks"].items()
    assert key == where
    assert mask.shape == (T if per == "step" else 1, 1 if shared else B, H)
    assert mask.dtype == x.dtype and mask.flags.c_contiguous
    assert set(np.unique(mask)) <= {0.0, 1 / 0.7}
    # the same seed: the same masks and outputs; another seed: other outputs
    hs2, cache2 = cell.forward(params, x, state, rng=np.random.default_rng(42), **opts)
    np.testing.assert_array_equal(hs2, hs)
    np.testing.assert_array_equal(cache2["masks"][where], mask)
    hs3, _ = cell.forward(params, x, state, rng=np.random.default_rng(43), **opts)
    assert not np.array_equal(hs3, hs)
    # backward draws nothing: it reads the cache, so it repeats exactly
    dhs = np.random.default_rng(0).standard_normal(hs.shape)
    dx1, g1 = cell.backward(params, dhs, cache)
    dx2, g2 = cell.backward(params, dhs, cache2)
    np.testing.assert_array_equal(dx1, dx2)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


def test_the_mask_is_where_the_equations_say():
    """One LSTM step with a known mask, against the equations written out."""
    sig = lambda a: 1 / (1 + np.exp(-a))
    B, I, H = 2, 3, 4
    params, x, (h0, c0) = setup(lstm, {}, B, 1, I, H, seed=3)
    a = x[:, 0] @ params["W"] + params["b"]
    for where in ("update", "hidden", "cell"):
        _, cache = lstm.forward(
            params, x, (h0, c0), rng=np.random.default_rng(9), **options(where, "step")
        )
        m = cache["masks"][where][0]  # (B, H)
        m_h, m_g, m_c = (m if where == w else 1.0 for w in ("hidden", "update", "cell"))
        z = a + (h0 * m_h) @ params["U"]
        i, f, o = sig(z[:, :H]), sig(z[:, H : 2 * H]), sig(z[:, 2 * H : 3 * H])
        g = np.tanh(z[:, 3 * H :])
        c1 = m_c * (f * c0 + i * (g * m_g))
        np.testing.assert_allclose(cache["state"][1], c1, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(cache["state"][0], o * np.tanh(c1), rtol=1e-12, atol=1e-15)


@given(p=st.floats(0.05, 0.95), seed=st.integers(0, 2**31 - 1))
def test_mask_rate_matches_p_and_the_mean_is_one(p, seed):
    n_t, n_b, n_h = 20, 50, 40
    m = _dropout.draw_mask(
        np.random.default_rng(seed), p, n_t, n_b, n_h, per="step", dtype=np.float64
    )
    n = m.size
    dropped = float((m == 0).mean())
    # binomial: the dropped fraction has standard deviation sqrt(p (1-p) / n); 5 of them
    assert abs(dropped - p) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(m[m != 0], 1 / (1 - p), rtol=1e-15)
    assert abs(m.mean() - 1) < 5 * math.sqrt(p / (1 - p) / n)  # the mask's sd is sqrt(p/(1-p))


def test_mask_rule_is_the_qiita_notes_floor_of_keep_plus_uniform():
    keep_prob = 0.8
    u = np.random.default_rng(4).random((1, 1, 1000))
    theirs = np.floor(keep_prob + u) / keep_prob
    ours = _dropout.draw_mask(
        np.random.default_rng(4), 1 - keep_prob, 1, 1, 1000, shared=True, dtype=np.float64
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-15)


@pytest.mark.parametrize("cell,where,conv", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("per", ["sequence", "step"])
def test_shared_masks_are_equal_over_the_batch(cell, where, conv, per):
    B, T, H = 4, 3, 5
    params, x1, _ = setup(cell, conv, 1, T, 2, H, seed=6)
    x = np.repeat(x1, B, axis=0)  # the same example B times
    opts = options(where, per, True, p=0.5, **conv)
    hs, cache = cell.forward(params, x, rng=np.random.default_rng(0), **opts)
    assert cache["masks"][where].shape[1] == 1
    for n in range(1, B):  # the same mask, so the same outputs
        np.testing.assert_array_equal(hs[n], hs[0])
    hs, cache = cell.forward(
        params, x, rng=np.random.default_rng(0), **dict(opts, dropout_shared=False)
    )
    m = cache["masks"][where]
    assert m.shape[1] == B and not all(np.array_equal(m[:, n], m[:, 0]) for n in range(B))
    assert not all(np.array_equal(hs[n], hs[0]) for n in range(1, B))


@pytest.mark.parametrize("cell,where,conv", VARIANTS, ids=VARIANT_IDS)
def test_per_sequence_masks_are_equal_over_time(cell, where, conv, monkeypatch):
    """A per-sequence mask is one (B, H) array used at every step: forward and
    backward are those of a per-step mask whose T rows are all that array."""
    B, T, H = 2, 6, 5
    params, x, state = setup(cell, conv, B, T, 2, H, seed=8)
    opts = options(where, "sequence", **conv)
    hs, cache = cell.forward(params, x, state, rng=np.random.default_rng(1), **opts)
    m = cache["masks"][where]
    assert m.shape == (1, B, H)
    # the same run with dropout_per="step", handed T copies of m as its mask
    monkeypatch.setattr(_dropout, "draw_mask", lambda *a, **k: np.repeat(m, T, axis=0))
    hs_t, cache_t = cell.forward(
        params, x, state, rng=np.random.default_rng(1), **dict(opts, dropout_per="step")
    )
    assert cache_t["masks"][where].shape == (T, B, H)
    np.testing.assert_array_equal(hs_t, hs)
    dhs = np.random.default_rng(2).standard_normal(hs.shape)
    dx1, g1 = cell.backward(params, dhs, cache)
    dx2, g2 = cell.backward(params, dhs, cache_t)
    np.testing.assert_array_equal(dx2, dx1)
    for k in g1:
        np.testing.assert_array_equal(g2[k], g1[k])


@pytest.mark.parametrize("cell,where,conv", VARIANTS, ids=VARIANT_IDS)
def test_per_step_masks_carried_state_equals_one_call(cell, where, conv):
    """Per-step masks drawn call by call from one generator are the whole call's
    masks (the generator fills (T, B, H) in order), so a sequence cut into chunks,
    its state carried, gives the same outputs and, through dstate, the same
    gradients as one call."""
    B, T, H = 2, 5, 3
    params, x, state = setup(cell, conv, B, T, 2, H, seed=4)
    opts = options(where, "step", **conv)
    hs, cache = cell.forward(params, x, state, rng=np.random.default_rng(11), **opts)
    dhs = np.random.default_rng(12).standard_normal(hs.shape)
    dx, grads = cell.backward(params, dhs, cache)

    gen, s, outs, caches = np.random.default_rng(11), state, [], []
    for t0, t1 in ((0, 2), (2, 3), (3, 5)):
        h, c = cell.forward(params, x[:, t0:t1], s, rng=gen, **opts)
        outs.append(h)
        caches.append((t0, t1, c))
        s = c["state"]
    np.testing.assert_allclose(np.concatenate(outs, axis=1), hs, rtol=1e-13, atol=1e-15)
    dstate, dxs = None, []
    total = {k: np.zeros_like(v) for k, v in params.items()}
    for t0, t1, c in reversed(caches):
        d, g = cell.backward(params, dhs[:, t0:t1], c, dstate)
        dxs.insert(0, d)
        for k in total:
            total[k] += g[k]
        dstate = (g["h0"], g["c0"]) if cell is lstm else g["h0"]
    np.testing.assert_allclose(np.concatenate(dxs, axis=1), dx, rtol=1e-10, atol=1e-12)
    for k in total:
        np.testing.assert_allclose(total[k], grads[k], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- evaluation


@pytest.mark.parametrize("cell,where,conv", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_evaluation_is_deterministic_and_equals_the_dropout_free_cell(cell, where, conv, dtype):
    params, x, state = setup(cell, conv, 3, 6, 2, 5, seed=2, dtype=dtype)
    plain_hs, plain = cell.forward(params, x, state, **conv)
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    for generator in (None, rng):
        hs, cache = cell.forward(
            params, x, state, training=False, rng=generator, **options(where, "step", p=0.5, **conv)
        )
        np.testing.assert_array_equal(hs, plain_hs)  # bit for bit
        assert cache["masks"] == {}
    assert rng.bit_generator.state == before  # nothing was drawn
    # dropout 0 in training is the plain cell too, and draws nothing
    hs, _ = cell.forward(params, x, state, rng=rng, **options(where, p=0.0, **conv))
    np.testing.assert_array_equal(hs, plain_hs)
    assert rng.bit_generator.state == before


@pytest.mark.parametrize("cell,where,conv", VARIANTS, ids=VARIANT_IDS)
def test_float32_masks_match_float64_and_stay_float32(cell, where, conv):
    p32, x32, s32 = setup(cell, conv, 3, 5, 2, 4, seed=3, dtype=np.float32)
    p64 = {k: v.astype(np.float64) for k, v in p32.items()}
    s64 = tuple(s.astype(np.float64) for s in s32) if cell is lstm else s32.astype(np.float64)
    opts = options(where, "step", **conv)
    hs32, c32 = cell.forward(p32, x32, s32, rng=np.random.default_rng(5), **opts)
    hs64, c64 = cell.forward(p64, x32.astype(np.float64), s64, rng=np.random.default_rng(5), **opts)
    assert hs32.dtype == c32["masks"][where].dtype == np.float32
    np.testing.assert_array_equal(c32["masks"][where] == 0, c64["masks"][where] == 0)
    np.testing.assert_allclose(hs32, hs64, atol=2e-5)
    dhs32 = np.random.default_rng(6).standard_normal(hs32.shape).astype(np.float32)
    dx, grads = cell.backward(p32, dhs32, c32)
    assert dx.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values())


# ---------------------------------------------------------------- expectation


def _mean_and_se(samples):
    return samples.mean(axis=0), samples.std(axis=0, ddof=1) / math.sqrt(len(samples))


@pytest.mark.parametrize("per", ["sequence", "step"])
def test_expected_lstm_cell_under_update_dropout_is_the_dropout_free_cell(per):
    """One step: c_1 = f c_0 + i (g m) is linear in the mask and E[m] = 1, so the
    mean of c_1 over masks is the dropout-free c_1 exactly. The batch holds one
    example N times with a mask per example: N independent draws. Tolerance:
    5 standard errors of the mean, estimated from the samples."""
    N, H = 20000, 6
    params, x1, (h1, c1) = setup(lstm, {}, 1, 1, 3, H, seed=7)
    x, state = np.repeat(x1, N, 0), (np.repeat(h1, N, 0), np.repeat(c1, N, 0))
    _, plain = lstm.forward(params, x1, (h1, c1))
    _, cache = lstm.forward(
        params, x, state, rng=np.random.default_rng(3), **options("update", per, p=0.3)
    )
    mean, se = _mean_and_se(cache["state"][1])
    assert np.all(np.abs(mean - plain["state"][1][0]) < 5 * se + 1e-12), (mean, plain["state"][1])
    # under "cell" dropout c_1 = m (f c_0 + i g) is linear in m as well
    _, cache = lstm.forward(
        params, x, state, rng=np.random.default_rng(4), **options("cell", per, p=0.3)
    )
    mean, se = _mean_and_se(cache["state"][1])
    assert np.all(np.abs(mean - plain["state"][1][0]) < 5 * se + 1e-12)


@pytest.mark.parametrize("reset_after", [False, True])
def test_expected_gru_state_under_update_dropout_is_the_dropout_free_state(reset_after):
    """h_1 = z h_0 + (1 - z)(n m): linear in m, so E[h_1] is the dropout-free h_1."""
    N, H = 20000, 6
    params, x1, h1 = setup(gru, {"reset_after": reset_after}, 1, 1, 3, H, seed=9)
    plain, _ = gru.forward(params, x1, h1, reset_after=reset_after)
    hs, _ = gru.forward(
        params,
        np.repeat(x1, N, 0),
        np.repeat(h1, N, 0),
        rng=np.random.default_rng(5),
        reset_after=reset_after,
        **options("update", p=0.3),
    )
    mean, se = _mean_and_se(hs[:, 0])
    assert np.all(np.abs(mean - plain[0, 0]) < 5 * se + 1e-12)


def test_over_several_steps_the_mean_differs_from_the_dropout_free_output_at_second_order():
    """Over several steps h_T is no longer linear in the masks. Expanding it
    around m = 1, the first-order term has mean 0 (E[m - 1] = 0), so the mean
    over masks differs from the dropout-free h_T by a second-order term,
    proportional to the mask's variance p/(1-p), while the spread of h_T grows
    like its standard deviation. So the gap at p = 0.2 is about
    (0.2/0.8) / (0.05/0.95) = 4.75 times the gap at p = 0.05, not the 2.2 times
    of a first-order (standard-deviation-like) effect. The gap is summed over
    the units; tolerance: the ratio is in [3.5, 6.5], and each gap is at least
    10 standard errors, so the noise in the ratio is under about 15%."""
    N, T, H = 40000, 4, 5
    params, x1, (h1, c1) = setup(lstm, {}, 1, T, 3, H, seed=12)
    plain, _ = lstm.forward(params, x1, (h1, c1))
    gaps = []
    for p in (0.05, 0.2):
        hs, _ = lstm.forward(
            params,
            np.repeat(x1, N, 0),
            (np.repeat(h1, N, 0), np.repeat(c1, N, 0)),
            rng=np.random.default_rng(6),
            **options("update", "step", p=p),
        )
        mean, se = _mean_and_se(hs[:, -1])
        gap = np.abs(mean - plain[0, -1]).sum()
        assert gap > 10 * np.sqrt((se**2).sum())
        gaps.append(gap)
    assert 3.5 < gaps[1] / gaps[0] < 6.5, gaps


# ---------------------------------------------------------------- through the layers


def test_recurrent_layer_and_training_config_pass_the_options(tmp_path):
    from minirnn.cli import build_parser
    from minirnn.nn import SequenceClassifier

    args = build_parser().parse_args(
        [
            "train",
            "--cell-option",
            "recurrent_dropout=0.2",
            "--cell-option",
            "dropout_where=update",
            "--cell-option",
            "dropout_shared=true",
            "--cell-option",
            "dropout_per=sequence",
        ]
    )
    opts = dict(args.cell_option)
    assert opts == {
        "recurrent_dropout": 0.2,
        "dropout_where": "update",
        "dropout_shared": True,
        "dropout_per": "sequence",
    }
    # the models' own `dropout` (on the outputs) and the cell's `recurrent_dropout` coexist
    model = SequenceClassifier("lstm", 3, 4, 2, rng=np.random.default_rng(0), dropout=0.0, **opts)
    x = np.random.default_rng(1).standard_normal((5, 6, 3)).astype(np.float32)
    a, b = model.forward(x), model.forward(x)  # training: fresh masks each call
    assert not np.array_equal(a, b)
    assert model.layers[0].cache["masks"]["update"].shape == (1, 1, 4)
    model.eval()
    plain = SequenceClassifier("lstm", 3, 4, 2, rng=np.random.default_rng(0))
    plain.eval()
    np.testing.assert_array_equal(model.forward(x), plain.forward(x))
    np.testing.assert_array_equal(model.forward(x), model.forward(x))


def test_training_resume_is_exact_with_recurrent_dropout(tmp_path):
    """The masks come from the run's generator, whose state the checkpoint keeps:
    a run stopped and resumed ends with the same parameters as one that was not."""
    from minirnn import checkpoint as ckpt
    from minirnn.train import CHECKPOINT, TrainConfig, train

    config = TrainConfig(
        cell="lstm",
        cell_options=options("update", "step"),
        limit=200,
        batch_size=32,
        hidden=8,
        log_every=3,
        epochs=2,
    )
    quiet = dict(progress=False, print_fn=lambda *a: None)
    train(config, tmp_path / "straight", **quiet)
    first = train(config, tmp_path / "broken", stop_after_steps=5, **quiet)
    assert first["interrupted"]
    train(config, tmp_path / "broken", resume=True, **quiet)
    a = ckpt.load_checkpoint(tmp_path / "straight" / CHECKPOINT)[0]
    b = ckpt.load_checkpoint(tmp_path / "broken" / CHECKPOINT)[0]
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ---------------------------------------------------------------- compiled = plain

_NOJIT_SCRIPT = r"""
import json, sys
import numpy as np
from minirnn.cells import gru, lstm, rnn
out = {}
for cell in (rnn, lstm, gru):
    for opts in cell.GRADCHECK_CASES:
        for kind in ("sequence", "step"):
            rng = np.random.default_rng(7)
            init = {k: v for k, v in opts.items() if k in cell.INIT_OPTIONS}
            p = cell.init(3, 4, rng=rng, dtype=np.float64, **init)
            for v in p.values():
                v += 0.3 * rng.standard_normal(v.shape)
            x = rng.standard_normal((2, 5, 3))
            fwd = {k: v for k, v in opts.items() if k in cell.FORWARD_OPTIONS}
            if "recurrent_dropout" in fwd:
                fwd["dropout_per"] = kind
            hs, cache = cell.forward(p, x, rng=np.random.default_rng(3), **fwd)
            dx, g = cell.backward(p, rng.standard_normal(hs.shape), cache)
            key = cell.__name__ + kind + str(sorted(opts.items()))
            out[key] = [hs.tolist(), dx.tolist()] + [g[k].tolist() for k in sorted(g)]
json.dump(out, sys.stdout)
"""


def test_compiled_dropout_kernels_equal_the_same_code_without_jit():
    jit, plain = compiled_and_plain(_NOJIT_SCRIPT)
    assert jit.keys() == plain.keys()
    assert sum("dropout" in k for k in jit) >= 2 * 9
    for key in jit:
        for a, b in zip(jit[key], plain[key]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13, err_msg=key)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("cell,conv", [(rnn, {}), (lstm, {}), (gru, {"reset_after": True})])
def test_dropout_in_training_without_rng_is_a_clear_error(cell, conv):
    params, x, _ = setup(cell, conv, 2, 3, 2, 4, seed=0)
    where = "hidden"
    with pytest.raises(
        ValueError,
        match=r"recurrent_dropout=0.3 in training draws its masks "
        r"from rng, and rng is None; pass "
        r"rng=np.random.default_rng",
    ):
        cell.forward(params, x, **options(where, **conv))
    with pytest.raises(TypeError, match=r"rng: expected a numpy.random.Generator"):
        cell.forward(params, x, rng=np.random.RandomState(0), **options(where, **conv))
    cell.forward(params, x, training=False, **options(where, **conv))  # evaluation: fine


@pytest.mark.parametrize(
    "cell,conv,kwargs,error,message",
    [
        (
            rnn,
            {},
            {"dropout_where": "update"},
            ValueError,
            r"rnn.forward: dropout_where: expected one of \['hidden'\], got 'update' "
            r"\('update' has no meaning for this cell\)",
        ),
        (rnn, {}, {"dropout_where": "cell"}, ValueError, r"got 'cell' \('cell' has no meaning"),
        (
            gru,
            {},
            {"dropout_where": "cell"},
            ValueError,
            r"gru.forward: dropout_where: expected one of \['update', 'hidden'\], got 'cell'",
        ),
        (
            lstm,
            {},
            {"dropout_where": "candidate"},
            ValueError,
            r"expected one of \['update', 'hidden', 'cell'\], got 'candidate'$",
        ),
        (
            lstm,
            {},
            {"recurrent_dropout": 1.0},
            ValueError,
            r"recurrent_dropout: expected a rate 0 <= p < 1, got 1.0",
        ),
        (
            lstm,
            {},
            {"recurrent_dropout": -0.1},
            ValueError,
            r"expected a rate 0 <= p < 1, got -0.1",
        ),
        (
            lstm,
            {},
            {"recurrent_dropout": True},
            ValueError,
            r"expected a rate 0 <= p < 1, got True",
        ),
        (lstm, {}, {"recurrent_dropout": "0.2"}, ValueError, r"0 <= p < 1, got '0.2'"),
        (
            lstm,
            {},
            {"dropout_per": "batch"},
            ValueError,
            r"dropout_per: expected one of \['sequence', 'step'\], got 'batch'",
        ),
        (gru, {}, {"dropout_shared": "yes"}, TypeError, r"dropout_shared: expected True or False"),
        (lstm, {}, {"dropout": 0.2}, TypeError, r"unexpected option\(s\) \['dropout'\]"),
    ],
)
def test_bad_dropout_options_are_named(cell, conv, kwargs, error, message):
    params, x, _ = setup(cell, conv, 2, 3, 2, 4, seed=0)
    with pytest.raises(error, match=message):
        cell.forward(params, x, rng=np.random.default_rng(0), **conv, **kwargs)
    # the options are checked even when nothing is dropped (a typo never passes silently)
    if "recurrent_dropout" not in kwargs and "dropout" not in kwargs:
        with pytest.raises(error, match=message):
            cell.forward(params, x, training=False, **conv, **kwargs)


# ================================================================ the normalized cells
# bnlstm (both carry modes), lnlstm (both flavours) and lngru take the same options;
# "cell" is masked where the carried cell is: before BN/LN when the raw cell is
# carried, after it when the normalized one is (bnlstm carry_normalized_c, lnlstm
# tensorflow).

from minirnn.cells import bnlstm, lngru, lnlstm  # noqa: E402

NORM_VARIANTS = (
    [
        (bnlstm, w, {"carry_normalized_c": carry})
        for w in ("update", "hidden", "cell")
        for carry in (False, True)
    ]
    + [
        (lnlstm, w, {"flavour": fl})
        for w in ("update", "hidden", "cell")
        for fl in ("paper", "tensorflow")
    ]
    + [(lngru, w, {}) for w in ("update", "hidden")]
)
NORM_IDS = [
    f"{c.__name__.split('.')[-1]}-{w}" + "".join(f"-{k}={v}" for k, v in o.items())
    for c, w, o in NORM_VARIANTS
]
# batch norm over a batch of 2 makes every normalized value +-1: check with 3 or more
NORM_BATCH = 3


def norm_setup(cell, conv, B, T, I, H, seed, dtype=np.float64):
    init_opts, fwd = split_options(cell, conv)
    rng = np.random.default_rng(seed)
    params = cell.init(I, H, rng=rng, dtype=dtype, **init_opts)
    for p in params.values():
        p += (0.3 * rng.standard_normal(p.shape)).astype(dtype)
    x = rng.standard_normal((B, T, I)).astype(dtype)
    parts = tuple(0.5 * rng.standard_normal((B, H)).astype(dtype) for _ in range(cell.STATE_SIZE))
    return params, x, (parts if cell.STATE_SIZE > 1 else parts[0]), fwd


@pytest.mark.parametrize("cell,where,conv", NORM_VARIANTS, ids=NORM_IDS)
@pytest.mark.parametrize("per,shared", [("sequence", False), ("step", True)])
def test_norm_cells_gradients_with_fixed_masks(cell, where, conv, per, shared):
    errors = gradcheck.check_cell(
        cell,
        batch=NORM_BATCH,
        time=3,
        input_size=2,
        hidden_size=3,
        seed=5,
        options=options(where, per, shared, **conv),
    )
    assert max(errors.values()) < gradcheck.TOLERANCE, errors


@pytest.mark.parametrize("cell,where,conv", NORM_VARIANTS, ids=NORM_IDS)
def test_norm_cells_gradient_check_fails_when_backward_forgets_the_mask(cell, where, conv):
    errors = gradcheck.check_cell(
        _MaskForgotten(cell),
        batch=NORM_BATCH,
        time=3,
        input_size=2,
        hidden_size=3,
        seed=2,
        options=options(where, "step", **conv),
    )
    assert max(errors.values()) > 1e-3


def test_norm_cells_gradcheck_cases_cover_every_placement():
    def name(cell, o):
        return (cell.__name__.split(".")[-1], o.get("dropout_where"), o.get("flavour"))

    covered = {
        name(c, o)
        for c in (bnlstm, lnlstm, lngru)
        for o in c.GRADCHECK_CASES
        if o.get("recurrent_dropout")
    }
    assert covered == {name(c, o | {"dropout_where": w}) for c, w, o in NORM_VARIANTS}
    assert {
        o.get("carry_normalized_c", False)
        for o in bnlstm.GRADCHECK_CASES
        if o.get("dropout_where") == "cell"
    } == {False, True}
    assert bnlstm.GRADCHECK_SIZES["batch"] >= 3


def _bn(z, gamma, beta, eps):
    return gamma * (z - z.mean(0)) / np.sqrt(z.var(0) + eps) + beta


def _ln(z, gain, shift, eps):
    return gain * (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + eps) + shift


def _one_step_reference(cell, conv, params, x, state, m_h, m_u, m_c, eps):
    """One training step of each normalized cell, written out with NumPy, with the
    masks (ones where there is none) where the module notes put them."""
    sig = lambda a: 1 / (1 + np.exp(-a))
    P, x = params, x[:, 0]
    if cell is lngru:
        h0, H = state, state.shape[1]
        u = x @ P["W"][:, : 2 * H] + (h0 * m_h) @ P["U"][:, : 2 * H]
        z = sig(_ln(u[:, :H], 1, 0, eps) * P["gain_zr"][:H] + P["shift_zr"][:H])
        r = sig(_ln(u[:, H:], 1, 0, eps) * P["gain_zr"][H:] + P["shift_zr"][H:])
        n = np.tanh(
            _ln(x @ P["W"][:, 2 * H :], P["gain_xn"], P["shift_xn"], eps)
            + r * _ln((h0 * m_h) @ P["U"][:, 2 * H :], P["gain_hn"], P["shift_hn"], eps)
        )
        h = (1 - z) * h0 + z * (n * m_u)
        return h, h
    (h0, c0), H = state, state[0].shape[1]
    tf = conv.get("flavour") == "tensorflow"
    if cell is bnlstm:
        a = (
            _bn(x @ P["W"], P["gamma_x"], 0, eps)
            + _bn((h0 * m_h) @ P["U"], P["gamma_h"], 0, eps)
            + P["b"]
        )
        norm_c = lambda u: _bn(u, P["gamma_c"], P["beta_c"], eps)
        carried_normalized = conv.get("carry_normalized_c", False)
    elif tf:
        zz = x @ P["W"] + (h0 * m_h) @ P["U"]
        a = np.concatenate([_ln(zz[:, k * H : (k + 1) * H], 1, 0, eps) for k in range(4)], axis=1)
        a = a * P["gain"] + P["shift"]
        norm_c = lambda u: _ln(u, P["gain_c"], P["shift_c"], eps)
        carried_normalized = True
    else:
        a = (
            _ln(x @ P["W"], P["gain_x"], 0, eps)
            + _ln((h0 * m_h) @ P["U"], P["gain_h"], 0, eps)
            + P["b"]
        )
        norm_c = lambda u: _ln(u, P["gain_c"], P["shift_c"], eps)
        carried_normalized = False
    i, f, o = sig(a[:, :H]), sig(a[:, H : 2 * H]), sig(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    u = f * c0 + i * (g * m_u)
    if carried_normalized:  # the mask after the normalization
        c = m_c * norm_c(u)
        return o * np.tanh(c), c
    c = m_c * u  # the mask before it
    return o * np.tanh(norm_c(c)), c


@pytest.mark.parametrize("cell,where,conv", NORM_VARIANTS, ids=NORM_IDS)
def test_norm_cells_mask_is_where_the_equations_say(cell, where, conv):
    B, I, H, eps = 4, 3, 5, 1e-3
    params, x, state, fwd = norm_setup(cell, conv, B, 1, I, H, seed=3)
    hs, cache = cell.forward(
        params, x, state, rng=np.random.default_rng(9), eps=eps, **options(where, "step", **fwd)
    )
    m = cache["masks"][where][0]
    assert (m == 0).any()
    m_h, m_u, m_c = (m if where == w else 1.0 for w in ("hidden", "update", "cell"))
    h, c = _one_step_reference(cell, conv, params, x, state, m_h, m_u, m_c, eps)
    np.testing.assert_allclose(hs[:, 0], h, rtol=1e-10, atol=1e-12)
    carried = cache["state"][1] if cell.STATE_SIZE > 1 else cache["state"]
    np.testing.assert_allclose(carried, c, rtol=1e-10, atol=1e-12)
    if where == "cell":  # a dropped unit carries exactly 0
        assert np.all(carried[m == 0] == 0)


@pytest.mark.parametrize("cell,where,conv", NORM_VARIANTS, ids=NORM_IDS)
def test_norm_cells_masks_are_cached_and_backward_uses_the_forwards(cell, where, conv, monkeypatch):
    B, T, H = 3, 4, 5
    params, x, state, fwd = norm_setup(cell, conv, B, T, 2, H, seed=1)
    opts = options(where, "sequence", **fwd)
    hs, cache = cell.forward(params, x, state, rng=np.random.default_rng(42), **opts)
    ((key, m),) = cache["masks"].items()
    assert key == where and m.shape == (1, B, H) and m.dtype == x.dtype
    hs2, cache2 = cell.forward(params, x, state, rng=np.random.default_rng(42), **opts)
    np.testing.assert_array_equal(hs2, hs)
    np.testing.assert_array_equal(cache2["masks"][where], m)
    dhs = np.random.default_rng(0).standard_normal(hs.shape)
    dx1, g1 = cell.backward(params, dhs, cache)
    dx2, g2 = cell.backward(params, dhs, cache2)
    np.testing.assert_array_equal(dx1, dx2)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])
    # a per-sequence mask is a per-step mask whose T rows are all that mask
    monkeypatch.setattr(_dropout, "draw_mask", lambda *a, **k: np.repeat(m, T, axis=0))
    hs_t, cache_t = cell.forward(
        params, x, state, rng=np.random.default_rng(1), **dict(opts, dropout_per="step")
    )
    np.testing.assert_array_equal(hs_t, hs)
    dx3, g3 = cell.backward(params, dhs, cache_t)
    np.testing.assert_array_equal(dx3, dx1)
    for k in g1:
        np.testing.assert_array_equal(g3[k], g1[k])


@pytest.mark.parametrize("cell,where,conv", NORM_VARIANTS, ids=NORM_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_norm_cells_evaluation_equals_the_dropout_free_cell(cell, where, conv, dtype):
    B, T, H = 3, 5, 4
    params, x, state, fwd = norm_setup(cell, conv, B, T, 2, H, seed=2, dtype=dtype)
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    # training: p = 0 is the plain cell and draws nothing
    plain_hs, plain = cell.forward(params, x, state, **fwd)
    hs, cache = cell.forward(params, x, state, rng=rng, **options(where, p=0.0, **fwd))
    np.testing.assert_array_equal(hs, plain_hs)
    assert cache["masks"] == {}
    # evaluation (bnlstm: population statistics) drops nothing, whatever p
    ev = dict(fwd)
    if cell is bnlstm:
        ev.update(bnlstm.evaluation_options(H, T, np.random.default_rng(3)))
    plain_hs, plain = cell.forward(params, x, state, training=False, **ev)
    for generator in (None, rng):
        hs, cache = cell.forward(
            params, x, state, training=False, rng=generator, **options(where, "step", p=0.5, **ev)
        )
        np.testing.assert_array_equal(hs, plain_hs)  # bit for bit
        assert cache["masks"] == {}
        dhs = np.random.default_rng(4).standard_normal(hs.shape)
        dx, g = cell.backward(params, dhs, cache)
        dx0, g0 = cell.backward(params, dhs, plain)
        np.testing.assert_array_equal(dx, dx0)
        for k in g0:
            np.testing.assert_array_equal(g[k], g0[k])
    assert rng.bit_generator.state == before


@pytest.mark.parametrize("cell,where,conv", NORM_VARIANTS, ids=NORM_IDS)
@pytest.mark.parametrize("p", [0.2, 0.6])
def test_norm_cells_mask_rate(cell, where, conv, p):
    B, T, H = 40, 6, 25
    # float64, whose kernels the gradient checks compile anyway (draw_mask's default is float32)
    params, x, state, fwd = norm_setup(cell, conv, B, T, 2, H, seed=4)
    _, cache = cell.forward(
        params,
        x,
        state,
        rng=np.random.default_rng(int(p * 10)),
        **options(where, "step", p=p, **fwd),
    )
    m = cache["masks"][where]
    assert m.shape == (T, B, H) and m.dtype == x.dtype == np.float64
    n = m.size
    assert abs(float((m == 0).mean()) - p) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(m[m != 0], 1 / (1 - p), rtol=1e-15)


@pytest.mark.parametrize(
    "cell,conv", [(bnlstm, {}), (lnlstm, {"flavour": "tensorflow"}), (lngru, {})]
)
def test_norm_cells_dropout_errors(cell, conv):
    params, x, state, fwd = norm_setup(cell, conv, 3, 2, 2, 4, seed=0)
    name = cell.__name__.split(".")[-1]
    with pytest.raises(
        ValueError,
        match=rf"{name}.forward: recurrent_dropout=0.3 in training "
        r"draws its masks from rng, and rng is None",
    ):
        cell.forward(params, x, state, **options("hidden", **fwd))
    with pytest.raises(ValueError, match=rf"{name}.forward: dropout_per"):
        cell.forward(
            params, x, state, rng=np.random.default_rng(0), **options("hidden", "batch", **fwd)
        )
    if cell is lngru:
        with pytest.raises(
            ValueError,
            match=r"lngru.forward: dropout_where: expected one of "
            r"\['update', 'hidden'\], got 'cell' "
            r"\('cell' has no meaning for this cell\)",
        ):
            cell.forward(params, x, state, rng=np.random.default_rng(0), **options("cell"))


_NORM_NOJIT_SCRIPT = r"""
import json, sys
import numpy as np
from minirnn.cells import bnlstm, lngru, lnlstm
out = {}
for cell in (bnlstm, lnlstm, lngru):
    for opts in cell.GRADCHECK_CASES:
        if opts.get("training") is False:
            continue
        rng = np.random.default_rng(7)
        init = {k: v for k, v in opts.items() if k in cell.INIT_OPTIONS}
        p = cell.init(3, 4, rng=rng, dtype=np.float64, **init)
        for v in p.values():
            v += 0.3 * rng.standard_normal(v.shape)
        x = rng.standard_normal((3, 4, 3))
        fwd = {k: v for k, v in opts.items() if k in cell.FORWARD_OPTIONS}
        hs, cache = cell.forward(p, x, rng=np.random.default_rng(3), **fwd)
        dx, g = cell.backward(p, rng.standard_normal(hs.shape), cache)
        key = cell.__name__ + str(sorted(opts.items()))
        out[key] = [hs.tolist(), dx.tolist()] + [g[k].tolist() for k in sorted(g)]
json.dump(out, sys.stdout)
"""


def test_norm_cells_compiled_dropout_kernels_equal_the_same_code_without_jit():
    jit, plain = compiled_and_plain(_NORM_NOJIT_SCRIPT)
    assert jit.keys() == plain.keys()
    assert sum("dropout" in k for k in jit) >= 4 + 6 + 3
    for key in jit:
        for a, b in zip(jit[key], plain[key]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13, err_msg=key)
