"""Batch norm and layer norm: functional/batchnorm.py, functional/layernorm.py,
nn/normalization.py.

A note on seeds: ``check_function(..., seed=s)`` draws the upstream gradient R from
``default_rng(s)``. Drawing x from ``default_rng(s)`` as well makes R equal to x
(same first numbers), an upstream gradient that is affine in xhat, and batch
norm's input gradient is then exactly 0, like with an all-ones R. The tests
below give check_function a seed of its own.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from jit_off import compiled_and_plain
from minirnn import functional as F
from minirnn import gradcheck
from minirnn.functional import batchnorm as bn_module
from minirnn.functional import layernorm as ln_module
from minirnn.nn import BatchNorm, LayerNorm

TOL = gradcheck.TOLERANCE
seeds = st.integers(0, 2**31 - 1)
conventions = st.sampled_from(["pytorch", "tensorflow"])
STAT_AXES = {2: (0,), 3: (0, 1), 4: (0, 2, 3)}  # batch-norm statistics, by rank


@st.composite
def bn_shapes(draw, min_rows=2):
    """A shape of each layout, with M >= min_rows values per feature."""
    layout = draw(st.sampled_from(["NF", "BTF", "NCHW"]))
    F_ = draw(st.integers(1, 4))
    if layout == "NF":
        return (draw(st.integers(min_rows, 6)), F_)
    if layout == "BTF":
        B = draw(st.integers(1, 3))
        return (B, draw(st.integers(1 if B >= min_rows else min_rows, 4)), F_)
    N, H = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    W = draw(st.integers(min_rows if N * H < min_rows else 1, 3))
    return (N, F_, H, W)


def n_features(shape):
    return shape[1] if len(shape) == 4 else shape[-1]


def rows(shape):
    return int(np.prod(shape)) // n_features(shape)


def per_feature(v, ndim):
    """A (F,) vector shaped to broadcast against x of rank ndim."""
    return v.reshape(1, -1, 1, 1) if ndim == 4 else v


def random_bn_inputs(shape, rng):
    """x with a random scale and offset and non-degenerate variance per feature;
    random gamma (away from 0) and beta."""
    Fd = n_features(shape)
    x = rng.uniform(0.5, 3) * rng.standard_normal(shape) + rng.uniform(-3, 3)
    gamma = rng.uniform(0.5, 2, Fd) * rng.choice([-1, 1], Fd)
    beta = rng.standard_normal(Fd)
    return x, gamma, beta


def reference_bn(x, gamma, beta, mean, var, eps):
    """Plain NumPy, written from the formula on the original layout, with the
    given per-feature statistics (F,)."""
    shape = [1] * x.ndim
    shape[1 if x.ndim == 4 else -1] = -1
    m, v = mean.reshape(shape), var.reshape(shape)
    return gamma.reshape(shape) * (x - m) / np.sqrt(v + eps) + beta.reshape(shape)


def numpy_bn_train(x, gamma, beta, eps):
    """Training mode: NumPy's mean and (biased) var over the statistics axes."""
    ax = STAT_AXES[x.ndim]
    mean, var = x.mean(axis=ax), x.var(axis=ax)
    return reference_bn(x, gamma, beta, mean, var, eps), mean, var


# ---------------------------------------------------------------- gradient checks


@given(shape=bn_shapes(min_rows=3), seed=seeds, convention=conventions, with_running=st.booleans())
def test_batchnorm_training_gradients_through_mean_and_variance(
    shape, seed, convention, with_running
):
    """M >= 3 values per feature: with M = 2 see the next test."""
    rng = np.random.default_rng(seed)
    x, gamma, beta = random_bn_inputs(shape, rng)
    assume(x.var(axis=STAT_AXES[x.ndim]).min() > 1e-2)
    Fd = n_features(shape)
    running = {"running_mean": np.zeros(Fd), "running_var": np.ones(Fd)} if with_running else {}

    def forward(x, gamma, beta):
        return F.batchnorm_forward(x, gamma, beta, convention=convention, **running)

    errors = gradcheck.check_function(
        forward, F.batchnorm_backward, {"x": x, "gamma": gamma, "beta": beta}, seed=seed + 1
    )
    assert max(errors.values()) < TOL, errors


@given(n_features=st.integers(1, 4), seed=seeds, eps=st.sampled_from([1e-5, 0.1, 1.0]))
def test_batchnorm_training_gradients_with_two_values_per_feature(n_features, seed, eps):
    """With M = 2, xhat = +-d / sqrt(d^2 + 4 eps) for d = x_1 - x_2: close to +-1
    whatever x is, so the input gradient is O(eps) and vanishes with it. Finite
    differences still agree with it; the relative error is measured against a
    gradient that is itself tiny for eps = 1e-5, so the tolerance is relative to
    the gradient of gamma, which does not vanish."""
    rng = np.random.default_rng(seed)
    x, gamma, beta = random_bn_inputs((2, n_features), rng)
    assume(x.var(axis=0).min() > 1e-2)
    d = np.abs(x[0] - x[1])
    y, cache = F.batchnorm_forward(x, gamma, beta, eps=eps)
    np.testing.assert_allclose(np.abs(cache["xhat"][0]), d / np.sqrt(d * d + 4 * eps), rtol=1e-12)
    forward = lambda x, gamma, beta: F.batchnorm_forward(x, gamma, beta, eps=eps)
    inputs = {"x": x, "gamma": gamma, "beta": beta}
    R = np.random.default_rng(seed + 1).standard_normal(y.shape)
    analytic = F.batchnorm_backward(R, cache)
    loss = lambda: float(np.sum(forward(**inputs)[0] * R))
    for (name, a), grad in zip(inputs.items(), analytic):
        numeric = gradcheck.numeric_gradient(loss, a)
        scale = max(np.abs(grad).max(), np.abs(analytic[1]).max())
        assert np.abs(grad - numeric).max() / scale < TOL, name


