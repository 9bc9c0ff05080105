"""The training loop: batches, steps, evaluation, checkpoints, the metrics log.

A run lives in a run folder (``minirnn/runs.py``): its settings (``TrainConfig``,
config.json), its metrics log and its checkpoint. ``train`` writes one,
``load_trained_model`` reads one back.

Reproducibility: the order of examples in epoch ``e`` is drawn from
``default_rng([seed, e])`` and everything else random (initialisation, dropout
masks) comes from one generator whose state is checkpointed. So a run stopped
at any step and resumed ends with bit-identical parameters to a run that never
stopped (on the same machine, with the same BLAS thread count). The batch split
across threads (``minirnn/parallel.py``) always cuts a batch into the same shards,
so the thread count (``threads``) does not change a single bit.
"""

import math
import signal
import time
from pathlib import Path

import numpy as np

from . import functional as F
from .checkpoint import load_checkpoint, save_checkpoint
from .errors import FileFormatError
from .memory import keep_freed_memory
from .nn import CNNClassifier, Recurrent, SequenceClassifier, SequenceRegressor
from .optim import clip_grad_norm, exponential_lr, make_optimizer, sharpness_at
from .parallel import ShardedStep
from .runs import (
    CHECKPOINT,
    CONFIG,
    CURVES,
    METRICS,
    MetricsLog,
    TrainConfig,
    read_config,
    read_metrics,
    write_config,
)
from .subnormals import flush_subnormals
from .tasks import load_task
from .threads import blas_threads

# What a training script imports from here; the run folder's names and readers
# are those of minirnn.runs, re-exported.
__all__ = [
    "CHECKPOINT",
    "CONFIG",
    "CURVES",
    "METRICS",
    "TrainConfig",
    "TrainingDiverged",
    "build_model",
    "evaluate",
    "load_trained_model",
    "read_config",
    "read_metrics",
    "restore_model",
    "set_sharpness",
    "train",
]

EVAL_BATCH = 1000


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def build_model(config, task, rng):
    """The model ``config`` describes, for ``task``'s inputs and outputs."""
    if config.model == "cnn":
        return CNNClassifier(
            batchnorm=config.batchnorm,
            rng=rng,
            cost=config.cost,
            bn_convention=config.bn_convention,
        )
    cls = SequenceClassifier if task.kind == "classification" else SequenceRegressor
    return cls(
        config.cell,
        task.input_size,
        config.hidden,
        task.n_outputs,
        layers=config.layers,
        rng=rng,
        dropout=config.dropout,
        output_batchnorm=config.output_batchnorm,
        **config.cell_options,
    )


def set_sharpness(model, schedule, step):
    """Give every variable-computation layer the sharpness lambda of ``step``."""
    start, end, steps, *kind = schedule
    value = sharpness_at(step, start, end, steps, *kind)
    for layer in model.layers:
        if isinstance(layer, Recurrent) and "sharpness" in layer.cell.FORWARD_OPTIONS:
            layer.set_option("sharpness", value)


def restore_model(model, params, buffers, path):
    """Copy a checkpoint's parameters and buffers (read from ``path``) into ``model``,
    after checking that they are the model's: the same names and shapes."""
    expected = {k: v.shape for k, v in model.params.items()}
    got = {k: np.shape(v) for k, v in params.items()}
    if got != expected:
        differences = {
            "missing": sorted(set(expected) - set(got)),
            "unexpected": sorted(set(got) - set(expected)),
            "other shapes": sorted(k for k in set(got) & set(expected) if got[k] != expected[k]),
        }
        raise FileFormatError(
            f"{path}: expected the parameters of the model its {CONFIG} describes; "
            + ", ".join(f"{what} {keys}" for what, keys in differences.items() if keys)
        )
    for key, value in params.items():
        model.params[key][...] = value
    try:
        model.load_buffers(buffers)
    except KeyError as err:  # statistics of another model
        raise FileFormatError(f"{path}: {err.args[0]}") from None


def evaluate(model, split, kind, batch_size=EVAL_BATCH):
    """Mean loss and accuracy (None for regression) over a whole split, in eval
    mode, ``batch_size`` examples at a time."""
    model.eval()
    x, y = split
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
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


