"""``actionfusion detect``: segments of one sequence or video, or mAP over a PKU-MMD-format folder.

- ``INPUT`` a PKU-MMD skeleton ``.txt`` or a video: writes ``OUT/<name>.jsonl`` (one segment a line);
  with ``--labels LABEL_FILE`` also ``OUT/metrics.json`` for that sequence.
- ``INPUT`` a folder (``skeleton/*.txt``, labels in ``label/`` or ``--labels DIR``): writes
  ``OUT/detections.jsonl`` and ``OUT/metrics.json`` (mAP at IoU 0.1..0.7).

``actionfusion synth-untrimmed OUT`` writes untrimmed synthetic sequences in PKU-MMD's format
(:mod:`actionfusion.datasets.synthetic.untrimmed`), something to detect without a dataset.

Prints one JSON line (segments found, or the metrics' mAP). The torch-dependent modules load only
when the command runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ...errors import UsageError
from ..cli_errors import DefaultsHelpFormatter
from ..cli_types import float_in, int_in


def add_detect_parsers(sub: "argparse._SubParsersAction") -> None:
    """Add ``detect`` and ``synth-untrimmed``."""
    p = sub.add_parser("detect", help="temporal action detection: segments in an untrimmed skeleton sequence "
                       "(PKU-MMD .txt) or video, or mAP over a PKU-MMD-format folder",
                       formatter_class=DefaultsHelpFormatter)
    p.add_argument("input", metavar="VIDEO_OR_SEQUENCE",
                   help="a PKU-MMD skeleton .txt, a video (needs a model trained on extracted poses), or a folder "
                        "holding skeleton/ (and label/)")
    p.add_argument("--checkpoint", required=True,
                   help="training work dir (config.yaml + best.safetensors), epoch checkpoint dir or weights file")
    p.add_argument("--labels", default=None, metavar="LABEL_FILE_OR_DIR",
                   help="PKU-MMD label file of the sequence, or label folder (a folder input defaults to its "
                        "label/); then metrics.json (mAP at IoU 0.1..0.7) is written too")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: detections/ beside the input, or inside an input folder)")
    p.add_argument("--window", type=int_in(1, 100_000), default=40, help="sliding-window length, frames")
    p.add_argument("--stride", type=int_in(1, 100_000), default=4, help="frames between window starts")
    p.add_argument("--smoothing", choices=("none", "mean", "gaussian"), default="gaussian",
                   help="temporal smoothing of the per-frame class scores")
    p.add_argument("--smoothing-width", type=float_in(0.0, 1000.0), default=4.0,
                   help="moving-average frames, or the Gaussian's sigma in frames")
    p.add_argument("--thresholds", type=float_in(0.0, 1.0), nargs="+", default=None,
                   help="score levels at which frames group into segments (default: 0.2 0.4 0.6 0.8)")
    p.add_argument("--min-length", type=int_in(1, 100_000), default=24, help="shortest segment kept, frames")
    p.add_argument("--nms-iou", type=float_in(0.0, 1.0), default=0.3,
                   help="per-class NMS drops a segment overlapping a better one by more than this IoU")
    p.add_argument("--matching", choices=("greedy", "coverage"), default="greedy",
                   help="evaluation: greedy (each action matched once) or coverage (the official PKU-MMD script's)")
    p.add_argument("--interpolation", choices=("all_point", "none", "pku_official"), default="all_point",
                   help="evaluation: AP from the interpolated, raw, or official-script precision-recall curve")
    p.add_argument("--device", default="cpu", help="torch device")
    p.set_defaults(func=run_detect_cli)

    p = sub.add_parser("synth-untrimmed", help="write untrimmed synthetic skeleton sequences (several actions with "
                       "idle gaps) in PKU-MMD's format: skeleton/ and label/", formatter_class=DefaultsHelpFormatter)
    p.add_argument("out", help="output folder")
    p.add_argument("--sequences", type=int_in(1, 100_000), default=10, help="sequences to write")
    p.add_argument("--seed", type=int_in(0, 2**31 - 1), default=0)
    p.add_argument("--exclude-held-object", action="store_true",
                   help="leave out drink water, brushing teeth and phone call (the same motion to a skeleton)")
    p.set_defaults(func=run_synth_untrimmed_cli)


def run_synth_untrimmed_cli(args: argparse.Namespace) -> int:
    """Write the sequences; print one JSON line (sequences, frames, actions)."""
    from ...datasets.synthetic.untrimmed import UntrimmedConfig, generate_untrimmed

    summary = generate_untrimmed(args.out, UntrimmedConfig(seed=args.seed, num_sequences=args.sequences,
                                                           exclude_held_object=args.exclude_held_object))
    print(json.dumps({"out": summary.out, "sequences": len(summary.sequences), "frames": sum(summary.frames),
                      "actions": sum(summary.actions)}))
    return 0


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
                          "failed": len(metrics["failed"]), "metrics": str(out / "metrics.json")}))
        return 0
    result = detect(source, args.checkpoint, options, out=out, device=args.device)
    print(json.dumps({"sequence": result.sequence, "frames": result.num_frames, "segments": len(result.segments),
                      "frames_per_second": round(result.num_frames / max(result.seconds, 1e-9), 1),
                      "out": str(out / f"{result.sequence}.jsonl")}))
    return 0