@given(shape=bn_shapes(min_rows=1), seed=seeds, convention=conventions)
def test_batchnorm_evaluation_gradients(shape, seed, convention):
    rng = np.random.default_rng(seed)
    x, gamma, beta = random_bn_inputs(shape, rng)
    Fd = n_features(shape)
    rm, rv = rng.standard_normal(Fd), rng.uniform(0.2, 3, Fd)

    def forward(x, gamma, beta):
        return F.batchnorm_forward(
            x, gamma, beta, training=False, running_mean=rm, running_var=rv, convention=convention
        )

    errors = gradcheck.check_function(
        forward, F.batchnorm_backward, {"x": x, "gamma": gamma, "beta": beta}, seed=seed + 1
    )
    assert max(errors.values()) < TOL, errors


@given(
    lead=st.lists(st.integers(1, 3), min_size=0, max_size=3),
    n=st.integers(3, 6),
    seed=seeds,
    eps=st.sampled_from([1e-12, 1e-5, 1e-2]),
)
def test_layernorm_gradients_with_any_leading_shape(lead, n, seed, eps):
    """n >= 3 features: a row of 2 normalizes to +-1 whatever x, with an input
    gradient O(eps), like batch norm with M = 2 (checked there)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.5, 3) * rng.standard_normal((*lead, n)) + rng.uniform(-3, 3)
    assume(x.reshape(-1, n).var(axis=1).min() > 1e-2)
    inputs = {
        "x": x,
        "gain": rng.uniform(0.5, 2, n) * rng.choice([-1, 1], n),
        "shift": rng.standard_normal(n),
    }
    forward = lambda x, gain, shift: F.layernorm_forward(x, gain, shift, eps)
    errors = gradcheck.check_function(forward, F.layernorm_backward, inputs, seed=seed + 1)
    assert max(errors.values()) < TOL, errors


@given(shape=bn_shapes(min_rows=3), seed=seeds)
def test_closed_form_and_staged_backward_agree(shape, seed):
    rng = np.random.default_rng(seed)
    x, gamma, beta = random_bn_inputs(shape, rng)
    dy = rng.standard_normal(shape)
    _, cache = F.batchnorm_forward(x, gamma, beta)
    closed, staged = F.batchnorm_backward(dy, cache), F.bn_backward_staged(dy, cache)
    for a, b, name in zip(closed, staged, ("dx", "dgamma", "dbeta")):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11 * np.abs(b).max(), err_msg=name)
    # and in float32, both stay float32 and agree with float64 to float32
    # precision, relative to the size of the terms that cancel in dx
    _, c32 = F.batchnorm_forward(
        x.astype(np.float32), gamma.astype(np.float32), beta.astype(np.float32)
    )
    M = rows(shape)
    scales = (
        np.abs(gamma).max() * cache["inv_std"].max() * np.abs(dy).max(),
        M * np.abs(dy).max() * max(1, np.abs(cache["xhat"]).max()),
        M * np.abs(dy).max(),
    )
    for a, b, ref, scale in zip(
        F.batchnorm_backward(dy.astype(np.float32), c32),
        F.bn_backward_staged(dy.astype(np.float32), c32),
        closed,
        scales,
    ):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(a, ref, rtol=0, atol=1e-5 * scale)
        np.testing.assert_allclose(b, ref, rtol=0, atol=1e-5 * scale)


def test_the_staged_backward_is_the_training_graph_only():
    x = np.array([[1.0], [3.0]])
    _, cache = F.batchnorm_forward(
        x, np.ones(1), np.zeros(1), training=False, running_mean=np.zeros(1), running_var=np.ones(1)
    )
    with pytest.raises(ValueError, match="training-mode graph"):
        F.bn_backward_staged(x, cache)


def test_a_wrong_backward_is_caught_with_random_but_not_with_all_ones_upstream():
    """Why check_function's upstream gradient is random: with dy = 1, the true
    dx of training-mode batch norm is 0, and a backward that gets the variance
    term wrong returns 0 as well."""
    rng = np.random.default_rng(5)
    x, gamma, beta = random_bn_inputs((6, 3), rng)

    def wrong_backward(dy, cache):  # the sign of the variance term flipped
        dy2, xhat, inv_std, g = dy, cache["xhat"], cache["inv_std"], cache["gamma"]
        M = dy2.shape[0]
        dx = g * inv_std / M * (M * dy2 - dy2.sum(0) + xhat * (dy2 * xhat).sum(0))
        return dx, (dy2 * xhat).sum(0), dy2.sum(0)

    _, cache = F.batchnorm_forward(x, gamma, beta)
    ones = np.ones_like(x)
    right, wrong = F.batchnorm_backward(ones, cache)[0], wrong_backward(ones, cache)[0]
    assert np.abs(right).max() < 1e-12 and np.abs(wrong).max() < 1e-12
    errors = gradcheck.check_function(
        lambda x: F.batchnorm_forward(x, gamma, beta),
        lambda dy, c: wrong_backward(dy, c)[0],
        {"x": x},
        seed=1,
    )
    assert errors["x"] > 0.1
    errors = gradcheck.check_function(
        lambda x: F.batchnorm_forward(x, gamma, beta),
        lambda dy, c: F.batchnorm_backward(dy, c)[0],
        {"x": x},
        seed=1,
    )
    assert errors["x"] < TOL


# ---------------------------------------------------------------- forward values


def test_batchnorm_forward_by_hand():
    # one feature, rows 1 and 3: mean 2, biased variance 1; eps = 3 makes the
    # denominator sqrt(1 + 3) = 2, so xhat = (-1/2, 1/2), and y = 2 xhat + 1
    y, cache = F.batchnorm_forward(
        np.array([[1.0], [3.0]]), np.array([2.0]), np.array([1.0]), eps=3.0
    )
    np.testing.assert_array_equal(y, [[0.0], [2.0]])
    np.testing.assert_array_equal(cache["mean"], [2.0])
    np.testing.assert_array_equal(cache["var"], [1.0])
    np.testing.assert_array_equal(cache["inv_std"], [0.5])
    # two features, normalized independently: (0, 4, 8) has mean 4, variance 32/3
    x = np.array([[0.0, 5.0], [4.0, 5.0], [8.0, 5.0]])
    y, cache = F.batchnorm_forward(x, np.ones(2), np.array([0.0, 7.0]), eps=4.0 / 3.0)
    np.testing.assert_allclose(y[:, 0], [-4 / np.sqrt(12), 0.0, 4 / np.sqrt(12)], rtol=1e-15)
    np.testing.assert_array_equal(y[:, 1], [7.0, 7.0, 7.0])  # constant feature -> beta
    # (B, T, F): the statistics run over batch *and* time: values 1, 3 at two
    # different (b, t) are one feature's batch, as in the (N, F) case above
    y, _ = F.batchnorm_forward(
        np.array([[[1.0]], [[3.0]]]), np.array([2.0]), np.array([1.0]), eps=3.0
    )
    np.testing.assert_array_equal(y.ravel(), [0.0, 2.0])
    y, _ = F.batchnorm_forward(
        np.array([[[1.0], [3.0]]]), np.array([2.0]), np.array([1.0]), eps=3.0
    )
    np.testing.assert_array_equal(y.ravel(), [0.0, 2.0])
    # (N, C, H, W): one image, channel 0 holds (1, 3), channel 1 holds (10, 10)
    x = np.array([[[[1.0, 3.0]], [[10.0, 10.0]]]])  # (1, 2, 1, 2)
    y, _ = F.batchnorm_forward(x, np.array([2.0, 1.0]), np.array([1.0, -1.0]), eps=3.0)
    np.testing.assert_array_equal(y, [[[[0.0, 2.0]], [[-1.0, -1.0]]]])
    # evaluation: running mean 1, running variance 3, eps 1: (x - 1) / 2
    y, _ = F.batchnorm_forward(
        np.array([[5.0], [-1.0]]),
        np.array([1.0]),
        np.array([0.0]),
        training=False,
        running_mean=np.array([1.0]),
        running_var=np.array([3.0]),
        eps=1.0,
    )
    np.testing.assert_array_equal(y, [[2.0], [-1.0]])


def test_layernorm_forward_by_hand():
    # the row (1, 3): mean 2, variance 1, eps 3 -> xhat = (-1/2, 1/2)
    y, cache = F.layernorm_forward(
        np.array([1.0, 3.0]), np.array([2.0, 4.0]), np.array([1.0, 0.0]), eps=3.0
    )
    np.testing.assert_array_equal(y, [0.0, 2.0])
    # rows are independent; statistics are per row, so the second row's scale
    # does not matter to the first
    x = np.array([[1.0, 3.0], [100.0, -300.0]])
    y, _ = F.layernorm_forward(x, np.ones(2), np.zeros(2), eps=3.0)
    np.testing.assert_array_equal(y[0], [-0.5, 0.5])
    y, _ = F.layernorm_forward(np.array([[2.0, 2.0, 2.0]]), np.ones(3), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(y, [[1.0, 2.0, 3.0]])  # constant row -> shift


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layernorm_into_forms_in_place_and_adding(dtype):
    # The *_into kernels the cells call, used as their docstrings allow: forward
    # normalizing x in place (y = x), backward writing dx over dy and *adding* to
    # dgain, dshift that already hold a sum. Same values as the allocating forms.
    rng = np.random.default_rng(4)
    x, dy = (rng.standard_normal((6, 5)).astype(dtype) for _ in range(2))
    g, s, dg0, ds0 = (rng.standard_normal(5).astype(dtype) for _ in range(4))
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-13, "atol": 1e-13}
    y, xhat, inv_std = ln_module.ln_forward_2d(x, g, s, 1e-3)
    y_in, xhat_in, inv_std_in = x.copy(), np.empty_like(x), np.empty(6, dtype)
    ln_module.ln_forward_2d_into(y_in, g, s, 1e-3, y_in, xhat_in, inv_std_in)
    for got, want in ((y_in, y), (xhat_in, xhat), (inv_std_in, inv_std)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)
    dx, dgain, dshift = ln_module.ln_backward_2d(dy, xhat, inv_std, g)
    dx_in, dg, ds = dy.copy(), dg0.copy(), ds0.copy()
    ln_module.ln_backward_2d_into(dx_in, xhat, inv_std, g, dx_in, dg, ds)
    np.testing.assert_allclose(dx_in, dx, **tol)
    np.testing.assert_allclose(dg, dg0 + dgain, **tol)
    np.testing.assert_allclose(ds, ds0 + dshift, **tol)


@given(
    shape=bn_shapes(), seed=seeds, training=st.booleans(), eps=st.sampled_from([1e-5, 1e-3, 0.5])
)
def test_batchnorm_forward_matches_a_plain_numpy_reference(shape, seed, training, eps):
    rng = np.random.default_rng(seed)
    x, gamma, beta = random_bn_inputs(shape, rng)
    Fd = n_features(shape)
    if training:
        expected, mean, var = numpy_bn_train(x, gamma, beta, eps)
        y, cache = F.batchnorm_forward(x, gamma, beta, eps=eps)
        np.testing.assert_allclose(cache["mean"], mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(cache["var"], var, rtol=1e-10, atol=1e-13)
    else:
        rm, rv = rng.standard_normal(Fd), rng.uniform(0.2, 3, Fd)
        expected = reference_bn(x, gamma, beta, rm, rv, eps)
        y, _ = F.batchnorm_forward(
            x, gamma, beta, training=False, running_mean=rm, running_var=rv, eps=eps
        )
    assert y.shape == x.shape and y.flags.c_contiguous
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)
    # a non-contiguous view of the same numbers gives the same result
    xf = np.asfortranarray(x)
    y2, _ = (
        F.batchnorm_forward(xf, gamma, beta, eps=eps)
        if training
        else F.batchnorm_forward(
            xf, gamma, beta, training=False, running_mean=rm, running_var=rv, eps=eps
        )
    )
    np.testing.assert_array_equal(y2, y)
    # float32 agrees with the float64 reference to float32 precision
    y32, _ = (
        F.batchnorm_forward(*(a.astype(np.float32) for a in (x, gamma, beta)), eps=eps)
        if training
        else F.batchnorm_forward(
            *(a.astype(np.float32) for a in (x, gamma, beta)),
            training=False,
            running_mean=rm.astype(np.float32),
            running_var=rv.astype(np.float32),
            eps=eps,
        )
    )
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@given(lead=st.lists(st.integers(1, 3), min_size=0, max_size=3), n=st.integers(1, 6), seed=seeds)
def test_layernorm_matches_a_plain_numpy_reference(lead, n, seed):
    rng = np.random.default_rng(seed)
    x = 2 * rng.standard_normal((*lead, n)) + 1
    gain, shift = rng.standard_normal(n), rng.standard_normal(n)
    mean, var = x.mean(axis=-1, keepdims=True), x.var(axis=-1, keepdims=True)
    expected = gain * (x - mean) / np.sqrt(var + 1e-5) + shift
    y, _ = F.layernorm_forward(x, gain, shift)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)
    y32, _ = F.layernorm_forward(
        x.astype(np.float32), gain.astype(np.float32), shift.astype(np.float32)
    )
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


# ---------------------------------------------------------------- running statistics

# One feature. Batch 1 = (1, 3): mean 2, biased variance 1, unbiased 2.
# Batch 2 = (2, 4, 6): mean 4, biased variance 8/3, unbiased 4.
# Both start from running mean 0 and running variance 1.
TWO_STEPS = [
    # pytorch, momentum 0.1 on the new value, unbiased variance:
    #   mean 0.9*0 + 0.1*2 = 0.2;      0.9*0.2 + 0.1*4 = 0.58
    #   var  0.9*1 + 0.1*2 = 1.1;      0.9*1.1 + 0.1*4 = 1.39
    ("pytorch", None, [(0.2, 1.1), (0.58, 1.39)]),
    # tensorflow, momentum 0.99 on the old value, biased variance:
    #   mean 0.99*0 + 0.01*2 = 0.02;   0.99*0.02 + 0.01*4 = 0.0598
    #   var  0.99*1 + 0.01*1 = 1.0;    0.99*1 + 0.01*8/3 = 1.01666...
    ("tensorflow", None, [(0.02, 1.0), (0.0598, 0.99 + 0.08 / 3)]),
    # tensorflow, momentum 0.4 (the Stack Overflow BN-in-LSTM question):
    #   mean 0.6*2 = 1.2;              0.4*1.2 + 0.6*4 = 2.88
    #   var  0.4*1 + 0.6*1 = 1.0;      0.4*1 + 0.6*8/3 = 2.0
    ("tensorflow", 0.4, [(1.2, 1.0), (2.88, 2.0)]),
]


@pytest.mark.parametrize(
    "convention,momentum,expected", TWO_STEPS, ids=["pytorch", "tensorflow", "tensorflow-0.4"]
)
def test_running_statistics_over_two_steps_by_hand(convention, momentum, expected):
    batches = [np.array([[1.0], [3.0]]), np.array([[2.0], [4.0], [6.0]])]
    rm, rv = np.zeros(1), np.ones(1)
    for x, (mean, var) in zip(batches, expected):
        rm_before, rv_before = rm.copy(), rv.copy()
        _, cache = F.batchnorm_forward(
            x,
            np.ones(1),
            np.zeros(1),
            running_mean=rm,
            running_var=rv,
            momentum=momentum,
            convention=convention,
        )
        np.testing.assert_array_equal(rm, rm_before)  # not modified ...
        np.testing.assert_array_equal(rv, rv_before)
        rm, rv = cache["running_mean"], cache["running_var"]  # ... but returned
        np.testing.assert_allclose(rm, [mean], rtol=1e-14)
        np.testing.assert_allclose(rv, [var], rtol=1e-14)
    # the same through the layer, which keeps its own arrays and updates them
    layer = BatchNorm(1, momentum=momentum, convention=convention, dtype=np.float64)
    arrays = layer.running_mean, layer.running_var
    for x in batches:
        layer.forward(x)
    assert (layer.running_mean, layer.running_var) == arrays  # same objects
    np.testing.assert_allclose(layer.running_mean, rm, rtol=1e-15)
    np.testing.assert_allclose(layer.running_var, rv, rtol=1e-15)


def test_convention_defaults():
    assert F.batchnorm_defaults("pytorch") == (0.1, 1e-5)
    assert F.batchnorm_defaults("tensorflow") == (0.99, 1e-3)
    assert F.batchnorm_defaults("tensorflow", momentum=0.4) == (0.4, 1e-3)
    layer = BatchNorm(3, convention="tensorflow")
    assert (layer.momentum, layer.eps) == (0.99, 1e-3)
    # the default eps is the one used: a tiny batch where eps matters
    x = np.array([[0.0], [0.2]])
    for convention, eps in (("pytorch", 1e-5), ("tensorflow", 1e-3)):
        y, _ = F.batchnorm_forward(x, np.ones(1), np.zeros(1), convention=convention)
        np.testing.assert_allclose(y[1, 0], 0.1 / np.sqrt(0.01 + eps), rtol=1e-14)


def test_against_pytorch_when_it_is_installed():
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    rng = np.random.default_rng(2)
    for shape in ((5, 3), (2, 4, 3), (2, 3, 2, 2)):
        Fd = n_features(shape)
        gamma, beta = rng.standard_normal(Fd), rng.standard_normal(Fd)
        rm, rv = np.zeros(Fd), np.ones(Fd)
        t_rm, t_rv = torch.zeros(Fd, dtype=torch.float64), torch.ones(Fd, dtype=torch.float64)
        for _ in range(2):
            x, dy = rng.standard_normal(shape), rng.standard_normal(shape)
            y, cache = F.batchnorm_forward(
                x, gamma, beta, running_mean=rm, running_var=rv, momentum=0.1, convention="pytorch"
            )
            rm, rv = cache["running_mean"], cache["running_var"]
            dx, dgamma, dbeta = F.batchnorm_backward(dy, cache)
            # PyTorch wants the channel on axis 1: (B, T, F) -> (B, F, T)
            swap = (lambda a: a.transpose(0, 2, 1)) if len(shape) == 3 else (lambda a: a)
            tx = torch.tensor(swap(x).copy(), requires_grad=True)
            tg = torch.tensor(gamma, requires_grad=True)
            tb = torch.tensor(beta, requires_grad=True)
            ty = tF.batch_norm(tx, t_rm, t_rv, tg, tb, training=True, momentum=0.1, eps=1e-5)
            ty.backward(torch.tensor(swap(dy).copy()))
            np.testing.assert_allclose(y, swap(ty.detach().numpy()), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(rm, t_rm.numpy(), rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(rv, t_rv.numpy(), rtol=1e-12)
            np.testing.assert_allclose(dx, swap(tx.grad.numpy()), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(dgamma, tg.grad.numpy(), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(dbeta, tb.grad.numpy(), rtol=1e-10, atol=1e-12)
        # evaluation with the running statistics
        x = rng.standard_normal(shape)
        y, _ = F.batchnorm_forward(x, gamma, beta, training=False, running_mean=rm, running_var=rv)
        ty = tF.batch_norm(
            torch.tensor(swap(x).copy()),
            t_rm,
            t_rv,
            torch.tensor(gamma),
            torch.tensor(beta),
            training=False,
            eps=1e-5,
        )
        np.testing.assert_allclose(y, swap(ty.numpy()), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- edge cases


@pytest.mark.parametrize("shape", [(1, 3), (1, 1, 3), (1, 3, 1, 1)], ids=["NF", "BTF", "NCHW"])
def test_a_batch_of_one_gives_beta_and_a_zero_input_gradient(shape):
    rng = np.random.default_rng(0)
    x, gamma, beta = random_bn_inputs(shape, rng)
    y, cache = F.batchnorm_forward(x, gamma, beta)
    np.testing.assert_array_equal(y, np.broadcast_to(per_feature(beta, x.ndim), shape))
    np.testing.assert_array_equal(cache["var"], 0.0)
    np.testing.assert_array_equal(cache["inv_std"], 1 / np.sqrt(1e-5))  # finite
    dy = rng.standard_normal(shape)
    dx, dgamma, dbeta = F.batchnorm_backward(dy, cache)
    np.testing.assert_array_equal(dx, 0.0)  # exactly
    np.testing.assert_array_equal(dgamma, 0.0)
    np.testing.assert_array_equal(dbeta, dy.reshape(-1) if x.ndim < 4 else dy[0, :, 0, 0])
    # finite differences agree: y does not depend on x at all
    numeric = gradcheck.numeric_gradient(
        lambda: float(np.sum(F.batchnorm_forward(x, gamma, beta)[0] * dy)), x
    )
    np.testing.assert_array_equal(numeric, 0.0)
    # the compiled core and the staged backward give the same
    np.testing.assert_array_equal(F.bn_backward_staged(dy, cache)[0], 0.0)
    # float32 as well
    y32, c32 = F.batchnorm_forward(*(a.astype(np.float32) for a in (x, gamma, beta)))
    np.testing.assert_array_equal(y32, y.astype(np.float32))
    np.testing.assert_array_equal(F.batchnorm_backward(dy.astype(np.float32), c32)[0], 0.0)


def test_a_batch_of_one_with_running_statistics():
    x, Fd = np.array([[2.0, -1.0]]), 2
    args = dict(running_mean=np.zeros(Fd), running_var=np.ones(Fd))
    with pytest.raises(
        ValueError,
        match=r"running_var: the pytorch convention .* unbiased "
        r".* undefined for a batch of one .*M = 1",
    ):
        F.batchnorm_forward(x, np.ones(Fd), np.zeros(Fd), convention="pytorch", **args)
    with pytest.raises(ValueError, match="M = 1"):
        BatchNorm(Fd, dtype=np.float64).forward(x)
    # no running statistics: nothing to make unbiased, the forward is fine
    y, _ = F.batchnorm_forward(x, np.ones(Fd), np.zeros(Fd), convention="pytorch")
    np.testing.assert_array_equal(y, 0.0)
    # tensorflow: the biased variance 0 goes into the average
    _, cache = F.batchnorm_forward(
        x, np.ones(Fd), np.zeros(Fd), convention="tensorflow", momentum=0.9, **args
    )
    np.testing.assert_allclose(cache["running_mean"], [0.2, -0.1], rtol=1e-14)
    np.testing.assert_allclose(cache["running_var"], [0.9, 0.9], rtol=1e-14)
    # M counts batch * time, so a single sequence of 2 steps is not a batch of one
    _, cache = F.batchnorm_forward(
        np.array([[[1.0], [3.0]]]),
        np.ones(1),
        np.zeros(1),
        running_mean=np.zeros(1),
        running_var=np.ones(1),
    )
    np.testing.assert_allclose(cache["running_var"], [0.9 + 0.1 * 2.0], rtol=1e-14)


@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_a_constant_feature(eps):
    """y = beta exactly; the input gradient is gamma / sqrt(eps) * (dy - mean(dy)),
    not 0 (a shift common to all rows cancels, any other does not), and finite
    differences agree."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 3))
    x[:, 1] = 0.1  # (0.1 + ... + 0.1) / 7 is not 0.1 in floating point
    gamma, beta = np.array([1.0, -1.5, 2.0]), rng.standard_normal(3)
    y, cache = F.batchnorm_forward(x, gamma, beta, eps=eps)
    np.testing.assert_array_equal(y[:, 1], beta[1])
    np.testing.assert_array_equal(cache["var"][1], 0.0)
    np.testing.assert_array_equal(cache["mean"][1], 0.1)
    dy = rng.standard_normal((7, 3))
    dx = F.batchnorm_backward(dy, cache)[0]
    np.testing.assert_allclose(
        dx[:, 1], gamma[1] / np.sqrt(eps) * (dy[:, 1] - dy[:, 1].mean()), rtol=1e-12
    )
    errors = gradcheck.check_function(
        lambda x: F.batchnorm_forward(x, gamma, beta, eps=eps),
        lambda d, c: F.batchnorm_backward(d, c)[0],
        {"x": x},
        seed=3,
    )
    assert errors["x"] < TOL, errors
    # layer norm: a constant row gives shift, and F = 1 always does
    y, _ = F.layernorm_forward(np.full((2, 7), 0.1), np.ones(7), np.arange(7.0))
    np.testing.assert_array_equal(y, [np.arange(7.0)] * 2)
    y, cache = F.layernorm_forward(np.array([[3.0], [-7.0]]), np.array([2.0]), np.array([0.5]))
    np.testing.assert_array_equal(y, [[0.5], [0.5]])
    np.testing.assert_array_equal(F.layernorm_backward(np.ones((2, 1)), cache)[0], 0.0)


