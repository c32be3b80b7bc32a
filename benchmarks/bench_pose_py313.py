"""BlazePose on Python 3.13 (mediapipe 1.x, released bundle) against this environment (mediapipe 0.10.14).

mediapipe 0.10.14 has no Python 3.13 wheel; on 3.13 the ``[pose]`` extra installs mediapipe 1.x,
which runs the released PoseLandmarker bundle from the cache (``mediapipe_bundle.released_bundle_path``).
This script checks that path end to end as far as a machine without Google's file allows:

1. a Python 3.13 venv (``--venv``, created if missing) gets ``mediapipe>=1.2``, ``av`` and ``pyyaml``
   from the package index (the pose backend needs no torch);
2. the bundle is built from this environment's 0.10.14 models (:func:`build_pose_bundle_bytes`) and
   placed in a temporary cache as ``pose_landmarker_full.task``, where a download would put it
   (pass ``--bundle FILE`` to use Google's released file instead);
3. the same ``--frames`` frames of the fixture video go through :class:`BlazePoseEstimator` (one
   person) in both interpreters; printed: frames with a person in each, and the mean / max pixel
   difference of the keypoints both see with visibility > 0.5.

Run: .venv/bin/python benchmarks/bench_pose_py313.py --python /root/.pyenv/versions/3.13.0/bin/python3.13
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from actionfusion.modalities.pose import mediapipe_bundle  # noqa: E402

DEFAULT_VIDEO = REPO_ROOT / ".." / "shared" / "fixtures" / "ntu" / "S001C001P001R001A001_rgb.avi"
PROBE = """
import sys, numpy as np, av
from actionfusion.modalities.pose.mediapipe_backend import BlazePoseEstimator
import mediapipe
frames = []
for frame in av.open(sys.argv[1]).decode(video=0):
    frames.append(frame.to_ndarray(format="rgb24"))
    if len(frames) == int(sys.argv[3]):
        break
estimator = BlazePoseEstimator(num_poses=1)
people = estimator.estimate(frames)
estimator.close()
np.save(sys.argv[2], np.array([p[0].keypoints if p else np.zeros((33, 3), np.float32) for p in people]))
print(sys.version.split()[0], mediapipe.__version__)
"""


def run_probe(python: str, video: Path, out: Path, frames: int, cache: "Path | None") -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    if cache is not None:
        env["ACTIONFUSION_CACHE"] = str(cache)
    done = subprocess.run([python, "-c", PROBE, str(video), str(out), str(frames)], env=env, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True, help="a Python 3.13 interpreter")
    parser.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "actionfusion-py313")
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--bundle", type=Path, default=None, help="Google's released pose_landmarker_full.task")
    args = parser.parse_args()

    python = args.venv / "bin" / "python"
    if not python.is_file():
        subprocess.run([args.python, "-m", "venv", str(args.venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "mediapipe>=1.2", "av", "pyyaml"], check=True,
                   capture_output=True)
    with tempfile.TemporaryDirectory(prefix="bench-py313-") as tmp:
        tmp_path = Path(tmp)
        cache = tmp_path / "cache"
        (cache / "mediapipe").mkdir(parents=True)
        target = cache / "mediapipe" / mediapipe_bundle.RELEASED_BUNDLE_NAME
        if args.bundle is not None:
            target.write_bytes(args.bundle.read_bytes())
            source = str(args.bundle)
        else:
            detector, landmarks = mediapipe_bundle._wheel_models()
            target.write_bytes(mediapipe_bundle.build_pose_bundle_bytes(detector.read_bytes(), landmarks.read_bytes()))
            source = "built from this environment's mediapipe 0.10.14 models"
        new = run_probe(str(python), args.video, tmp_path / "new.npy", args.frames, cache)
        old = run_probe(sys.executable, args.video, tmp_path / "old.npy", args.frames, None)
        a, b = np.load(tmp_path / "new.npy"), np.load(tmp_path / "old.npy")
    both = (a[..., 2] > 0.5) & (b[..., 2] > 0.5)
    diff = np.abs(a[..., :2] - b[..., :2])[both]
    print(json.dumps({
        "benchmark": "pose_python313", "video": args.video.name, "frames": args.frames,
        "python313": new, "baseline": old, "bundle": source,
        "frames_with_person": {"python313": int((a[..., 2].max(-1) > 0).sum()), "baseline": int((b[..., 2].max(-1) > 0).sum())},
        "joints_compared": int(both.sum()), "mean_px_diff": round(float(diff.mean()), 3) if diff.size else None,
        "max_px_diff": round(float(diff.max()), 3) if diff.size else None,
    }))


if __name__ == "__main__":
    main()
