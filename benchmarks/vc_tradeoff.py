"""Variable computation on row-MNIST: test accuracy against the computation used.

VC-LSTM(100) (Jernite et al. 2017; ``tutorials/06_variable_computation.md``) at
several budgets ``m_target`` with the L1 computation penalty and a sharpness
schedule (soft threshold: the scheduler learns from the loss through the band,
ending nearly binary), the hard threshold of the Qiita variable-computation
note's code at one budget, and the dense LSTM baseline; the Qiita BN-LSTM note's
settings otherwise (100 units, batch 64, Adam, learning rate 0.01, seed 0), one
epoch each.

    python benchmarks/vc_tradeoff.py                  # the runs, the table, the figures
    python benchmarks/vc_tradeoff.py --pilot          # short runs to choose alpha
    python benchmarks/vc_tradeoff.py --figures-only   # redraw from the run folders

Each run trains in its own folder under ``--out`` through the same ``train`` as
``python -m minirnn train`` (the table prints the equivalent command); a folder
whose metrics log already has a test record is not trained again, so an
interrupted suite continues where it stopped. Then the run's checkpoint is
evaluated on the 10,000 test digits in evaluation mode, at the final sharpness:
accuracy, mean m_t, and the multiply-adds its masks need (``vclstm.macs``, i.e.
``_vc_mask.count_macs``: per example and step ``(Kx + K) * 4 * K`` for the
prefixes of K hidden and Kx input units, plus the scheduler's ``I + H``) over
those of the dense cell (``(I + H) * 4 * H + I + H``); written to the folder's
``eval.json`` with the masks of the first test digits in ``masks.npz``.

Figures: ``tradeoff.png`` (test accuracy against the computation fraction, the
LSTM at 1.0), ``masks.png`` (the hidden masks e_t of a few test digits, time
down, unit across, next to the digit whose row t the step reads; bottom row:
the mean fraction of units updated at each step over the test set, and the
mean ink of each row), ``mean_m.png`` (the logged mean m_t during training).
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from minirnn.cells import _vc_mask as vc
from minirnn.threads import blas_threads
from minirnn.train import METRICS, TrainConfig, load_trained_model, read_metrics, train

OUT = Path(__file__).resolve().parent / "results" / "vc_tradeoff"  # whatever the working directory
# Soft at the start (lambda = 1: about 4.4 units in the identity band, all with a
# gradient to the scheduler), geometric to lambda = 20 at step 700 of the 860 of
# an epoch (a band of 0.22 units: almost binary masks), held for the last 160.
SCHEDULE = [1.0, 20.0, 700, "exponential"]
# Training with the soft threshold breaks down once lambda passes ~5 (docs/results.md,
# "Variable computation (VC-LSTM)"; every run in results/vc_tradeoff/README.md): the
# same schedule ending at lambda = 4 (a band of ~1.1 units: about one fractional
# hidden unit and one fractional input per step).
SCHEDULE_4 = [1.0, 4.0, 700, "exponential"]
SCHEDULE_1 = [1.0, 1.0, 1, "linear"]  # a diagnostic: lambda = 1 throughout
ALPHA = 0.1  # chosen with --pilot (results/vc_tradeoff/README.md)
EVAL_BATCH = 1000
N_SHOW = 8  # test digits whose masks are kept for masks.png


def vc_run(m_target, alpha, threshold="soft", schedule=SCHEDULE, max_steps=None, tag="", clip=None):
    name = f"vclstm-{threshold}-m{m_target}-a{alpha}" + (f"-clip{clip}" if clip else "") + tag
    options = {"m_target": m_target, "alpha": alpha}
    if threshold != "soft":
        options["threshold"] = threshold
    return {
        "name": name,
        "cell": "vclstm",
        "options": options,
        "schedule": schedule,
        "max_steps": max_steps,
        "settings": {"clip": clip} if clip else {},
    }


RUNS = (
    [{"name": "lstm", "cell": "lstm", "options": {}, "schedule": None, "max_steps": None}]
    + [vc_run(m, ALPHA) for m in (0.25, 0.5, 0.75)]
    + [vc_run(0.5, ALPHA, threshold="hard")]
    # more points: the ends of the curve, a weaker penalty, the hard mask at 0.25
    + [vc_run(m, ALPHA) for m in (0.1, 1.0)]
    + [vc_run(0.25, 0.01), vc_run(0.25, ALPHA, threshold="hard")]
    # the soft runs above diverge once lambda passes ~5 (docs/results.md): the same
    # with the gradient clipped to global norm 1
    + [vc_run(m, ALPHA, clip=1.0) for m in (0.25, 0.5, 0.75)]
    + [vc_run(m, ALPHA, schedule=SCHEDULE_4, tag="-lam4") for m in (0.25, 0.5, 0.75)]
    + [vc_run(0.5, ALPHA, schedule=SCHEDULE_1, tag="-lam1")]
)
# two soft runs that diverged, the one soft run with a schedule that did not, the
# soft run at constant lambda = 1, the hard threshold
MASK_RUNS = [vc_run(m, ALPHA)["name"] for m in (0.5, 0.75)] + [
    vc_run(0.75, ALPHA, schedule=SCHEDULE_4, tag="-lam4")["name"],
    vc_run(0.5, ALPHA, schedule=SCHEDULE_1, tag="-lam1")["name"],
    vc_run(0.5, ALPHA, threshold="hard")["name"],
]
PILOT_STEPS = 200
PILOT = [
    vc_run(m, a, max_steps=PILOT_STEPS, tag=f"-{PILOT_STEPS}steps")
    for m in (0.25,)
    for a in (0.0, 0.01, 0.1, 1.0)
]


def command(run, out):
    flags = "".join(f" --cell-option {k}={v}" for k, v in run["options"].items())
    if run["schedule"]:
        flags += " --sharpness-schedule " + " ".join(
            str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
            for v in run["schedule"]
        )
    if run["max_steps"]:
        flags += f" --max-steps {run['max_steps']}"
    flags += "".join(f" --{k} {v}" for k, v in run.get("settings", {}).items())
    return f"python -m minirnn train --cell {run['cell']}{flags} --out {out / run['name']}"


def finished(run_dir):
    return (run_dir / METRICS).exists() and any(r["split"] == "test" for r in read_metrics(run_dir))


def train_run(run, out):
    run_dir = out / run["name"]
    if finished(run_dir):
        print(f"{run['name']}: already trained, skipped", flush=True)
        return
    config = TrainConfig(
        cell=run["cell"],
        cell_options=dict(run["options"]),
        sharpness_schedule=run["schedule"],
        max_steps=run["max_steps"],
        **run.get("settings", {}),
    )
    t0 = time.perf_counter()
    summary = train(config, run_dir, progress=False, print_fn=lambda *a: None)
    print(
        f"{run['name']}: test accuracy {summary['test_accuracy']:.4f}, "
        f"{time.perf_counter() - t0:.0f} s wall",
        flush=True,
    )


def measure(run_dir):
    """Evaluate a trained run on the test set; returns (and writes) eval.json's dict."""
    path = run_dir / "eval.json"
    if path.exists():
        return json.loads(path.read_text())
    config, task, model = load_trained_model(run_dir)
    layer = model.layers[0]
    x, y = task.test
    N, T, I = x.shape
    H = config.hidden
    vc_cell = hasattr(layer.cell, "macs")
    correct, needed, dense = 0, 0, 0
    Ks, Kxs, ms, band = [], [], [], 0
    with blas_threads(1):
        model.eval()
        for start in range(0, N, EVAL_BATCH):
            xb = x[start : start + EVAL_BATCH]
            logits = model.predict(xb)
            correct += int((logits.argmax(axis=1) == y[start : start + EVAL_BATCH]).sum())
            if vc_cell:
                cache = layer.cache
                counts = layer.cell.macs(cache)
                needed += counts["needed"]
                dense += counts["dense"]
                Ks.append(vc.prefix_length(cache["e"]).T)  # (B, T)
                Kxs.append(vc.prefix_length(cache["ex"]).T)
                ms.append(cache["m"].T)
                band += int(((cache["e"] > 0) & (cache["e"] < 1)).sum())
                if start == 0:
                    shown = {
                        "e": cache["e"][:, :N_SHOW].transpose(1, 0, 2),
                        "ex": cache["ex"][:, :N_SHOW].transpose(1, 0, 2),
                        "m": cache["m"][:, :N_SHOW].T,
                        "pred": logits[:N_SHOW].argmax(axis=1),
                    }
    records = read_metrics(run_dir)
    test = [r for r in records if r["split"] == "test"][-1]
    steps_per_epoch = math.ceil(len(task.train[0]) / config.batch_size)
    result = {
        "name": run_dir.name,
        "cell": config.cell,
        "options": config.cell_options,
        "clip": config.clip,
        "schedule": config.sharpness_schedule,
        "steps": test["step"],
        "test_accuracy": correct / N,
        "logged_test_accuracy": test["accuracy"],
        "train_seconds": test["seconds"],
        "seconds_per_epoch": test["seconds"] * steps_per_epoch / test["step"],
    }
    if vc_cell:
        K, Kx, m = np.concatenate(Ks), np.concatenate(Kxs), np.concatenate(ms)  # (N, T)
        ink = x.sum(axis=2)  # (N, T)
        within = [
            np.corrcoef(K[n], ink[n])[0, 1] for n in range(N) if K[n].std() > 0 and ink[n].std() > 0
        ]
        train_recs = [r for r in records if r["split"] == "train"]
        result.update(
            {
                "final_sharpness": layer.forward_options.get("sharpness"),
                "mean_m": float(m.mean()),
                "std_m": float(m.std()),
                "std_m_within_example": float(m.std(axis=1).mean()),
                "macs_needed": needed,
                "macs_dense": dense,
                "fraction": needed / dense,
                "mean_K": float(K.mean()),
                "mean_Kx": float(Kx.mean()),
                "hidden_update_fraction": float(K.mean() / H),
                "fractional_mask_entries": band / (N * T * H),
                "mean_K_by_step": (K.mean(axis=0) / H).tolist(),
                "mean_ink_by_step": ink.mean(axis=0).tolist(),
                "corr_K_ink_pooled": float(np.corrcoef(K.ravel(), ink.ravel())[0, 1]),
                "corr_K_ink_within_example": float(np.mean(within)) if within else None,
                "logged_mean_m": [(r["step"], r.get("0.mean_m")) for r in train_recs],
                "logged_update_fraction": [
                    (r["step"], r.get("0.update_fraction")) for r in train_recs
                ],
            }
        )
        np.savez_compressed(run_dir / "masks.npz", x=x[:N_SHOW], y=y[:N_SHOW], **shown)
    else:
        result.update({"mean_m": None, "fraction": 1.0})
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def describe(result):
    o = result["options"]
    if result["cell"] == "lstm":
        return "LSTM (dense)"
    return (
        f"{o.get('threshold', 'soft')} m_target={o['m_target']}, "
        f"lambda 1->{result['schedule'][1]:g}"
    )