# ---------------------------------------------------------------- compiled cores

_NOJIT_SCRIPT = r"""
import json, sys
import numpy as np
from minirnn.functional import batchnorm as B, layernorm as L
out = {"compiled": type(B.bn_train_2d).__name__ != "function"}
for dtype in ("float32", "float64"):
    rng = np.random.default_rng(3)
    x = (2 * rng.standard_normal((7, 5)) + 1).astype(dtype)
    x[:, 2] = 0.1                                   # a constant feature
    g, b, dy = (rng.standard_normal(s).astype(dtype) for s in (5, 5, (7, 5)))
    y, xhat, inv_std, mean, var = B.bn_train_2d(x, g, b, 1e-5)
    res = [y, xhat, inv_std, mean, var, *B.bn_backward_2d(dy, xhat, inv_std, g)]
    res.append(B.bn_eval_2d(x, g, b, mean, var + 0.5, 1e-3))
    y, xhat, inv_std = B.bn_eval_forward_2d(x, g, b, mean, var + 0.5, 1e-3)
    res += [y, xhat, inv_std, *B.bn_eval_backward_2d(dy, xhat, inv_std, g)]
    res += list(B.bn_train_2d(x[:1], g, b, 1e-3))   # a batch of one
    y, xhat, inv_std = L.ln_forward_2d(x, g, b, 1e-5)
    res += [y, xhat, inv_std, *L.ln_backward_2d(dy, xhat, inv_std, g)]
    out[dtype] = [[str(a.dtype), a.tolist()] for a in res]
json.dump(out, sys.stdout)
"""


