"""Training: resume is exact, NaN stops keep the checkpoint, Ctrl-C saves, the CLI runs."""

import json
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from minirnn import checkpoint as ckpt
from minirnn.parallel import ShardedStep
from minirnn.train import CHECKPOINT, METRICS, TrainConfig, TrainingDiverged, train

QUICK = dict(limit=300, batch_size=32, hidden=8, log_every=3, epochs=2)


def params_of(run_dir):
    return ckpt.load_checkpoint(run_dir / CHECKPOINT)[0]


def train_records(run_dir):
    lines = (run_dir / METRICS).read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


@pytest.mark.parametrize("cell,options", [("gru", {"reset_after": True}), ("lstm", {})])
def test_resume_ends_with_identical_parameters(tmp_path, cell, options):
    config = TrainConfig(cell=cell, cell_options=options, dropout=0.2, **QUICK)
    straight = tmp_path / "straight"
    train(config, straight, progress=False, print_fn=lambda *a: None)

    broken = tmp_path / "broken"
    first = train(config, broken, progress=False, stop_after_steps=4, print_fn=lambda *a: None)
    assert first["interrupted"] and first["step"] == 4
    second = train(
        config, broken, resume=True, progress=False, stop_after_steps=9, print_fn=lambda *a: None
    )  # crosses into the second epoch
    assert second["interrupted"] and second["step"] == 13
    train(config, broken, resume=True, progress=False, print_fn=lambda *a: None)

    a, b = params_of(straight), params_of(broken)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert train_records(straight) == train_records(broken)


def test_lr_end_decays_every_step_and_resumes_on_the_same_rates(tmp_path):
    config = TrainConfig(lr=0.01, lr_end=1e-3, **dict(QUICK, log_every=1))  # 20 steps
    straight = tmp_path / "straight"
    train(config, straight, progress=False, print_fn=lambda *a: None)
    records = [r for r in train_records(straight) if r["split"] == "train"]
    # the record of step s carries the rate of update s (0-based s - 1)
    np.testing.assert_allclose(
        [r["lr"] for r in records],
        [0.01 * 0.1 ** ((r["step"] - 1) / 19) for r in records],
        rtol=1e-12,
    )
    assert records[-1]["step"] == 20 and records[-1]["lr"] == pytest.approx(1e-3)

    broken = tmp_path / "broken"
    train(config, broken, progress=False, stop_after_steps=7, print_fn=lambda *a: None)
    train(config, broken, resume=True, progress=False, print_fn=lambda *a: None)
    a, b = params_of(straight), params_of(broken)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert train_records(straight) == train_records(broken)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    config = TrainConfig(**QUICK)  # 10 steps per epoch
    one_epoch = tmp_path / "one"
    train(TrainConfig(**dict(QUICK, epochs=1)), one_epoch, progress=False, print_fn=lambda *a: None)

    real = ShardedStep.__call__  # a training step's loss and gradients
    calls = {"n": 0}

    def poisoned(self, x, y):
        calls["n"] += 1
        loss, out = real(self, x, y)
        return (np.float32(np.nan), out) if calls["n"] == 13 else (loss, out)

    monkeypatch.setattr(ShardedStep, "__call__", poisoned)
    run = tmp_path / "nan"
    with pytest.raises(TrainingDiverged) as info:
        train(config, run, progress=False, print_fn=lambda *a: None)
    message = str(info.value)
    assert "nan at step 13 (epoch 2)" in message
    assert "--lr" in message and "--clip" in message and str(run / CHECKPOINT) in message
    _, _, meta = ckpt.load_checkpoint(run / CHECKPOINT)
    assert (meta["epoch"], meta["step"]) == (1, 10)
    for key, value in params_of(one_epoch).items():
        np.testing.assert_array_equal(params_of(run)[key], value)


def test_ctrl_c_finishes_the_step_and_saves(tmp_path, monkeypatch):
    real = ShardedStep.__call__
    calls = {"n": 0}

    def interrupting(self, x, y):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of step 3
        return real(self, x, y)

    monkeypatch.setattr(ShardedStep, "__call__", interrupting)
    # CI may run us with SIGINT ignored; the handler must only be borrowed
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        summary = train(TrainConfig(**QUICK), tmp_path, progress=False, print_fn=lambda *a: None)
        restored = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, before)
    assert summary["interrupted"] and summary["step"] == 3  # step 3 was completed
    _, _, meta = ckpt.load_checkpoint(tmp_path / CHECKPOINT)
    assert (meta["step"], meta["batch_index"]) == (3, 3)
    assert restored is signal.default_int_handler


