"""The robustness benchmark's table (Markdown) and figure (PNG) from :func:`.robustness.evaluate_robustness`
reports.

Figure: accuracy (top-1, %) against severity (0 clean, 1 minor, 2 moderate, 3 severe). One model:
one axes, a line per corruption. Several models (``--models``): a panel per corruption, a line per
model, so models are compared at equal corruption.
"""

from __future__ import annotations

import io
from typing import Any, Dict, List, Mapping, Sequence, Tuple

SEVERITY_LABELS: Tuple[str, ...] = ("clean", "minor", "moderate", "severe")


def _curves(report: Mapping[str, Any]) -> Dict[str, List[Tuple[int, float]]]:
    """``{corruption: [(severity, top1 %), ...]}`` starting at the clean point."""
    clean = 100.0 * float(report["clean"]["top1"])
    curves: Dict[str, List[Tuple[int, float]]] = {}
    for row in report["results"]:
        curves.setdefault(row["corruption"], [(0, clean)]).append((int(row["severity"]), 100.0 * float(row["top1"])))
    return curves


def _label(report: Mapping[str, Any]) -> str:
    return f"{report['experiment']} ({report['model']})"


def markdown_report(reports: Sequence[Mapping[str, Any]]) -> str:
    """One table per model: top-1 (%) per corruption (rows) and level (columns), with the share of
    (frame, joint) pairs each level keeps observed."""
    lines: List[str] = []
    for report in reports:
        levels = list(dict.fromkeys(row["level"] for row in report["results"]))
        lines += [f"## {_label(report)}", "",
                  f"checkpoint `{report['checkpoint']}`, completion `{report['completion']}`, corruption seed "
                  f"{report['seed']}, {report['clean']['num_samples']:.0f} test clips of {report['clip_len']} frames; "
                  f"clean top-1 {100 * report['clean']['top1']:.1f}%.", "",
                  "| corruption | " + " | ".join(f"{level} top-1 (observed)" for level in levels) + " |",
                  "|---|" + "---|" * len(levels)]
        by_name: Dict[str, Dict[str, Mapping[str, Any]]] = {}
        for row in report["results"]:
            by_name.setdefault(row["corruption"], {})[row["level"]] = row
        for name, rows in by_name.items():
            cells = [f"{100 * rows[lv]['top1']:.1f} ({100 * rows[lv]['observed_share']:.0f}%)" if lv in rows else "-"
                     for lv in levels]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_png_bytes(reports: Sequence[Mapping[str, Any]]) -> bytes:
    """The figure (module docstring) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [_curves(r) for r in reports]
    names = list(dict.fromkeys(name for c in curves for name in c))
    if len(reports) == 1:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        for name in names:
            xs, ys = zip(*curves[0][name])
            ax.plot(xs, ys, marker="o", label=name)
        axes = [ax]
        ax.set_title(f"{_label(reports[0])}, completion {reports[0]['completion']}", fontsize=9)
        ax.legend(fontsize=8)
    else:
        cols = min(3, len(names))
        rows = (len(names) + cols - 1) // cols
        fig, grid = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
        axes = [a for row in grid for a in row]
        for ax, name in zip(axes, names):
            for report, curve in zip(reports, curves):
                if name in curve:
                    xs, ys = zip(*curve[name])
                    ax.plot(xs, ys, marker="o", label=_label(report))
            ax.set_title(name, fontsize=9)
        for ax in axes[len(names):]:
            ax.set_visible(False)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"completion {reports[0]['completion']}", fontsize=9)
    for ax in axes:
        ax.set_xticks(range(len(SEVERITY_LABELS)))
        ax.set_xticklabels(SEVERITY_LABELS, fontsize=8)
        ax.set_ylabel("top-1 (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
