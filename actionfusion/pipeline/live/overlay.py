"""Draw the people of a frame with their latest top-k labels (the labelled video of ``recognize``)."""

from __future__ import annotations

from typing import Mapping

import cv2
import numpy as np

from ...modalities.pose.estimator import PersonPose
from ...modalities.pose.visualize import TRACK_COLOURS, draw_poses
from .live_recognizer import WindowResult


def draw_labelled_frame(image: np.ndarray, people: Mapping[int, PersonPose], labels: Mapping[int, WindowResult],
                        layout: str, lines: int = 5) -> np.ndarray:
    """uint8 [H, W, 3]: a copy of ``image`` with each person's pose in its track colour and, above
    its box, its last window's top ``lines`` classes with their probabilities."""
    height = image.shape[0]
    out = np.ascontiguousarray(image).copy()
    scale = max(0.35, height / 1400)
    thick = max(1, round(height / 540))
    for tid, person in people.items():
        colour = TRACK_COLOURS[tid % len(TRACK_COLOURS)]
        kp = np.asarray(person.keypoints, np.float32)
        # draw_poses colours person m with TRACK_COLOURS[m]: put this one in its track's row
        rows = np.zeros((tid % len(TRACK_COLOURS) + 1,) + kp.shape, np.float32)
        rows[-1] = kp
        out = draw_poses(out, rows, layout)
        x0, y0, x1, y1 = person.box
        left, top = int(max(0, x0)), int(max(0, y0))
        cv2.rectangle(out, (left, top), (int(x1), int(y1)), colour, thick)
        result = labels.get(tid)
        texts = [f"#{tid}"] + ([f"{name} {p:.2f}" for _, name, p in result.top[:lines]] if result else ["..."])
        _text_block(out, texts, left, top, scale, colour)
    return out


def _text_block(out: np.ndarray, texts: list[str], left: int, top: int, scale: float,
                colour: tuple[int, int, int]) -> None:
    """Texts stacked upwards from (left, top), on a dark band, clipped to the frame."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    line_h = int(22 * scale * 1.6) + 2
    width = max(cv2.getTextSize(t, font, scale, 1)[0][0] for t in texts) + 8
    block_h = line_h * len(texts) + 4
    y_top = max(0, top - block_h)
    x_left = min(max(0, left), max(0, out.shape[1] - width))
    region = out[y_top:y_top + block_h, x_left:x_left + width]
    region[:] = (region * 0.35).astype(np.uint8)
    for i, text in enumerate(texts):
        y = y_top + (i + 1) * line_h
        cv2.putText(out, text, (x_left + 4, y), font, scale, colour if i == 0 else (255, 255, 255), 1, cv2.LINE_AA)
