"""The synthetic renders as a user's folder of videos: ``OUT/<class name>/<sample>.avi``, RGB only.

No skeleton file, no depth, no NTU name in the folder layout: what a user of this library has
before it has done anything (``actionfusion synth OUT --format videos``). The videos are the
synthetic generator's RGB renders (:func:`~.generate.generate_synthetic_ntu`), rendered into a
hidden work folder and moved into one sub-folder per class, named by the NTU class name.

``kinds`` picks the synthetic classes by kind (:mod:`.action_library`): ``motion`` classes differ
by how the body moves, so poses alone tell them apart; ``object`` classes share one motion and
differ by the held object; ``interaction`` classes have two performers.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from pathlib import Path
from typing import Sequence

from ..ntu.constants import NTU120_CLASS_NAMES
from ..ntu.names import parse_sample_name
from .action_library import synthetic_classes
from .generate import SynthConfig, generate_synthetic_ntu, plan_samples
from .render_sample import RGB_DIR

WORK_FOLDER = ".synthetic-ntu"
"""The hidden folder of ``OUT`` the NTU-layout renders are made in (removed when done)."""
KINDS: tuple[str, ...] = ("motion", "object", "interaction")


def class_folder_name(action: int) -> str:
    """The folder of NTU action ``action``: its class name, every run of other characters than letters
    and digits as one ``_`` (``standing up (from sitting position)`` -> ``standing_up_from_sitting_position``)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", NTU120_CLASS_NAMES[action - 1]).strip("_")


def _targets(out: Path, names: Sequence[str]) -> dict[str, Path]:
    """``{sample: OUT/<class>/take_NNNN.avi}``: takes numbered in name order within each class, so a
    rerun moves every render to the same file."""
    targets: dict[str, Path] = {}
    per_class: dict[int, int] = {}
    for name in sorted(names):
        action = parse_sample_name(name).action
        per_class[action] = per_class.get(action, 0) + 1
        targets[name] = out / class_folder_name(action) / f"take_{per_class[action]:04d}.avi"
    return targets


def write_synthetic_video_folder(out: Path, config: SynthConfig = SynthConfig(), kinds: Sequence[str] = ("motion",),
                                 workers: int = 2, progress: bool = True) -> dict[str, int]:
    """Render the synthetic classes of ``kinds`` and lay their RGB videos out in class folders.

    Resumable: videos already in place are kept, and the renderer skips what its work folder holds.

    Returns:
        ``{class folder: number of videos}``.
    Raises:
        ValueError: an unknown kind.
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown class kind {unknown[0]!r}; choose from {', '.join(KINDS)}")
    actions = tuple(c.action for c in synthetic_classes() if c.kind in kinds)
    if config.actions is not None:
        actions = tuple(a for a in config.actions if a in actions)
    out = Path(out)
    work = out / WORK_FOLDER
    wanted = dataclasses.replace(config, modalities=("rgb",), actions=actions)
    targets = _targets(out, plan_samples(wanted))
    if not all(path.is_file() for path in targets.values()):
        generate_synthetic_ntu(work, wanted, workers=workers, progress=progress)
        for name, target in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.is_file():
                os.replace(work / RGB_DIR / f"{name}_rgb.avi", target)
    counts: dict[str, int] = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        counts[folder.name] = len(list(folder.glob("*.avi")))
    shutil.rmtree(work, ignore_errors=True)
    return counts
