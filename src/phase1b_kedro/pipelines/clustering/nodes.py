"""Clustering nodes: embed failure texts, cluster them, describe each cluster, and measure
each pattern's failure rate against the passing records nearest to it."""

from __future__ import annotations

import logging
import time
from typing import Any

from collections import Counter

import numpy as np

from phase1b_kedro.clustering import ClusteringConfig, cluster_failures, failure_text
from phase1b_kedro.embeddings import BUNDLED_MINILM, embed
from phase1b_kedro.stats import lift, wilson_interval

logger = logging.getLogger(__name__)


def embed_failures(failures: list[dict], params: dict[str, Any]) -> dict[str, np.ndarray]:
    """Embed each failure's text (by default the judge's rationale, then the prompt).

    Args:
        failures: Failed records from the judging stage.
        params: The ``clustering`` parameter group (``embedding_model``, ``text_fields``,
            ``max_text_chars``, ``batch_size``).

    Returns:
        ``failure_embeddings``: ``ids``, ``texts`` and unit-normalised ``vectors``, row-aligned.
    """
    fields = params.get("text_fields", ["rationale", "prompt"])
    texts = [failure_text(r, fields, int(params.get("max_text_chars", 1000))) for r in failures]
    t0 = time.perf_counter()
    vectors = embed(texts, params.get("embedding_model", BUNDLED_MINILM), int(params.get("batch_size", 16)),
                    progress=len(texts) > 200, max_seq_length=params.get("max_seq_length"))
    logger.info("embedded %d failure texts in %.1f s", len(texts), time.perf_counter() - t0)
    return {"ids": np.asarray([str(r["id"]) for r in failures], dtype=str),
            "texts": np.asarray(texts, dtype=str), "vectors": vectors}


def cluster_failures_node(failures: list[dict], failure_embeddings: dict[str, np.ndarray],
                          params: dict[str, Any]) -> dict[str, Any]:
    """Cluster the embeddings and describe every cluster and the unclustered group.

    Args:
        failures: Failed records (same order as the embeddings).
        failure_embeddings: Output of :func:`embed_failures`.
        params: The ``clustering`` parameter group.

    Returns:
        ``clusters`` (see :func:`phase1b_kedro.clustering.cluster_failures`), plus the
        embedding settings.

    Raises:
        ValueError: If the embeddings are not those of these failures.
    """
    ids = [str(i) for i in failure_embeddings["ids"]]
    if ids != [str(r["id"]) for r in failures]:
        raise ValueError("failure_embeddings do not match failures: run the clustering pipeline from the start")
    vectors = np.asarray(failure_embeddings["vectors"], dtype=np.float32).reshape(len(ids), -1) if ids else \
        np.zeros((0, 1), dtype=np.float32)
    t0 = time.perf_counter()
    result = cluster_failures(failures, vectors, ClusteringConfig.from_params(params))
    result["embedding"] = {"model": params.get("embedding_model", BUNDLED_MINILM),
                           "text_fields": list(params.get("text_fields", ["rationale", "prompt"])),
                           "max_seq_length": params.get("max_seq_length")}
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    accounted = sum(c["size"] for c in result["clusters"]) + (0 if result["noise_assigned_to_nearest"]
                                                              else result["n_unclustered"])
    if accounted != len(failures):
        raise ValueError(f"clusters hold {accounted} failures, {len(failures)} went in")
    return result


def pattern_rates(clusters: dict[str, Any], judged_results: list[dict], params: dict[str, Any]) -> dict[str, Any]:
    """Failure rates per pattern: passing records assigned to the nearest pattern.

    Failures were clustered on their verdict and prompt; here every judged record's prompt
    is embedded (the same model), each pattern's centroid is the mean of its failures'
    prompt vectors, and each passing record joins the pattern with the nearest centroid
    (cosine). A pattern's failure rate is failures / (failures + passes assigned), with a
    Wilson 95% interval, and its lift is measured against the base rates of its categories
    (:func:`phase1b_kedro.stats.lift`).

    Args:
        clusters: Output of :func:`cluster_failures_node`.
        judged_results: Every judged record of the run.
        params: The ``clustering`` parameter group (embedding model and limits).

    Returns:
        ``pattern_rates``: ``{"patterns": {cluster_id: {failures, passes, pass_ids, failure_rate,
        failure_rate_ci95, base_rate, lift, expected_failures, excess_failures}}, "passes_assigned"}``.
    """
    judged = [r for r in judged_results if r.get("passed") is not None]
    groups = [*clusters["clusters"], clusters["unclustered"]]
    groups = [g for g in groups if g["size"]]
    if not judged or not groups:
        return {"patterns": {}, "passes_assigned": 0}
    texts = [failure_text(r, ["prompt"], int(params.get("max_text_chars", 1000))) for r in judged]
    vectors = embed(texts, params.get("embedding_model", BUNDLED_MINILM), int(params.get("batch_size", 16)),
                    progress=len(texts) > 200, max_seq_length=params.get("max_seq_length"))
    row = {str(r["id"]): i for i, r in enumerate(judged)}
    centroids = np.stack([vectors[[row[m] for m in g["member_ids"] if m in row]].mean(axis=0) for g in groups])
    passes = [i for i, r in enumerate(judged) if r["passed"]]
    nearest = np.argmax(vectors[passes] @ centroids.T, axis=1) if passes else np.zeros(0, dtype=int)
    base = _category_rates(judged)
    out = {}
    for k, g in enumerate(groups):
        members = [judged[row[m]] for m in g["member_ids"] if m in row]
        assigned = [judged[passes[j]] for j in np.flatnonzero(nearest == k)]
        members += assigned
        failed, total = int(g["size"]), len(members)
        out[g["cluster_id"]] = {"failures": failed, "passes": total - failed,
                                "pass_ids": [str(r["id"]) for r in assigned],
                                "failure_rate": round(failed / total, 4) if total else None,
                                "failure_rate_ci95": wilson_interval(failed, total),
                                **lift(failed, Counter(r.get("category", "other") for r in members), base)}
    return {"patterns": out, "passes_assigned": len(passes), "text_fields": ["prompt"]}


def _category_rates(judged: list[dict]) -> dict[str, float]:
    totals: Counter = Counter(r.get("category", "other") for r in judged)
    failed: Counter = Counter(r.get("category", "other") for r in judged if r["passed"] is False)
    return {c: failed[c] / n for c, n in totals.items()}
