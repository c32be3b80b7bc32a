"""Live recognition, the parts without a pose model: SOURCE parsing, the frame mailbox's drop policy,
ring buffers equal to offline windows, the window classifier equal to the evaluation's clip, the
world-keypoint conversion equal to training's, and the loopback stream source (ends, stalls, garbage)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from actionfusion.datasets.skeleton_conventions import load_extracted, world_to_sensor_axes
from actionfusion.errors import UsageError, VideoDecodeError
from actionfusion.modalities.rgb.video_writer import VideoWriter
from actionfusion.pipeline.checkpoints import save_weights
from actionfusion.pipeline.config import ExperimentConfig, save_config
from actionfusion.pipeline.data_builder import build_transform
from actionfusion.pipeline.live.frame_source import (
    FrameMailbox,
    LiveFrame,
    LiveFrameSource,
    decoded_size,
    source_kind,
)
from actionfusion.pipeline.live.person_windows import PersonWindows
from actionfusion.pipeline.live.replay_server import ReplayServer, encode_mpegts
from actionfusion.pipeline.live.window_classifier import WindowClassifier
from actionfusion.pipeline.trainer import build_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_source_kind() -> None:
    assert source_kind("0") == "camera" and source_kind(" 12 ") == "camera"
    for url in ("rtsp://cam/stream", "tcp://127.0.0.1:5000", "udp://@:1234", "http://x/y.m3u8", "RTMP://a/b"):
        assert source_kind(url) == "url"
    assert source_kind("clip.mp4") == "file" and source_kind("C:/videos/a.avi") == "file"
    assert source_kind("file://x.mp4") == "file"  # not a network scheme: read as a path
    assert decoded_size(1080, 1920, 540) == (540, 960)
    assert decoded_size(480, 640, 540) is None and decoded_size(1080, 1920, 0) is None


def _frame(i: int) -> LiveFrame:
    return LiveFrame(i, np.zeros((2, 2, 3), np.uint8), time.perf_counter())


def test_mailbox_latest_only_drops_what_was_not_taken() -> None:
    box, stop = FrameMailbox(latest_only=True), threading.Event()
    for i in range(5):
        box.put(_frame(i), stop)
    assert box.get(1.0).index == 4  # the newest; 0..3 were replaced
    assert (box.produced, box.dropped) == (5, 4)
    box.put(_frame(5), stop)
    box.close()
    assert box.get(1.0).index == 5 and box.get(1.0) is None
    with pytest.raises(TimeoutError):
        FrameMailbox(latest_only=True).get(0.05)
    failed = FrameMailbox(latest_only=False)
    failed.close(VideoDecodeError("x", "broken"))
    with pytest.raises(VideoDecodeError):
        failed.get(1.0)


def test_mailbox_queue_mode_keeps_every_frame_in_order() -> None:
    box, stop = FrameMailbox(latest_only=False, capacity=2), threading.Event()

    def produce() -> None:
        for i in range(20):
            box.put(_frame(i), stop)
        box.close()

    thread = threading.Thread(target=produce)
    thread.start()
    got = []
    while (frame := box.get(5.0)) is not None:
        got.append(frame.index)
    thread.join()
    assert got == list(range(20)) and box.dropped == 0


def test_ring_buffer_windows_equal_offline_windows() -> None:
    rng = np.random.default_rng(0)
    frames, joints, window = 50, 17, 12
    sequence = rng.normal(size=(3, frames, joints, 3)).astype(np.float32)  # [M, T, V, 3]
    present = rng.random((3, frames)) < 0.8
    present[1, :10] = False  # track 1 appears late
    present[2, 20:] = False  # track 2 leaves for good
    sequence[~present] = 0.0
    buffers = PersonWindows(window, joints, max_missing=100)
    for t in range(frames):
        buffers.push({m: sequence[m, t] for m in range(3) if present[m, t]})
        for m in buffers.tracks:
            offline = sequence[m, max(0, t - window + 1): t + 1]
            expected = np.concatenate([np.zeros((window - len(offline), joints, 3), np.float32), offline])
            np.testing.assert_array_equal(buffers.window(m), expected)
            assert buffers.frames_present(m) == int(present[m, max(0, t - window + 1): t + 1].sum())
    # a track absent for more than max_missing frames is forgotten
    short = PersonWindows(4, 2, max_missing=2)
    short.push({7: np.ones((2, 3))})
    for _ in range(3):
        short.push({})
    assert short.tracks == []


def _work_dir(path: Path, source: str = "coco17", clip_len: int = 16) -> Path:
    layout = "ntu25" if source == "ntu25" else source
    cfg = ExperimentConfig.from_dict({
        "experiment": "live_test",
        "data": {"store": str(path / "no_store"), "clip_len": clip_len, "skeleton_source": source,
                 "test_transforms": [{"name": "center"}, {"name": "valid_crop_resize", "p_interval": [0.95],
                                                            "min_len": 4}]},
        "model": {"name": "stgcn", "num_classes": 7, "kwargs": {"hidden_channels": 4, "hidden_dim": 8,
                                                                "layout": layout}},
    })
    path.mkdir(parents=True)
    save_config(cfg, path / "config.yaml")
    torch.manual_seed(0)
    model = build_model(cfg)
    for name, buffer in model.named_buffers():  # non-trivial batch-norm statistics
        if name.endswith("running_mean"):
            buffer.normal_(0, 0.1)
    save_weights(path / "best.safetensors", model)
    return path


def test_window_classifier_scores_equal_the_evaluation_clip(tmp_path) -> None:
    classifier = WindowClassifier.from_checkpoint(_work_dir(tmp_path / "w"))
    assert (classifier.convention, classifier.num_joints, classifier.clip_len) == ("coco17", 17, 16)
    rng = np.random.default_rng(1)
    windows = [rng.normal(size=(1, t, 17, 3)).astype(np.float32) for t in (16, 24, 9)]
    scores = classifier.scores(windows)
    assert scores.shape == (3, 7) and np.allclose(scores.sum(1), 1.0, atol=1e-5)
    # by hand: persons fitted to data.max_persons, the test transform, the length fitted, the model
    transform = build_transform(classifier.cfg.data, train=False, layout="coco17")
    for window, got in zip(windows, scores):
        x = np.concatenate([window, np.zeros((classifier.max_persons - 1,) + window.shape[1:], np.float32)])
        clip = transform(x.copy(), np.random.default_rng(0))
        with torch.no_grad():
            logits = classifier.model(torch.from_numpy(np.ascontiguousarray(clip, np.float32))[None])
        np.testing.assert_allclose(got, torch.softmax(logits, -1)[0].numpy(), atol=1e-6)
    # one window alone or in a batch: the same scores
    np.testing.assert_allclose(classifier.scores(windows[1:2])[0], scores[1], atol=1e-6)


def test_world_keypoints_reach_the_model_as_in_training(tmp_path) -> None:
    classifier = WindowClassifier.from_checkpoint(_work_dir(tmp_path / "w"))
    world = np.random.default_rng(2).normal(size=(2, 5, 33, 3)).astype(np.float32)  # blazepose33, y down
    expected = load_extracted(None, "x", "coco17", world_to_sensor_axes(world), "blazepose33")  # type: ignore[arg-type]
    np.testing.assert_array_equal(classifier.from_pose_world(world, "blazepose33"), expected)
    sensor = WindowClassifier.from_checkpoint(_work_dir(tmp_path / "s", source="ntu25"))
    with pytest.raises(UsageError, match="extracted poses"):
        sensor.from_pose_world(world, "blazepose33")


@pytest.fixture(scope="module")
def small_stream(tmp_path_factory) -> tuple[Path, int]:
    """A 48-frame 320x240 video with a moving square, as MPEG-TS."""
    folder = tmp_path_factory.mktemp("stream")
    frames = 48
    with VideoWriter(folder / "moving.mp4", 320, 240, fps=30) as writer:
        for i in range(frames):
            image = np.full((240, 320, 3), 40, np.uint8)
            image[80:160, 5 * i: 5 * i + 60] = (200, 120, 30)
            writer.write(image)
    return encode_mpegts(folder / "moving.mp4", folder / "moving.ts", gop=12), frames


def test_loopback_stream_delivers_frames_and_ends_cleanly(small_stream) -> None:
    ts, frames = small_stream
    with ReplayServer(ts, fps=60, frames=frames) as url:
        source = LiveFrameSource(url, stall_timeout=5.0)
        got = [frame.image.shape for frame in source]
    stats = source.stats
    assert stats["decoded"] == frames and not stats["stalled"]
    assert stats["delivered"] + stats["dropped"] == frames and got[0] == (240, 320, 3)


def test_loopback_stream_that_stalls_stops_without_hanging(small_stream) -> None:
    ts, frames = small_stream
    with ReplayServer(ts, fps=30, frames=frames, stall_after=0.8, hold=30.0) as url:
        begin = time.perf_counter()
        source = LiveFrameSource(url, stall_timeout=1.5)
        delivered = sum(1 for _ in source)
        took = time.perf_counter() - begin
    assert source.stats["stalled"] and 0 < delivered < frames
    assert took < 8.0


def test_garbage_stream_is_one_clear_error_not_a_hang(small_stream) -> None:
    ts, frames = small_stream
    with ReplayServer(ts, fps=30, frames=frames, corrupt=True) as url:
        begin = time.perf_counter()
        with pytest.raises(VideoDecodeError) as error:
            list(LiveFrameSource(url, stall_timeout=2.0))
    assert url in str(error.value) and "\n" not in str(error.value)
    assert time.perf_counter() - begin < 10.0
    with pytest.raises(VideoDecodeError, match="no such file"):
        LiveFrameSource("/nonexistent/clip.mp4")
    with pytest.raises(VideoDecodeError, match="cannot open the stream"):
        list(LiveFrameSource("tcp://127.0.0.1:9", stall_timeout=2.0))  # nothing listens on port 9


def test_file_played_live_drops_late_frames_and_unpaced_keeps_all(small_stream) -> None:
    ts, frames = small_stream
    video = str(ts.with_name("moving.mp4"))
    paced = LiveFrameSource(video, realtime=True)
    assert paced.pace_fps == pytest.approx(30.0)
    begin = time.perf_counter()
    for _ in paced:
        time.sleep(0.1)  # a consumer at 10 fps against a 30 fps source
    assert time.perf_counter() - begin >= (frames - 1) / 30.0 * 0.9  # released at the file's rate
    assert paced.stats["dropped"] >= frames // 3 and paced.stats["decoded"] == frames
    unpaced = LiveFrameSource(video, realtime=False, max_height=120)
    shapes = {frame.image.shape for frame in unpaced}
    assert unpaced.stats == {"decoded": frames, "delivered": frames, "dropped": 0, "stalled": False}
    assert shapes == {(120, 160, 3)}


class _ScriptedPoses:
    """A pose-estimator test double: frame k holds one person whose world keypoints are all k / 10."""

    layout = "coco17"

    def estimate(self, frames):
        from actionfusion.modalities.pose.estimator import PersonPose

        out = []
        for frame in frames:
            k = float(frame[0, 0, 0])
            keypoints = np.full((17, 3), 0.9, np.float32)
            keypoints[:, :2] = [[10 + j, 20 + j] for j in range(17)]
            out.append([PersonPose(keypoints, (0.0, 0.0, 50.0, 80.0), np.full((17, 3), k / 10, np.float32))])
        return out

    def reset(self) -> None:
        pass


def test_dropped_frames_are_interpolated_onto_the_source_timeline(tmp_path) -> None:
    from actionfusion.pipeline.live.live_recognizer import LiveRecognizer

    classifier = WindowClassifier.from_checkpoint(_work_dir(tmp_path / "w"))
    recognizer = LiveRecognizer(_ScriptedPoses(), classifier, window=8, step=100)
    recognizer.reset()
    for index in (0, 1, 4, 5):  # frames 2 and 3 were dropped
        image = np.full((4, 4, 3), index, np.uint8)
        recognizer.process(index, image)
    window = recognizer.buffers.window(0)  # [8, 17, 3], oldest first, y and z negated (y up)
    got = window[-6:, 0, 0] * 10
    np.testing.assert_allclose(got, [0, 1, 2, 3, 4, 5], atol=1e-5)  # 2 and 3 interpolated between 1 and 4
    np.testing.assert_array_equal(window[:2], 0.0)  # before the track began


def test_window_classifier_in_onnx_runtime_equals_torch(tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'actionfusion[export]')")
    from actionfusion.pipeline.onnx_export import export_checkpoint

    work = _work_dir(tmp_path / "w")
    export_checkpoint(work, tmp_path / "model.onnx", persons=2, frames=16)
    torch_model = WindowClassifier.from_checkpoint(work)
    in_ort = WindowClassifier.from_checkpoint(work, onnx=tmp_path / "model.onnx")
    assert (torch_model.runtime, in_ort.runtime) == ("torch", "onnxruntime")
    rng = np.random.default_rng(3)
    windows = [rng.normal(size=(1, t, 17, 3)).astype(np.float32) for t in (16, 30, 7)]
    np.testing.assert_allclose(in_ort.scores(windows), torch_model.scores(windows), atol=1e-4)
    export_checkpoint(work, tmp_path / "one_person.onnx", persons=1, frames=16)
    with pytest.raises(UsageError, match="--persons 2"):
        WindowClassifier.from_checkpoint(work, onnx=tmp_path / "one_person.onnx")
    with pytest.raises(UsageError, match="no such ONNX file"):
        WindowClassifier.from_checkpoint(work, onnx=tmp_path / "missing.onnx")


def test_udp_stream_is_received_and_its_end_is_a_stall(small_stream) -> None:
    ts, frames = small_stream
    with ReplayServer(ts, fps=30, frames=frames, protocol="udp", udp_delay=1.0) as url:
        assert url.startswith("udp://127.0.0.1:")
        source = LiveFrameSource(url, stall_timeout=2.5)
        shapes = {frame.image.shape for frame in source}
    stats = source.stats
    assert shapes == {(240, 320, 3)} and stats["stalled"]  # a UDP sender that stops looks like a stall
    assert stats["decoded"] >= frames // 2 and stats["delivered"] + stats["dropped"] == stats["decoded"]
