"""Tutorial 6: the variable-computation mask as a function of the unit index.

For D = 20 units and three values of the scheduler's m_t, the mask
e_i = Thres_eps(sigma(lambda (m_t D - i))) computed by the library's compiled
``unit_mask``: soft at two sharpness values, and hard. The dashed curves are the
sigmoid s_i before the threshold; the shaded strip is the identity band
[eps, 1 - eps], the only place where a unit passes a gradient to the scheduler.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from minirnn.cells import _vc_mask as vc

D, EPS = 20, 0.1
M_VALUES = (0.25, 0.5, 0.75)
PANELS = (("soft", 1.0), ("soft", 4.0), ("hard", 4.0))


def masks(threshold, sharpness):
    """(s, e): the sigmoid and the mask, both (len(M_VALUES), D)."""
    m = np.array(M_VALUES)
    lam_D, lam_i = vc.mask_constants(sharpness, D, np.float64)
    e = vc.unit_mask(m, lam_D, lam_i, EPS, threshold == "soft")
    s = 0.5 * np.tanh(0.5 * (lam_D * m[:, None] - lam_i)) + 0.5
    return s, e


def draw(out_dir):
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.4), sharey=True)
    i = np.arange(D)
    for ax, (threshold, lam) in zip(axes, PANELS):
        s, e = masks(threshold, lam)
        if threshold == "soft":
            ax.axhspan(EPS, 1 - EPS, color="0.9", zorder=0)
        for k, m in enumerate(M_VALUES):
            color = f"C{k}"
            ax.plot(i, s[k], "--", color=color, lw=1, alpha=0.7)
            ax.plot(
                i,
                e[k],
                "o-",
                color=color,
                ms=4.5,
                lw=1.6,
                label=f"$m_t$ = {m}  ($m_t D$ = {m * D:g})",
            )
            ax.axvline(m * D, color=color, lw=0.8, ls=":")
        ax.set_title(f"{threshold}, $\\lambda$ = {lam:g}", fontsize=13)
        ax.set_xlabel("unit index i", fontsize=12)
        ax.set_xticks(range(0, D + 1, 5))
        ax.tick_params(labelsize=11)
        ax.set_xlim(-0.7, D - 0.3)
        ax.set_ylim(-0.05, 1.08)
        ax.grid(alpha=0.25)
    axes[0].set_ylabel("mask $e_i$ (dots); $s_i$ (dashed)", fontsize=12)
    for ax in axes[:2]:
        ax.text(
            D - 0.6,
            0.8,
            "identity band\n[$\\epsilon$, 1 $-$ $\\epsilon$]",
            ha="right",
            va="center",
            fontsize=10.5,
            color="0.3",
        )
    axes[2].text(
        D - 0.6,
        0.8,
        "no band:\nevery $e_i$ is 0 or 1",
        ha="right",
        va="center",
        fontsize=10.5,
        color="0.3",
    )
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="lower center",
        ncol=3,
        fontsize=11.5,
        bbox_to_anchor=(0.5, -0.06),
        frameon=False,
    )
    fig.suptitle(
        f"variable-computation mask over D = {D} units, $\\epsilon$ = {EPS}", fontsize=13.5
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path = Path(out_dir) / "fig_06_vc_mask.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return [path]
