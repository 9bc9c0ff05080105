"""The batch split across threads (minirnn/parallel.py): the same loss, output and
gradients as the whole batch to float rounding, the same bits for any thread
count, one shard for what cannot be split."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minirnn import parallel
from minirnn.errors import OptionError
from minirnn.nn import CNNClassifier, SequenceClassifier, SequenceRegressor
from minirnn.optim import Adam
from minirnn.parallel import ShardedStep, can_split, shard_bounds

CELLS = [
    ("rnn", {}),
    ("lstm", {}),
    ("gru", {"reset_after": True}),
    ("gru", {}),
    ("lnlstm", {}),
    ("vcrnn", {"alpha": 0.3}),
]


def sequence_model(cell, options, rng, dtype=np.float64, **kwargs):
    return SequenceClassifier(cell, 3, 5, 4, rng=rng, dtype=dtype, **options, **kwargs)


def perturbed(model, rng):
    for value in model.params.values():  # biases of 0 and gains of 1 are too easy
        value += (0.1 * rng.standard_normal(value.shape)).astype(value.dtype)
    return model


def whole_and_split(model, x, y, threads=2):
    loss, out = model.loss_and_backward(x, y)
    whole = (loss, out.copy(), {k: g.copy() for k, g in model.grads.items()}, model.metrics())
    with ShardedStep(model, threads=threads, min_shard_flop=0) as step:
        loss, out = step(x, y)
        split = (loss, out, {k: g.copy() for k, g in model.grads.items()}, step.metrics())
    return whole, split, step.shards


def assert_close(whole, split):
    (loss_a, out_a, grads_a, metrics_a), (loss_b, out_b, grads_b, metrics_b) = whole, split
    assert loss_b == pytest.approx(float(loss_a), rel=1e-12)
    np.testing.assert_allclose(out_b, out_a, rtol=1e-12, atol=1e-14)
    assert grads_a.keys() == grads_b.keys()
    for key, g in grads_a.items():
        scale = np.max(np.abs(g))
        assert scale > 0, key
        assert np.max(np.abs(grads_b[key] - g)) <= 1e-12 * scale, key
    assert metrics_b.keys() == metrics_a.keys()
    for key, value in metrics_a.items():
        assert metrics_b[key] == pytest.approx(value, rel=1e-12), key


@pytest.mark.parametrize("cell,options", CELLS)
@settings(max_examples=4, deadline=None)
@given(batch=st.integers(1, 9), time=st.integers(2, 4), seed=st.integers(0, 2**16))
def test_split_batch_gives_the_whole_batch_gradient(cell, options, batch, time, seed):
    rng = np.random.default_rng(seed)
    model = perturbed(sequence_model(cell, options, rng), rng)
    x = rng.standard_normal((batch, time, 3))
    y = rng.integers(0, 4, batch)
    whole, split, shards = whole_and_split(model, x, y)
    assert shards == parallel.SHARDS
    assert_close(whole, split)


def test_split_batch_of_a_regressor_and_of_the_cnn_without_batch_norm():
    rng = np.random.default_rng(1)
    regressor = perturbed(SequenceRegressor("lstm", 2, 4, 3, rng=rng, dtype=np.float64), rng)
    x, y = rng.standard_normal((7, 5, 2)), rng.standard_normal((7, 5, 3))
    assert_close(*whole_and_split(regressor, x, y)[:2])
    cnn = perturbed(
        CNNClassifier(batchnorm=False, rng=rng, dtype=np.float64, image_size=12, filters=(3, 4)),
        rng,
    )
    x, y = rng.random((6, 1, 12, 12)), rng.integers(0, 10, 6)
    whole, split, shards = whole_and_split(cnn, x, y)
    assert shards == parallel.SHARDS
    assert_close(whole, split)


def train_steps(model, x, y, threads, steps=3):
    adam = Adam(model.params, lr=1e-2)
    with ShardedStep(model, threads=threads, min_shard_flop=0) as step:
        losses = []
        for _ in range(steps):
            loss, _ = step(x, y)
            adam.step(model.grads)
            losses.append(loss)
    return losses, {k: v.copy() for k, v in model.params.items()}


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: sequence_model("lstm", {}, rng, np.float32),
        lambda rng: sequence_model("gru", {"reset_after": True}, rng, np.float32),
        lambda rng: CNNClassifier(batchnorm=False, rng=rng, image_size=12, filters=(3, 4)),
    ],
    ids=["lstm", "gru", "cnn"],
)
def test_one_and_two_threads_give_the_same_bits(make):
    runs = []
    for threads in (1, 2, 3):
        rng = np.random.default_rng(0)
        model = make(rng)
        shape = (10, 1, 12, 12) if isinstance(model, CNNClassifier) else (10, 6, 3)
        x = rng.standard_normal(shape).astype(np.float32)
        runs.append(train_steps(model, x, rng.integers(0, 4, 10), threads))
    (losses, params), *others = runs
    for other_losses, other_params in others:
        assert other_losses == losses
        for key, value in params.items():
            np.testing.assert_array_equal(other_params[key], value, err_msg=key)


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: sequence_model("bnlstm", {}, rng),
        lambda rng: sequence_model("lstm", {}, rng, output_batchnorm=True),
        lambda rng: sequence_model("lstm", {}, rng, dropout=0.3),
        lambda rng: sequence_model("gru", {"recurrent_dropout": 0.3}, rng),
    ],
    ids=["bnlstm", "output-batchnorm", "dropout", "recurrent-dropout"],
)
def test_batch_statistics_and_random_draws_keep_one_shard(make):
    results = []
    for split in (False, True):
        rng = np.random.default_rng(3)
        model = make(rng)
        assert can_split(model) is False
        shape = (6, 1, 12, 12) if isinstance(model, CNNClassifier) else (6, 4, 3)
        x, y = rng.standard_normal(shape), rng.integers(0, 4, 6)
        if split:
            step = ShardedStep(model, threads=2)
            assert step.shards == 1
            loss, out = step(x, y)
        else:
            loss, out = model.loss_and_backward(x, y)
        results.append((loss, out, {k: g.copy() for k, g in model.grads.items()}))
    (loss_a, out_a, grads_a), (loss_b, out_b, grads_b) = results
    assert loss_a == loss_b
    np.testing.assert_array_equal(out_a, out_b)
    for key in grads_a:
        np.testing.assert_array_equal(grads_a[key], grads_b[key], err_msg=key)


@pytest.mark.parametrize("cost", ["stable", "clipped"])
def test_the_cnn_with_batch_norm_runs_in_segments(cost):
    """Convolutions, ReLUs, max-pools and the head on the shards, each batch norm on
    the whole batch: the gradients, the running statistics and the output of the
    whole-batch step to rounding, and the same bits for one, two and three threads."""
    results = []
    for threads in (None, 1, 2, 3):
        rng = np.random.default_rng(4)
        model = perturbed(
            CNNClassifier(
                batchnorm=True, cost=cost, rng=rng, dtype=np.float64, image_size=12, filters=(3, 4)
            ),
            rng,
        )
        assert can_split(model) is False and parallel.can_segment(model) is True
        x, y = rng.standard_normal((7, 1, 12, 12)), rng.integers(0, 10, 7)
        if threads is None:
            loss, out = model.loss_and_backward(x, y)
        else:
            with ShardedStep(model, threads=threads) as step:
                assert (step.segmented, step.shards) == (True, parallel.SHARDS)
                loss, out = step(x, y)
        grads = {k: g.copy() for k, g in model.grads.items()}
        results.append((loss, out, grads, {k: v.copy() for k, v in model.buffers().items()}))
    whole, *split = results
    for loss, out, grads, buffers in split:
        assert loss == pytest.approx(whole[0], rel=1e-13)
        np.testing.assert_allclose(out, whole[1], rtol=1e-12, atol=1e-14)
        for key, g in grads.items():  # conv biases before batch norm: 0 up to rounding
            np.testing.assert_allclose(g, whole[2][key], rtol=1e-10, atol=1e-13, err_msg=key)
        for key, b in buffers.items():
            np.testing.assert_array_equal(b, whole[3][key], err_msg=key)
    for loss, out, grads, _ in split[1:]:
        assert loss == split[0][0]
        np.testing.assert_array_equal(out, split[0][1])
        for key, g in grads.items():
            np.testing.assert_array_equal(g, split[0][2][key], err_msg=key)


def test_too_little_work_per_shard_runs_the_batch_whole():
    rng = np.random.default_rng(0)
    x = np.zeros((64, 28, 28), np.float32)  # row-MNIST
    flop = {
        cell: parallel.recurrent_flop(SequenceClassifier(cell, 28, 100, 10, rng=rng), x)
        for cell in ("rnn", "gru", "lstm")
    }
    per_shard = {cell: f / parallel.SHARDS / 1e6 for cell, f in flop.items()}
    assert per_shard == pytest.approx({"rnn": 34.4, "gru": 103.2, "lstm": 137.6}, abs=0.1)
    pixel = SequenceClassifier("rnn", 1, 100, 10, rng=rng)
    assert parallel.recurrent_flop(pixel, np.zeros((64, 784, 1))) / 4 > parallel.MIN_SHARD_FLOP
    # a small model runs whole: the same bits as the unsplit step
    model = sequence_model("lstm", {}, np.random.default_rng(1))
    xs, ys = rng.standard_normal((8, 4, 3)), rng.integers(0, 4, 8)
    loss, out = model.loss_and_backward(xs, ys)
    whole = {k: g.copy() for k, g in model.grads.items()}
    with ShardedStep(model, threads=2) as step:
        assert step.shards == parallel.SHARDS
        split_loss, split_out = step(xs, ys)
    assert split_loss == loss
    np.testing.assert_array_equal(split_out, out)
    for key, g in whole.items():
        np.testing.assert_array_equal(model.grads[key], g, err_msg=key)


def test_shard_bounds_cover_the_batch_in_near_equal_pieces():
    assert shard_bounds(64) == [(0, 16), (16, 32), (32, 48), (48, 64)]
    assert shard_bounds(10) == [(0, 3), (3, 6), (6, 8), (8, 10)]
    assert shard_bounds(2) == [(0, 1), (1, 2)]
    assert shard_bounds(1) == [(0, 1)]


def test_threads_come_from_minirnn_threads_or_the_cores(monkeypatch):
    monkeypatch.setenv("MINIRNN_THREADS", "3")
    assert parallel.default_threads() == 3
    monkeypatch.setenv("MINIRNN_THREADS", "zero")
    with pytest.raises(OptionError, match="MINIRNN_THREADS"):
        parallel.default_threads()
    monkeypatch.delenv("MINIRNN_THREADS")
    assert parallel.default_threads() >= 1
    with pytest.raises(OptionError, match="threads"):
        ShardedStep(sequence_model("rnn", {}, np.random.default_rng(0)), threads=0)


def test_training_runs_end_with_the_same_parameters_on_one_and_two_threads(tmp_path):
    from minirnn import checkpoint
    from minirnn.train import CHECKPOINT, METRICS, TrainConfig, train

    config = TrainConfig(limit=120, batch_size=30, hidden=6, log_every=2, epochs=1)
    params = []
    for threads in (1, 2):
        train(
            config,
            tmp_path / str(threads),
            progress=False,
            print_fn=lambda *a: None,
            threads=threads,
        )
        params.append(checkpoint.load_checkpoint(tmp_path / str(threads) / CHECKPOINT)[0])
    for key, value in params[0].items():
        np.testing.assert_array_equal(params[1][key], value, err_msg=key)
    lines = [(tmp_path / str(t) / METRICS).read_text().splitlines() for t in (1, 2)]
    strip = [
        [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in run]
        for run in lines
    ]
    assert strip[0] == strip[1]


def test_the_compiled_loops_release_the_gil():
    # threads computing shards run at once only inside code that releases the GIL
    from numba.core.registry import CPUDispatcher

    from minirnn.cells import CELLS

    for name, module in CELLS.items():
        kernels = [
            f
            for f in vars(module).values()
            if isinstance(f, CPUDispatcher) and f.py_func.__module__ == module.__name__
        ]
        assert kernels, name
        for kernel in kernels:
            assert kernel.targetoptions.get("nogil") is True, f"{name}.{kernel.__name__}"


def test_the_threads_benchmark_times_the_four_ways(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "threads.py"
    spec = importlib.util.spec_from_file_location("threads_benchmark", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert (
        script.main(
            [
                *("--repeats", "1", "--batch", "4", "--out", str(tmp_path)),
                *("--cases", "rnn", "cnn-bn", "bnlstm"),
            ]
        )
        == 0
    )
    assert "speed-up" in capsys.readouterr().out
    records = json.loads((tmp_path / "threads.json").read_text())["records"]
    assert [(r["case"], r["shards"]) for r in records] == [
        ("rnn", parallel.SHARDS),
        ("cnn-bn", parallel.SHARDS),  # in segments
        ("bnlstm", 1),
    ]
    for r in records:
        assert all(r[f"{way}_ms"] > 0 for way in script.WAYS)
        assert r["whole_speedup"] == 1.0