def test_compiled_cores_equal_the_same_code_without_jit():
    jit, plain = compiled_and_plain(_NOJIT_SCRIPT)
    assert jit.pop("compiled") is True and plain.pop("compiled") is False
    for dtype, rtol in (("float32", 1e-6), ("float64", 1e-13)):
        assert len(jit[dtype]) == len(plain[dtype]) == 26
        for k, ((dt_a, a), (dt_b, b)) in enumerate(zip(jit[dtype], plain[dtype])):
            assert dt_a == dt_b == dtype, (k, dt_a, dt_b)
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol, err_msg=f"{dtype} #{k}")


def _float32_typemaps():
    """The types Numba infers for every variable of each core, compiled afresh
    (cached compilations keep no annotations) for float32 arrays and eps."""
    from numba import njit

    x, v, r = np.ones((3, 4), np.float32), np.ones(4, np.float32), np.ones(3, np.float32)
    x3 = np.ones((2, 4, 3), np.float32)  # images: (N, C, H*W)
    eps = np.float32(1e-5)
    cases = {
        "bn_train_2d": (bn_module.bn_train_2d, (x, v, v, eps)),
        "bn_eval_2d": (bn_module.bn_eval_2d, (x, v, v, v, v, eps)),
        "bn_eval_forward_2d": (bn_module.bn_eval_forward_2d, (x, v, v, v, v, eps)),
        "bn_eval_backward_2d": (bn_module.bn_eval_backward_2d, (x, x, v, v)),
        "bn_backward_2d": (bn_module.bn_backward_2d, (x, x, v, v)),
        "bn_train_images": (bn_module.bn_train_images, (x3, v, v, eps)),
        "bn_eval_forward_images": (bn_module.bn_eval_forward_images, (x3, v, v, v, v, eps)),
        "bn_backward_images": (bn_module.bn_backward_images, (x3, x3, v, v)),
        "bn_eval_backward_images": (bn_module.bn_eval_backward_images, (x3, x3, v, v)),
        "ln_forward_2d": (ln_module.ln_forward_2d, (x, v, v, eps)),
        "ln_backward_2d": (ln_module.ln_backward_2d, (x, x, r, v)),
    }
    for name, (kernel, args) in cases.items():
        fresh = njit(error_model="numpy")(kernel.py_func)
        fresh(*args)
        yield name, fresh.overloads[fresh.signatures[0]].type_annotation.typemap


