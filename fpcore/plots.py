"""The book's recurring pictures, so every chapter draws them the same way.

White backgrounds (readable in the book's dark theme), labelled axes, and
nothing that depends on how a model was trained.
"""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .prune import PruneCurve

plt.rcParams["figure.facecolor"] = "white"
plt.rcParams["savefig.facecolor"] = "white"


def show_images(x: torch.Tensor, titles: Optional[Sequence[str]] = None, ncols: int = 8,
                size: float = 1.4, suptitle: str = ""):
    """A grid of raw uint8 images (N, C, H, W), grayscale or RGB."""
    x = x.detach().cpu()
    n = len(x)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * 1.2 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = x[i].permute(1, 2, 0).numpy()
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_prune_curve(curve: PruneCurve, title: str = "", stop_k: Optional[int] = None, ax=None):
    """Clean accuracy (validation, test) and ASR against the fraction of channels pruned."""
    ax = ax or plt.subplots(figsize=(6, 3.6))[1]
    f = curve.fraction * 100
    for split, style in (("val", "--"), ("test", "-")):
        if split in curve.acc:
            ax.plot(f, curve.acc[split] * 100, style, color="tab:blue", label=f"clean accuracy ({split})")
    if curve.asr is not None:
        ax.plot(f, curve.asr * 100, "-", color="tab:red", label="attack success rate (test)")
    if stop_k is not None:
        ax.axvline(100 * stop_k / curve.k[-1], color="gray", ls=":", label=f"stop: {stop_k} pruned")
    ax.set_xlabel("channels pruned (%)")
    ax.set_ylabel("%")
    ax.set_ylim(-3, 103)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    return ax


def plot_activity(clean: torch.Tensor, triggered: torch.Tensor, title: str = "", ax=None,
                  order: Optional[torch.Tensor] = None):
    """Mean activation of every channel on clean and on triggered inputs, in pruning order."""
    ax = ax or plt.subplots(figsize=(7, 3.2))[1]
    order = torch.sort(clean, stable=True).indices if order is None else order
    pos = np.arange(len(order))
    ax.bar(pos - 0.2, clean[order].numpy(), width=0.4, color="tab:blue", label="clean inputs")
    ax.bar(pos + 0.2, triggered[order].numpy(), width=0.4, color="tab:red", label="triggered inputs")
    ax.set_xlabel("channel, from least to most active on clean data (pruning order)")
    ax.set_ylabel("mean activation")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def show_spectrogram(spec: torch.Tensor, title: str = "", ax=None, sample_rate: int = 8000):
    """A log spectrogram (1, F, T) with axes in seconds and kHz."""
    ax = ax or plt.subplots(figsize=(4, 3))[1]
    s = spec.detach().cpu().squeeze(0).numpy()
    ax.imshow(s, origin="lower", aspect="auto", cmap="magma",
              extent=[0, 1.0, 0, sample_rate / 2000])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    ax.set_title(title)
    return ax


def plot_heatmap(values, row_labels: Sequence[str], col_labels: Sequence[str], title: str = "",
                 fmt: str = "{:.1f}", ax=None, cmap: str = "Reds", vmin: float = 0.0,
                 vmax: float = 100.0, cbar_label: str = ""):
    """A table of numbers as coloured cells, each cell annotated with its number.

    `values` is rows x columns; NaN cells stay blank. Text is black on light
    cells and white on dark ones, so every number stays readable.
    """
    v = np.asarray(values, dtype=float)
    ax = ax or plt.subplots(figsize=(1.1 * v.shape[1] + 2.5, 0.45 * v.shape[0] + 1.2))[1]
    image = ax.imshow(np.ma.masked_invalid(v), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    colormap = plt.get_cmap(cmap)
    for (i, j), x in np.ndenumerate(v):
        if np.isfinite(x):
            r, g, b, _ = colormap((x - vmin) / (vmax - vmin))
            dark = 0.3 * r + 0.6 * g + 0.1 * b < 0.5     # luminance of the cell
            ax.text(j, i, fmt.format(x), ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")
    ax.set_xticks(range(v.shape[1]), col_labels)
    ax.set_yticks(range(v.shape[0]), row_labels)
    ax.tick_params(length=0)
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, label=cbar_label, fraction=0.05)
    return ax
