"""Pose estimation on the real NTU fixture video: the default backend (BlazePose), extract_poses,
layout conversion, the visualiser, bad videos, and the optional mmpose backend."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import numpy as np
import pytest

from actionfusion.errors import VideoDecodeError

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
VIDEO = FIXTURES / "ntu" / "S001C001P001R001A001_rgb.avi"

mediapipe_missing = importlib.util.find_spec("mediapipe") is None
needs_mediapipe = pytest.mark.skipif(
    mediapipe_missing, reason="mediapipe is not installed: pip install 'mediapipe==0.10.14' (the [dev] extra)")


def _need_video() -> Path:
    if not VIDEO.is_file():
        pytest.skip(f"NTU fixtures not found at {FIXTURES}: they live in ../shared beside the repo")
    return VIDEO


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def poses(cache_dir):
    """The whole fixture video through the default backend (extracted once for the module)."""
    if mediapipe_missing:
        pytest.skip("mediapipe is not installed: pip install 'mediapipe==0.10.14' (the [dev] extra)")
    from actionfusion.modalities.pose.extract import extract_poses

    return extract_poses(_need_video(), cache_dir=str(cache_dir))


@pytest.mark.needs_blazepose
@needs_mediapipe
def test_default_backend_finds_the_person_in_nearly_every_frame(poses) -> None:
    assert poses.layout == "blazepose33"
    assert poses.frame_size == (1080, 1920)  # (height, width)
    assert poses.fps == pytest.approx(30.0)
    assert poses.num_frames == 103 and poses.frame_indices.tolist() == list(range(103))
    assert poses.keypoints.shape[2:] == (33, 3) and poses.keypoints.dtype == np.float32
    present = poses.present()
    # One person in this clip: the main track covers >= 90% of frames, and no second person is invented
    # for more than a few frames.
    main = int(np.argmax(present.sum(axis=1)))
    assert present[main].mean() >= 0.9
    assert present.sum() - present[main].sum() <= 5
    assert poses.world is not None and poses.world.shape == poses.keypoints.shape


@pytest.mark.needs_blazepose
@needs_mediapipe
def test_keypoints_fall_inside_the_frame(poses) -> None:
    k = poses.keypoints[poses.present()]  # [N, 33, 3]
    confident = k[..., 2] > 0.5
    assert confident.mean() > 0.8
    x, y = k[..., 0][confident], k[..., 1][confident]
    assert x.min() >= 0 and x.max() < 1920 and y.min() >= 0 and y.max() < 1080
    assert np.all((k[..., 2] >= 0) & (k[..., 2] <= 1))
    # The person (a standing adult in the middle of a 1080p frame) is neither a speck nor the frame.
    heights = k[..., 1].max(axis=1) - k[..., 1].min(axis=1)
    assert 200 < np.median(heights) < 1080


@pytest.mark.needs_blazepose
@needs_mediapipe
def test_limb_lengths_stay_consistent_over_time(poses) -> None:
    """Bones that stay roughly parallel to the image plane keep their projected length.

    In this clip (A001, drinking water) the subject stands facing the camera, so thighs, shins
    and the trunk side change their 2D length only by small posture changes (measured: coefficient
    of variation 1.4-2.7%), while the arms fold towards the camera (foreshortening, up to 25%) and
    are not used. A bound of 8% is three times the largest measured value and far below what
    swapped joints, a lost track or a jittering detector produce (tens of percent).
    """
    main = int(np.argmax(poses.present().sum(axis=1)))
    k = poses.keypoints[main][poses.present()[main]]
    bones = {"left thigh": (23, 25), "right thigh": (24, 26), "left shin": (25, 27), "right shin": (26, 28),
             "left trunk": (11, 23), "right trunk": (12, 24), "shoulders": (11, 12)}
    for name, (a, b) in bones.items():
        length = np.linalg.norm(k[:, a, :2] - k[:, b, :2], axis=1)
        assert length.min() > 20, name
        cv = length.std() / length.mean()
        assert cv < 0.08, f"{name}: coefficient of variation {cv:.3f}"
    # World landmarks are metric: a thigh is 0.3-0.6 m long.
    w = poses.world[main][poses.present()[main]]
    thigh = np.linalg.norm(w[:, 23] - w[:, 25], axis=1)
    assert 0.3 < np.median(thigh) < 0.6


@pytest.mark.needs_blazepose
@needs_mediapipe
def test_two_people_are_found_and_each_keeps_one_track(tmp_path, cache_dir) -> None:
    """The fixture's person beside her mirror image (30 frames, 800x480): two tracks, each
    staying on its own half of the frame in every frame (the Tasks API with num_poses > 1)."""
    from actionfusion.modalities.pose.extract import extract_poses
    from actionfusion.modalities.rgb.video import open_video
    from actionfusion.modalities.rgb.video_writer import VideoWriter

    path = tmp_path / "two_rgb.mp4"
    with open_video(_need_video()) as video, VideoWriter(path, 800, 480, fps=30) as writer:
        for index, crop in enumerate(video.iter_frames(crop=(845, 240, 1245, 720))):
            if index == 30:
                break
            writer.write(np.concatenate([crop, crop[:, ::-1]], axis=1))
    two = extract_poses(path, cache_dir=str(cache_dir))
    assert two.frame_size == (480, 800) and two.num_frames == 30
    present = two.present()
    assert two.num_persons == 2 and present.all(), present.sum(axis=1)
    mean_x = np.array([[two.keypoints[m, t, :, 0].mean() for t in range(30)] for m in range(2)])
    sides = mean_x > 400  # [M, T]: on the right half
    assert np.all(sides == sides[:, :1]) and sides[0, 0] != sides[1, 0]
    one = extract_poses(path, max_persons=1, cache_dir=str(cache_dir))
    assert one.num_persons == 1 and one.track_ids[0] in two.track_ids


@pytest.mark.needs_blazepose
@needs_mediapipe
def test_to_layout_shapes_and_joint_names(poses) -> None:
    coco, ntu = poses.to_layout("coco17"), poses.to_layout("ntu25")
    m, t = poses.keypoints.shape[:2]
    assert coco.keypoints.shape == (m, t, 17, 3) and coco.layout == "coco17"
    assert ntu.keypoints.shape == (m, t, 25, 3) and ntu.layout == "ntu25"
    assert coco.world.shape == (m, t, 17, 3) and coco.frame_size == poses.frame_size
    # By name: COCO left_wrist (9) is BlazePose left_wrist (15); NTU SpineBase (0) is the mid-hip.
    np.testing.assert_array_equal(coco.keypoints[..., 9, :], poses.keypoints[..., 15, :])
    np.testing.assert_allclose(ntu.keypoints[..., 0, :2], poses.keypoints[..., [23, 24], :2].mean(axis=-2),
                               rtol=1e-5, atol=1e-3)


@pytest.mark.needs_blazepose
@needs_mediapipe
def test_bundle_is_built_offline_into_the_cache_once(poses, cache_dir) -> None:
    import actionfusion
    from actionfusion.modalities.pose.mediapipe_bundle import blazepose_bundle_path

    bundles = list(cache_dir.glob("mediapipe/*.task"))
    assert len(bundles) == 1
    path = blazepose_bundle_path(cache_dir)
    assert path == bundles[0] and path.stat().st_mtime_ns == bundles[0].stat().st_mtime_ns
    assert not list(Path(actionfusion.__file__).parent.rglob("*.task"))
    import zipfile

    with zipfile.ZipFile(path) as archive:
        infos = {i.filename: i for i in archive.infolist()}
    assert set(infos) == {"pose_detector.tflite", "pose_landmarks_detector.tflite"}
    assert all(i.compress_type == zipfile.ZIP_STORED for i in infos.values())


@needs_mediapipe
def test_default_backend_is_cpu_only() -> None:
    from actionfusion.modalities.pose.estimator import create_pose_estimator

    with pytest.raises(ValueError, match="GPU delegate"):
        create_pose_estimator("default", device="cuda")


@pytest.mark.needs_blazepose
@needs_mediapipe
@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00AVI garbage" * 10, "truncated"])
def test_bad_video_gives_video_decode_error(tmp_path, content, cache_dir) -> None:
    from actionfusion.modalities.pose.extract import extract_poses

    path = tmp_path / "bad_rgb.avi"
    path.write_bytes(_need_video().read_bytes()[:300_000] if content == "truncated" else content)
    with pytest.raises(VideoDecodeError, match="bad_rgb.avi"):
        extract_poses(path, cache_dir=str(cache_dir))
    with pytest.raises(VideoDecodeError, match="not found"):
        extract_poses(tmp_path / "missing.avi")


def _decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.mark.needs_blazepose
@needs_mediapipe
def test_visualiser_writes_png_strip_and_mp4(poses, tmp_path) -> None:
    import cv2

    from actionfusion.modalities.pose.visualize import visualize_video_poses

    strip = visualize_video_poses(VIDEO, poses, tmp_path / "strip.png", num_frames=4)
    image = cv2.imread(str(strip))
    # Four tiles 270 high, zoomed to the person (narrower than the 480 of a whole 16:9 frame).
    assert image is not None and image.shape[0] == 270 and image.shape[1] % 4 == 0
    assert 4 * 100 < image.shape[1] < 4 * 480
    short = type(poses)(poses.keypoints[:, :20], poses.layout, poses.fps, poses.frame_size, None,
                        poses.track_ids, poses.frame_indices[:20])
    video = visualize_video_poses(VIDEO, short, tmp_path / "poses.mp4")
    frames = _decoded_frames(video)
    assert len(frames) == 20 and frames[0].shape == (540, 960, 3)
    # The skeleton is drawn: the drawn frame differs from the plain frame around the person only.
    plain = cv2.resize(_first_frame(), (960, 540), interpolation=cv2.INTER_AREA).astype(np.int16)
    diff = np.abs(frames[0].astype(np.int16) - plain).sum(axis=2) > 60
    box = poses.keypoints[0, 0, :, :2] / 2
    ys, xs = np.nonzero(diff)
    assert len(ys) > 200
    inside = (xs >= box[:, 0].min() - 15) & (xs <= box[:, 0].max() + 15) & \
             (ys >= box[:, 1].min() - 15) & (ys <= box[:, 1].max() + 15)
    assert inside.mean() > 0.9


class _FakeStore:
    """The SampleStore calls run_visualize_poses uses, for one sample: RGB crops of the box
    (100, 200)-(300, 400) of a 1080p video, 64x64, and one joint at a known source pixel."""

    def __init__(self) -> None:
        self.rgb = np.zeros((3, 64, 64, 3), np.uint8)
        self.pose2d = np.zeros((1, 3, 17, 3), np.float32)
        self.pose2d[0, :, 0] = (150.0, 250.0, 1.0)  # the nose at source pixel (150, 250)

    def __contains__(self, name: object) -> bool:
        return name == "S001C001P001R001A050"

    def meta(self, name: str) -> dict:
        return {"modalities": {"rgb": {"box": [100, 200, 300, 400], "fps": 30.0},
                               "pose2d": {"layout": "coco17", "fps": 30.0, "frame_size_hw": [1080, 1920]}}}

    def load_pose2d(self, name: str) -> np.ndarray:
        return self.pose2d

    def load_rgb(self, name: str) -> np.ndarray:
        return self.rgb


def test_visualise_store_sample_maps_poses_into_the_crop(tmp_path) -> None:
    import cv2

    from actionfusion.modalities.pose.visualize import run_visualize_poses

    out = run_visualize_poses("S001C001P001R001A050", tmp_path / "s.png", store=_FakeStore(), num_frames=1)
    image = cv2.imread(str(out))
    assert image.shape == (64, 64, 3)
    ys, xs = np.nonzero(image.sum(axis=2) > 0)
    # (150, 250) in the source is (50, 50) / 200 * 64 = (16, 16) in the crop.
    assert abs(xs.mean() - 16) < 1.5 and abs(ys.mean() - 16) < 1.5
    with pytest.raises(VideoDecodeError, match="not a video file"):
        run_visualize_poses("S001C001P001R001A051", tmp_path / "t.png", store=_FakeStore())


def _first_frame() -> np.ndarray:
    from actionfusion.modalities.rgb.video import open_video

    with open_video(VIDEO) as video:
        return video.read_frames([0])[0]


def test_mmpose_backend_without_mmpose_says_how_to_install() -> None:
    if importlib.util.find_spec("mmpose") is not None:
        pytest.skip("mmpose is installed: the missing-install message does not apply")
    from actionfusion.modalities.pose.estimator import create_pose_estimator

    with pytest.raises(ImportError, match=r"no-build-isolation chumpy .*actionfusion\[mmpose\]"):
        create_pose_estimator("mmpose", pose_config="rtmpose-m.py")


def test_mmpose_backend_with_random_weights() -> None:
    if importlib.util.find_spec("mmpose") is None:
        pytest.skip("mmpose is not installed (optional [mmpose] extra; its install steps are in the README, "
                    "section \"Poses from raw video\")")
    import mmpose

    configs = Path(mmpose.__file__).parent / ".mim" / "configs" / "body_2d_keypoint" / "rtmpose" / "coco"
    config = next(iter(sorted(configs.glob("rtmpose-m_*coco-256x192.py"))), None)
    if config is None:
        pytest.skip(f"no RTMPose-m COCO config under {configs}")
    from actionfusion.modalities.pose.estimator import create_pose_estimator

    estimator = create_pose_estimator("mmpose", pose_config=str(config),
                                      person_boxes=lambda f: np.array([[10, 20, 200, 400], [300, 20, 500, 400]]))
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    (people,) = estimator.estimate([frame])
    assert estimator.layout == "coco17" and len(people) == 2
    assert all(p.keypoints.shape == (17, 3) and np.all((p.keypoints[:, 2] >= 0) & (p.keypoints[:, 2] <= 1))
               for p in people)


def test_mmpose_backend_with_an_mmdet_detector_on_mmcv_lite() -> None:
    """RTMDet + RTMPose (random weights) run on mmcv-lite, and mmdet's NMS gives mmcv's results through the shim."""
    if importlib.util.find_spec("mmpose") is None or importlib.util.find_spec("mmdet") is None:
        pytest.skip("mmpose or mmdet is not installed (optional [mmpose] extra)")
    import mmdet
    import mmpose
    import torch

    pose_configs = Path(mmpose.__file__).parent / ".mim" / "configs" / "body_2d_keypoint" / "rtmpose" / "coco"
    pose_config = next(iter(sorted(pose_configs.glob("rtmpose-m_*coco-256x192.py"))), None)
    det_config = Path(mmdet.__file__).parent / ".mim" / "configs" / "rtmdet" / "rtmdet_tiny_8xb32-300e_coco.py"
    if pose_config is None or not det_config.is_file():
        pytest.skip("mmpose's RTMPose-m or mmdet's RTMDet-tiny config is not in the installed packages")
    from actionfusion.modalities.pose.estimator import create_pose_estimator

    estimator = create_pose_estimator("mmpose", pose_config=str(pose_config), det_config=str(det_config),
                                      det_score_threshold=0.0)
    frame = np.random.default_rng(0).integers(0, 255, (320, 320, 3), dtype=np.uint8)
    (people,) = estimator.estimate([frame])  # random box regressions are mostly invalid: any count is fine
    assert all(p.keypoints.shape == (17, 3) for p in people)

    from mmdet.models.layers import multiclass_nms  # imports batched_nms from mmcv.ops.nms

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([[0.9, 0.0, 0.05], [0.8, 0.7, 0.05], [0.6, 0.0, 0.05]])  # 2 classes + background
    dets, labels = multiclass_nms(boxes, scores, score_thr=0.1, nms_cfg={"type": "nms", "iou_threshold": 0.5})
    # class 0: box 1 overlaps box 0 (IoU 0.68) and goes; class 1 keeps box 1
    assert dets[:, 4].tolist() == pytest.approx([0.9, 0.7, 0.6]) and labels.tolist() == [0, 1, 0]


class _ScriptedEstimator:
    """Finds people by a script keyed by frame number: a person 0 at x=10 in frames 0-9 (score 1),
    nobody in 10-12, a person at x=40 in 13-19 (score 0.5); a frame's brightness gives its number."""

    layout = "coco17"

    def __init__(self, fail_at: int = -1) -> None:
        self.fail_at, self.resets = fail_at, 0

    def reset(self) -> None:
        self.resets += 1

    def estimate(self, frames):
        from actionfusion.modalities.pose.estimator import PersonPose

        out = []
        for frame in frames:
            t = int(round(frame.mean() / 10))
            if t == self.fail_at:
                raise RuntimeError("model failure")
            people = []
            for x, score, frames_on in ((10.0, 1.0, range(0, 10)), (40.0, 0.5, range(13, 20))):
                if t in frames_on:
                    k = np.zeros((17, 3), np.float32)
                    k[:, 0], k[:, 1], k[:, 2] = x, np.arange(17) + 5, score
                    people.append(PersonPose(k, (x, 5.0, x + 1, 21.0), None))
            out.append(people)
        return out


