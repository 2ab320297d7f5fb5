"""Plots the benchmarks share (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(ncols=ncols, figsize=(width, height))


def requests_per_second_bars(labels: list[str], values: list[float], title: str, path: Path) -> None:
    fig, ax = figure(7, 3.8)
    bars = ax.bar(labels, values, color=["#999999", "#4477aa", "#228833", "#66aa55"][: len(values)])
    ax.bar_label(bars, fmt="%.0f")
    ax.set_ylabel("requests / s")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
