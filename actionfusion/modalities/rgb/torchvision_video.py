"""torchvision's video classifiers as registered RGB encoders: R3D, MC3, R(2+1)D, S3D, Swin3D.

Each ``tv_<arch>`` model wraps ``torchvision.models.video.<arch>(weights=None)`` without its
classifier and keeps the library's encoder contract (input key ``"rgb"``, float [N, 3, T, H, W];
``forward_features`` -> EncoderOutput; a :class:`~actionfusion.modalities.heads.LinearHead` of
dropout + Linear; ``num_classes=0`` for none). The features are torchvision's own up to the
classifier, so with the same weights the logits equal torchvision's model (tested):

* CNNs (``r3d_18``, ``mc3_18``, ``r2plus1d_18``): the stem and four residual stages give the map
  [N, 512, T', h, w]; ``pooled`` is its mean (torchvision's AdaptiveAvgPool3d(1)), ``sequence`` the
  per-time-step means [N, T', 512], ``spatial`` the map.
* ``s3d``: ``features`` [N, 1024, T', h, w], then torchvision's AvgPool3d((2, 7, 7), stride 1) and
  the mean over what remains (so clips need at least 224 x 224 pixels and 9 frames, as torchvision's) (its 1x1x1 convolution classifier is linear, so a Linear on that mean
  gives its logits).
* ``swin3d_t/s/b``: patch embedding, stages and norm give [N, T', h, w, C]; ``pooled`` its mean.

MViT (``mvit_v1_b``, ``mvit_v2_s``) is supported by the class (its class token after the last norm)
but not registered: its positional encoding fixes clips to 16 x 224 x 224, where one forward takes
5 s on this project's 2-core CI, and every registered model runs the encoder-contract test several
times. ``TorchvisionVideoEncoder("mvit_v2_s", ...)`` builds it.

Pretrained Kinetics-400 weights: ``weights="KINETICS400_V1"`` loads torchvision's release through
torchvision itself (downloaded once into ``torch.hub.get_dir()/checkpoints``). Without network the
one-line error names the URL and the file to put there. The weights' own head (400 classes) is
kept when ``num_classes`` is 400, and replaced by a fresh one otherwise. Clips should then be
normalised as the weights expect (``torchvision.models.video.<Arch>_Weights.KINETICS400_V1.transforms()``:
mean (0.43216, 0.394666, 0.37645), std (0.22803, 0.22145, 0.216989) for the CNNs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from ...errors import MissingDependencyError
from ...registry import register_model
from ..encoder_contract import Encoder
from ..features import EncoderOutput
from ..heads import LinearHead

CNN_ARCHS = ("r3d_18", "mc3_18", "r2plus1d_18")
SWIN_ARCHS = ("swin3d_t", "swin3d_s", "swin3d_b")
MVIT_ARCHS = ("mvit_v1_b", "mvit_v2_s")
ARCHS = CNN_ARCHS + ("s3d",) + MVIT_ARCHS + SWIN_ARCHS
KINETICS_CLASSES = 400


def _weights_enum(arch: str):
    from torchvision.models import get_model_weights

    return get_model_weights(arch)


def _load_release(arch: str, weights: str) -> nn.Module:
    """torchvision's ``arch`` with its released ``weights`` (one-line errors offline or for a bad name)."""
    from torchvision.models import video as tv_video

    enum = _weights_enum(arch)
    try:
        entry = enum[weights]
    except KeyError:
        raise MissingDependencyError(f"torchvision has no weights {weights!r} for {arch}; known: "
                                     f"{', '.join(e.name for e in enum)}") from None
    try:
        return getattr(tv_video, arch)(weights=entry)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a damaged file is a RuntimeError
        target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(entry.url)
        raise MissingDependencyError(
            f"cannot load torchvision's {arch} {weights} weights ({str(error).splitlines()[0] if str(error) else error}): "
            f"download {entry.url} elsewhere and put it at {target}") from None


