"""Parity of our ACLNet (the ``aclnet`` model and objective) with firework8/ACLNet@0fab868.

Two lines of JSON:

* ``aclnet`` (float64): the official ``GCN_Module`` + ``SimpleHead`` (``official_aclnet.py``), its
  random initialisation perturbed (every floating parameter += ``--perturb`` x N(0, 1), so that the
  zero-initialised alpha, beta and add_coeff do not hide the dynamic graphs), copied into our
  ``aclnet`` through the ``aclnet`` converter; compared as ``parity.py`` compares: eval-mode logits
  and topology feature, train-mode cross-entropy, every parameter's gradient, every buffer after
  the step.
* ``aclnet_loss`` (float64; upstream's inter-class loss builds its one-hot masks with ``.float()``,
  which a float64 matmul refuses: ``official_aclnet.onehot_in_model_dtype`` gives them the model's
  dtype, in this comparison only): the whole training loss of one batch, ours (``aclnet`` objective) against
  upstream's ``BaseHead.loss`` terms, from the same weights (model and both projection heads), the
  same prototypes, the same confusion bank (``official_aclnet.structured_bank``: superclasses of
  all three temperatures) and the same full queue: the three terms, the total, every gradient
  (model and projection heads) and the state after the step (prototypes). Also the bank increment
  of a batch counted by upstream's ``get_mask`` against :func:`confusion_increment`, exactly.

``--write-layouts DIR`` writes the official state dict's layout to ``DIR/aclnet.json`` (the fixture of
``tests/test_checkpoint_convert.py``).

    .venv/bin/python benchmarks/parity_aclnet.py --official-root /tmp/official [--batch 4] [--frames 16]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import official_aclnet as official_acl  # noqa: E402
import parity  # noqa: E402

from actionfusion.objectives.aclnet import ACLNetObjective  # noqa: E402
from actionfusion.objectives.aclnet_affinity import confusion_increment  # noqa: E402
from actionfusion.pipeline.official_checkpoints import build_target, get_converter  # noqa: E402
from actionfusion.pipeline.official_checkpoints.aclnet_converters import ACLNET_PROJECTIONS  # noqa: E402

NUM_CLASSES, QUEUE = 60, 512


def model_parity(args: argparse.Namespace) -> Dict[str, object]:
    converter = get_converter("aclnet")
    torch.manual_seed(0)
    np.random.seed(0)  # upstream draws its random graphs with numpy
    official32 = official_acl.OfficialACLNet(args.official_root, NUM_CLASSES)
    if args.write_layouts is not None:
        parity.write_layout(args.write_layouts / "aclnet.json", "aclnet", converter.source, official32.state_dict())
    aliased = parity.shared_parameter_storage(build_target(converter, NUM_CLASSES))
    official = official32.double()
    parity.perturb_parameters(official, args.perturb)
    ours = build_target(converter, NUM_CLASSES).double()
    ours.load_state_dict(converter.to_ours(official.state_dict()))
    x = torch.randn(args.batch, 2, args.frames, 25, 3, dtype=torch.float64)
    y = torch.arange(args.batch) % NUM_CLASSES
    official.eval(), ours.eval()
    with torch.no_grad():
        logits_official, topology_official = official(x)
        feats = ours.forward_features(x)
        eval_diff = parity.compare_maps({"logits": ours.forward_head(feats), "topology": feats.aux["topology"]},
                                        {"logits": logits_official, "topology": topology_official})
    official.train(), ours.train()
    loss_ours = F.cross_entropy(ours(x), y)
    loss_official = F.cross_entropy(official(x)[0], y)
    loss_ours.backward(), loss_official.backward()
    grads_official = {k: p.grad for k, p in official.named_parameters()
                      if p.grad is not None and not converter.is_discarded(k)}
    grads_ours = {k: p.grad for k, p in ours.named_parameters() if p.grad is not None}
    buffers_official = {k: v for k, v in official.state_dict().items() if not converter.is_discarded(k)}
    parts = {
        "eval_logits_topology": eval_diff,
        "train_loss": parity.compare_maps({"loss": loss_ours.detach()}, {"loss": loss_official.detach()}),
        "grads": parity.compare_maps(grads_ours, converter.to_ours(grads_official)),
        "state_after": parity.compare_maps(dict(ours.state_dict()), converter.to_ours(buffers_official)),
    }
    max_rel = max(float(p["max_rel"]) for p in parts.values())  # type: ignore[arg-type]
    return {"model": "aclnet", "official": converter.source, "dtype": "float64", "batch": args.batch,
            "frames": args.frames, "perturb": args.perturb, "loss": "cross_entropy(logits)",
            **{k: parity._summary(v) for k, v in parts.items()},
            "params_ours": sum(p.numel() for p in ours.parameters()),
            "params_official_backbone_and_classifier": sum(p.numel() for k, p in official.named_parameters()
                                                           if not converter.is_discarded(k)),
            "max_rel": float(f"{max_rel:.3e}"), "target_rel": parity.TARGET_REL,
            "ours_shared_parameter_storage": [f"{g[0]} .. {g[-1]} ({len(g)})" for g in aliased],
            "pass": bool(max_rel <= parity.TARGET_REL and not aliased)}


def matched_pair(root: Path, perturb: float, seed: int = 0,  # type: ignore[no-untyped-def]
                 dtype: torch.dtype = torch.float32):
    """(our model, our objective, official) in ``dtype`` with one set of weights and one loss state:
    the official model perturbed, copied into ours; our projection heads, prototypes, the
    structured bank and a random full queue copied into the official head. Our objective is at
    epoch 31 (superclasses computed), the official about to compute them on its next call."""
    converter = get_converter("aclnet")
    torch.manual_seed(seed)
    np.random.seed(seed)  # upstream draws its random graphs with numpy
    official = official_acl.OfficialACLNet(root, NUM_CLASSES).to(dtype)
    parity.perturb_parameters(official, perturb)
    ours = build_target(converter, NUM_CLASSES).to(dtype)
    ours.load_state_dict(converter.to_ours(official.state_dict()))
    objective = ACLNetObjective(num_classes=NUM_CLASSES, queue_size=QUEUE).to(dtype)
    heads = ACLNET_PROJECTIONS.to_ours({k: v for k, v in official.state_dict().items() if converter.is_discarded(k)})
    objective.load_state_dict({**objective.state_dict(), **heads})
    bank = official_acl.structured_bank(NUM_CLASSES)
    queue = F.normalize(torch.randn(QUEUE, 256, dtype=dtype), dim=1)
    queue_labels = torch.randint(0, NUM_CLASSES, (QUEUE,))
    with torch.no_grad():
        objective.confusion_bank.copy_(bank)
        objective.queue_features.copy_(queue), objective.queue_labels.copy_(queue_labels)
        objective.queue_filled.fill_(QUEUE), objective.queue_ptr.zero_()
    objective.start_epoch(objective.bank_start_epoch)  # 0-based: the epoch after the bank's first
    return ours, objective, official, bank, queue, queue_labels


def loss_parity(args: argparse.Namespace) -> Dict[str, object]:
    ours, objective, official, bank, queue, queue_labels = matched_pair(args.official_root, args.perturb,
                                                                        dtype=torch.float64)
    official_acl.onehot_in_model_dtype(official)
    official_acl.match_official_state(official, objective.prototypes, bank, queue, queue_labels, count=False)
    x = torch.randn(args.batch, 2, args.frames, 25, 3, dtype=torch.float64)
    y = torch.randint(0, NUM_CLASSES, (args.batch,))
    ours.train(), official.train()
    out = objective(ours, {"skeleton": x, "label": y})
    ref = official_acl.official_loss_parts(official, x, y)
    out.loss.backward(), ref["loss"].backward()
    converter = get_converter("aclnet")
    grads_official = {k: p.grad for k, p in official.named_parameters() if p.grad is not None}
    model_grads = converter.to_ours({k: v for k, v in grads_official.items() if not converter.is_discarded(k)})
    head_grads = ACLNET_PROJECTIONS.to_ours({k: v for k, v in grads_official.items() if converter.is_discarded(k)})
    grads_ours = {**{f"model.{k}": p.grad for k, p in ours.named_parameters() if p.grad is not None},
                  **{f"objective.{k}": p.grad for k, p in objective.named_parameters() if p.grad is not None}}
    grads_ref = {**{f"model.{k}": v for k, v in model_grads.items()},
                 **{f"objective.{k}": v for k, v in head_grads.items()}}
    terms_ours = {"ce": out.losses["ce"], "inter": out.losses["inter"], "intra": out.losses["intra"],
                  "loss": out.loss.detach()}
    terms_ref = {k: ref[k].detach().reshape(()) for k in terms_ours}
    parts = {
        "terms": parity.compare_maps(terms_ours, terms_ref),
        "grads": parity.compare_maps(grads_ours, grads_ref),
        "prototypes_after": parity.compare_maps({"prototypes": objective.prototypes},
                                                {"prototypes": official.cls_head.inter_loss.avg_f.detach().T}),
    }
    # the bank's counting rules on a batch with many confusions: upstream's get_mask, exactly
    inter = official.cls_head.inter_loss
    inter.current_epoch = inter.start_epoch
    for i in range(NUM_CLASSES):
        inter.Neighborhood_Bank[i] = dict.fromkeys(range(NUM_CLASSES), 0)
    labels = torch.randint(0, 6, (32,))
    logits = torch.randn(32, NUM_CLASSES, dtype=torch.float64)
    logits[:, :6] += 3.0  # predictions among the same six classes: pairs of both rules
    inter.get_mask(labels, logits)
    counted = torch.tensor([[inter.Neighborhood_Bank[i][j] for j in range(NUM_CLASSES)] for i in range(NUM_CLASSES)])
    increment = confusion_increment(labels, logits.argmax(dim=1), NUM_CLASSES)
    max_rel = max(float(p["max_rel"]) for p in parts.values())  # type: ignore[arg-type]
    sizes = (objective.affinity > 0).sum(dim=1)
    return {"model": "aclnet_loss", "dtype": "float64", "batch": args.batch, "frames": args.frames,
            "queue": QUEUE, "terms_ours": {k: round(float(v), 6) for k, v in terms_ours.items()},
            "terms_official": {k: round(float(v), 6) for k, v in terms_ref.items()},
            "superclass_sizes": {"min": int(sizes.min()), "max": int(sizes.max()),
                                 "per_temperature": {str(t): int((objective.class_temperature == t).sum())
                                                     for t in objective.temperatures}},
            **{k: parity._summary(v) for k, v in parts.items()},
            "bank_increment_equal": bool(torch.equal(counted, increment)), "bank_increment_total": int(counted.sum()),
            "max_rel": float(f"{max_rel:.3e}"), "target_rel": parity.TARGET_REL,
            "pass": bool(max_rel <= parity.TARGET_REL and torch.equal(counted, increment))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-root", type=Path, default=Path("/tmp/official"))
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--perturb", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write-layouts", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        official_acl.official_modules(args.official_root)
    except FileNotFoundError as err:
        print(json.dumps({"model": "aclnet", "skipped": str(err)}), flush=True)
        return
    print(json.dumps(model_parity(args)), flush=True)
    print(json.dumps(loss_parity(args)), flush=True)


if __name__ == "__main__":
    main()
