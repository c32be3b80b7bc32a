"""Z-buffered rasterisation of capsules, cylinders and boxes in a pinhole camera.

Each primitive is drawn only inside its projected bounding box; its per-pixel depth is
merged into the z-buffer by comparison, so the nearest surface wins. Capsules use the
sphere-swept-segment approximation: the 2D distance of a pixel to the projected segment,
against a radius interpolated along it, gives the surface depth ``z - r sqrt(1 - d^2/rho^2)``
and a normal for Lambert shading. Boxes intersect the pixel rays with their faces exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...geometry import CameraIntrinsics

LIGHT_DIRECTION = np.array([0.35, 0.75, -0.55]) / np.linalg.norm([0.35, 0.75, -0.55])
"""Towards the light, camera space: above, slightly to the side, in front of the performer."""
AMBIENT = 0.35
NEAR_Z = 0.2
_LIGHT32 = tuple(np.float32(c) for c in LIGHT_DIRECTION)


@dataclass(frozen=True)
class Capsule:
    """A segment swept by a sphere (``flat_caps``: a cylinder with flat ends).

    Attributes:
        p0, p1: float [3] end points, camera space, metres.
        radius: metres.
        material: index into the frame's palette (1..255; 0 is background).
    """

    p0: np.ndarray
    p1: np.ndarray
    radius: float
    material: int
    flat_caps: bool = False


@dataclass(frozen=True)
class Box:
    """An oriented box.

    Attributes:
        centre: float [3] camera space, metres.
        axes: float [3, 3] rows are the box's unit axes in camera space.
        half: float [3] half extents along those axes.
        material: palette index.
    """

    centre: np.ndarray
    axes: np.ndarray
    half: np.ndarray
    material: int


@dataclass
class FrameBuffers:
    """The rasteriser's output for one frame.

    Attributes:
        depth: float32 [H, W] metres, +inf where nothing was drawn.
        material: uint8 [H, W] palette index, 0 where nothing was drawn.
        shade: float32 [H, W] Lambert factor in [AMBIENT, 1] (1 where nothing was drawn).
    """

    depth: np.ndarray
    material: np.ndarray
    shade: np.ndarray


class Rasterizer:
    """Draws primitives into buffers of one camera and image size.

    Args:
        intrinsics: the pinhole camera.
        size_hw: (H, W) of the image.
        shading: compute the Lambert shade buffer (needed for RGB, not for depth).
    """

    def __init__(self, intrinsics: CameraIntrinsics, size_hw: tuple[int, int], shading: bool = True):
        self.k = intrinsics
        self.h, self.w = size_hw
        self.shading = shading
        self._u = np.arange(self.w, dtype=np.float32)
        self._v = np.arange(self.h, dtype=np.float32)

    def new_buffers(self) -> FrameBuffers:
        """Empty buffers: depth +inf, material 0, shade 1."""
        return FrameBuffers(
            depth=np.full((self.h, self.w), np.inf, np.float32),
            material=np.zeros((self.h, self.w), np.uint8),
            shade=np.ones((self.h, self.w), np.float32),
        )

    def _project(self, p: np.ndarray) -> tuple[float, float]:
        return self.k.cx + self.k.fx * p[0] / p[2], self.k.cy - self.k.fy * p[1] / p[2]

    def _window(self, umin: float, umax: float, vmin: float, vmax: float):
        u0, u1 = max(math.floor(umin), 0), min(math.ceil(umax) + 1, self.w)
        v0, v1 = max(math.floor(vmin), 0), min(math.ceil(vmax) + 1, self.h)
        if u0 >= u1 or v0 >= v1:
            return None
        return u0, u1, v0, v1

    def _merge(self, buf: FrameBuffers, win, inside: np.ndarray, z: np.ndarray,
               material: int, shade) -> None:
        u0, u1, v0, v1 = win
        zb = buf.depth[v0:v1, u0:u1]
        closer = inside & (z < zb)
        zb[closer] = z[closer]
        buf.material[v0:v1, u0:u1][closer] = material
        if self.shading:
            buf.shade[v0:v1, u0:u1][closer] = shade[closer] if np.ndim(shade) else shade

    def draw_capsule(self, buf: FrameBuffers, cap: Capsule) -> None:
        """Merge one capsule (or flat-capped cylinder) into ``buf``."""
        # Scalars as Python floats: numpy scalar arithmetic would dominate for small boxes.
        x0, y0, z0 = (float(c) for c in cap.p0)
        x1, y1, z1 = (float(c) for c in cap.p1)
        if z0 < NEAR_Z or z1 < NEAR_Z:
            return
        k = self.k
        u0, v0 = k.cx + k.fx * x0 / z0, k.cy - k.fy * y0 / z0
        u1, v1 = k.cx + k.fx * x1 / z1, k.cy - k.fy * y1 / z1
        r0, r1 = k.fx * cap.radius / z0, k.fx * cap.radius / z1
        rmax = max(r0, r1)
        win = self._window(min(u0, u1) - rmax, max(u0, u1) + rmax, min(v0, v1) - rmax, max(v0, v1) + rmax)
        if win is None:
            return
        du = self._u[win[0]:win[1]][None, :] - np.float32(u0)
        dv = self._v[win[2]:win[3]][:, None] - np.float32(v0)
        ex, ey = u1 - u0, v1 - v0
        length2 = ex * ex + ey * ey
        ex32, ey32 = np.float32(ex), np.float32(ey)
        if length2 > 1e-6:
            t = du * np.float32(ex / length2) + dv * np.float32(ey / length2)
            tc = np.minimum(np.maximum(t, np.float32(0.0)), np.float32(1.0))
        else:
            t = tc = np.zeros((1, 1), np.float32)
        rx = du - tc * ex32
        ry = dv - tc * ey32
        rho = np.float32(r0) + np.float32(r1 - r0) * tc
        q = (rx * rx + ry * ry) / (rho * rho)
        inside = q < 1.0
        if cap.flat_caps:
            inside &= (t >= 0) & (t <= 1)
        if not inside.any():
            return
        hgt = np.sqrt(np.maximum(np.float32(1.0) - q, np.float32(0.0)))
        z = np.float32(z0) + np.float32(z1 - z0) * tc - np.float32(cap.radius) * hgt
        shade = None
        if self.shading:
            lx, ly, lz = _LIGHT32
            lam = (rx * lx - ry * ly) / rho - hgt * lz
            shade = np.float32(AMBIENT) + np.float32(1 - AMBIENT) * np.minimum(np.maximum(lam, 0.0), 1.0)
        self._merge(buf, win, inside, z, cap.material, shade)

    def draw_box(self, buf: FrameBuffers, box: Box) -> None:
        """Merge one oriented box: each face turned to the camera, ray-plane intersected."""
        centre, axes, half = (np.asarray(a, np.float64) for a in (box.centre, box.axes, box.half))
        for i in range(3):
            for sign in (1.0, -1.0):
                normal = sign * axes[i]
                face_c = centre + normal * half[i]
                if normal @ face_c >= 0 or face_c[2] < NEAR_Z:
                    continue  # faces away from the camera (at the origin)
                j, k = [a for a in range(3) if a != i]
                corners = np.array([face_c + sj * axes[j] * half[j] + sk * axes[k] * half[k]
                                    for sj in (-1, 1) for sk in (-1, 1)])
                if np.any(corners[:, 2] < NEAR_Z):
                    continue
                uv = np.array([self._project(c) for c in corners])
                win = self._window(uv[:, 0].min(), uv[:, 0].max(), uv[:, 1].min(), uv[:, 1].max())
                if win is None:
                    continue
                rx = (self._u[win[0]:win[1]][None, :] - self.k.cx) / self.k.fx
                ry = (self.k.cy - self._v[win[2]:win[3]][:, None]) / self.k.fy
                denom = normal[0] * rx + normal[1] * ry + normal[2]
                with np.errstate(divide="ignore", invalid="ignore"):
                    depth = (normal @ face_c) / denom
                off_x, off_y, off_z = rx * depth - face_c[0], ry * depth - face_c[1], depth - face_c[2]
                a = off_x * axes[j][0] + off_y * axes[j][1] + off_z * axes[j][2]
                b = off_x * axes[k][0] + off_y * axes[k][1] + off_z * axes[k][2]
                inside = (np.abs(a) <= half[j]) & (np.abs(b) <= half[k]) & (depth > NEAR_Z)
                if not inside.any():
                    continue
                lam = float(np.clip(normal @ LIGHT_DIRECTION, 0.0, 1.0))
                self._merge(buf, win, inside, depth.astype(np.float32), box.material,
                            np.float32(AMBIENT + (1 - AMBIENT) * lam))

    def render(self, primitives: list) -> FrameBuffers:
        """Draw a list of :class:`Capsule` / :class:`Box` into fresh buffers."""
        buf = self.new_buffers()
        for prim in primitives:
            if isinstance(prim, Capsule):
                self.draw_capsule(buf, prim)
            else:
                self.draw_box(buf, prim)
        return buf
