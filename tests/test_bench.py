"""python -m minirnn bench: the records' keys and values, the CNN's floor, the CLI."""

import json
import platform
import subprocess
import sys

import numpy as np
import pytest
from numba.core import config as numba_config

from minirnn import bench, cli
from minirnn.nn import CNNClassifier

# What the bench command does by default where it can: keep freed memory (glibc's
# mallopt) and flush subnormals to zero (x86-64's MXCSR, in compiled code).
KEEPS_FREED_MEMORY = platform.libc_ver()[0] == "glibc"
FLUSHES_SUBNORMALS = (
    platform.machine().lower() in ("x86_64", "amd64") and not numba_config.DISABLE_JIT
)
TINY = [
    "bench",
    "--cells",
    "rnn",
    "--json",
    "--repeats",
    "1",
    "--batch",
    "2",
    "--time",
    "3",
    "--input",
    "2",
    "--hidden",
    "5",
]

KEYS = {
    "cell",
    "batch",
    "time",
    "input",
    "hidden",
    "dtype",
    "forward_ms",
    "train_step_ms",
    "forward_backward_ms",
    "first_call_ms",
    "sequences_per_s",
    "floor_ms",
    "matmul_gflops",
    "step_gflop",
}


def test_run_gives_a_record_per_cell_case_and_for_the_cnn_with_and_without_batch_norm():
    records = bench.run(["gru", "cnn"], batch=3, time_steps=2, input_size=2, hidden=4, repeats=1)
    assert [(r["cell"], r["options"]) for r in records] == [
        ("gru", {"reset_after": False}),
        ("gru", {"reset_after": True}),
        ("cnn", {"batchnorm": True}),
        ("cnn", {"batchnorm": False}),
    ]
    for r in records:
        assert KEYS <= set(r), KEYS - set(r)
        assert r["dtype"] == "float32"
        for key in ("forward_ms", "forward_backward_ms", "train_step_ms", "floor_ms"):
            assert r[key] > 0, key
    gru, cnn = records[0], records[2]
    assert (gru["batch"], gru["time"], gru["input"], gru["hidden"]) == (3, 2, 2, 4)
    assert (cnn["batch"], cnn["time"], cnn["input"], cnn["hidden"]) == (100, None, 784, None)
    # the floor is the step's products over the measured rate, for every record
    for r in records:
        assert r["floor_ms"] == pytest.approx(r["step_gflop"] / r["matmul_gflops"] * 1e3)


def test_cnn_flops_by_hand():
    # conv1: 26*26 outputs * 32 filters * 9 taps; conv2: 11*11 * 64 * (32*9);
    # dense: 1600 * 10; two flops a multiply-add, three products a training step
    model = CNNClassifier(rng=np.random.default_rng(0))
    x = np.zeros((2, 1, 28, 28), np.float32)
    per_image = 2 * (26 * 26 * 32 * 9 + 11 * 11 * 64 * 32 * 9 + 1600 * 10)
    assert bench.cnn_step_flops(model, x) == 3 * 2 * per_image


@pytest.mark.slow
def test_cli_json_has_the_issue_keys():
    out = subprocess.run(
        [sys.executable, "-m", "minirnn", *TINY],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    (record,) = json.loads(out)
    assert {
        "cell",
        "batch",
        "time",
        "input",
        "hidden",
        "dtype",
        "forward_ms",
        "train_step_ms",
    } <= set(record)
    assert (record["cell"], record["batch"], record["time"], record["input"], record["hidden"]) == (
        "rnn",
        2,
        3,
        2,
        5,
    )
    assert record["freed_memory_kept"] is KEEPS_FREED_MEMORY
    assert record["subnormals_flushed"] is FLUSHES_SUBNORMALS


def test_cli_flags_switch_the_memory_and_subnormal_settings_off(capsys):
    assert cli.main([*TINY, "--return-freed-memory", "--keep-subnormals"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["freed_memory_kept"] is False
    assert record["subnormals_flushed"] is False


TINY_SWEEP = {
    "hidden": {"values": (3, 5), "fixed": {"time_steps": 2, "batch": 2}},
    "time": {"values": (2, 4), "fixed": {"hidden": 3, "batch": 2}},
    "batch": {"values": (1, 3), "fixed": {"time_steps": 2, "hidden": 3}},
}


def test_sweep_varies_one_size_at_a_time_and_draws_a_panel_per_size(tmp_path, capsys):
    import matplotlib.image

    bench.bench_sweep(tmp_path / "scaling.png", axes=TINY_SWEEP, repeats=1, with_torch=False)
    table = capsys.readouterr().out
    assert "hidden" in table and "wrote" in table
    image = matplotlib.image.imread(tmp_path / "scaling.png")
    assert image.shape[1] > 2.5 * image.shape[0]  # three panels side by side
    records = bench.sweep(TINY_SWEEP, repeats=1, with_torch=False)
    assert [(r["axis"], r["value"]) for r in records] == [
        ("hidden", 3),
        ("hidden", 5),
        ("time", 2),
        ("time", 4),
        ("batch", 1),
        ("batch", 3),
    ]
    by_point = {(r["axis"], r["value"]): r for r in records}
    assert (
        by_point["time", 4]["time_steps"],
        by_point["time", 4]["hidden"],
        by_point["time", 4]["batch"],
    ) == (4, 3, 2)
    for r in records:
        assert r["minirnn_ms"] > 0 and r["torch_ms"] is None
        flops = bench.step_flops("lstm", r["batch"], r["time_steps"], r["input_size"], r["hidden"])
        assert r["floor_ms"] == pytest.approx(flops / (r["matmul_gflops"] * 1e9) * 1e3)


def test_sweep_times_pytorch_beside_when_it_is_installed(tmp_path):
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    (record,) = bench.sweep(
        {"batch": {"values": (2,), "fixed": {"time_steps": 2, "hidden": 3}}}, repeats=1
    )
    assert record["torch_ms"] > 0 and record["torch_version"] == torch.__version__
    assert torch.get_num_threads() == threads  # restored after the sweep
    bench.draw_sweep([record], tmp_path / "one.png")
    assert (tmp_path / "one.png").stat().st_size > 0


def test_bench_help_states_each_default_once(capsys):
    from minirnn.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: all)" in text and "(default: None)" not in text
    assert "--sweep" in text
