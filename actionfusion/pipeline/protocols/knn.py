"""Cosine k-nearest-neighbour classification of frozen features (the SSL kNN protocol).

The protocol of STARS (``knn_eval.py`` of TaatiTeam/STARS): features of the training split
form the bank, features of the test split are the queries, both L2-normalised, and each query
takes the class voted by its ``k`` most cosine-similar bank features, for k in {1, 2, 5, 10}.
STARS calls scikit-learn's ``KNeighborsClassifier(metric="cosine")`` with its default uniform
weights, so the default vote here is the same plain majority.

The rule, exactly:

- **Similarity.** ``s(q, b) = <q / |q|, b / |b|>`` (a zero vector stays zero, so its
  similarity to everything is 0), computed in the features' floating dtype (half precision is
  computed in float32).
- **Neighbours.** The bank items ordered by similarity, highest first; equal similarities are
  ordered by bank index, lowest first. The ``k`` neighbours are the first ``k`` of that order,
  so which of several equally similar items is a neighbour never depends on the device or the
  top-k kernel. (scikit-learn leaves this choice unspecified.)
- **Vote.** ``vote="majority"``: each neighbour adds 1 to its class. ``vote="weighted"``: each
  neighbour adds ``exp(s / temperature)`` to its class (the InstDisc rule of STARS' training
  monitor, ``processor/knn_monitor.py``, there with temperature 0.1).
- **Vote ties.** The class with the most votes; among classes tied on votes, the lowest class
  index (as scikit-learn's ``predict`` does: ``argmax`` over per-class votes returns the first).

Memory: queries are processed ``chunk_size`` at a time, so only a ``[chunk_size, N]`` block of
similarities exists at once; the top ``max(ks)`` neighbours are found once per chunk and every
smaller ``k`` reads a prefix of them.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

DEFAULT_KS: tuple[int, ...] = (1, 2, 5, 10)
"""The k values STARS reports (``--k`` default of its ``knn_eval.py``)."""

VOTES = ("majority", "weighted")


def _check_features(name: str, features: Tensor) -> None:
    if features.ndim != 2:
        raise ValueError(f"{name} must be [num_samples, dim], got shape {tuple(features.shape)}")
    if not features.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got {features.dtype}; convert with .float()")
    if not bool(torch.isfinite(features).all()):
        raise ValueError(f"{name} contains NaN or inf; check the encoder output before the kNN evaluation")


def _check_ks(ks: Sequence[int], bank_size: int) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks:
        raise ValueError("ks is empty; pass at least one k, e.g. ks=(1, 2, 5, 10)")
    if min(ks) < 1 or max(ks) > bank_size:
        raise ValueError(f"every k must lie in [1, bank size {bank_size}], got ks={ks}; drop the larger k")
    return ks


def _compute_dtype(features: Tensor) -> torch.dtype:
    return torch.float32 if features.dtype in (torch.float16, torch.bfloat16) else features.dtype


def nearest_neighbours(similarities: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` most similar bank items of each query row, in the documented order.

    similarities: [M, N]. Returns (values [M, k], bank indices [M, k]): highest similarity
    first, equal similarities by lower bank index first.
    """
    values, indices = similarities.topk(k, dim=1, largest=True, sorted=True)
    # Put the selected items in (similarity desc, index asc) order: sort by index, then a
    # stable sort by similarity keeps equal similarities in index order.
    indices, by_index = indices.sort(dim=1)
    values = values.gather(1, by_index)
    values, by_value = values.sort(dim=1, descending=True, stable=True)
    indices = indices.gather(1, by_value)
    # topk picks an arbitrary subset of items tied with the k-th value; rows where such a tie
    # straddles the cut are redone with a full stable sort (rare outside exact duplicates).
    straddles = (similarities >= values[:, -1:]).sum(dim=1) > k
    if bool(straddles.any()):
        rows = straddles.nonzero().squeeze(1)
        row_values, row_indices = similarities[rows].sort(dim=1, descending=True, stable=True)
        values[rows] = row_values[:, :k]
        indices[rows] = row_indices[:, :k]
    return values, indices


def _vote(neighbour_labels: Tensor, neighbour_similarities: Tensor, num_classes: int, vote: str,
          temperature: float) -> Tensor:
    """neighbour_labels, neighbour_similarities: [M, k] -> predicted class [M] (ties: lowest class)."""
    one_hot = F.one_hot(neighbour_labels, num_classes)  # [M, k, C]
    if vote == "majority":
        scores = one_hot.sum(dim=1)  # integer counts: exact
    else:
        # shifting by the row's best similarity rescales a row's votes alike (same argmax) and
        # keeps exp finite for small temperatures
        best = neighbour_similarities[:, :1]
        weights = torch.exp((neighbour_similarities - best) / temperature)
        scores = (one_hot.to(weights.dtype) * weights.unsqueeze(-1)).sum(dim=1)
    return scores.argmax(dim=1)  # argmax returns the first maximal class


