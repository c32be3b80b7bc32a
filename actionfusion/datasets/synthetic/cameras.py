"""The three Kinect v2 cameras of a synthetic setup and the world <-> camera transforms.

World frame: metres, right-handed, y up, origin on the floor at the middle of the stage;
camera 2 looks along +z. As in NTU RGB+D (Shahroudy et al., CVPR 2016, Sec. 3) the
three cameras stand at the same height and look at the stage from -45 (camera 1),
0 (camera 2, front) and +45 (camera 3) degrees. Camera space is the Kinect's: x, y up,
z forward, projected by ``u = cx + fx x / z``, ``v = cy - fy y / z``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...geometry import CameraIntrinsics, rotation_matrix

CAMERA_YAW_DEG: dict[int, float] = {1: -45.0, 2: 0.0, 3: 45.0}
"""NTU RGB+D camera number -> horizontal view angle (official README / CVPR 2016 paper)."""

SETUP_GEOMETRY: dict[int, tuple[float, float]] = {
    1: (0.80, 3.0), 2: (1.00, 3.3), 3: (0.90, 2.8), 4: (1.10, 3.5),
    5: (0.85, 3.1), 6: (1.05, 2.9), 7: (0.95, 3.4), 8: (0.75, 3.2),
}
"""Synthetic setup number -> (camera height above the floor, distance to the stage centre), metres.

NTU varied camera height and distance per setup; these are plausible values in its range
(the real skeletons sit about 2.5-4 m from the sensor). Setups beyond the table cycle it.
"""


@dataclass(frozen=True)
class CameraPose:
    """A camera's extrinsics: ``p_cam = rotation.T @ (p_world - position)``.

    Attributes:
        rotation: float [3, 3] camera axes (columns) in world coordinates.
        position: float [3] optical centre in world coordinates.
    """

    rotation: np.ndarray
    position: np.ndarray

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        """float [..., 3] world points -> camera space."""
        return (np.asarray(points) - self.position) @ self.rotation

    def camera_to_world(self, points: np.ndarray) -> np.ndarray:
        """float [..., 3] camera-space points -> world."""
        return np.asarray(points) @ self.rotation.T + self.position

    def direction_to_camera(self, vectors: np.ndarray) -> np.ndarray:
        """float [..., 3] world directions -> camera space (no translation)."""
        return np.asarray(vectors) @ self.rotation


def setup_geometry(setup: int) -> tuple[float, float]:
    """(camera height, stage distance) of a synthetic setup, metres."""
    keys = sorted(SETUP_GEOMETRY)
    return SETUP_GEOMETRY[keys[(setup - 1) % len(keys)]]


def camera_pose(setup: int, camera: int) -> CameraPose:
    """The pose of NTU camera 1, 2 or 3 of a setup; it looks at a point 0.9 m above the stage centre."""
    if camera not in CAMERA_YAW_DEG:
        raise ValueError(f"NTU has cameras 1-3, not {camera}")
    height, distance = setup_geometry(setup)
    yaw = np.deg2rad(CAMERA_YAW_DEG[camera])
    ry = rotation_matrix("y", yaw)
    position = ry @ np.array([0.0, height, -distance])
    pitch = np.arctan2(height - 0.9, distance)  # positive: look down
    rotation = ry @ rotation_matrix("x", pitch)
    return CameraPose(rotation=rotation, position=position)


def scaled_color_intrinsics(color: CameraIntrinsics, width: int, height: int) -> CameraIntrinsics:
    """The 1920x1080 colour camera scaled to a ``width`` x ``height`` video.

    A pixel (colorX, colorY) of the full frame maps to (colorX * width / 1920, colorY * height / 1080).
    """
    sx, sy = width / 1920.0, height / 1080.0
    return CameraIntrinsics(fx=color.fx * sx, fy=color.fy * sy, cx=color.cx * sx, cy=color.cy * sy)
