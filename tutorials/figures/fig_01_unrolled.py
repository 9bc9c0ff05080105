"""The vanilla RNN unrolled over four steps, with both passes drawn.

Forwards (black): x_t enters through W, h_{t-1} through U, and h_t goes to the
layer above. Backwards (red): the layer above sends g_t = dhs[:, t] into every
h_t, and each step sends dh_t D_t U^T back to h_{t-1}; the gradient that reaches
h_0 from a loss on h_4 is the product of the Jacobians met on the way.
"""

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

FWD, BWD = "black", "#c0392b"
STEPS = 4
DX = 3.2  # distance between timesteps
R = 0.5  # radius of a state node


def arrow(ax, start, end, color, rad=0.0, lw=1.6, style="-|>"):
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle=style,
            mutation_scale=16,
            lw=lw,
            color=color,
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=0,
            shrinkB=0,
        )
    )


def box(ax, center, w, h, text, fc, fontsize=13):
    x, y = center
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05", fc=fc, ec="0.3", lw=1.2
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def draw(out_dir):
    fig, ax = plt.subplots(figsize=(11, 6.4), dpi=120)
    xs = [DX * t for t in range(STEPS + 1)]  # xs[0] is h_0
    top = 3.0  # the layer above
    box(
        ax,
        ((xs[1] + xs[-1]) / 2, top),
        xs[-1] - xs[1] + 2.2,
        0.75,
        "layer above and loss $L$",
        "#eef2f7",
    )
    for t, x in enumerate(xs):
        ax.add_patch(Circle((x, 0), R, fc="#fdebd0" if t else "0.92", ec="0.3", lw=1.4))
        ax.text(x, 0, f"$h_{t}$", ha="center", va="center", fontsize=15)
        if t == 0:
            ax.text(
                x, -0.85, "state\n(zeros if none)", ha="center", va="top", fontsize=10, color="0.35"
            )
            continue
        # input from below, through W
        box(ax, (x, -2.3), 0.9, 0.65, f"$x_{t}$", "#e8f6ef")
        arrow(ax, (x, -1.95), (x, -R), FWD)
        ax.text(x - 0.15, -1.25, "$W$", ha="right", va="center", fontsize=12)
        # output up to the layer above, and its gradient g_t back down
        arrow(ax, (x - 0.22, R * 0.9), (x - 0.22, top - 0.42), FWD)
        arrow(ax, (x + 0.22, top - 0.42), (x + 0.22, R * 0.9), BWD)
        ax.text(x + 0.32, top - 0.85, f"$g_{t}$", color=BWD, fontsize=13, va="center")
        # recurrence: h_{t-1} -> h_t through U, and dh_t D_t U^T back
        prev = xs[t - 1]
        arrow(ax, (prev + R, 0), (x - R, 0), FWD)
        ax.text((prev + x) / 2, -0.3, "$U$", ha="center", va="center", fontsize=12)
        arrow(ax, (x - 0.42, 0.28), (prev + 0.42, 0.28), BWD, rad=0.45)
        ax.text(
            (prev + x) / 2,
            1.32,
            f"$\\cdot\\, D_{t} U^\\top$",
            ha="center",
            va="center",
            fontsize=13,
            color=BWD,
        )

    # the Jacobian product from a loss on h_4 alone back to h_0
    y = -3.5
    arrow(ax, (xs[-1], y), (xs[0], y), BWD, lw=2.2)
    for t, x in enumerate(xs):
        ax.plot([x, x], [y - 0.12, y + 0.12], color=BWD, lw=1.5)
        if t:
            ax.text(x - DX / 2, y + 0.3, f"$D_{t} U^\\top$", ha="center", fontsize=12, color=BWD)
    ax.text(
        (xs[0] + xs[-1]) / 2,
        y - 0.4,
        "a loss on $h_4$ alone:   "
        r"$\partial L/\partial h_0 = \partial L/\partial h_4"
        r"\; D_4 U^\top \, D_3 U^\top \, D_2 U^\top \, D_1 U^\top,"
        r"\qquad D_t = \mathrm{diag}(1 - h_t^2)$",
        ha="center",
        va="top",
        fontsize=13,
        color=BWD,
    )
    ax.text(
        (xs[0] + xs[-1]) / 2,
        y - 1.1,
        "at every $h_t$ the two red arrows add:   "
        r"$dh_t = g_t + dh_{t+1}\, D_{t+1} U^\top$   (dhs[t] + dh_next in rnn.backward_loop)",
        ha="center",
        va="top",
        fontsize=12,
        color=BWD,
    )

    ax.plot([], [], color=FWD, lw=1.6, label="forward: $h_t = \\tanh(x_t W + h_{t-1} U + b)$")
    ax.plot([], [], color=BWD, lw=1.6, label="backward: gradients $dv = \\partial L/\\partial v$")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, 1.02), fontsize=11, frameon=False)
    ax.set_xlim(-1.3, xs[-1] + 1.3)
    ax.set_ylim(-5.1, top + 1.2)
    ax.set_aspect("equal")
    ax.axis("off")
    path = Path(out_dir) / "fig_01_unrolled.png"
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return [path]
