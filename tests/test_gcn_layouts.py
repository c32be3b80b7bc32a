"""ST-GCN, ST-GCN++ and CTR-GCN take ``layout``: their graph is the layout's (COCO-17, BlazePose-33
extracted poses), and ``layout="ntu25"`` is exactly the default (NTU) model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actionfusion.modalities.skeleton.graphs import ctrgcn_partition, stgcn_spatial_partition
from actionfusion.modalities.skeleton.layouts import layout_graph
from actionfusion.registry import create_model

pytestmark = pytest.mark.usefixtures("one_thread")

PARTITION = {"stgcn": lambda lay: stgcn_spatial_partition(layout_graph(lay)),
             "ctrgcn": lambda lay: ctrgcn_partition(layout_graph(lay, "A")),
             "stgcnpp": lambda lay: ctrgcn_partition(layout_graph(lay, "B"))}
SMALL = {"stgcn": {"hidden_channels": 4, "hidden_dim": 8}, "ctrgcn": {"base_channels": 8}, "stgcnpp": {}}


def _adjacency(model) -> np.ndarray:
    """The model's graph partition as built: ST-GCN's buffer A, or the first block's learnable A."""
    a = model.A if hasattr(model, "A") else model.blocks[0].gcn.A
    return a.detach().numpy()


@pytest.mark.parametrize("name", sorted(PARTITION))
@pytest.mark.parametrize("layout, joints", [("coco17", 17), ("blazepose33", 33)])
def test_graph_follows_the_layout(name, layout, joints) -> None:
    model = create_model(name, num_classes=4, layout=layout, **SMALL[name]).eval()
    assert model.num_joints == joints
    np.testing.assert_allclose(_adjacency(model), PARTITION[name](layout), atol=0)
    edges = layout_graph(layout).edges
    a = _adjacency(model).sum(0)
    assert all(a[i, j] > 0 and a[j, i] > 0 for i, j in edges)  # every bone of the layout connects
    with torch.no_grad():
        assert model(torch.randn(2, 2, 8, joints, 3)).shape == (2, 4)


@pytest.mark.parametrize("name", sorted(PARTITION))
def test_ntu25_layout_is_the_default_model(name) -> None:
    torch.manual_seed(0)
    default = create_model(name, num_classes=4, **SMALL[name])
    torch.manual_seed(0)
    explicit = create_model(name, num_classes=4, layout="ntu25", **SMALL[name])
    for (k, a), (_, b) in zip(default.state_dict().items(), explicit.state_dict().items()):
        assert torch.equal(a, b), k
