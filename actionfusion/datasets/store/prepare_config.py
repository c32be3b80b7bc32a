"""``PrepareConfig``: every setting that changes what ``prepare`` writes into a store.

The defaults are sized so that a full NTU RGB+D 60 store with all four modalities fits in
50 GB. Measured on the real NTU fixtures (the 1920x1080 ``S001C001P001R001A001_rgb.avi``
cropped with the skeleton box of the same setup/camera/performer, padding 0.25; the masked
depth ``S001C001P001R001A058`` cropped the same way), mean encoded bytes per frame:

=======================  =======  =============================================================
RGB JPEG person crop     bytes    (baseline JPEG; "opt" = optimised Huffman tables, lossless)
=======================  =======  =============================================================
224 px, quality 90       7,774    x 5.69 M frames = 44 GB for RGB alone: does not fit with the rest
224 px, quality 75       4,854
192 px, quality 80       4,401    3,975 opt
192 px, quality 75       3,951    3,504 opt: the default
160 px, quality 80       3,352    2,987 opt
depth PNG16 crop
64 px                    2,443
56 px                    1,944    the default
48 px                    1,506
=======================  =======  =============================================================

plus points (256 x 3 float16 = 1,536 bytes) and the skeleton (2 x 25 x 3 float32 = 600
bytes) per frame: about 7.6 KB a frame; 56,880 samples x about 100 frames = 5.69 M frames
-> about 43 GB. ``PrepareReport`` re-measures this on every run. Dropping a modality frees
room for more elsewhere, e.g. ``modalities=("skeleton", "rgb", "points")`` with
``rgb_size=224, rgb_jpeg_quality=85`` (about 5.6 KB a frame with optimised tables) comes to
about 44 GB.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from ...errors import StoreError, UsageError
from ...geometry import KINECT_V2_DEPTH_3DV, KINECT_V2_DEPTH_PSTNET, CameraIntrinsics
from ...modalities.pointcloud.sampling import SAMPLING_METHODS
from .layout import MODALITIES

INTRINSICS: dict[str, CameraIntrinsics] = {
    "kinect_v2_3dv": KINECT_V2_DEPTH_3DV,
    "kinect_v2_pstnet": KINECT_V2_DEPTH_PSTNET,
}
"""Depth intrinsics by name (values and sources in :mod:`actionfusion.geometry`)."""

POINT_DTYPES = ("float16", "float32")

SIZE_BOUNDS: dict[str, int] = {
    "max_actors": 16,     # Kinect v2 tracks at most 6 bodies
    "rgb_size": 2048,     # pixels per side of the stored person crop (the camera is 1920 x 1080)
    "depth_size": 1024,   # the depth camera is 512 x 424
    "num_points": 65536,  # a masked depth frame holds at most 217,088 pixels
}
"""Accepted range of each size option: an absurd value is refused before any frame is allocated."""


KEYS_ADDED_LATER: dict[str, Any] = {
    "point_voxel_size": 0.02,  # voxel_fps ran with sample_points' fixed 2 cm before the key existed
}
"""Keys added to :class:`PrepareConfig` after stores were first written, each with the value that
every store prepared before the key existed used. A stored config without such a key is read as
holding that value (:func:`complete_stored_config`), so a store prepared before the key was added
resumes under a config whose value equals the historical one, and refuses any other value. The
one place to record a new key: add it here with its historical value."""


def complete_stored_config(stored: Mapping[str, Any]) -> dict[str, Any]:
    """``stored`` (a manifest's config dict) with every absent key of :data:`KEYS_ADDED_LATER` filled in
    with its historical value; keys present are kept as stored."""
    return {**KEYS_ADDED_LATER, **dict(stored)}


class PrepareConfigError(UsageError):
    """A prepare option out of range or unknown (exit status 2 on the command line)."""


@dataclass(frozen=True)
class PrepareConfig:
    """What to prepare and how.

    Attributes:
        modalities: subset of ("skeleton", "rgb", "depth", "points").
        max_actors: M, actors kept by the denoiser (CTR-GCN/MAMP lineage keeps 2).
        rgb_size: side S of the square RGB person crop, pixels.
        rgb_jpeg_quality: JPEG quality (1-100) of the stored RGB frames.
        depth_size: side D of the square depth crop, pixels (nearest-neighbour resize: no
            depth value is invented at a person's edge).
        depth_png_compression: zlib level 0-9 of the 16-bit PNGs (lossless at every level).
        num_points: N, points per frame.
        point_sampling: ``sample_points`` method, one of
            :data:`~actionfusion.modalities.pointcloud.sampling.SAMPLING_METHODS`. Default
            ``"open3d_fps"``, chosen by measurement at N = 256 frame by frame (the table and
            command are in :mod:`actionfusion.modalities.pointcloud.sampling`): on the NTU
            fixture it is 1.03-1.05x open3d's own call, as fast as ``voxel_fps`` with 5 cm
            voxels (1.03-1.04x) and faster than with 2 cm (0.77-0.82x), at the same mean
            coverage (42.5 mm) and the best worst case (82 mm against 92 mm). Stores prepared
            before this default recorded ``"voxel_fps"``; resuming one needs that value.
        point_voxel_size: voxel edge in metres of ``"voxel_fps"`` (ignored by the other methods).
            Default 0.05, the measured fastest of 2, 3 and 5 cm at the same mean coverage (5 cm:
            1.03x open3d at N = 256, 1.4-1.6x at N = 1024). Stores prepared before the key
            existed used 0.02 (:data:`KEYS_ADDED_LATER`).
        points_dtype: "float16" (about 1 mm rounding error at NTU depths, measured by the
            tests) or "float32".
        video_backend: ``open_video`` backend.
        crop_padding: relative enlargement of the person boxes (0.25 = 25 % larger sides).
        intrinsics: name in :data:`INTRINSICS` used to back-project the masked depth.
        exclude_missing_skeletons: leave out samples with no ``.skeleton`` file in the root or
            listed in the official missing-skeleton lists.
        seed: base seed of the per-sample point sampling generator (the sample's own seed is
            derived from it and the sample name, so a resumed run equals an uninterrupted one).
    """

    modalities: tuple[str, ...] = MODALITIES
    max_actors: int = 2
    rgb_size: int = 192
    rgb_jpeg_quality: int = 75
    depth_size: int = 56
    depth_png_compression: int = 6
    num_points: int = 256
    point_sampling: str = "open3d_fps"
    point_voxel_size: float = 0.05
    points_dtype: str = "float16"
    video_backend: str = "pyav"
    crop_padding: float = 0.25
    intrinsics: str = "kinect_v2_3dv"
    exclude_missing_skeletons: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", tuple(self.modalities))
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or not self.modalities:
            raise PrepareConfigError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        if len(set(self.modalities)) != len(self.modalities):
            raise PrepareConfigError(f"duplicate modalities in {self.modalities}")
        if self.intrinsics not in INTRINSICS:
            raise PrepareConfigError(f"unknown intrinsics {self.intrinsics!r}; known: {sorted(INTRINSICS)}")
        if self.point_sampling not in SAMPLING_METHODS:
            raise PrepareConfigError(f"point_sampling must be one of {SAMPLING_METHODS}, got {self.point_sampling!r}")
        if not 0 < self.point_voxel_size <= 1:
            raise PrepareConfigError(f"point_voxel_size must lie in (0, 1] metres, got {self.point_voxel_size}")
        if self.points_dtype not in POINT_DTYPES:
            raise PrepareConfigError(f"points_dtype must be one of {POINT_DTYPES}, got {self.points_dtype!r}")
        for key, upper in SIZE_BOUNDS.items():
            if not 1 <= int(getattr(self, key)) <= upper:
                raise PrepareConfigError(f"{key} must lie in 1..{upper} (bounded before anything is allocated), "
                                         f"got {getattr(self, key)}")
        if not 1 <= self.rgb_jpeg_quality <= 100:
            raise PrepareConfigError(f"rgb_jpeg_quality must lie in 1..100, got {self.rgb_jpeg_quality}")
        if not 0 <= self.depth_png_compression <= 9:
            raise PrepareConfigError(f"depth_png_compression must lie in 0..9, got {self.depth_png_compression}")
        if not 0 <= self.crop_padding <= 10:
            raise PrepareConfigError(f"crop_padding must lie in [0, 10], got {self.crop_padding}")

    @property
    def camera(self) -> CameraIntrinsics:
        """The depth intrinsics named by :attr:`intrinsics`."""
        return INTRINSICS[self.intrinsics]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        out = asdict(self)
        out["modalities"] = list(self.modalities)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PrepareConfig":
        """Inverse of :meth:`to_dict`; a key of :data:`KEYS_ADDED_LATER` that ``data`` lacks takes its
        historical value (the one stores prepared before the key existed used), not the current default.

        Raises:
            StoreError: unknown keys or invalid values.
        """
        data = complete_stored_config(data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StoreError(f"unknown PrepareConfig keys {unknown}; known: {sorted(known)}")
        try:
            return cls(**dict(data))
        except (TypeError, ValueError) as err:
            raise StoreError(f"invalid PrepareConfig: {err}") from err
