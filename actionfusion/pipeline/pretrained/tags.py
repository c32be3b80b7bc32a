"""The released official checkpoints, as pretrained tags of our models (timm's ``name.tag``).

Each tag names the file its authors released (URL as published), the converter from that file's
layout to ours (:mod:`actionfusion.pipeline.official_checkpoints`), the constructor arguments under
which our model computes the released network, and the top-1 accuracy the release reports (not
measured here). Only files whose URL is written in the official sources are listed; the source
(repository @ commit, file) sits next to each group.

Hashes: neither release publishes one (pyskl's files are ``j.pth``, ``b.pth``, ... with no hash in
the name, ST-GCN's ``st_gcn.ntu-xsub.pt`` neither), so ``sha256`` is ``None`` for every tag: the file
is checked by its layout only (every key and shape against our model). A tag with a known digest
(``sha256``, or the 8-hex ``sha256_prefix`` openmmlab file names carry) is refused on a mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

STREAMS: Tuple[str, ...] = ("joint", "bone", "joint_motion", "bone_motion")
"""Input streams in pyskl's order; the file names are their abbreviations."""
_PYSKL_STREAM_FILE = {"joint": "j", "bone": "b", "joint_motion": "jm", "bone_motion": "bm"}


@dataclass(frozen=True)
class PretrainedTag:
    """One released checkpoint of one of our models.

    ``model_kwargs``: arguments of ``create_model(model, ...)`` beyond ``num_classes`` (the
    converter's own flags are added to them); ``input``: what the network was trained on, which a
    caller must feed it (stream, joint layout, pre-processing).
    """

    model: str
    tag: str
    url: str
    converter: str
    num_classes: int
    top1: float  # % top-1 as the release publishes it
    benchmark: str
    input: str
    source: str  # where the URL and the accuracy are published
    model_kwargs: Mapping[str, object] = field(default_factory=dict)
    sha256: Optional[str] = None  # full hex digest, when published
    sha256_prefix: Optional[str] = None  # leading hex digits from the file name, when it carries them

    @property
    def name(self) -> str:
        """``model.tag``, as ``list_pretrained`` lists it."""
        return f"{self.model}.{self.tag}"

    @property
    def hash_status(self) -> str:
        if self.sha256:
            return "sha256"
        if self.sha256_prefix:
            return f"sha256 prefix {self.sha256_prefix}"
        return "unknown (layout checked)"

    @property
    def file_name(self) -> str:
        """The released file's name (the URL's last component)."""
        return self.url.rsplit("/", 1)[-1]


# ---- ST-GCN++, pyskl ------------------------------------------------------------------------------
# kennymckormick/pyskl@3f6795f configs/stgcn++/README.md ("Model Zoo": each accuracy links to its
# weight file); configs/stgcn++/stgcn++_<benchmark>_<annotation>/<stream>.py: STGCN(gcn_adaptive='init',
# gcn_with_res=True, tcn_type='mstcn', graph layout 'nturgb+d' (3dkp) or 'coco' (hrnet), mode 'spatial'),
# GCNHead(num_classes=60/120, in_channels=256); 3dkp: PreNormalize3D, hrnet: HRNet 2D keypoints (x, y,
# score); GenSkeFeat feats=[stream]; UniformSample clip_len=100; 2 persons.
_PYSKL_URL = "http://download.openmmlab.com/mmaction/pyskl/ckpt/{arch}/{arch}_{benchmark}_{annotation}/{stream}.pth"
_BENCHMARKS = {
    "ntu60_xsub": ("NTU RGB+D 60 X-Sub", 60),
    "ntu60_xview": ("NTU RGB+D 60 X-View", 60),
    "ntu120_xsub": ("NTU RGB+D 120 X-Sub", 120),
    "ntu120_xset": ("NTU RGB+D 120 X-Set", 120),
}
# (benchmark, annotation) -> top-1 of joint, bone, joint motion, bone motion (the README's table)
_STGCNPP_TOP1: Dict[Tuple[str, str], Tuple[float, float, float, float]] = {
    ("ntu60_xsub", "3dkp"): (89.3, 90.1, 87.5, 87.3),
    ("ntu60_xsub", "hrnet"): (89.3, 92.3, 84.0, 88.8),
    ("ntu60_xview", "3dkp"): (95.6, 95.5, 94.3, 93.8),
    ("ntu60_xview", "hrnet"): (97.4, 97.2, 93.4, 95.4),
    ("ntu120_xsub", "3dkp"): (83.2, 85.6, 80.4, 81.5),
    ("ntu120_xsub", "hrnet"): (84.4, 84.8, 76.4, 81.1),
    ("ntu120_xset", "3dkp"): (85.6, 87.5, 84.3, 83.0),
    ("ntu120_xset", "hrnet"): (88.1, 88.5, 82.6, 84.1),
}
_ANNOTATIONS = {  # annotation -> (tag infix, our layout, input)
    "3dkp": ("", "ntu25", "NTU-25 3D joints (Kinect), pyskl PreNormalize3D"),
    "hrnet": ("_hrnet", "coco17", "COCO-17 2D keypoints from HRNet (x, y, score), pyskl's ntu*_hrnet.pkl"),
}


