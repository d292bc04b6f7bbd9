"""Clustering nodes: embed failure texts, cluster them, describe each cluster."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from phase1b_kedro.clustering import ClusteringConfig, cluster_failures, failure_text
from phase1b_kedro.embeddings import BUNDLED_MINILM, embed

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
