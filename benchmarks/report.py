"""Output helpers of the benchmark scripts: markdown tables and an optional PNG plot."""
from __future__ import annotations

import timeit


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A markdown table; floats are printed with two decimals."""
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells])


def median_seconds(fn, repeat: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls."""
    times = sorted(timeit.repeat(fn, number=1, repeat=repeat))
    return times[len(times) // 2]


def plot_lines(path, series: dict[str, tuple[list, list]], xlabel: str, ylabel: str,
               title: str, logx: bool = True) -> bool:
    """Write a line plot of {label: (x, y)} to ``path`` if matplotlib is installed; returns
    whether it did."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    colors: dict[str, str] = {}  # "X, paper" is drawn dashed in the colour of "X"
    for label, (x, y) in series.items():
        base = label.removesuffix(", paper")
        color = colors.setdefault(base, f"C{len(colors) % 10}")
        ax.plot(x, y, marker="o", color=color, label=label,
                linestyle="--" if label != base else "-")
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True