def sharpened(run_dir, lam=20.0, threshold=None):
    """Accuracy and computation of a trained run evaluated at sharpness ``lam`` (and
    another threshold mode) instead of its final training values."""
    tag = f"eval_lam{lam:g}" + (f"_{threshold}" if threshold else "") + ".json"
    path = run_dir / tag
    if path.exists():
        return json.loads(path.read_text())
    config, task, model = load_trained_model(run_dir)
    layer = model.layers[0]
    layer.set_option("sharpness", lam)
    if threshold:
        layer.set_option("threshold", threshold)
    x, y = task.test
    correct, needed, dense, ms = 0, 0, 0, []
    with blas_threads(1):
        model.eval()
        for start in range(0, len(x), EVAL_BATCH):
            logits = model.predict(x[start : start + EVAL_BATCH])
            correct += int((logits.argmax(axis=1) == y[start : start + EVAL_BATCH]).sum())
            counts = layer.cell.macs(layer.cache)
            needed, dense = needed + counts["needed"], dense + counts["dense"]
            ms.append(layer.cache["m"].ravel())
    result = {
        "sharpness": lam,
        "threshold": threshold or config.cell_options.get("threshold", "soft"),
        "test_accuracy": correct / len(x),
        "fraction": needed / dense,
        "mean_m": float(np.concatenate(ms).mean()),
    }
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def table(runs, results, out):
    print(
        "\n| m_target | alpha | threshold | mean m_t | computation | test accuracy "
        "| s / epoch | command |\n|---|---|---|---|---|---|---|---|"
    )
    for run, r in zip(runs, results):
        o = r["options"]
        if r["cell"] == "lstm":
            head = "- (dense LSTM) | - | - | - | 1.000"
        else:
            head = (
                f"{o['m_target']} | {o['alpha']} | {o.get('threshold', 'soft')} | "
                f"{r['mean_m']:.3f} | {r['fraction']:.3f}"
            )
        print(
            f"| {head} | {100 * r['test_accuracy']:.2f}% | {r['seconds_per_epoch']:.1f} "
            f"| `{command(run, out)}` |"
        )
    print()
    for r in results:
        if r["cell"] != "lstm":
            within = r["corr_K_ink_within_example"]
            print(
                f"{r['name']}: K/H {r['hidden_update_fraction']:.3f}, Kx/I "
                f"{r['mean_Kx'] / 28:.3f}, std m {r['std_m']:.3f} (within an example "
                f"{r['std_m_within_example']:.3f}), fractional mask entries "
                f"{r['fractional_mask_entries']:.4f}, corr(K_t, ink of row t): pooled "
                f"{r['corr_K_ink_pooled']:+.3f}, within examples "
                f"{within if within is None else round(within, 3)}"
            )