def test_compiled_cores_do_no_float64_arithmetic_on_float32():
    for name, typemap in _float32_typemaps():
        assert len(typemap) > 20, name
        promoted = {var: str(t) for var, t in typemap.items() if "float64" in str(t)}
        assert not promoted, f"{name}: float64 inside the float32 kernel: {promoted}"


def test_float32_stays_float32():
    rng = np.random.default_rng(0)
    for shape in ((4, 3), (2, 3, 3), (2, 3, 2, 2)):
        x, gamma, beta = (a.astype(np.float32) for a in random_bn_inputs(shape, rng))
        Fd = n_features(shape)
        run = dict(running_mean=np.zeros(Fd, np.float32), running_var=np.ones(Fd, np.float32))
        for training in (True, False):
            y, cache = F.batchnorm_forward(x, gamma, beta, training=training, **run)
            grads = F.batchnorm_backward(rng.standard_normal(y.shape).astype(np.float32), cache)
            arrays = [y, *grads, cache["running_mean"], cache["running_var"], cache["mean"]]
            if training:
                arrays += F.bn_backward_staged(y, cache)
            assert all(a.dtype == np.float32 for a in arrays)
        y, cache = F.layernorm_forward(
            x, np.ones(shape[-1], np.float32), np.zeros(shape[-1], np.float32)
        )
        assert all(a.dtype == np.float32 for a in (y, *F.layernorm_backward(y, cache)))


