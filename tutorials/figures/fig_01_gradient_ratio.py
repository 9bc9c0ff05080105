"""Tutorial 1's measurement of vanishing and exploding gradients, plotted.

For U = rho Q (Q orthogonal, so rho is both the spectral radius and the largest
singular value of U) and a loss on the last output only, the ratio
|dL/dh_0| / |dL/dh_T| is measured with ``minirnn.cells.rnn`` for every length T
from 1 to 60, exactly as ``gradient_ratio`` in ``tutorials/01_rnn_bptt.md`` does
(same sizes, same seed, inputs of scale 0.1). The dashed lines are rho^T: the
bound when rho < 1, and the exact ratio when the input is zero.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from minirnn.cells import rnn

B, I, H = 3, 4, 6  # the tutorial's sizes
LENGTHS = np.arange(1, 61)
RHOS = {0.5: "tab:blue", 1.0: "tab:green", 1.5: "tab:red"}


def gradient_ratio(rho, T, x_scale, seed=1):
    """|dL/dh_0| / |dL/dh_T| per example: the function of tutorial 1."""
    r = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(r.standard_normal((H, H)))
    p = {"W": r.standard_normal((I, H)) / np.sqrt(I), "U": rho * Q, "b": np.zeros(H)}
    xs = x_scale * r.standard_normal((B, T, I))
    hs, cache = rnn.forward(p, xs, np.zeros((B, H)))
    d = np.zeros_like(hs)
    d[:, -1] = r.standard_normal((B, H))  # loss on the last output only
    _, g = rnn.backward(p, d, cache)
    return np.linalg.norm(g["h0"], axis=1) / np.linalg.norm(d[:, -1], axis=1)


def draw(out_dir):
    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=120)
    for rho, color in RHOS.items():
        ratios = np.array([gradient_ratio(rho, T, x_scale=0.1) for T in LENGTHS])  # (T, B)
        for n in range(B):  # each example, faintly
            ax.plot(LENGTHS, ratios[:, n], color=color, lw=0.8, alpha=0.35)
        ax.plot(LENGTHS, ratios.mean(axis=1), color=color, lw=2.2, label=rf"$\rho = {rho}$")
        ax.plot(LENGTHS, rho ** LENGTHS.astype(float), color=color, lw=1.2, ls="--")
    ax.set_yscale("log")
    ax.set_ylim(1e-19, 1e6)
    ax.set_xlim(0, 61)
    ax.set_xlabel("sequence length $T$ (steps between $h_0$ and the loss)", fontsize=11)
    ax.set_ylabel(r"$\|\partial L/\partial h_0\| \;/\; \|\partial L/\partial h_T\|$", fontsize=12)
    ax.set_title(
        r"Gradient reaching $h_0$ through $T$ steps of $\tanh(x_t W + h_{t-1}U + b)$,"
        "\n"
        r"$U = \rho Q$ with $Q$ orthogonal, inputs of scale 0.1",
        fontsize=11,
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.tick_params(labelsize=10)
    colors = ax.legend(
        title="colour: spectral radius",
        fontsize=9.5,
        title_fontsize=9.5,
        loc="lower left",
        framealpha=0.95,
    )
    ax.add_artist(colors)
    styles = [
        plt.Line2D([], [], color="k", lw=2.2),
        plt.Line2D([], [], color="k", lw=0.8, alpha=0.4),
        plt.Line2D([], [], color="k", lw=1.2, ls="--"),
    ]
    ax.legend(
        styles,
        [
            f"measured, mean of {B} examples",
            "measured, each example",
            r"$\rho^T$: bound if $\rho < 1$; exact if $x = 0$",
        ],
        fontsize=9.5,
        loc="upper right",
        bbox_to_anchor=(0.995, 0.615),
        framealpha=0.95,
    )
    ax.annotate(
        "saturation ($D_t \\to 0$)\nstops the growth",
        xy=(20, 8),
        xytext=(22, 1e-3),
        fontsize=9.5,
        color="tab:red",
        arrowprops={"arrowstyle": "->", "color": "tab:red", "lw": 1},
    )
    path = Path(out_dir) / "fig_01_gradient_ratio.png"
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return [path]
