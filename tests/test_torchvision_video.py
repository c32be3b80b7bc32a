"""torchvision's video classifiers as registered RGB encoders: the exact parameter counts of
torchvision's releases, logits equal to torchvision's model at equal weights, Kinetics weights
from torch's hub cache (its head kept for 400 classes, replaced otherwise), and a one-line error
naming the URL and the cache path when they cannot be fetched."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest
import torch

pytest.importorskip("torchvision", reason="torchvision is not installed")
from torchvision.models import get_model_weights  # noqa: E402
from torchvision.models import video as tv_video  # noqa: E402

from actionfusion.errors import MissingDependencyError  # noqa: E402
from actionfusion.modalities.rgb.torchvision_video import REGISTERED_ARCHS  # noqa: E402
from actionfusion.registry import create_model, list_models  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registered_names() -> None:
    assert list_models("tv_*", modality="rgb") == sorted(f"tv_{arch}" for arch in REGISTERED_ARCHS)


@pytest.mark.parametrize("arch", REGISTERED_ARCHS)
def test_parameter_count_is_torchvisions_release(arch: str) -> None:
    release = get_model_weights(arch).KINETICS400_V1
    assert n_params(create_model(f"tv_{arch}", num_classes=400)) == release.meta["num_params"]


def _copy_into_ours(arch: str, reference: torch.nn.Module, ours: torch.nn.Module) -> None:
    state = reference.state_dict()
    head_keys = {"r3d_18": "fc", "mc3_18": "fc", "r2plus1d_18": "fc", "s3d": "classifier.1",
                 "swin3d_t": "head"}[arch]
    weight, bias = state.pop(f"{head_keys}.weight"), state.pop(f"{head_keys}.bias")
    ours.net.load_state_dict(state, strict=True)
    ours.head.fc.weight.data.copy_(weight.flatten(1))
    ours.head.fc.bias.data.copy_(bias)


@pytest.mark.parametrize("arch, shape", [("r2plus1d_18", (2, 3, 4, 32, 32)), ("swin3d_t", (2, 3, 4, 32, 32)),
                                         ("s3d", (1, 3, 16, 224, 224))])
@torch.no_grad()
def test_logits_equal_torchvisions_at_equal_weights(arch: str, shape: tuple) -> None:
    torch.manual_seed(0)
    reference = getattr(tv_video, arch)(weights=None).eval()
    for name, buffer in reference.named_buffers():  # non-trivial batch-norm statistics
        if name.endswith("running_mean"):
            buffer.normal_(0, 0.1)
    ours = create_model(f"tv_{arch}", num_classes=400).eval()
    _copy_into_ours(arch, reference, ours)
    x = torch.randn(*shape)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-5)
    feats = ours.forward_features(x)
    assert feats.spatial is not None and feats.spatial.shape[:2] == (shape[0], ours.num_features)
    if arch != "s3d":  # S3D pools with its own AvgPool3d window before the mean
        torch.testing.assert_close(feats.sequence.mean(dim=1), feats.pooled)


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return Path(torch.hub.get_dir()) / "checkpoints"


@torch.no_grad()
def test_kinetics_weights_load_from_the_hub_cache(hub) -> None:
    release = get_model_weights("mc3_18").KINETICS400_V1
    torch.manual_seed(1)
    reference = tv_video.mc3_18(weights=None).eval()
    hub.mkdir(parents=True)
    torch.save(reference.state_dict(), hub / os.path.basename(release.url))  # placed by hand, no download
    ours = create_model("tv_mc3_18", num_classes=400, weights="KINETICS400_V1").eval()
    x = torch.randn(1, 3, 4, 32, 32)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-5)  # the release's head kept
    other = create_model("tv_mc3_18", num_classes=7, weights="KINETICS400_V1").eval()
    assert other(x).shape == (1, 7)  # a fresh head; the backbone is the release's
    torch.testing.assert_close(other.forward_features(x).pooled, ours.forward_features(x).pooled)


def test_unavailable_weights_are_one_line_with_url_and_path(hub, monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    release = get_model_weights("r3d_18").KINETICS400_V1
    with pytest.raises(MissingDependencyError) as error:
        create_model("tv_r3d_18", weights="KINETICS400_V1")
    message = str(error.value)
    assert release.url in message and str(hub / os.path.basename(release.url)) in message and "\n" not in message
    with pytest.raises(MissingDependencyError, match="no weights 'IMAGENET'"):
        create_model("tv_r3d_18", weights="IMAGENET")
