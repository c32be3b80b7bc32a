"""3D pose metrics: MPJPE and mAP@10cm (the UniPose / C3P / A2J evaluation on ITOP and CMU Panoptic)."""

from __future__ import annotations

import numpy as np

MAP_THRESHOLD_M = 0.10
"""A joint counts as correct within 10 cm (ITOP protocol, used by A2J, C3P and UniPose)."""


def _joint_errors(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape or pred.shape[-1] != 3:
        raise ValueError(f"pred and ref must both be [..., J, 3], got {pred.shape} and {ref.shape}")
    err = np.linalg.norm(pred - ref, axis=-1)
    return err[np.isfinite(err)]


def mpjpe(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean per-joint position error, metres.

    Args:
        pred, ref: float [..., J, 3] metres; joints where either is NaN are left out.
    Returns:
        The mean Euclidean distance over all finite joints (NaN when there are none).
    """
    err = _joint_errors(pred, ref)
    return float(err.mean()) if err.size else float("nan")


def map_at(pred: np.ndarray, ref: np.ndarray, threshold_m: float = MAP_THRESHOLD_M) -> float:
    """Fraction of joints within ``threshold_m`` of the reference (mAP@10cm by default).

    Args:
        pred, ref: float [..., J, 3] metres; joints where either is NaN are left out.
    Returns:
        A fraction in [0, 1] (NaN when there are no finite joints).
    """
    err = _joint_errors(pred, ref)
    return float((err <= threshold_m).mean()) if err.size else float("nan")


def pose_metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """``{"mpjpe_m": ..., "map_10cm": ...}`` for float [..., J, 3] predictions and reference."""
    return {"mpjpe_m": mpjpe(pred, ref), "map_10cm": map_at(pred, ref)}


def per_joint_metrics(pred: np.ndarray, ref: np.ndarray, joint_names: "tuple[str, ...] | list[str]"
                      ) -> dict[str, dict[str, float]]:
    """``{joint name: {"mpjpe_m", "map_10cm", "count"}}`` over float [..., J, 3] predictions and reference,
    for every joint that has at least one finite reference (NaN reference joints are not scored)."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1, len(joint_names), 3)
    r = np.asarray(ref, dtype=np.float64).reshape(-1, len(joint_names), 3)
    out = {}
    for j, name in enumerate(joint_names):
        err = np.linalg.norm(p[:, j] - r[:, j], axis=-1)
        err = err[np.isfinite(err)]
        if err.size:
            out[name] = {"mpjpe_m": float(err.mean()), "map_10cm": float((err <= MAP_THRESHOLD_M).mean()),
                         "count": int(err.size)}
    return out
