"""Failure clustering: texts → embeddings → reduce → cluster → represent → describe.

BERTopic's shape: every step is an object behind a small interface, injected from the
parameters as ``class`` + ``kwargs`` (:mod:`phase1b_kedro.estimators`), so any
scikit-learn-compatible estimator (or a tiny wrapper) can take a step's place:

- **reducer** (:class:`Reducer`): ``fit_transform(X) -> X'`` (default PCA to 32 dimensions,
  since HDBSCAN degrades in hundreds); :class:`NoReduction` skips the step;
- **clusterer** (:class:`Clusterer`): ``fit(X)``, then ``labels_`` with ``-1`` = noise (default
  scikit-learn's HDBSCAN; KMeans, AgglomerativeClustering, ... work as they are);
- **representer** (:class:`Representer`): ``representatives(X)`` picks each cluster's typical
  members (default :class:`CentroidRepresenter`);
- **projection**: ``fit_transform(X) -> (n, 2)`` for the map (default PCA; t-SNE works).

Around them: the text to embed (:func:`failure_text`), the embedding
(:mod:`phase1b_kedro.embeddings`), per-category clustering, noise handling, a stability check
(adjusted Rand index over subsamples and seeds). Noise points are never dropped: they form the
explicit ``unclustered`` group (and can optionally be assigned to the nearest cluster as well).
Values that depend on the data (``auto``, caps, seeds) are fixed in one place:
:func:`run_values` for the run, :func:`fitted_to` for each fit.
"""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone

from phase1b_kedro.configs import load_config
from phase1b_kedro.embeddings import BUNDLED_MINILM
from phase1b_kedro.estimators import EstimatorSpec

logger = logging.getLogger(__name__)

UNCLUSTERED = "unclustered"
TEXT_FIELDS = ("prompt", "rationale", "output", "reference")


# ------------------------------------------------------------------------------ interfaces
class Reducer(Protocol):
    """Maps ``(n, d)`` embeddings to ``(n, d')`` (``d' <= d``) before clustering."""

    def fit_transform(self, X: np.ndarray) -> np.ndarray: ...


class Clusterer(Protocol):
    """Groups rows: after ``fit(X)``, ``labels_`` holds one int per row, ``-1`` = noise."""

    labels_: np.ndarray

    def fit(self, X: np.ndarray) -> Any: ...


class Representer(Protocol):
    """Picks a cluster's representative members from their ``(m, d)`` embeddings."""

    def representatives(self, X: np.ndarray) -> np.ndarray: ...


#: The methods each step calls: checked when the parameters are read.
STEP_METHODS: dict[str, tuple[str, ...]] = {
    "reducer": ("fit_transform",), "clusterer": ("fit",),
    "representer": ("representatives",), "projection": ("fit_transform",),
}


class NoReduction(TransformerMixin, BaseEstimator):
    """The null reducer: ``fit_transform(X)`` returns ``X`` itself (the step is skipped)."""

    def fit(self, X: np.ndarray, y: Any = None) -> NoReduction:
        """Nothing to learn."""
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``X``, unchanged (same object)."""
        return X

    def fit_transform(self, X: np.ndarray, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``X``, unchanged (same object)."""
        return X


class CentroidRepresenter(BaseEstimator):
    """Representatives = the members closest to the cluster's mean embedding (cosine).

    Args:
        n_representatives: How many to pick (fewer when the cluster is smaller).
    """

    def __init__(self, n_representatives: int = 5) -> None:
        self.n_representatives = n_representatives

    def representatives(self, X: np.ndarray) -> np.ndarray:
        """Row positions of the representatives, closest first (ties: earlier row first).

        Args:
            X: ``(m, d)`` unit-normalised embeddings of one cluster's members, ``m >= 1``.

        Returns:
            ``(min(m, n_representatives),)`` int positions into ``X``.

        Raises:
            ValueError: If ``n_representatives`` is negative.
        """
        if int(self.n_representatives) < 0:
            raise ValueError(f"n_representatives must be >= 0, not {self.n_representatives}")
        closeness = X @ X.mean(axis=0)
        return np.argsort(-closeness, kind="stable")[: int(self.n_representatives)]


