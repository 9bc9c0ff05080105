"""Command-line mistakes end in one line ``error: ...`` and exit status 2.

Each case runs ``minirnn.cli.main`` in this process on tiny data. The line names
the file or option and what was expected, no traceback is printed, and a run
folder that was there before is left byte for byte as it was. A bug (any other
exception) still raises.
"""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import minirnn.data.mnist as mnist_module
from minirnn import cli
from minirnn.cells import CELLS
from minirnn.data import KAGGLE_PIXEL_COLUMNS, MNIST_FILES

TINY_RUN = [
    "--task",
    "sine",
    "--hidden",
    "3",
    "--limit",
    "8",
    "--batch-size",
    "4",
    "--max-steps",
    "1",
    "--quiet",
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished run folder, trained once for all tests here (copy it before use)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert cli.main(["train", *TINY_RUN, "--out", str(run)]) == 0
    return run


@pytest.fixture
def run(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def snapshot(folder):
    """Every file in ``folder`` (names and bytes), to compare before and after."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def user_error(capsys, argv, *words):
    """Run the command line; check the exit status and the one line it prints;
    return that line."""
    capsys.readouterr()
    assert cli.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for word in words:
        assert str(word) in lines[0], (word, lines[0])
    return lines[0]


def write_kaggle_csv(path, header, rows):
    path.write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n")
    return path


TRAIN_HEADER = ["label", *KAGGLE_PIXEL_COLUMNS]


# ---------------------------------------------------------------- options


def test_unknown_cell_option_is_named_with_the_options_the_cell_accepts(capsys, run):
    before = snapshot(run)
    line = user_error(
        capsys,
        ["train", *TINY_RUN, "--cell", "lnlstm", "--cell-option", "flavor=paper", "--out", run],
        "flavor",
        "flavour",
    )
    assert "unknown option" in line
    assert snapshot(run) == before


@pytest.mark.parametrize("name", ["bnlstm", "lnlstm", "lngru", "lstm"])
def test_a_cells_forward_names_the_options_it_accepts(name):
    cell = CELLS[name]
    params = cell.init(2, 3, rng=np.random.default_rng(0), dtype=np.float64)
    with pytest.raises(TypeError) as error:
        cell.forward(params, np.zeros((1, 2, 2)), rng=np.random.default_rng(0), flavor="paper")
    message = str(error.value)
    assert "['flavor']" in message and "none" not in message
    for option in ("eps", "recurrent_dropout") if name != "lstm" else ("recurrent_dropout",):
        assert f"'{option}'" in message


@pytest.mark.parametrize(
    "cell, option, words",
    [
        ("lstm", "forget_bias=abc", ["forget_bias", "a number", "'abc'"]),
        ("gru", "reset_after=1", ["reset_after", "true or false"]),
        ("lstm", "recurrent_dropout=2", ["recurrent_dropout", "0 <= p < 1", "got 2"]),
        ("bnlstm", "eps=-1", ["eps", "> 0", "-1"]),
        ("vcrnn", "threshold=sharp", ["threshold", "'soft'", "'sharp'"]),
        ("lnlstm", "eps=-1", ["{'eps': -1}", "NaN or infinity"]),  # the cell computes NaN
    ],
)
def test_bad_value_of_a_cell_option(capsys, tmp_path, cell, option, words):
    user_error(
        capsys,
        ["train", *TINY_RUN, "--cell", cell, "--cell-option", option, "--out", tmp_path / "new"],
        cell,
        *words,
    )
    assert not (tmp_path / "new").exists()


def test_bad_sharpness_schedule(capsys, tmp_path):
    user_error(
        capsys,
        [
            "train",
            *TINY_RUN,
            "--cell",
            "vcrnn",
            "--sharpness-schedule",
            "1",
            "twenty",
            "100",
            "--out",
            tmp_path / "new",
        ],
        "--sharpness-schedule",
        "twenty",
    )
    user_error(
        capsys,
        [
            "train",
            *TINY_RUN,
            "--cell",
            "vcrnn",
            "--sharpness-schedule",
            "1",
            "20",
            "100",
            "cosine",
            "--out",
            tmp_path / "new",
        ],
        "sharpness_schedule",
        "cosine",
    )
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------- run folders


@pytest.mark.parametrize("command", ["eval", "train --resume", "plot"])
def test_a_folder_that_is_not_a_run(capsys, tmp_path, command):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not a run")
    before = snapshot(folder)
    user_error(capsys, [*command.split(), folder], folder, "config.json")
    user_error(
        capsys, [*command.split(), tmp_path / "missing"], tmp_path / "missing", "does not exist"
    )
    assert snapshot(folder) == before


@pytest.mark.parametrize("command", ["eval", "train --resume"])
def test_truncated_checkpoint(capsys, run, command):
    checkpoint = run / "checkpoint.npz"
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    before = snapshot(run)
    user_error(capsys, [*command.split(), run], checkpoint, "cut short")
    assert snapshot(run) == before


@pytest.mark.parametrize("command", ["eval", "train --resume"])
def test_missing_checkpoint(capsys, run, command):
    (run / "checkpoint.npz").unlink()
    before = snapshot(run)
    user_error(capsys, [*command.split(), run], run / "checkpoint.npz")
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "config, words",
    [
        ('{"task": "sine", "hidden": 3,', ["not JSON"]),  # cut short
        ('["sine"]', ["JSON object"]),
        ('{"task": "sine", "hidden": "three"}', ["hidden", "'three'"]),
        ('{"task": "sine", "lr": -1}', ["lr", "-1"]),
        ('{"task": "sine", "cell": "lstm", "cell_options": {"flavor": 1}}', ["flavor"]),
        (
            '{"task": "sine", "hidden": 3, "cell_options": {"forget_bias": "abc"}}',
            ["forget_bias", "'abc'"],
        ),
        (
            '{"task": "sine", "hidden": 3, "cell_options": {"recurrent_dropout": 2}}',
            ["recurrent_dropout", "0 <= p < 1"],
        ),
    ],
)
def test_resume_with_a_broken_config(capsys, run, config, words):
    (run / "config.json").write_text(config)
    before = snapshot(run)
    user_error(capsys, ["train", "--resume", run], run / "config.json", *words)
    user_error(capsys, ["eval", run], run / "config.json", *words)
    assert snapshot(run) == before


def test_resume_with_a_checkpoint_of_another_model(capsys, run):
    config = run / "config.json"
    config.write_text(config.read_text().replace('"hidden": 3', '"hidden": 5'))
    before = snapshot(run)
    user_error(capsys, ["train", "--resume", run], run / "checkpoint.npz", "shapes")
    assert snapshot(run) == before


def test_broken_metrics_log(capsys, run):
    metrics = run / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"split": "train", "st\n')
    before = snapshot(run)
    user_error(capsys, ["train", "--resume", run], metrics, "line")
    user_error(capsys, ["plot", run, "-o", run / "other.png"], metrics, "line")
    assert snapshot(run) == before


# ---------------------------------------------------------------- MNIST files


@pytest.fixture
def no_mnist(monkeypatch, tmp_path):
    """No MNIST anywhere the loader looks, and mirrors that fail at once without a
    network: the repository's data/mnist hidden, an empty user cache, and one mirror
    that is an empty local folder."""
    monkeypatch.setattr(mnist_module, "bundled_mnist_dir", lambda: tmp_path / "no-bundle")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("MINIRNN_DATA", raising=False)
    mirror = tmp_path / "empty-mirror"
    mirror.mkdir()
    monkeypatch.setattr(mnist_module, "DEFAULT_MIRRORS", (mirror.as_uri() + "/",))


def mnist_commands(run, data, out):
    """train on row-MNIST, and eval of a run whose config asks for row-MNIST."""
    config = run / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "task": "row-mnist"}))
    return [
        ["train", "--data", data, "--max-steps", "1", "--quiet", "--out", out],
        ["eval", run, "--data", data],
    ]


def test_mnist_not_found(capsys, run, tmp_path, no_mnist):
    data = tmp_path / "empty"
    data.mkdir()
    for argv in mnist_commands(run, data, tmp_path / "new"):
        line = user_error(
            capsys,
            argv,
            "MNIST not found",
            data,
            "--data",
            "MINIRNN_DATA",
            "empty-mirror",
            *MNIST_FILES,
        )
        assert "does not exist" in line  # the hidden bundle, named as such
    assert not (tmp_path / "new").exists()


def test_mnist_file_altered(capsys, run, tmp_path):
    data = tmp_path / "mnist"
    data.mkdir()
    for name in MNIST_FILES:
        (data / name).write_bytes(b"\x00\x00\x08\x01not the real file")
    labels = "t10k-labels-idx1-ubyte"  # the smallest, read first
    for argv in mnist_commands(run, data, tmp_path / "new"):
        user_error(
            capsys, argv, data / labels, "SHA-256", MNIST_FILES[labels][1], "truncated or altered"
        )
    assert not (tmp_path / "new").exists()


def test_mnist_file_of_another_shape(capsys, run, tmp_path, monkeypatch):
    """Files whose checksums match a table (here a made-up one) but that do not hold
    28x28 images: the check after the checksum."""
    data = tmp_path / "mnist"
    data.mkdir()
    contents = {
        "train-images-idx3-ubyte": bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 27, 0, 0, 0, 27])
        + bytes(2 * 27 * 27),
        "train-labels-idx1-ubyte": bytes([0, 0, 8, 1, 0, 0, 0, 2, 3, 4]),
        "t10k-images-idx3-ubyte": bytes([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28])
        + bytes(28 * 28),
        "t10k-labels-idx1-ubyte": bytes([0, 0, 8, 1, 0, 0, 0, 1, 7]),
    }
    for name, content in contents.items():
        (data / name).write_bytes(content)
    monkeypatch.setattr(
        mnist_module,
        "MNIST_FILES",
        {name: (len(c), hashlib.sha256(c).hexdigest()) for name, c in contents.items()},
    )
    for argv in mnist_commands(run, data, tmp_path / "new"):
        user_error(capsys, argv, data / "train-images-idx3-ubyte", "(N, 28, 28)", "(2, 27, 27)")
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------- Kaggle CSV


@pytest.mark.parametrize(
    "header, rows, words",
    [
        (TRAIN_HEADER, [[1] + [0] * 784, [2, 0, 0]], ["785 integer columns", "line 3 has 3"]),
        (TRAIN_HEADER[:3], [[1, 0, 0]], ["header", "(3 columns)"]),
        (
            TRAIN_HEADER,
            [[1] + [0] * 10 + ["dark"] + [0] * 773],
            ["integer", "line 2", "'dark'", "'pixel10'"],
        ),
    ],
    ids=["short-row", "short-header", "text-in-a-pixel"],
)
def test_bad_kaggle_csv(capsys, run, tmp_path, header, rows, words):
    csv = write_kaggle_csv(tmp_path / "train.csv", header, rows)
    before = snapshot(run)
    user_error(
        capsys,
        [
            "train",
            "--task",
            "mnist",
            "--model",
            "cnn",
            "--kaggle-csv",
            csv,
            "--max-steps",
            "1",
            "--quiet",
            "--out",
            run,
        ],
        csv,
        *words,
    )
    assert snapshot(run) == before


def test_missing_kaggle_csv(capsys, tmp_path):
    csv = tmp_path / "train.csv"
    user_error(
        capsys,
        [
            "train",
            "--task",
            "mnist",
            "--model",
            "cnn",
            "--kaggle-csv",
            csv,
            "--max-steps",
            "1",
            "--quiet",
            "--out",
            tmp_path / "new",
        ],
        csv,
        "no such file",
    )
    assert not (tmp_path / "new").exists()  # a run that cannot start leaves no folder


# ---------------------------------------------------------------- bugs


def test_a_bug_still_raises_with_its_traceback(monkeypatch, run):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in evaluate")

    monkeypatch.setattr("minirnn.train.evaluate", broken)
    with pytest.raises(RuntimeError, match="a bug in evaluate"):
        cli.main(["eval", str(run)])


def test_the_fixture_is_a_run_that_eval_reads(capsys, run):
    assert cli.main(["eval", str(run)]) == 0
    assert "test: loss" in capsys.readouterr().out
    assert Path(run / "checkpoint.npz").exists()
