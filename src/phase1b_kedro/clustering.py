"""Failure clustering: texts → (reduced) embeddings → clusters → per-cluster stats.

BERTopic-style steps, each swappable: the text to embed (:func:`failure_text`), the
embedding (:mod:`phase1b_kedro.embeddings`), an optional PCA reduction (HDBSCAN degrades in
hundreds of dimensions), the clusterer (scikit-learn HDBSCAN, KMeans or agglomerative), a
stability check (adjusted Rand index over subsamples and seeds) and a 2-D projection.
Noise points are never dropped: they form the explicit ``unclustered`` group (and can
optionally be assigned to the nearest cluster as well).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

UNCLUSTERED = "unclustered"
TEXT_FIELDS = ("prompt", "rationale", "output", "reference")


@dataclass(frozen=True)
class ClusteringConfig:
    """The ``clustering`` parameter group."""

    algorithm: str = "hdbscan"  # hdbscan | kmeans | agglomerative
    #: An int, or ``"auto"``: 1% of the failures, at least 5 (a few dozen patterns at most).
    min_cluster_size: int | str = "auto"
    min_samples: int | None = None
    n_clusters: int = 8
    reduce_dims: int | None = 32
    per_category: bool = False
    assign_noise: bool = False
    seed: int = 42
    stability_runs: int = 5
    stability_subsample: float = 0.8
    representatives: int = 5
    projection: str = "pca"  # pca | tsne

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ClusteringConfig:
        """Pick this class's keys out of the parameter group and check them."""
        config = cls(**{k: params[k] for k in cls.__dataclass_fields__ if k in params})
        if config.algorithm not in ("hdbscan", "kmeans", "agglomerative"):
            raise ValueError(f"clustering.algorithm must be hdbscan, kmeans or agglomerative, not {config.algorithm!r}")
        if config.projection not in ("pca", "tsne"):
            raise ValueError(f"clustering.projection must be pca or tsne, not {config.projection!r}")
        if config.min_cluster_size != "auto" and (not isinstance(config.min_cluster_size, int)
                                                  or config.min_cluster_size < 2):
            raise ValueError("clustering.min_cluster_size must be an integer >= 2 or 'auto'")
        if config.n_clusters < 1:
            raise ValueError("clustering.n_clusters must be >= 1")
        return config

    def resolved(self, n: int) -> ClusteringConfig:
        """This config with ``min_cluster_size`` fixed for ``n`` failures."""
        if self.min_cluster_size != "auto":
            return self
        return replace(self, min_cluster_size=max(5, round(n / 100)))


def failure_text(record: Mapping[str, Any], fields: Sequence[str], max_chars: int = 1000) -> str:
    """The text embedded for one failure.

    ``rationale`` is the judge's, used when the verdict came from an LLM, a verifiable check
    or running the code's tests (similarity rationales are only numbers); absent parts are skipped.
    """
    unknown = set(fields) - set(TEXT_FIELDS)
    if unknown:
        raise ValueError(f"clustering.text_fields: unknown {sorted(unknown)}; use {TEXT_FIELDS}")
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


def _reduce(vectors: np.ndarray, dims: int | None, seed: int) -> np.ndarray:
    from sklearn.decomposition import PCA

    if not dims or vectors.shape[0] <= dims or vectors.shape[1] <= dims:
        return vectors
    return PCA(n_components=dims, svd_solver="full", random_state=seed).fit_transform(vectors)


def fit_labels(vectors: np.ndarray, config: ClusteringConfig, seed: int | None = None) -> np.ndarray:
    """Cluster labels (``-1`` = noise) for the rows of ``vectors``."""
    from sklearn.cluster import HDBSCAN, AgglomerativeClustering, KMeans

    n = vectors.shape[0]
    seed = config.seed if seed is None else seed
    if config.algorithm == "hdbscan":
        if n < max(2, config.min_cluster_size):
            return np.full(n, -1)
        return HDBSCAN(min_cluster_size=config.min_cluster_size, min_samples=config.min_samples,
                       copy=True).fit_predict(vectors)
    k = min(config.n_clusters, n)
    if k < 2:
        return np.zeros(n, dtype=int)
    if config.algorithm == "kmeans":
        return KMeans(n_clusters=k, random_state=seed, n_init=10).fit_predict(vectors)
    return AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(vectors)


def stability(vectors: np.ndarray, labels: np.ndarray, config: ClusteringConfig) -> dict[str, Any]:
    """Adjusted Rand index between the clustering and re-clusterings of random subsamples.

    Each run draws ``stability_subsample`` of the points (and, for KMeans, a new seed),
    clusters them again and compares with the full clustering on the same points.
    """
    from sklearn.metrics import adjusted_rand_score

    n = vectors.shape[0]
    runs = int(config.stability_runs)
    if runs <= 0 or n < 4:
        return {"runs": 0, "ari_mean": None, "ari_min": None}
    rng = np.random.default_rng(config.seed)
    scores = []
    for r in range(runs):
        take = np.sort(rng.choice(n, size=max(2, int(round(n * config.stability_subsample))), replace=False))
        again = fit_labels(vectors[take], config, seed=config.seed + r + 1)
        scores.append(float(adjusted_rand_score(labels[take], again)))
    return {"runs": runs, "subsample": config.stability_subsample, "ari_mean": round(float(np.mean(scores)), 4),
            "ari_min": round(float(np.min(scores)), 4), "ari_per_run": [round(s, 4) for s in scores]}


