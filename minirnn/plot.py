"""Training curves from run folders: loss and accuracy against steps.

One colour per run, labelled by its config (cell, options, and whatever differs
from the defaults), the way the source texts compare variants. Training records
are drawn as lines (running means over ``log_every`` steps), validation records
as dots joined by a dashed line.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no screen needed
import matplotlib.pyplot as plt  # noqa: E402

from .runs import read_config, read_metrics  # noqa: E402


def _test_result(records):
    test = [r for r in records if r["split"] == "test"]
    if not test:
        return ""
    if test[-1].get("accuracy") is not None:
        return f" [test acc {100 * test[-1]['accuracy']:.2f}%]"
    return f" [test loss {test[-1]['loss']:.4g}]"


def plot_runs(run_dirs, out_path, title=None):
    """Draw every run's curves into one PNG at ``out_path``; returns the path."""
    runs = [(Path(d), read_config(d), read_metrics(d)) for d in run_dirs]
    labels = [config.label() + _test_result(records) for _, config, records in runs]
    if len(set(labels)) < len(labels):  # same settings: tell them apart by folder
        labels = [f"{label} ({d.name})" for label, (d, _, _) in zip(labels, runs)]
    has_accuracy = any(r.get("accuracy") is not None for _, _, recs in runs for r in recs)
    fig, axes = plt.subplots(
        1, 2 if has_accuracy else 1, figsize=(12 if has_accuracy else 6, 4.5), squeeze=False
    )
    panels = [("loss", axes[0, 0])] + ([("accuracy", axes[0, 1])] if has_accuracy else [])
    for k, ((_, _, records), label) in enumerate(zip(runs, labels)):
        color = f"C{k % 10}"
        for key, ax in panels:
            train = [r for r in records if r["split"] == "train" and r.get(key) is not None]
            val = [r for r in records if r["split"] == "val" and r.get(key) is not None]
            ax.plot(
                [r["step"] for r in train],
                [r[key] for r in train],
                color=color,
                lw=1,
                alpha=0.8,
                label=f"{label} (train)",
            )
            if val:
                ax.plot(
                    [r["step"] for r in val],
                    [r[key] for r in val],
                    "o--",
                    color=color,
                    ms=5,
                    label=f"{label} (validation)",
                )
    for key, ax in panels:
        ax.set_xlabel("step")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        if key == "loss":
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    task = runs[0][1].task if runs else ""
    fig.suptitle(title or f"{task}: " + ", ".join(labels))
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return Path(out_path)
