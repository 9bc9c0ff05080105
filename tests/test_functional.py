"""functional/: activations, affine, losses."""

import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minirnn import functional as F
from minirnn import gradcheck

shapes = st.tuples(st.integers(1, 4), st.integers(1, 5))


@given(shape=shapes, seed=st.integers(0, 2**31 - 1), op=st.sampled_from(["sigmoid", "tanh"]))
def test_smooth_activation_gradients(shape, seed, op):
    x = np.random.default_rng(seed).uniform(-3, 3, shape)  # where the slope is not ~0
    fwd, bwd = getattr(F, f"{op}_forward"), getattr(F, f"{op}_backward")
    err = gradcheck.check_function(fwd, bwd, {"x": x}, seed=seed)["x"]
    assert err < gradcheck.TOLERANCE


@given(shape=shapes, seed=st.integers(0, 2**31 - 1), side=st.sampled_from([-1, 1]))
def test_relu_gradient_on_each_side_of_the_kink(shape, seed, side):
    x = np.random.default_rng(seed).standard_normal(shape)
    assume(np.abs(x).min() > 1e-3)  # finite differences straddle 0 otherwise
    x = np.abs(x) * side if side < 0 else x  # all negative, or mixed signs
    err = gradcheck.check_function(F.relu_forward, F.relu_backward, {"x": x}, seed=seed)["x"]
    assert err < gradcheck.TOLERANCE


@given(
    lead=st.lists(st.integers(1, 3), min_size=1, max_size=2),
    n_in=st.integers(1, 4),
    n_out=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_affine_gradients_with_any_leading_axes(lead, n_in, n_out, seed):
    rng = np.random.default_rng(seed)
    inputs = {
        "x": rng.standard_normal((*lead, n_in)),
        "W": rng.standard_normal((n_in, n_out)),
        "b": rng.standard_normal(n_out),
    }
    errors = gradcheck.check_function(F.affine_forward, F.affine_backward, inputs, seed=seed)
    assert max(errors.values()) < gradcheck.TOLERANCE, errors


@given(
    n=st.integers(1, 5),
    k=st.integers(2, 6),
    scale=st.sampled_from([0.1, 1.0, 4.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_softmax_cross_entropy_gradient(n, k, scale, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    z = scale * rng.standard_normal((n, k))
    # A saturated softmax has a gradient p - onehot of 1e-8 or less, below what central
    # differences of a loss of order 1 can resolve: rounding, not the code, decides there.
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    assume(np.abs(p - np.eye(k)[labels]).max() > 1e-6)
    err = gradcheck.check_function(
        lambda z: F.softmax_cross_entropy_forward(z, labels),
        F.softmax_cross_entropy_backward,
        {"z": z},
        seed=seed,
    )["z"]
    assert err < gradcheck.TOLERANCE


@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_mse_gradient(shape, seed):
    rng = np.random.default_rng(seed)
    target = rng.standard_normal(shape)
    err = gradcheck.check_function(
        lambda p: F.mse_forward(p, target),
        F.mse_backward,
        {"p": rng.standard_normal(shape)},
        seed=seed,
    )["p"]
    assert err < gradcheck.TOLERANCE


def test_values_by_hand():
    s, _ = F.sigmoid_forward(np.array([0.0, np.log(3.0)]))
    np.testing.assert_allclose(s, [0.5, 0.75], rtol=1e-15)
    r, _ = F.relu_forward(np.array([-2.0, 0.0, 3.0]))
    np.testing.assert_array_equal(r, [0, 0, 3])
    y, _ = F.affine_forward(np.array([[1.0, 2.0]]), np.array([[1.0], [10.0]]), np.array([0.5]))
    np.testing.assert_array_equal(y, [[21.5]])
    # two classes with logits (0, log 3): p = (1/4, 3/4); loss of label 0 is log 4
    loss, _ = F.softmax_cross_entropy_forward(np.array([[0.0, np.log(3.0)]]), np.array([0]))
    assert loss == pytest.approx(np.log(4.0), rel=1e-14)
    loss, _ = F.mse_forward(np.array([1.0, 3.0]), np.array([0.0, 0.0]))
    assert loss == 5.0


def test_extreme_inputs_do_not_overflow():
    z = np.array([[1000.0, 0.0, -1000.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any overflow warning fails the test
        s, _ = F.sigmoid_forward(z)
        loss, cache = F.softmax_cross_entropy_forward(z, np.array([1]))
        d = F.softmax_cross_entropy_backward(1.0, cache)
    np.testing.assert_array_equal(s, [[1, 0.5, 0]])
    assert loss == pytest.approx(1000.0) and loss.dtype == np.float32
    assert np.isfinite(d).all() and d.dtype == np.float32


def test_float32_stays_float32():
    x = np.ones((2, 3), np.float32)
    for op in ("sigmoid", "tanh", "relu"):
        out, cache = getattr(F, f"{op}_forward")(x)
        assert out.dtype == np.float32
        assert getattr(F, f"{op}_backward")(x, cache).dtype == np.float32


def test_loss_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"labels: expected shape \(2,\)"):
        F.softmax_cross_entropy_forward(np.zeros((2, 3)), np.zeros(3, int))
    with pytest.raises(ValueError, match=r"labels: expected values in \[0, 3\)"):
        F.softmax_cross_entropy_forward(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(TypeError, match="labels: expected an integer dtype"):
        F.softmax_cross_entropy_forward(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"target: expected shape \(2, 3\)"):
        F.mse_forward(np.zeros((2, 3)), np.zeros((3, 2)))
