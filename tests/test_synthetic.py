"""The synthetic NTU-format generator: layout, geometry consistency, determinism, objects."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from actionfusion.datasets.ntu.names import parse_sample_name
from actionfusion.datasets.ntu.skeleton_file import read_skeleton_file
from actionfusion.datasets.ntu.splits import XSUB_TRAIN_SUBJECTS_NTU60
from actionfusion.datasets.synthetic.action_library import perform, synthetic_class, synthetic_classes
from actionfusion.datasets.synthetic.background import room_background
from actionfusion.datasets.synthetic.cameras import scaled_color_intrinsics
from actionfusion.datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu, plan_samples
from actionfusion.datasets.synthetic.kinect_body import LEAF_JOINTS, BodyShape, J
from actionfusion.datasets.synthetic.rasterize import Rasterizer
from actionfusion.datasets.synthetic.render_sample import depth_frame_name, frame_primitives, view_sample
from actionfusion.datasets.synthetic.seeding import keyed_rng
from actionfusion.geometry import DEPTH_SIZE_HW, KINECT_V2_COLOR_APPROX, KINECT_V2_DEPTH_3DV
from actionfusion.modalities.rgb.video_writer import VideoWriter

TINY = SynthConfig(seed=0, scale="tiny")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("synthetic")
    summary = generate_synthetic_ntu(out, TINY, workers=2, progress=False)
    return out, summary


def _names(out: Path) -> list[str]:
    return sorted(p.stem for p in (out / "nturgb+d_skeletons").glob("*.skeleton"))


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_layout_names_and_splits(tiny):
    out, summary = tiny
    names = _names(out)
    assert names == plan_samples(TINY) and summary.num_samples == len(names) == summary.generated
    samples = [parse_sample_name(n) for n in names]
    assert {s.camera for s in samples} == {1, 2, 3}
    performers = {s.performer for s in samples}
    assert performers & XSUB_TRAIN_SUBJECTS_NTU60 and performers - XSUB_TRAIN_SUBJECTS_NTU60
    assert summary.per_split["ntu60_xsub"]["train"] > 0 and summary.per_split["ntu60_xsub"]["test"] > 0
    for name in names:
        sk = read_skeleton_file(out / "nturgb+d_skeletons" / f"{name}.skeleton")
        assert (out / "nturgb+d_rgb" / f"{name}_rgb.avi").is_file()
        frames = sorted((out / "nturgb+d_depth_masked" / name).iterdir())
        assert [f.name for f in frames] == [depth_frame_name(t) for t in range(sk.num_frames)]
        assert frames[0].name == "MDepth-00000001.png"
    depth = cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == DEPTH_SIZE_HW
    assert depth[0, 0] == 0 and depth.max() > 1000  # background 0, body in millimetres
    classes = {c.action: c for c in synthetic_classes()}
    assert len(classes) >= 12 and {c.kind for c in classes.values()} == {"motion", "object", "interaction"}


def test_skeleton_fields_match_the_cameras(tiny):
    out, _ = tiny
    for name in _names(out):
        sk = read_skeleton_file(out / "nturgb+d_skeletons" / f"{name}.skeleton")
        cls = synthetic_class(parse_sample_name(name).action)
        assert sk.num_bodies == cls.num_bodies
        assert len(set(sk.body_ids.tolist())) == sk.num_bodies and (sk.body_ids > 2**56).all()
        present = sk.present()
        j = sk.joints[present].astype(np.float64)  # [P, 25, 12]
        xyz = j[..., :3]
        assert 1.5 < np.median(xyz[..., 2]) < 4.5
        np.testing.assert_allclose(j[..., 3:5], KINECT_V2_DEPTH_3DV.project(xyz), atol=0.5)
        np.testing.assert_allclose(j[..., 5:7], KINECT_V2_COLOR_APPROX.project(xyz), atol=0.5)
        quat_norm = np.linalg.norm(j[..., 7:11], axis=-1)
        non_leaf = [i for i in range(25) if i not in LEAF_JOINTS]
        np.testing.assert_allclose(quat_norm[:, non_leaf], 1.0, atol=1e-4)
        assert np.all(quat_norm[:, list(LEAF_JOINTS)] == 0)
        assert set(np.unique(j[..., 11])) <= {0, 1, 2} and (j[..., 11] == 2).mean() > 0.8
        info = sk.body_info[present]
        assert np.all(info[:, 0] == 0) and np.all(info[:, 5] == 0) and np.all(info[:, 8] == 2)
        assert np.all(np.abs(info[:, 6:8]) <= 1)


def test_depth_lies_on_the_skeleton_torso(tiny):
    out, _ = tiny
    torso = [J["SpineBase"], J["SpineMid"]]
    gaps, single = [], []
    for name in _names(out):
        sk = read_skeleton_file(out / "nturgb+d_skeletons" / f"{name}.skeleton")
        for t in range(sk.num_frames):
            depth = cv2.imread(str(out / "nturgb+d_depth_masked" / name / depth_frame_name(t)), cv2.IMREAD_UNCHANGED)
            for b in np.flatnonzero(sk.present()[:, t]):
                for joint in torso:
                    x, y, z, u, v = sk.joints[b, t, joint, :5]
                    d = depth[int(round(v)), int(round(u))]
                    assert d > 0, (name, t, joint)
                    gaps.append(z - d / 1000.0)
                    single.append(sk.num_bodies == 1)
    gaps, single = np.array(gaps), np.array(single)
    assert gaps.size > 100
    # The surface is never behind the joint, and in front of it by about the torso radius
    # (0.115 m x girth) plus noise, except where an arm, an object or the other person covers it.
    assert gaps.min() > -0.03
    assert 0.07 < np.median(gaps[single]) < 0.15
    assert np.mean(gaps[single] < 0.2) > 0.9


def test_rgb_shows_the_person_at_color_xy(tiny):
    out, summary = tiny
    width, height = TINY.rgb_size
    for name in _names(out)[::4]:
        sample = parse_sample_name(name)
        sk = read_skeleton_file(out / "nturgb+d_skeletons" / f"{name}.skeleton")
        frames = _decode(out / "nturgb+d_rgb" / f"{name}_rgb.avi")
        assert len(frames) == sk.num_frames and frames[0].shape == (height, width, 3)
        colour = scaled_color_intrinsics(KINECT_V2_COLOR_APPROX, width, height)
        room = room_background(TINY.seed, sample.setup, sample.camera, colour, (height, width)).astype(float)
        for t in (0, sk.num_frames - 1):
            cx, cy = sk.joints[0, t, J["SpineMid"], 5:7] * (width / 1920, height / 1080)
            u, v = int(round(cx)), int(round(cy))
            patch = np.s_[v - 2:v + 3, u - 2:u + 3]
            assert np.abs(frames[t][patch].astype(float) - room[patch]).mean() > 20
            assert np.abs(frames[t][:6, :6].astype(float) - room[:6, :6]).mean() < 12  # room elsewhere


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    out, _ = tiny
    subset = SynthConfig(seed=0, scale="tiny", actions=(58,), performers=(3,), cameras=(2,),
                         modalities=("skeleton", "depth_masked"))
    again = generate_synthetic_ntu(tmp_path / "again", subset, workers=1, progress=False)
    (name,) = plan_samples(subset)
    assert again.num_samples == 1
    for rel in (f"nturgb+d_skeletons/{name}.skeleton", f"nturgb+d_depth_masked/{name}/{depth_frame_name(3)}"):
        assert (tmp_path / "again" / rel).read_bytes() == (out / rel).read_bytes()
    other = SynthConfig(seed=1, scale="tiny", actions=(58,), performers=(3,), cameras=(2,),
                        modalities=("skeleton",))
    generate_synthetic_ntu(tmp_path / "other", other, workers=1, progress=False)
    (other_name,) = plan_samples(other)
    other_file = tmp_path / "other" / "nturgb+d_skeletons" / f"{other_name}.skeleton"
    assert other_file.read_bytes() != (out / "nturgb+d_skeletons" / f"{name}.skeleton").read_bytes()
    # Resumable: a second run finds everything complete and writes nothing.
    rerun = generate_synthetic_ntu(tmp_path / "again", subset, workers=1, progress=False)
    assert rerun.skipped == 1 and rerun.generated == 0


def test_object_classes_share_the_skeleton_motion_and_differ_in_depth(tiny):
    out, _ = tiny
    # Skeleton: the three object classes run the same generator; with the same randomness
    # their joints are identical, so the skeleton cannot tell them apart.
    shape = BodyShape.sample(keyed_rng(0, "shape"))
    wrists = [perform(synthetic_class(a), keyed_rng(0, "same"), [shape], 20).controls[0].wrist
              for a in (1, 3, 28)]
    assert np.array_equal(wrists[0], wrists[1]) and np.array_equal(wrists[0], wrists[2])
    # Depth: pixels in front of the body (re-rendered without the object) are the object.
    raster = Rasterizer(KINECT_V2_DEPTH_3DV, DEPTH_SIZE_HW, shading=False)
    object_pixels: dict[str, list[float]] = {}
    for name in _names(out):
        if parse_sample_name(name).camera != 2:
            continue
        scene = view_sample(TINY.seed, name, TINY.frame_range())
        kind = scene.event.cls.held_object
        counts = []
        for t in range(scene.event.num_frames):
            prims = frame_primitives(scene, t)
            body_only = raster.render(prims[:-1] if kind else prims).depth * 1000.0
            depth = cv2.imread(str(out / "nturgb+d_depth_masked" / name / depth_frame_name(t)),
                               cv2.IMREAD_UNCHANGED).astype(np.float64)
            counts.append(int(((depth > 0) & (depth < body_only - 60)).sum()))
        object_pixels.setdefault(str(kind), []).append(float(np.mean(counts)))
    assert max(object_pixels["None"]) == 0
    for kind in ("cup", "phone", "toothbrush"):
        assert min(object_pixels[kind]) > 20, (kind, object_pixels[kind])
    means = {k: np.mean(v) for k, v in object_pixels.items() if k != "None"}
    assert len({round(m) for m in means.values()}) == 3


def test_video_writer_is_atomic(tmp_path):
    target = tmp_path / "clip.avi"
    frame = np.full((32, 48, 3), 128, np.uint8)
    with pytest.raises(RuntimeError):
        with VideoWriter(target, 48, 32) as writer:
            writer.write(frame)
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with VideoWriter(target, 48, 32) as writer:
        for i in range(5):
            writer.write(np.full((32, 48, 3), 40 * i, np.uint8))
        assert not target.exists()  # published only at close
    decoded = _decode(target)
    assert len(decoded) == 5 and abs(float(decoded[4].mean()) - 160) < 6
    assert list(tmp_path.iterdir()) == [target]
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "odd.avi", 47, 32)


def test_synthetic_read_write_read_round_trip(tiny, tmp_path) -> None:
    """synthetic -> read -> write -> read gives identical arrays and, with CRLF, identical bytes."""
    from actionfusion.datasets.ntu.skeleton_file import write_skeleton_file

    out, _ = tiny
    for name in _names(out)[:6]:
        source = out / "nturgb+d_skeletons" / f"{name}.skeleton"
        first = read_skeleton_file(source)
        write_skeleton_file(tmp_path / source.name, first)
        again = read_skeleton_file(tmp_path / source.name)
        assert again.num_frames == first.num_frames
        assert np.array_equal(again.body_ids, first.body_ids)
        assert np.array_equal(again.joints, first.joints, equal_nan=True)
        assert np.array_equal(again.body_info, first.body_info, equal_nan=True)
        assert np.array_equal(again.body_order, first.body_order)
        assert (tmp_path / source.name).read_bytes() == source.read_bytes()
