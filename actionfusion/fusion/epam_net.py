"""EPAM-Net (Ahmed et al.; ahmed-nady/Multimodal-Action-Recognition): pose-guided RGB action recognition.

Two X-ShiftNet streams (:mod:`actionfusion.modalities.rgb.xshiftnet`): RGB [N, 3, 16, 224, 224]
-> [N, 432, 16, 7, 7] and pose heatmaps [N, 17, 48, 56, 56] -> [N, 216, 48, 7, 7]. The
spatial-temporal attention (:mod:`.spatial_temporal_attention`) turns the pose map, taken at
frames 0, 3, ..., 45, into a map that reweights the RGB features. Each stream has its own head
(global average pool, dropout 0.5, linear); the score is z_rgb + z_pose and the training loss
CE(z_rgb) + CE(z_pose) (the trainer sums CE over :meth:`EPAMNet.forward_stream_logits`).
2,538,717 parameters at 60 classes, 2,577,717 at 120.

The classifier is both heads together: ``num_classes=0`` builds neither (``forward`` gives the
pooled [N, 432 + 216]), ``reset_classifier(n)`` replaces both, ``pre_logits`` gives the pooled.

Two-stage recipe: train ``xshiftnet_rgb`` and ``xshiftnet_pose`` alone (stage 1), then build
EPAM-Net from them with :meth:`EPAMNet.load_stream_weights` / :meth:`EPAMNet.from_streams`
and train jointly (stage 2: SGD 0.9, wd 3e-4, lr 0.0015 at batch 24, cosine, 10 epochs).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from ..modalities.encoder_contract import Encoder
from ..modalities.features import EncoderOutput
from ..modalities.rgb.xshiftnet import (
    EPAM_HEAD_DROPOUT, XShiftNetClassifier, XShiftNetPose, XShiftNetRGB, encoder_output_from_map, pose_spec,
    rgb_spec,
)
from ..registry import register_model
from .spatial_temporal_attention import SpatialTemporalAttention, temporal_step


class EPAMNet(Encoder):
    """EPAM-Net: RGB and pose X-ShiftNets, STA guiding RGB by pose, two summed heads.

    Args:
        num_classes: classes of both heads (0: no heads).
        drop_rate: dropout before each head (0.5).
        rgb_in_channels / pose_in_channels: 3 / 17 (COCO joints).
        rgb_fold_div / pose_fold_div: temporal shift folds (8 / 4).
    Batch: ``{"rgb": [N, 3, T_r, H, W], "pose_heatmap": [N, 17, T_p, H_p, W_p]}`` with T_p a multiple of T_r.
    """

    input_keys: Tuple[str, ...] = ("rgb", "pose_heatmap")

    def __init__(self, num_classes: int = 60, drop_rate: float = EPAM_HEAD_DROPOUT, rgb_in_channels: int = 3,
                 pose_in_channels: int = 17, rgb_fold_div: Optional[int] = 8, pose_fold_div: Optional[int] = 4) -> None:
        super().__init__()
        self.rgb = XShiftNetRGB(rgb_spec(rgb_fold_div, rgb_in_channels), num_classes, drop_rate)
        self.pose = XShiftNetPose(pose_spec(pose_fold_div, pose_in_channels), num_classes, drop_rate)
        self.sta = SpatialTemporalAttention()
        self.num_classes = num_classes
        self.rgb_dim = self.rgb.backbone.out_channels
        self.pose_dim = self.pose.backbone.out_channels
        self.num_features = self.rgb_dim + self.pose_dim  # width of EncoderOutput.pooled

    def get_classifier(self) -> Optional[nn.ModuleDict]:
        """{"rgb": head, "pose": head}, None without heads."""
        if self.num_classes == 0:
            return None
        return nn.ModuleDict({"rgb": self.rgb.head, "pose": self.pose.head})

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh heads on both streams (0: none)."""
        self.rgb.reset_classifier(num_classes)
        self.pose.reset_classifier(num_classes)
        self.num_classes = int(num_classes)

    def load_stream_weights(self, rgb_state: Optional[Mapping[str, torch.Tensor]] = None,
                            pose_state: Optional[Mapping[str, torch.Tensor]] = None, strict: bool = True) -> None:
        """Initialise the streams from stage-1 ``xshiftnet_rgb`` / ``xshiftnet_pose`` state dicts (backbone + head)."""
        if rgb_state is not None:
            self.rgb.load_state_dict(rgb_state, strict=strict)
        if pose_state is not None:
            self.pose.load_state_dict(pose_state, strict=strict)

    @classmethod
    def from_streams(cls, rgb_model: XShiftNetClassifier, pose_model: XShiftNetClassifier, **kwargs) -> "EPAMNet":
        """A new EPAM-Net whose streams start from two trained single-stream classifiers (stage 2 from stage 1)."""
        kwargs.setdefault("num_classes", rgb_model.num_classes)
        model = cls(**kwargs)
        model.load_stream_weights(rgb_model.state_dict(), pose_model.state_dict())
        return model

    def forward_features(self, x: Dict[str, torch.Tensor]) -> EncoderOutput:
        """x: {"rgb": [N, 3, T_r, H, W], "pose_heatmap": [N, K, T_p, H_p, W_p]} -> EncoderOutput.

        sequence [N, T_r, 432 + 216] (pose frames 0, step, ...), pooled [N, 432 + 216] (RGB after STA,
        pose over all T_p frames), spatial = attended RGB map [N, 432, T_r, h, w],
        aux {"rgb_pooled": [N, 432], "pose_pooled": [N, 216], "pose_spatial": [N, 216, T_p, h', w']}.
        """
        missing = [k for k in self.input_keys if k not in x]
        if missing:
            raise KeyError(f"EPAM-Net needs batch keys {self.input_keys}; missing {missing}")
        rgb_map = self.rgb.backbone(x["rgb"])
        pose_map = self.pose.backbone(x["pose_heatmap"])
        attended = self.sta(rgb_map, pose_map)
        rgb_out = encoder_output_from_map(attended)
        pose_out = encoder_output_from_map(pose_map)
        step = temporal_step(rgb_map.shape[2], pose_map.shape[2])
        sequence = torch.cat([rgb_out.sequence, pose_out.sequence[:, 0::step]], dim=-1)
        pooled = torch.cat([rgb_out.pooled, pose_out.pooled], dim=-1)
        aux = {"rgb_pooled": rgb_out.pooled, "pose_pooled": pose_out.pooled, "pose_spatial": pose_map}
        return EncoderOutput(sequence=sequence, pooled=pooled, spatial=attended, aux=aux)

    def forward_stream_logits(self, feats: EncoderOutput) -> Dict[str, torch.Tensor]:
        """feats -> {"rgb": [N, C], "pose": [N, C]} from the two heads on the split pooled feature."""
        if self.num_classes == 0:
            raise RuntimeError("this EPAM-Net has no heads (num_classes=0): call reset_classifier(n) first")
        rgb_pooled, pose_pooled = torch.split(feats.pooled, [self.rgb_dim, self.pose_dim], dim=-1)
        return {"rgb": self.rgb.head(rgb_pooled), "pose": self.pose.head(pose_pooled)}

    def forward_head(self, feats: EncoderOutput, pre_logits: bool = False) -> torch.Tensor:
        """feats -> z_rgb + z_pose [N, C]; the pooled [N, 432 + 216] with ``pre_logits`` or without heads."""
        if pre_logits or self.num_classes == 0:
            return feats.pooled
        logits = self.forward_stream_logits(feats)
        return logits["rgb"] + logits["pose"]


@register_model("epam_net", modality="multimodal")
def epam_net(num_classes: int = 60, **kwargs) -> EPAMNet:
    """EPAM-Net: pose-guided (STA) X-ShiftNet RGB + pose streams, logits summed."""
    return EPAMNet(num_classes=num_classes, **kwargs)
