"""nn/: layers and models, their gradients as a whole, train/eval mode."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minirnn import gradcheck
from minirnn.nn import Dense, Dropout, Recurrent, SequenceClassifier, SequenceRegressor, Sequential


def numeric_model_check(model, x, y, rng):
    """Finite differences of the model's loss for every parameter (float64)."""
    model.loss_and_backward(x, y)
    # copied before any finite difference runs backward again and overwrites them
    analytic_grads = {k: g.copy() for k, g in model.grads.items()}
    errors = {}
    for key, p in model.params.items():
        # gradient_error confirms an error above the tolerance with the fourth-order
        # stencil: a right gradient far smaller than the loss meets rounding otherwise
        errors[key] = gradcheck.gradient_error(
            analytic_grads[key], lambda: float(model.loss_and_backward(x, y)[0]), p
        )
    return errors


@given(
    cell=st.sampled_from(["rnn", "lstm", "gru"]),
    layers=st.integers(1, 2),
    batch=st.integers(1, 3),
    time=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
)
def test_classifier_gradients_through_stacked_layers(cell, layers, batch, time, seed):
    rng = np.random.default_rng(seed)
    model = SequenceClassifier(cell, 3, 4, 5, layers=layers, rng=rng, dtype=np.float64)
    for p in model.params.values():
        p += 0.2 * rng.standard_normal(p.shape)
    x = rng.standard_normal((batch, time, 3))
    y = rng.integers(0, 5, batch)
    errors = numeric_model_check(model, x, y, rng)
    assert len(errors) == 3 * layers + 2
    assert max(errors.values()) < gradcheck.TOLERANCE, errors


@given(seed=st.integers(0, 2**31 - 1), time=st.integers(1, 4))
def test_regressor_gradients_with_time_distributed_dense(seed, time):
    rng = np.random.default_rng(seed)
    model = SequenceRegressor("gru", 1, 3, 2, rng=rng, dtype=np.float64, reset_after=True)
    for p in model.params.values():
        p += 0.2 * rng.standard_normal(p.shape)
    x, y = rng.standard_normal((2, time, 1)), rng.standard_normal((2, time, 2))
    errors = numeric_model_check(model, x, y, rng)
    assert max(errors.values()) < gradcheck.TOLERANCE, errors


def test_model_shapes_and_shared_arrays():
    rng = np.random.default_rng(0)
    model = SequenceClassifier("lstm", 28, 16, 10, layers=2, rng=rng)
    x = rng.random((5, 28, 28), dtype=np.float32)
    assert model.predict(x).shape == (5, 10)
    # the flat dicts hold the layers' own arrays: an in-place update reaches them
    model.params["0.W"] += 1
    assert model.layers[0].params["W"] is model.params["0.W"]
    grads_before = {k: id(v) for k, v in model.grads.items()}
    model.loss_and_backward(x, np.arange(5))
    assert {k: id(v) for k, v in model.grads.items()} == grads_before
    assert all(np.abs(g).sum() > 0 for g in model.grads.values())
    assert sorted(model.params) == ["0.U", "0.W", "0.b", "1.U", "1.W", "1.b", "2.W", "2.b"]
    reg = SequenceRegressor("rnn", 1, 8, 1, rng=rng)
    assert reg.predict(rng.random((3, 7, 1), dtype=np.float32)).shape == (3, 7, 1)


def test_recurrent_last_state_only_gets_gradient_at_the_last_step():
    rng = np.random.default_rng(1)
    layer = Recurrent("rnn", 2, 3, return_sequences=False, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 4, 2))
    h_T = layer.forward(x)
    full = Recurrent("rnn", 2, 3, return_sequences=True, rng=rng, dtype=np.float64)
    full.params = {k: v.copy() for k, v in layer.params.items()}
    full.grads = {k: np.zeros_like(v) for k, v in layer.params.items()}
    hs = full.forward(x)
    np.testing.assert_array_equal(hs[:, -1], h_T)
    d = rng.standard_normal(h_T.shape)
    dhs = np.zeros_like(hs)
    dhs[:, -1] = d
    np.testing.assert_allclose(layer.backward(d), full.backward(dhs))


def test_dropout_inverted_scaling_and_modes():
    rng = np.random.default_rng(0)
    layer = Dropout(0.25, rng=rng)
    x = np.ones((400, 500), np.float32)
    y = layer.forward(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert abs(y.mean() - 1) < 0.01  # the expectation is unchanged
    dout = rng.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(dout), dout * y)  # same mask
    layer.eval()
    np.testing.assert_array_equal(layer.forward(x), x)
    with pytest.raises(ValueError, match="dropout p: expected 0 <= p < 1, got 1.0"):
        Dropout(1.0, rng=rng)


def test_train_eval_propagates_to_layers():
    model = Sequential(
        Dense(2, 3, rng=np.random.default_rng(0)), Dropout(0.5, rng=np.random.default_rng(0))
    )
    model.eval()
    assert not any(layer.training for layer in model.layers)
    model.train()
    assert all(layer.training for layer in model.layers)


def test_recurrent_rejects_unknown_cell_options():
    with pytest.raises(TypeError, match="unknown option"):
        Recurrent("lstm", 2, 3, rng=np.random.default_rng(0), reset_after=True)
    with pytest.raises(ValueError, match="unknown cell 'lsmt'"):
        Recurrent("lsmt", 2, 3, rng=np.random.default_rng(0))


@given(seed=st.integers(0, 2**31 - 1), time=st.integers(2, 4))
def test_stack_overflow_model_batchnorm_on_outputs_gradients(seed, time):
    """rnn -> batch norm on the outputs (momentum 0.4) -> dense at every step."""
    rng = np.random.default_rng(seed)
    model = SequenceRegressor("rnn", 1, 3, 1, rng=rng, dtype=np.float64, output_batchnorm=True)
    assert [type(layer).__name__ for layer in model.layers] == ["Recurrent", "BatchNorm", "Dense"]
    for p in model.params.values():
        p += 0.2 * rng.standard_normal(p.shape)
    x, y = rng.standard_normal((3, time, 1)), rng.standard_normal((3, time, 1))
    errors = numeric_model_check(model, x, y, rng)
    assert {"1.gamma", "1.beta"} <= set(errors)
    assert max(errors.values()) < gradcheck.TOLERANCE, errors
    # the running statistics moved towards the batch's, and checkpoints carry them
    assert set(model.buffers()) == {"1.running_mean", "1.running_var"}
    assert not np.allclose(model.buffers()["1.running_var"], 1.0)
