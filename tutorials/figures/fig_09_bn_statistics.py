"""Tutorial 9: recurrent batch norm keeps one set of statistics per timestep.

Top: one feature of x_t W and of h_{t-1} U over a batch of 256 row-MNIST digits,
t = 1..28, read by a freshly initialized ``bnlstm`` from the zero state. Each dot
is one example; the line and band are that step's batch mean and standard
deviation, the pair training normalizes step t with (``cache["batch_stats"]``).
Bottom: the bookkeeping. Training moves row t of the population statistics towards
step t's batch statistics; evaluation normalizes step t with row t, and every step
after T_max with row T_max.
"""

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, Rectangle

from minirnn.cells import bnlstm
from minirnn.data import load_mnist, row_view

B, H, FEATURE = 256, 32, 3 * 32 + 5  # a unit of the candidate block g


def per_step_values():
    """The batch's values of one feature of x_t W and h_{t-1} U, each (T, B), and the
    batch statistics bnlstm normalized them with."""
    (images, _), _ = load_mnist(download=False)
    x = row_view(images[:B]).astype(np.float64)  # (B, 28, 28), pixels in [0, 1]
    p = bnlstm.init(28, H, rng=np.random.default_rng(0), dtype=np.float64)
    hs, cache = bnlstm.forward(p, x)  # training: batch statistics
    h_prev = np.concatenate([np.zeros((B, 1, H)), hs[:, :-1]], axis=1)  # h_0 = 0, ...
    xw = (x @ p["W"])[..., FEATURE].T  # (T, B)
    hu = (h_prev @ p["U"])[..., FEATURE].T
    stats = cache["batch_stats"]
    return {
        "x_t W": (xw, stats["mean_x"][:, FEATURE], stats["var_x"][:, FEATURE]),
        "h_{t-1} U": (hu, stats["mean_h"][:, FEATURE], stats["var_h"][:, FEATURE]),
    }


def scatter_panel(ax, name, values, mean, var, color):
    T = values.shape[0]
    t = np.arange(1, T + 1)
    jitter = np.random.default_rng(1).uniform(-0.28, 0.28, values.shape[1])
    for k in range(T):
        ax.plot(t[k] + jitter, values[k], ".", color="0.55", ms=2.2, alpha=0.5)
    std = np.sqrt(var)
    ax.fill_between(
        t,
        mean - std,
        mean + std,
        color=color,
        alpha=0.22,
        label=f"step t's batch mean ± std:\n$\\mu_t$, $\\sigma_t$ of ${name}$",
    )
    ax.plot(t, mean, color=color, lw=2.0)
    ax.set_xlim(0.3, T + 0.7)
    ax.set_xlabel("timestep t (image row)", fontsize=11.5)
    ax.set_ylabel(f"feature {FEATURE} of ${name}$", fontsize=11.5)
    ax.tick_params(labelsize=10.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=10.5, loc="upper left")


def bookkeeping_panel(ax, T_max=5, T=8):
    ax.set_xlim(-3.9, T + 0.6)
    ax.set_ylim(-0.2, 4.35)
    ax.axis("off")
    rows = [
        (3.3, f"training, sequences of {T_max} steps:\nbatch statistics of step t", "#9ecae1"),
        (1.8, f"population statistics\n(stats, T_max = {T_max} rows)", "#fdd0a2"),
        (0.3, f"evaluation, a sequence of {T} steps:\nstep t normalized with", "#c7e9c0"),
    ]
    for y, text, _ in rows:
        ax.text(-0.35, y + 0.35, text, ha="right", va="center", fontsize=11)
    for t in range(1, T + 1):
        ax.text(t + 0.0, 4.25, f"t = {t}", ha="center", va="center", fontsize=10.5)
        if t <= T_max:
            ax.add_patch(Rectangle((t - 0.42, 3.3), 0.84, 0.7, fc=rows[0][2], ec="0.3"))
            ax.text(t, 3.65, f"$\\mu_{t}, \\sigma^2_{t}$", ha="center", va="center", fontsize=11)
            ax.add_patch(Rectangle((t - 0.42, 1.8), 0.84, 0.7, fc=rows[1][2], ec="0.3"))
            ax.text(t, 2.15, f"row {t}", ha="center", va="center", fontsize=11)
            ax.add_patch(
                FancyArrowPatch(
                    (t, 3.28), (t, 2.52), arrowstyle="-|>", mutation_scale=12, color="0.3"
                )
            )
        src = min(t, T_max)
        ax.add_patch(Rectangle((t - 0.42, 0.3), 0.84, 0.7, fc=rows[2][2], ec="0.3"))
        ax.text(
            t,
            0.65,
            f"row {src}",
            ha="center",
            va="center",
            fontsize=11,
            weight="bold" if t > T_max else "normal",
        )
        ax.add_patch(
            FancyArrowPatch(
                (src, 1.78),
                (t, 1.02),
                arrowstyle="-|>",
                mutation_scale=12,
                lw=1.3 if t > T_max else 1.0,
                color="#d62728" if t > T_max else "0.3",
            )
        )
    ax.text(
        T_max + 0.5,
        2.85,
        "moving average of\neach step's batch\nstatistics",
        ha="left",
        va="center",
        fontsize=10.5,
        color="0.3",
    )
    ax.text(
        T + 0.55,
        1.45,
        f"t > T_max = {T_max}:\nthe last row",
        ha="right",
        va="center",
        fontsize=10.5,
        color="#d62728",
    )


def draw(out_dir):
    out_dir = Path(out_dir)
    panels = per_step_values()
    fig = plt.figure(figsize=(13, 9.4))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.15, 1], hspace=0.32, wspace=0.22)
    for k, (name, color) in enumerate([("x_t W", "#1f77b4"), ("h_{t-1} U", "#ff7f0e")]):
        ax = fig.add_subplot(grid[0, k])
        scatter_panel(ax, name, *panels[name], color)
    fig.axes[0].set_title("the input term: blank border rows give (nearly) one value", fontsize=12)
    fig.axes[1].set_title("the recurrent term: exactly 0 at t = 1 ($h_0$ = 0)", fontsize=12)
    ax = fig.add_subplot(grid[1, :])
    bookkeeping_panel(ax)
    ax.set_title(
        "one mean/variance pair per timestep, for $x_t W$, $h_{t-1} U$ and $c_t$ alike", fontsize=12
    )
    fig.suptitle(
        f"Recurrent batch norm: statistics per timestep (bnlstm at initialization, "
        f"{B} row-MNIST digits)",
        fontsize=13.5,
        y=0.97,
    )
    path = out_dir / "fig_09_bn_statistics.png"
    fig.savefig(path, dpi=115, bbox_inches="tight")
    plt.close(fig)
    return [path]