# ------------------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class EmbeddingConfig:
    """What is embedded and how (``clustering.embedding``)."""

    #: ``bundled:all-minilm-l6-v2``, a local path or a hub id for sentence-transformers.
    model: str = BUNDLED_MINILM
    #: Parts of a failure joined into its text, in order (a single name is one field).
    text_fields: tuple[str, ...] = ("rationale", "prompt")
    #: Characters kept per field.
    max_text_chars: int = 1000
    #: Tokens per text (0 = the model's own limit; ``null`` keeps this default, as everywhere).
    max_seq_length: int = 128
    #: Texts per forward pass of the encoder.
    batch_size: int = 16

    def __post_init__(self) -> None:
        fields_ = (self.text_fields,) if isinstance(self.text_fields, str) else tuple(self.text_fields)
        unknown = set(fields_) - set(TEXT_FIELDS)
        if unknown:
            raise ValueError(f"clustering.embedding.text_fields: unknown {sorted(unknown)}; use {TEXT_FIELDS}")
        object.__setattr__(self, "text_fields", fields_)


@dataclass(frozen=True)
class StabilityConfig:
    """The stability check (``clustering.stability``)."""

    #: Re-clusterings of random subsamples (0 = no check).
    runs: int = 5
    #: Share of the points each re-clustering draws, in (0, 1].
    subsample: float = 0.8

    def __post_init__(self) -> None:
        if int(self.runs) < 0 or not 0 < float(self.subsample) <= 1:
            raise ValueError("clustering.stability: runs must be >= 0 and subsample in (0, 1]")


@dataclass(frozen=True)
class ClusteringConfig:
    """The ``clustering`` parameter group: one nested config per concern."""

    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    reducer: EstimatorSpec = field(default_factory=lambda: EstimatorSpec(
        "sklearn.decomposition.PCA", {"n_components": 32, "svd_solver": "full"}))
    #: ``min_cluster_size: auto`` = 1% of the failures, at least 5 (:data:`AUTO_RULES`).
    clusterer: EstimatorSpec = field(default_factory=lambda: EstimatorSpec(
        "sklearn.cluster.HDBSCAN", {"min_cluster_size": "auto", "min_samples": None, "copy": True}))
    representer: EstimatorSpec = field(default_factory=lambda: EstimatorSpec(
        "phase1b_kedro.clustering.CentroidRepresenter", {"n_representatives": 5}))
    projection: EstimatorSpec = field(default_factory=lambda: EstimatorSpec(
        "sklearn.decomposition.PCA", {"n_components": 2, "svd_solver": "full"}))
    stability: StabilityConfig = field(default_factory=StabilityConfig)
    #: Cluster each category separately.
    per_category: bool = False
    #: Also put noise points in their nearest cluster (they stay counted as unclustered).
    assign_noise: bool = False
    #: ``random_state`` of every step that takes one (unless its kwargs set it), and the
    #: stability subsamples.
    seed: int = 42

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> ClusteringConfig:
        """Build and check the group (missing or ``null`` keys keep the defaults above).

        Raises:
            ValueError: Naming the parameter, for an unknown key at any level, or a step whose
                class cannot be imported, lacks its interface or refuses its kwargs.
        """
        params = dict(params or {})
        nested: dict[str, Any] = {
            name: EstimatorSpec.from_params(params[name], f"clustering.{name}", methods)
            for name, methods in STEP_METHODS.items() if params.get(name) is not None
        }
        nested["embedding"] = load_config(EmbeddingConfig, params.get("embedding"), "clustering.embedding")
        nested["stability"] = load_config(StabilityConfig, params.get("stability"), "clustering.stability")
        return load_config(cls, params, "clustering", **nested)


# ------------------------------------------------------------------------------ values fixed by the data
#: ``auto`` values, as functions of the number of failures ``n``.
AUTO_RULES: dict[str, Callable[[int], Any]] = {
    "min_cluster_size": lambda n: max(5, round(n / 100)),   # 1%, at least 5: a few dozen patterns at most
    "perplexity": lambda n: min(30.0, (n - 1) / 3),         # t-SNE needs perplexity < n
}


def run_values(spec: EstimatorSpec, group: str, n_failures: int, seed: int) -> dict[str, Any]:
    """The kwargs a step is built with for this run: ``auto`` resolved, ``random_state`` seeded.

    Only keys of :data:`AUTO_RULES` read ``auto`` (other ``auto`` values are the estimator's
    own, e.g. PCA's ``svd_solver``); ``random_state = seed`` is added where the class takes
    one and the kwargs do not set it.

    Args:
        spec: The step's class and kwargs.
        group: Its parameter name, for errors.
        n_failures: Failures in the run.
        seed: ``clustering.seed``.

    Returns:
        The full kwargs (``spec.kwargs`` updated).
    """
    values = {k: (AUTO_RULES[k](n_failures) if v == "auto" and k in AUTO_RULES else v)
              for k, v in spec.kwargs.items()}
    if "random_state" not in values and "random_state" in inspect.signature(spec.import_class(group)).parameters:
        values["random_state"] = seed
    return values


