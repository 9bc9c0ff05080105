"""A run folder: a run's settings, its metrics log, its checkpoint.

A run folder holds

    config.json      the run's settings (a ``TrainConfig``)
    metrics.jsonl    one JSON record per line: ``split`` "train" every ``log_every``
                     steps (running means since the last record), "val" after
                     every epoch, "test" at the end; with step, epoch, loss,
                     accuracy (None for regression), lr and seconds
    checkpoint.npz   parameters, optimizer state, generator state, position
                     (``minirnn/checkpoint.py``); written after every epoch and
                     on Ctrl-C
    curves.png       loss and accuracy against steps (``minirnn/plot.py``)

``minirnn.train`` writes run folders; ``minirnn.plot`` and ``python -m minirnn
eval`` read them; all three go through this module. What is read is checked: a
folder without a config.json, a config.json that is not JSON or holds a setting
no run can have, a metrics line that is not a record, each raises a
``minirnn.errors.UserError`` that names the file.
"""

import inspect
import json
import numbers
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from .cells import CELLS, get_cell, split_options
from .errors import FileFormatError, MissingFileError, OptionError
from .optim import sharpness_at
from .tasks import TASKS

CONFIG, METRICS, CHECKPOINT, CURVES = "config.json", "metrics.jsonl", "checkpoint.npz", "curves.png"

# The Python values a setting of each annotated type may take (a bool is not a number here).
_ACCEPTED = {
    int: numbers.Integral,
    float: numbers.Real,
    str: str,
    bool: bool,
    dict: dict,
    list: list,
}


