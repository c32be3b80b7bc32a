"""The RGB room behind the performers: a tiled floor and a wall, mildly textured.

Each pixel's ray from the colour camera is intersected with the floor (world y = 0) and a
wall 2 m behind the stage facing the camera; the nearer hit gives the colour. The room
depends on the setup and camera only, so it is computed once per sample.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ...geometry import CameraIntrinsics
from .cameras import camera_pose, setup_geometry
from .seeding import keyed_rng

_WALL_COLOURS = np.array([(200, 196, 186), (176, 186, 196), (206, 200, 170), (180, 180, 180)], float)
_FLOOR_COLOURS = np.array([(120, 100, 80), (90, 90, 95), (150, 130, 105), (110, 110, 100)], float)


def _low_frequency_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """float32 [H, W] smooth noise in about [-1, 1]."""
    coarse = rng.uniform(-1, 1, (cells, max(int(cells * width / max(height, 1)), 2))).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


@lru_cache(maxsize=16)
def room_background(seed: int, setup: int, camera: int, intrinsics: CameraIntrinsics,
                    size_hw: tuple[int, int]) -> np.ndarray:
    """uint8 [H, W, 3] RGB image of the empty room seen by NTU camera ``camera`` of a setup
    (cached, read-only)."""
    pose = camera_pose(setup, camera)
    h, w = size_hw
    rng = keyed_rng(seed, "room", setup, camera)
    u = (np.arange(w, dtype=np.float64) - intrinsics.cx) / intrinsics.fx
    v = (intrinsics.cy - np.arange(h, dtype=np.float64)) / intrinsics.fy
    rays = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((h, w))), axis=-1) @ pose.rotation.T
    origin = pose.position
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(rays[..., 1] < -1e-6, -origin[1] / rays[..., 1], np.inf)
        look = pose.rotation[:, 2] * np.array([1.0, 0.0, 1.0])
        look /= np.linalg.norm(look)
        wall_distance = setup_geometry(setup)[1] + 2.0
        t_wall = np.where(rays @ look > 1e-6, wall_distance / (rays @ look), np.inf)
    floor = t_floor < t_wall
    hit = origin + rays * np.minimum(t_floor, t_wall)[..., None]

    palette_index = (setup - 1) % len(_WALL_COLOURS)
    wall_rgb = _WALL_COLOURS[palette_index] * (0.92 + 0.08 * np.clip(hit[..., 1] / 2.5, 0, 1))[..., None]
    wall_rgb = wall_rgb + 10 * _low_frequency_noise(rng, h, w, 6)[..., None]
    skirting = hit[..., 1] < 0.1
    wall_rgb[skirting] *= 0.55
    tiles = (np.floor(hit[..., 0] / 0.6) + np.floor(hit[..., 2] / 0.6)) % 2
    floor_rgb = _FLOOR_COLOURS[palette_index] * (0.9 + 0.12 * tiles)[..., None]
    floor_rgb = floor_rgb * np.clip(1.1 - 0.04 * np.minimum(t_floor, 20), 0.6, 1.1)[..., None]
    image = np.where(floor[..., None], floor_rgb, wall_rgb)
    image += rng.normal(0, 3, image.shape)
    room = np.clip(image, 0, 255).astype(np.uint8)
    room.flags.writeable = False
    return room