# ---------------------------------------------------------------- bad input


def _bn(x, gamma=None, beta=None, **kw):
    Fd = x.shape[1] if getattr(x, "ndim", 0) == 4 else np.shape(x)[-1]
    dtype = getattr(x, "dtype", np.float64)
    gamma = np.ones(Fd, dtype) if gamma is None else gamma
    beta = np.zeros(Fd, dtype) if beta is None else beta
    return F.batchnorm_forward(x, gamma, beta, **kw)


z32, z64 = np.zeros((4, 3), np.float32), np.zeros((4, 3))
BAD = [
    (
        lambda: _bn(z64, np.ones((1, 3))),
        ValueError,
        "gamma: expected shape (3,), one value per feature of x of shape (4, 3) (N, F), got (1, 3)",
    ),
    (
        lambda: _bn(np.zeros((2, 3, 4, 5)), np.ones(5)),
        ValueError,
        "gamma: expected shape (3,), one value per feature of x of shape (2, 3, 4, 5) (N, C, H, W)",
    ),
    (lambda: _bn(z64, beta=np.ones(4)), ValueError, "beta: expected shape (3,)"),
    (
        lambda: _bn(z32, np.ones(3)),
        TypeError,
        "gamma: expected dtype float32 like x, got float64; convert one of them with .astype()",
    ),
    (
        lambda: F.batchnorm_forward(np.zeros(3), np.ones(3), np.zeros(3)),
        ValueError,
        "x: expected shape (N, F), (B, T, F), (N, C, H, W), got (3,) (1-D)",
    ),
    (lambda: _bn(np.zeros((1, 2, 3, 4, 5))), ValueError, "got (1, 2, 3, 4, 5) (5-D)"),
    (lambda: _bn(np.zeros((0, 3))), ValueError, "x: expected at least one example"),
    (
        lambda: _bn(np.zeros((4, 3), np.int64)),
        TypeError,
        "x: expected dtype float32 or float64, got int64",
    ),
    (
        lambda: F.batchnorm_forward([[0.0, 1.0]], np.ones(2), np.zeros(2)),
        TypeError,
        "x: expected a NumPy array, got list",
    ),
    (
        lambda: _bn(z64, running_mean=np.zeros(3)),
        ValueError,
        "running_mean, running_var: expected both or neither, got only running_mean",
    ),
    (
        lambda: _bn(z64, training=False),
        ValueError,
        "evaluation mode (training=False) normalizes with the running statistics",
    ),
    (
        lambda: _bn(z64, running_mean=np.zeros(3), running_var=np.ones(2)),
        ValueError,
        "running_var: expected shape (3,)",
    ),
    (
        lambda: _bn(z32, running_mean=np.zeros(3, np.float32), running_var=np.ones(3)),
        TypeError,
        "running_var: expected dtype float32 like x, got float64",
    ),
    (
        lambda: _bn(z64, convention="keras"),
        ValueError,
        "convention: expected one of ['pytorch', 'tensorflow'], got 'keras'",
    ),
    (lambda: _bn(z64, momentum=1.5), ValueError, "momentum: expected a number in [0, 1], got 1.5"),
    (lambda: _bn(z64, eps=0.0), ValueError, "eps: expected a finite number > 0"),
    (lambda: _bn(z64, eps=-1e-5), ValueError, "eps: expected a finite number > 0"),
    (
        lambda: F.batchnorm_backward(np.zeros((3, 4)), _bn(z64)[1]),
        ValueError,
        "dy: expected shape (4, 3) like the output y, got (3, 4)",
    ),
    (
        lambda: F.layernorm_forward(z64, np.ones(4), np.zeros(3)),
        ValueError,
        "gain: expected shape (3,), one value per feature of x of shape (4, 3) (..., F), got (4,)",
    ),
    (
        lambda: F.layernorm_forward(z32, np.ones(3, np.float32), np.zeros(3)),
        TypeError,
        "shift: expected dtype float32 like x, got float64",
    ),
    (
        lambda: F.layernorm_forward(np.float64(1.0), np.ones(1), np.zeros(1)),
        TypeError,
        "x: expected a NumPy array, got float64",
    ),
    (
        lambda: F.layernorm_forward(np.zeros((2, 0)), np.ones(0), np.zeros(0)),
        ValueError,
        "x: expected shape (..., F) with at least one row and one feature, got (2, 0)",
    ),
    (lambda: F.layernorm_forward(z64, np.ones(3), np.zeros(3), eps=0), ValueError, "eps:"),
    (
        lambda: F.layernorm_backward(
            np.zeros(3), F.layernorm_forward(z64, np.ones(3), np.zeros(3))[1]
        ),
        ValueError,
        "dy: expected shape (4, 3) like the output y, got (3,)",
    ),
    (lambda: BatchNorm(3, convention="torch"), ValueError, "convention: expected one of"),
]


