"""``python -m minirnn <command>``: the command line.

Each command lives in its own function; ``main`` only dispatches, and turns a
``UserError`` (``minirnn/errors.py``: a bad option, a missing or damaged file)
into one line ``error: ...`` and exit status 2. Any other exception is a bug and
shows its traceback.
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from .errors import OptionError, UserError


def cmd_gradcheck(args):
    from .gradcheck import run_all

    return 0 if run_all() else 1


def _option_value(text):
    """'reset_after=true' -> ('reset_after', True): values are read as JSON when they can be."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _schedule(values):
    """['1', '20', '2000', 'linear'] -> [1.0, 20.0, 2000, 'linear']."""
    if values is None:
        return None
    if len(values) in (3, 4):
        try:
            return [float(values[0]), float(values[1]), int(values[2]), *values[3:]]
        except ValueError:  # not a number where one belongs
            pass
    raise OptionError(
        f"--sharpness-schedule: expected START END STEPS [linear|exponential] "
        f"(two numbers, an integer, a word), got {' '.join(values)!r}"
    )


def cmd_train(args):
    from .runs import CONFIG, TrainConfig, check_cell_options, read_config
    from .train import TrainingDiverged, train

    if args.resume:
        run_dir = Path(args.resume)
        config = read_config(run_dir)
        if args.epochs is not None:
            config = dataclasses.replace(config, epochs=args.epochs)
    else:
        config = TrainConfig(
            task=args.task,
            model=args.model,
            batchnorm=not args.no_batchnorm,
            bn_convention=args.bn_convention,
            cost=args.cost,
            raw_pixels=args.raw_pixels,
            kaggle_csv=args.kaggle_csv,
            cell=args.cell,
            cell_options=dict(args.cell_option or []),
            hidden=args.hidden,
            layers=args.layers,
            dropout=args.dropout,
            batch_size=args.batch_size,
            output_batchnorm=args.output_batchnorm,
            optimizer=args.optimizer,
            lr=args.lr,
            lr_end=args.lr_end,
            clip=args.clip,
            epochs=args.epochs or 1,
            seed=args.seed,
            limit=args.limit,
            log_every=args.log_every,
            blas_threads=args.blas_threads,
            max_steps=args.max_steps,
            eval_every=args.eval_every,
            eval_limit=args.eval_limit,
            sharpness_schedule=_schedule(args.sharpness_schedule),
        )
        run_dir = (
            Path(args.out)
            if args.out
            else Path("runs") / (time.strftime("%Y%m%d-%H%M%S") + f"-{config.task}-{config.cell}")
        )
    check_cell_options(config, source=run_dir / CONFIG if args.resume else None)
    print(f"run folder: {run_dir}")
    try:
        summary = train(
            config,
            run_dir,
            resume=bool(args.resume),
            progress=not args.quiet,
            data_root=args.data,
            threads=getattr(args, "threads", None),
        )
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if summary["interrupted"]:
        return 130
    if summary["test_accuracy"] is not None:
        result = f"test accuracy {summary['test_accuracy']:.4f}"
    else:
        result = f"test mse {summary['test_loss']:.6f}"
    print(
        f"{result} (test loss {summary['test_loss']:.4f}) after {summary['epochs']} "
        f"epoch(s), {summary['step']} steps, {summary['seconds_per_epoch'] or 0:.1f} s per "
        f"epoch; run folder {run_dir}"
        + (f", curves {summary['curves']}" if "curves" in summary else "")
    )
    return 0


def set_bn_statistics(model, which):
    """Make every recurrent batch-norm layer of ``model`` (BN-LSTM) normalize, in
    evaluation mode, with the population statistics ("population", the default)
    or with each evaluation batch's own ("batch"). Returns the number of layers set."""
    from .nn import Recurrent

    layers = [
        layer
        for layer in getattr(model, "layers", [])
        if isinstance(layer, Recurrent) and "eval_stats" in layer.cell.FORWARD_OPTIONS
    ]
    for layer in layers:
        layer.set_option("eval_stats", which)
    return len(layers)


