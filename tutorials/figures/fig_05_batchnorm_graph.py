"""Tutorial 5: batch norm's computational graph for one feature, forward and backward.

The graph of the tutorial's node table: x feeds the mean and the centring node, and
the centred values x^c feed the variance and the normalization. Each node shows its
forward value (black) and its gradient (red) for the tutorial's case by hand:
x = (1, 3), eps = 3, gamma = 2, beta = 1, and the upstream gradient dy = (1, 0). Each
edge carries the message its backward pass sends down it; at the two fan-outs (x and
x^c) the messages add up. The values come from the library's forward pass; the
gradients are the node-by-node steps, checked against ``batchnorm_backward``.
"""

from fractions import Fraction
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from minirnn import functional as F

GRAD = "#c0392b"
NODE, FAN = "#eef3f9", "#fdebd3"


def fmt(v):
    """A number or a vector as short fractions: (7/8, 1/8)."""
    v = np.atleast_1d(np.asarray(v, dtype=float)).ravel()
    parts = [str(Fraction(float(a)).limit_denominator(64)).replace("-", "\u2212") for a in v]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


def case_by_hand():
    """Every forward value and gradient of the graph, for the tutorial's case."""
    x, gamma, beta, eps = np.array([[1.0], [3.0]]), np.array([2.0]), np.array([1.0]), 3.0
    dy = np.array([[1.0], [0.0]])
    y, cache = F.batchnorm_forward(x, gamma, beta, eps=eps)
    M = x.shape[0]
    mu, var, s, xhat = cache["mean"], cache["var"], cache["inv_std"], cache["xhat"]
    xc = x - mu
    g = {"dy": dy, "dgamma": (dy * xhat).sum(0), "dbeta": dy.sum(0)}
    g["dxhat"] = gamma * dy
    msg = {("xhat", "xc"): g["dxhat"] * s}  # normalize, into xc
    g["ds"] = (g["dxhat"] * xc).sum(0)  # normalize, into s
    g["dvar"] = -0.5 * s**3 * g["ds"]
    msg[("var", "xc")] = 2 / M * xc * g["dvar"]  # the second path into xc
    g["dxc"] = msg[("xhat", "xc")] + msg[("var", "xc")]
    msg[("xc", "x")] = g["dxc"]
    g["dmu"] = -g["dxc"].sum(0)
    msg[("mu", "x")] = np.broadcast_to(g["dmu"] / M, x.shape)  # the second path into x
    g["dx"] = msg[("xc", "x")] + msg[("mu", "x")]
    dx, dgamma, dbeta = F.batchnorm_backward(dy, cache)
    np.testing.assert_allclose(g["dx"], dx, atol=1e-12)
    np.testing.assert_allclose([g["dgamma"], g["dbeta"]], [dgamma, dbeta], atol=1e-12)
    fwd = {"x": x, "mu": mu, "xc": xc, "var": var, "s": s, "xhat": xhat, "y": y}
    return fwd, g, msg


def node(ax, xy, title, value, grad, fan=False, w=3.2, h=1.45):
    x, y = xy
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.15",
            facecolor=FAN if fan else NODE,
            edgecolor="#d35400" if fan else "0.3",
            linewidth=2.4 if fan else 1.4,
            zorder=2,
        )
    )
    ax.text(x, y + 0.42, title, ha="center", va="center", fontsize=12, zorder=3)
    ax.text(x, y + 0.0, value, ha="center", va="center", fontsize=12, zorder=3)
    ax.text(x, y - 0.42, grad, ha="center", va="center", fontsize=12, color=GRAD, zorder=3)


def edge(ax, a, b):
    ax.add_patch(
        FancyArrowPatch(
            a,
            b,
            arrowstyle="-|>",
            mutation_scale=18,
            color="0.25",
            linewidth=1.5,
            shrinkA=0,
            shrinkB=0,
            zorder=1,
        )
    )


def message(ax, x, y, text, ha="center"):
    """What a node's backward pass sends down an edge, in red."""
    ax.text(
        x,
        y,
        text,
        ha=ha,
        va="center",
        fontsize=11.5,
        color=GRAD,
        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0},
        zorder=4,
    )


