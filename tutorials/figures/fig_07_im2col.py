"""Tutorial 7: convolution as one matrix product (im2col).

A 4x4 one-channel image, a 3x3 kernel, stride 1, no padding: 2x2 windows. Each
window, flattened in (u, v) order, becomes one *column* of ``cols`` (9 x 4), the
layout of ``minirnn.functional.conv.im2col``; two filters flattened into the rows
of W2 (2 x 9) then give every output pixel of both filters in one product.
The entries shown are computed by ``im2col`` itself.
"""

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, Rectangle

from minirnn.functional.conv import im2col

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")  # one per window (i, j)
NAMES = np.array(list("abcdefghijklmnop")).reshape(4, 4)


def grid(ax, x0, y0, labels, *, fill=None, fontsize=12, edge="0.35"):
    """Draw a matrix of text cells with its top-left corner at (x0, y0)."""
    rows, cols = labels.shape
    for r in range(rows):
        for c in range(cols):
            face = "white" if fill is None else fill[r][c]
            ax.add_patch(
                Rectangle((x0 + c, y0 - r - 1), 1, 1, facecolor=face, edgecolor=edge, lw=0.8)
            )
            ax.text(
                x0 + c + 0.5,
                y0 - r - 0.5,
                labels[r, c],
                ha="center",
                va="center",
                fontsize=fontsize,
            )


def draw(out_dir):
    out_dir = Path(out_dir)
    # the image's entries are their indices, so im2col's output names the pixels
    image = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    cols = im2col(image, 3, 3, (1, 1), 2, 2)  # (C*KH*KW, N*OH*OW) = (9, 4)
    assert cols.shape == (9, 4)
    col_names = NAMES.ravel()[cols.astype(int)]

    fig, ax = plt.subplots(figsize=(10.5, 9.0))
    ax.set_xlim(-0.8, 20.5)
    ax.set_ylim(-14.6, 1.9)
    ax.set_aspect("equal")
    ax.axis("off")

    # 1. the image with its four 3x3 windows (top left)
    ix, iy = 1.5, -1.2
    f_shade = [["white"] * 4 for _ in range(4)]
    f_shade[1][1] = "0.85"  # pixel f
    grid(ax, ix, iy, NAMES, fill=f_shade, fontsize=13)
    for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        inset = 0.07 + 0.07 * k
        ax.add_patch(
            Rectangle(
                (ix + j + inset, iy - i - 3 + inset),
                3 - 2 * inset,
                3 - 2 * inset,
                fill=False,
                edgecolor=COLORS[k],
                lw=2.4,
            )
        )
    ax.text(ix + 2, iy + 0.4, "image x: N = C = 1, 4 x 4", ha="center", fontsize=12)
    ax.text(
        ix + 2,
        iy - 4.4,
        "four 3x3 windows (i, j)\n(stride 1, no padding)",
        ha="center",
        va="top",
        fontsize=11,
    )
    ax.text(
        ix + 2,
        iy - 6.0,
        "pixel f (grey) lies in all four:\nits gradient is the sum of\nits four copies (col2im)",
        ha="center",
        va="top",
        fontsize=10.5,
        color="0.25",
    )

    # 2. cols: one column per window (top right)
    cx, cy = 10.5, 0.0
    tint = [matplotlib.colors.to_rgba(COLORS[c], 0.18) for c in range(4)]
    grid(ax, cx, cy, col_names, fill=[tint] * 9, fontsize=12)
    for c in range(4):
        ax.text(
            cx + c + 0.5,
            cy + 0.3,
            f"({c // 2},{c % 2})",
            ha="center",
            va="bottom",
            fontsize=10,
            color=COLORS[c],
        )
    ax.text(cx + 2, cy + 1.1, "window (i, j)", ha="center", fontsize=10.5)
    ax.text(cx + 4.3, cy - 0.5, "(u, v) = (0, 0)", ha="left", va="center", fontsize=10)
    ax.text(cx + 4.3, cy - 8.5, "(u, v) = (2, 2)", ha="left", va="center", fontsize=10)
    ax.text(
        cx + 4.3,
        cy - 4.5,
        "cols = im2col(x)\n9 x 4 =\n(C·KH·KW) x\n(N·OH·OW)",
        ha="left",
        va="center",
        fontsize=11.5,
    )
    ax.add_patch(
        FancyArrowPatch(
            (ix + 4.4, iy - 1.5),
            (cx - 0.3, cy - 3.0),
            arrowstyle="-|>",
            mutation_scale=18,
            lw=1.5,
            color="0.3",
        )
    )
    ax.text(
        (ix + 4.4 + cx - 0.3) / 2,
        (iy - 1.5 + cy - 3.0) / 2 + 0.35,
        "im2col",
        ha="center",
        va="bottom",
        fontsize=11,
        rotation=-17,
    )

    # 3. W2 (bottom left) times cols (above) = out (bottom right, under cols)
    wx, wy = cx - 9.6, cy - 10.2
    w_names = np.array([[f"w{f}{k}" for k in range(1, 10)] for f in (1, 2)])
    grid(ax, wx, wy, w_names, fontsize=9)
    ax.text(
        wx + 4.5,
        wy - 2.3,
        "W2 = W.reshape(F, C·KH·KW): 2 x 9,\none filter per row",
        ha="center",
        va="top",
        fontsize=11.5,
    )
    out_names = np.array([[f"({c // 2},{c % 2})" for c in range(4)] for f in (1, 2)])
    grid(ax, cx, wy, out_names, fill=[tint] * 2, fontsize=10)
    ax.text(cx - 0.3, wy - 1, "=", ha="center", va="center", fontsize=13)
    for f in (1, 2):
        ax.text(cx + 4.2, wy - f + 0.5, f"filter {f}", ha="left", va="center", fontsize=10)
    ax.text(
        cx + 2,
        wy - 2.3,
        "out = W2 · cols + b\n2 x 4 = F x (N·OH·OW),\nreshaped to (N, F, OH, OW)",
        ha="center",
        va="top",
        fontsize=11.5,
    )
    for x_ in (cx + 0.5, cx + 3.5):  # row of W2 meets column of cols
        ax.plot([x_, x_], [cy - 9.05, wy + 0.05], color="0.55", lw=0.9, ls=":")
    ax.plot([wx + 9.05, cx - 0.55], [wy - 0.5, wy - 0.5], color="0.55", lw=0.9, ls=":")
    ax.text(
        wx + 4.5,
        wy + 0.35,
        "entry (f, window) of out = row f of W2 · that window's column",
        ha="center",
        va="bottom",
        fontsize=10.5,
        color="0.3",
    )

    fig.suptitle(
        "im2col: every window becomes a column of cols,\n"
        "and the convolution becomes one matrix product",
        fontsize=13.5,
        y=0.95,
    )
    path = out_dir / "fig_07_im2col.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return [path]
