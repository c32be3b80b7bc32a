"""Point-cloud sequence encoder, its set-abstraction pieces, and the point-clip transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actionfusion.modalities.features import EncoderOutput
from actionfusion.modalities.pointcloud.point_clip import point_clip_pipeline, resample_indices
from actionfusion.modalities.pointcloud.point_encoder import PointTransformer, point_transformer
from actionfusion.modalities.pointcloud.set_abstraction import gather_points, knn_indices, sample_centroids
from actionfusion.registry import get_entry

torch.set_num_threads(1)

SMALL = dict(num_centroids=(16, 8), neighbours=(8, 4), sa_widths=((16, 32), (32, 32)), global_widths=(32, 32))


def _small_model(**kwargs: object) -> PointTransformer:
    torch.manual_seed(0)
    return PointTransformer(num_classes=4, **{**SMALL, **kwargs}).eval()  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- set abstraction


def test_knn_returns_the_true_nearest_neighbours_in_order() -> None:
    gen = torch.Generator().manual_seed(1)
    ref = torch.rand(3, 50, 3, generator=gen)
    query = torch.rand(3, 7, 3, generator=gen)
    idx = knn_indices(query, ref, 5)
    brute = np.linalg.norm(query.numpy()[:, :, None] - ref.numpy()[:, None], axis=-1)  # [B, S, P]
    np.testing.assert_array_equal(idx.numpy(), np.argsort(brute, axis=-1, kind="stable")[..., :5])
    picked = gather_points(ref, idx)  # [B, S, k, 3]
    assert picked.shape == (3, 7, 5, 3)
    torch.testing.assert_close(picked[1, 2, 0], ref[1, idx[1, 2, 0]])


def test_fps_centroids_spread_out_and_ignore_point_order_when_deterministic() -> None:
    gen = torch.Generator().manual_seed(2)
    xyz = torch.rand(2, 64, 3, generator=gen)
    idx = sample_centroids(xyz, 8, "fps", random_start=False)
    assert idx.shape == (2, 8) and all(len(set(row.tolist())) == 8 for row in idx)
    perm = torch.randperm(64, generator=gen)
    idx_perm = sample_centroids(xyz[:, perm], 8, "fps", random_start=False)
    torch.testing.assert_close(gather_points(xyz[:, perm], idx_perm), gather_points(xyz, idx))
    # farthest-point picks are better spread than a random subset
    def min_gap(i: torch.Tensor) -> float:
        c = gather_points(xyz, i)
        d = torch.cdist(c, c) + torch.eye(8) * 10
        return float(d.amin())

    assert min_gap(idx) > min_gap(sample_centroids(xyz, 8, "random"))


# ----------------------------------------------------------------------------- encoder


def test_shapes_fields_and_registry() -> None:
    model = point_transformer(num_classes=4, **SMALL)
    assert model.input_keys == ("points",)
    feats = model.forward_features(torch.randn(2, 5, 40, 3))
    assert isinstance(feats, EncoderOutput) and feats.spatial is None
    assert feats.sequence.shape == (2, 5, 32) and feats.pooled.shape == (2, 32)
    assert feats.aux["frame_features"].shape == (2, 5, 32)
    assert model(torch.randn(2, 5, 40, 3)).shape == (2, 4)
    assert get_entry("model", "point_transformer").modality == "points"


def test_frame_feature_is_invariant_to_point_order() -> None:
    model = _small_model()
    pts = torch.randn(2, 3, 48, 3)
    perm = torch.stack([torch.randperm(48) for _ in range(6)]).reshape(2, 3, 48)
    shuffled = torch.gather(pts, 2, perm[..., None].expand(-1, -1, -1, 3))
    with torch.no_grad():
        a, b = model.forward_features(pts), model.forward_features(shuffled)
    torch.testing.assert_close(a.aux["frame_features"], b.aux["frame_features"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.pooled, b.pooled, rtol=1e-4, atol=1e-5)


def test_frame_chunking_does_not_change_eval_features() -> None:
    model = _small_model(frame_chunk=None)
    pts = torch.randn(3, 4, 24, 3)
    with torch.no_grad():
        whole = model.forward_features(pts).pooled
        model.frame_chunk = 5  # 12 clouds in chunks of 5, 5, 2
        torch.testing.assert_close(model.forward_features(pts).pooled, whole, rtol=1e-5, atol=1e-6)


def test_frame_order_matters_only_through_the_position_embedding() -> None:
    pts = torch.randn(1, 6, 32, 3)
    reversed_clip = pts.flip(1)
    with torch.no_grad():
        timed = _small_model(pool="mean")
        assert not torch.allclose(timed.forward_features(pts).pooled, timed.forward_features(reversed_clip).pooled, atol=1e-4)
        untimed = _small_model(pool="mean", position_embedding=False)
        a, b = untimed.forward_features(pts), untimed.forward_features(reversed_clip)
        torch.testing.assert_close(a.pooled, b.pooled, rtol=1e-4, atol=1e-5)  # a set of frames
        torch.testing.assert_close(a.sequence, b.sequence.flip(1), rtol=1e-4, atol=1e-5)  # equivariant


def test_learns_direction_of_motion() -> None:
    """Two classes: a blob moving up vs the same blob moving down. Same frames, opposite order."""
    torch.manual_seed(0)
    n, frames = 16, 6
    labels = torch.arange(n) % 2
    blob = torch.randn(n, 1, 32, 3) * 0.1
    heights = torch.linspace(-1, 1, frames)[None, :, None]
    heights = torch.where(labels[:, None, None] == 0, heights, heights.flip(1))  # [n, T, 1]
    pts = blob + torch.stack([torch.zeros_like(heights), heights, torch.zeros_like(heights)], -1)
    model = PointTransformer(num_classes=2, temporal_drop_rate=0.0, frame_chunk=None, **SMALL)  # type: ignore[arg-type]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(pts), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        for m in model.modules():  # re-estimate BatchNorm statistics for the final weights
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None  # cumulative average
        for _ in range(3):
            model(pts)
        assert (model.eval()(pts).argmax(1) == labels).all()


def test_rejects_too_long_clip_and_wrong_layout() -> None:
    model = _small_model(max_frames=4)
    with pytest.raises(ValueError, match="max_frames"):
        model(torch.randn(1, 5, 16, 3))
    with pytest.raises(ValueError, match=r"\[N, T, P, 3\]"):
        model(torch.randn(1, 16, 3))


# ----------------------------------------------------------------------------- point clips


def test_clip_pipeline_drops_padding_centres_once_and_keeps_motion() -> None:
    rng = np.random.default_rng(0)
    frames, step = 5, np.array([0.1, 0.05, -0.02], dtype=np.float32)
    body = rng.normal(size=(70, 3)).astype(np.float32) * 0.2 + np.array([0.3, 0.0, 3.0], dtype=np.float32)
    clip = np.zeros((frames, 100, 3), dtype=np.float32)  # 30 padding rows per frame
    for t in range(frames):
        clip[t, :70] = body + t * step
    clip[:, :70] = clip[:, rng.permutation(70)][:, :70]  # padding rows need not come last
    clip = clip[:, rng.permutation(100)]
    out = point_clip_pipeline(clip, 140, train=False)
    assert out.shape == (frames, 140, 3) and out.dtype == np.float32
    assert not np.any(np.all(out == 0, axis=-1))  # padding is gone (70 real points, twice)
    np.testing.assert_allclose(np.diff(out.mean(axis=1), axis=0), np.tile(step, (frames - 1, 1)), atol=1e-5)
    np.testing.assert_allclose(out.mean(axis=(0, 1)), 0.0, atol=1e-5)  # centred on the clip
    # training: rotation about y and scale keep each frame's displacement length up to the scale
    aug = point_clip_pipeline(clip, 70, train=True, rng=np.random.default_rng(3), jitter_sigma=0.0)
    moves = np.linalg.norm(np.diff(aug.mean(axis=1), axis=0), axis=-1)
    ratio = moves / np.linalg.norm(step)
    assert np.all((ratio > 0.9 - 1e-3) & (ratio < 1.1 + 1e-3)) and np.ptp(ratio) < 1e-3
    heights = aug[..., 1].mean(axis=1)  # y untouched by the rotation: only scaled
    np.testing.assert_allclose(np.diff(heights) / step[1], ratio.mean(), rtol=1e-3)


def test_clip_pipeline_unit_extent_empty_frames_and_resampling() -> None:
    clip = np.zeros((3, 20, 3), dtype=np.float32)
    clip[0, :10] = np.random.default_rng(1).normal(size=(10, 3)) + 5
    clip[2, :4] = np.random.default_rng(2).normal(size=(4, 3)) + 5
    out = point_clip_pipeline(clip, 8, train=False, unit_extent=True)
    assert np.abs(out).max() <= 1.0 + 1e-6 and np.isclose(np.linalg.norm(out, axis=-1).max(), 1.0, atol=1e-5)
    assert np.all(out[1] == 0)  # the empty frame stays empty
    assert len(np.unique(out[2], axis=0)) == 4  # 4 points repeated to 8
    assert np.all(point_clip_pipeline(np.zeros((2, 5, 3), np.float32), 3, train=False) == 0)
    idx = resample_indices(10, 4, np.random.default_rng(0))
    assert len(set(idx.tolist())) == 4
    assert sorted(resample_indices(3, 7, None).tolist()) == [0, 0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="rng"):
        point_clip_pipeline(clip, 8, train=True)