def _stgcnpp_tags() -> Tuple[PretrainedTag, ...]:
    tags = []
    for (benchmark, annotation), accuracies in _STGCNPP_TOP1.items():
        title, classes = _BENCHMARKS[benchmark]
        infix, layout, what = _ANNOTATIONS[annotation]
        for stream, top1 in zip(STREAMS, accuracies):
            tags.append(PretrainedTag(
                model="stgcnpp", tag=f"{benchmark}{infix}_{stream}",
                url=_PYSKL_URL.format(arch="stgcnpp", benchmark=benchmark, annotation=annotation,
                                      stream=_PYSKL_STREAM_FILE[stream]),
                converter="stgcnpp", num_classes=classes, top1=top1, benchmark=title,
                input=f"{stream.replace('_', ' ')} stream; {what}; 100 frames, 2 persons",
                source="kennymckormick/pyskl@3f6795f configs/stgcn++/README.md",
                model_kwargs={"layout": layout, "in_channels": 3},
            ))
    return tuple(tags)


# ---- ST-GCN, the authors' release -------------------------------------------------------------------
# yysijie/st-gcn@221c0e1 tools/get_models.sh (link https://open-mmlab.s3.ap-northeast-2.amazonaws.com/
# mmskeleton/models/st-gcn/) + resource/reference_model.txt (st_gcn.ntu-xsub.pt, st_gcn.ntu-xview.pt);
# top-1 from OLD_README.md "Results" (X-View 88.8, X-Sub 81.6); config/st_gcn/ntu-xsub/test.yaml:
# net.st_gcn.Model(in_channels=3, num_class=60, dropout=0.5, edge_importance_weighting=True,
# graph layout 'ntu-rgb+d', strategy 'spatial'; its dropout is our block_dropout, 0.5 by default);
# input from tools/ntu_gendata.py (300 frames, 2 persons).
_STGCN_URL = "https://open-mmlab.s3.ap-northeast-2.amazonaws.com/mmskeleton/models/st-gcn/st_gcn.ntu-{split}.pt"
_STGCN_TAGS = tuple(
    PretrainedTag(
        model="stgcn", tag=f"ntu60_{split}_joint", url=_STGCN_URL.format(split=split), converter="stgcn",
        num_classes=60, top1=top1, benchmark=title,
        input="joint stream; NTU-25 3D joints as st-gcn's tools/ntu_gendata.py writes them "
              "(300 frames, 2 persons)",
        source="yysijie/st-gcn@221c0e1 tools/get_models.sh, resource/reference_model.txt, OLD_README.md",
    )
    for split, title, top1 in (("xsub", "NTU RGB+D 60 X-Sub", 81.6), ("xview", "NTU RGB+D 60 X-View", 88.8))
)


def _by_model(tags: Tuple[PretrainedTag, ...]) -> Dict[str, Tuple[PretrainedTag, ...]]:
    table: Dict[str, Tuple[PretrainedTag, ...]] = {}
    for tag in tags:
        table[tag.model] = table.get(tag.model, ()) + (tag,)
    return table


PRETRAINED_TAGS: Dict[str, Tuple[PretrainedTag, ...]] = _by_model(_STGCN_TAGS + _stgcnpp_tags())
"""model name -> its tags; the first is the default (``pretrained=True``)."""


def model_tags(model: str) -> List[str]:
    """The tags of ``model`` in table order (the first is the default); [] when it has none."""
    return [tag.tag for tag in PRETRAINED_TAGS.get(model, ())]
