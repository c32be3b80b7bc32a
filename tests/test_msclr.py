"""MS-CLR end to end on tiny hand-made stores: several skeleton conventions per clip (one timeline,
one temporal crop, each centred on its own root), the one-line error for a store without extracted
poses, the single-convention input of a per-convention probe, the ``msclr`` objective (query and key
always different conventions, it trains, padded joints stay out) and its configs."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from actionfusion.datasets.clip_dataset import SkeletonClipDataset
from actionfusion.datasets.skeleton_conventions import (check_shared_crop, load_conventions, match_valid_frames,
                                                        nearest_frames, sensor_timeline)
from actionfusion.datasets.store.layout import META_FILE, sample_dir
from actionfusion.datasets.store.sample_store import SampleStore
from actionfusion.datasets.store.sample_update import add_pose_to_sample, ensure_pose_store
from actionfusion.errors import StoreError
from actionfusion.modalities.skeleton.layouts import get_layout, root_joints
from actionfusion.modalities.skeleton.transforms import build_skeleton_pipeline
from actionfusion.objectives import create_objective
from actionfusion.objectives.msclr import MSCLRPretraining
from actionfusion.pipeline.config import ConfigError, ExperimentConfig, load_config
from actionfusion.pipeline.data_builder import build_convention_transforms
from actionfusion.pipeline.train_loop import ObjectiveModule
from actionfusion.registry import create_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CONVENTIONS = ("ntu25", "coco17", "blazepose33")
NAME = "S001C001P001R001A007"  # label 6
FILE_FRAMES = 40
DROPPED = (5, 17)  # file frames the sensor's denoising dropped


def _body(layout: str, rng: np.random.Generator) -> np.ndarray:
    """float32 [V, 3]: a random body of ``layout`` around (0.5, 0.2, 3) with no joint at the origin."""
    joints = get_layout(layout).num_joints
    return (np.array([0.5, 0.2, 3.0]) + rng.normal(0.0, 0.3, size=(joints, 3))).astype(np.float32)


def _clip(body: np.ndarray, frames: np.ndarray, persons: int = 1) -> np.ndarray:
    """float32 [persons, T, V, 3]: ``body`` translated along x by 0.1 per file frame (a clock every
    joint carries), so a cropped clip reveals which file frames it holds."""
    x = np.repeat(body[None, None], len(frames), axis=1).repeat(persons, axis=0).copy()
    x[..., 0] += 0.1 * np.asarray(frames, dtype=np.float32)[None, :, None]
    return x


def _write_sample(store: Path, name: str, with_pose: bool = True, world_frames: int = FILE_FRAMES,
                  seed: int = 0) -> None:
    """A sample with the sensor skeleton (the file's frames minus DROPPED) and, optionally, BlazePose
    world keypoints of every video frame (MediaPipe axes: y down, hence the sign flips)."""
    rng = np.random.default_rng(seed)
    kept = [f for f in range(FILE_FRAMES) if f not in DROPPED]
    skeleton = _clip(_body("ntu25", rng), np.array(kept), persons=2)
    skeleton[1] = 0.0  # no second actor
    world_body = _body("blazepose33", rng) * np.array([1.0, -1.0, -1.0], dtype=np.float32)
    world = _clip(world_body, np.arange(world_frames) * (FILE_FRAMES / world_frames))
    add_pose_to_sample(store, name, np.zeros_like(world), layout="blazepose33", fps=30.0, frame_size_hw=(8, 8),
                       backend="test", world=world if with_pose else None, label=int(name[-3:]) - 1)
    directory = sample_dir(store, name)
    np.save(directory / "skeleton.npy", skeleton)
    meta = json.loads((directory / META_FILE).read_text())
    meta["modalities"]["skeleton"] = {"shape": list(skeleton.shape), "dtype": "float32", "unit": "m",
                                      "num_frames": len(kept), "num_frames_in_file": FILE_FRAMES,
                                      "source_frames": kept}
    (directory / META_FILE).write_text(json.dumps(meta))


@pytest.fixture()
def store(tmp_path: Path) -> SampleStore:
    ensure_pose_store(tmp_path / "store", config={}, source_root="test")
    _write_sample(tmp_path / "store", NAME)
    _write_sample(tmp_path / "store", "S001C001P002R001A008", seed=1)
    return SampleStore(tmp_path / "store")


TRAIN_STEPS = [{"name": "center"}, {"name": "valid_crop_resize", "out_len": 16, "p_interval": [0.5, 0.9], "min_len": 8},
               {"name": "temporal_crop_pad", "padding_ratio": 3}, {"name": "shear", "s": 0.5}]


def _per_layout(steps: list, train: bool = True) -> dict:
    return {c: build_skeleton_pipeline(steps, layout=c, train=train) for c in CONVENTIONS}


def _root(x: torch.Tensor, convention: str) -> torch.Tensor:
    """[M, T, 3]: the mean of the convention's root joints."""
    return x[:, :, list(root_joints(convention))].mean(dim=2)


# ---------------------------------------------------------------- the conventions of one clip


def test_conventions_of_a_view_share_the_temporal_crop(store: SampleStore) -> None:
    dataset = SkeletonClipDataset(store, [NAME], _per_layout(TRAIN_STEPS), clip_len=16, max_persons=2,
                                  view_transforms=[_per_layout(TRAIN_STEPS)] * 2, conventions=CONVENTIONS)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        item = dataset[0]
        assert set(item["conventions"]) == set(CONVENTIONS)
        assert torch.equal(item["skeleton"], item["conventions"]["ntu25"])
        tracks = []
        for view in item["views"]:
            shapes = {c: tuple(x.shape) for c, x in view["conventions"].items()}
            assert shapes == {"ntu25": (2, 16, 25, 3), "coco17": (2, 16, 17, 3), "blazepose33": (2, 16, 33, 3)}
            # Every joint carries the same clock; a shared crop (and shear) gives every convention the
            # same root trajectory relative to its own first frame.
            roots = {c: _root(x, c)[0] for c, x in view["conventions"].items()}
            for c in ("coco17", "blazepose33"):
                torch.testing.assert_close(roots[c], roots["ntu25"], atol=1e-4, rtol=0)
            tracks.append(roots["ntu25"])
        assert not torch.allclose(tracks[0], tracks[1])  # the two views are different draws


def test_each_convention_is_centred_on_its_own_root(store: SampleStore) -> None:
    frames = FILE_FRAMES - len(DROPPED)
    dataset = SkeletonClipDataset(store, [NAME], _per_layout([{"name": "center"}], train=False), clip_len=frames,
                                  train=False, conventions=CONVENTIONS)
    item = dataset[0]
    for convention, x in item["conventions"].items():
        torch.testing.assert_close(_root(x, convention)[0, 0], torch.zeros(3), atol=1e-5, rtol=0)
        others = [j for j in range(x.shape[2]) if j not in root_joints(convention)]
        assert x[0, 0, others].abs().sum(dim=-1).min() > 0  # centred on the root, not on another joint
    assert root_joints("ntu25") == (1,)  # SpineMid
    hips = get_layout("coco17").index("left_hip"), get_layout("coco17").index("right_hip")
    assert root_joints("coco17") == hips
    # Extracted keypoints come in y-up axes: the MediaPipe input had the opposite sign.
    raw = store.load_pose3d_world(NAME)[0, 0]
    loaded = load_conventions(store, NAME, ["blazepose33"])["blazepose33"][0, 0]
    np.testing.assert_allclose(loaded[:, 1], -raw[:, 1])
    np.testing.assert_allclose(loaded[:, 2], -raw[:, 2])


def test_extracted_poses_follow_the_sensor_timeline(store: SampleStore) -> None:
    arrays = load_conventions(store, NAME, CONVENTIONS)
    kept = [f for f in range(FILE_FRAMES) if f not in DROPPED]
    assert {c: x.shape[1] for c, x in arrays.items()} == {c: len(kept) for c in CONVENTIONS}
    for x in arrays.values():  # the clock: frame t of every convention is file frame kept[t]
        np.testing.assert_allclose(np.diff(x[0, :, 0, 0]), 0.1 * np.diff(kept), atol=1e-5)
    np.testing.assert_array_equal(nearest_frames(80, 40)[[0, -1]], [0, 79])
    assert np.all(np.diff(nearest_frames(80, 40)) > 0)
    meta = {"modalities": {"skeleton": {"num_frames": 3, "num_frames_in_file": 4, "source_frames": [0, 2, 3]}}}
    np.testing.assert_array_equal(sensor_timeline(meta, 8), [0, 5, 7])  # 8 video frames over 4 file frames
    assert sensor_timeline({"modalities": {}}, 8) is None


def test_match_valid_frames_gives_every_convention_the_same_frames() -> None:
    a = np.ones((1, 6, 2, 3), np.float32) * np.arange(6, dtype=np.float32)[None, :, None, None] + 1
    b = a[:, :, :1].copy()
    b[:, 2:4] = 0.0  # the detector missed frames 2 and 3
    b[:, 5] = 0.0
    a[:, 5] = 0.0  # frame 5 empty everywhere: stays empty
    out = match_valid_frames({"ntu25": a, "coco17": b})
    assert out["ntu25"] is a
    np.testing.assert_array_equal(out["coco17"][0, :, 0, 0], [1, 2, 2, 5, 5, 0])  # nearest, earlier on ties
    with pytest.raises(ValueError, match="share the frame count"):
        match_valid_frames({"ntu25": a, "coco17": b[:, :5]})


def test_a_store_without_extracted_poses_gives_a_one_line_error(tmp_path: Path) -> None:
    ensure_pose_store(tmp_path / "store", config={}, source_root="test")
    _write_sample(tmp_path / "store", NAME, with_pose=False)
    store = SampleStore(tmp_path / "store")
    with pytest.raises(StoreError) as info:
        SkeletonClipDataset(store, [NAME], _per_layout(TRAIN_STEPS), clip_len=16, conventions=CONVENTIONS)
    message = str(info.value)
    assert "\n" not in message and NAME in message and "pose3d_world.npy" in message
    assert f"actionfusion extract-poses RGB_ROOT --out {store.path}" in message
    with pytest.raises(StoreError, match=f"sample {NAME} has no pose3d_world.npy.*extract-poses"):
        load_conventions(store, NAME, ["coco17"])
    # The sensor's convention alone needs no poses.
    assert load_conventions(store, NAME, ["ntu25"])["ntu25"].shape == (2, FILE_FRAMES - len(DROPPED), 25, 3)


def test_skeleton_source_makes_one_extracted_convention_the_input(store: SampleStore) -> None:
    steps = [{"name": "center"}, {"name": "valid_crop_resize", "out_len": 16, "p_interval": [0.95], "min_len": 8}]
    dataset = SkeletonClipDataset(store, [NAME], {"coco17": build_skeleton_pipeline(steps, "coco17", False)},
                                  clip_len=16, train=False, source="coco17")
    item = dataset[0]
    assert tuple(item["skeleton"].shape) == (2, 16, 17, 3) and "conventions" not in item
    model = create_model("stgcn_unified", num_classes=5, hidden_channels=4, hidden_dim=8, convention="coco17").eval()
    assert model(item["skeleton"][None]).shape == (1, 5)  # the default convention reads 17 joints
    with pytest.raises(ValueError, match="data.skeleton_source"):
        create_model("stgcn_unified", num_classes=0, hidden_channels=4, hidden_dim=8)(item["skeleton"][None])


def _cfg(store: str = "unused", **data: object) -> ExperimentConfig:
    base = ExperimentConfig().to_dict()
    base["data"].update({"store": store, **data})
    return ExperimentConfig.from_dict(base)


def test_config_options_and_their_checks() -> None:
    cfg = _cfg(conventions=list(CONVENTIONS), views=2, train_transforms=TRAIN_STEPS[:3])
    transform, views = build_convention_transforms(cfg.data, train=True)
    assert set(transform) == set(CONVENTIONS) and len(views) == 2
    assert {c: t.layout.name for c, t in views[1].items()} == {c: c for c in CONVENTIONS}
    with pytest.raises(ConfigError, match=r"data.conventions\[1\]"):
        _cfg(conventions=["ntu25", "smplx42"])
    with pytest.raises(ConfigError, match="data.skeleton_source"):
        _cfg(skeleton_source="coco17", modalities=["skeleton", "rgb"])
    noisy = _cfg(conventions=["ntu25", "coco17"], train_transforms=[{"name": "gaussian_noise"}] + TRAIN_STEPS[1:2])
    with pytest.raises(ConfigError, match="data.train_transforms: step gaussian_noise"):
        build_convention_transforms(noisy.data, train=True)
    assert check_shared_crop(TRAIN_STEPS + [{"name": "gaussian_noise"}]) is None


def test_shipped_msclr_configs() -> None:
    pre = load_config(CONFIGS / "ntu60_xsub" / "msclr_pretrain.yaml")
    optim, schedule = pre.optim, pre.schedule
    assert (optim.name, optim.lr, optim.momentum, optim.weight_decay) == ("sgd", 0.1, 0.9, 1e-4)
    assert (schedule.epochs, schedule.milestones, pre.data.batch_size, pre.data.clip_len) == (300, [250], 128, 50)
    assert pre.objective.name == "msclr" and pre.objective.kwargs["queue_size"] == 32768
    assert pre.objective.kwargs["mining_start_epoch"] == 150 and pre.objective.kwargs["tau"] == 0.07
    assert pre.objective.kwargs["momentum"] == 0.999 and pre.model.name == "stgcn_unified"
    assert pre.data.conventions == list(CONVENTIONS) and pre.data.views == 2
    steps = [s["name"] for s in pre.data.train_transforms]
    assert steps == ["center", "valid_crop_resize", "temporal_crop_pad", "shear"]
    for bench in ("ntu60_xview", "ntu120_xsub", "ntu120_xset"):
        cfg = load_config(CONFIGS / bench / "msclr_pretrain.yaml")
        probe = load_config(CONFIGS / bench / "msclr_probe.yaml")
        assert cfg.data.benchmark == probe.data.benchmark == bench
        assert probe.model.num_classes == (120 if bench.startswith("ntu120") else 60)
    synthetic = load_config(CONFIGS / "synthetic" / "msclr_pretrain.yaml")
    assert (synthetic.data.batch_size, synthetic.data.clip_len) == (16, 32)


# ---------------------------------------------------------------- the objective


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("stgcn_unified", num_classes=0, hidden_channels=4, hidden_dim=16, block_dropout=0.0)


def _batch(size: int = 8, frames: int = 8, seed: int = 0, pool: int = 0) -> dict:
    """Two views in three conventions: one random base motion per sample (sample ``i`` of a pool of
    ``pool`` when given, else fresh ones), written in each layout (the first V_c rows of one fixed
    random linear map of 6 base joints), plus view noise drawn with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    if pool:
        index = torch.randperm(pool, generator=g)[:size]
        base = torch.randn(pool, 1, frames, 6, 3, generator=torch.Generator().manual_seed(1000))[index]
    else:
        index = torch.arange(size)
        base = torch.randn(size, 1, frames, 6, 3, generator=g)
    shared = torch.randn(33, 6, generator=torch.Generator().manual_seed(7))  # joint j of every convention
    maps = {c: shared[:get_layout(c).num_joints] for c in CONVENTIONS}
    views = [{"conventions": {c: torch.einsum("vj,bmtjc->bmtvc", w, base) + 0.3 * torch.randn(
        len(index), 1, frames, w.shape[0], 3, generator=g) for c, w in maps.items()}} for _ in range(2)]
    for view in views:
        view["skeleton"] = view["conventions"]["ntu25"]
    return {"skeleton": views[0]["skeleton"], "views": views, "index": index, "label": torch.zeros(len(index))}


@torch.no_grad()
def _cross_convention_loss(objective: MSCLRPretraining, model: torch.nn.Module, batch: dict) -> float:
    """Mean over the ordered convention pairs of the in-batch InfoNCE of view 0 in one convention
    against view 1 in another: low when a clip's conventions embed together. Batch statistics in the
    BatchNorms, as in training (a copy of the model, so its running statistics stay untouched)."""
    model = copy.deepcopy(model)
    losses = []
    for a in CONVENTIONS:
        for b in CONVENTIONS:
            if a != b:
                q = objective.embed(model, batch["views"][0]["conventions"][a], a)
                k = objective.embed(model, batch["views"][1]["conventions"][b], b)
                logits = q @ k.t() / 0.2
                losses.append(float(torch.nn.functional.cross_entropy(logits, torch.arange(len(q)))))
    return float(np.mean(losses))


def test_query_and_key_conventions_always_differ() -> None:
    torch.manual_seed(0)
    pairs = [MSCLRPretraining.draw_pair(CONVENTIONS) for _ in range(600)]
    assert all(q != k for q, k in pairs)
    assert set(pairs) == {(q, k) for q in CONVENTIONS for k in CONVENTIONS if q != k}  # every ordered pair occurs
    model = _model()
    objective = create_objective("msclr", encoder_dim=16, feature_dim=8, queue_size=32)
    objective.attach(model)
    seen = set()
    for step in range(12):
        objective(model, _batch(4, seed=step))
        seen.add(objective.last_pair)
        assert objective.last_pair[0] != objective.last_pair[1]
    assert len(seen) > 1
    with pytest.raises(ValueError, match="at least two"):
        MSCLRPretraining.draw_pair(["ntu25"])
    with pytest.raises(KeyError, match="data.conventions"):
        objective(model, {"views": [{"skeleton": torch.zeros(1)}] * 2})
    with pytest.raises(ValueError, match="stgcn_unified"):
        create_objective("msclr", encoder_dim=16).attach(torch.nn.Linear(2, 2))


class TinyConventionEncoder(torch.nn.Module):
    """A stand-in for ``stgcn_unified``: the time-averaged joints zero-padded to 33 slots, then one
    shared Linear + BN + ReLU + Linear (the objective only needs ``conventions`` and
    ``forward_features(x, convention).pooled``)."""

    conventions = CONVENTIONS
    num_features = 16

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Linear(33 * 3, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(),
                                          torch.nn.Linear(32, 16))

    def forward_features(self, x: torch.Tensor, convention: str = "ntu25") -> SimpleNamespace:
        assert x.shape[3] == get_layout(convention).num_joints
        padded = torch.nn.functional.pad(x.mean(dim=(1, 2)), (0, 0, 0, 33 - x.shape[3]))
        return SimpleNamespace(pooled=self.layers(padded.flatten(1)))


def test_msclr_trains_on_a_tiny_problem() -> None:
    torch.manual_seed(0)
    model = TinyConventionEncoder()
    objective = create_objective("msclr", encoder_dim=16, feature_dim=8, queue_size=32, momentum=0.9, tau=0.2,
                                 mining_start_epoch=5)
    objective.attach(model)
    params = list(model.parameters()) + [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    held_out = _batch(32, seed=999, pool=32)
    before = _cross_convention_loss(objective, model, held_out)
    for step in range(30):
        objective.start_epoch(step // 3)
        torch.manual_seed(step)
        out = objective(model, _batch(16, seed=step, pool=32))
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        assert torch.isfinite(out.loss)
    after = _cross_convention_loss(objective, model, held_out)
    assert after < before - 0.5, (before, after)
    assert objective.mining() and int(objective.queue.filled) == 32
    # One query convention per step leaves the others' data BN without gradient: DDP must be told.
    assert ObjectiveModule(model, objective).ddp_find_unused_parameters


def test_padded_joints_stay_out_through_the_objective_path() -> None:
    model = _model().eval()
    objective = create_objective("msclr", encoder_dim=16, feature_dim=8, queue_size=16).eval()
    objective.attach(model)
    x = _batch(2)["views"][0]["conventions"]["coco17"]
    q = objective.embed(model, x, "coco17")
    padded = torch.cat([x, 100.0 * torch.randn(*x.shape[:3], 33 - 17, 3)], dim=3)
    direct = torch.nn.functional.normalize(objective.projector(model.forward_padded(padded, "coco17").pooled), dim=1)
    torch.testing.assert_close(q, direct)
    k = objective.embed_key(model, x, "coco17")
    torch.testing.assert_close(k, objective.embed_key(model, x.clone(), "coco17"))
    with pytest.raises(ValueError, match="has 33 joints"):
        objective.embed(model, x, "blazepose33")