def cmd_eval(args):
    from .runs import CONFIG, check_cell_options
    from .threads import blas_threads
    from .train import evaluate, load_trained_model

    if args.batch_size < 1:
        raise OptionError(f"--batch-size: expected a positive integer, got {args.batch_size}")
    with blas_threads(args.blas_threads):
        config, task, model = load_trained_model(args.run_dir, data_root=args.data)
        check_cell_options(config, source=Path(args.run_dir) / CONFIG)
        if set_bn_statistics(model, args.bn_stats) == 0 and args.bn_stats == "batch":
            raise OptionError(
                f"--bn-stats batch: the model of {args.run_dir} has no recurrent "
                f"batch norm (cell {config.cell}); only BN-LSTM layers have "
                f"population statistics to replace"
            )
        if args.bn_stats == "batch":
            print(f"batch norm: each batch's own statistics, batches of {args.batch_size}")
        for name, split in (("validation", task.val), ("test", task.test)):
            loss, acc = evaluate(model, split, task.kind, batch_size=args.batch_size)
            extra = f", accuracy {acc:.4f}" if acc is not None else ""
            print(f"{name}: loss {loss:.4f}{extra} ({len(split[0])} examples)")
    return 0


def cmd_plot(args):
    from .plot import plot_runs

    path = plot_runs(args.run_dirs, args.output, title=args.title)
    print(f"wrote {path}")
    return 0


