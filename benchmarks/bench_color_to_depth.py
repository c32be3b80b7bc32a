"""Fit and measure the Kinect v2 colour-to-depth map on the NTU skeleton fixtures.

Run: ``python benchmarks/bench_color_to_depth.py [FIXTURE_DIR]`` (default /work/shared/fixtures/ntu).
Prints one JSON line: per camera the fitted constants (affine + 1/z) and their pixel errors, the
pooled single-map errors, and the cross-setup check (C001 fitted on S001, tested on S002).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from actionfusion.datasets.ntu.skeleton_file import read_skeleton_file
from actionfusion.modalities.pose.color_to_depth import (NTU_KINECT_C001, NTU_KINECT_C003, fit_color_to_depth,
                                                         mapping_errors)


def correspondences(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """colour xy [N, 2], depth xy [N, 2], z [N] of every joint with finite fields in ``paths``."""
    rows = []
    for path in paths:
        joints = read_skeleton_file(path).joints.reshape(-1, 12)
        rows.append(joints[np.isfinite(joints[:, :7]).all(axis=1)])
    j = np.concatenate(rows).astype(np.float64)
    return j[:, 5:7], j[:, 3:5], j[:, 2]


def main(folder: str = "/work/shared/fixtures/ntu") -> dict:
    files = sorted(Path(folder).glob("*.skeleton"))
    by_camera: dict[str, list[Path]] = {}
    for f in files:
        by_camera.setdefault(f.name[4:8], []).append(f)
    out: dict = {"files": [f.name for f in files], "cameras": {}}
    shipped = {"C001": NTU_KINECT_C001, "C003": NTU_KINECT_C003}
    for cam, paths in sorted(by_camera.items()):
        c, d, z = correspondences(paths)
        fitted = fit_color_to_depth(c, d, z, name=cam)
        affine = fit_color_to_depth(c, d, z, inverse_depth=False)
        out["cameras"][cam] = {"fitted": fitted.to_dict(), "affine_plus_inverse_depth": mapping_errors(fitted, c, d, z),
                               "affine_only": mapping_errors(affine, c, d, z)}
        if cam in shipped:
            out["cameras"][cam]["shipped_constants"] = mapping_errors(shipped[cam], c, d, z)
    c, d, z = correspondences(files)
    out["pooled_single_map"] = {"affine_plus_inverse_depth": mapping_errors(fit_color_to_depth(c, d, z), c, d, z),
                                "affine_only": mapping_errors(fit_color_to_depth(c, d, z, inverse_depth=False), c, d, z)}
    s1 = [f for f in by_camera.get("C001", []) if f.name.startswith("S001")]
    s2 = [f for f in by_camera.get("C001", []) if not f.name.startswith("S001")]
    if s1 and s2:
        m = fit_color_to_depth(*correspondences(s1))
        out["c001_fit_s001_test_other_setups"] = mapping_errors(m, *correspondences(s2))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main(*sys.argv[1:])
