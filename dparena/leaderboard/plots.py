"""Plots of quality against ε: one figure per (dataset, headline metric), one line per DP method
with its 95% CI band, non-private references as horizontal dashed lines. PNG and SVG."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path

from dparena.leaderboard.aggregate import Table


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _finite(*values: float | None) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


def plot_tables(tables: list[Table], folder: Path) -> list[Path]:
    """Write the figures into ``folder``; returns the PNG paths (SVGs sit beside them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    by_dataset: dict[str, list[Table]] = defaultdict(list)
    for t in tables:
        if math.isfinite(t.epsilon):
            by_dataset[t.dataset].append(t)
    written = []
    for dataset, group in sorted(by_dataset.items()):
        group.sort(key=lambda t: t.epsilon)
        for col in group[0].columns:
            if col.metric == "audit":
                continue
            lines: dict[str, list[tuple[float, float, float | None, float | None]]] = defaultdict(list)
            refs: dict[str, float] = {}
            for t in group:
                for row in t.rows:
                    cell = row.cells.get(col.name)
                    if cell is None or cell.stat is None:
                        continue
                    s = cell.stat
                    if not _finite(s.mean, s.ci_low, s.ci_high):  # never plotted (see aggregate)
                        continue
                    if row.kind == "reference":
                        refs[row.display_label] = s.mean
                    elif row.rankable:
                        lines[row.label].append((t.epsilon, s.mean, s.ci_low, s.ci_high))
            if not lines:
                continue
            fig, ax = plt.subplots(figsize=(6.4, 4.2))
            for label, pts in sorted(lines.items()):
                xs = [p[0] for p in pts]
                (line,) = ax.plot(xs, [p[1] for p in pts], marker="o", label=label)
                if all(p[2] is not None for p in pts):
                    ax.fill_between(xs, [p[2] for p in pts], [p[3] for p in pts],
                                    color=line.get_color(), alpha=0.2, linewidth=0)
            for i, (label, value) in enumerate(sorted(refs.items())):
                ax.axhline(value, linestyle="--", color=f"C{(len(lines) + i) % 10}", label=label)
            ys = [v for pts in lines.values() for p in pts for v in p[1:] if v is not None]
            ys += list(refs.values())
            pad = 0.05 * (max(ys) - min(ys) or 1.0)
            ax.set_ylim(min(ys) - pad, max(ys) + pad)  # axhline does not autoscale
            ax.set_xscale("log")
            ax.set_xlabel("ε (log scale)")
            ax.set_ylabel(f"{col.name} ({col.direction.phrase})")
            ax.set_title(f"{dataset}: {col.name}", fontsize=10)
            ax.legend(fontsize=7, loc="best")
            ax.grid(alpha=0.3)
            fig.tight_layout()
            stem = folder / f"{_slug(dataset)}--{_slug(col.name)}"
            # the same bytes on every publish: no creation date, element ids from a fixed salt
            fig.savefig(stem.with_suffix(".png"), dpi=110)
            with matplotlib.rc_context({"svg.hashsalt": "dparena"}):
                fig.savefig(stem.with_suffix(".svg"), metadata={"Date": None})
            plt.close(fig)
            written.append(stem.with_suffix(".png"))
    return written
