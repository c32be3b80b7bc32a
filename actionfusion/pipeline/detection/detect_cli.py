"""``actionfusion detect``: segments of one sequence or video, or mAP over a PKU-MMD-format folder.

- ``INPUT`` a PKU-MMD skeleton ``.txt`` or a video: writes ``OUT/<name>.jsonl`` (one segment a line);
  with ``--labels LABEL_FILE`` also ``OUT/metrics.json`` for that sequence.
- ``INPUT`` a folder (``skeleton/*.txt``, labels in ``label/`` or ``--labels DIR``): writes
  ``OUT/detections.jsonl`` and ``OUT/metrics.json`` (mAP at IoU 0.1..0.7).

Prints one JSON line (segments found, or the metrics' mAP). The torch-dependent modules load only
when the command runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ...errors import UsageError


def _options(args: argparse.Namespace):  # -> DetectionOptions (imported lazily)
    from .runner import DetectionOptions

    defaults = DetectionOptions()
    thresholds = tuple(args.thresholds) if args.thresholds else defaults.thresholds
    return DetectionOptions(window=args.window, stride=args.stride, smoothing=args.smoothing,
                            smoothing_width=args.smoothing_width, thresholds=thresholds,
                            min_length=args.min_length, nms_iou=args.nms_iou)


def run_detect_cli(args: argparse.Namespace) -> int:
    """Run ``actionfusion detect`` from parsed arguments (``input``, ``checkpoint``, ``labels``, ``out``,
    ``window``, ``stride``, ``smoothing``, ``smoothing_width``, ``thresholds``, ``min_length``, ``nms_iou``,
    ``matching``, ``interpolation``, ``device``); returns the exit status."""
    from .runner import detect, evaluate_folder

    source = Path(args.input)
    if not source.exists():
        raise UsageError(f"{source}: no such file or folder")
    out = Path(args.out) if args.out else (source if source.is_dir() else source.parent) / "detections"
    options = _options(args)
    if source.is_dir() or args.labels is not None:
        metrics = evaluate_folder(source, args.checkpoint, out, options, labels=args.labels,
                                  matching=args.matching, interpolation=args.interpolation, device=args.device)
        print(json.dumps({"map": metrics["map"], "baseline_map": metrics["baseline_map"],
                          "num_sequences": metrics["num_sequences"], "num_truths": metrics["num_truths"],
                          "frames_per_second": round(metrics["frames_per_second"], 1),
                          "metrics": str(out / "metrics.json")}))
        return 0
    result = detect(source, args.checkpoint, options, out=out, device=args.device)
    print(json.dumps({"sequence": result.sequence, "frames": result.num_frames, "segments": len(result.segments),
                      "frames_per_second": round(result.num_frames / max(result.seconds, 1e-9), 1),
                      "out": str(out / f"{result.sequence}.jsonl")}))
    return 0
