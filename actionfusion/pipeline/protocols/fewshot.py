"""N-way K-shot episodes on held-out (novel) classes, scored by a nearest-prototype classifier.

STARS reports few-shot results (pretrain on NTU60 X-Sub, evaluate on the NTU120 classes that
are not in NTU60) without publishing an episode protocol, so this module defines one:

- **Episode.** From the novel ``classes``, draw ``n_way`` distinct classes uniformly; from
  each, draw ``k_shot + n_query`` distinct samples uniformly: the first ``k_shot`` are the
  support, the other ``n_query`` the queries. Episodes are drawn one after another from
  ``numpy.random.default_rng(seed)``, so a seed fixes the whole list. Every novel class must
  hold at least ``k_shot + n_query`` samples (checked up front, never silently skipped).
- **Classifier.** Frozen features, L2-normalised; the prototype of a class is the mean of its
  normalised support features; a query goes to the prototype of highest cosine similarity
  (equal similarities: the lowest class id).
- **Score.** Top-1 accuracy per episode; report the mean over episodes, the sample standard
  deviation and the 95% confidence half-width ``1.96 * std / sqrt(episodes)`` (the usual
  few-shot report). With a single episode std and ci95 are ``nan``.

Suggested settings: 5-way 1-shot and 5-way 5-shot, 15 queries a class, 1,000 episodes.
The NTU RGB+D 120 one-shot protocol is one fixed 20-way 1-shot episode:
:func:`actionfusion.datasets.ntu.one_shot.one_shot_episode`.
"""

from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[int]]


class Episode(NamedTuple):
    """Indices into the evaluated samples: support int64 [n_way * k_shot], query int64 [n_way * n_query].

    Both are grouped by class in the order the classes were drawn.
    """

    support: np.ndarray
    query: np.ndarray


def _as_labels(labels: ArrayLike) -> np.ndarray:
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class ids [N], got {labels.dtype} {labels.shape}")
    return labels


def sample_episodes(
    labels: ArrayLike,
    classes: Sequence[int],
    n_way: int,
    k_shot: int,
    n_query: int,
    num_episodes: int,
    seed: int,
) -> List[Episode]:
    """Draw ``num_episodes`` N-way K-shot episodes over the novel ``classes`` (protocol above).

    labels: int [N], the class of each evaluated sample (indices refer to it).
    Returns a list of :class:`Episode` (support [n_way * k_shot], query [n_way * n_query]).
    """
    labels = _as_labels(labels)
    classes = sorted({int(c) for c in classes})
    if min(n_way, k_shot, n_query, num_episodes) < 1:
        raise ValueError(f"n_way, k_shot, n_query and num_episodes must be >= 1, got "
                         f"{n_way}, {k_shot}, {n_query}, {num_episodes}")
    if n_way > len(classes):
        raise ValueError(f"n_way={n_way} exceeds the {len(classes)} novel classes; lower n_way")
    members = {c: np.flatnonzero(labels == c) for c in classes}
    short = [c for c in classes if len(members[c]) < k_shot + n_query]
    if short:
        raise ValueError(f"classes {short} hold fewer than k_shot + n_query = {k_shot + n_query} samples; "
                         "lower n_query or drop those classes")
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(num_episodes):
        way = rng.choice(len(classes), size=n_way, replace=False)
        draws = [rng.choice(members[classes[w]], size=k_shot + n_query, replace=False) for w in way]
        episodes.append(Episode(support=np.concatenate([d[:k_shot] for d in draws]).astype(np.int64),
                                query=np.concatenate([d[k_shot:] for d in draws]).astype(np.int64)))
    return episodes


def prototype_predict(support_features: torch.Tensor, support_labels: torch.Tensor,
                      query_features: torch.Tensor) -> torch.Tensor:
    """Nearest-prototype cosine classifier.

    support_features [S, D] with int labels [S]; query_features [Q, D]. The prototype of a class
    is the mean of its L2-normalised support features. Returns int64 [Q], the class of the most
    cosine-similar prototype (ties: the lowest class id).
    """
    classes = torch.unique(support_labels)  # ascending
    support_unit = F.normalize(support_features, dim=1)
    prototypes = torch.stack([support_unit[support_labels == c].mean(dim=0) for c in classes])  # [W, D]
    similarities = F.normalize(query_features, dim=1) @ F.normalize(prototypes, dim=1).T  # [Q, W]
    return classes[similarities.argmax(dim=1)]


def evaluate_episodes(
    features: Union[np.ndarray, torch.Tensor],
    labels: ArrayLike,
    episodes: Sequence[Tuple[np.ndarray, np.ndarray]],
) -> Dict[str, object]:
    """Score every episode with :func:`prototype_predict` and summarise.

    features: float [N, D], labels: int [N], episodes: (support indices, query indices) pairs.
    Returns {"accuracy_mean", "accuracy_std", "ci95": fractions in [0, 1], "episodes": count,
    "episode_accuracies": list of the per-episode accuracies}.
    """
    features = torch.as_tensor(features)
    labels_np = _as_labels(labels)
    if features.ndim != 2 or not features.is_floating_point() or features.shape[0] != len(labels_np):
        raise ValueError(f"features must be float [N, D] with N = {len(labels_np)} labels, got "
                         f"{features.dtype} {tuple(features.shape)}")
    if features.dtype in (torch.float16, torch.bfloat16):
        features = features.float()
    if not episodes:
        raise ValueError("no episodes to evaluate; draw them with sample_episodes")
    labels_t = torch.as_tensor(labels_np, dtype=torch.long, device=features.device)
    accuracies = []
    for support, query in episodes:
        support = torch.as_tensor(np.asarray(support), dtype=torch.long, device=features.device)
        query = torch.as_tensor(np.asarray(query), dtype=torch.long, device=features.device)
        if len(support) == 0 or len(query) == 0:
            raise ValueError("an episode has an empty support or query set; every episode needs both")
        foreign = set(labels_t[query].tolist()) - set(labels_t[support].tolist())
        if foreign:
            raise ValueError(f"query classes {sorted(foreign)} have no support sample; build episodes "
                             "whose queries come from the support classes")
        predicted = prototype_predict(features[support], labels_t[support], features[query])
        accuracies.append(float((predicted == labels_t[query]).double().mean()))
    count = len(accuracies)
    mean = float(np.mean(accuracies))
    std = float(np.std(accuracies, ddof=1)) if count > 1 else float("nan")
    return {"accuracy_mean": mean, "accuracy_std": std, "ci95": 1.96 * std / math.sqrt(count),
            "episodes": count, "episode_accuracies": accuracies}