def knn_predict(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    num_classes: Optional[int] = None,
    chunk_size: int = 4096,
    vote: str = "majority",
    temperature: float = 0.1,
) -> Dict[int, Tensor]:
    """Cosine-kNN class predictions of the queries for every k (rule in the module docstring).

    bank: float [N, D] features with labels ``bank_labels`` int [N] in [0, num_classes);
    queries: float [M, D]. ``num_classes`` defaults to ``max(bank_labels) + 1``. ``vote`` is
    ``"majority"`` (STARS / scikit-learn) or ``"weighted"`` (``exp(similarity / temperature)``).
    Runs on the bank's device. Returns {k: int64 [M] predicted classes, on the CPU}.
    """
    _check_features("bank", bank)
    _check_features("queries", queries)
    if queries.shape[1] != bank.shape[1]:
        raise ValueError(f"queries have dim {queries.shape[1]} but the bank has dim {bank.shape[1]}; "
                         "extract both with the same encoder")
    bank_labels = torch.as_tensor(bank_labels)
    if bank_labels.shape != (bank.shape[0],) or bank_labels.is_floating_point():
        raise ValueError(f"bank_labels must be integer [{bank.shape[0]}], got {bank_labels.dtype} "
                         f"{tuple(bank_labels.shape)}")
    if bank.shape[0] == 0:
        raise ValueError("the bank is empty; pass the training-split features as the bank")
    if vote not in VOTES:
        raise ValueError(f"vote must be one of {VOTES}, got {vote!r}")
    if vote == "weighted" and not temperature > 0:
        raise ValueError(f"temperature must be > 0 for the weighted vote, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    ks = _check_ks(ks, bank.shape[0])
    if int(bank_labels.min()) < 0:
        raise ValueError("bank_labels must be >= 0 (0-based class ids)")
    if num_classes is None:
        num_classes = int(bank_labels.max()) + 1
    elif int(bank_labels.max()) >= num_classes:
        raise ValueError(f"bank_labels reach {int(bank_labels.max())} but num_classes={num_classes}; "
                         "pass the dataset's class count")

    device, dtype = bank.device, _compute_dtype(bank)
    bank_unit = F.normalize(bank.to(dtype), dim=1)
    bank_labels = bank_labels.to(device=device, dtype=torch.long)
    max_k = max(ks)
    predictions: Dict[int, list[Tensor]] = {k: [] for k in ks}
    for start in range(0, queries.shape[0], chunk_size):
        chunk = F.normalize(queries[start:start + chunk_size].to(device=device, dtype=dtype), dim=1)
        values, indices = nearest_neighbours(chunk @ bank_unit.T, max_k)  # [c, max_k] each
        labels = bank_labels[indices]
        for k in ks:
            predictions[k].append(_vote(labels[:, :k], values[:, :k], num_classes, vote, temperature).cpu())
    empty = torch.empty(0, dtype=torch.long)
    return {k: torch.cat(parts) if parts else empty for k, parts in predictions.items()}


def knn_accuracy(
    bank: Tensor,
    bank_labels: Tensor,
    queries: Tensor,
    query_labels: Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    num_classes: Optional[int] = None,
    chunk_size: int = 4096,
    vote: str = "majority",
    temperature: float = 0.1,
) -> Dict[int, float]:
    """Top-1 accuracy (a fraction in [0, 1]) of :func:`knn_predict` for every k.

    bank [N, D], bank_labels [N], queries [M, D], query_labels int [M]. Returns {k: accuracy};
    ``nan`` for every k when there are no queries.
    """
    query_labels = torch.as_tensor(query_labels).reshape(-1).cpu().long()
    if query_labels.shape[0] != queries.shape[0]:
        raise ValueError(f"{queries.shape[0]} queries but {query_labels.shape[0]} query labels; "
                         "pass one label per query")
    if num_classes is None:
        num_classes = int(max(int(torch.as_tensor(bank_labels).max()),
                              int(query_labels.max()) if len(query_labels) else 0)) + 1
    predictions = knn_predict(bank, bank_labels, queries, ks, num_classes, chunk_size, vote, temperature)
    if len(query_labels) == 0:
        return {k: float("nan") for k in predictions}
    return {k: float((pred == query_labels).double().mean()) for k, pred in predictions.items()}
