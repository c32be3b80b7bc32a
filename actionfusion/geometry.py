"""Camera model, the Kinect v2 intrinsics used for NTU RGB+D, and rotations.

Conventions (Kinect v2 camera space, as in NTU's ``.skeleton`` files): x to the
performer's left as seen by the camera (image right), y up, z away from the camera,
metres. Image coordinates: u grows to the right, v grows *downward*, so

    u = cx + fx * x / z,        v = cy - fy * y / z.

Depth maps store z in millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEPTH_SIZE_HW = (424, 512)
"""Kinect v2 depth image size (height, width). Source: NTU RGB+D README."""

COLOR_SIZE_HW = (1080, 1920)
"""Kinect v2 colour image size (height, width). Source: NTU RGB+D README."""


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels; ``v`` grows downward while camera ``y`` grows upward."""

    fx: float
    fy: float
    cx: float
    cy: float

    def project(self, xyz: np.ndarray) -> np.ndarray:
        """Project camera-space points to pixels.

        Args:
            xyz: [..., 3] camera-space points, z > 0 (any unit).
        Returns:
            [..., 2] pixel coordinates (u, v).
        """
        xyz = np.asarray(xyz, dtype=np.float64)
        z = xyz[..., 2]
        u = self.cx + self.fx * xyz[..., 0] / z
        v = self.cy - self.fy * xyz[..., 1] / z
        return np.stack([u, v], axis=-1)

    def backproject(self, u: np.ndarray, v: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Lift pixels with depth to camera space.

        Args:
            u, v: pixel coordinates, any broadcastable shape.
            z: depth along the optical axis, same unit as the output.
        Returns:
            [..., 3] points (x, y, z) with y up.
        """
        u, v, z = (np.asarray(a, dtype=np.float64) for a in (u, v, z))
        x = (u - self.cx) * z / self.fx
        y = (self.cy - v) * z / self.fy
        return np.stack(np.broadcast_arrays(x, y, z), axis=-1)


KINECT_V2_DEPTH_3DV = CameraIntrinsics(fx=365.481, fy=365.481, cx=257.346, cy=210.347)
"""Kinect v2 depth intrinsics used by 3DV-PointNet++ (3huo/3DV-Action@35606a1).

A least-squares fit on the NTU fixture skeletons (depthX/Y against x/z, y/z) gives
fx 365.5-366.9, fy 366.3-367.5, cx 256.3-262.5, cy 208.4-209.8, so these agree with the data.
"""

KINECT_V2_DEPTH_PSTNET = CameraIntrinsics(fx=280.0, fy=280.0, cx=256.0, cy=212.0)
"""The rounder approximation used by PSTNet (hehefan/Point-Spatio-Temporal-Convolution,
scripts/depth2point4ntu.py). Kept for reproducing that line of work; it does not fit the data."""

KINECT_V2_COLOR_APPROX = CameraIntrinsics(fx=1065.0, fy=1065.0, cx=960.0, cy=540.0)
"""An approximate colour-camera model for the 1920x1080 Kinect v2 RGB stream.

NTU recorded no RGB-depth calibration (official README, FAQ 2). These values are a
reconstruction: a typical Kinect v2 colour focal length (about 1060 px) and the image
centre. The synthetic generator uses them, with the colour camera placed at the depth
camera's origin, and writes colorX/Y from them; for real data use the per-file
depthXY -> colorXY pairs instead.
"""


def rotation_matrix(axis: str, angle: float) -> np.ndarray:
    """Right-handed rotation by ``angle`` radians about ``axis`` ('x', 'y' or 'z'): [3, 3]."""
    c, s = float(np.cos(angle)), float(np.sin(angle))
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    raise ValueError(f"axis must be 'x', 'y' or 'z', not {axis!r}")


def rotation_from_euler(rx: float, ry: float, rz: float) -> np.ndarray:
    """R = Rz @ Ry @ Rx for angles in radians: [3, 3]."""
    return rotation_matrix("z", rz) @ rotation_matrix("y", ry) @ rotation_matrix("x", rx)


def quaternion_from_matrix(rot: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z), w >= 0, from rotation matrices.

    Args:
        rot: [..., 3, 3] rotation matrices.
    Returns:
        [..., 4] quaternions in NTU's orientation order W, X, Y, Z.
    """
    rot = np.asarray(rot, dtype=np.float64)
    m = rot
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    w = np.sqrt(np.clip(1.0 + trace, 0, None)) / 2
    x = np.sqrt(np.clip(1.0 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2], 0, None)) / 2
    y = np.sqrt(np.clip(1.0 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], 0, None)) / 2
    z = np.sqrt(np.clip(1.0 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2], 0, None)) / 2
    x = np.copysign(x, m[..., 2, 1] - m[..., 1, 2])
    y = np.copysign(y, m[..., 0, 2] - m[..., 2, 0])
    z = np.copysign(z, m[..., 1, 0] - m[..., 0, 1])
    q = np.stack([w, x, y, z], axis=-1)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)
