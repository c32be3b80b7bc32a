"""Representation-evaluation protocols on frozen features: kNN, labelled subsets, few-shot, embedding plots.

Pure library code: the ``probe`` command and the engine extract the features and call these.
"""

from .embedding_plot import plot_embedding
from .fewshot import Episode, evaluate_episodes, prototype_predict, sample_episodes
from .knn import DEFAULT_KS, knn_accuracy, knn_predict
from .label_subsets import labelled_subset

__all__ = [
    "DEFAULT_KS",
    "Episode",
    "evaluate_episodes",
    "knn_accuracy",
    "knn_predict",
    "labelled_subset",
    "plot_embedding",
    "prototype_predict",
    "sample_episodes",
]
