"""The two GRU conventions of ``minirnn/cells/gru.py``, side by side.

Both cells are drawn in the same layout: the state h_{t-1} runs along the top,
scaled by z and topped up by (1 - z) * n (the path with no weight matrix, as the
LSTM's cell), and the gates z and r come from h_{t-1} and x_t. Only the shaded
candidate column differs: ``reset_after=False`` (Cho et al. 2014, TensorFlow 1's
GRUCell) multiplies h_{t-1} by r and then by U_n; ``reset_after=True`` (cuDNN,
PyTorch, Keras's default) multiplies by U_n, adds the recurrent bias bh_n, and then
multiplies by r.
"""

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

PATH, GRAD, INK, DIFF = "#e67e22", "#c0392b", "0.15", "#ebe3f5"
Y_TOP, Y_BOT, Y_ONE_MINUS = 6.4, 0.6, 5.3  # state line, input line, (1 - z) line
X_Z, X_R, X_N, X_END = 3.0, 5.0, 7.6, 9.6  # z gate, r gate, candidate column
Y_OP1, Y_OP2, Y_TANH = 2.0, 3.1, 4.2  # the candidate column's three nodes


def line(ax, points, color=INK, lw=1.5):
    """A polyline through ``points`` with an arrowhead on its last segment."""
    xs, ys = zip(*points[:-1])
    ax.plot(xs, ys, color=color, lw=lw, zorder=2)
    ax.add_patch(
        FancyArrowPatch(
            points[-2],
            points[-1],
            arrowstyle="-|>",
            mutation_scale=13,
            lw=lw,
            color=color,
            shrinkA=0,
            shrinkB=0,
            zorder=2,
        )
    )


def op(ax, xy, symbol, r=0.28):
    """A pointwise operation in a small circle."""
    ax.add_patch(Circle(xy, r, fc="white", ec=INK, lw=1.4, zorder=4))
    ax.text(*xy, symbol, ha="center", va="center", fontsize=13, zorder=5)


def box(ax, xy, w, h, text, fontsize=11.5):
    """A rounded box of size (w, h) centred at xy, with a label."""
    x, y = xy
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.03",
            fc="#fcf3cf",
            ec=INK,
            lw=1.2,
            zorder=4,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=5)


def gate(ax, x, name, block):
    """A gate box: sigma, and the column block of zrn it fills."""
    box(ax, (x, Y_OP1), 1.7, 0.9, "")
    ax.text(x, Y_OP1 + 0.17, r"$\sigma$", ha="center", va="center", fontsize=13, zorder=5)
    ax.text(
        x,
        Y_OP1 - 0.22,
        block,
        ha="center",
        va="center",
        fontsize=8,
        family="monospace",
        color="0.25",
        zorder=5,
    )
    ax.text(x + 0.12, Y_OP1 + 0.7, f"${name}$", ha="left", va="center", fontsize=14)
    line(ax, [(x, Y_BOT), (x, Y_OP1 - 0.45)])


