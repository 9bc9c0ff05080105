"""Tutorial 8: where each recurrent dropout mask sits in the LSTM cell.

Left, one step of the LSTM with its three mask places (``dropout_where``):
m_h on h_{t-1} before U (Gal and Ghahramani 2016, "hidden"), m_g on the candidate g
(Semeniuta et al. 2016, "update"), m_c on the carried cell (Moon et al. 2015,
"cell"). Only m_c sits on the cell path c_{t-1} -> c_t. Right, the fraction of
units whose cell path from c_0 to c_t is still open, measured on masks drawn by
``lstm.forward`` (U = 0, so only the cell links the steps), against (1-p)^t.
"""

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

from minirnn.cells import lstm

P = 0.2
PLACES = {  # dropout_where: (mask name, colour, source)
    "hidden": ("m_h", "#1f77b4", "Gal and Ghahramani 2016"),
    "update": ("m_g", "#2ca02c", "Semeniuta et al. 2016"),
    "cell": ("m_c", "#d62728", "Moon et al. 2015"),
}


def arrow(ax, a, b, color="0.2", lw=1.4, style="-|>"):
    ax.add_patch(
        FancyArrowPatch(
            a, b, arrowstyle=style, mutation_scale=13, lw=lw, color=color, shrinkA=0, shrinkB=0
        )
    )


def box(ax, x, y, text, w=1.0, h=0.62, fc="white", fontsize=12):
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04", fc=fc, ec="0.25", lw=1.1
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def op(ax, x, y, sign):
    ax.add_patch(Circle((x, y), 0.24, fc="white", ec="0.25", lw=1.1))
    ax.text(x, y, sign, ha="center", va="center", fontsize=13)


def mask(ax, x, y, where):
    name, color, _ = PLACES[where]
    ax.add_patch(Circle((x, y), 0.3, fc=color, ec="black", lw=1.0, zorder=5))
    ax.text(
        x, y, "×", ha="center", va="center", fontsize=14, color="white", weight="bold", zorder=6
    )
    sub = name.split("_")[1]
    return f"$m_{sub}$"


def draw_cell(ax):
    ax.set_xlim(-0.3, 10.6)
    ax.set_ylim(-3.0, 5.6)
    ax.set_aspect("equal")
    ax.axis("off")
    # the cell path, along the top
    yc = 4.8
    ax.text(-0.2, yc, "$c_{t-1}$", ha="left", va="center", fontsize=14)
    arrow(ax, (0.6, yc), (2.36, yc), lw=2.6)
    op(ax, 2.6, yc, "×")
    arrow(ax, (2.84, yc), (4.16, yc), lw=2.6)
    op(ax, 4.4, yc, "+")
    arrow(ax, (4.64, yc), (5.7, yc), lw=2.6)
    label = mask(ax, 6.0, yc, "cell")
    ax.text(6.0, yc + 0.38, label, ha="center", va="bottom", fontsize=13, color=PLACES["cell"][1])
    arrow(ax, (6.3, yc), (9.6, yc), lw=2.6)
    ax.text(9.7, yc, "$c_t$", ha="left", va="center", fontsize=14)
    ax.text(1.4, yc + 0.3, "cell path", ha="center", va="bottom", fontsize=10.5, color="0.3")
    # the gates, from the pre-activations below
    yg, ya = 2.9, 1.2
    gates = [(2.6, "f: σ"), (3.7, "i: σ"), (5.0, "g: tanh"), (6.3, "o: σ")]
    for x, text in gates:
        box(ax, x, yg, text, w=1.25 if "tanh" in text else 0.95)
    box(ax, 4.45, ya, r"$a_t = x_t W + \tilde h\, U + b$", w=4.6, h=0.7, fontsize=12.5)
    for x, _ in gates:
        arrow(ax, (x, ya + 0.35), (x, yg - 0.31))
    arrow(ax, (2.6, yg + 0.31), (2.6, yc - 0.24))  # f into the path
    op(ax, 4.4, 3.95, "×")  # i * (g * m_g)
    arrow(ax, (3.7, yg + 0.31), (4.24, 3.78))
    arrow(ax, (5.0, yg + 0.31), (5.0, 3.65))
    label = mask(ax, 5.0, 3.95, "update")
    ax.text(5.35, 3.95, label, ha="left", va="center", fontsize=13, color=PLACES["update"][1])
    arrow(ax, (4.7, 3.95), (4.64, 3.95))
    arrow(ax, (4.4, 4.19), (4.4, yc - 0.24))
    # h_t = o * tanh(c_t) reads the carried (masked) cell
    arrow(ax, (7.6, yc), (7.6, 4.13))
    box(ax, 7.6, 3.85, "tanh", w=0.9, h=0.55)
    arrow(ax, (7.6, 3.57), (7.6, 3.14))
    op(ax, 7.6, yg, "×")
    arrow(ax, (6.3 + 0.5, yg), (7.36, yg))
    arrow(ax, (7.84, yg), (9.6, yg))
    ax.text(9.7, yg, "$h_t$", ha="left", va="center", fontsize=14)
    # inputs: h_{t-1} through its mask, and x_t
    yi = -0.45
    ax.text(-0.2, yi, "$h_{t-1}$", ha="left", va="center", fontsize=14)
    arrow(ax, (0.75, yi), (1.2, yi))
    label = mask(ax, 1.5, yi, "hidden")
    ax.text(1.5, yi + 0.36, label, ha="center", va="bottom", fontsize=13, color=PLACES["hidden"][1])
    arrow(ax, (1.8, yi), (2.2, yi))
    ax.text(2.3, yi, r"$\tilde h = h_{t-1} \odot m_h$", ha="left", va="center", fontsize=12)
    arrow(ax, (3.3, yi + 0.3), (3.3, ya - 0.35))
    ax.text(5.8, yi, "$x_t$", ha="center", va="center", fontsize=14)
    arrow(ax, (5.8, yi + 0.3), (5.8, ya - 0.35))
    # which mask is which
    handles = [
        plt.Line2D(
            [], [], marker="o", ls="", markersize=11, markerfacecolor=c, markeredgecolor="black"
        )
        for _, c, _ in PLACES.values()
    ]
    labels = [f'"{w}": ${n}$ ({s})' for w, (n, _, s) in PLACES.items()]
    ax.legend(
        handles,
        labels,
        loc="lower center",
        bbox_to_anchor=(0.5, 0.0),
        fontsize=10.5,
        title="dropout_where: mask (from)",
        title_fontsize=10.5,
        ncol=1,
    )


