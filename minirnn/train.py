"""The training loop: batches, steps, evaluation, checkpoints, the metrics log.

A run folder holds

    config.json      the run's settings (a ``TrainConfig``)
    metrics.jsonl    one JSON record per line: ``split`` "train" every ``log_every``
                     steps (running means since the last record), "val" after
                     every epoch, "test" at the end; with step, epoch, loss,
                     accuracy (None for regression), lr and seconds
    checkpoint.npz   parameters, optimizer state, generator state, position;
                     written atomically after every epoch and on Ctrl-C
    curves.png       loss and accuracy against steps (``minirnn.plot``)

Reproducibility: the order of examples in epoch ``e`` is drawn from
``default_rng([seed, e])`` and everything else random (initialisation, dropout
masks) comes from one generator whose state is checkpointed. So a run stopped
at any step and resumed ends with bit-identical parameters to a run that never
stopped (on the same machine, with the same BLAS thread count).
"""
import json
import math
import signal
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from .checkpoint import load_checkpoint, save_checkpoint
from .nn import SequenceClassifier, SequenceRegressor
from .optim import clip_grad_norm, exponential_lr, make_optimizer
from .tasks import TASKS, load_task
from .memory import keep_freed_memory
from .subnormals import flush_subnormals
from .threads import blas_threads

CONFIG, METRICS, CHECKPOINT, CURVES = "config.json", "metrics.jsonl", "checkpoint.npz", "curves.png"
EVAL_BATCH = 1000