class TorchvisionVideoEncoder(Encoder):
    """A torchvision video classifier without its classifier, as an encoder (module docstring).

    Args:
        arch: one of :data:`ARCHS`.
        num_classes: outputs of the head (0: none).
        drop_rate: dropout before the head's Linear (torchvision's own heads: none for the CNNs
            and Swin, 0.2 for S3D, 0.5 for MViT).
        weights: torchvision weights name (``"KINETICS400_V1"``, ``"DEFAULT"``) or None (random).
    """

    input_keys = ("rgb",)

    def __init__(self, arch: str, num_classes: int = 60, drop_rate: float = 0.0,
                 weights: Optional[str] = None) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown torchvision video architecture {arch!r}; one of {', '.join(ARCHS)}")
        from torchvision.models import video as tv_video

        net = _load_release(arch, weights) if weights else getattr(tv_video, arch)(weights=None)
        self.arch, self.drop_rate = arch, float(drop_rate)
        if arch in CNN_ARCHS:
            released_head, net.fc = net.fc, nn.Identity()
        elif arch == "s3d":
            conv = net.classifier[1]
            released_head = nn.Linear(conv.in_channels, conv.out_channels)
            with torch.no_grad():
                released_head.weight.copy_(conv.weight.flatten(1))
                released_head.bias.copy_(conv.bias)
            net.classifier = nn.Identity()
        elif arch in SWIN_ARCHS:
            released_head, net.head = net.head, nn.Identity()
        else:  # MViT: Sequential(Dropout, Linear)
            released_head, net.head = net.head[1], nn.Identity()
        self.net = net
        self.num_features = int(released_head.in_features)
        self.num_classes = int(num_classes)
        self.head = self.build_classifier(self.num_classes) if self.num_classes > 0 else None
        if weights and self.num_classes == released_head.out_features:
            self.head.fc.load_state_dict(released_head.state_dict())  # keep the release's classifier

    def build_classifier(self, num_classes: int) -> LinearHead:
        """Dropout + Linear (PyTorch's default init, as torchvision's heads)."""
        return LinearHead(self.num_features, num_classes, self.drop_rate)

    def forward_features(self, x: torch.Tensor) -> EncoderOutput:
        """x: float [N, 3, T, H, W] -> EncoderOutput (D = ``num_features``; module docstring)."""
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"{self.arch} expects RGB clips [N, 3, T, H, W], got {tuple(x.shape)}")
        net = self.net
        if self.arch in CNN_ARCHS:
            fmap = net.layer4(net.layer3(net.layer2(net.layer1(net.stem(x)))))  # [N, D, T', h, w]
            return _from_map(fmap)
        if self.arch == "s3d":
            fmap = net.features(x)
            pooled = net.avgpool(fmap).mean(dim=(2, 3, 4))
            return EncoderOutput(sequence=fmap.mean(dim=(3, 4)).transpose(1, 2), pooled=pooled, spatial=fmap)
        if self.arch in SWIN_ARCHS:
            h = net.norm(net.features(net.pos_drop(net.patch_embed(x))))  # [N, T', h, w, C]
            return _from_map(h.permute(0, 4, 1, 2, 3))
        token = net(x)  # MViT with an identity head: the class token after the norm [N, D]
        return EncoderOutput(sequence=token[:, None], pooled=token)


def _from_map(fmap: torch.Tensor) -> EncoderOutput:
    """[N, D, T', h, w] -> sequence [N, T', D] (spatial means), pooled [N, D], spatial the map."""
    sequence = fmap.mean(dim=(3, 4)).transpose(1, 2)
    return EncoderOutput(sequence=sequence, pooled=sequence.mean(dim=1), spatial=fmap)


def _register(arch: str) -> Callable[..., TorchvisionVideoEncoder]:
    def build(num_classes: int = 60, drop_rate: float = 0.0, weights: Optional[str] = None) -> TorchvisionVideoEncoder:
        return TorchvisionVideoEncoder(arch, num_classes, drop_rate, weights)

    build.__name__ = f"tv_{arch}"
    build.__doc__ = f"torchvision's {arch} as an RGB encoder (:class:`TorchvisionVideoEncoder`)."
    return register_model(f"tv_{arch}", modality="rgb")(build)


REGISTERED_ARCHS = CNN_ARCHS + ("s3d",) + SWIN_ARCHS
"""Those registered as ``tv_<arch>`` (not MViT: module docstring)."""
for _arch in REGISTERED_ARCHS:
    _register(_arch)
