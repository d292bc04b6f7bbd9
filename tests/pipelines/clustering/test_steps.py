"""Clustering steps as objects: the class + kwargs factory, the null reducer, an injected
clusterer, the values the data fixes, and each split function of ``cluster_failures``."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.decomposition import PCA

from phase1b_kedro.clustering import (
    UNCLUSTERED,
    CentroidRepresenter,
    ClusteringConfig,
    EmbeddingConfig,
    NoReduction,
    StabilityConfig,
    assign_noise,
    build_steps,
    category_groups,
    cluster_failures,
    cluster_groups,
    describe_cluster,
    fit_labels,
    fitted_to,
    project_2d,
    reduce,
    run_values,
    stability,
)
from phase1b_kedro.estimators import EstimatorSpec
from tests.conftest import load_params

CLUSTERER = ("fit",)


class SignOfFirstColumn:
    """A clusterer that is no scikit-learn estimator: two clusters by the sign of column 0.

    It records the width of what it was fitted on, so a test can see what reached it.
    """

    widths: ClassVar[list[int]] = []

    def fit(self, X: np.ndarray) -> SignOfFirstColumn:
        SignOfFirstColumn.widths.append(X.shape[1])
        self.labels_ = (X[:, 0] > 0).astype(int)
        return self


class NoLabels:
    """A clusterer that forgets to set ``labels_``."""

    def fit(self, X: np.ndarray) -> NoLabels:
        return self


def blobs(n_per: int = 10, dim: int = 8, seed: int = 0) -> np.ndarray:
    """Two tight groups of unit vectors: rows ``[:n_per]`` near +e0, ``[n_per:]`` near -e0."""
    rng = np.random.default_rng(seed)
    centre = np.eye(dim)[0]
    x = np.vstack([centre + 0.05 * rng.standard_normal((n_per, dim)), -centre + 0.05 * rng.standard_normal((n_per, dim))])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def records_for(n: int, category: str = "math") -> list[dict]:
    return [{"id": f"r{i}", "category": category, "score": float(i % 3)} for i in range(n)]


# ---------------------------------------------------------------------------- the factory
def test_a_dotted_class_with_kwargs_is_built():
    spec = EstimatorSpec.from_params({"class": "sklearn.cluster.KMeans", "kwargs": {"n_clusters": 3, "n_init": 2}},
                                     "clustering.clusterer", CLUSTERER)
    built = spec.build("clustering.clusterer", random_state=7)
    assert isinstance(built, KMeans) and (built.n_clusters, built.n_init, built.random_state) == (3, 2, 7)
    assert spec.as_dict() == {"class": "sklearn.cluster.KMeans", "kwargs": {"n_clusters": 3, "n_init": 2}}
    assert EstimatorSpec.from_params({"class": "sklearn.decomposition.PCA"}, "g", ("fit_transform",)).kwargs == {}


@pytest.mark.parametrize(("group", "message"), [
    ({"class": "sklearn.cluster.NoSuchClusterer"}, r"clustering\.clusterer\.class: cannot import"),
    ({"class": "no_such_package.Thing"}, r"clustering\.clusterer\.class: cannot import 'no_such_package\.Thing'"),
    ({"class": "HDBSCAN"}, r"clustering\.clusterer\.class: 'HDBSCAN' is not a dotted path"),
    ({"class": "sklearn.cluster.k_means"}, r"clustering\.clusterer\.class: 'sklearn\.cluster\.k_means' is not a class"),
    ({"class": "collections.Counter"}, r"clustering\.clusterer\.class: collections\.Counter has no fit\(\)"),
    ({"class": "sklearn.cluster.HDBSCAN", "kwargs": {"n_clusters": 4}},
     r"clustering\.clusterer\.kwargs: sklearn\.cluster\.HDBSCAN does not accept .*n_clusters"),
    ({"class": "sklearn.cluster.HDBSCAN", "kwarg": {}}, r"clustering\.clusterer: unknown keys \['kwarg'\]"),
    ({"kwargs": {"n_clusters": 4}}, r"clustering\.clusterer: 'class' is required"),
    ({"class": "sklearn.cluster.KMeans", "kwargs": [4]}, r"clustering\.clusterer\.kwargs: expected a mapping"),
    ("sklearn.cluster.KMeans", r"clustering\.clusterer: expected \{class"),
])
def test_invalid_steps_are_refused_naming_the_parameter(group, message):
    with pytest.raises(ValueError, match=message):
        ClusteringConfig.from_params({"clusterer": group})


def test_each_step_is_checked_for_its_own_interface():
    with pytest.raises(ValueError, match=r"clustering\.representer\.class: .*KMeans has no representatives\(\)"):
        ClusteringConfig.from_params({"representer": {"class": "sklearn.cluster.KMeans"}})
    with pytest.raises(ValueError, match=r"clustering\.reducer\.class: .*HDBSCAN has no fit_transform\(\)"):
        ClusteringConfig.from_params({"reducer": {"class": "sklearn.cluster.HDBSCAN"}})


def test_unknown_keys_are_refused_at_every_level():
    with pytest.raises(ValueError, match=r"^clustering: unknown keys \['algorithm'\]"):
        ClusteringConfig.from_params({"algorithm": "hdbscan"})
    with pytest.raises(ValueError, match=r"^clustering\.embedding: unknown keys \['batchsize'\]"):
        ClusteringConfig.from_params({"embedding": {"batchsize": 8}})
    with pytest.raises(ValueError, match=r"^clustering\.stability: unknown keys \['rounds'\]"):
        ClusteringConfig.from_params({"stability": {"rounds": 3}})
    with pytest.raises(ValueError, match=r"clustering\.stability"):
        ClusteringConfig.from_params({"stability": {"subsample": 1.5}})


def test_the_yaml_defaults_equal_the_config_class_defaults():
    assert ClusteringConfig.from_params(load_params("clustering")) == ClusteringConfig()
    assert ClusteringConfig.from_params(None) == ClusteringConfig.from_params({"reducer": None, "embedding": None})


def test_embedding_config_takes_a_single_field_name_and_refuses_unknown_ones():
    assert EmbeddingConfig(text_fields="prompt").text_fields == ("prompt",)
    with pytest.raises(ValueError, match=r"clustering\.embedding\.text_fields: unknown \['answer'\]"):
        ClusteringConfig.from_params({"embedding": {"text_fields": ["prompt", "answer"]}})


# ---------------------------------------------------------------------------- values fixed by the data
def test_auto_values_and_seeds_are_resolved_in_one_place():
    hdbscan = EstimatorSpec("sklearn.cluster.HDBSCAN", {"min_cluster_size": "auto", "algorithm": "auto"})
    assert run_values(hdbscan, "g", 170, 42) == {"min_cluster_size": 5, "algorithm": "auto"}   # no random_state
    assert run_values(hdbscan, "g", 2000, 42)["min_cluster_size"] == 20                     # 1% of the failures
    tsne = EstimatorSpec("sklearn.manifold.TSNE", {"perplexity": "auto"})
    assert run_values(tsne, "g", 31, 3) == {"perplexity": 10.0, "random_state": 3}
    assert run_values(tsne, "g", 1000, 3)["perplexity"] == 30.0
    pca = EstimatorSpec("sklearn.decomposition.PCA", {"svd_solver": "auto", "random_state": 1})
    assert run_values(pca, "g", 10, 42) == {"svd_solver": "auto", "random_state": 1}         # explicit seed kept


def test_fitted_to_caps_sizes_by_the_data_and_leaves_the_original_alone():
    pca, kmeans = PCA(n_components=32), KMeans(n_clusters=8, random_state=1)
    assert fitted_to(pca, np.zeros((10, 384))).n_components == 10
    assert fitted_to(pca, np.zeros((100, 6))).n_components == 6
    capped = fitted_to(kmeans, np.zeros((3, 4)), random_state=9)
    assert (capped.n_clusters, capped.random_state) == (3, 9) and (kmeans.n_clusters, kmeans.random_state) == (8, 1)
    plain = SignOfFirstColumn()
    assert fitted_to(plain, np.zeros((3, 4)), random_state=9) is not plain   # no get_params: a deep copy


# ---------------------------------------------------------------------------- the steps
def test_reduce_caps_components_and_the_null_reducer_returns_the_input():
    x = blobs(n_per=5, dim=40)
    assert reduce(x, PCA(n_components=32, svd_solver="full")).shape == (10, 10)
    assert reduce(x, NoReduction()) is x
    one = x[:1]
    assert reduce(one, PCA(n_components=32)) is one                  # one row: nothing to learn from


def test_a_null_reducer_skips_the_step_and_an_injected_clusterer_is_used():
    SignOfFirstColumn.widths.clear()
    params = {"reducer": {"class": "phase1b_kedro.clustering.NoReduction"},
              "clusterer": {"class": "tests.pipelines.clustering.test_steps.SignOfFirstColumn"},
              "stability": {"runs": 2}}
    x = blobs(n_per=10, dim=40)
    result = cluster_failures(records_for(20), x, ClusteringConfig.from_params(params))
    assert SignOfFirstColumn.widths == [40, 40, 40]                # the full width: no reduction, 1 fit + 2 runs
    assert result["algorithm"] == "signoffirstcolumn" and result["n_clusters"] == 2 and result["n_unclustered"] == 0
    assert sorted(c["size"] for c in result["clusters"]) == [10, 10]
    assert result["stability"]["all"]["ari_mean"] == 1.0
    assert result["settings"]["reducer"] == {"class": "phase1b_kedro.clustering.NoReduction", "kwargs": {}}


def test_kmeans_via_params_gets_the_seed_and_its_settings_are_recorded():
    params = {"clusterer": {"class": "sklearn.cluster.KMeans", "kwargs": {"n_clusters": 2, "n_init": 3}}}
    config = ClusteringConfig.from_params(params)
    steps = build_steps(config, 20)
    assert isinstance(steps.clusterer, KMeans) and steps.clusterer.random_state == 42
    assert steps.settings["clusterer"] == {"class": "sklearn.cluster.KMeans",
                                           "kwargs": {"n_clusters": 2, "n_init": 3, "random_state": 42}}
    result = cluster_failures(records_for(20), blobs(), config)
    assert result["algorithm"] == "kmeans" and [c["size"] for c in result["clusters"]] == [10, 10]


def test_fit_labels_too_few_points_are_noise_and_labels_are_checked():
    x = blobs(n_per=2)
    assert fit_labels(HDBSCAN(min_cluster_size=5, copy=True), x).tolist() == [-1] * 4
    assert fit_labels(HDBSCAN(min_cluster_size=2, min_samples=6, copy=True), x).tolist() == [-1] * 4
    assert fit_labels(KMeans(n_clusters=8, n_init=2, random_state=0), x[:1]).tolist() == [-1]
    assert len(set(fit_labels(KMeans(n_clusters=8, n_init=2, random_state=0), x))) == 4   # n_clusters capped at 4
    with pytest.raises(ValueError, match=r"clustering\.clusterer: NoLabels\.labels_"):
        fit_labels(NoLabels(), x)


def test_category_groups():
    records = [{"category": "qa"}, {"category": "math"}, {}, {"category": "math"}]
    assert [(p, i.tolist()) for p, i in category_groups(records, True)] == [("math", [1, 3]), ("other", [2]),
                                                                            ("qa", [0])]
    assert [(p, i.tolist()) for p, i in category_groups(records, False)] == [("", [0, 1, 2, 3])]
    assert category_groups([], False) == []


def test_cluster_groups_numbers_clusters_across_categories():
    x = np.vstack([blobs(n_per=6, seed=1), blobs(n_per=6, seed=2)])
    groups = [("code", np.arange(12)), ("math", np.arange(12, 24))]
    config = ClusteringConfig.from_params({"clusterer": {"class": "sklearn.cluster.HDBSCAN",
                                                         "kwargs": {"min_cluster_size": 3, "copy": True}}})
    labels, names, report = cluster_groups(x, groups, HDBSCAN(min_cluster_size=3, copy=True), config)
    assert names == ["code-c01", "code-c02", "math-c03", "math-c04"] and set(labels) == {0, 1, 2, 3}
    assert set(labels[:12]) == {0, 1} and set(report) == {"code", "math"}


def test_stability_is_one_for_clean_groups_and_off_when_asked():
    x = blobs(n_per=10)
    labels = fit_labels(KMeans(n_clusters=2, n_init=3, random_state=0), x)
    report = stability(x, labels, KMeans(n_clusters=2, n_init=3), StabilityConfig(runs=3, subsample=0.5), seed=1)
    assert report["runs"] == 3 and report["ari_per_run"] == [1.0, 1.0, 1.0] and report["subsample"] == 0.5
    assert stability(x, labels, KMeans(), StabilityConfig(runs=0), seed=1) == {"runs": 0, "ari_mean": None,
                                                                               "ari_min": None}


def test_assign_noise_moves_noise_to_the_nearest_centroid():
    x = blobs(n_per=3)
    labels = np.array([0, 0, -1, 1, 1, -1])
    assert assign_noise(x, labels, 2).tolist() == [0, 0, 0, 1, 1, 1]
    assert labels.tolist() == [0, 0, -1, 1, 1, -1]                                    # input unchanged
    assert assign_noise(x, np.full(6, -1), 0).tolist() == [-1] * 6


def test_project_2d():
    x = blobs(n_per=5)
    assert project_2d(x, PCA(n_components=2)).shape == (10, 2)
    assert project_2d(x[:2], PCA(n_components=2)).tolist() == [[0.0, 0.0], [1.0, 0.0]]
    assert project_2d(x[:0], PCA(n_components=2)).shape == (0, 2)
    with pytest.raises(ValueError, match=r"clustering\.projection must give \(n, 2\)"):
        project_2d(x, PCA(n_components=3))


def test_describe_cluster_picks_the_members_closest_to_the_centroid():
    x = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    records = [{"id": i, "category": "qa", "score": 2.0, "generation": {"tokens_out": 10 * i}} for i in range(4)]
    coords = np.arange(8, dtype=float).reshape(4, 2)
    entry = describe_cluster("c01", np.array([0, 1, 2]), records, x, coords, CentroidRepresenter(2),
                             np.array([False, True, False, False]))
    assert entry["representative_ids"] == ["1", "2"] and entry["member_ids"] == ["0", "1", "2"]
    assert (entry["size"], entry["coverage"], entry["max_tokens_out"], entry["noise_assigned"]) == (3, 0.75, 20, 1)
    assert entry["centroid_2d"] == [2.0, 3.0] and entry["categories"] == {"qa": 3} and entry["mean_score"] == 2.0
    empty = describe_cluster(UNCLUSTERED, np.array([], dtype=int), records, x, coords, CentroidRepresenter(), np.zeros(4, bool))
    assert empty["size"] == 0 and empty["representative_ids"] == [] and empty["centroid_2d"] is None
    with pytest.raises(ValueError, match="n_representatives"):
        CentroidRepresenter(-1).representatives(x)
