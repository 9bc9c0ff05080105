"""Convolution, max-pooling, flatten, the clipped cost and the Qiita batch-norm CNN
note's CNN."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minirnn import functional as F
from minirnn import gradcheck
from minirnn.nn import CNNClassifier, Conv2D, MaxPool2D, ReLU
from minirnn.nn.cnn import (
    clipped_cross_entropy_backward,
    clipped_cross_entropy_forward,
    softmax_backward,
    softmax_forward,
)

TOL = gradcheck.TOLERANCE
seeds = st.integers(0, 2**31 - 1)
pairs = lambda lo, hi: st.one_of(
    st.integers(lo, hi), st.tuples(st.integers(lo, hi), st.integers(lo, hi))
)
as_pair = lambda v: (v, v) if isinstance(v, int) else v


@st.composite
def conv_cases(draw):
    """Shapes, kernel, stride and padding with at least one output pixel."""
    kh, kw = as_pair(draw(pairs(1, 4)))
    stride, padding = draw(pairs(1, 3)), draw(pairs(0, 2))
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    H = max(1, kh - 2 * ph) + draw(st.integers(0, 2 * sh))
    W = max(1, kw - 2 * pw) + draw(st.integers(0, 2 * sw))
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, H, W), (f, c, kh, kw), stride, padding


# ---------------------------------------------------------------- conv2d


@given(case=conv_cases(), seed=seeds)
def test_conv2d_gradients(case, seed):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    inputs = {
        "x": rng.standard_normal(x_shape),
        "W": rng.standard_normal(w_shape),
        "b": rng.standard_normal(w_shape[0]),
    }
    errors = gradcheck.check_function(
        lambda x, W, b: F.conv2d_forward(x, W, b, stride, padding),
        F.conv2d_backward,
        inputs,
        seed=seed,
    )
    assert max(errors.values()) < TOL, errors


@given(case=conv_cases(), seed=seeds)
def test_conv2d_matches_the_naive_loops(case, seed):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(seed)
    x, W, b = (
        rng.standard_normal(x_shape),
        rng.standard_normal(w_shape),
        rng.standard_normal(w_shape[0]),
    )
    out, _ = F.conv2d_forward(x, W, b, stride, padding)
    ref = F.conv2d_naive(x, W, b, stride, padding)
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    expected_hw = (
        (x_shape[2] + 2 * ph - w_shape[2]) // sh + 1,
        (x_shape[3] + 2 * pw - w_shape[3]) // sw + 1,
    )
    assert out.shape == ref.shape == (x_shape[0], w_shape[0], *expected_hw)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_conv2d_by_hand():
    x = np.arange(9.0).reshape(1, 1, 3, 3)  # 0 1 2 / 3 4 5 / 6 7 8
    W = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])  # top-left minus bottom-right
    out, cache = F.conv2d_forward(x, W, np.array([10.0]))
    np.testing.assert_array_equal(out, [[[[6, 6], [6, 6]]]])  # 10 + (a - (a + 4))
    dx, dW, db = F.conv2d_backward(np.ones_like(out), cache)
    # every pixel's gradient: how many windows use it with +1, minus with -1
    np.testing.assert_array_equal(dx[0, 0], [[1, 1, 0], [1, 0, -1], [0, -1, -1]])
    np.testing.assert_array_equal(
        dW[0, 0], [[0 + 1 + 3 + 4, 1 + 2 + 4 + 5], [3 + 4 + 6 + 7, 4 + 5 + 7 + 8]]
    )
    assert db.tolist() == [4.0]
    # padding 1, stride 2: windows with top-left corner at (-1, -1), (-1, 1), (1, -1)
    # and (1, 1); a padded zero in the corner leaves minus the bottom-right pixel
    out, _ = F.conv2d_forward(x, W, np.array([0.0]), stride=2, padding=1)
    np.testing.assert_array_equal(out, [[[[0 - 0, 0 - 2], [0 - 6, 4 - 8]]]])


def _col2im_that_overwrites(dout, cache):
    """A plausible bug: '=' instead of '+=' in col2im (a pixel shared by several
    windows keeps only the last window's gradient)."""
    cols, W, padded_shape, (ph, pw), stride, out_shape = cache
    N, Fn, OH, OW = out_shape
    C, KH, KW = W.shape[1:]
    delta = dout.transpose(1, 0, 2, 3).reshape(Fn, -1)
    d6 = (W.reshape(Fn, -1).T @ delta).reshape(C, KH, KW, N, OH, OW)
    dxp = np.zeros((C, N) + padded_shape[2:])
    for u in range(KH):
        for v in range(KW):
            dxp[:, :, u : u + OH, v : v + OW] = d6[:, u, v]
    _, dW, db = F.conv2d_backward(dout, cache)
    return dxp.transpose(1, 0, 2, 3), dW, db


def test_the_gradient_check_catches_a_broken_col2im():
    rng = np.random.default_rng(0)
    inputs = {
        "x": rng.standard_normal((2, 2, 5, 5)),
        "W": rng.standard_normal((3, 2, 3, 3)),
        "b": rng.standard_normal(3),
    }
    errors = gradcheck.check_function(F.conv2d_forward, _col2im_that_overwrites, inputs)
    assert errors["x"] > 0.1 and errors["W"] < TOL, errors


def test_conv2d_errors_name_the_argument():
    x, W, b = np.zeros((2, 3, 5, 5)), np.zeros((4, 3, 3, 3)), np.zeros(4)
    with pytest.raises(
        ValueError, match=r"W: expected shape \(F, 3, KH, KW\) .* got \(4, 2, 3, 3\)"
    ):
        F.conv2d_forward(x, np.zeros((4, 2, 3, 3)), b)
    with pytest.raises(ValueError, match=r"b: expected shape \(4,\) = \(F,\) .* got \(3,\)"):
        F.conv2d_forward(x, W, np.zeros(3))
    with pytest.raises(
        ValueError, match=r"x: expected shape \(N, C, H, W\), got \(3, 5, 5\).*x\[:, None\]"
    ):
        F.conv2d_forward(x[0], W, b)
    with pytest.raises(ValueError, match=r"x: the 3x3 kernel does not fit .* is 2x2"):
        F.conv2d_forward(np.zeros((1, 3, 2, 2)), W, b)
    with pytest.raises(ValueError, match="stride: expected values >= 1, got 0"):
        F.conv2d_forward(x, W, b, stride=0)
    with pytest.raises(TypeError, match="padding: expected an int or a pair of ints"):
        F.conv2d_forward(x, W, b, padding=(1, 2, 3))
    with pytest.raises(TypeError, match="x: expected dtype float64 like W, got float32"):
        F.conv2d_forward(x.astype(np.float32), W, b)
    out, cache = F.conv2d_forward(x, W, b)
    with pytest.raises(ValueError, match=r"dout: expected .* \(2, 4, 3, 3\), got \(2, 4, 3\)"):
        F.conv2d_backward(out[..., 0], cache)


@given(
    n=st.integers(1, 3),
    c=st.integers(1, 3),
    kernel=pairs(1, 3),
    stride=pairs(1, 3),
    out_size=pairs(1, 4),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=seeds,
)
def test_the_compiled_col2im_equals_its_strided_twin(n, c, kernel, stride, out_size, dtype, seed):
    from minirnn.functional.conv import add_window_copies, col2im

    (KH, KW), (sh, sw), (OH, OW) = as_pair(kernel), as_pair(stride), as_pair(out_size)
    shape = (n, c, sh * (OH - 1) + KH, sw * (OW - 1) + KW)
    dcols = np.random.default_rng(seed).standard_normal((c * KH * KW, n * OH * OW)).astype(dtype)
    dxp = np.zeros(shape, dtype)
    add_window_copies(dcols, KH, KW, (sh, sw), OH, OW, dxp)
    twin = col2im(dcols, shape, KH, KW, (sh, sw), OH, OW)
    # a pixel in several windows sums their copies, in another order in each form
    eps = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(dxp, twin, rtol=eps, atol=eps * KH * KW * np.abs(dcols).max())


def test_conv2d_keeps_float32():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 6), dtype=np.float32)
    W = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
    out, cache = F.conv2d_forward(x, W, np.zeros(4, np.float32), 2, 1)
    grads = F.conv2d_backward(rng.standard_normal(out.shape, dtype=np.float32), cache)
    assert out.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    assert out.flags.c_contiguous