def fitted_to(estimator: Any, X: np.ndarray, random_state: int | None = None) -> Any:
    """A fresh copy of ``estimator`` whose sizes fit ``X``.

    ``n_components`` is capped at ``min(n_samples, n_features)`` and ``n_clusters`` at
    ``n_samples``; ``random_state`` (if given and taken) replaces the estimator's.

    Args:
        estimator: Any step object (estimators without ``get_params`` are deep-copied).
        X: ``(n_samples, n_features)`` data it will be fitted on.
        random_state: A seed for this fit (stability runs), or ``None`` to keep the estimator's.
    """
    copy = clone(estimator, safe=False)
    params = copy.get_params() if hasattr(copy, "get_params") else {}
    caps = {"n_components": min(X.shape), "n_clusters": X.shape[0]}
    update = {k: min(params[k], cap) for k, cap in caps.items() if isinstance(params.get(k), int)}
    if random_state is not None and "random_state" in params:
        update["random_state"] = random_state
    return copy.set_params(**update) if update else copy


@dataclass(frozen=True)
class Steps:
    """The step objects of one run, built, and the kwargs they were built with."""

    reducer: Reducer
    clusterer: Clusterer
    representer: Representer
    projection: Reducer
    settings: dict[str, Any]


def build_steps(config: ClusteringConfig, n_failures: int) -> Steps:
    """Build every step from its spec with this run's values (:func:`run_values`).

    Raises:
        ValueError: Naming the parameter if a constructor refuses its arguments.
    """
    built, settings = {}, {}
    for name in STEP_METHODS:
        spec: EstimatorSpec = getattr(config, name)
        values = run_values(spec, f"clustering.{name}", n_failures, config.seed)
        built[name] = spec.build(f"clustering.{name}", **values)
        settings[name] = {"class": spec.class_path, "kwargs": values}
    settings |= {"stability": {"runs": config.stability.runs, "subsample": config.stability.subsample},
                 "per_category": config.per_category, "assign_noise": config.assign_noise, "seed": config.seed}
    return Steps(**built, settings=settings)


# ------------------------------------------------------------------------------ the steps
def failure_text(record: Mapping[str, Any], fields: Sequence[str], max_chars: int = 1000) -> str:
    """The text embedded for one failure.

    ``rationale`` is the judge's, used when the verdict came from an LLM, a verifiable check
    or running the code's tests (similarity rationales are only numbers); absent parts are skipped.

    Raises:
        ValueError: For a field not in :data:`TEXT_FIELDS`.
    """
    unknown = set(fields) - set(TEXT_FIELDS)
    if unknown:
        raise ValueError(f"clustering.embedding.text_fields: unknown {sorted(unknown)}; use {TEXT_FIELDS}")
    parts = []
    judge = record.get("judge") or {}
    for name in fields:
        if name == "rationale":
            value = judge.get("rationale") if judge.get("source") in ("llm", "verifiable", "execution") else None
        else:
            value = record.get(name)
        if isinstance(value, str) and value.strip():
            parts.append(value.strip()[:max_chars])
    return "\n".join(parts)


def reduce(vectors: np.ndarray, reducer: Reducer) -> np.ndarray:
    """``(n, d)`` → ``(n, d')`` through the reducer, ``n_components`` capped by the data.

    Fewer than 2 rows are returned as they are (nothing to learn a reduction from).
    """
    if vectors.shape[0] < 2:
        return vectors
    return np.asarray(fitted_to(reducer, vectors).fit_transform(vectors))


def fit_labels(clusterer: Clusterer, X: np.ndarray, random_state: int | None = None) -> np.ndarray:
    """Cluster labels (``-1`` = noise) for the ``(n, d)`` rows of ``X``, from a fresh copy.

    Fewer rows than 2, than ``min_cluster_size`` or than ``min_samples`` (where the clusterer
    has them) cannot form a cluster: all noise.

    Raises:
        ValueError: If the fitted clusterer has no ``labels_`` of one int per row.
    """
    n = X.shape[0]
    params = clusterer.get_params() if hasattr(clusterer, "get_params") else {}
    sizes = [v for v in (params.get("min_cluster_size"), params.get("min_samples")) if isinstance(v, int)]
    if n < max([2, *sizes]):
        return np.full(n, -1)
    fitted = fitted_to(clusterer, X, random_state)
    fitted.fit(X)
    labels = np.asarray(getattr(fitted, "labels_", None))
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"clustering.clusterer: {type(clusterer).__name__}.labels_ must hold one int per row")
    return labels