def panel(ax, reset_after):
    """One convention's cell."""
    # the candidate column, shaded: the only part that differs
    ax.add_patch(
        FancyBboxPatch(
            (X_N - 1.2, Y_OP1 - 0.55),
            2.4,
            Y_TANH - Y_OP1 + 1.05,
            boxstyle="round,pad=0.05",
            fc=DIFF,
            ec="none",
            zorder=0,
        )
    )
    # the state path along the top: z * h_{t-1} + (1 - z) * n, no weight matrix
    ax.plot(
        [-0.6, X_END], [Y_TOP, Y_TOP], color=PATH, lw=7, alpha=0.35, zorder=1, solid_capstyle="butt"
    )
    line(ax, [(-0.6, Y_TOP), (X_Z - 0.28, Y_TOP)], lw=2)
    line(ax, [(X_Z + 0.28, Y_TOP), (X_N - 0.28, Y_TOP)], lw=2)
    line(ax, [(X_N + 0.28, Y_TOP), (X_END, Y_TOP)], lw=2)
    op(ax, (X_Z, Y_TOP), "×")
    op(ax, (X_N, Y_TOP), "+")
    ax.text(-0.6, Y_TOP + 0.3, "$h_{t-1}$", ha="left", va="bottom", fontsize=13)
    ax.text(X_END, Y_TOP + 0.3, "$h_t$", ha="right", va="bottom", fontsize=13)
    line(ax, [(X_END - 0.1, Y_TOP + 0.95), (-0.4, Y_TOP + 0.95)], color=GRAD, lw=1.4)
    ax.text(
        (X_END - 0.5) / 2,
        Y_TOP + 1.05,
        r"backwards: $dh_{t-1} \ni dh_t \odot z$",
        ha="center",
        va="bottom",
        fontsize=11.5,
        color=GRAD,
    )

    # h_{t-1} and x_t feed the gates and the candidate from below
    line(ax, [(0.4, Y_TOP), (0.4, Y_BOT), (X_N, Y_BOT), (X_N, Y_OP1 - 0.31)])
    ax.plot(1.7, Y_BOT, "o", color=INK, ms=5, zorder=3)
    line(ax, [(1.7, Y_BOT - 1.0), (1.7, Y_BOT)])
    ax.text(1.7, Y_BOT - 1.1, "$x_t$", ha="center", va="top", fontsize=13)
    gate(ax, X_Z, "z", "zrn[:, :H]")
    gate(ax, X_R, "r", "zrn[:, H:2H]")
    ax.text(
        (X_Z + X_R) / 2,
        Y_BOT - 0.2,
        r"$a_{zr} = xw_{zr} + h_{t-1} U_{zr}$" + (r"$\, + \, b^h_{zr}$" if reset_after else ""),
        ha="center",
        va="top",
        fontsize=10.5,
        color="0.25",
    )
    ax.text(
        (X_Z + X_N) / 2,
        Y_TOP + 0.22,
        "no weight matrix",
        ha="center",
        va="bottom",
        fontsize=10,
        color="#a04000",
    )

    # z: to the top multiply, and as 1 - z to the candidate's multiply
    line(ax, [(X_Z, Y_OP1 + 0.31), (X_Z, Y_TOP - 0.28)])
    op(ax, (5.3, Y_ONE_MINUS), "1−", r=0.3)
    line(ax, [(X_Z, Y_ONE_MINUS), (5.0, Y_ONE_MINUS)])
    line(ax, [(5.6, Y_ONE_MINUS), (X_N - 0.26, Y_ONE_MINUS)])
    op(ax, (X_N, Y_ONE_MINUS), "×", r=0.26)
    line(ax, [(X_N, Y_ONE_MINUS + 0.26), (X_N, Y_TOP - 0.28)])

    # the candidate column
    if reset_after:
        box(ax, (X_N, Y_OP1), 1.7, 0.62, r"$\cdot\, U_n + b^h_n$")
        ax.text(
            X_N + 0.12,
            (Y_OP1 + Y_OP2) / 2 + 0.03,
            "hu_n",
            ha="left",
            va="center",
            fontsize=9.5,
            family="monospace",
            color="0.3",
        )
        op(ax, (X_N, Y_OP2), "×")
        line(ax, [(X_N, Y_OP1 + 0.31), (X_N, Y_OP2 - 0.28)])
        line(
            ax, [(X_R + 0.85, Y_OP1), (X_R + 1.05, Y_OP1), (X_R + 1.05, Y_OP2), (X_N - 0.28, Y_OP2)]
        )
        line(ax, [(X_N, Y_OP2 + 0.28), (X_N, Y_TANH - 0.31)])
        caption = r"$r \odot (h_{t-1} U_n + b^h_n)$"
    else:
        op(ax, (X_N, Y_OP1), "×")
        line(ax, [(X_R + 0.85, Y_OP1), (X_N - 0.28, Y_OP1)])
        box(ax, (X_N, Y_OP2), 1.2, 0.62, r"$\cdot\, U_n$")
        line(ax, [(X_N, Y_OP1 + 0.28), (X_N, Y_OP2 - 0.31)])
        line(ax, [(X_N, Y_OP2 + 0.31), (X_N, Y_TANH - 0.31)])
        caption = r"$(r \odot h_{t-1})\, U_n$"
    box(ax, (X_N, Y_TANH), 2.2, 0.62, r"$\tanh(xw_n + \cdot\,)$", fontsize=11)
    ax.text(X_N + 0.15, Y_TANH + 0.55, "$n$", ha="left", va="center", fontsize=14)
    ax.text(
        X_N + 0.5,
        Y_TANH + 0.55,
        "zrn[:, 2H:]",
        ha="left",
        va="center",
        fontsize=8.5,
        family="monospace",
        color="0.3",
    )
    line(ax, [(X_N, Y_TANH + 0.31), (X_N, Y_ONE_MINUS - 0.26)])
    ax.text(X_N, Y_OP1 - 0.65, caption, ha="center", va="top", fontsize=11.5, color="#5b2c6f")


BACKWARD = {  # what differs backwards, with the code's names
    False: r"$\mathtt{d\_rh} = da_n U_n^\top, \quad dr = \mathtt{d\_rh} \odot h_{t-1},"
    r"\quad dU_n = \sum_t\, (r \odot h_{t-1})^\top da_n$",
    True: r"$dr = da_n \odot \mathtt{hu\_n}, \quad dU_n = \sum_t\, h_{t-1}^\top (r \odot da_n),"
    r"\quad db^h_n = \sum_{t,\mathrm{batch}} r \odot da_n$",
}
TITLES = {
    False: "reset_after=False\nCho et al. 2014, TensorFlow 1's GRUCell",
    True: "reset_after=True\ncuDNN, PyTorch, Keras's default",
}


def draw(out_dir):
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.6), dpi=120)
    for ax, reset_after in zip(axes, (False, True)):
        panel(ax, reset_after)
        ax.set_title(TITLES[reset_after], fontsize=13, pad=4)
        ax.text(
            X_END / 2 + 0.4,
            -1.25,
            "backwards, the candidate's terms:",
            ha="center",
            va="top",
            fontsize=11,
            color=GRAD,
        )
        ax.text(
            X_END / 2 + 0.4,
            -1.8,
            BACKWARD[reset_after],
            ha="center",
            va="top",
            fontsize=11.5,
            color=GRAD,
        )
        ax.set_xlim(-0.8, X_END + 1.6)
        ax.set_ylim(-2.5, Y_TOP + 1.6)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.subplots_adjust(wspace=0.04)
    path = Path(out_dir) / "fig_03_gru_conventions.png"
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return [path]
