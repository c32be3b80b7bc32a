"""UniPose: weakly supervised 3D human pose estimation on RGB-D sequences.

Stage 1 trains a point-cloud network (:mod:`.point_network`) from 2D detections only, with
C3P's weak losses (:mod:`.weak_losses`); stage 2 trains anchor-to-joint lifting networks
(:mod:`.a2j`) for depth and RGB crops on the point network's pseudo-labels (:mod:`.train`).
Evaluation (:mod:`.metrics`) compares with a held-out 3D reference that training never sees.
"""

from .a2j import A2JNet, A2JOutput, a2j_loss, anchor_to_joint, make_anchors
from .config import UniPoseConfig, UniPoseConfigError, load_unipose_config, unipose_config_from_dict
from .dataset import (LiftFrameDataset, PointClipDataset, SequenceRecord, assert_no_reference, naive_lift,
                      simulate_detections)
from .metrics import map_at, mpjpe, pose_metrics
from .point_network import PointPoseNet
from .train import (predict_lifting, predict_points, train_lifting_network, train_point_network)
from .weak_losses import (backprojection_loss, bone_length_loss, bone_ratio_loss, limb_prior_lengths, motion_loss,
                          symmetry_loss, weak_loss)

__all__ = [
    "A2JNet", "A2JOutput", "a2j_loss", "anchor_to_joint", "make_anchors",
    "UniPoseConfig", "UniPoseConfigError", "load_unipose_config", "unipose_config_from_dict",
    "LiftFrameDataset", "PointClipDataset", "SequenceRecord", "assert_no_reference", "naive_lift",
    "simulate_detections", "map_at", "mpjpe", "pose_metrics", "PointPoseNet",
    "predict_lifting", "predict_points", "train_lifting_network", "train_point_network",
    "backprojection_loss", "bone_length_loss", "bone_ratio_loss", "limb_prior_lengths", "motion_loss",
    "symmetry_loss", "weak_loss",
]