def test_checkpoint_write_is_atomic(tmp_path):
    path = tmp_path / "c.npz"
    params = {"W": np.arange(6.0).reshape(2, 3)}
    state = {"name": "sgd", "lr": 0.1}
    ckpt.save_checkpoint(path, params, state, {"step": 1})

    class Boom(Exception):
        pass

    def failing_write(f):
        f.write(b"half a checkpoint")
        raise Boom

    with pytest.raises(Boom):
        ckpt.atomic_write(path, failing_write)
    loaded, loaded_state, meta = ckpt.load_checkpoint(path)
    np.testing.assert_array_equal(loaded["W"], params["W"])
    assert loaded_state == state and meta["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary left


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="task: expected one of"):
        TrainConfig(task="cifar")
    with pytest.raises(ValueError, match="lr: expected a positive learning rate, got -1"):
        TrainConfig(lr=-1)
    with pytest.raises(ValueError, match="lr_end: expected a positive learning rate, got 0"):
        TrainConfig(lr_end=0)
    with pytest.raises(ValueError, match="bn_convention: expected 'tensorflow' or 'pytorch'"):
        TrainConfig(task="mnist", model="cnn", bn_convention="keras")
    assert (
        TrainConfig(task="mnist", model="cnn", lr_end=1e-4, bn_convention="pytorch").label()
        == "cnn +BN (pytorch) lr=0.01->0.0001 cost=stable"
    )
    assert (
        TrainConfig(cell="gru", cell_options={"reset_after": True}, lr=0.001).label()
        == "gru reset_after=True lr=0.001"
    )


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "minirnn", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def run_main(capsys, *args):
    """The same command run in this process (from the current directory): a fresh
    interpreter per command costs seconds, and run_cli's first call shows that
    ``python -m minirnn`` starts."""
    from minirnn import cli

    try:
        code = cli.main(list(args))
    except SystemExit as stop:  # argparse's own usage errors
        code = stop.code
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


@pytest.mark.slow
def test_cli_train_eval_plot_end_to_end(tmp_path, monkeypatch, capsys):
    common = ["--limit", "200", "--hidden", "8", "--quiet"]
    res = run_cli("train", *common, "--out", "a", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "test accuracy" in res.stdout
    run = tmp_path / "a"
    assert {"config.json", "metrics.jsonl", "checkpoint.npz", "curves.png"} <= {
        p.name for p in run.iterdir()
    }
    test_record = json.loads((run / METRICS).read_text().splitlines()[-1])
    assert test_record["split"] == "test"
    assert f"test accuracy {test_record['accuracy']:.4f}" in res.stdout

    monkeypatch.chdir(tmp_path)
    res = run_main(capsys, "eval", "a")
    assert res.returncode == 0, res.stderr
    expected = f"test: loss {test_record['loss']:.4f}, accuracy {test_record['accuracy']:.4f}"
    assert expected in res.stdout

    res = run_main(
        capsys, "train", *common, "--cell", "gru", "--cell-option", "reset_after=true", "--out", "b"
    )
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "b" / "config.json").read_text())["cell_options"] == {
        "reset_after": True
    }
    res = run_main(capsys, "plot", "a", "b", "-o", "both.png")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "both.png").stat().st_size > 10_000

    res = run_main(capsys, "train", "--lr", "-1")
    assert res.returncode == 2 and "lr: expected a positive learning rate" in res.stderr
    res = run_main(
        capsys, "train", "--task", "sine", "--limit", "50", "--hidden", "4", "--quiet", "--out", "s"
    )
    assert res.returncode == 0, res.stderr
    assert "test mse" in res.stdout


def test_resuming_a_finished_run_keeps_one_test_record(tmp_path):
    config = TrainConfig(**dict(QUICK, epochs=1))
    train(config, tmp_path, progress=False, print_fn=lambda *a: None)
    config.epochs = 2
    train(config, tmp_path, resume=True, progress=False, print_fn=lambda *a: None)
    records = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "test"] == [20]
    assert [r["step"] for r in records if r["split"] == "val"] == [10, 20]


@pytest.mark.slow
def test_cli_trains_the_cnn_on_idx_files_and_on_a_kaggle_csv(tmp_path, monkeypatch, capsys):
    from minirnn.data import load_mnist

    (x, y), _ = load_mnist()
    rows = ["label," + ",".join(f"pixel{i}" for i in range(784))]
    rows += [
        f"{label}," + ",".join(map(str, image.ravel())) for image, label in zip(x[:300], y[:300])
    ]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    common = [
        "--task",
        "mnist",
        "--model",
        "cnn",
        "--limit",
        "200",
        "--batch-size",
        "50",
        "--quiet",
    ]
    monkeypatch.chdir(tmp_path)
    res = run_main(capsys, "train", *common, "--out", "idx")
    assert res.returncode == 0, res.stderr
    assert "test accuracy" in res.stdout
    res = run_main(
        capsys,
        "train",
        *common,
        "--kaggle-csv",
        "train.csv",
        "--no-batchnorm",
        "--cost",
        "clipped",
        "--raw-pixels",
        "--out",
        "csv",
    )
    assert res.returncode == 0, res.stderr
    config = json.loads((tmp_path / "csv" / "config.json").read_text())
    assert (config["batchnorm"], config["cost"], config["raw_pixels"]) == (False, "clipped", True)
    # 10% of the 300 CSV rows are held out: 30 validation (= test) examples
    assert "test accuracy" in res.stdout
    records = [json.loads(line) for line in (tmp_path / "csv" / METRICS).read_text().splitlines()]
    assert [r["split"] for r in records][-2:] == ["val", "test"]
    res = run_main(capsys, "train", "--task", "mnist", "--limit", "10")
    assert res.returncode == 2 and "cannot read task 'mnist'" in res.stderr
