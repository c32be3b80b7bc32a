"""ONNX export: every registered skeleton model and a two-modality Recognizer run in ONNX Runtime with
torch's outputs (within 1e-4 of the largest logit), at another batch size and, where the model allows,
another clip length; the file records its dynamic axes; ``actionfusion export-onnx`` writes the file and
one JSON line, and fails in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install \"actionfusion[export]\")")
onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install \"actionfusion[export]\")")

from actionfusion.errors import MissingDependencyError  # noqa: E402
from actionfusion.modalities.skeleton import finetec_completion  # noqa: E402
from actionfusion.pipeline.checkpoints import save_weights  # noqa: E402
from actionfusion.pipeline.cli import main  # noqa: E402
from actionfusion.pipeline.config import ExperimentConfig, save_config  # noqa: E402
from actionfusion.pipeline.onnx_export import TOLERANCE, export_onnx, require_onnx  # noqa: E402
from actionfusion.pipeline.trainer import build_model  # noqa: E402
from actionfusion.registry import create_model, list_models  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

FRAMES, PERSONS, JOINTS = 8, 2, 25

# name -> small constructor kwargs (defaults where the model is small already) and input channels.
SMALL: Dict[str, tuple[Dict[str, Any], int]] = {
    "ctrgcn": ({"base_channels": 8}, 3),
    "stgcn_clr": ({"hidden_channels": 4, "hidden_dim": 8}, 3),
    "stgcn_unified": ({"hidden_channels": 4, "hidden_dim": 8}, 3),
    "bigru": ({"hidden_size": 6, "num_layers": 2}, 3),
    "psumnet": ({"streams": ["hand", "leg"]}, 12),  # the body stream is psumnet_body's test
    "psumnet_body": ({}, 12), "psumnet_hand": ({}, 12), "psumnet_leg": ({}, 12),
    "mamp": ({"num_frames": FRAMES, "embed_dim": 32, "depth": 1, "num_heads": 2, "head_hidden_dim": 16}, 3),
    "cascadeformer": ({"embed_dim": 16, "num_heads": 2, "depth": 1, "mlp_dim": 16, "max_frames": 16}, 3),
    "skeletonmae": ({"embed_dim": 16, "depth": 1}, 3),
    "finetec_completion": ({"num_frames": FRAMES, "dim": 16, "depth": 1, "temporal_hidden": 8, "spatial_hidden": 8,
                            "channel_hidden": 16, "num_prototypes": 4}, 3),
    "finetec": ({"num_frames": FRAMES, "completion_kwargs": {"dim": 16, "depth": 1, "temporal_hidden": 8,
                                                            "spatial_hidden": 8, "channel_hidden": 16,
                                                            "num_prototypes": 4},
                 "backbone_kwargs": {"base_channels": 8}}, 3),
}

FIXED_TIME = {
    "mamp": "the model refuses",                # learned embedding of num_frames // segment_frames positions
    "finetec_completion": "the model refuses",  # its temporal MLP mixes exactly num_frames frames
    "finetec": "the model refuses",             # its completion network's, as above
    "cascadeformer": "ONNX Runtime fails",      # nn.MultiheadAttention's traced reshape keeps the export T
}
"""Models whose time axis is fixed in the file, and how the exporter found out."""


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))


def _ort_matches_torch(blob: bytes, model: torch.nn.Module, inputs: Dict[str, torch.Tensor]) -> float:
    """max |ORT - torch| / max |torch| at ``inputs``."""
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = (model(next(iter(inputs.values()))) if len(inputs) == 1 else model(dict(inputs))).numpy()
    got = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    assert got.shape == ref.shape
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.mark.parametrize("name", list_models(modality="skeleton"))
def test_every_skeleton_model_round_trips_with_dynamic_batch_and_time(name: str) -> None:
    kwargs, channels = SMALL.get(name, ({}, 3))
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, **kwargs).eval()
    blob, report = export_onnx(model, {"skeleton": _randn(2, PERSONS, FRAMES, JOINTS, channels)}, name=name)
    assert report.max_rel_diff <= TOLERANCE

    # dynamic batch: exported at batch 2, run at 3
    assert report.dynamic_axes["skeleton"][0] == "batch"
    assert _ort_matches_torch(blob, model, {"skeleton": _randn(3, PERSONS, FRAMES, JOINTS, channels)}) <= TOLERANCE

    meta = ort.InferenceSession(blob, providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert json.loads(meta["dynamic_axes"]) == {"skeleton": {str(k): v for k, v in report.dynamic_axes["skeleton"].items()}}
    if name in FIXED_TIME:
        assert 2 not in report.dynamic_axes["skeleton"]
        assert report.fixed_time["skeleton"].startswith(FIXED_TIME[name])
        assert json.loads(meta["fixed_time_axes"]) == report.fixed_time
    else:  # dynamic time: exported at 8 frames, run at 12
        assert report.dynamic_axes["skeleton"][2] == "time" and not report.fixed_time
        x = _randn(3, PERSONS, FRAMES + 4, JOINTS, channels)
        assert _ort_matches_torch(blob, model, {"skeleton": x}) <= TOLERANCE


def test_recognizer_with_two_modalities_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("recognizer", num_classes=5,
                         encoders={"skeleton": {"name": "stgcn", "kwargs": {"hidden_channels": 4, "hidden_dim": 8}},
                                   "depth": {"name": "depth_tsm", "kwargs": {"widths": [8, 8, 16, 16]}}},
                         fusion={"name": "late", "kwargs": {}}).eval()
    inputs = {"skeleton": _randn(2, PERSONS, FRAMES, JOINTS, 3), "depth": _randn(2, 1, 4, 24, 24)}
    out = tmp_path / "recognizer.onnx"
    blob, report = export_onnx(model, inputs, out, name="recognizer")
    assert out.read_bytes() == blob
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["skeleton", "depth"]
    assert report.max_rel_diff <= TOLERANCE
    assert {k: v[0] for k, v in report.dynamic_axes.items()} == {"skeleton": "batch", "depth": "batch"}
    bigger = {"skeleton": _randn(3, PERSONS, FRAMES, JOINTS, 3), "depth": _randn(3, 1, 4, 24, 24)}
    assert _ort_matches_torch(blob, model, bigger) <= TOLERANCE


def test_running_max_while_exporting_equals_cummax(monkeypatch: pytest.MonkeyPatch) -> None:
    values = torch.randint(-1, 9, (3, 9, 4), generator=torch.Generator().manual_seed(1))
    expected = values.cummax(dim=1).values
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    assert torch.equal(finetec_completion.running_max(values), expected)
    observed = torch.rand(3, 9, 4, generator=torch.Generator().manual_seed(2)) > 0.5
    x = _randn(3, 9, 4, 3)
    exported = finetec_completion.interpolate_observed(x, observed)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: False)
    assert torch.equal(exported, finetec_completion.interpolate_observed(x, observed))


def _work_dir(path: Path) -> Path:
    cfg = ExperimentConfig.from_dict({
        "experiment": "onnx_test", "data": {"store": str(path / "no_store"), "clip_len": FRAMES},
        "model": {"name": "stgcn", "num_classes": 5, "kwargs": {"hidden_channels": 4, "hidden_dim": 8}},
    })
    path.mkdir(parents=True)
    save_config(cfg, path / "config.yaml")
    torch.manual_seed(0)
    save_weights(path / "best.safetensors", build_model(cfg))
    return path


def test_cli_writes_the_file_and_prints_one_json_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    work = _work_dir(tmp_path / "work")
    out = tmp_path / "model.onnx"
    assert main(["export-onnx", str(work), "--out", str(out), "--frames", "6", "--persons", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["model"] == "stgcn" and report["out"] == str(out)
    assert report["inputs"] == {"skeleton": [2, 1, 6, JOINTS, 3]}
    assert report["dynamic_axes"] == {"skeleton": {"0": "batch", "2": "time"}}
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.run(None, {"skeleton": _randn(4, 1, 10, JOINTS, 3).numpy()})[0].shape == (4, 5)
    assert session.get_modelmeta().custom_metadata_map["checkpoint"] == str(work / "best.safetensors")


def test_cli_missing_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export-onnx", str(tmp_path / "absent"), "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"actionfusion export-onnx: error: checkpoint {tmp_path / 'absent'} not found"]
    assert not (tmp_path / "m.onnx").exists()


def test_missing_onnxruntime_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"pip install"):
        require_onnx()


class _CumulativeMax(torch.nn.Module):
    num_classes = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.cummax(dim=2).values.mean(dim=(1, 2, 3))


def test_an_op_without_onnx_form_is_one_error_and_prints_nothing(capfd: pytest.CaptureFixture) -> None:
    from actionfusion.pipeline.onnx_export import OnnxExportError

    with pytest.raises(OnnxExportError, match=r"aten::cummax") as err:
        export_onnx(_CumulativeMax(), {"skeleton": _randn(2, PERSONS, FRAMES, JOINTS, 3)})
    assert "\n" not in str(err.value)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
