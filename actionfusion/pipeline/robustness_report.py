"""The robustness benchmark's table (Markdown) and figure (PNG) from :func:`.robustness.evaluate_robustness`
reports.

Figure: accuracy (top-1, %) against severity (0 clean, 1 minor, 2 moderate, 3 severe). One model:
one axes, a line per corruption. Several models (``--models``): a panel per corruption, a line per
model, so models are compared at equal corruption; the table then starts with a summary, one row
per model at the most severe level.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from ..modalities.skeleton.corruption import SEVERITIES

SEVERITY_LABELS: Tuple[str, ...] = ("clean",) + SEVERITIES


def _curves(report: Mapping[str, Any]) -> Dict[str, List[Tuple[int, float]]]:
    """``{corruption: [(severity, top1 %), ...]}`` starting at the clean point."""
    clean = 100.0 * float(report["clean"]["top1"])
    curves: Dict[str, List[Tuple[int, float]]] = {}
    for row in report["results"]:
        curves.setdefault(row["corruption"], [(0, clean)]).append((int(row["severity"]), 100.0 * float(row["top1"])))
    return curves


def _label(report: Mapping[str, Any]) -> str:
    """``<work dir name> (<model>)`` for a ``--models`` report, ``<experiment> (<model>)`` otherwise
    (the name alone where it is the model's): two runs of one config (another seed, another skeleton
    source) stay apart."""
    name = Path(str(report["work_dir"])).name if report.get("work_dir") else report["experiment"]
    return name if name == report["model"] else f"{name} ({report['model']})"


def summary_rows(reports: Sequence[Mapping[str, Any]]) -> Tuple[str, List[str], List[Tuple[str, List[float]]]]:
    """At the most severe level every report has: ``(level, corruption names, [(label, [clean, one
    top-1 % per corruption, their mean]), ...])``."""
    order = [lv for lv in reversed(SEVERITIES) if all(any(r["level"] == lv for r in rep["results"]) for rep in reports)]
    if not order:
        raise ValueError("the reports share no corruption level")
    level = order[0]
    names = list(dict.fromkeys(row["corruption"] for rep in reports for row in rep["results"] if row["level"] == level))
    rows = []
    for rep in reports:
        top1 = {row["corruption"]: 100.0 * float(row["top1"]) for row in rep["results"] if row["level"] == level}
        values = [top1.get(name, float("nan")) for name in names]
        rows.append((_label(rep), [100.0 * float(rep["clean"]["top1"])] + values + [sum(values) / len(values)]))
    return level, names, rows


def summary_markdown(reports: Sequence[Mapping[str, Any]]) -> str:
    """One row per model: clean top-1 and top-1 (%) under each corruption at the most severe level."""
    level, names, rows = summary_rows(reports)
    lines = [f"## Summary: top-1 (%) at the {level} level, completion `{reports[0]['completion']}`", "",
             "| model | clean | " + " | ".join(names) + " | mean |", "|---|---|" + "---|" * (len(names) + 1)]
    lines += [f"| {label} | " + " | ".join(f"{v:.1f}" for v in values) + " |" for label, values in rows]
    return "\n".join(lines + [""])


def markdown_report(reports: Sequence[Mapping[str, Any]]) -> str:
    """One table per model: top-1 (%) per corruption (rows) and level (columns), with the share of
    (frame, joint) pairs each level keeps observed."""
    lines: List[str] = [summary_markdown(reports)] if len(reports) > 1 else []
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
        colours = plt.get_cmap("tab10")
        styles = ("-", "--", ":", "-.")  # ten colours per line style: 40 runs stay apart
        for ax, name in zip(axes, names):
            for i, (report, curve) in enumerate(zip(reports, curves)):
                if name in curve:
                    xs, ys = zip(*curve[name])
                    ax.plot(xs, ys, marker="o", markersize=3, color=colours(i % 10),
                            linestyle=styles[(i // 10) % len(styles)], label=_label(report))
            ax.set_title(name, fontsize=9)
        for ax in axes[len(names):]:
            ax.set_visible(False)
        if len(reports) <= 4:
            axes[0].legend(fontsize=7)
        else:  # one legend for every panel, right of the grid
            handles, labels = axes[0].get_legend_handles_labels()
            fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
        fig.suptitle(f"completion {reports[0]['completion']}", fontsize=9)
    for ax in axes:
        ax.set_xticks(range(len(SEVERITY_LABELS)))
        ax.set_xticklabels(SEVERITY_LABELS, fontsize=8)
        ax.set_ylabel("top-1 (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
