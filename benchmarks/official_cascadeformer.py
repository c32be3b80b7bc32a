"""The official CascadeFormer v1.0 modules, imported from a snapshot under ``--official-root``.

The snapshot: ``git -C <mirror> archive HEAD baseline/action_recognition/cascadeformer_1_0/joint/ntu_60_own
| tar -x -C /tmp/official/cascadeformer`` (never inside this repository; nothing in it is edited).
``NTU_pretraining.py`` imports ``transformers`` for its learning-rate schedule only; when the
package is missing a stand-in module takes its place (the models never call it).

Upstream has no single stage-2 module: ``finetuning.finetuning`` composes ``BaseT1.encode``,
``BaseT2.encode``, ``CrossAttentionWithFFN`` and ``GaitRecognitionHeadMLP`` inside its loop.
:class:`OfficialStage2` holds those four official modules under the prefixes the ``cascadeformer``
converter reads and runs the same steps, person selection included (without the loop's
``.float()`` cast, so that a float64 comparison stays float64). :func:`official_stage1_loss` is
``train_T1``'s loss on the output of the official ``mask_random_global_joints``.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from types import ModuleType
from typing import Tuple

import torch
from torch import nn

OFFICIAL_FOLDER = Path("cascadeformer/baseline/action_recognition/cascadeformer_1_0/joint/ntu_60_own")


def official_modules(root: Path) -> Tuple[ModuleType, ModuleType]:
    """(``NTU_pretraining``, ``finetuning``) imported from ``root / OFFICIAL_FOLDER``."""
    folder = Path(root) / OFFICIAL_FOLDER
    if not (folder / "NTU_pretraining.py").is_file():
        raise FileNotFoundError(f"no CascadeFormer snapshot at {folder}: git archive it there (see this module's doc)")
    if "transformers" not in sys.modules and importlib.util.find_spec("transformers") is None:
        stand_in = types.ModuleType("transformers")

        def get_cosine_schedule_with_warmup(*args: object, **kwargs: object) -> None:
            raise RuntimeError("stand-in: the transformers package is not installed")

        stand_in.get_cosine_schedule_with_warmup = get_cosine_schedule_with_warmup  # type: ignore[attr-defined]
        sys.modules["transformers"] = stand_in
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return importlib.import_module("NTU_pretraining"), importlib.import_module("finetuning")


def official_stage1(root: Path, embed_dim: int, num_heads: int, depth: int) -> nn.Module:
    """``BaseT1`` for 25 3-D joints (its ``forward`` reconstructs, ``encode`` gives T1's tokens)."""
    pretraining, _ = official_modules(root)
    return pretraining.BaseT1(num_joints=25, three_d=True, d_model=embed_dim, nhead=num_heads, num_layers=depth)


class OfficialStage2(nn.Module):
    """Upstream's stage-2 modules, composed as ``finetuning.finetuning`` does (NTU_main.py dropouts)."""

    def __init__(self, root: Path, embed_dim: int, num_heads: int, depth: int, num_classes: int) -> None:
        super().__init__()
        _, finetuning = official_modules(root)
        self.t1 = official_stage1(root, embed_dim, num_heads, depth)
        self.t2 = finetuning.BaseT2(embed_dim, num_heads, depth, dropout=0.2)
        self.cross_attn = finetuning.CrossAttentionWithFFN(d_model=embed_dim, nhead=num_heads, dropout=0.2)
        self.gait_head = finetuning.GaitRecognitionHeadMLP(input_dim=embed_dim, num_classes=num_classes, dropout=0.3)

    def forward(self, skeletons: torch.Tensor) -> torch.Tensor:
        """skeletons [B, C, T, V, M] (CTR-GCN layout) -> logits [B, classes]."""
        x1 = self.t1.encode(official_person(skeletons))
        x2 = self.t2.encode(x1)
        return self.gait_head(self.cross_attn(x1, x2, x2).mean(dim=1))


def official_person(skeletons: torch.Tensor) -> torch.Tensor:
    """The loops' person selection: [B, C, T, V, M] -> [B, T, V, C], the body of largest summed |x|."""
    batch, channels, frames, joints, _ = skeletons.shape
    sequences = skeletons.permute(0, 2, 3, 1, 4)
    index = sequences.abs().sum(dim=(1, 2, 3)).argmax(dim=-1)
    gather = index.view(batch, 1, 1, 1, 1).expand(-1, frames, joints, channels, 1)
    return torch.gather(sequences, dim=4, index=gather).squeeze(-1)


def official_stage1_loss(root: Path, model: nn.Module, skeletons: torch.Tensor, mask_ratio: float = 0.3
                         ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``train_T1``'s step before backward: (loss, reconstruction [B, T, V, C], mask [B, T, V]).

    skeletons: [B, C, T, V, M]; the mask comes from the official ``mask_random_global_joints``
    (torch's global random stream).
    """
    pretraining, _ = official_modules(root)
    sequences = official_person(skeletons)
    masked, mask = pretraining.mask_random_global_joints(sequences, mask_ratio=mask_ratio)
    weight = mask.unsqueeze(-1).expand_as(sequences)
    recons = model(masked)
    errors = nn.MSELoss(reduction="none")(recons, sequences) * weight
    return errors.sum() / (weight.sum() + 1e-8), recons, mask
