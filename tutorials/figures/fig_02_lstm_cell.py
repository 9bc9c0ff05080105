"""One LSTM step as ``minirnn/cells/lstm.py`` computes it, cell-state path highlighted.

The four gates come from one pre-activation a_t = x_t W + b + h_{t-1} U of width
4H, whose column blocks are i, f, o, g: after the activations the code keeps them
in ``ifog``. The cell state runs along the top: multiplied by f, added to i * g,
with no weight matrix on the way. Backwards, that path carries dc_t to
dc_{t-1} = dc_t * f: the constant error carousel (red, dashed).
"""

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

CELL, GRAD, INK = "#e67e22", "#c0392b", "0.15"
Y_C, Y_GATE, Y_A, Y_H = 6.2, 3.1, 1.35, 0.2  # heights: cell line, gates, a_t, h line
X_F, X_I, X_G, X_O, X_TANH = 3.2, 5.0, 6.8, 8.9, 10.6
X_END = 13.2  # where c_t and h_t leave the step
GW, GH = 1.6, 0.95  # gate box size


def line(ax, points, color=INK, lw=1.6, ls="-"):
    """A polyline through ``points`` with an arrowhead on its last segment."""
    xs, ys = zip(*points[:-1])
    ax.plot(xs, ys, color=color, lw=lw, ls=ls, zorder=2)
    ax.add_patch(
        FancyArrowPatch(
            points[-2],
            points[-1],
            arrowstyle="-|>",
            mutation_scale=14,
            lw=lw,
            color=color,
            ls=ls,
            shrinkA=0,
            shrinkB=0,
            zorder=2,
        )
    )


def op(ax, xy, symbol):
    """A pointwise operation: a small circle with x or +."""
    ax.add_patch(Circle(xy, 0.32, fc="white", ec=INK, lw=1.5, zorder=4))
    ax.text(*xy, symbol, ha="center", va="center", fontsize=15, zorder=5)


def gate(ax, x, activation, name, block):
    """A gate box: its activation, the column block of ifog it fills, its letter."""
    ax.add_patch(
        FancyBboxPatch(
            (x - GW / 2, Y_GATE - GH / 2),
            GW,
            GH,
            boxstyle="round,pad=0.03",
            fc="#fcf3cf",
            ec=INK,
            lw=1.3,
            zorder=4,
        )
    )
    ax.text(x, Y_GATE + 0.17, activation, ha="center", va="center", fontsize=13, zorder=5)
    ax.text(
        x,
        Y_GATE - 0.25,
        block,
        ha="center",
        va="center",
        fontsize=8,
        family="monospace",
        color="0.25",
        zorder=5,
    )
    ax.text(
        x + 0.15, Y_GATE + GH / 2 + 0.3, f"${name}$", ha="left", va="center", fontsize=16, zorder=5
    )
    line(ax, [(x, Y_A + 0.42), (x, Y_GATE - GH / 2)])  # from the pre-activation


