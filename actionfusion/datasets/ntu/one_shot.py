"""The NTU RGB+D 120 one-shot recognition protocol.

Source: the official README, section "Evaluation Protocol of One-Shot Action Recognition on
NTU RGB+D 120" (shahroudy/NTURGB-D@ac2ebc8), which defines the protocol of the dataset's
paper (Liu et al., "NTU RGB+D 120", TPAMI 2020, arXiv:1905.04757):

- evaluation set: 20 novel classes A1, A7, A13, ..., A115 (every 6th class);
- one designated exemplar per novel class (the README's numbered list, reproduced verbatim in
  ``ONE_SHOT_EXEMPLARS``: S001C003P008R001A001 ... S001C003P008R001A055 for the NTU60 classes,
  S018C003P008R001A061 ... S018C003P008R001A115 for the others);
- every other sample of the 20 novel classes is a test sample;
- auxiliary set: the remaining 100 classes, all samples usable for learning.

The lists are kept with the other NTU constants (``constants.py``, checked there against the
README); this module names them for the protocol and builds its single episode.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from .constants import NUM_CLASSES_NTU120, ONE_SHOT_EVAL_ACTIONS, ONE_SHOT_EXEMPLARS
from .names import parse_sample_name

NOVEL_ACTIONS: tuple[int, ...] = ONE_SHOT_EVAL_ACTIONS
"""The 20 novel (evaluation) classes as 1-based action numbers: 1, 7, ..., 115."""
NOVEL_LABELS: tuple[int, ...] = tuple(a - 1 for a in NOVEL_ACTIONS)
"""The same classes as 0-based labels."""
AUXILIARY_ACTIONS: tuple[int, ...] = tuple(a for a in range(1, NUM_CLASSES_NTU120 + 1) if a not in NOVEL_ACTIONS)
"""The 100 auxiliary (training) classes, 1-based."""
EXEMPLARS: tuple[str, ...] = ONE_SHOT_EXEMPLARS
"""The 20 designated exemplar samples, in the order of ``NOVEL_ACTIONS``."""


def one_shot_episode(
    sample_names: Sequence[str],
    labels: Optional[Sequence[int]] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """The official 20-way 1-shot evaluation over the given samples.

    sample_names: [N] NTU names (``SsssCcccPpppRrrrAaaa``, suffixes allowed); labels: 0-based
    int [N], read from the names when omitted. Returns (support int64 [20]: the index of each
    exemplar, in ``NOVEL_ACTIONS`` order; query int64 [Q]: every other sample of the 20 novel
    classes, ascending), a pair that ``pipeline.protocols.fewshot.evaluate_episodes`` takes.
    """
    names = [str(parse_sample_name(n)) for n in sample_names]
    if labels is None:
        labels = [parse_sample_name(n).label for n in names]
    labels = np.asarray(labels)
    if labels.shape != (len(names),):
        raise ValueError(f"{len(names)} sample names but labels of shape {labels.shape}; pass one label per sample")
    position = {name: i for i, name in enumerate(names)}
    missing = [e for e in EXEMPLARS if e not in position]
    if missing:
        raise ValueError(f"{len(missing)} one-shot exemplars are not among the samples (first: {missing[0]}); "
                         "evaluate on all NTU120 samples of the 20 novel classes")
    support = np.array([position[e] for e in EXEMPLARS], dtype=np.int64)
    wrong = [e for e, i, want in zip(EXEMPLARS, support, NOVEL_LABELS) if labels[i] != want]
    if wrong:
        raise ValueError(f"exemplar {wrong[0]} carries label {labels[position[wrong[0]]]}, not its action's; "
                         "pass 0-based labels (action - 1)")
    is_query = np.isin(labels, NOVEL_LABELS)
    is_query[support] = False
    return support, np.flatnonzero(is_query).astype(np.int64)