# ---------------------------------------------------------------- max-pool, flatten


def naive_maxpool(x, k, s):
    (kh, kw), (sh, sw) = k, s
    N, C, H, W = x.shape
    OH, OW = (H - kh) // sh + 1, (W - kw) // sw + 1
    out = np.empty((N, C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            out[:, :, i, j] = x[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw].max(axis=(2, 3))
    return out


@given(
    size=pairs(1, 3),
    stride=st.one_of(st.none(), pairs(1, 3)),
    n=st.integers(1, 2),
    c=st.integers(1, 2),
    extra=st.tuples(st.integers(0, 4), st.integers(0, 4)),
    seed=seeds,
)
def test_maxpool_gradients_without_ties(size, stride, n, c, extra, seed):
    kh, kw = as_pair(size)
    shape = (n, c, kh + extra[0], kw + extra[1])
    rng = np.random.default_rng(seed)
    # distinct values 0.5 apart, far beyond the finite-difference step: no ties
    x = 0.5 * rng.permutation(int(np.prod(shape))).reshape(shape).astype(float)
    out, _ = F.maxpool2d_forward(x, size, stride)
    np.testing.assert_array_equal(out, naive_maxpool(x, (kh, kw), as_pair(stride or size)))
    err = gradcheck.check_function(
        lambda x: F.maxpool2d_forward(x, size, stride), F.maxpool2d_backward, {"x": x}, seed=seed
    )["x"]
    assert err < TOL


def test_maxpool_routing_and_tie_rule_by_hand():
    x = np.array(
        [[[[1.0, 3.0, 2.0, 2.0, 9.0], [3.0, 0.0, 2.0, 2.0, 9.0], [5.0, 4.0, 7.0, 7.0, 9.0]]]]
    )  # 3x5: last row/column dropped
    out, cache = F.maxpool2d_forward(x, 2)
    np.testing.assert_array_equal(out, [[[[3.0, 2.0]]]])
    dx = F.maxpool2d_backward(np.array([[[[10.0, 20.0]]]]), cache)
    # ties: the first maximum in row-major order gets the whole gradient
    np.testing.assert_array_equal(dx[0, 0], [[0, 10, 20, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    # overlapping windows (stride 1): a pixel that wins two windows gets both gradients
    x = np.array([[[[1.0, 5.0, 2.0]]]])
    out, cache = F.maxpool2d_forward(x, (1, 2), 1)
    np.testing.assert_array_equal(out, [[[[5.0, 5.0]]]])
    np.testing.assert_array_equal(
        F.maxpool2d_backward(np.array([[[[1.0, 2.0]]]]), cache), [[[[0, 3, 0]]]]
    )


@given(
    size=pairs(1, 3),
    stride=st.one_of(st.none(), pairs(1, 3)),
    n=st.integers(1, 3),
    c=st.integers(1, 3),
    extra=st.tuples(st.integers(0, 5), st.integers(0, 5)),
    levels=st.sampled_from([3, 1000]),
    dtype=st.sampled_from([np.float32, np.float64]),
    seed=seeds,
)
def test_the_compiled_maxpool_backward_equals_its_strided_twin(
    size, stride, n, c, extra, levels, dtype, seed
):
    # few levels: many ties; overlapping windows: pixels that win several windows
    kh, kw = as_pair(size)
    rng = np.random.default_rng(seed)
    x = rng.integers(0, levels, (n, c, kh + extra[0], kw + extra[1])).astype(dtype)
    out, cache = F.maxpool2d_forward(x, size, stride)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = F.maxpool2d_backward(dout, cache)
    assert dx.dtype == dtype
    # a pixel that wins several windows sums their gradients, in another order in
    # each form: rounding relative to the terms, not to their (possibly small) sum
    eps = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(
        dx,
        F.maxpool2d_backward_strided(dout, cache),
        rtol=eps,
        atol=eps * kh * kw * np.abs(dout).max(),
    )


def test_pool_and_flatten_errors_and_dtypes():
    with pytest.raises(
        ValueError, match=r"x: expected height >= 2 and width >= 2 .* \(1, 1, 1, 4\)"
    ):
        F.maxpool2d_forward(np.zeros((1, 1, 1, 4)), 2)
    with pytest.raises(ValueError, match="x: expected shape"):
        F.maxpool2d_forward(np.zeros((4, 4)), 2)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    out, cache = F.maxpool2d_forward(x, 2)
    assert out.dtype == F.maxpool2d_backward(np.ones_like(out), cache).dtype == np.float32
    with pytest.raises(ValueError, match=r"dout: expected .* \(2, 3, 2, 2\)"):
        F.maxpool2d_backward(np.ones((2, 3, 2, 3)), cache)
    flat, cache = F.flatten_forward(x)
    assert flat.shape == (2, 60) and flat[1, 20] == x[1, 1, 0, 0]  # C order
    np.testing.assert_array_equal(F.flatten_backward(flat, cache), x)
    with pytest.raises(ValueError, match=r"dout: expected shape \(2, 60\)"):
        F.flatten_backward(flat[:, :59], cache)


# ---------------------------------------------------------------- the costs


@given(n=st.integers(1, 5), k=st.integers(2, 6), seed=seeds)
def test_softmax_gradient(n, k, seed):
    rng = np.random.default_rng(seed)
    err = gradcheck.check_function(
        softmax_forward, softmax_backward, {"z": rng.standard_normal((n, k))}, seed=seed
    )["z"]
    assert err < TOL


@given(n=st.integers(1, 5), k=st.integers(2, 6), seed=seeds)
def test_clipped_cost_gradient_inside_the_clip(n, k, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    p = rng.uniform(0.05, 1, (n, k))  # far from 1e-10; rows need not sum to 1
    err = gradcheck.check_function(
        lambda p: clipped_cross_entropy_forward(p, labels),
        clipped_cross_entropy_backward,
        {"p": p},
        seed=seed,
    )["p"]
    assert err < TOL


@given(n=st.integers(2, 6), seed=seeds)
def test_clipped_cost_through_softmax_is_zero_where_clipped(n, seed):
    """Rows whose correct class is hopeless (p ~ e^-60 < 1e-10) get no gradient at
    all; the others get the stable cost's (p - onehot) / N. Finite differences agree
    on both sides of the clip edge."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    z = rng.standard_normal((n, 4))
    clipped = rng.random(n) < 0.5
    assume(clipped.any() and not clipped.all())
    z[clipped, labels[clipped]] -= 60.0  # probability about 1e-26

    def fwd(z):
        p, sc = softmax_forward(z)
        loss, cc = clipped_cross_entropy_forward(p, labels)
        return loss, (sc, cc)

    def bwd(dloss, cache):
        sc, cc = cache
        return softmax_backward(clipped_cross_entropy_backward(dloss, cc), sc)

    loss, cache = fwd(z)
    dz = bwd(1.0, cache)
    assert np.all(dz[clipped] == 0)
    stable_loss, stable_cache = F.softmax_cross_entropy_forward(z, labels)
    dz_stable = F.softmax_cross_entropy_backward(1.0, stable_cache)
    np.testing.assert_allclose(dz[~clipped], dz_stable[~clipped], rtol=1e-10, atol=1e-15)
    assert np.abs(dz_stable[clipped]).max() > 0.1 / n  # the stable cost still pulls
    # a clipped row costs -log(1e-10) = 23.03 instead of about 60
    p_true = softmax_forward(z)[0][np.arange(n), labels]
    expected = -np.log(np.clip(p_true, 1e-10, 1)).mean()
    assert loss == pytest.approx(expected, rel=1e-12) and loss < stable_loss
    # check_function differentiates loss * R, R a random scalar
    assert gradcheck.check_function(fwd, bwd, {"z": z}, seed=seed)["z"] < TOL


def test_clipped_cost_errors():
    with pytest.raises(ValueError, match=r"labels: expected shape \(2,\)"):
        clipped_cross_entropy_forward(np.full((2, 3), 1 / 3), np.zeros(3, int))
    with pytest.raises(ValueError, match=r"labels: expected values in \[0, 3\)"):
        clipped_cross_entropy_forward(np.full((2, 3), 1 / 3), np.array([0, 3]))
    with pytest.raises(ValueError, match="cost: expected one of"):
        CNNClassifier(rng=np.random.default_rng(0), cost="clip")


# ---------------------------------------------------------------- the model


def tiny_model(seed, batchnorm, cost, convention="tensorflow"):
    """The Qiita batch-norm CNN note's architecture, small: 10x10 input, 2 then 3
    filters, 4 classes (10 -> conv 8 -> pool 4 -> conv 2 -> pool 1 -> Dense(3, 4))."""
    rng = np.random.default_rng(seed)
    model = CNNClassifier(
        batchnorm=batchnorm,
        rng=rng,
        dtype=np.float64,
        cost=cost,
        image_size=10,
        filters=(2, 3),
        n_classes=4,
        bn_convention=convention,
    )
    for p in model.params.values():
        p += 0.3 * rng.standard_normal(p.shape)  # non-trivial gamma, beta and biases
    for key, stat in model.buffers().items():  # running statistics far from 0 and 1
        stat[...] = (
            rng.uniform(0.5, 2, stat.shape)
            if key.endswith("var")
            else rng.standard_normal(stat.shape)
        )
    return model, rng


def kink_margin(model, x):
    """How far the forward pass stays from the kinks: the smallest |input| of a
    ReLU, and the smallest gap between the largest and second-largest value of a
    pooling window whose largest value is positive (windows of zeros after a ReLU
    are ties that do not matter: every entry's gradient is zero anyway)."""
    h, margin = x, np.inf
    for layer in model.layers:
        if isinstance(layer, ReLU):
            margin = min(margin, np.abs(h).min())
        if isinstance(layer, MaxPool2D):
            N, C, H, W = h.shape
            k = layer.size
            w = h[:, :, : H // k * k, : W // k * k].reshape(N, C, H // k, k, W // k, k)
            w = np.sort(w.transpose(0, 1, 2, 4, 3, 5).reshape(N, C, H // k, W // k, k * k))
            positive = w[..., -1] > 0
            if positive.any():
                margin = min(margin, (w[..., -1] - w[..., -2])[positive].min())
        h = layer.forward(h)
    return margin


def model_errors(model, x, labels):
    """Relative error of every parameter's and the input's gradient, by finite
    differences of the model's loss; and the analytic gradients."""
    model.loss_and_backward(x, labels)
    analytic = {k: g.copy() for k, g in model.grads.items()}
    # dL/dx: the model's backward returns it once its first layer computes it
    # (CNNClassifier's does not by default: its input is data); rerun by hand
    assert model.layers[0].input_grad is False
    model.layers[0].input_grad = True
    logits = model.forward(x)
    _, cache = model.cost_forward(logits, labels)
    analytic["x"] = model.backward(model.cost_backward(1.0, cache))
    model.layers[0].input_grad = False
    loss = lambda: float(model.loss_and_backward(x, labels)[0])
    errors = {}
    for key, p in list(model.params.items()) + [("x", x)]:
        numeric = gradcheck.numeric_gradient(loss, p)
        if max(np.abs(analytic[key]).max(), np.abs(numeric).max()) < 1e-8:
            errors[key] = 0.0  # both zero: a conv bias that batch norm cancels
        else:
            errors[key] = gradcheck.relative_error(analytic[key], numeric)
    return errors, analytic


@settings(max_examples=max(4, settings().max_examples // 3))
@given(
    seed=seeds,
    batchnorm=st.booleans(),
    cost=st.sampled_from(["stable", "clipped"]),
    mode=st.sampled_from(["train", "eval"]),
    batch=st.integers(2, 3),
)
def test_whole_model_gradient(seed, batchnorm, cost, mode, batch):
    model, rng = tiny_model(seed, batchnorm, cost)
    getattr(model, mode)()
    x = rng.standard_normal((batch, 1, 10, 10))
    labels = rng.integers(0, 4, batch)
    assume(kink_margin(model, x) > 1e-4)
    stats_before = {k: v.copy() for k, v in model.buffers().items()}
    errors, analytic = model_errors(model, x, labels)
    assert len(errors) == len(model.params) + 1
    assert max(errors.values()) < TOL, errors
    if batchnorm and mode == "train":
        # batch norm subtracts the channel mean: the conv bias before it cancels
        assert np.abs(analytic["0.b"]).max() < 1e-12 and np.abs(analytic["4.b"]).max() < 1e-12
    elif batchnorm:
        # evaluation mode: a fixed affine map, so the conv bias's gradient is beta's
        # scaled by gamma / sqrt(running_var + eps)
        for conv, bn in ((0, 1), (4, 5)):
            layer = model.layers[bn]
            scale = layer.params["gamma"] / np.sqrt(layer.running_var + layer.eps)
            np.testing.assert_allclose(
                analytic[f"{conv}.b"], scale * analytic[f"{bn}.beta"], rtol=1e-10, atol=1e-14
            )
        for k, v in model.buffers().items():  # evaluation never moves them
            np.testing.assert_array_equal(v, stats_before[k])


def test_batch_norm_modes_inside_the_model():
    model, rng = tiny_model(0, True, "stable")
    x = rng.standard_normal((4, 1, 10, 10))
    model.train()
    full = model.predict(x)
    assert not np.allclose(model.predict(x[:2]), full[:2])  # depends on the batch
    stats = model.buffers()["1.running_mean"].copy()
    model.predict(x)
    assert not np.array_equal(stats, model.buffers()["1.running_mean"])  # updated in place
    model.eval()
    full = model.predict(x)
    np.testing.assert_allclose(model.predict(x[:2]), full[:2], rtol=1e-12)  # per example
    # eval mode is the affine map with the running statistics
    bn = model.layers[1]
    h = model.layers[0].forward(x)
    expected = (
        bn.params["gamma"][:, None, None]
        * (h - bn.running_mean[:, None, None])
        / np.sqrt(bn.running_var[:, None, None] + 1e-3)
        + bn.params["beta"][:, None, None]
    )
    np.testing.assert_allclose(bn.forward(h), expected, rtol=1e-12)


def test_qiita_cnn_architecture_and_initialisation():
    model = CNNClassifier(rng=np.random.default_rng(0), cost="clipped")
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes == {
        "0.W": (32, 1, 3, 3),
        "0.b": (32,),
        "1.gamma": (32,),
        "1.beta": (32,),
        "4.W": (64, 32, 3, 3),
        "4.b": (64,),
        "5.gamma": (64,),
        "5.beta": (64,),
        "9.W": (1600, 10),
        "9.b": (10,),
    }
    assert all(p.dtype == np.float32 for p in model.params.values())
    # Glorot-uniform bounds with fan_in = C*KH*KW, fan_out = F*KH*KW; zero biases
    for key, fan_in, fan_out in [("0.W", 9, 288), ("4.W", 288, 576), ("9.W", 1600, 10)]:
        a = np.sqrt(6 / (fan_in + fan_out))
        W = model.params[key]
        assert np.abs(W).max() <= a and np.abs(W).max() > 0.95 * a, key
        assert abs(W.std() - a / np.sqrt(3)) < 0.1 * a, key  # uniform on (-a, a)
    assert all(not model.params[k].any() for k in ("0.b", "4.b", "9.b"))
    plain = CNNClassifier(batchnorm=False, rng=np.random.default_rng(0))
    assert list(plain.params) == ["0.W", "0.b", "3.W", "3.b", "7.W", "7.b"]
    assert plain.buffers() == {}
    np.testing.assert_array_equal(plain.params["0.W"], model.params["0.W"])  # same draws
    # raw uint8 pixels are accepted and cast; float32 throughout
    x = np.random.default_rng(1).integers(0, 256, (3, 1, 28, 28)).astype(np.uint8)
    loss, logits = model.loss_and_backward(x, np.array([1, 2, 3]))
    assert logits.shape == (3, 10) and logits.dtype == np.float32
    assert loss.dtype == np.float32 and np.isfinite(loss)
    assert all(g.dtype == np.float32 for g in model.grads.values())


def test_model_input_errors():
    model = CNNClassifier(batchnorm=False, rng=np.random.default_rng(0))
    with pytest.raises(
        ValueError,
        match=r"x: expected shape \(N, 1, 28, 28\).*"
        r"got \(2, 28, 28\); add the channel axis",
    ):
        model.predict(np.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match=r"got \(2, 1, 27, 28\)"):
        model.predict(np.zeros((2, 1, 27, 28)))
    with pytest.raises(ValueError, match="image_size: 6 is too small"):
        CNNClassifier(rng=np.random.default_rng(0), image_size=6)


def test_batch_norm_lets_a_large_learning_rate_fit_raw_pixels():
    """The Qiita batch-norm CNN note's finding on one fixed batch of real digits, raw
    pixels 0..255, Adam at 0.01, the clipped cost: with batch norm the cost falls;
    without it the first steps saturate the softmax and the cost sticks near
    -log(1e-10) * 0.9."""
    from minirnn.data import load_mnist
    from minirnn.optim import Adam

    (images, labels), _ = load_mnist()
    x, y = images[:64, None].astype(np.float32), labels[:64].astype(np.int64)
    final = {}
    for bn in (True, False):
        model = CNNClassifier(
            batchnorm=bn, rng=np.random.default_rng(0), cost="clipped", filters=(8, 16)
        )
        opt = Adam(model.params, lr=0.01)
        losses = []
        for _ in range(15):
            loss, _ = model.loss_and_backward(x, y)
            losses.append(float(loss))
            opt.step(model.grads)
        final[bn] = np.mean(losses[-3:])
    assert final[True] < 1.0, final
    assert final[False] > 10.0, final


def test_the_first_conv_skips_the_input_gradient_and_nothing_else():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 7, 6))
    W, b = rng.standard_normal((4, 2, 3, 2)), rng.standard_normal(4)
    out, cache = F.conv2d_forward(x, W, b, stride=(2, 1), padding=1)
    dout = rng.standard_normal(out.shape)
    dx, dW, db = F.conv2d_backward(dout, cache)
    none, dW_data, db_data = F.conv2d_backward(dout, cache, input_grad=False)
    assert dx.shape == x.shape and none is None
    np.testing.assert_array_equal(dW_data, dW)
    np.testing.assert_array_equal(db_data, db)
    model = CNNClassifier(rng=rng, dtype=np.float64, image_size=10, filters=(2, 3))
    assert [layer.input_grad for layer in model.layers if isinstance(layer, Conv2D)] == [
        False,
        True,
    ]
    model.loss_and_backward(rng.standard_normal((2, 1, 10, 10)), np.array([1, 4]))
    assert model.backward(np.ones((2, 10))) is None
