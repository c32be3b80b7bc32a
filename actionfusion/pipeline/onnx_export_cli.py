"""The ``export-onnx`` subcommand: argument parsing and the one JSON line (the work is :mod:`.onnx_export`'s).

Kept apart from :mod:`.onnx_export`, which imports torch, so that ``actionfusion --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json

from .cli_types import int_in

MIN_OPSET, MAX_OPSET = 14, 23
"""Opsets accepted: 14 is the oldest the exported graphs were checked with, 23 the newest torch writes."""


def add_export_onnx_parser(subparsers: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    """Add the ``export-onnx`` subcommand (its handler is :func:`run_export_onnx_cli`)."""
    p = subparsers.add_parser(
        "export-onnx",
        help="export a trained model to ONNX (dynamic batch, and time where the model allows), checked "
             "against torch in ONNX Runtime; prints one JSON line",
    )
    p.add_argument("checkpoint", help="training work dir, epoch checkpoint dir or weights file (config.yaml beside)")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--config", default=None, help="the training YAML, when no config.yaml lies beside the weights")
    p.add_argument("--opset", type=int_in(MIN_OPSET, MAX_OPSET), default=17, help="ONNX opset version")
    p.add_argument("--frames", type=int_in(1, 100_000), default=None,
                   help="skeleton clip length T of the example input (default: a store clip's, else data.clip_len)")
    p.add_argument("--persons", type=int_in(1, 64), default=None,
                   help="persons M of the skeleton input, fixed in the file (default: a store clip's, else data.max_persons)")
    p.set_defaults(func=run_export_onnx_cli)
    return p


def run_export_onnx_cli(args: argparse.Namespace) -> int:
    """Export, then print the report as one JSON line; errors reach the CLI's boundary (one line)."""
    from .onnx_export import export_checkpoint

    report = export_checkpoint(args.checkpoint, args.out, config=args.config, opset=args.opset,
                               frames=args.frames, persons=args.persons)
    print(json.dumps(report.to_dict()))
    return 0
