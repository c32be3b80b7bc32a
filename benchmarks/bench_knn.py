"""Cosine kNN evaluation: ``knn_accuracy`` vs scikit-learn as STARS' ``knn_eval.py`` runs it.

Workload: the STARS kNN protocol at NTU scale, 10,000 bank x 10,000 query features, D = 256,
60 classes (class means plus noise, float32), k in {1, 2, 5, 10}. Baseline measured in the same
run: scikit-learn's ``KNeighborsClassifier(metric="cosine", algorithm="brute")`` fitted and
asked to predict once per k on L2-normalised features, as STARS does. Both sides get one
thread (torch and BLAS; the machine is shared) and each is timed ``--repeats`` times, best kept.
Prints one JSON line: seconds of both, the ratio baseline / ours, and per k the accuracies and
the fraction of queries on which the two predict the same class.

Run: .venv/bin/python benchmarks/bench_knn.py
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Sequence

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing the package

from actionfusion.pipeline.protocols.knn import knn_predict  # noqa: E402

KS = (1, 2, 5, 10)


def make_features(rng: np.random.Generator, count: int, means: np.ndarray,
                  noise: float) -> tuple[np.ndarray, np.ndarray]:
    """float32 [count, D] features around the class means, and their int64 [count] labels."""
    labels = rng.integers(0, len(means), size=count)
    features = means[labels] + rng.normal(0, noise, size=(count, means.shape[1]))
    return features.astype(np.float32), labels.astype(np.int64)


def sklearn_predict(bank: np.ndarray, bank_labels: np.ndarray, queries: np.ndarray,
                    ks: Sequence[int]) -> Dict[int, np.ndarray]:
    """STARS' rule: normalise, then one brute-force cosine KNeighborsClassifier per k."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import normalize

    bank, queries = normalize(bank), normalize(queries)
    return {k: KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
            .fit(bank, bank_labels).predict(queries) for k in ks}


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--classes", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    means = rng.normal(0, 1, size=(args.classes, args.dim))
    bank, bank_labels = make_features(rng, args.bank, means, noise=3.0)
    queries, query_labels = make_features(rng, args.queries, means, noise=3.0)
    bank_t, labels_t, queries_t = map(torch.from_numpy, (bank, bank_labels, queries))

    with threadpool_limits(limits=1):
        ours = knn_predict(bank_t, labels_t, queries_t, ks=KS, num_classes=args.classes)
        reference = sklearn_predict(bank, bank_labels, queries, KS)
        ours_s = best_seconds(lambda: knn_predict(bank_t, labels_t, queries_t, ks=KS, num_classes=args.classes),
                              args.repeats)
        reference_s = best_seconds(lambda: sklearn_predict(bank, bank_labels, queries, KS), args.repeats)
    print(json.dumps({
        "benchmark": "knn",
        "workload": f"{args.bank} bank x {args.queries} queries, D={args.dim}, {args.classes} classes, "
                    f"k in {list(KS)}, float32, 1 thread",
        "ours_s": round(ours_s, 3),
        "sklearn_brute_cosine_s": round(reference_s, 3),
        "ratio_sklearn_over_ours": round(reference_s / ours_s, 2),
        "prediction_agreement": {k: float(np.mean(ours[k].numpy() == reference[k])) for k in KS},
        "accuracy_ours": {k: round(float(np.mean(ours[k].numpy() == query_labels)), 4) for k in KS},
        "accuracy_sklearn": {k: round(float(np.mean(reference[k] == query_labels)), 4) for k in KS},
        "repeats": args.repeats,
    }))


if __name__ == "__main__":
    main()
