"""Representation-evaluation protocols: kNN against a brute-force reference, labelled subsets,
few-shot episodes and the prototype classifier, the NTU120 one-shot protocol, embedding plots."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from actionfusion.datasets.ntu import one_shot
from actionfusion.pipeline.protocols import knn as knn_module
from actionfusion.pipeline.protocols.embedding_plot import plot_embedding
from actionfusion.pipeline.protocols.fewshot import evaluate_episodes, prototype_predict, sample_episodes
from actionfusion.pipeline.protocols.knn import knn_accuracy, knn_predict
from actionfusion.pipeline.protocols.label_subsets import labelled_subset

pytestmark = pytest.mark.usefixtures("one_thread")


# --- kNN --------------------------------------------------------------------------------------

def reference_knn(bank, bank_labels, queries, k, num_classes, vote="majority", temperature=0.1):
    """Plain reference: full similarity matrix, stable argsort, vote, lowest class wins a tie."""
    bank = bank / np.maximum(np.linalg.norm(bank, axis=1, keepdims=True), 1e-12)
    queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    similarities = queries @ bank.T
    predictions = []
    for row in similarities:
        neighbours = np.argsort(-row, kind="stable")[:k]  # equal similarity: lower bank index first
        votes = np.zeros(num_classes)
        for j in neighbours:
            votes[bank_labels[j]] += 1.0 if vote == "majority" else math.exp(row[j] / temperature)
        predictions.append(int(np.argmax(votes)))  # first maximum: lowest class
    return np.array(predictions)


KS = (1, 2, 3, 5, 10)


@pytest.mark.parametrize("vote", ["majority", "weighted"])
def test_knn_matches_reference_on_random_features(vote):
    rng = np.random.default_rng(0)
    bank, queries = rng.normal(size=(300, 16)), rng.normal(size=(120, 16))
    bank_labels = rng.integers(0, 7, size=300)
    got = knn_predict(torch.from_numpy(bank), torch.from_numpy(bank_labels), torch.from_numpy(queries),
                      ks=KS, num_classes=7, chunk_size=50, vote=vote)
    for k in KS:
        want = reference_knn(bank, bank_labels, queries, k, 7, vote)
        np.testing.assert_array_equal(got[k].numpy(), want, err_msg=f"k={k}")


@pytest.mark.parametrize("vote", ["majority", "weighted"])
def test_knn_matches_reference_with_massive_ties(vote):
    # Bank rows are +-unit basis vectors and queries have entries in {-1, 0, 1}: every similarity
    # is exactly 0 or +-1/sqrt(m), so neighbours tie across the top-k cut and votes tie too.
    rng = np.random.default_rng(1)
    dim = 4
    basis = np.concatenate([np.eye(dim), -np.eye(dim)])
    bank = basis[rng.integers(0, 2 * dim, size=60)]
    bank_labels = rng.integers(0, 5, size=60)
    queries = rng.integers(-1, 2, size=(80, dim)).astype(np.float64)
    queries[np.abs(queries).sum(1) == 0, 0] = 1.0
    got = knn_predict(torch.from_numpy(bank), torch.from_numpy(bank_labels), torch.from_numpy(queries),
                      ks=KS, num_classes=5, chunk_size=7, vote=vote)
    for k in KS:
        want = reference_knn(bank, bank_labels, queries, k, 5, vote)
        np.testing.assert_array_equal(got[k].numpy(), want, err_msg=f"k={k}")


def test_knn_tie_rules_by_hand():
    e = np.eye(3)
    # bank index:   0      1      2      3      4      5
    bank = np.stack([e[0], e[1], e[0], e[1], e[2], e[0]])
    bank_labels = np.array([2, 0, 1, 1, 0, 0])
    query = torch.tensor([[1.0, 0.0, 0.0]])
    got = knn_predict(torch.from_numpy(bank), torch.from_numpy(bank_labels), query, ks=(1, 2, 3, 5))
    # k=1: three items at similarity 1 (0, 2, 5) -> index 0 -> class 2
    assert got[1].tolist() == [2]
    # k=2: items 0, 2 -> classes 2 and 1 tie -> the lower class, 1
    assert got[2].tolist() == [1]
    # k=3: items 0, 2, 5 -> classes 2, 1, 0 tie -> 0
    assert got[3].tolist() == [0]
    # k=5: 0, 2, 5 then the similarity-0 items by index: 1, 3 -> classes 2, 1, 0, 0, 1 -> 0 and 1 tie -> 0
    assert got[5].tolist() == [0]


def test_knn_chunks_hold_at_most_chunk_size_rows_and_run_topk_once(monkeypatch):
    seen = []
    real = knn_module.nearest_neighbours

    def spy(similarities, k):
        seen.append((tuple(similarities.shape), k))
        return real(similarities, k)

    monkeypatch.setattr(knn_module, "nearest_neighbours", spy)
    rng = np.random.default_rng(2)
    bank, queries = torch.from_numpy(rng.normal(size=(40, 8))), torch.from_numpy(rng.normal(size=(23, 8)))
    labels = torch.from_numpy(rng.integers(0, 3, size=40))
    chunked = knn_predict(bank, labels, queries, ks=(1, 2, 5, 10), chunk_size=10)
    assert seen == [((10, 40), 10), ((10, 40), 10), ((3, 40), 10)]
    whole = knn_predict(bank, labels, queries, ks=(1, 2, 5, 10), chunk_size=4096)
    assert all(torch.equal(chunked[k], whole[k]) for k in (1, 2, 5, 10))


def test_knn_agrees_with_scikit_learn_majority_vote():
    neighbors = pytest.importorskip("sklearn.neighbors")
    rng = np.random.default_rng(3)
    bank, queries = rng.normal(size=(200, 12)), rng.normal(size=(90, 12))
    bank_labels = rng.integers(0, 6, size=200)
    got = knn_predict(torch.from_numpy(bank), torch.from_numpy(bank_labels), torch.from_numpy(queries), ks=KS)
    for k in KS:
        classifier = neighbors.KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
        want = classifier.fit(bank, bank_labels).predict(queries)
        np.testing.assert_array_equal(got[k].numpy(), want, err_msg=f"k={k}")


def test_knn_accuracy_by_hand_and_errors():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    bank_labels = torch.tensor([0, 0, 1, 1])
    queries = torch.tensor([[1.0, 0.05], [0.05, 1.0], [1.0, 0.2]])
    accuracy = knn_accuracy(bank, bank_labels, queries, torch.tensor([0, 1, 1]), ks=(1, 2))
    assert accuracy == {1: pytest.approx(2 / 3), 2: pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="bank size"):
        knn_predict(bank, bank_labels, queries, ks=(5,))
    with pytest.raises(ValueError, match="dim"):
        knn_predict(bank, bank_labels, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="NaN"):
        knn_predict(bank, bank_labels, torch.full((1, 2), float("nan")), ks=(1,))
    with pytest.raises(ValueError, match="vote"):
        knn_predict(bank, bank_labels, queries, ks=(1,), vote="mode")


# --- labelled subsets --------------------------------------------------------------------------

CLASS_SIZES = (1000, 500, 37, 3, 1)


def imbalanced_labels() -> np.ndarray:
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(CLASS_SIZES)])
    return np.random.default_rng(4).permutation(labels)


def test_labelled_subset_is_stratified_and_covers_every_class():
    labels = imbalanced_labels()
    subset = labelled_subset(labels, percent=1, seed=0)
    # per class: round(10) = 10, round(5) = 5, round(0.37) -> 1, round(0.03) -> 1, 1
    assert np.bincount(labels[subset]).tolist() == [10, 5, 1, 1, 1]
    assert abs(len(subset) - 0.01 * len(labels)) <= 1.5 * len(CLASS_SIZES)
    assert subset.dtype == np.int64 and np.all(np.diff(subset) > 0)
    ten = labelled_subset(labels, percent=10, seed=0)
    assert np.bincount(labels[ten]).tolist() == [100, 50, 4, 1, 1]  # 3.7 -> 4, 0.3 -> 1 (at least one)
    assert len(labelled_subset(labels, percent=100, seed=0)) == len(labels)


def test_labelled_subset_differs_per_seed_and_repeats_per_seed():
    labels = imbalanced_labels()
    subsets = [labelled_subset(labels, percent=10, seed=s) for s in (0, 1, 2)]
    assert not np.array_equal(subsets[0], subsets[1])
    assert not np.array_equal(subsets[1], subsets[2])
    assert not np.array_equal(subsets[0], subsets[2])
    np.testing.assert_array_equal(subsets[1], labelled_subset(list(labels), percent=10, seed=1))
    with pytest.raises(ValueError, match="percent"):
        labelled_subset(labels, percent=0, seed=0)


# --- few-shot episodes -------------------------------------------------------------------------

def grouped_labels(num_classes=10, per_class=20) -> np.ndarray:
    return np.random.default_rng(5).permutation(np.repeat(np.arange(num_classes), per_class))


def test_sample_episodes_sizes_classes_and_disjointness():
    labels = grouped_labels()
    novel = [1, 3, 4, 6, 8, 9]
    episodes = sample_episodes(labels, novel, n_way=5, k_shot=2, n_query=3, num_episodes=20, seed=0)
    assert len(episodes) == 20
    for support, query in episodes:
        assert support.shape == (10,) and query.shape == (15,)
        assert not set(support) & set(query)
        support_classes, query_classes = labels[support], labels[query]
        assert set(support_classes) == set(query_classes) and set(support_classes) <= set(novel)
        assert sorted(np.unique(support_classes, return_counts=True)[1]) == [2] * 5
        assert sorted(np.unique(query_classes, return_counts=True)[1]) == [3] * 5


def test_sample_episodes_deterministic_by_seed():
    labels = grouped_labels()
    draw = lambda seed: sample_episodes(labels, range(10), 5, 1, 4, num_episodes=5, seed=seed)  # noqa: E731
    first, again, other = draw(7), draw(7), draw(8)
    assert all(np.array_equal(a.support, b.support) and np.array_equal(a.query, b.query)
               for a, b in zip(first, again))
    assert not all(np.array_equal(a.query, b.query) for a, b in zip(first, other))
    with pytest.raises(ValueError, match="fewer than"):
        sample_episodes(labels, range(10), 5, 5, 16, num_episodes=1, seed=0)
    with pytest.raises(ValueError, match="n_way"):
        sample_episodes(labels, [0, 1], 3, 1, 1, num_episodes=1, seed=0)


def test_prototype_classifier_by_hand():
    # class 0 support [10, 0] and [0, 1]: prototype of the normalised features = [0.5, 0.5]
    # (the raw mean [5, 0.5] would point elsewhere); class 1 support [-1, 1].
    support = torch.tensor([[10.0, 0.0], [0.0, 1.0], [-1.0, 1.0]])
    support_labels = torch.tensor([0, 0, 1])
    queries = torch.tensor([[0.3, 1.0], [-1.0, 0.2], [1.0, 0.0]])
    # query 0: cos to [1,1]/sqrt2 = 0.880, to [-1,1]/sqrt2 = 0.474 -> 0 (raw mean would give 0.381 -> 1)
    # query 1: cos -0.555 vs 0.832 -> 1; query 2: 0.707 vs -0.707 -> 0
    assert prototype_predict(support, support_labels, queries).tolist() == [0, 1, 0]

    features = torch.cat([support, queries])
    labels = np.array([0, 0, 1, 0, 1, 1])  # the last query is labelled 1: episode accuracy 2/3
    episodes = [(np.array([0, 1, 2]), np.array([3, 4])), (np.array([0, 1, 2]), np.array([3, 4, 5]))]
    result = evaluate_episodes(features, labels, episodes)
    assert result["episodes"] == 2
    assert result["episode_accuracies"] == pytest.approx([1.0, 2 / 3])
    assert result["accuracy_mean"] == pytest.approx(5 / 6)
    std = math.sqrt(((1 - 5 / 6) ** 2 + (2 / 3 - 5 / 6) ** 2) / 1)
    assert result["accuracy_std"] == pytest.approx(std)
    assert result["ci95"] == pytest.approx(1.96 * std / math.sqrt(2))


# --- NTU RGB+D 120 one-shot --------------------------------------------------------------------

# Transcribed from the official README (shahroudy/NTURGB-D@ac2ebc8), "Evaluation Protocol of
# One-Shot Action Recognition on NTU RGB+D 120".
README_NOVEL = [1, 7, 13, 19, 25, 31, 37, 43, 49, 55, 61, 67, 73, 79, 85, 91, 97, 103, 109, 115]
README_EXEMPLARS = [
    "S001C003P008R001A001", "S001C003P008R001A007", "S001C003P008R001A013", "S001C003P008R001A019",
    "S001C003P008R001A025", "S001C003P008R001A031", "S001C003P008R001A037", "S001C003P008R001A043",
    "S001C003P008R001A049", "S001C003P008R001A055", "S018C003P008R001A061", "S018C003P008R001A067",
    "S018C003P008R001A073", "S018C003P008R001A079", "S018C003P008R001A085", "S018C003P008R001A091",
    "S018C003P008R001A097", "S018C003P008R001A103", "S018C003P008R001A109", "S018C003P008R001A115",
]


def test_one_shot_lists_are_the_readme_ones():
    assert list(one_shot.NOVEL_ACTIONS) == README_NOVEL
    assert len(set(one_shot.NOVEL_ACTIONS)) == 20
    assert all(1 <= a <= 120 for a in one_shot.NOVEL_ACTIONS)
    assert len(one_shot.AUXILIARY_ACTIONS) == 100
    assert not set(one_shot.NOVEL_ACTIONS) & set(one_shot.AUXILIARY_ACTIONS)
    assert list(one_shot.EXEMPLARS) == README_EXEMPLARS


def ntu_names() -> list[str]:
    rng = np.random.default_rng(6)
    names = [f"S{s:03d}C{c:03d}P{p:03d}R001A{a:03d}"
             for a in range(1, 121) for s in ((1, 2) if a <= 60 else (18, 19)) for c in (1, 3) for p in (8, 9)]
    return list(rng.permutation(names))


def test_one_shot_episode_support_is_the_exemplars_and_queries_the_rest():
    names = ntu_names()
    support, query = one_shot.one_shot_episode(names)
    assert [names[i] for i in support] == README_EXEMPLARS
    assert not set(support) & set(query)
    novel_names = {n for n in names if int(n[-3:]) in README_NOVEL}
    assert {names[i] for i in query} == novel_names - set(README_EXEMPLARS)
    assert len(query) == 20 * 8 - 20
    labels = [int(n[-3:]) - 1 for n in names]
    again = one_shot.one_shot_episode([n + ".skeleton" for n in names], labels)
    assert np.array_equal(again[0], support) and np.array_equal(again[1], query)
    # features that encode the class perfectly score 100%
    features = torch.nn.functional.one_hot(torch.tensor(labels), 120).double()
    assert evaluate_episodes(features, labels, [(support, query)])["accuracy_mean"] == 1.0
    with pytest.raises(ValueError, match="exemplars"):
        one_shot.one_shot_episode([n for n in names if n != README_EXEMPLARS[5]])


# --- embedding plot ----------------------------------------------------------------------------

@pytest.mark.parametrize("num_samples,dim,method", [(40, 64, "tsne"), (3, 8, "tsne"), (12, 5, "pca")])
def test_plot_embedding_writes_a_png(tmp_path, num_samples, dim, method):
    pytest.importorskip("sklearn")
    image = pytest.importorskip("matplotlib.image")
    rng = np.random.default_rng(7)
    labels = np.arange(num_samples) % 4
    features = rng.normal(size=(num_samples, dim)) + labels[:, None]
    path = tmp_path / "plots" / "embedding.png"
    assert plot_embedding(features, labels, ["a", "b", "c", "d"], path, method=method, seed=0) == path
    pixels = image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4) and min(pixels.shape[:2]) > 100
    assert pixels.std() > 0  # something was drawn
    assert os.listdir(path.parent) == ["embedding.png"]  # no temporary file left behind
    with pytest.raises(ValueError, match="class names"):
        plot_embedding(features, labels, ["a"], path)