@dataclass
class TrainConfig:
    """Every setting of a run. The defaults are the base model of the Qiita BN-LSTM
    note: an LSTM with 100 units reading MNIST row by row, batch 64, learning rate
    0.01 (the note does not show its optimizer; Adam is our choice), one epoch."""
    task: str = "row-mnist"
    model: str = "rnn"          # "rnn": a recurrent network; "cnn": the Qiita CNN note's
    cell: str = "lstm"
    cell_options: dict = field(default_factory=dict)
    hidden: int = 100
    layers: int = 1
    dropout: float = 0.0
    output_batchnorm: bool = False      # batch norm on recurrent outputs (Stack Overflow question)
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 0.01
    lr_end: float = None        # decay the learning rate geometrically to this at the last step
    clip: float = None
    epochs: int = 1
    seed: int = 0
    limit: int = None
    log_every: int = 20
    blas_threads: int = 1
    max_steps: int = None       # stop after this many steps in all (then evaluate and test)
    eval_every: int = None      # also evaluate on validation data every N steps
    eval_limit: int = None      # ... on its first N examples (the end of an epoch uses all)
    sharpness_schedule: list = None   # VC cells: [start, end, steps, "linear"|"exponential"]
    batchnorm: bool = True      # CNN: batch norm after each convolution
    bn_convention: str = "tensorflow"   # CNN: its momentum and eps ("tensorflow" or "pytorch")
    cost: str = "stable"        # CNN: "stable" log-softmax or the Qiita note's "clipped"
    raw_pixels: bool = False    # mnist task: pixels 0..255, as the Qiita CNN note feeds them
    kaggle_csv: str = None      # mnist task: read Kaggle's train.csv instead

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task: expected one of {list(TASKS)}, got {self.task!r}")
        if self.model not in ("rnn", "cnn"):
            raise ValueError(f"model: expected 'rnn' or 'cnn', got {self.model!r}")
        if (self.model == "cnn") != (self.task == "mnist"):
            raise ValueError(f"model {self.model!r} cannot read task {self.task!r}: the CNN "
                             f"reads images (--task mnist --model cnn), recurrent models "
                             f"read sequences (row-mnist, pixel-mnist, permuted-mnist, sine)")
        for name in ("hidden", "layers", "batch_size", "epochs", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr: expected a positive learning rate, got {self.lr}")
        if self.bn_convention not in ("tensorflow", "pytorch"):
            raise ValueError(f"bn_convention: expected 'tensorflow' or 'pytorch', "
                             f"got {self.bn_convention!r}")
        if self.lr_end is not None and self.lr_end <= 0:
            raise ValueError(f"lr_end: expected a positive learning rate, got {self.lr_end}")
        if self.clip is not None and self.clip <= 0:
            raise ValueError(f"clip: expected a positive gradient norm, got {self.clip}")
        for name in ("max_steps", "eval_every", "eval_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)}")
        if self.sharpness_schedule is not None:
            from .cells._vc_mask import sharpness_at
            start, end, steps, *kind = self.sharpness_schedule
            sharpness_at(0, start, end, steps, *kind)        # raises on bad values
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit: expected a positive number of examples, got {self.limit}")

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def label(self):
        """A short name for plots: the cell, its options, and what differs from the defaults."""
        default = TrainConfig(task=self.task, model=self.model)
        if self.model == "cnn":
            parts = ["cnn" + (f" +BN ({self.bn_convention})" if self.batchnorm else " no BN"),
                     f"lr={self.lr}" + (f"->{self.lr_end}" if self.lr_end else ""),
                     f"cost={self.cost}"] + (["raw pixels"] if self.raw_pixels else [])
            return " ".join(parts)
        parts = [self.cell] + [f"{k}={v}" for k, v in sorted(self.cell_options.items())]
        for name in ("hidden", "layers", "dropout", "output_batchnorm", "optimizer", "lr",
                     "lr_end", "clip", "batch_size"):
            if getattr(self, name) != getattr(default, name):
                parts.append(f"{name}={getattr(self, name)}")
        return " ".join(parts)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def build_model(config, task, rng):
    if config.model == "cnn":
        from .nn import CNNClassifier
        return CNNClassifier(batchnorm=config.batchnorm, rng=rng, cost=config.cost,
                             bn_convention=config.bn_convention)
    cls = SequenceClassifier if task.kind == "classification" else SequenceRegressor
    return cls(config.cell, task.input_size, config.hidden, task.n_outputs,
               layers=config.layers, rng=rng, dropout=config.dropout,
               output_batchnorm=config.output_batchnorm, **config.cell_options)


def set_sharpness(model, schedule, step):
    """Give every variable-computation layer the sharpness lambda of ``step``."""
    from .cells._vc_mask import sharpness_at
    from .nn import Recurrent
    start, end, steps, *kind = schedule
    value = sharpness_at(step, start, end, steps, *kind)
    for layer in model.layers:
        if isinstance(layer, Recurrent) and "sharpness" in layer.cell.FORWARD_OPTIONS:
            layer.set_option("sharpness", value)


def evaluate(model, split, kind):
    """Mean loss and accuracy (None for regression) over a whole split, in eval mode."""
    from . import functional as F
    model.eval()
    x, y = split
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), EVAL_BATCH):
        xb, yb = x[start:start + EVAL_BATCH], y[start:start + EVAL_BATCH]
        out = model.predict(xb)
        if kind == "classification":
            loss, _ = F.softmax_cross_entropy_forward(out, yb)
            correct += int((out.argmax(axis=1) == yb).sum())
        else:
            loss, _ = F.mse_forward(out, yb)
        total_loss += float(loss) * len(xb)
    model.train()
    accuracy = correct / len(x) if kind == "classification" else None
    return total_loss / len(x), accuracy


class MetricsLog:
    """Appends JSON lines; on resume, drops what was logged after the checkpoint."""

    def __init__(self, path, keep_until_step=None):
        self.path = Path(path)
        if keep_until_step is not None and self.path.exists():
            # A test record belongs to the end of a run: a resumed run writes its own.
            kept = [line for line in self.path.read_text().splitlines()
                    if line and json.loads(line)["step"] <= keep_until_step
                    and json.loads(line)["split"] != "test"]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, **record):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(run_dir):
    path = Path(run_dir) / METRICS
    return [json.loads(line) for line in path.read_text().splitlines() if line]


class _StopRequest:
    """Turns the first Ctrl-C into a request honoured between two steps, so a
    step is never cut in half; a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._old = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, self._handle)
        except ValueError:            # not the main thread: leave signals alone
            self._old = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def train(config, out_dir, *, resume=False, progress=True, stop_after_steps=None,
          data_root=None, print_fn=print):
    """Train a model; returns a summary dict (test loss and accuracy, times, paths).

    ``resume=True`` continues the run in ``out_dir`` from its checkpoint.
    ``stop_after_steps`` stops as a Ctrl-C would after that many steps of this
    call (saving a checkpoint); tests use it to interrupt a run at a known step.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keep_freed_memory()         # every step reallocates the same arrays: keep their pages
    # and vanishing gradients must not fall into the processor's slow subnormal path
    with blas_threads(config.blas_threads), flush_subnormals():
        return _train(config, out, resume, progress, stop_after_steps, data_root, print_fn)


