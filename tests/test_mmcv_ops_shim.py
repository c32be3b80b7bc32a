"""The mmcv-lite stand-in for ``mmcv.ops``: mmcv's NMS results from torchvision, other ops one clear line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actionfusion.errors import MissingDependencyError
from actionfusion.modalities.pose.mmcv_ops_shim import _missing_op, batched_nms, nms


def _greedy_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Plain greedy NMS: the highest score stays, boxes overlapping it by IoU > threshold go."""
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        best = order.pop(0)
        keep.append(int(best))
        rest = []
        for other in order:
            x0, y0 = np.maximum(boxes[best, :2], boxes[other, :2])
            x1, y1 = np.minimum(boxes[best, 2:], boxes[other, 2:])
            inter = max(x1 - x0, 0) * max(y1 - y0, 0)
            area = lambda b: (b[2] - b[0]) * (b[3] - b[1])  # noqa: E731
            if inter / (area(boxes[best]) + area(boxes[other]) - inter) <= threshold:
                rest.append(other)
        order = rest
    return keep


def _boxes(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 80, (count, 2))
    size = rng.uniform(5, 40, (count, 2))
    return (torch.tensor(np.concatenate([corner, corner + size], 1), dtype=torch.float32),
            torch.tensor(rng.uniform(0, 1, count), dtype=torch.float32))


def test_nms_keeps_what_greedy_nms_keeps_with_mmcv_dets() -> None:
    boxes, scores = _boxes(60, 0)
    dets, keep = nms(boxes, scores, 0.4)
    assert keep.tolist() == _greedy_nms(boxes.numpy(), scores.numpy(), 0.4)
    assert dets.shape == (len(keep), 5)
    torch.testing.assert_close(dets[:, :4], boxes[keep])
    torch.testing.assert_close(dets[:, 4], scores[keep])
    assert torch.all(dets[1:, 4] <= dets[:-1, 4])
    _, few = nms(boxes, scores, 0.4, max_num=3, score_threshold=0.5)
    assert few.tolist() == [k for k in keep.tolist() if scores[k] > 0.5][:3]


def test_batched_nms_suppresses_within_a_class_only() -> None:
    boxes, scores = _boxes(40, 1)
    classes = torch.tensor(np.random.default_rng(2).integers(0, 3, 40))
    dets, keep = batched_nms(boxes, scores, classes, {"type": "nms", "iou_threshold": 0.3})
    expected = []
    for c in range(3):
        members = np.flatnonzero(classes.numpy() == c)
        expected += [int(members[i]) for i in _greedy_nms(boxes.numpy()[members], scores.numpy()[members], 0.3)]
    assert sorted(keep.tolist()) == sorted(expected)
    assert torch.all(dets[1:, 4] <= dets[:-1, 4])
    _, agnostic = batched_nms(boxes, scores, classes, {"type": "nms", "iou_threshold": 0.3}, class_agnostic=True)
    assert agnostic.tolist() == _greedy_nms(boxes.numpy(), scores.numpy(), 0.3)
    with pytest.raises(MissingDependencyError, match="soft_nms"):
        batched_nms(boxes, scores, classes, {"type": "soft_nms", "iou_threshold": 0.3})


def test_a_compiled_op_fails_in_one_line_when_built() -> None:
    deform = _missing_op("DeformConv2d")

    class Subclass(deform):  # mmdet subclasses ops while it loads: that must still work
        pass

    with pytest.raises(MissingDependencyError, match="mmcv.ops.DeformConv2d is a compiled op"):
        Subclass(3, 3, 3)


def test_every_import_of_a_compiled_op_sees_the_same_class() -> None:
    assert _missing_op("RoIAlign") is _missing_op("RoIAlign") and _missing_op("RoIAlign") is not _missing_op("nms3d")