@dataclass
class TrainConfig:
    """Every setting of a run. The defaults are the base model of the Qiita BN-LSTM
    note: an LSTM with 100 units reading MNIST row by row, batch 64, learning rate
    0.01 (the note does not show its optimizer; Adam is our choice), one epoch.

    A setting no run can have raises ``OptionError`` (a ``ValueError``) naming it."""

    task: str = "row-mnist"
    model: str = "rnn"  # "rnn": a recurrent network; "cnn": the Qiita CNN note's
    cell: str = "lstm"
    cell_options: dict = field(default_factory=dict)
    hidden: int = 100
    layers: int = 1
    dropout: float = 0.0
    output_batchnorm: bool = False  # batch norm on recurrent outputs (Stack Overflow question)
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 0.01
    lr_end: float = None  # decay the learning rate geometrically to this at the last step
    clip: float = None
    epochs: int = 1
    seed: int = 0
    limit: int = None
    log_every: int = 20
    blas_threads: int = 1
    max_steps: int = None  # stop after this many steps in all (then evaluate and test)
    eval_every: int = None  # also evaluate on validation data every N steps
    eval_limit: int = None  # ... on its first N examples (the end of an epoch uses all)
    sharpness_schedule: list = None  # VC cells: [start, end, steps, "linear"|"exponential"]
    batchnorm: bool = True  # CNN: batch norm after each convolution
    bn_convention: str = "tensorflow"  # CNN: its momentum and eps ("tensorflow" or "pytorch")
    cost: str = "stable"  # CNN: "stable" log-softmax or the Qiita note's "clipped"
    raw_pixels: bool = False  # mnist task: pixels 0..255, as the Qiita CNN note feeds them
    kaggle_csv: str = None  # mnist task: read Kaggle's train.csv instead

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            if not isinstance(value, _ACCEPTED[f.type]) or (
                isinstance(value, bool) and f.type is not bool
            ):
                raise OptionError(
                    f"{f.name}: expected a value of type {f.type.__name__}, got {value!r}"
                )
        if self.task not in TASKS:
            raise OptionError(f"task: expected one of {list(TASKS)}, got {self.task!r}")
        if self.model not in ("rnn", "cnn"):
            raise OptionError(f"model: expected 'rnn' or 'cnn', got {self.model!r}")
        if (self.model == "cnn") != (self.task == "mnist"):
            raise OptionError(
                f"model {self.model!r} cannot read task {self.task!r}: the CNN "
                f"reads images (--task mnist --model cnn), recurrent models "
                f"read sequences (row-mnist, pixel-mnist, permuted-mnist, sine)"
            )
        if self.cell not in CELLS:
            raise OptionError(f"cell: expected one of {sorted(CELLS)}, got {self.cell!r}")
        try:
            split_options(get_cell(self.cell), self.cell_options)
        except TypeError as err:  # an option the cell does not have
            raise OptionError(str(err)) from None
        _check_option_types(self.cell, self.cell_options)
        for name in ("hidden", "layers", "batch_size", "epochs", "log_every"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.lr <= 0:
            raise OptionError(f"lr: expected a positive learning rate, got {self.lr}")
        if self.bn_convention not in ("tensorflow", "pytorch"):
            raise OptionError(
                f"bn_convention: expected 'tensorflow' or 'pytorch', got {self.bn_convention!r}"
            )
        if self.lr_end is not None and self.lr_end <= 0:
            raise OptionError(f"lr_end: expected a positive learning rate, got {self.lr_end}")
        if self.clip is not None and self.clip <= 0:
            raise OptionError(f"clip: expected a positive gradient norm, got {self.clip}")
        for name in ("max_steps", "eval_every", "eval_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise OptionError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.sharpness_schedule is not None:
            _check_schedule(self.sharpness_schedule)
        if self.limit is not None and self.limit < 1:
            raise OptionError(f"limit: expected a positive number of examples, got {self.limit}")

    @classmethod
    def from_dict(cls, d):
        """The settings in ``d``; keys that are not settings are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def label(self):
        """A short name for plots: the cell, its options, and what differs from the defaults."""
        default = TrainConfig(task=self.task, model=self.model)
        if self.model == "cnn":
            parts = [
                "cnn" + (f" +BN ({self.bn_convention})" if self.batchnorm else " no BN"),
                f"lr={self.lr}" + (f"->{self.lr_end}" if self.lr_end else ""),
                f"cost={self.cost}",
            ] + (["raw pixels"] if self.raw_pixels else [])
            return " ".join(parts)
        parts = [self.cell] + [f"{k}={v}" for k, v in sorted(self.cell_options.items())]
        for name in (
            "hidden",
            "layers",
            "dropout",
            "output_batchnorm",
            "optimizer",
            "lr",
            "lr_end",
            "clip",
            "batch_size",
        ):
            if getattr(self, name) != getattr(default, name):
                parts.append(f"{name}={getattr(self, name)}")
        return " ".join(parts)


def _check_schedule(schedule):
    """[start, end, steps] or [start, end, steps, kind], as ``optim.sharpness_at`` takes them."""
    expected = "[START, END, STEPS] or [START, END, STEPS, 'linear'|'exponential']"
    if len(schedule) not in (3, 4) or not all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in schedule[:3]
    ):
        raise OptionError(f"sharpness_schedule: expected {expected}, got {schedule!r}")
    start, end, steps, *kind = schedule
    try:
        sharpness_at(0, start, end, steps, *kind)
    except ValueError as err:  # a value sharpness_at rejects, with its reason
        raise OptionError(f"sharpness_schedule: {err}") from None


def _option_defaults(cell):
    """{option: default} for the options ``cell.init`` and ``cell.forward`` declare
    with a default (the variable-computation cells take theirs as ``**options``)."""
    defaults = {}
    for function in (cell.init, cell.forward):
        for p in inspect.signature(function).parameters.values():
            if p.kind is p.KEYWORD_ONLY and p.default is not p.empty:
                defaults.setdefault(p.name, p.default)
    return defaults


def _check_option_types(cell_name, options):
    """Each option value of the kind its default has: a number for a number, true or
    false for a flag, a string for a word (``--cell-option forget_bias=abc`` gives the
    string "abc"). The ranges are the cell's to check (``check_cell_options``)."""
    defaults = _option_defaults(get_cell(cell_name))
    for key, value in options.items():
        default = defaults.get(key)
        if isinstance(default, bool):
            ok, what = isinstance(value, bool), "true or false"
        elif isinstance(default, numbers.Real):
            ok, what = isinstance(value, numbers.Real) and not isinstance(value, bool), "a number"
        elif isinstance(default, str):
            ok, what = isinstance(value, str), "a string"
        else:  # no default, or None: the cell checks it
            continue
        if not ok:
            raise OptionError(
                f"{cell_name} option {key}: expected {what} (its default is "
                f"{default!r}), got {value!r}"
            )


def check_cell_options(config, source=None):
    """Run ``config``'s cell once with its options, before a run trains or evaluates:
    ``init`` for one input and one unit, and a training forward over a zero sequence
    of two examples and one step. Nothing in these two calls comes from the user but
    the options, so a ValueError or TypeError they raise is about an option's value
    (``recurrent_dropout=2``, ``eps=-1``); it becomes an ``OptionError`` that names
    the cell, the options and the cell's reason. So do outputs that are not finite
    (layer norm with ``eps <= 0`` divides by zero on a constant row).
    ``source``: the config.json the options came from, named in the message
    (a ``FileFormatError`` then)."""
    if not config.cell_options:
        return
    cell = get_cell(config.cell)
    init_options, forward_options = split_options(cell, config.cell_options)
    rng = np.random.default_rng(0)
    problem = None
    try:
        params = cell.init(1, 1, rng=rng, **init_options)
        hs, _ = cell.forward(
            params, np.zeros((2, 1, 1), dtype=params["W"].dtype), rng=rng, **forward_options
        )
    except (ValueError, TypeError) as err:
        problem = str(err)
    else:
        if not np.all(np.isfinite(hs)):
            problem = (
                "its forward pass on a zero input gives NaN or infinity; expected "
                "option values it can compute with"
            )
    if problem is None:
        return
    message = f"{config.cell} with options {config.cell_options}: {problem}"
    if source is not None:
        raise FileFormatError(f"{source}: {message}")
    raise OptionError(message)


def write_config(run_dir, config):
    """Write ``config`` into the run folder's config.json."""
    (Path(run_dir) / CONFIG).write_text(json.dumps(asdict(config), indent=2) + "\n")


def read_config(run_dir):
    """The ``TrainConfig`` of the run in ``run_dir``; MissingFileError when the folder
    is not a run folder, FileFormatError when its config.json cannot be a run's."""
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        what = "does not exist" if not Path(run_dir).exists() else f"has no {CONFIG}"
        raise MissingFileError(
            f"{run_dir}: expected a run folder (one with a {CONFIG} "
            f"that python -m minirnn train writes), but it {what}"
        )
    try:
        settings = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise FileFormatError(
            f"{path}: expected the settings of a run as JSON, got a file that is not JSON ({err})"
        ) from None
    if not isinstance(settings, dict):
        raise FileFormatError(
            f"{path}: expected a JSON object of settings, got a {type(settings).__name__}"
        )
    try:
        return TrainConfig.from_dict(settings)
    except OptionError as err:
        raise FileFormatError(f"{path}: {err}") from None


def _read_records(path):
    """The JSON records of a metrics log, one per non-empty line."""
    records = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise FileFormatError(
                f"{path}, line {number}: expected a JSON record, got {line[:40]!r} ({err.msg})"
            ) from None
        if not (isinstance(record, dict) and "split" in record and "step" in record):
            raise FileFormatError(
                f"{path}, line {number}: expected a record with a "
                f"'split' and a 'step', got {line[:40]!r}"
            )
        records.append(record)
    return records


def read_metrics(run_dir):
    """The records of the run's metrics.jsonl, in the order they were written."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        raise MissingFileError(
            f"{run_dir}: expected a run folder with a {METRICS}, but it has none"
        )
    return _read_records(path)


class MetricsLog:
    """Appends JSON lines; on resume, drops what was logged after the checkpoint."""

    def __init__(self, path, keep_until_step=None):
        self.path = Path(path)
        if keep_until_step is not None and self.path.exists():
            # A test record belongs to the end of a run: a resumed run writes its own.
            kept = [
                r
                for r in _read_records(self.path)
                if r["step"] <= keep_until_step and r["split"] != "test"
            ]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def write(self, **record):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