def _train(config, out, resume, progress, stop_after_steps, data_root, print_fn):
    from tqdm import tqdm

    task = load_task(config.task, seed=config.seed, limit=config.limit, data_root=data_root,
                     raw_pixels=config.raw_pixels, kaggle_csv=config.kaggle_csv)
    rng = np.random.default_rng(config.seed)
    model = build_model(config, task, rng)
    optimizer = make_optimizer(config.optimizer, model.params, lr=config.lr)
    epoch, batch_index, step, seconds = 0, 0, 0, 0.0
    window = {"loss": 0.0, "correct": 0, "count": 0, "steps": 0, "metrics": {}}
    if resume:
        params, opt_state, meta = load_checkpoint(out / CHECKPOINT)
        for key, value in params.items():
            model.params[key][...] = value
        model.load_buffers(meta["buffers"])
        optimizer.load_state_dict(opt_state)
        rng.bit_generator.state = meta["rng"]
        epoch, batch_index, step, seconds = (meta["epoch"], meta["batch_index"],
                                             meta["step"], meta["seconds"])
        window = meta["window"]
    log = MetricsLog(out / METRICS, keep_until_step=step if resume else None)
    if not resume:
        (out / METRICS).write_text("")
    (out / CONFIG).write_text(json.dumps(asdict(config), indent=2) + "\n")

    def checkpoint():
        save_checkpoint(out / CHECKPOINT, model.params, optimizer.state_dict(),
                        {"epoch": epoch, "batch_index": batch_index, "step": step,
                         "seconds": seconds, "rng": rng.bit_generator.state,
                         "window": window}, buffers=model.buffers())

    x_train, y_train = task.train
    n = len(x_train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    steps_this_call, epoch_times = 0, []
    # The decay (--lr-end) spans the whole run, so resuming lands on the same rates.
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)

    def out_of_steps():
        return config.max_steps is not None and step >= config.max_steps

    model.train()
    with _StopRequest() as stop:
        while epoch < config.epochs and not out_of_steps():
            order = np.random.default_rng([config.seed, epoch]).permutation(n)
            bar = tqdm(total=steps_per_epoch, initial=batch_index, disable=not progress,
                       desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=True)
            t_epoch = time.perf_counter()
            examples_timed = 0
            while batch_index < steps_per_epoch and not out_of_steps():
                if stop.requested or (stop_after_steps is not None
                                      and steps_this_call >= stop_after_steps):
                    bar.close()
                    checkpoint()
                    print_fn(f"stopped at step {step} (epoch {epoch + 1}, batch {batch_index}); "
                             f"checkpoint saved. Continue with: python -m minirnn train "
                             f"--resume {out}")
                    return {"interrupted": True, "step": step, "run_dir": str(out)}
                t0 = time.perf_counter()
                if config.sharpness_schedule is not None:
                    set_sharpness(model, config.sharpness_schedule, step)
                if config.lr_end is not None:
                    optimizer.lr = exponential_lr(step, config.lr, config.lr_end, total_steps)
                idx = order[batch_index * config.batch_size:(batch_index + 1) * config.batch_size]
                xb, yb = x_train[idx], y_train[idx]
                loss, out_b = model.loss_and_backward(xb, yb)
                norm = clip_grad_norm(model.grads, config.clip) if config.clip else None
                if not np.isfinite(loss) or (norm is not None and not np.isfinite(norm)):
                    bar.close()
                    what = (f"the loss became {loss}" if not np.isfinite(loss)
                            else f"the gradient norm became {norm}")
                    raise TrainingDiverged(
                        f"{what} at step {step + 1} (epoch {epoch + 1}); "
                        f"training stopped and the last good checkpoint, if any, is kept "
                        f"in {out / CHECKPOINT}. Try a lower learning rate (now --lr "
                        f"{config.lr}) or gradient clipping (--clip 1.0).")
                optimizer.step(model.grads)
                step += 1
                batch_index += 1
                steps_this_call += 1
                dt = time.perf_counter() - t0
                seconds += dt
                examples_timed += len(idx)
                window["loss"] += float(loss) * len(idx)
                window["count"] += len(idx)
                window["steps"] += 1
                for key, value in model.metrics().items():   # e.g. a VC cell's mean m_t
                    window["metrics"][key] = window["metrics"].get(key, 0.0) + float(value)
                if task.kind == "classification":
                    window["correct"] += int((out_b.argmax(axis=1) == yb).sum())
                if step % config.log_every == 0 or batch_index == steps_per_epoch:
                    acc = (window["correct"] / window["count"]
                           if task.kind == "classification" else None)
                    mean_loss = window["loss"] / window["count"]
                    log.write(split="train", step=step, epoch=epoch + batch_index / steps_per_epoch,
                              loss=mean_loss, accuracy=acc, lr=optimizer.lr,
                              seconds=round(seconds, 3),
                              **{k: v / window["steps"] for k, v in window["metrics"].items()})
                    elapsed = time.perf_counter() - t_epoch
                    bar.set_postfix(loss=f"{mean_loss:.4f}",
                                    **({"acc": f"{acc:.3f}"} if acc is not None else {}),
                                    ex_per_s=f"{examples_timed / max(elapsed, 1e-9):.0f}")
                    window = {"loss": 0.0, "correct": 0, "count": 0, "steps": 0, "metrics": {}}
                if config.eval_every and step % config.eval_every == 0 \
                        and batch_index < steps_per_epoch:
                    n_val = config.eval_limit or len(task.val[0])
                    val_loss, val_acc = evaluate(model, (task.val[0][:n_val], task.val[1][:n_val]),
                                                 task.kind)
                    log.write(split="val", step=step, epoch=epoch + batch_index / steps_per_epoch,
                              loss=val_loss, accuracy=val_acc, lr=optimizer.lr,
                              seconds=round(seconds, 3), examples=n_val)
                bar.update(1)
            bar.close()
            epoch_times.append(time.perf_counter() - t_epoch)
            finished_early = batch_index < steps_per_epoch      # max_steps reached
            if not finished_early:
                epoch += 1
                batch_index = 0
            val_loss, val_acc = evaluate(model, task.val, task.kind)
            log.write(split="val", step=step, epoch=epoch, loss=val_loss, accuracy=val_acc,
                      lr=optimizer.lr, seconds=round(seconds, 3))
            checkpoint()
            print_fn(f"epoch {epoch}: validation loss {val_loss:.4f}"
                     + (f", validation accuracy {val_acc:.4f}" if val_acc is not None else "")
                     + f" ({epoch_times[-1]:.1f} s)")
            if finished_early:
                break

    test_loss, test_acc = evaluate(model, task.test, task.kind)
    log.write(split="test", step=step, epoch=epoch, loss=test_loss, accuracy=test_acc,
              lr=optimizer.lr, seconds=round(seconds, 3))
    summary = {"interrupted": False, "step": step, "epochs": epoch, "test_loss": test_loss,
               "test_accuracy": test_acc, "train_seconds": seconds,
               "seconds_per_epoch": (float(np.mean(epoch_times)) if epoch_times else None),
               "run_dir": str(out)}
    try:
        from .plot import plot_runs
        plot_runs([out], out / CURVES)
        summary["curves"] = str(out / CURVES)
    except Exception as err:                      # a plot must never lose a finished run
        print_fn(f"(could not draw {out / CURVES}: {err})")
    return summary


def load_trained_model(run_dir, data_root=None):
    """Rebuild a run's model from its config and checkpoint; returns (config, task, model)."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG
    if not config_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder: it has no {CONFIG}")
    config = TrainConfig.from_dict(json.loads(config_path.read_text()))
    task = load_task(config.task, seed=config.seed, limit=config.limit, data_root=data_root,
                     raw_pixels=config.raw_pixels, kaggle_csv=config.kaggle_csv)
    model = build_model(config, task, np.random.default_rng(config.seed))
    params, _, meta = load_checkpoint(run_dir / CHECKPOINT)
    for key, value in params.items():
        model.params[key][...] = value
    model.load_buffers(meta["buffers"])
    if config.sharpness_schedule is not None:
        set_sharpness(model, config.sharpness_schedule, meta["step"])
    return config, task, model