def category_groups(records: Sequence[Mapping[str, Any]], per_category: bool) -> list[tuple[str, np.ndarray]]:
    """``(prefix, row indices)`` per group: one per category (sorted), or ``("", all)``."""
    if not per_category:
        return [("", np.arange(len(records)))] if records else []
    cats = [r.get("category", "other") for r in records]
    return [(c, np.flatnonzero(np.asarray(cats) == c)) for c in sorted(set(cats))]


def stability(X: np.ndarray, labels: np.ndarray, clusterer: Clusterer, config: StabilityConfig,
              seed: int) -> dict[str, Any]:
    """Adjusted Rand index between the clustering and re-clusterings of random subsamples.

    Run ``r`` draws ``config.subsample`` of the ``(n, d)`` points (generator seeded with
    ``seed``), clusters them again with ``random_state = seed + r + 1`` (for clusterers that
    take one) and compares with ``labels`` on the same points.

    Returns:
        ``{runs, subsample, ari_mean, ari_min, ari_per_run}`` (``{runs: 0, ...: None}`` when
        ``runs`` is 0 or there are fewer than 4 points).
    """
    from sklearn.metrics import adjusted_rand_score

    n, runs = X.shape[0], int(config.runs)
    if runs <= 0 or n < 4:
        return {"runs": 0, "ari_mean": None, "ari_min": None}
    rng = np.random.default_rng(seed)
    scores = []
    for r in range(runs):
        take = np.sort(rng.choice(n, size=max(2, int(round(n * config.subsample))), replace=False))
        again = fit_labels(clusterer, X[take], random_state=seed + r + 1)
        scores.append(float(adjusted_rand_score(labels[take], again)))
    return {"runs": runs, "subsample": config.subsample, "ari_mean": round(float(np.mean(scores)), 4),
            "ari_min": round(float(np.min(scores)), 4), "ari_per_run": [round(s, 4) for s in scores]}


