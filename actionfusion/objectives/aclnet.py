"""ACLNet's objective: cross-entropy + 0.1 inter-class affinity loss + 0.1 intra-class margin loss.

Spec: shared/specs/robust-longtail.md (ACLNet); upstream firework8/ACLNet@0fab868
(``aclnet/models/heads/base.py`` and the two ``*_Affinitive_Contrastive_Loss.py``), read to check
every detail and written anew. The model must give the topology feature ``aux["topology"]``
[B, V * V] (the ``aclnet`` model does, :mod:`actionfusion.modalities.skeleton.aclnet`).

Per batch (labels y, predictions y_hat = argmax of the logits):

- ``ce``: cross-entropy of the logits (``label_smoothing`` optional, 0 upstream).
- Two projection heads, Linear(V^2 -> 256) each, one per contrastive loss (upstream's two
  ``cl_fc``), read the topology feature.
- Prototypes mu_c [C, 256]: EMA (momentum 0.9) of the batch mean of the first head's outputs over
  the correctly classified samples of class c; classes absent from those keep theirs. They start
  from N(0, 1) (upstream's ``torch.randn``), and the current batch's mean keeps its gradient in
  this step's loss (upstream does the same; ``prototype_gradient=False`` detaches it).
- Confusion bank B [C, C], counted from epoch ``bank_start_epoch`` (1-based, 30 upstream) on by
  :func:`~.aclnet_affinity.confusion_increment` and never reset; summed over processes under DDP,
  so every rank (and the checkpoint, written by rank 0) holds the whole bank.
- Superclasses: at the start of every epoch after ``bank_start_epoch`` (:meth:`start_epoch`, which
  the engine calls before each training epoch; upstream advances its epoch counter in validation,
  a bug that ties the schedule to how often one validates), N_i = top-10 of row B[i], affinity
  s_ij (:func:`~.aclnet_affinity.class_affinity`), S_i = {j : s_ij > 0}, tau_i from |S_i|.
- ``inter``: from epoch ``bank_start_epoch + 1`` (upstream: the first epoch after the one whose
  counts it uses), :func:`~.aclnet_affinity.inter_class_affinity_loss`; 0 before.
- ``intra``: a FIFO queue of the second head's normalised outputs (``queue_size``: 512 for NTU60 /
  PKU-MMD, 1024 for NTU120 / FineGYM) and their labels; once full, the current batch is the
  anchors against the queue (its own entries carrying gradient):
  :func:`~.aclnet_affinity.intra_class_margin_loss`, temperature 0.1, margin 0.1; 0 until full.

Metrics: ``top1``, ``superclass_size`` (mean |S_{y_i}| of the batch, 0 before superclasses
exist), ``bank_total`` (the bank's sum). Each epoch with superclasses logs the bank's total and the
superclasses through the logger ``actionfusion.engine.aclnet`` (a child of the engine's logger,
so the lines land in the work dir's ``log.txt``).

Differences from upstream, each deliberate: the class itself is listed once among its candidates
when y in S_y (upstream then repeats mu_y, which happens while a bank row has fewer than 10
non-zero counts); superclasses are recomputed before the epoch's first batch (upstream after
counting that batch); the margin loss has no 1e-6 inside its log (see
:func:`~.aclnet_affinity.intra_class_margin_loss`); a batch larger than the queue is refused.

Why the projection heads live here and not in the model: they are used only by the two training
losses. The engine writes ``best.safetensors`` from the model alone, so it stays a clean inference
model (backbone + classifier, loadable by ``evaluate`` and ``extract-features`` with no ACLNet
code path), while the epoch checkpoints' ``objective.safetensors`` keep the heads, prototypes,
bank and queue for an exact resume. Official checkpoints' ``cls_head.*_loss.cl_fc`` weights
convert into this objective (``actionfusion.pipeline.official_checkpoints.aclnet_converters``).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from .aclnet_affinity import (
    class_affinity,
    confusion_increment,
    dynamic_temperature,
    inter_class_affinity_loss,
    intra_class_margin_loss,
)
from .base import Objective, ObjectiveOutput, register_objective

LOG = logging.getLogger("actionfusion.engine.aclnet")
TOPOLOGY_KEY = "topology"


def index_ranges(indices: Sequence[int]) -> str:
    """Sorted class indices as ranges: ``[0, 1, 2, 5, 7, 8]`` -> ``"0-2,5,7-8"`` (``"-"`` when empty)."""
    parts, start, previous = [], None, None
    for i in list(indices) + [None]:
        if start is not None and (i is None or i != previous + 1):
            parts.append(str(start) if previous == start else f"{start}-{previous}")
            start = None
        if start is None:
            start = i
        previous = i
    return ",".join(parts) or "-"


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the processes of an initialised group (itself otherwise)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


@register_objective("aclnet")
class ACLNetObjective(Objective):
    """CE + ``inter_weight`` L_inter + ``intra_weight`` L_intra (see the module docstring).

    Args:
        num_classes: C; None takes the model's ``num_classes`` in :meth:`attach`.
        topology_dim: V^2 of the model's topology feature (625 for 25 joints).
        projection_dim: the projection heads' width (256).
        inter_weight, intra_weight: the two losses' weights (0.1, 0.1).
        label_smoothing: of the cross-entropy (0).
        prototype_momentum: EMA momentum of the prototypes (0.9).
        prototype_gradient: the current batch's contribution to the prototypes keeps its gradient.
        bank_start_epoch: 1-based epoch from which the bank counts (30); superclasses and L_inter
            start the epoch after.
        neighbours: |N_i| (10). overlap_threshold: the overlap term needs more shared neighbours than this (4).
        neighbour_affinity: the affinity of a neighbour (0.5).
        confused_neighbours_only: N_i keeps only classes with a positive count (our option, for label
            spaces with empty classes; False: upstream's top-10 filled with zero-count classes).
        temperatures, temperature_bounds: tau per superclass size (0.1 / 0.5 / 1.0 at <= 10 / <= 20 / more).
        queue_size: entries of the intra-class queue (512; 1024 for NTU120).
        intra_temperature: of the margin loss's similarities (0.1). margin: epsilon (0.1).
    """

    # The inter head gets no gradient before the superclasses exist, the intra head none until the
    # queue is full: DistributedDataParallel must not wait for them.
    ddp_find_unused_parameters = True

    def __init__(
        self,
        num_classes: Optional[int] = None,
        topology_dim: int = 625,
        projection_dim: int = 256,
        inter_weight: float = 0.1,
        intra_weight: float = 0.1,
        label_smoothing: float = 0.0,
        prototype_momentum: float = 0.9,
        prototype_gradient: bool = True,
        bank_start_epoch: int = 30,
        neighbours: int = 10,
        overlap_threshold: int = 4,
        neighbour_affinity: float = 0.5,
        confused_neighbours_only: bool = False,
        temperatures: Sequence[float] = (0.1, 0.5, 1.0),
        temperature_bounds: Sequence[int] = (10, 20),
        queue_size: int = 512,
        intra_temperature: float = 0.1,
        margin: float = 0.1,
    ) -> None:
        super().__init__()
        if bank_start_epoch < 1:
            raise UsageError(f"objective aclnet: bank_start_epoch is 1-based, got {bank_start_epoch}; give 1 or more")
        if queue_size < 1 or neighbours < 1:
            raise UsageError(f"objective aclnet: queue_size and neighbours must be >= 1, got {queue_size}, "
                             f"{neighbours}")
        if len(temperatures) != len(temperature_bounds) + 1:
            raise UsageError(f"objective aclnet: {len(temperatures)} temperatures for {len(temperature_bounds)} "
                             "bounds; give one more temperature than bounds")
        self.topology_dim = int(topology_dim)
        self.weights = (float(inter_weight), float(intra_weight))
        self.label_smoothing = float(label_smoothing)
        self.momentum = float(prototype_momentum)
        self.prototype_gradient = bool(prototype_gradient)
        self.bank_start_epoch = int(bank_start_epoch)
        self.neighbours, self.overlap_threshold = int(neighbours), int(overlap_threshold)
        self.neighbour_affinity = float(neighbour_affinity)
        self.confused_neighbours_only = bool(confused_neighbours_only)
        self.temperatures = tuple(float(t) for t in temperatures)
        self.temperature_bounds = tuple(int(b) for b in temperature_bounds)
        self.queue_size = int(queue_size)
        self.intra_temperature, self.margin = float(intra_temperature), float(margin)
        self.inter_projection = nn.Linear(self.topology_dim, projection_dim)
        self.intra_projection = nn.Linear(self.topology_dim, projection_dim)
        self.register_buffer("queue_features", torch.zeros(self.queue_size, projection_dim))
        self.register_buffer("queue_labels", torch.full((self.queue_size,), -1, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))
        self.register_buffer("queue_filled", torch.zeros(1, dtype=torch.long))
        self.num_classes: Optional[int] = None
        if num_classes is not None:
            self._build_class_state(int(num_classes))

    def _build_class_state(self, num_classes: int) -> None:
        """Prototypes [C, D] ~ N(0, 1), the bank [C, C], affinities [C, C] and temperatures [C]."""
        if num_classes < 2:
            raise UsageError(f"objective aclnet needs at least 2 classes, got {num_classes}")
        self.num_classes = num_classes
        dim = self.inter_projection.out_features
        self.register_buffer("prototypes", torch.randn(num_classes, dim))
        self.register_buffer("confusion_bank", torch.zeros(num_classes, num_classes, dtype=torch.long))
        self.register_buffer("affinity", torch.zeros(num_classes, num_classes))
        self.register_buffer("class_temperature", torch.full((num_classes,), self.temperatures[0]))

    def attach(self, model: nn.Module) -> None:
        """Take C from the model (or check it), and check the topology width."""
        classes = getattr(model, "num_classes", None)
        if self.num_classes is None:
            if not isinstance(classes, int) or classes < 2:
                raise UsageError(f"objective aclnet: the model has no classifier (num_classes {classes!r}); "
                                 "train it with model.num_classes >= 2")
            self._build_class_state(classes)
        elif classes != self.num_classes:
            raise UsageError(f"objective aclnet was built for {self.num_classes} classes but the model has {classes}; "
                             "drop objective.kwargs.num_classes or make them equal")
        width = getattr(model, "topology_dim", self.topology_dim)
        if width != self.topology_dim:
            raise UsageError(f"objective aclnet: the model's topology feature has {width} values, the objective's "
                             f"heads read {self.topology_dim}; set objective.kwargs.topology_dim: {width}")

    # -- the epoch schedule ------------------------------------------------------------------

    def counts_confusions(self) -> bool:
        """Whether the current epoch adds to the bank (1-based epoch >= ``bank_start_epoch``)."""
        return self.epoch + 1 >= self.bank_start_epoch

    def uses_superclasses(self) -> bool:
        """Whether the current epoch has superclasses and L_inter (1-based epoch > ``bank_start_epoch``)."""
        return self.epoch + 1 > self.bank_start_epoch

    def start_epoch(self, epoch: int) -> None:
        """Record the 0-based ``epoch``; after ``bank_start_epoch`` recompute the superclasses from the
        bank and log them."""
        super().start_epoch(epoch)
        if self.num_classes is None or not self.uses_superclasses():
            if self.num_classes is not None and self.epoch + 1 == self.bank_start_epoch:
                LOG.info("aclnet epoch %d: the confusion bank starts counting", self.epoch + 1)
            return
        self.update_superclasses()
        self.log_superclasses()

    def update_superclasses(self) -> None:
        """Affinities s_ij and temperatures tau_i from the bank as it stands."""
        affinity = class_affinity(self.confusion_bank, self.neighbours, self.overlap_threshold,
                                  self.neighbour_affinity, self.confused_neighbours_only)
        self.affinity.copy_(affinity)
        sizes = (affinity > 0).sum(dim=1)
        self.class_temperature.copy_(dynamic_temperature(sizes, self.temperatures, self.temperature_bounds,
                                                         self.class_temperature.dtype))

    def log_superclasses(self) -> None:
        """One summary line (bank total, superclass sizes, temperatures) and one line of the superclasses."""
        member = (self.affinity > 0).cpu()
        sizes = member.sum(dim=1).float()
        temps = ", ".join(f"tau {t:g}: {int((self.class_temperature.cpu() == t).sum())}" for t in self.temperatures)
        LOG.info("aclnet epoch %d: confusion bank total %d (counting since epoch %d); superclass size mean %.1f, "
                 "min %d, max %d; classes per temperature: %s", self.epoch + 1, int(self.confusion_bank.sum()),
                 self.bank_start_epoch, float(sizes.mean()), int(sizes.min()), int(sizes.max()), temps)
        listed = "; ".join(f"{i}: {index_ranges(member[i].nonzero().flatten().tolist())}"
                           for i in range(member.shape[0]))
        LOG.info("aclnet epoch %d superclasses: %s", self.epoch + 1, listed)

    # -- state updates -----------------------------------------------------------------------

    def count_confusions(self, labels: torch.Tensor, predictions: torch.Tensor) -> None:
        """Add one batch to the bank (summed over processes under DDP)."""
        assert self.num_classes is not None
        increment = confusion_increment(labels, predictions, self.num_classes)
        self.confusion_bank += _all_reduce_sum(increment)

    def update_prototypes(self, features: torch.Tensor, labels: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        """EMA of the correctly classified samples' class means; returns the new prototypes [C, D]
        (with the batch's gradient when ``prototype_gradient``) and stores them detached."""
        assert self.num_classes is not None
        members = F.one_hot(labels, self.num_classes).to(features.dtype) * correct[:, None].to(features.dtype)
        counts = members.sum(dim=0)  # [C]
        means = members.T @ features / counts.clamp_min(1.0)[:, None]
        old = self.prototypes.to(features.dtype)
        new = torch.where((counts > 0)[:, None], self.momentum * old + (1.0 - self.momentum) * means, old)
        with torch.no_grad():
            self.prototypes.copy_(new)
        return new if self.prototype_gradient else new.detach()

    def enqueue(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Write a batch into the FIFO queue; returns the slots written, int64 [B]."""
        batch = features.shape[0]
        if batch > self.queue_size:
            raise UsageError(f"objective aclnet: a batch of {batch} does not fit the queue of {self.queue_size}; "
                             "raise objective.kwargs.queue_size or lower data.batch_size")
        slots = (self.queue_ptr + torch.arange(batch, device=labels.device)) % self.queue_size
        with torch.no_grad():
            self.queue_features[slots] = features.detach().to(self.queue_features.dtype)
            self.queue_labels[slots] = labels
            self.queue_ptr.copy_((self.queue_ptr + batch) % self.queue_size)
            self.queue_filled.clamp_(max=self.queue_size - batch).add_(batch)
        return slots

    # -- the losses --------------------------------------------------------------------------

    def intra_loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Enqueue the batch; once the queue is full, the margin loss of the batch against it."""
        slots = self.enqueue(features, labels)
        if int(self.queue_filled) < self.queue_size:
            return features.new_zeros(())
        older = torch.ones(self.queue_size, dtype=torch.bool, device=labels.device)
        older[slots] = False
        contrast = torch.cat([self.queue_features[older].to(features.dtype), features])
        contrast_labels = torch.cat([self.queue_labels[older], labels])
        start = contrast.shape[0] - features.shape[0]
        self_index = torch.arange(start, contrast.shape[0], device=labels.device)
        return intra_class_margin_loss(features, labels, contrast, contrast_labels, self_index,
                                       self.intra_temperature, self.margin)

    def forward(self, model: nn.Module, batch: Mapping[str, Any]) -> ObjectiveOutput:
        """batch: the model's inputs + ``label`` int64 [B] -> loss, {ce, inter, intra}, metrics."""
        if self.num_classes is None:
            raise UsageError("objective aclnet: attach(model) was not called, so the number of classes is unknown; "
                             "give objective.kwargs.num_classes or train through the engine")
        x = self.inputs(model, batch)
        y = batch["label"].to(self.device_of(model), non_blocking=True)
        feats = model.forward_features(x)
        topology = (feats.aux or {}).get(TOPOLOGY_KEY)
        if topology is None:
            raise UsageError(f"objective aclnet: {type(model).__name__} gives no aux['topology'] feature; "
                             "train the aclnet model with it")
        logits = model.forward_head(feats)
        ce = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
        predictions = logits.detach().argmax(dim=1)
        correct = predictions == y

        inter_features = self.inter_projection(topology).float()
        prototypes = self.update_prototypes(inter_features, y, correct)
        if self.counts_confusions():
            self.count_confusions(y, predictions)
        superclass = self.affinity > 0
        if self.uses_superclasses():
            inter = inter_class_affinity_loss(inter_features, prototypes, y, superclass, self.class_temperature)
            superclass_size = superclass.sum(dim=1)[y].float().mean()
        else:
            inter = ce.new_zeros(())
            superclass_size = ce.new_zeros(())
        intra = self.intra_loss(F.normalize(self.intra_projection(topology).float(), dim=1), y)

        loss = ce + self.weights[0] * inter + self.weights[1] * intra
        metrics = {"top1": correct.float().mean(), "superclass_size": superclass_size,
                   "bank_total": self.confusion_bank.sum().float()}
        return ObjectiveOutput(loss=loss, losses={"ce": ce.detach(), "inter": inter.detach(), "intra": intra.detach()},
                               metrics=metrics, batch_size=int(y.shape[0]))