def draw(out_dir):
    fig, ax = plt.subplots(figsize=(12, 7.6), dpi=120)
    ax.add_patch(
        FancyBboxPatch(
            (0.9, 0.55),
            11.0,
            6.6,
            boxstyle="round,pad=0.1",
            fc="#f7f9fb",
            ec="0.6",
            lw=1.2,
            zorder=0,
        )
    )

    # the cell state, left to right along the top: the constant error carousel
    ax.plot(
        [-1.0, X_END], [Y_C, Y_C], color=CELL, lw=8, alpha=0.35, zorder=1, solid_capstyle="butt"
    )
    line(ax, [(-1.0, Y_C), (X_F - 0.32, Y_C)], lw=2.2)
    line(ax, [(X_F + 0.32, Y_C), (X_G - 0.32, Y_C)], lw=2.2)
    line(ax, [(X_G + 0.32, Y_C), (X_END, Y_C)], lw=2.2)
    op(ax, (X_F, Y_C), "×")
    op(ax, (X_G, Y_C), "+")
    ax.text(-1.0, Y_C - 0.3, "$c_{t-1}$\nc_prev\n= cs[t]", ha="left", va="top", fontsize=11)
    ax.text(X_END, Y_C - 0.3, "$c_t$\nc\n= cs[t+1]", ha="right", va="top", fontsize=11)
    ax.text(
        (X_G + X_END) / 2 - 0.3,
        Y_C + 0.3,
        "cell state: no weight matrix on this path",
        ha="center",
        va="bottom",
        fontsize=10.5,
        color="#a04000",
    )

    # backwards along the cell state: dc_{t-1} = dc_t * f
    line(ax, [(X_END - 0.2, Y_C + 1.05), (-0.8, Y_C + 1.05)], color=GRAD, lw=1.8, ls="--")
    ax.text(
        6.1,
        Y_C + 1.2,
        r"backwards: $dc_{t-1} = dc_t \odot f$ (dc_prev in the code): "
        "the constant error carousel",
        ha="center",
        va="bottom",
        fontsize=12,
        color=GRAD,
    )

    # the pre-activation, one product for all four gates
    ax.add_patch(
        FancyBboxPatch(
            (2.3, Y_A - 0.42),
            7.6,
            0.84,
            boxstyle="round,pad=0.03",
            fc="#e8f6ef",
            ec=INK,
            lw=1.3,
            zorder=3,
        )
    )
    ax.text(
        6.1,
        Y_A + 0.17,
        "$a_t = x_t W + b + h_{t-1} U$",
        ha="center",
        va="center",
        fontsize=12,
        zorder=4,
    )
    ax.text(
        6.1,
        Y_A - 0.2,
        "xw[t] + b + h_prev @ U,  (B, 4H)",
        ha="center",
        va="center",
        fontsize=9.5,
        family="monospace",
        color="0.25",
        zorder=4,
    )
    ax.text(3.0, -1.0, "$x_t$", ha="center", va="center", fontsize=14)
    line(ax, [(3.0, -0.75), (3.0, Y_A - 0.42)])
    ax.text(-1.0, Y_H - 0.3, "$h_{t-1}$\nh_prev\n= hs[t]", ha="left", va="top", fontsize=11)
    line(ax, [(-1.0, Y_H), (1.6, Y_H), (1.6, Y_A), (2.3, Y_A)])

    # the gates: column blocks of ifog
    gate(ax, X_F, r"$\sigma$", "f", "ifog[:, H:2H]")
    gate(ax, X_I, r"$\sigma$", "i", "ifog[:, :H]")
    gate(ax, X_G, "tanh", "g", "ifog[:, 3H:]")
    gate(ax, X_O, r"$\sigma$", "o", "ifog[:, 2H:3H]")
    y_ig = 4.75  # where i * g is formed
    line(ax, [(X_F, Y_GATE + GH / 2), (X_F, Y_C - 0.32)])  # f -> forget
    op(ax, (X_G, y_ig), "×")
    line(ax, [(X_I, Y_GATE + GH / 2), (X_I, y_ig), (X_G - 0.32, y_ig)])
    line(ax, [(X_G, Y_GATE + GH / 2), (X_G, y_ig - 0.32)])
    line(ax, [(X_G, y_ig + 0.32), (X_G, Y_C - 0.32)])

    # the output: h_t = o * tanh(c_t)
    ax.add_patch(
        FancyBboxPatch(
            (X_TANH - 0.5, y_ig - 0.3),
            1.0,
            0.6,
            boxstyle="round,pad=0.03",
            fc="#fcf3cf",
            ec=INK,
            lw=1.3,
            zorder=4,
        )
    )
    ax.text(X_TANH, y_ig, "tanh", ha="center", va="center", fontsize=13, zorder=5)
    ax.text(
        X_TANH - 0.6,
        y_ig,
        "tanh_c",
        ha="right",
        va="center",
        fontsize=10,
        family="monospace",
        color="0.25",
    )
    line(ax, [(X_TANH, Y_C), (X_TANH, y_ig + 0.3)])
    op(ax, (X_TANH, Y_GATE), "×")
    line(ax, [(X_TANH, y_ig - 0.3), (X_TANH, Y_GATE + 0.32)])
    line(ax, [(X_O + GW / 2, Y_GATE), (X_TANH - 0.32, Y_GATE)])
    line(ax, [(X_TANH, Y_GATE - 0.32), (X_TANH, Y_H), (X_END, Y_H)])
    ax.text(X_END, Y_H - 0.3, "$h_t$\nh\n= hs[t+1]", ha="right", va="top", fontsize=11)
    line(ax, [(12.5, Y_H), (12.5, 2.4)])  # up to the layer above
    ax.text(12.5, 2.55, "output $h_t$\nhs[:, t]", ha="center", va="bottom", fontsize=10.5)

    ax.text(
        6.1,
        -1.55,
        "the code keeps the activated gates in ifog = [ i | f | o | g ], "
        "each block H columns wide: (B, 4H) per step",
        ha="center",
        va="top",
        fontsize=10.5,
        color="0.25",
    )
    ax.set_xlim(-1.2, X_END + 0.2)
    ax.set_ylim(-2.0, Y_C + 1.8)
    ax.set_aspect("equal")
    ax.axis("off")
    path = Path(out_dir) / "fig_02_lstm_cell.png"
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return [path]