def draw(out_dir):
    fwd, g, msg = case_by_hand()
    fig, ax = plt.subplots(figsize=(14.5, 5.6))
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
    ax.set_xlim(-3.3, 23.3)
    ax.set_ylim(-2.6, 4.0)
    ax.axis("off")
    w, h = 3.2, 1.45
    lo, hi = 0.0, 3.0
    P = {
        "x": (0.0, lo),
        "mu": (3.4, hi),
        "xc": (6.8, lo),
        "var": (10.1, hi),
        "s": (14.7, hi),
        "xhat": (17.9, lo),
        "y": (21.6, hi),
    }

    node(ax, P["x"], "$x$", fmt(fwd["x"]), "dx = " + fmt(g["dx"]), fan=True)
    node(ax, P["mu"], "$\\mu$ = mean(x)", fmt(fwd["mu"]), "d$\\mu$ = " + fmt(g["dmu"]))
    node(ax, P["xc"], "$x^c = x - \\mu$", fmt(fwd["xc"]), "d$x^c$ = " + fmt(g["dxc"]), fan=True)
    node(
        ax,
        P["var"],
        "$\\sigma^2$ = mean($(x^c)^2$)",
        fmt(fwd["var"]),
        "d$\\sigma^2$ = " + fmt(g["dvar"]),
    )
    node(ax, P["s"], "$s = (\\sigma^2 + \\epsilon)^{-1/2}$", fmt(fwd["s"]), "ds = " + fmt(g["ds"]))
    node(ax, P["xhat"], "$\\hat x = x^c s$", fmt(fwd["xhat"]), "d$\\hat x$ = " + fmt(g["dxhat"]))
    node(ax, P["y"], "$y = \\gamma \\hat x + \\beta$", fmt(fwd["y"]), "dy = " + fmt(g["dy"]))
    hw, hh = w / 2, h / 2

    # x fans out: into the mean (up) and into the centring node (along the bottom)
    edge(ax, (0.7, lo + hh), (P["mu"][0] - 0.7, hi - hh))
    message(ax, 1.05, 1.5, "d$\\mu$/M = " + fmt(msg[("mu", "x")]), ha="right")
    edge(ax, (hw, lo), (P["xc"][0] - hw, lo))
    message(ax, 3.4, lo - 0.3, "d$x^c$ = " + fmt(msg[("xc", "x")]))
    edge(ax, (P["mu"][0] + 0.7, hi - hh), (P["xc"][0] - 0.7, lo + hh))
    message(ax, 3.4, 1.2, "$-\\sum$ d$x^c$")
    # x^c fans out: into the variance (up) and into the normalization (along the bottom)
    edge(ax, (P["xc"][0] + 0.7, lo + hh), (P["var"][0] - 0.7, hi - hh))
    message(ax, 9.0, 1.35, "(2/M) $x^c$ d$\\sigma^2$\n= " + fmt(msg[("var", "xc")]), ha="left")
    edge(ax, (P["xc"][0] + hw, lo), (P["xhat"][0] - hw, lo))
    message(ax, 12.1, lo - 0.3, "s d$\\hat x$ = " + fmt(msg[("xhat", "xc")]))
    edge(ax, (P["var"][0] + hw, hi), (P["s"][0] - hw, hi))
    message(ax, 12.4, hi + 0.38, "$-\\frac{1}{2} s^3$ ds")
    edge(ax, (P["s"][0] + 0.6, hi - hh), (P["xhat"][0] - 0.6, lo + hh))
    message(ax, 16.55, 1.5, "$\\sum$ d$\\hat x\\ x^c$", ha="left")
    edge(ax, (P["xhat"][0] + 0.6, lo + hh), (P["y"][0] - 0.6, hi - hh))
    message(ax, 20.0, 1.3, "$\\gamma$ dy", ha="left")
    ax.text(
        P["y"][0], lo + 0.3, "$\\gamma$ = 2, $\\beta$ = 1", ha="center", va="center", fontsize=12
    )
    ax.text(
        P["y"][0],
        lo - 0.2,
        f"d$\\gamma$ = {fmt(g['dgamma'])}, d$\\beta$ = {fmt(g['dbeta'])}",
        ha="center",
        va="center",
        fontsize=12,
        color=GRAD,
    )

    ax.text(
        9.3,
        -1.3,
        "one feature, M = 2 rows:  x = (1, 3),  $\\epsilon$ = 3,  $\\gamma$ = 2,  "
        "$\\beta$ = 1;  upstream gradient dy = (1, 0)\n"
        "black: forward values;  red: gradients, and beside each edge what its "
        "backward pass sends down it\n"
        "orange nodes fan out: their gradient is the sum of the two messages "
        "that reach them",
        ha="center",
        va="top",
        fontsize=12,
        linespacing=1.5,
    )

    path = Path(out_dir) / "fig_05_batchnorm_graph.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return [path]
