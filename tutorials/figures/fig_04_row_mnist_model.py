"""Tutorial 4: the row-MNIST model, with the shape of every array.

One image of 28 x 28 pixels is read one row per step by the LSTM (the same W, U, b
at every step); only the last hidden state goes on, into a dense layer and the
softmax cross-entropy. The digit is the first training image of
``load_task("row-mnist")``, the one tutorial 4 prints.
"""

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

from minirnn.tasks import load_task

BOX = {"boxstyle": "round,pad=0.02,rounding_size=0.12", "linewidth": 1.5}
LSTM_COLOR, HEAD_COLOR, ROW_COLOR = "#dbe8f6", "#f8e2c8", "#d62728"


def box(ax, x, y, w, h, text, color, size=12):
    ax.add_patch(
        FancyBboxPatch((x - w / 2, y - h / 2), w, h, facecolor=color, edgecolor="0.25", **BOX)
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=size)


def arrow(ax, start, end, style="-|>", **kw):
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle=style,
            mutation_scale=16,
            color=kw.pop("color", "0.2"),
            linewidth=1.5,
            shrinkA=0,
            shrinkB=0,
            **kw,
        )
    )


def draw(out_dir):
    image = load_task("row-mnist", limit=1).train[0][0]  # (28, 28), values 0..1
    fig, ax = plt.subplots(figsize=(12.5, 5.4))
    ax.set_xlim(-0.6, 16.3)
    ax.set_ylim(-0.5, 6.1)
    ax.set_aspect("equal")
    ax.axis("off")

    # the image, with the rows the chain below shows outlined
    x0, y0, side = 0.0, 1.6, 3.0
    ax.imshow(
        image,
        cmap="gray_r",
        extent=(x0, x0 + side, y0, y0 + side),
        interpolation="nearest",
        zorder=1,
    )
    ax.add_patch(Rectangle((x0, y0), side, side, fill=False, edgecolor="0.3", lw=1))
    ax.text(
        x0 + side / 2,
        y0 + side + 0.55,
        "one image: 28 rows\nof 28 pixels",
        ha="center",
        va="bottom",
        fontsize=12,
    )
    row_h = side / 28
    steps = [1, 2, 10, 28]
    for t in steps:
        top = y0 + side - (t - 1) * row_h
        ax.add_patch(
            Rectangle(
                (x0 - 0.04, top - row_h),
                side + 0.08,
                row_h,
                fill=False,
                edgecolor=ROW_COLOR,
                lw=1.4,
                zorder=3,
            )
        )
        right = t == 2  # rows 1 and 2 touch: label them on two sides
        ax.text(
            x0 + side + 0.12 if right else x0 - 0.12,
            top - row_h / 2,
            f"t={t}",
            ha="left" if right else "right",
            va="center",
            fontsize=10.5,
            color=ROW_COLOR,
        )
    ax.text(
        x0 + side / 2,
        y0 - 0.3,
        "x: (B, 28, 28)\nrow t is the input $x_t$",
        ha="center",
        va="top",
        fontsize=12,
    )

    # the unrolled LSTM: one box per step, its row below it
    xs = {1: 5.6, 2: 7.75, 10: 10.0, 28: 12.25}
    y_cell, w, h = 4.3, 1.35, 1.0
    for t, xc in xs.items():
        box(ax, xc, y_cell, w, h, f"LSTM\nt = {t}", LSTM_COLOR)
        strip_y = 2.2
        ax.imshow(
            image[t - 1 : t],
            cmap="gray_r",
            vmin=0,
            vmax=1,
            interpolation="nearest",
            extent=(xc - w / 2, xc + w / 2, strip_y, strip_y + 0.3),
            zorder=1,
        )
        ax.add_patch(
            Rectangle((xc - w / 2, strip_y), w, 0.3, fill=False, edgecolor=ROW_COLOR, lw=1.4)
        )
        arrow(ax, (xc, strip_y + 0.32), (xc, y_cell - h / 2 - 0.02))
        ax.text(xc, strip_y - 0.12, f"$x_{{{t}}}$: (B, 28)", ha="center", va="top", fontsize=11)
    # the state passed along
    arrow(ax, (3.7, y_cell), (xs[1] - w / 2, y_cell))
    ax.text(
        (3.7 + xs[1] - w / 2) / 2,
        y_cell - 0.12,
        "$h_0 = 0$\n$c_0 = 0$",
        ha="center",
        va="top",
        fontsize=10.5,
    )
    pairs = [(1, 2, "-|>"), (2, 10, "-|>"), (10, 28, "-|>")]
    for a, b, style in pairs:
        ls = "-" if b == a + 1 else (0, (2, 2))
        arrow(ax, (xs[a] + w / 2, y_cell), (xs[b] - w / 2, y_cell), style=style, linestyle=ls)
        label = "$h_t, c_t$" if b == a + 1 else "$\\cdots$"
        ax.text((xs[a] + xs[b]) / 2, y_cell + 0.12, label, ha="center", va="bottom", fontsize=11)
    ax.text((xs[1] + xs[2]) / 2, y_cell - 0.12, "(B, H)", ha="center", va="top", fontsize=10)
    ax.text(
        (xs[1] + xs[28]) / 2,
        y_cell + h / 2 + 0.55,
        "the same W: (28, 4H), U: (H, 4H), b: (4H,) at every step",
        ha="center",
        va="bottom",
        fontsize=12,
    )

    # the head: only h_T goes on
    x_dense, x_loss = 15.0, 15.0
    arrow(ax, (xs[28] + w / 2, y_cell), (x_dense - 1.08, y_cell))
    ax.text(
        (xs[28] + w / 2 + x_dense - 1.08) / 2,
        y_cell + 0.12,
        "$h_T$",
        ha="center",
        va="bottom",
        fontsize=11,
    )
    ax.text(
        (xs[28] + w / 2 + x_dense - 1.08) / 2,
        y_cell - 0.12,
        "(B, H)",
        ha="center",
        va="top",
        fontsize=10,
    )
    box(ax, x_dense, y_cell, 2.15, 1.0, "Dense\n$z = h_T W_d + b_d$", HEAD_COLOR, size=11.5)
    ax.text(
        x_dense,
        y_cell + 0.5 + 0.1,
        "$W_d$: (H, 10), $b_d$: (10,)",
        ha="center",
        va="bottom",
        fontsize=10.5,
    )
    y_loss = 1.75
    arrow(ax, (x_dense, y_cell - 0.5), (x_dense, y_loss + 0.6))
    ax.text(
        x_dense + 0.1,
        (y_cell - 0.5 + y_loss + 0.6) / 2,
        "z: (B, 10)",
        ha="left",
        va="center",
        fontsize=10.5,
    )
    box(ax, x_loss, y_loss, 2.3, 1.2, "softmax\ncross-entropy", HEAD_COLOR, size=11.5)
    arrow(ax, (x_loss - 2.4, y_loss - 1.1), (x_loss - 1.15, y_loss - 0.3))
    ax.text(x_loss - 2.45, y_loss - 1.1, "labels y: (B,)", ha="right", va="center", fontsize=10.5)
    arrow(ax, (x_loss, y_loss - 0.6), (x_loss, y_loss - 1.2))
    ax.text(x_loss, y_loss - 1.25, "loss L: a number", ha="center", va="top", fontsize=10.5)
    ax.text(
        7.6,
        -0.35,
        "B: batch size (64),  H: hidden units (32 in tutorial 4, 100 by default)",
        ha="center",
        va="bottom",
        fontsize=10.5,
        color="0.3",
    )

    path = Path(out_dir) / "fig_04_row_mnist_model.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return [path]