def figures(results, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vcs = [r for r in results if r["cell"] != "lstm"]
    soft = sorted(
        (r for r in vcs if r["options"].get("threshold", "soft") == "soft"),
        key=lambda r: r["fraction"],
    )
    hard = [r for r in vcs if r["options"].get("threshold") == "hard"]
    dense = [r for r in results if r["cell"] == "lstm"]

    fig, ax = plt.subplots(figsize=(10, 5))
    groups = {}
    for r in soft + sorted(hard, key=lambda r: r["fraction"]):
        key = (
            r["options"].get("threshold", "soft"),
            r["options"]["alpha"],
            r.get("clip"),
            r["schedule"][1],
        )
        groups.setdefault(key, []).append(r)
    # markers only: most soft runs diverged part-way (docs/results.md), so a line through
    # them would suggest a curve that is not there
    styles = {"soft": ("o", "soft"), "hard": ("s", "hard (Qiita note's code)")}
    for k, ((thr, alpha, clip, lam), rs) in enumerate(
        sorted(
            groups.items(), key=lambda kv: (kv[0][0] == "hard", -kv[0][1], kv[0][2] or 0, -kv[0][3])
        )
    ):
        fmt, what = styles[thr]
        ax.plot(
            [r["fraction"] for r in rs],
            [100 * r["test_accuracy"] for r in rs],
            fmt,
            color=f"C{k}",
            ms=7,
            label=f"VC-LSTM {what}, alpha={alpha}, lambda 1->{lam:g}"
            + (f", clip {clip}" if clip else ""),
        )
        for r in rs:
            ax.annotate(
                f"{r['options']['m_target']} ({r['mean_m']:.2f})",
                (r["fraction"], 100 * r["test_accuracy"]),
                textcoords="offset points",
                xytext=(5, -12 if thr == "soft" else 6),
                fontsize=7,
                color=f"C{k}",
            )
    for r in dense:
        ax.plot(1.0, 100 * r["test_accuracy"], "*", color="k", ms=14, label="LSTM (dense)")
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("fraction of the dense cell's multiply-adds used on the test set")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(
        "row-MNIST, 100 units, 1 epoch: accuracy vs computation\n"
        "(labels: m_target (mean m_t on the test set))",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out / "tradeoff.png", dpi=110)
    plt.close(fig)

    by_name = {r["name"]: r for r in vcs}
    # masks.npz is written by measure() next to the checkpoint and, like it, not kept
    # in the repository: without all of them masks.png stays as it is
    missing = [n for n in MASK_RUNS if n in by_name and not (out / n / "masks.npz").exists()]
    if missing:
        print(f"masks.png not redrawn: no masks.npz in {', '.join(missing)}")
    shown = (
        []
        if missing
        else [(by_name[n], np.load(out / n / "masks.npz")) for n in MASK_RUNS if n in by_name]
    )
    if shown:
        digits = 4
        cols = 1 + len(shown)
        fig, axes = plt.subplots(
            digits + 1,
            cols,
            figsize=(2.0 + 2.6 * len(shown), 2.3 * (digits + 1)),
            gridspec_kw={"width_ratios": [1] + [2.2] * len(shown)},
            squeeze=False,
        )
        x, y = shown[0][1]["x"], shown[0][1]["y"]
        for d in range(digits):
            ax = axes[d, 0]
            ax.imshow(x[d], cmap="gray_r", vmin=0, vmax=1, aspect="auto")
            ax.set_title(f"test digit {d}: {y[d]}", fontsize=9)
            ax.set_ylabel("row = step t")
            ax.set_xticks([])
            for k, (r, data) in enumerate(shown):
                ax = axes[d, k + 1]
                ax.imshow(
                    data["e"][d],
                    cmap="Blues",
                    vmin=0,
                    vmax=1,
                    aspect="auto",
                    interpolation="nearest",
                )
                ax.set_title(f"{describe(r)}: pred {data['pred'][d]}", fontsize=8)
                ax.set_yticks([])
                if d == digits - 1:
                    ax.set_xlabel("hidden unit i (e_t)_i")
        ax = axes[digits, 0]
        ink = np.asarray(shown[0][0]["mean_ink_by_step"])
        ax.barh(np.arange(len(ink)), ink, color="gray")
        ax.invert_yaxis()
        ax.set_title("mean ink of row t", fontsize=8)
        ax.set_ylabel("step t")
        for k, (r, _) in enumerate(shown):
            ax = axes[digits, k + 1]
            kt = np.asarray(r["mean_K_by_step"])
            ax.plot(kt, np.arange(len(kt)), "o-", ms=3)
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.set_title("test-set mean K_t / H by step", fontsize=8)
            ax.set_xlabel("fraction of units updated")
            ax.grid(alpha=0.3)
        fig.suptitle(
            "Which units update at each step (blue = e_t = 1; time runs down, "
            "one row of the digit per step)",
            fontsize=10,
        )
        fig.tight_layout()
        fig.savefig(out / "masks.png", dpi=100)
        plt.close(fig)

    fig, (ax, ax2, ax3) = plt.subplots(
        1, 3, figsize=(15, 4.5), gridspec_kw={"width_ratios": [1, 1, 0.5]}
    )
    for k, r in enumerate(vcs):
        color = plt.cm.tab20(k % 20)
        steps, m = zip(*r["logged_mean_m"])
        ax.plot(steps, m, color=color, label=f"{r['name']}")
        ax.axhline(r["options"]["m_target"], color=color, ls=":", lw=1)
        train_recs = [x for x in read_metrics(out / r["name"]) if x["split"] == "train"]
        ax2.plot([x["step"] for x in train_recs], [x["loss"] for x in train_recs], color=color)
    ax.set_xlabel("training step")
    ax.set_ylabel("logged mean m_t (train batches); dotted: m_target")
    ax2.set_xlabel("training step")
    ax2.set_ylabel("training loss (with the penalty)")
    ax2.set_yscale("log")
    for a in (ax, ax2):
        a.grid(alpha=0.3)
    ax3.axis("off")
    ax3.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="center left")
    fig.tight_layout()
    fig.savefig(out / "mean_m.png", dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument(
        "--pilot",
        action="store_true",
        help=f"{PILOT_STEPS}-step runs at m_target 0.25 for several alpha",
    )
    parser.add_argument(
        "--figures-only", action="store_true", help="no training: evaluate finished runs and redraw"
    )
    args = parser.parse_args()
    out = Path(args.out)
    runs = PILOT if args.pilot else RUNS
    if args.pilot:
        out = out / "pilot"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    done_runs, results = [], []
    for run in runs:
        run_dir = out / run["name"]
        if not args.figures_only:
            train_run(run, out)
        if finished(run_dir):
            results.append(measure(run_dir))
            done_runs.append(run)
    table(done_runs, results, out)
    if not args.pilot:
        print()
        for r in results:  # runs that ended with lambda < 20: sharpened at test time
            if r["cell"] != "lstm" and r["schedule"][1] < 20:
                for thr in (None, "hard"):
                    sr = sharpened(out / r["name"], 20.0, thr)
                    print(
                        f"{r['name']} evaluated at lambda 20, {sr['threshold']}: test accuracy "
                        f"{100 * sr['test_accuracy']:.2f}%, computation {sr['fraction']:.3f}, "
                        f"mean m {sr['mean_m']:.3f}"
                    )
        figures(results, out)
        print(f"\nfigures: {out / 'tradeoff.png'}, {out / 'masks.png'}, {out / 'mean_m.png'}")
    else:
        for r in results:
            print(r["name"], "logged mean m_t:", [round(m, 3) for _, m in r["logged_mean_m"]][::2])
    print(f"wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
