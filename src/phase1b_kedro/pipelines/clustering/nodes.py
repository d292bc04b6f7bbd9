"""Clustering nodes: embed failure texts, cluster them, describe each cluster, and measure
each pattern's failure rate against the passing records nearest to it."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import numpy as np

from phase1b_kedro.clustering import (
    ClusteringConfig,
    EmbeddingConfig,
    cluster_failures,
    failure_text,
)
from phase1b_kedro.embeddings import embed
from phase1b_kedro.stats import lift, wilson_interval

logger = logging.getLogger(__name__)


def embed_failures(failures: list[dict], params: dict[str, Any]) -> dict[str, np.ndarray]:
    """Embed each failure's text (by default the judge's rationale, then the prompt).

    Args:
        failures: Failed records from the judging stage.
        params: The ``clustering`` parameter group (its ``embedding`` group is used here; the
            whole group is checked, so a bad key stops the run before anything is embedded).

    Returns:
        ``failure_embeddings``: ``ids`` ``(n,)``, ``texts`` ``(n,)`` and unit-normalised
        ``vectors`` ``(n, d)`` float32, row-aligned.

    Raises:
        ValueError: If the parameters are invalid (naming the key).
    """
    config = ClusteringConfig.from_params(params).embedding
    texts = [failure_text(r, config.text_fields, config.max_text_chars) for r in failures]
    t0 = time.perf_counter()
    vectors = _embed(texts, config)
    logger.info("embedded %d failure texts in %.1f s", len(texts), time.perf_counter() - t0)
    return {"ids": np.asarray([str(r["id"]) for r in failures], dtype=str),
            "texts": np.asarray(texts, dtype=str), "vectors": vectors}


def _embed(texts: list[str], config: EmbeddingConfig) -> np.ndarray:
    return embed(texts, config.model, config.batch_size, progress=len(texts) > 200,
                 max_seq_length=config.max_seq_length)


def cluster_failures_node(failures: list[dict], failure_embeddings: dict[str, np.ndarray],
                          params: dict[str, Any]) -> dict[str, Any]:
    """Cluster the embeddings and describe every cluster and the unclustered group.

    Args:
        failures: Failed records (same order as the embeddings).
        failure_embeddings: Output of :func:`embed_failures`.
        params: The ``clustering`` parameter group.

    Returns:
        ``clusters`` (:func:`phase1b_kedro.clustering.cluster_failures`), plus ``embedding``
        settings and ``wall_s`` (seconds spent clustering).

    Raises:
        ValueError: If the embeddings are not those of these failures, the parameters are
            invalid, or a failure is missing from the result.
    """
    ids = [str(i) for i in failure_embeddings["ids"]]
    if ids != [str(r["id"]) for r in failures]:
        raise ValueError("failure_embeddings do not match failures: run the clustering pipeline from the start")
    vectors = np.asarray(failure_embeddings["vectors"], dtype=np.float32).reshape(len(ids), -1) if ids else \
        np.zeros((0, 1), dtype=np.float32)
    config = ClusteringConfig.from_params(params)
    t0 = time.perf_counter()
    result = cluster_failures(failures, vectors, config)
    result["embedding"] = {"model": config.embedding.model, "text_fields": list(config.embedding.text_fields),
                           "max_seq_length": config.embedding.max_seq_length}
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    _check_accounted(result, len(failures))
    return result


def _check_accounted(clusters: dict[str, Any], n_failures: int) -> None:
    """Raise ``ValueError`` unless the clusters (and the unclustered group, if kept apart) hold every failure."""
    accounted = sum(c["size"] for c in clusters["clusters"]) + (0 if clusters["noise_assigned_to_nearest"]
                                                                else clusters["n_unclustered"])
    if accounted != n_failures:
        raise ValueError(f"clusters hold {accounted} failures, {n_failures} went in")


def pattern_rates(clusters: dict[str, Any], judged_results: list[dict], params: dict[str, Any]) -> dict[str, Any]:
    """Failure rates per pattern: passing records assigned to the nearest pattern.

    Each passing record joins the pattern whose failures' mean prompt embedding is nearest
    (cosine). Failure rate = failures / (failures + passes assigned), with a Wilson 95%
    interval; lift against its categories' base rates (:func:`phase1b_kedro.stats.lift`).

    Args:
        clusters: Output of :func:`cluster_failures_node`.
        judged_results: Every judged record of the run.
        params: The ``clustering`` parameter group (its ``embedding`` model and limits).

    Returns:
        ``{"patterns": {cluster_id: {failures, passes, pass_ids, failure_rate, failure_rate_ci95,
        base_rate, lift, expected_failures, excess_failures}}, "passes_assigned", "text_fields"}``.
    """
    judged = [r for r in judged_results if r.get("passed") is not None]
    groups = [g for g in (*clusters["clusters"], clusters["unclustered"]) if g["size"]]
    if not judged or not groups:
        return {"patterns": {}, "passes_assigned": 0}
    config = ClusteringConfig.from_params(params).embedding
    vectors = _embed([failure_text(r, ["prompt"], config.max_text_chars) for r in judged], config)
    member_rows = _member_rows(judged, groups)
    passes = [i for i, r in enumerate(judged) if r["passed"]]
    nearest = _nearest_pattern(vectors, member_rows, passes)
    base = _category_rates(judged)
    out = {g["cluster_id"]: _pattern_rate(int(g["size"]), [judged[i] for i in rows],
                                          [judged[passes[j]] for j in np.flatnonzero(nearest == k)], base)
           for k, (g, rows) in enumerate(zip(groups, member_rows))}
    return {"patterns": out, "passes_assigned": len(passes), "text_fields": ["prompt"]}


def _member_rows(judged: list[dict], groups: list[dict]) -> list[list[int]]:
    """Per group, the rows of ``judged`` holding its members (in member order; absent ids skipped)."""
    row = {str(r["id"]): i for i, r in enumerate(judged)}
    return [[row[m] for m in g["member_ids"] if m in row] for g in groups]


def _nearest_pattern(vectors: np.ndarray, member_rows: list[list[int]], passes: list[int]) -> np.ndarray:
    """Index of the nearest pattern (cosine to the mean of its members' rows) for each passing row.

    Args:
        vectors: ``(n, d)`` unit-normalised prompt embeddings of the judged records.
        member_rows: Per pattern, the rows of its failures (at least one each).
        passes: Rows of the passing records.

    Returns:
        ``(len(passes),)`` pattern indices.
    """
    centroids = np.stack([vectors[rows].mean(axis=0) for rows in member_rows])
    return np.argmax(vectors[passes] @ centroids.T, axis=1) if passes else np.zeros(0, dtype=int)


def _pattern_rate(failed: int, failures: list[dict], assigned: list[dict], base: dict[str, float]) -> dict[str, Any]:
    """One pattern's counts, failure rate with its Wilson 95% interval, and lift over ``base`` rates."""
    members = failures + assigned
    total = len(members)
    return {"failures": failed, "passes": total - failed, "pass_ids": [str(r["id"]) for r in assigned],
            "failure_rate": round(failed / total, 4) if total else None,
            "failure_rate_ci95": wilson_interval(failed, total),
            **lift(failed, Counter(r.get("category", "other") for r in members), base)}


def _category_rates(judged: list[dict]) -> dict[str, float]:
    totals: Counter = Counter(r.get("category", "other") for r in judged)
    failed: Counter = Counter(r.get("category", "other") for r in judged if r["passed"] is False)
    return {c: failed[c] / n for c, n in totals.items()}
