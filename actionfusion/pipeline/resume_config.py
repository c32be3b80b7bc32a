"""Resume is safe: a resumed run must use the config it started with.

``--resume`` compares the resolved config with the run's ``config.yaml`` and refuses any difference
in a key that changes the result (another learning rate, another store), listing the keys. With
``--allow-config-change`` it goes on and records the new config beside the original as
``config.resume_<N>.yaml``; the original ``config.yaml`` is never overwritten.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping

import yaml

from ..errors import UsageError
from ..io import atomic_write_text

CONFIG_FILE = "config.yaml"

RESULT_NEUTRAL_KEYS = frozenset({
    "data.num_workers",   # loader processes: the data are keyed by (seed, epoch, index), not by worker
    "train.cpu_threads",  # intra-op threads
    "train.log_every",    # how often scalars are logged
    "train.keep_last",    # how many old checkpoints are kept
    "source.workers",     # processes of prepare and pose extraction
})
"""Keys that may change between a run and its resume: they change speed or logging, not results."""


class ResumeConfigError(UsageError):
    """``--resume`` with a config that differs from the run's in keys that change the result."""


def flatten(config: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are compared whole)."""
    flat: Dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> List[str]:
    """Dotted keys whose values differ between two configs, result-neutral keys left out.

    A key the old config lacks entirely (an option added by a later version, holding its default
    when the run was written) is not a change; a key the new config lacks is.
    """
    before, after = flatten(old), flatten(new)
    return sorted(key for key in before
                  if key not in RESULT_NEUTRAL_KEYS and before[key] != after.get(key, "<absent>"))


def record_config(work_dir: Path, config: Mapping[str, Any], resuming: bool, allow_change: bool) -> None:
    """Write ``config.yaml`` of a fresh run, or check a resumed run's config against it.

    Args:
        work_dir: the run's folder (exists).
        config: the resolved config as plain data.
        resuming: the run continues from a checkpoint in ``work_dir``.
        allow_change: record a changed config as ``config.resume_<N>.yaml`` instead of refusing it.

    Raises:
        ResumeConfigError: resuming with result-changing differences and ``allow_change`` unset.
    """
    path = work_dir / CONFIG_FILE
    text = yaml.safe_dump(dict(config), sort_keys=False)
    if not resuming or not path.is_file():
        atomic_write_text(path, text)
        return
    original = yaml.safe_load(path.read_text()) or {}
    changed = changed_keys(original, yaml.safe_load(text))
    if not changed:
        return
    if not allow_change:
        shown = ", ".join(changed[:12]) + (f" and {len(changed) - 12} more" if len(changed) > 12 else "")
        raise ResumeConfigError(
            f"{path}: --resume with a config that differs from the run's in {shown}: resume with the run's "
            "config, start another --work-dir, or pass --allow-config-change to go on and record both")
    number = 1
    while (work_dir / f"config.resume_{number}.yaml").exists():
        number += 1
    atomic_write_text(work_dir / f"config.resume_{number}.yaml", text)


def check_finished_run(work_dir: Path, config: Mapping[str, Any]) -> None:
    """Refuse to reuse a finished run's results when its recorded config differs from ``config``.

    Raises:
        ResumeConfigError: ``work_dir/config.yaml`` differs in keys that change the result.
    """
    path = work_dir / CONFIG_FILE
    if not path.is_file():
        return
    changed = changed_keys(yaml.safe_load(path.read_text()) or {}, yaml.safe_load(yaml.safe_dump(dict(config))))
    if changed:
        shown = ", ".join(changed[:12]) + (f" and {len(changed) - 12} more" if len(changed) > 12 else "")
        raise ResumeConfigError(f"{path}: this folder holds a finished run of another config (differs in {shown}): "
                                "give another --work-dir")


def with_recorded_num_classes(cfg: Any, work_dir: Path) -> Any:
    """``cfg`` whose ``model.num_classes: auto`` takes the count the run in ``work_dir`` resolved and
    recorded in its ``config.yaml`` (unchanged when the count is a number or nothing is recorded)."""
    import dataclasses

    from ..io import load_yaml

    path = Path(work_dir) / CONFIG_FILE
    if isinstance(cfg.model.num_classes, int) or not path.is_file():
        return cfg
    record = load_yaml(path)
    recorded = ((record.get("model") if isinstance(record, dict) else None) or {}).get("num_classes")
    if not isinstance(recorded, int) or isinstance(recorded, bool):
        return cfg
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_classes=recorded))
