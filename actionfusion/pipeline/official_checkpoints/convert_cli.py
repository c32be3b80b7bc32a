"""``actionfusion convert-checkpoint --from NAME IN OUT.safetensors``.

Reads an official checkpoint safely (:func:`load_official_checkpoint`), converts it with the named
converter, checks it against our model built with the official-behaviour flags, writes a
safetensors file (atomic) whose metadata names the converter, model, flags and source file, and
prints one JSON line: tensors written, keys dropped by name, entries that were not tensors.

A converter whose checkpoint also holds a training objective's state (``mamp_pretrain``: MAMP's
pretraining decoder, which belongs to the ``mamp`` objective) writes that part beside the model's,
to ``OUT.objective.safetensors`` (checked against the objective built with the sizes read off the
checkpoint); those keys are then reported as written, not dropped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Dict

from safetensors.torch import save as safetensors_save_bytes

from ...io import atomic_write_bytes
from ..cli_types import int_in
from .converters import CONVERTERS, OBJECTIVE_PARTS, convert_objective_part, convert_to_ours, list_converters
from .official_loading import load_official_checkpoint


def _help_epilog() -> str:
    lines = ["converters (name: official source -> our model [flags])"]
    for name in list_converters():
        c = CONVERTERS[name]
        target = c.model + (f".{c.submodule}" if c.submodule else "")
        flags = f" {dict(c.model_kwargs)}" if c.model_kwargs else ""
        lines.append(f"  {name}: {c.source} -> {target}{flags}")
        if name in OBJECTIVE_PARTS:
            lines.append(f"    + its {OBJECTIVE_PARTS[name].objective} objective's part -> OUT.objective.safetensors")
    return "\n".join(lines)


def objective_output_path(output: "str | Path") -> Path:
    """Where the objective's part goes: ``OUT.safetensors`` -> ``OUT.objective.safetensors``."""
    path = Path(output)
    stem = path.name[: -len(".safetensors")] if path.name.endswith(".safetensors") else path.name
    return path.with_name(stem + ".objective.safetensors")


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
    p.add_argument("output", metavar="OUT.safetensors",
                   help="converted weights (our names); a checkpoint with an objective's part (mamp_pretrain: "
                        "the decoder) also writes it to OUT.objective.safetensors")
    p.add_argument("--num-classes", type=int_in(1, 100_000), default=None,
                   help="classes of the model (default: read off the checkpoint's classifier)")
    p.set_defaults(func=run_convert_checkpoint_cli)
    return p


def run_convert_checkpoint_cli(args: argparse.Namespace) -> int:
    """Convert ``args.input`` with converter ``args.source`` into ``args.output``; returns 0."""
    checkpoint = load_official_checkpoint(args.input)
    ours, report = convert_to_ours(args.source, checkpoint.state_dict, args.num_classes)
    objective_part = convert_objective_part(args.source, checkpoint.state_dict)  # converted before any write
    metadata: Dict[str, str] = {
        "converted_from": report.converter, "model": report.model, "model_kwargs": json.dumps(report.model_kwargs),
        "submodule": report.submodule, "num_classes": str(report.num_classes), "source_file": Path(args.input).name,
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in ours.items()}
    atomic_write_bytes(args.output, safetensors_save_bytes(tensors, metadata=metadata))
    objective_report: Dict[str, Any] = {}
    dropped = report.discarded
    if objective_part is not None:
        objective_state, part = objective_part
        objective_path = objective_output_path(args.output)
        objective_meta = {"converted_from": report.converter, "objective": part.objective,
                          "objective_kwargs": json.dumps(part.objective_kwargs), "source_file": Path(args.input).name}
        objective_tensors = {k: v.detach().cpu().contiguous() for k, v in objective_state.items()}
        atomic_write_bytes(objective_path, safetensors_save_bytes(objective_tensors, metadata=objective_meta))
        objective_report = {"objective_out": str(objective_path), "objective": part.objective,
                            "objective_kwargs": part.objective_kwargs, "objective_tensors": part.num_tensors}
        dropped = []  # the keys the model's converter discards are the objective's, written above
    print(json.dumps({
        "converted": report.converter, "out": str(args.output), "model": report.model,
        "model_kwargs": report.model_kwargs, "load_into": report.submodule or "(whole model)",
        "num_classes": report.num_classes, "tensors": report.num_tensors,
        "unwrapped_from": checkpoint.wrapper_key or None, "stripped_prefix": checkpoint.stripped_prefix or None,
        **objective_report, "dropped_by_name": dropped, "not_tensors": checkpoint.non_tensor,
    }))
    return 0
