"""Batches keyed by modality reach each model as it declares (input_keys), multi-clip aware."""

import pytest
import torch
from torch import nn

from actionfusion.modalities.features import EncoderOutput
from actionfusion.pipeline.model_inputs import batch_inputs, flatten_clips, model_input_keys
from actionfusion.pipeline.train_loop import FeaturesAndLogits


class TwoStreamNet(nn.Module):
    """Two inputs, two heads: the shape of EPAM-Net's interface."""

    input_keys = ("rgb", "points")

    def __init__(self) -> None:
        super().__init__()
        self.rgb_head = nn.Linear(3, 4)
        self.points_head = nn.Linear(3, 4)

    def forward_features(self, x: dict) -> EncoderOutput:
        rgb = x["rgb"].mean(dim=(2, 3, 4))        # [B, 3]
        points = x["points"].mean(dim=(1, 2))     # [B, 3]
        pooled = torch.cat([rgb, points], dim=1)
        return EncoderOutput(sequence=pooled[:, None], pooled=pooled)

    def forward_stream_logits(self, feats: EncoderOutput) -> dict:
        return {"rgb": self.rgb_head(feats.pooled[:, :3]), "points": self.points_head(feats.pooled[:, 3:])}

    def forward_head(self, feats: EncoderOutput) -> torch.Tensor:
        return sum(self.forward_stream_logits(feats).values())


def test_input_keys_are_found_through_wrappers_and_have_no_default() -> None:
    wrapped = FeaturesAndLogits(TwoStreamNet())
    assert model_input_keys(wrapped) == ("rgb", "points")
    with pytest.raises(TypeError, match="Linear declares no input_keys"):
        model_input_keys(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="Linear declares no input_keys"):
        model_input_keys(FeaturesAndLogits(nn.Linear(2, 2)))


def test_batch_inputs_gives_a_tensor_or_a_dict_and_names_missing_keys() -> None:
    batch = {"rgb": torch.zeros(2, 3, 4, 5, 5), "points": torch.zeros(2, 4, 7, 3), "label": torch.zeros(2)}
    assert isinstance(batch_inputs(batch, ("rgb",), torch.device("cpu")), torch.Tensor)
    both = batch_inputs(batch, ("rgb", "points"), torch.device("cpu"))
    assert set(both) == {"rgb", "points"}
    with pytest.raises(KeyError, match="depth"):
        batch_inputs(batch, ("depth",), torch.device("cpu"))


def test_flatten_clips_folds_k_into_the_batch_and_rejects_mixed_counts() -> None:
    x = {"rgb": torch.randn(2, 3, 3, 4, 5, 5), "points": torch.randn(2, 3, 4, 7, 3)}
    flat, clips = flatten_clips(x, ("rgb", "points"))
    assert clips == 3 and flat["rgb"].shape == (6, 3, 4, 5, 5) and flat["points"].shape == (6, 4, 7, 3)
    torch.testing.assert_close(flat["points"][4], x["points"][1, 1])
    single, one = flatten_clips(torch.randn(2, 2, 8, 25, 3), ("skeleton",))
    assert one == 1 and single.shape == (2, 2, 8, 25, 3)
    with pytest.raises(ValueError):
        flatten_clips({"rgb": torch.randn(2, 3, 3, 4, 5, 5), "points": torch.randn(2, 4, 7, 3)}, ("rgb", "points"))


def test_stream_logits_are_summed_and_returned_for_the_loss() -> None:
    model = FeaturesAndLogits(TwoStreamNet())
    x = {"rgb": torch.randn(2, 3, 4, 5, 5), "points": torch.randn(2, 4, 7, 3)}
    logits, aux, streams = model(x)
    assert set(streams) == {"rgb", "points"} and aux == {}
    torch.testing.assert_close(logits, streams["rgb"] + streams["points"])
