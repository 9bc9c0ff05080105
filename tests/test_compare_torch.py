"""benchmarks/compare_torch.py: the CNN's PyTorch twin computes what minirnn's CNN
computes, and both modes of the comparison run. Skipped without PyTorch (optional)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "compare_torch.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("compare_torch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("batchnorm", [True, False])
def test_cnn_twin_has_the_same_loss_and_gradients_in_float64(compare, batchnorm):
    errors = compare.check_cnn(torch, batchnorm, batch=3, seed=1)
    keys = (
        {"loss", "0.W", "0.b", "1.gamma", "1.beta", "4.W", "4.b", "5.gamma", "5.beta", "9.W", "9.b"}
        if batchnorm
        else {"loss", "0.W", "0.b", "3.W", "3.b", "7.W", "7.b"}
    )
    assert keys | {f"{k} (random upstream)" for k in keys - {"loss"}} == set(errors)
    for key, error in errors.items():
        assert error < 1e-9, key


def test_the_twin_differs_when_a_parameter_does(compare, monkeypatch):
    # the check can fail: a twin given one weight wrong is caught
    real = compare.copy_cnn_params

    def off_by_a_bit(torch, model, net):
        real(torch, model, net)
        with torch.no_grad():
            net[7].weight[0, 0] += 1e-3

    monkeypatch.setattr(compare, "copy_cnn_params", off_by_a_bit)
    assert max(compare.check_cnn(torch, False, batch=3).values()) > 1e-6


@pytest.mark.parametrize("mode", [[], ["--torch-defaults"]], ids=["one-thread", "defaults"])
def test_both_modes_print_a_table_and_write_their_records(compare, mode, tmp_path, capsys):
    assert (
        compare.main(
            [
                *mode,
                "--cases",
                "lstm",
                "cnn",
                "--repeats",
                "1",
                "--batch",
                "4",
                "--hidden",
                "6",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "ratio" in table and "lstm" in table and "cnn" in table
    stem = "torch_defaults" if mode else "one_thread"
    saved = json.loads((tmp_path / f"{stem}.json").read_text())
    assert (tmp_path / f"{stem}.txt").read_text().strip() == table.strip()
    lstm, cnn = saved["runs"][0]
    assert (lstm["name"], lstm["batch"], lstm["hidden"], cnn["batch"]) == ("lstm", 4, 6, 4)
    for r in (lstm, cnn):
        assert r["minirnn_ms"] > 0 and r["torch_ms"] > 0
        assert r["ratio"] == pytest.approx(r["minirnn_ms"] / r["torch_ms"])
    if mode:
        code = "import torch; print(torch.get_num_threads())"
        default = subprocess.run(
            [sys.executable, "-c", code],
            env=compare.default_env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert lstm["torch_threads"] == int(default)  # PyTorch's default
        # the tiny LSTM runs whole (MIN_SHARD_FLOP), the CNN is split
        assert lstm["shards"] == 1 and cnn["shards"] == 4
    else:
        assert lstm["torch_threads"] == lstm["minirnn_threads"] == 1


def test_several_runs_end_with_each_case_s_median_and_range(compare, tmp_path, capsys):
    args = ["--cases", "rnn", "lstm", "--repeats", "1", "--batch", "3", "--hidden", "5"]
    assert compare.main([*args, "--runs", "3", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    runs = json.loads((tmp_path / "one_thread.json").read_text())["runs"]
    assert len(runs) == 3 and [r["name"] for r in runs[2]] == ["rnn", "lstm"]
    assert (tmp_path / "one_thread.txt").read_text().strip() == out.strip()
    summary = out.strip().split("\n\n")[-1].splitlines()
    assert summary[0].startswith("over 3 runs")
    for line, k in zip(summary[1:], range(2), strict=True):
        ratios = sorted(run[k]["ratio"] for run in runs)
        assert line.split()[0] == runs[0][k]["name"]
        assert f"{ratios[1]:5.2f}x ({ratios[0]:.2f}-{ratios[2]:.2f})" in line
    with pytest.raises(SystemExit):
        compare.main([*args, "--runs", "0"])