class _StopRequest:
    """Turns the first Ctrl-C into a request honoured between two steps, so a
    step is never cut in half; a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self._old = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._old = None
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def train(
    config,
    out_dir,
    *,
    resume=False,
    progress=True,
    stop_after_steps=None,
    data_root=None,
    print_fn=print,
    threads=None,
):
    """Train a model; returns a summary dict (test loss and accuracy, times, paths).

    ``resume=True`` continues the run in ``out_dir`` from its checkpoint.
    ``stop_after_steps`` stops as a Ctrl-C would after that many steps of this
    call (saving a checkpoint); tests use it to interrupt a run at a known step.
    ``threads``: how many threads share each batch (``minirnn/parallel.py``);
    None: ``MINIRNN_THREADS`` or every core.
    """
    out = Path(out_dir)
    keep_freed_memory()  # every step reallocates the same arrays: keep their pages
    # and vanishing gradients must not fall into the processor's slow subnormal path
    with blas_threads(config.blas_threads), flush_subnormals():
        return _train(config, out, resume, progress, stop_after_steps, data_root, print_fn, threads)


def _train(config, out, resume, progress, stop_after_steps, data_root, print_fn, threads):
    from tqdm import tqdm

    # What the user gave (the checkpoint, the data, the metrics log) is all read and
    # checked before anything is written: a run that cannot start leaves its folder as it was.
    saved = load_checkpoint(out / CHECKPOINT) if resume else None
    task = load_task(
        config.task,
        seed=config.seed,
        limit=config.limit,
        data_root=data_root,
        raw_pixels=config.raw_pixels,
        kaggle_csv=config.kaggle_csv,
    )
    rng = np.random.default_rng(config.seed)
    model = build_model(config, task, rng)
    optimizer = make_optimizer(config.optimizer, model.params, lr=config.lr)
    sharded = ShardedStep(model, threads=threads)  # model.loss_and_backward on the cores
    epoch, batch_index, step, seconds = 0, 0, 0, 0.0
    window = {"loss": 0.0, "correct": 0, "count": 0, "steps": 0, "metrics": {}}
    if resume:
        params, opt_state, meta = saved
        restore_model(model, params, meta["buffers"], out / CHECKPOINT)
        optimizer.load_state_dict(opt_state)
        rng.bit_generator.state = meta["rng"]
        epoch, batch_index, step, seconds = (
            meta["epoch"],
            meta["batch_index"],
            meta["step"],
            meta["seconds"],
        )
        window = meta["window"]
    log = MetricsLog(out / METRICS, keep_until_step=step if resume else None)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        (out / METRICS).write_text("")
    write_config(out, config)

    def checkpoint():
        save_checkpoint(
            out / CHECKPOINT,
            model.params,
            optimizer.state_dict(),
            {
                "epoch": epoch,
                "batch_index": batch_index,
                "step": step,
                "seconds": seconds,
                "rng": rng.bit_generator.state,
                "window": window,
            },
            buffers=model.buffers(),
        )

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
    with _StopRequest() as stop, sharded:
        while epoch < config.epochs and not out_of_steps():
            order = np.random.default_rng([config.seed, epoch]).permutation(n)
            bar = tqdm(
                total=steps_per_epoch,
                initial=batch_index,
                disable=not progress,
                desc=f"epoch {epoch + 1}/{config.epochs}",
                unit="batch",
                leave=True,
            )
            t_epoch = time.perf_counter()
            examples_timed = 0
            while batch_index < steps_per_epoch and not out_of_steps():
                if stop.requested or (
                    stop_after_steps is not None and steps_this_call >= stop_after_steps
                ):
                    bar.close()
                    checkpoint()
                    print_fn(
                        f"stopped at step {step} (epoch {epoch + 1}, batch {batch_index}); "
                        f"checkpoint saved. Continue with: python -m minirnn train "
                        f"--resume {out}"
                    )
                    return {"interrupted": True, "step": step, "run_dir": str(out)}
                t0 = time.perf_counter()
                if config.sharpness_schedule is not None:
                    set_sharpness(model, config.sharpness_schedule, step)
                if config.lr_end is not None:
                    optimizer.lr = exponential_lr(step, config.lr, config.lr_end, total_steps)
                idx = order[batch_index * config.batch_size : (batch_index + 1) * config.batch_size]
                xb, yb = x_train[idx], y_train[idx]
                loss, out_b = sharded(xb, yb)
                norm = clip_grad_norm(model.grads, config.clip) if config.clip else None
                if not np.isfinite(loss) or (norm is not None and not np.isfinite(norm)):
                    bar.close()
                    what = (
                        f"the loss became {loss}"
                        if not np.isfinite(loss)
                        else f"the gradient norm became {norm}"
                    )
                    raise TrainingDiverged(
                        f"{what} at step {step + 1} (epoch {epoch + 1}); "
                        f"training stopped and the last good checkpoint, if any, is kept "
                        f"in {out / CHECKPOINT}. Try a lower learning rate (now --lr "
                        f"{config.lr}) or gradient clipping (--clip 1.0)."
                    )
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
                for key, value in sharded.metrics().items():  # e.g. a VC cell's mean m_t
                    window["metrics"][key] = window["metrics"].get(key, 0.0) + float(value)
                if task.kind == "classification":
                    window["correct"] += int((out_b.argmax(axis=1) == yb).sum())
                if step % config.log_every == 0 or batch_index == steps_per_epoch:
                    acc = (
                        window["correct"] / window["count"]
                        if task.kind == "classification"
                        else None
                    )
                    mean_loss = window["loss"] / window["count"]
                    log.write(
                        split="train",
                        step=step,
                        epoch=epoch + batch_index / steps_per_epoch,
                        loss=mean_loss,
                        accuracy=acc,
                        lr=optimizer.lr,
                        seconds=round(seconds, 3),
                        **{k: v / window["steps"] for k, v in window["metrics"].items()},
                    )
                    elapsed = time.perf_counter() - t_epoch
                    bar.set_postfix(
                        loss=f"{mean_loss:.4f}",
                        **({"acc": f"{acc:.3f}"} if acc is not None else {}),
                        ex_per_s=f"{examples_timed / max(elapsed, 1e-9):.0f}",
                    )
                    window = {"loss": 0.0, "correct": 0, "count": 0, "steps": 0, "metrics": {}}
                if (
                    config.eval_every
                    and step % config.eval_every == 0
                    and batch_index < steps_per_epoch
                ):
                    n_val = config.eval_limit or len(task.val[0])
                    val_loss, val_acc = evaluate(
                        model, (task.val[0][:n_val], task.val[1][:n_val]), task.kind
                    )
                    log.write(
                        split="val",
                        step=step,
                        epoch=epoch + batch_index / steps_per_epoch,
                        loss=val_loss,
                        accuracy=val_acc,
                        lr=optimizer.lr,
                        seconds=round(seconds, 3),
                        examples=n_val,
                    )
                bar.update(1)
            bar.close()
            epoch_times.append(time.perf_counter() - t_epoch)
            finished_early = batch_index < steps_per_epoch  # max_steps reached
            if not finished_early:
                epoch += 1
                batch_index = 0
            val_loss, val_acc = evaluate(model, task.val, task.kind)
            log.write(
                split="val",
                step=step,
                epoch=epoch,
                loss=val_loss,
                accuracy=val_acc,
                lr=optimizer.lr,
                seconds=round(seconds, 3),
            )
            checkpoint()
            print_fn(
                f"epoch {epoch}: validation loss {val_loss:.4f}"
                + (f", validation accuracy {val_acc:.4f}" if val_acc is not None else "")
                + f" ({epoch_times[-1]:.1f} s)"
            )
            if finished_early:
                break

    test_loss, test_acc = evaluate(model, task.test, task.kind)
    log.write(
        split="test",
        step=step,
        epoch=epoch,
        loss=test_loss,
        accuracy=test_acc,
        lr=optimizer.lr,
        seconds=round(seconds, 3),
    )
    summary = {
        "interrupted": False,
        "step": step,
        "epochs": epoch,
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "train_seconds": seconds,
        "seconds_per_epoch": (float(np.mean(epoch_times)) if epoch_times else None),
        "run_dir": str(out),
    }
    try:
        from .plot import plot_runs  # matplotlib is loaded only when a run ends

        plot_runs([out], out / CURVES)
        summary["curves"] = str(out / CURVES)
    except Exception as err:  # a plot must never lose a finished run
        print_fn(f"(could not draw {out / CURVES}: {err})")
    return summary


def load_trained_model(run_dir, data_root=None):
    """Rebuild a run's model from its config and checkpoint; returns (config, task, model)."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    params, _, meta = load_checkpoint(run_dir / CHECKPOINT)
    task = load_task(
        config.task,
        seed=config.seed,
        limit=config.limit,
        data_root=data_root,
        raw_pixels=config.raw_pixels,
        kaggle_csv=config.kaggle_csv,
    )
    model = build_model(config, task, np.random.default_rng(config.seed))
    restore_model(model, params, meta["buffers"], run_dir / CHECKPOINT)
    if config.sharpness_schedule is not None:
        set_sharpness(model, config.sharpness_schedule, meta["step"])
    return config, task, model