@pytest.mark.parametrize("call,error,message", BAD, ids=range(len(BAD)))
def test_bad_arguments_are_named_with_expected_and_actual(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)


def test_inputs_are_never_modified():
    rng = np.random.default_rng(4)
    for shape in ((4, 3), (2, 3, 3), (2, 3, 2, 2)):
        Fd = n_features(shape)
        x, gamma, beta = random_bn_inputs(shape, rng)
        rm, rv, dy = rng.standard_normal(Fd), rng.uniform(0.5, 2, Fd), rng.standard_normal(shape)
        arrays = (x, gamma, beta, rm, rv, dy)
        before = [a.copy() for a in arrays]
        for a in arrays:  # any write, even of the same values, raises
            a.flags.writeable = False
        for training in (True, False):
            for convention in ("pytorch", "tensorflow"):
                y, cache = F.batchnorm_forward(
                    x,
                    gamma,
                    beta,
                    training=training,
                    running_mean=rm,
                    running_var=rv,
                    convention=convention,
                )
                dx, _, _ = F.batchnorm_backward(dy, cache)
                if training:
                    F.bn_backward_staged(dy, cache)
                    assert not np.shares_memory(cache["running_mean"], rm)
                assert not np.shares_memory(y, x) and not np.shares_memory(dx, dy)
        y, cache = F.layernorm_forward(x, np.ones(shape[-1]), np.zeros(shape[-1]))
        F.layernorm_backward(dy, cache)
        for a, b in zip(arrays, before):
            np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- layers


