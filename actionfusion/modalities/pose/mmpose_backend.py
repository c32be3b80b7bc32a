"""The mmpose backend (optional ``[mmpose]`` extra): person boxes + a top-down mmpose model.

For users who have mmpose checkpoints (RTMPose, HRNet, ...): a person detector gives boxes,
then ``mmpose.apis.inference_topdown`` estimates one pose per box. Output layout ``"coco17"``
(the COCO-trained top-down models), keypoints in pixels with mmpose's keypoint scores clipped to
[0, 1]; no world keypoints. Runs on ``device="cpu"`` or ``"cuda[:N]"``.

Person boxes come from, in order of preference:

* an mmdet detector (``det_config`` + ``det_checkpoint``; ``mmdet.apis.init_detector`` /
  ``inference_detector``), keeping class ``det_cat_id`` (COCO person = 0) above
  ``det_score_threshold``;
* a ``person_boxes`` callable, ``f(frame uint8 [H, W, 3] RGB) -> float [N, 4]`` (x0, y0, x1, y1),
  e.g. boxes from another detector or from the default backend;
* otherwise the whole frame as one box (one person, as in mmpose's own default).

Installing (mmpose 1.3.2, measured; README "Poses from raw video"): ``pip install 'actionfusion[mmpose]'`` gives
``mmcv-lite==2.1.0`` (full mmcv 2.x has no PyPI wheels), ``mmengine==0.10.7`` with
``setuptools<81``, mmdet 3.3.0 and mmpose; two packages need a step pip cannot express in an extra:
chumpy (an mmpose requirement whose setup imports pip: ``pip install --no-build-isolation chumpy``
first) and xtcocotools, whose wheel is built against numpy 1 (``pip install --force-reinstall
--no-deps --no-binary xtcocotools xtcocotools`` after). mmcv-lite has no compiled ops, which mmpose
and mmdet import while loading: :mod:`.mmcv_ops_shim` stands in for ``mmcv.ops`` (NMS through
torchvision; any other compiled op fails in one line when a model builds it). Checkpoints whose
``meta`` holds numpy objects fail to load under torch >= 2.6 (``weights_only``; mmengine#1655).
mmpose is imported only when this backend is created; without it an ImportError says the above.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from actionfusion.errors import MissingDependencyError
from actionfusion.modalities.pose.estimator import PersonPose, register_pose_backend
from actionfusion.modalities.pose.mmcv_ops_shim import install_mmcv_ops_shim

INSTALL_HINT = (
    "the 'mmpose' pose backend needs mmpose: pip install 'setuptools<81' && pip install --no-build-isolation "
    "chumpy && pip install 'actionfusion[mmpose]' && pip install --force-reinstall --no-deps --no-binary "
    "xtcocotools xtcocotools (chumpy's setup imports pip; the xtcocotools wheel is built against numpy 1). "
    "Or use backend='default' (BlazePose, bundled)."
)

PersonBoxes = Callable[[np.ndarray], np.ndarray]


def _import_mmpose_apis():
    try:
        install_mmcv_ops_shim()  # mmcv-lite: mmcv.ops without compiled ops (a no-op with full mmcv)
        from mmpose.apis import inference_topdown, init_model
    except ImportError as exc:
        raise MissingDependencyError(f"{INSTALL_HINT} (import failed: {exc})") from exc
    except ValueError as exc:  # a compiled extension built against another numpy (the xtcocotools wheel)
        if "binary incompatib" not in str(exc):
            raise
        raise MissingDependencyError(f"an mmpose dependency was built against another numpy ({exc}): "
                                     "pip install --force-reinstall --no-deps --no-binary xtcocotools xtcocotools") from exc
    return init_model, inference_topdown


class MMPoseEstimator:
    """Top-down mmpose estimation of every person box in each frame.

    Args:
        pose_config: an mmpose model config (path or ``mmengine.Config``).
        pose_checkpoint: its weights; None initialises the model randomly (for tests).
        device: "cpu" or "cuda[:N]".
        det_config, det_checkpoint: an mmdet detector (both, or neither).
        det_cat_id: the detector's person class.
        det_score_threshold: least detector score for a person box.
        person_boxes: boxes for a frame when there is no mmdet detector (module docstring).
        layout: the joint layout the pose model predicts.
    """

    def __init__(self, pose_config, pose_checkpoint: Optional[str] = None, device: str = "cpu",
                 det_config=None, det_checkpoint: Optional[str] = None, det_cat_id: int = 0,
                 det_score_threshold: float = 0.5, person_boxes: Optional[PersonBoxes] = None,
                 layout: str = "coco17") -> None:
        init_model, self._inference_topdown = _import_mmpose_apis()
        self.layout = layout
        self.device = device
        self.model = init_model(pose_config, pose_checkpoint, device=device)
        self.detector = None
        if det_config is not None:
            try:
                from mmdet.apis import inference_detector, init_detector
            except ImportError as exc:
                raise MissingDependencyError(f"a detector config was given but mmdet is missing. {INSTALL_HINT}") from exc
            self._inference_detector = inference_detector
            self.detector = init_detector(det_config, det_checkpoint, device=device)
        self.det_cat_id, self.det_score_threshold = int(det_cat_id), float(det_score_threshold)
        self.person_boxes = person_boxes

    def reset(self) -> None:
        """Top-down estimation keeps no state between frames."""

    def _boxes(self, frame_bgr: np.ndarray, frame_rgb: np.ndarray) -> np.ndarray:
        """Person boxes float32 [N, 4] (x0, y0, x1, y1) for one frame."""
        if self.detector is not None:
            instances = self._inference_detector(self.detector, frame_bgr).pred_instances.cpu().numpy()
            keep = (instances.labels == self.det_cat_id) & (instances.scores > self.det_score_threshold)
            return np.asarray(instances.bboxes[keep], np.float32).reshape(-1, 4)
        if self.person_boxes is not None:
            return np.asarray(self.person_boxes(frame_rgb), np.float32).reshape(-1, 4)
        height, width = frame_rgb.shape[:2]
        return np.array([[0, 0, width, height]], np.float32)

    def estimate(self, frames: Sequence[np.ndarray]) -> list[list[PersonPose]]:
        """Poses of every person box in each uint8 [H, W, 3] RGB frame."""
        out = []
        for frame in frames:
            frame_bgr = np.ascontiguousarray(frame[..., ::-1])  # mmpose/mmdet pipelines expect BGR
            boxes = self._boxes(frame_bgr, frame)
            people = []
            if len(boxes):
                # One PoseDataSample per box, in the order of the boxes.
                samples = self._inference_topdown(self.model, frame_bgr, boxes, bbox_format="xyxy")
                for box, sample in zip(boxes, samples):
                    xy = np.asarray(sample.pred_instances.keypoints, np.float32)[0]
                    score = np.clip(np.asarray(sample.pred_instances.keypoint_scores, np.float32)[0], 0.0, 1.0)
                    people.append(PersonPose(np.concatenate([xy, score[:, None]], axis=1),
                                             tuple(float(v) for v in box), None))
            out.append(people)
        return out


@register_pose_backend("mmpose")
def _create_mmpose(device: str = "cpu", **kwargs) -> MMPoseEstimator:
    if "pose_config" not in kwargs:
        _import_mmpose_apis()  # a missing install is the more useful error
        raise ValueError("backend 'mmpose' needs pose_config= (an mmpose config; pose_checkpoint= for weights)")
    return MMPoseEstimator(device=device, **kwargs)
