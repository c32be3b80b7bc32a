"""What feature extraction needs from a checkpoint's config: its files, its modalities, its store's PrepareConfig.

- :func:`resolve_checkpoint`: a training work dir, an epoch checkpoint dir or a weights file ->
  (weights file, config), the ``config.yaml`` found beside the weights or above them;
- :func:`prepared_modalities` / :func:`stored_modalities`: which prepared and stored modalities each
  batch key comes from;
- :func:`training_prepare_config`: the PrepareConfig of the store the model was trained on, so
  raw inputs are cropped and sized as in training.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

from ..datasets.store.manifest import read_manifest
from ..datasets.store.prepare_config import PrepareConfig
from ..errors import StoreError
from .config import ExperimentConfig, load_config

PathLike = Union[str, "os.PathLike[str]"]

CONFIG_FILE = "config.yaml"

PREPARED_MODALITY_FOR_KEY: dict[str, str] = {"skeleton": "skeleton", "rgb": "rgb", "depth": "depth", "points": "points"}
"""Batch key -> the PrepareConfig modality that makes it (pose_heatmap, rgb_hands: see :func:`prepared_modalities`)."""


def find_config_for(weights: Path) -> Optional[Path]:
    """``config.yaml`` beside ``weights`` or in up to three folders above (an epoch checkpoint's work dir)."""
    start = weights if weights.is_dir() else weights.parent
    for folder in [start, *list(start.parents)[:3]]:
        if (folder / CONFIG_FILE).is_file():
            return folder / CONFIG_FILE
    return None


def resolve_checkpoint(path: PathLike, config: Union[None, PathLike, ExperimentConfig] = None
                       ) -> tuple[Path, ExperimentConfig, Optional[Path]]:
    """(weights file, config, config file or None) of a work dir, epoch checkpoint dir or weights file.

    Raises:
        FileNotFoundError: no weights, or no config.yaml beside them and none given.
    """
    from .trainer import weights_path

    weights = weights_path(path)
    if isinstance(config, ExperimentConfig):
        return weights, config, None
    config_path = Path(config) if config is not None else find_config_for(Path(path))
    if config_path is None:
        raise FileNotFoundError(f"{path}: no {CONFIG_FILE} beside the weights or in the folders above; "
                                "pass config= (the training YAML)")
    return weights, load_config(config_path), config_path


def prepared_modalities(key: str, cfg: ExperimentConfig) -> Optional[tuple[str, ...]]:
    """The PrepareConfig modalities that batch key ``key`` is made from (None: cannot come from raw files:
    heatmaps and hand glimpses of extracted 2D keypoints, and skeletons of a ``data.skeleton_source``
    other than the sensor's). Sensor keypoints (``pose2d_sensor``) are written with the skeleton."""
    if key == "pose_heatmap":
        return ("skeleton",) if cfg.data.pose_heatmap.keypoints == "sensor" else None
    if key == "rgb_hands":
        return ("rgb", "skeleton") if cfg.data.rgb_hands.keypoints == "sensor" else None
    if key == "skeleton" and cfg.data.skeleton_source != "ntu25":
        return None
    one = PREPARED_MODALITY_FOR_KEY.get(key)
    return (one,) if one is not None else None


def stored_modalities(key: str, cfg: ExperimentConfig) -> tuple[str, ...]:
    """The store modalities batch key ``key`` is read from (``skeleton``: the file of
    ``data.skeleton_source``, e.g. ``pose3d_world`` for the extracted ``coco17``; ``rgb_hands``: the
    RGB crops and the keypoints that place the hands)."""
    if key == "pose_heatmap":
        return ("pose2d_sensor" if cfg.data.pose_heatmap.keypoints == "sensor" else "pose2d",)
    if key == "rgb_hands":
        return ("rgb", "pose2d_sensor" if cfg.data.rgb_hands.keypoints == "sensor" else "pose2d")
    if key == "skeleton":
        return ({"ntu25": "skeleton", "coco17_2d": "pose2d"}.get(cfg.data.skeleton_source, "pose3d_world"),)
    return (key,)


def training_prepare_config(cfg: ExperimentConfig, near: Sequence[Path] = ()) -> tuple[Optional[PrepareConfig], str]:
    """(PrepareConfig of the training store, where it was found) or (None, why not).

    ``data.store`` is tried as given (relative to the current directory), then relative to each of ``near``.
    """
    store = Path(cfg.data.store)
    candidates = [store] if store.is_absolute() else [store, *(folder / store for folder in near)]
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            try:
                return PrepareConfig.from_dict(read_manifest(candidate).get("config") or {}), str(candidate)
            except StoreError as err:
                return None, f"defaults ({candidate} holds no usable PrepareConfig: {err})"
    return None, f"defaults (no training store at {cfg.data.store!r})"