@pytest.mark.parametrize("shape", [(6, 3), (2, 4, 3), (2, 3, 2, 2)], ids=["NF", "BTF", "NCHW"])
def test_batchnorm_layer_train_and_eval(shape):
    rng = np.random.default_rng(6)
    Fd = n_features(shape)
    layer = BatchNorm(Fd, dtype=np.float64)
    assert set(layer.params) == set(layer.grads) == {"gamma", "beta"}
    np.testing.assert_array_equal(layer.params["gamma"], 1.0)
    np.testing.assert_array_equal(layer.params["beta"], 0.0)
    np.testing.assert_array_equal(layer.running_mean, 0.0)
    np.testing.assert_array_equal(layer.running_var, 1.0)
    layer.params["gamma"][:] = rng.uniform(0.5, 2, Fd)
    layer.params["beta"][:] = rng.standard_normal(Fd)
    grad_arrays = dict(layer.grads)
    x = 3 * rng.standard_normal(shape) + 2
    # train: batch statistics, running statistics updated in place
    y = layer.forward(x)
    expected, mean, var = numpy_bn_train(x, layer.params["gamma"], layer.params["beta"], 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    M = rows(shape)
    np.testing.assert_allclose(layer.running_mean, 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * var * M / (M - 1), rtol=1e-12)
    dy = rng.standard_normal(shape)
    dx = layer.backward(dy)
    ref = F.batchnorm_backward(
        dy, F.batchnorm_forward(x, layer.params["gamma"], layer.params["beta"])[1]
    )
    np.testing.assert_allclose(dx, ref[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.grads["gamma"], ref[1], rtol=1e-12)
    np.testing.assert_allclose(layer.grads["beta"], ref[2], rtol=1e-12)
    assert all(layer.grads[k] is grad_arrays[k] for k in grad_arrays)  # written in place
    # eval: running statistics, which stay put; each example alone gives the same
    layer.eval()
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    x2 = rng.standard_normal(shape)
    y_first = layer.forward(x2[:1])
    y2 = layer.forward(x2)
    np.testing.assert_allclose(
        y2,
        reference_bn(x2, layer.params["gamma"], layer.params["beta"], rm, rv, 1e-5),
        rtol=1e-12,
        atol=1e-12,
    )
    np.testing.assert_array_equal(y_first, y2[:1])
    np.testing.assert_array_equal(layer.running_mean, rm)
    np.testing.assert_array_equal(layer.running_var, rv)
    dx2 = layer.backward(dy)
    g = per_feature(layer.params["gamma"] / np.sqrt(rv + 1e-5), x.ndim)
    np.testing.assert_allclose(dx2, dy * g, rtol=1e-12)
    # back to train mode: batch statistics again
    layer.train()
    np.testing.assert_allclose(layer.forward(x), y, rtol=1e-12, atol=1e-12)


def test_batchnorm_layer_reproduces_the_stack_overflow_question():
    """The Stack Overflow BN-in-LSTM question:
    tf.layers.batch_normalization(outputs, momentum=0.4, training=True) on RNN outputs
    (batch, time, H), written out with TensorFlow's formulas: statistics over axes
    (0, 1), epsilon 1e-3, gamma 1, beta 0, moving mean 0 and moving variance 1 at the
    start, moving = 0.4 * moving + 0.6 * batch (biased)."""
    rng = np.random.default_rng(7)
    H = 5
    layer = BatchNorm(H, momentum=0.4, convention="tensorflow")
    assert (layer.momentum, layer.eps, layer.params["gamma"].dtype) == (0.4, 1e-3, np.float32)
    moving_mean, moving_var = np.zeros(H), np.ones(H)
    for _ in range(2):
        outputs = (2 * rng.standard_normal((8, 6, H)) + 1).astype(np.float32)
        mean = outputs.astype(np.float64).mean(axis=(0, 1))
        var = outputs.astype(np.float64).var(axis=(0, 1))
        expected = (outputs - mean) / np.sqrt(var + 1e-3)
        y = layer.forward(outputs)
        assert y.dtype == np.float32 and y.shape == outputs.shape
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
        moving_mean = 0.4 * moving_mean + 0.6 * mean
        moving_var = 0.4 * moving_var + 0.6 * var
        np.testing.assert_allclose(layer.running_mean, moving_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.running_var, moving_var, rtol=1e-5)


def test_layernorm_layer():
    rng = np.random.default_rng(8)
    layer = LayerNorm(4, dtype=np.float64)
    assert set(layer.params) == {"gain", "shift"} and layer.eps == 1e-5
    layer.params["gain"][:] = rng.standard_normal(4)
    layer.params["shift"][:] = rng.standard_normal(4)
    x = rng.standard_normal((3, 5, 4))
    y = layer.forward(x)
    np.testing.assert_array_equal(layer.eval().forward(x), y)  # no train/eval difference
    np.testing.assert_array_equal(layer.forward(x[:1]), y[:1])  # rows are independent
    layer.train().forward(x)
    dy = rng.standard_normal(x.shape)
    dx = layer.backward(dy)
    ref = F.layernorm_backward(
        dy, F.layernorm_forward(x, layer.params["gain"], layer.params["shift"])[1]
    )
    np.testing.assert_array_equal(dx, ref[0])
    np.testing.assert_array_equal(layer.grads["gain"], ref[1])
    np.testing.assert_array_equal(layer.grads["shift"], ref[2])


def test_batchnorm_running_statistics_go_to_checkpoints():
    layer = BatchNorm(3, convention="tensorflow", momentum=0.5)
    layer.forward(np.arange(12, dtype=np.float32).reshape(4, 3))
    saved = {k: v.copy() for k, v in layer.buffers().items()}
    assert set(saved) == {"running_mean", "running_var"}
    np.testing.assert_allclose(saved["running_mean"], 0.5 * np.array([4.5, 5.5, 6.5]))
    fresh = BatchNorm(3, convention="tensorflow", momentum=0.5)
    arrays = fresh.running_mean, fresh.running_var
    fresh.load_buffers(saved)
    assert (fresh.running_mean, fresh.running_var) == arrays  # loaded in place
    for name in saved:
        np.testing.assert_array_equal(getattr(fresh, name), saved[name])
    with pytest.raises(KeyError, match="expected \\['running_mean', 'running_var'\\]"):
        fresh.load_buffers({"running_mean": saved["running_mean"]})
    with pytest.raises(ValueError, match=r"buffers\['running_var'\]: expected shape \(3,\)"):
        fresh.load_buffers({"running_mean": np.zeros(3), "running_var": np.ones(4)})