def cmd_bench(args):
    import numpy as np

    from .bench import format_table, run
    from .memory import keep_freed_memory
    from .subnormals import flush_subnormals
    from .threads import blas_threads

    sizes = dict(batch=args.batch, time_steps=args.time, input_size=args.input, hidden=args.hidden)
    if args.pixel_mnist:
        sizes.update(time_steps=784, input_size=1)
    kept = False if args.return_freed_memory else keep_freed_memory()
    if args.sweep:
        from .bench import bench_sweep

        return bench_sweep(
            args.figure,
            repeats=args.repeats,
            dtype=np.dtype(args.dtype).type,
            blas=args.blas_threads,
            flush=not args.keep_subnormals,
            as_json=args.json,
        )
    with blas_threads(args.blas_threads), flush_subnormals(not args.keep_subnormals) as flushed:
        records = run(
            getattr(args, "cells", None),
            dtype=np.dtype(args.dtype).type,
            repeats=args.repeats,
            **sizes,
        )
    for r in records:
        r["freed_memory_kept"] = kept
        r["subnormals_flushed"] = flushed
    if args.json:
        print(json.dumps(records, indent=1))
    else:
        r = next(
            (r for r in records if r["cell"] != "cnn"),
            {
                "batch": sizes["batch"],
                "time": sizes["time_steps"],
                "input": sizes["input_size"],
                "hidden": sizes["hidden"],
                "dtype": args.dtype,
            },
        )
        print(
            f"batch {r['batch']}, time {r['time']}, input {r['input']}, hidden {r['hidden']}, "
            f"{r['dtype']}, BLAS threads {args.blas_threads}, median of {args.repeats}, "
            f"freed memory {'kept' if kept else 'returned to the OS'}, subnormals "
            f"{'flushed to zero' if flushed else 'kept'}"
        )
        print(format_table(records))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m minirnn",
        description="Recurrent cells with hand-derived backward passes, in NumPy.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    from .cells import CELLS
    from .tasks import TASKS

    p = sub.add_parser(
        "train",
        help="train a model (default: the Qiita BN-LSTM note's LSTM on row-MNIST)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--task", choices=TASKS, default="row-mnist")
    p.add_argument(
        "--model",
        choices=["rnn", "cnn"],
        default="rnn",
        help="a recurrent network, or the Qiita batch-norm CNN note's CNN (with --task mnist)",
    )
    p.add_argument("--no-batchnorm", action="store_true", help="CNN without batch norm")
    p.add_argument(
        "--bn-convention",
        choices=["tensorflow", "pytorch"],
        default="tensorflow",
        help="CNN: batch norm's momentum and eps, TensorFlow's (0.99, 1e-3; "
        "the Qiita batch-norm CNN note) or PyTorch's (0.1 as the new "
        "value's weight, 1e-5)",
    )
    p.add_argument(
        "--cost",
        choices=["stable", "clipped"],
        default="stable",
        help="CNN cost: log-softmax, or the Qiita batch-norm CNN note's -mean(sum(t*log(clip(y))))",
    )
    p.add_argument(
        "--raw-pixels",
        action="store_true",
        help="mnist task: pixels 0..255, unscaled, as the Qiita batch-norm CNN note feeds them",
    )
    p.add_argument(
        "--kaggle-csv",
        default=None,
        metavar="PATH",
        help="mnist task: read Kaggle's Digit Recognizer train.csv",
    )
    p.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    p.add_argument(
        "--cell-option",
        action="append",
        type=_option_value,
        metavar="KEY=VALUE",
        help="a cell option, e.g. reset_after=true or forget_bias=1.0 (repeatable)",
    )
    p.add_argument("--hidden", type=int, default=100, help="hidden units per layer")
    p.add_argument("--layers", type=int, default=1, help="stacked recurrent layers")
    p.add_argument(
        "--dropout", type=float, default=0.0, help="plain dropout on each recurrent layer's outputs"
    )
    p.add_argument(
        "--output-batchnorm",
        action="store_true",
        help="batch norm on each recurrent layer's outputs (as in the Stack Overflow "
        "BN-in-LSTM question: momentum 0.4, TensorFlow's convention), "
        "before --dropout",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--optimizer", choices=["sgd", "momentum", "nesterov", "adam", "rmsprop"], default="adam"
    )
    p.add_argument("--lr", type=float, default=0.01, help="learning rate")
    p.add_argument(
        "--lr-end",
        type=float,
        default=None,
        metavar="LR",
        help="decay the learning rate geometrically, step by step, from --lr to LR "
        "at the run's last step",
    )
    p.add_argument("--clip", type=float, default=None, help="clip gradients to this global norm")
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs (default 1; with --resume, the total to reach)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="use the first N examples of each split (quick runs)",
    )
    p.add_argument("--log-every", type=int, default=20, help="steps between metrics records")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N steps in all")
    p.add_argument(
        "--sharpness-schedule",
        nargs="+",
        default=None,
        metavar="START END STEPS [KIND]",
        help="variable-computation cells: raise the mask sharpness lambda from "
        "START to END over STEPS steps, linear or exponential",
    )
    p.add_argument(
        "--eval-every",
        type=int,
        default=None,
        metavar="N",
        help="also evaluate on validation data every N steps",
    )
    p.add_argument(
        "--eval-limit", type=int, default=None, metavar="N", help="... using its first N examples"
    )
    p.add_argument("--out", default=None, help="run folder (default runs/<time>-<task>-<cell>)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR")
    p.add_argument("--data", default=None, metavar="DIR", help="folder with the MNIST files")
    p.add_argument("--blas-threads", type=int, default=1, help="see minirnn/threads.py")
    p.add_argument(
        "--threads",
        type=int,
        default=argparse.SUPPRESS,
        help="threads that share each batch (minirnn/parallel.py; the same result "
        "for any count); default: MINIRNN_THREADS or every core",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a run's checkpoint on validation and test data")
    p.add_argument("run_dir")
    p.add_argument("--data", default=None, metavar="DIR")
    p.add_argument(
        "--bn-stats",
        choices=["population", "batch"],
        default="population",
        help="BN-LSTM: normalize with the population statistics kept in training "
        "(the honest evaluation: one example's output does not depend on the "
        "others), or with each evaluation batch's own statistics, to see the gap",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        help="examples per evaluation batch (with --bn-stats batch, the batch whose "
        "statistics normalize it)",
    )
    p.add_argument("--blas-threads", type=int, default=1)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("plot", help="draw loss and accuracy against steps for runs")
    p.add_argument("run_dirs", nargs="+", metavar="DIR")
    p.add_argument("-o", "--output", default="curves.png")
    p.add_argument("--title", default=None)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser(
        "bench",
        help="time every cell: forward, backward, training step",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--cells",
        nargs="+",
        choices=[*sorted(CELLS), "cnn"],
        default=argparse.SUPPRESS,
        help="cells to time, and cnn for the Qiita batch-norm CNN note's CNN (default: all)",
    )
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--time", type=int, default=28)
    p.add_argument("--input", type=int, default=28)
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--pixel-mnist", action="store_true", help="time 784, input 1")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--blas-threads", type=int, default=1)
    p.add_argument(
        "--return-freed-memory",
        action="store_true",
        help="leave malloc's default, which returns freed large arrays to the OS "
        "(each step then page-faults them in again; minirnn/memory.py)",
    )
    p.add_argument(
        "--keep-subnormals",
        action="store_true",
        help="do not flush subnormal floats to zero (vanishing gradients then "
        "take a slow path in the processor; minirnn/subnormals.py)",
    )
    p.add_argument("--json", action="store_true", help="print a list of JSON records")
    p.add_argument(
        "--sweep",
        action="store_true",
        help="time the LSTM training step over hidden, time and batch sizes (beside "
        "PyTorch if installed, one thread each) and draw --figure",
    )
    p.add_argument("--figure", default="docs/figures/scaling.png", help="--sweep's figure")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("gradcheck", help="finite-difference check of every cell and op")
    p.set_defaults(func=cmd_gradcheck)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
