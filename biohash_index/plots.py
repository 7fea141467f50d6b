"""Figures for the command line (matplotlib, an optional extra: ``biohash-index[plot]``).

Each function draws one figure and writes it to ``path`` (the format follows the extension,
e.g. .png, .pdf, .svg). matplotlib's object API is used, so no display is needed.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

__all__ = ["require_matplotlib", "plot_training_stats", "plot_map_vs_hash_length",
           "plot_recall_vs_qps"]


def require_matplotlib() -> None:
    """Raise ImportError saying how to install matplotlib, if it is missing (the command
    checks before its work, not after)."""
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError as e:
        raise ImportError("plots need matplotlib: pip install 'biohash-index[plot]'") from e


def _figure(nrows: int = 1):
    require_matplotlib()
    from matplotlib.figure import Figure
    fig = Figure(figsize=(6, 2.2 + 1.8 * nrows), layout="constrained")
    return fig, fig.subplots(nrows, 1, sharex=True, squeeze=False)[:, 0]


def plot_training_stats(stats: Mapping[str, np.ndarray], path, title: str = "") -> None:
    """One panel per statistic (float (epochs,) arrays, e.g. ``model.train_stats_``) against
    the epoch."""
    if not any(len(values) for values in stats.values()):
        raise ValueError("no training statistics to plot (the index holds none: it ran no "
                         "epochs of the learning rule)")
    fig, axes = _figure(len(stats))
    from matplotlib.ticker import MaxNLocator
    for ax, (name, values) in zip(axes, stats.items()):
        values = np.asarray(values)
        ax.plot(np.arange(1, len(values) + 1), values, marker="." if len(values) < 50 else None)
        if values.min() > 0 and values.max() > 10 * values.min():
            ax.set_yscale("log")
        ax.set_ylabel(name.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("epoch")
    axes[0].set_title(title or "training statistics per epoch")
    fig.savefig(path)


def plot_map_vs_hash_length(hash_lengths: Sequence[int], maps: Mapping[str, Sequence[float]],
                            path, title: str = "") -> None:
    """mAP against the hash length k (log2 axis), one line per method: ``maps`` maps a
    method's name to its mAP at each hash length, as fractions in [0, 1] (drawn as %)."""
    fig, (ax,) = _figure()
    for name, values in maps.items():
        ax.plot(hash_lengths, 100 * np.asarray(values), marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(hash_lengths, [str(k) for k in hash_lengths])
    ax.set_xlabel("hash length k")
    ax.set_ylabel("mAP (%)")
    ax.set_title(title or "mAP versus hash length")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path)


def plot_recall_vs_qps(recalls: Sequence[float], qps: Sequence[float], labels: Sequence[str],
                       path, ylabel: str = "recall", title: str = "") -> None:
    """One point per configuration (``labels``, e.g. "k=16"): recall (fractions in [0, 1],
    drawn as %) against queries per second, QPS on a log axis."""
    fig, (ax,) = _figure()
    recalls = 100 * np.asarray(recalls)
    ax.plot(qps, recalls, marker="o", linestyle=":")
    ax.set_ylim(0, 100)
    for x, y, text in zip(qps, recalls, labels):
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("queries per second")
    ax.set_ylabel(f"{ylabel} (%)")
    ax.set_title(title or f"{ylabel} versus speed")
    ax.grid(alpha=0.3)
    fig.savefig(path)
