"""A 2-D map of frozen features coloured by class (t-SNE or PCA), written as a PNG.

t-SNE (scikit-learn) runs on the features reduced to 50 dimensions by PCA first when they
have more (the speed-up scikit-learn's TSNE documentation advises); its perplexity is
``min(30, (N - 1) / 3)``, so that small N stay valid (t-SNE needs perplexity < N). Fewer than 5
samples get a PCA map (or centred raw coordinates) instead: t-SNE has nothing to fit there,
but a plot is still written.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from ...io import atomic_write_bytes

PCA_DIMS_BEFORE_TSNE = 50
DEFAULT_PERPLEXITY = 30.0
MIN_SAMPLES_FOR_TSNE = 5
METHODS = ("tsne", "pca")
LEGEND_ROWS = 30


def _pca(features: np.ndarray, dims: int, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    dims = min(dims, features.shape[0], features.shape[1])
    return PCA(n_components=dims, random_state=seed).fit_transform(features)


def _to_2d(features: np.ndarray, dims: int, seed: int) -> np.ndarray:
    """[N, D] -> [N, 2] by PCA, zero-padding when the data span fewer than two dimensions."""
    if features.shape[0] >= 2 and features.shape[1] >= 2:
        reduced = _pca(features, dims, seed)
    else:
        reduced = features - features.mean(axis=0, keepdims=True)
    out = np.zeros((features.shape[0], 2), dtype=np.float64)
    out[:, :min(2, reduced.shape[1])] = reduced[:, :2]
    return out


def embed_2d(features: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """float [N, D] -> float64 [N, 2] coordinates (module docstring for the rule)."""
    features = np.asarray(features, dtype=np.float64)
    if method == "pca" or features.shape[0] < MIN_SAMPLES_FOR_TSNE:
        return _to_2d(features, 2, seed)
    from sklearn.manifold import TSNE

    if features.shape[1] > PCA_DIMS_BEFORE_TSNE:
        features = _pca(features, PCA_DIMS_BEFORE_TSNE, seed)
    perplexity = min(DEFAULT_PERPLEXITY, (features.shape[0] - 1) / 3.0)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def _class_colours(count: int) -> list:
    """``count`` distinct RGBA colours: the qualitative tab10/tab20 maps, a rainbow beyond 20."""
    import matplotlib

    if count <= 20:
        cmap = matplotlib.colormaps["tab10" if count <= 10 else "tab20"]
        return [cmap(i) for i in range(count)]
    cmap = matplotlib.colormaps["turbo"]
    return [cmap(i / (count - 1)) for i in range(count)]


def plot_embedding(
    features: np.ndarray,
    labels: Sequence[int],
    class_names: Sequence[str],
    path: Union[str, Path],
    method: str = "tsne",
    seed: int = 0,
) -> Path:
    """Write a PNG scatter of a 2-D embedding of ``features`` coloured by class, with a legend.

    features: float [N, D] (array or CPU tensor); labels: int [N], 0-based indices into
    ``class_names``; method: ``"tsne"`` or ``"pca"``. The PNG is written atomically (a temporary
    file beside ``path``, then renamed). Returns ``path``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if features.ndim != 2 or labels.shape != (features.shape[0],) or features.shape[0] == 0:
        raise ValueError(f"expected features [N, D] with N >= 1 and labels [N], "
                         f"got {features.shape} and {labels.shape}")
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or inf; check the encoder output before plotting")
    if labels.min() < 0 or labels.max() >= len(class_names):
        raise ValueError(f"labels reach {int(labels.max())} but only {len(class_names)} class names were given; "
                         "pass the dataset's full class-name list")
    coords = embed_2d(features, method, seed)

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 6.5), dpi=100)
    FigureCanvasAgg(figure)  # the Agg canvas, whatever the global backend
    axes = figure.add_subplot()
    present = np.unique(labels)
    for label, colour in zip(present, _class_colours(len(present))):
        mask = labels == label
        axes.scatter(coords[mask, 0], coords[mask, 1], s=8, color=colour, label=str(class_names[label]))
    axes.set_title(f"{method.upper() if method == 'pca' else 't-SNE'} of {features.shape[0]} samples")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.legend(fontsize="small", markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                ncols=max(1, math.ceil(len(present) / LEGEND_ROWS)))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