def cluster_groups(X: np.ndarray, groups: Sequence[tuple[str, np.ndarray]], clusterer: Clusterer,
                   config: ClusteringConfig) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Cluster each group's rows of ``X`` and number the clusters across groups.

    Returns:
        ``(labels, names, stability)``: one global label per row of ``X`` (``-1`` = noise),
        cluster names (``c01``, ... or ``<category>-c01``, ...) indexed by label, and the
        stability report per group (``all`` without categories).
    """
    labels, names, report = np.full(X.shape[0], -1), [], {}
    for prefix, idx in groups:
        local = fit_labels(clusterer, X[idx])
        report[prefix or "all"] = stability(X[idx], local, clusterer, config.stability, config.seed)
        for k in sorted(set(local) - {-1}):
            labels[idx[local == k]] = len(names)
            names.append(f"{prefix + '-' if prefix else ''}c{len(names) + 1:02d}")
    return labels, names, report


def assign_noise(vectors: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """Labels with each noise row (``-1``) moved to the cluster whose centroid is nearest.

    Args:
        vectors: ``(n, d)`` unit-normalised embeddings (nearest = highest dot product).
        labels: ``(n,)`` labels in ``[-1, n_clusters)``; not changed.
        n_clusters: Number of clusters (0: nothing to join, the labels come back as they are).
    """
    noise = labels == -1
    if not n_clusters or not noise.any():
        return labels
    centroids = np.stack([vectors[labels == k].mean(axis=0) for k in range(n_clusters)])
    moved = labels.copy()
    moved[noise] = np.argmax(vectors[noise] @ centroids.T, axis=1)
    return moved


def project_2d(vectors: np.ndarray, projection: Reducer) -> np.ndarray:
    """``(n, 2)`` map coordinates for the ``(n, d)`` vectors.

    Fewer than 3 points are laid on a line (nothing to project).

    Raises:
        ValueError: If the projection does not give two columns.
    """
    n = vectors.shape[0]
    if n < 3:
        return np.column_stack([np.arange(n, dtype=float), np.zeros(n)])
    coords = np.asarray(fitted_to(projection, vectors).fit_transform(vectors))
    if coords.shape != (n, 2):
        raise ValueError(f"clustering.projection must give (n, 2) coordinates, got {coords.shape}")
    return coords


def describe_cluster(name: str, members: np.ndarray, records: Sequence[Mapping[str, Any]], vectors: np.ndarray,
                     coords: np.ndarray, representer: Representer, assigned: np.ndarray) -> dict[str, Any]:
    """One cluster's entry: size, coverage, category and failure-mode mix, scores, members.

    Args:
        name: Its id (``c01``, ``unclustered``, ...).
        members: Row indices of its members.
        records: All failures; ``vectors`` ``(n, d)`` and ``coords`` ``(n, 2)`` row-aligned.
        representer: Picks ``representative_ids`` from the members' vectors.
        assigned: ``(n,)`` mask of noise rows moved into a cluster.
    """
    if members.size == 0:
        return {"cluster_id": name, "size": 0, "coverage": 0.0, "categories": {}, "failure_modes": {},
                "mean_score": None, "member_ids": [], "representative_ids": [], "centroid_2d": None,
                "noise_assigned": 0}
    scores = [records[i].get("score") for i in members if records[i].get("score") is not None]
    return {
        "cluster_id": name,
        "size": int(members.size),
        "coverage": round(members.size / len(records), 4),
        "categories": dict(Counter(records[i].get("category", "other") for i in members).most_common()),
        "failure_modes": dict(Counter(records[i].get("failure_mode") or "wrong_answer" for i in members).most_common()),
        "max_tokens_out": max((records[i].get("generation") or {}).get("tokens_out") or 0 for i in members),
        "mean_score": round(float(np.mean(scores)), 3) if scores else None,
        "member_ids": [str(records[i]["id"]) for i in members],
        "representative_ids": [str(records[i]["id"]) for i in members[representer.representatives(vectors[members])]],
        "centroid_2d": [round(float(v), 5) for v in coords[members].mean(axis=0)],
        "noise_assigned": int(assigned[members].sum()),
    }


def map_points(records: Sequence[Mapping[str, Any]], labels: np.ndarray, names: Sequence[str],
               noise: np.ndarray, coords: np.ndarray) -> list[dict[str, Any]]:
    """One point per failure for the map: id, cluster, noise flag, ``(x, y)``, category, score."""
    return [{"id": str(r["id"]), "cluster_id": names[labels[i]] if labels[i] >= 0 else UNCLUSTERED,
             "noise": bool(noise[i]), "x": round(float(coords[i, 0]), 5), "y": round(float(coords[i, 1]), 5),
             "category": r.get("category"), "score": r.get("score")} for i, r in enumerate(records)]


def describe_clusters(records: Sequence[Mapping[str, Any]], vectors: np.ndarray, labels: np.ndarray,
                      names: Sequence[str], noise: np.ndarray,
                      steps: Steps) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """Every cluster's entry (largest first), the ``unclustered`` group's, and the map's points.

    ``labels`` index ``names`` (``-1`` = noise); ``noise`` marks the rows the clusterer left
    out (those with a label now were assigned to their nearest cluster); ``vectors`` is ``(n, d)``.
    """
    assigned = noise & (labels >= 0)
    coords = project_2d(vectors, steps.projection)
    clusters = [describe_cluster(name, np.flatnonzero(labels == k), records, vectors, coords, steps.representer,
                                 assigned) for k, name in enumerate(names)]
    clusters.sort(key=lambda c: (-c["size"], c["cluster_id"]))
    unclustered = describe_cluster(UNCLUSTERED, np.flatnonzero(noise), records, vectors, coords, steps.representer,
                                   assigned)
    return clusters, unclustered, map_points(records, labels, names, noise, coords)


def cluster_failures(records: Sequence[Mapping[str, Any]], vectors: np.ndarray,
                     config: ClusteringConfig) -> dict[str, Any]:
    """Cluster failure embeddings with the steps of ``config`` and describe every cluster.

    Args:
        records: The failed records (``id``, ``category``, ``score``, ...), row-aligned with
            ``vectors``, ``(n, d)`` unit-normalised embeddings.

    Returns:
        ``clusters``: the clusterer's name, the settings the steps were built with, counts,
        stability, one entry per cluster (largest first), the ``unclustered`` group, and one
        point per failure for plotting.

    Raises:
        ValueError: If ``vectors`` has not one row per record, or a step is invalid.
    """
    n = len(records)
    if vectors.shape[0] != n:
        raise ValueError(f"{n} failures but {vectors.shape[0]} embeddings")
    steps = build_steps(config, n)
    groups = category_groups(records, config.per_category)
    labels, names, report = cluster_groups(reduce(vectors, steps.reducer), groups, steps.clusterer, config)
    noise = labels == -1
    if config.assign_noise:
        labels = assign_noise(vectors, labels, len(names))
    clusters, unclustered, points = describe_clusters(records, vectors, labels, names, noise, steps)
    return {"algorithm": type(steps.clusterer).__name__.lower(), "settings": steps.settings, "n_failures": n,
            "n_clusters": len(names), "n_unclustered": int(noise.sum()),
            "noise_assigned_to_nearest": bool(config.assign_noise), "stability": report, "clusters": clusters,
            "unclustered": unclustered, "points": points}