def open_paths(where, per, T=50, B=1000, H=100, seed=0):
    """Fraction of units whose cell path from c_0 to c_t is open, t = 1..T, read off
    the masks ``lstm.forward`` draws (its U set to 0: only the cell links the steps)."""
    params = lstm.init(3, H, rng=np.random.default_rng(seed), dtype=np.float64)
    params["U"][:] = 0.0
    x = np.zeros((B, T, 3))
    _, cache = lstm.forward(
        params,
        x,
        rng=np.random.default_rng(seed + 1),
        recurrent_dropout=P,
        dropout_where=where,
        dropout_per=per,
    )
    if where != "cell":
        return np.ones(T)  # no mask on the cell path
    m = np.broadcast_to(cache["masks"]["cell"], (T, B, H))
    return (np.cumprod(m != 0, axis=0)).mean(axis=(1, 2))


def draw(out_dir):
    out_dir = Path(out_dir)
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(14, 6.0), gridspec_kw={"width_ratios": [1.25, 1]}
    )
    draw_cell(left)
    left.set_title("One LSTM step and the three places of a recurrent dropout mask", fontsize=12.5)

    t = np.arange(1, 51)
    cases = [
        ("update", "step", PLACES["update"][1], "-", '"update" or "hidden", any mask'),
        ("cell", "sequence", PLACES["cell"][1], "--", '"cell", one mask per sequence'),
        ("cell", "step", PLACES["cell"][1], "-", '"cell", a new mask every step'),
    ]
    for where, per, color, ls, label in cases:
        right.plot(t, open_paths(where, per), color=color, ls=ls, lw=2.2, label=label)
    right.plot(t, (1 - P) ** t, color="black", ls=":", lw=1.4, label="$(1-p)^t$")
    right.set_yscale("log")
    right.set_ylim(1e-4, 2)
    right.set_xlim(0, 50)
    right.set_xlabel("t (steps after $c_0$)", fontsize=12)
    right.set_ylabel("fraction of units that remember $c_0$", fontsize=12)
    right.set_title(
        f"Memory of $c_0$ kept along the cell path, p = {P}\n"
        "(masks drawn by lstm.forward, 1000 x 100 units)",
        fontsize=12.5,
    )
    right.tick_params(labelsize=11)
    right.grid(alpha=0.3)
    right.legend(fontsize=10.5, loc="lower left")
    fig.tight_layout()
    path = out_dir / "fig_08_dropout_masks.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return [path]
