"""``actionfusion convert-checkpoint --from NAME IN OUT.safetensors``.

Reads an official checkpoint safely (:func:`load_official_checkpoint`), converts it with the named
converter, checks it against our model built with the official-behaviour flags, writes a
safetensors file (atomic) whose metadata names the converter, model, flags and source file, and
prints one JSON line: tensors written, keys dropped by name, entries that were not tensors.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict

from safetensors.torch import save as safetensors_save_bytes

from ...io import atomic_write_bytes
from .converters import CONVERTERS, convert_to_ours, list_converters
from .official_loading import load_official_checkpoint


def _help_epilog() -> str:
    lines = ["converters (name: official source -> our model [flags])"]
    for name in list_converters():
        c = CONVERTERS[name]
        target = c.model + (f".{c.submodule}" if c.submodule else "")
        flags = f" {dict(c.model_kwargs)}" if c.model_kwargs else ""
        lines.append(f"  {name}: {c.source} -> {target}{flags}")
    return "\n".join(lines)


def add_convert_checkpoint_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``convert-checkpoint`` to a CLI's sub-parsers; its handler is ``args.func``."""
    p = subparsers.add_parser(
        "convert-checkpoint",
        help="convert an official implementation's checkpoint (.pth) to our layout (.safetensors)",
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog=_help_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--from", dest="source", required=True, choices=list_converters(), metavar="NAME",
                   help="official layout: " + ", ".join(list_converters()))
    p.add_argument("input", metavar="IN", help="official checkpoint (.pth/.pt/.ckpt, or .safetensors)")
    p.add_argument("output", metavar="OUT.safetensors", help="converted weights (our names)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classes of the model (default: read off the checkpoint's classifier)")
    p.set_defaults(func=run_convert_checkpoint_cli)
    return p


def run_convert_checkpoint_cli(args: argparse.Namespace) -> int:
    """Convert ``args.input`` with converter ``args.source`` into ``args.output``; returns 0."""
    checkpoint = load_official_checkpoint(args.input)
    ours, report = convert_to_ours(args.source, checkpoint.state_dict, args.num_classes)
    metadata: Dict[str, str] = {
        "converted_from": report.converter, "model": report.model, "model_kwargs": json.dumps(report.model_kwargs),
        "submodule": report.submodule, "num_classes": str(report.num_classes), "source_file": Path(args.input).name,
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in ours.items()}
    atomic_write_bytes(args.output, safetensors_save_bytes(tensors, metadata=metadata))
    print(json.dumps({
        "converted": report.converter, "out": str(args.output), "model": report.model,
        "model_kwargs": report.model_kwargs, "load_into": report.submodule or "(whole model)",
        "num_classes": report.num_classes, "tensors": report.num_tensors,
        "unwrapped_from": checkpoint.wrapper_key or None, "stripped_prefix": checkpoint.stripped_prefix or None,
        "dropped_by_name": report.discarded, "not_tensors": checkpoint.non_tensor,
    }))
    return 0