def _numbered_video(path: Path, count: int = 20) -> Path:
    from actionfusion.modalities.rgb.video_writer import VideoWriter

    with VideoWriter(path, 64, 48, fps=30, crf=0) as writer:
        for t in range(count):
            writer.write(np.full((48, 64, 3), 10 * t, np.uint8))
    return path


def test_extract_poses_assembles_tracks_with_gaps_stride_and_max_persons(tmp_path) -> None:
    from actionfusion.modalities.pose.extract import extract_poses

    video, estimator = _numbered_video(tmp_path / "n.mp4"), _ScriptedEstimator()
    seq = extract_poses(video, backend=estimator, batch_size=3)
    assert estimator.resets == 1 and seq.frame_size == (48, 64) and seq.fps == pytest.approx(30.0)
    assert seq.keypoints.shape == (2, 20, 17, 3) and seq.world is None and seq.track_ids == [0, 1]
    present = seq.present()
    assert present[0].tolist() == [t < 10 for t in range(20)]
    assert present[1].tolist() == [t >= 13 for t in range(20)]
    assert np.all(seq.keypoints[0, 10:] == 0) and np.all(seq.keypoints[0, :10, :, 0] == 10)

    strided = extract_poses(video, backend=estimator, stride=2)
    assert strided.frame_indices.tolist() == list(range(0, 20, 2)) and strided.fps == pytest.approx(15.0)
    assert strided.present()[1].tolist() == [2 * t >= 13 for t in range(10)]

    # Person 0: 10 frames x 17 joints x score 1 outweighs person 1: 7 x 17 x 0.5.
    best = extract_poses(video, backend=estimator, max_persons=1)
    assert best.track_ids == [0] and best.keypoints.shape == (1, 20, 17, 3)
    assert extract_poses(video, backend=estimator, max_persons=0).keypoints.shape == (0, 20, 17, 3)


def test_extract_poses_model_error_stops_the_decoder(tmp_path) -> None:
    import threading

    from actionfusion.modalities.pose.extract import extract_poses

    video = _numbered_video(tmp_path / "n.mp4")
    with pytest.raises(RuntimeError, match="model failure"):
        extract_poses(video, backend=_ScriptedEstimator(fail_at=4), batch_size=2)
    assert not any(t.name == "pose-decode" for t in threading.enumerate())