def project_2d(vectors: np.ndarray, method: str, seed: int) -> np.ndarray:
    """2-D coordinates for plotting (PCA, or t-SNE)."""
    n = vectors.shape[0]
    if n == 0:
        return np.zeros((0, 2))
    if n < 3:
        return np.column_stack([np.arange(n, dtype=float), np.zeros(n)])
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, random_state=seed, perplexity=min(30.0, (n - 1) / 3), init="pca").fit_transform(vectors)
    from sklearn.decomposition import PCA

    return PCA(n_components=2, svd_solver="full", random_state=seed).fit_transform(vectors)


def cluster_failures(records: Sequence[Mapping[str, Any]], vectors: np.ndarray,
                     config: ClusteringConfig) -> dict[str, Any]:
    """Cluster failure embeddings and describe every cluster.

    Args:
        records: The failed records (``id``, ``category``, ``score``, ``prompt``), in the
            same order as ``vectors``.
        vectors: One unit-normalised embedding per record.
        config: Algorithm and knobs.

    Returns:
        ``clusters``: the settings, counts, stability, one entry per cluster (size, coverage,
        category mix, mean score, member ids, representatives, 2-D centroid), the
        ``unclustered`` group, and one point per failure for plotting.
    """
    n = len(records)
    if vectors.shape[0] != n:
        raise ValueError(f"{n} failures but {vectors.shape[0]} embeddings")
    config = config.resolved(n)
    reduced = _reduce(vectors, config.reduce_dims, config.seed) if n else vectors
    labels = np.full(n, -1)
    groups: list[tuple[str, np.ndarray]] = []
    if config.per_category:
        cats = sorted({r.get("category", "other") for r in records})
        groups = [(c, np.array([i for i, r in enumerate(records) if r.get("category", "other") == c])) for c in cats]
    elif n:
        groups = [("", np.arange(n))]
    names: list[str] = []
    offset = 0
    stab: dict[str, Any] = {}
    for prefix, idx in groups:
        sub = fit_labels(reduced[idx], config)
        stab[prefix or "all"] = stability(reduced[idx], sub, config)
        for local in sorted(set(sub) - {-1}):
            names.append(f"{prefix + '-' if prefix else ''}c{len(names) + 1:02d}")
            labels[idx[sub == local]] = offset
            offset += 1
    noise = labels == -1
    assigned = np.zeros(n, dtype=bool)
    if config.assign_noise and offset and noise.any():
        centroids = np.stack([vectors[labels == k].mean(axis=0) for k in range(offset)])
        nearest = np.argmax(vectors[noise] @ centroids.T, axis=1)
        assigned[noise] = True
        labels = labels.copy()
        labels[noise] = nearest
    coords = project_2d(vectors, config.projection, config.seed)
    clusters = [_describe(names[k], np.flatnonzero(labels == k), records, vectors, coords, n, config,
                          assigned) for k in range(offset)]
    clusters.sort(key=lambda c: (-c["size"], c["cluster_id"]))
    unclustered = _describe(UNCLUSTERED, np.flatnonzero(noise), records, vectors, coords, n, config, assigned)
    points = [{"id": str(r["id"]), "cluster_id": names[labels[i]] if labels[i] >= 0 else UNCLUSTERED,
               "noise": bool(noise[i]), "x": round(float(coords[i, 0]), 5), "y": round(float(coords[i, 1]), 5),
               "category": r.get("category"), "score": r.get("score")} for i, r in enumerate(records)]
    return {
        "algorithm": config.algorithm,
        "settings": {k: getattr(config, k) for k in config.__dataclass_fields__},
        "n_failures": n,
        "n_clusters": offset,
        "n_unclustered": int(noise.sum()),
        "noise_assigned_to_nearest": bool(config.assign_noise),
        "stability": stab,
        "clusters": clusters,
        "unclustered": unclustered,
        "points": points,
    }


def _describe(name: str, members: np.ndarray, records: Sequence[Mapping[str, Any]], vectors: np.ndarray,
              coords: np.ndarray, total: int, config: ClusteringConfig, assigned: np.ndarray) -> dict[str, Any]:
    if members.size == 0:
        return {"cluster_id": name, "size": 0, "coverage": 0.0, "categories": {}, "failure_modes": {}, "mean_score": None,
                "member_ids": [], "representative_ids": [], "centroid_2d": None, "noise_assigned": 0}
    centroid = vectors[members].mean(axis=0)
    closeness = vectors[members] @ centroid
    order = members[np.argsort(-closeness, kind="stable")]
    scores = [records[i].get("score") for i in members if records[i].get("score") is not None]
    return {
        "cluster_id": name,
        "size": int(members.size),
        "coverage": round(members.size / total, 4) if total else 0.0,
        "categories": dict(Counter(records[i].get("category", "other") for i in members).most_common()),
        "failure_modes": dict(Counter(records[i].get("failure_mode") or "wrong_answer" for i in members).most_common()),
        "max_tokens_out": max(((records[i].get("generation") or {}).get("tokens_out") or 0 for i in members), default=0),
        "mean_score": round(float(np.mean(scores)), 3) if scores else None,
        "member_ids": [str(records[i]["id"]) for i in members],
        "representative_ids": [str(records[i]["id"]) for i in order[: config.representatives]],
        "centroid_2d": [round(float(v), 5) for v in coords[members].mean(axis=0)],
        "noise_assigned": int(assigned[members].sum()),
    }
