"""No-API judging: embedding cosine combined with token F1 and ROUGE-L, mapped to 0-10.

``score = 10 * (w_emb * cos' + w_f1 * F1 + w_rouge * ROUGE-L) / (w_emb + w_f1 + w_rouge)``
where ``cos'`` rescales the cosine linearly from [``cosine_floor``, ``cosine_ceiling``] to
[0, 1] (clipped): unrelated sentences of all-MiniLM-L6-v2 sit around 0.0-0.3 and
paraphrases above 0.8, so the raw cosine would compress every score into the middle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from phase1b_kedro.configs import load_config
from phase1b_kedro.embeddings import BUNDLED_MINILM, embed
from phase1b_kedro.judges.text import rouge_l, token_f1
from phase1b_kedro.judges.verdict import Verdict
from phase1b_kedro.judges.verifiable import acceptable_answers


@dataclass(frozen=True)
class SimilarityConfig:
    """Model and weights of the similarity score."""

    model: str = BUNDLED_MINILM
    weights: Mapping[str, float] = field(default_factory=lambda: {"embedding": 0.6, "token_f1": 0.2, "rouge_l": 0.2})
    cosine_floor: float = 0.3
    cosine_ceiling: float = 0.85
    batch_size: int = 16

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> SimilarityConfig:
        """Build from ``judging.similarity`` (missing keys keep defaults; unknown keys fail).

        Raises:
            ValueError: For an unknown key, a ceiling not above the floor, or weights summing to 0.
        """
        weights = (params or {}).get("weights")
        nested = {"weights": dict(weights)} if weights else {}
        config = load_config(cls, params, "judging.similarity", **nested)
        if config.cosine_ceiling <= config.cosine_floor:
            raise ValueError("judging.similarity: cosine_ceiling must be above cosine_floor")
        if sum(config.weights.values()) <= 0:
            raise ValueError("judging.similarity.weights must sum to more than 0")
        return config


def score_similarity(records: Sequence[Mapping[str, Any]], config: SimilarityConfig | None = None) -> list[Verdict]:
    """Score each output against its best-matching acceptable answer (no API calls).

    Args:
        records: Model output records (``output``, ``reference``, ``meta.acceptable``).
        config: Model and weights.

    Returns:
        One ``similarity`` verdict per record, in order.
    """
    config = config or SimilarityConfig()
    if not records:
        return []
    answers = [acceptable_answers(r) or [""] for r in records]
    outputs = [r.get("output") or "" for r in records]
    flat = [a for group in answers for a in group]
    vectors = embed(outputs + flat, config.model, config.batch_size)
    out_vec, ans_vec = vectors[: len(outputs)], vectors[len(outputs):]
    w = config.weights
    total_w = sum(w.values())
    verdicts, offset = [], 0
    for i, (output, group) in enumerate(zip(outputs, answers, strict=True)):
        best: tuple[float, dict[str, float]] | None = None
        for j, answer in enumerate(group):
            cos = float(np.dot(out_vec[i], ans_vec[offset + j])) if output.strip() else 0.0
            scaled = min(1.0, max(0.0, (cos - config.cosine_floor) / (config.cosine_ceiling - config.cosine_floor)))
            parts = {"cosine": round(cos, 4), "token_f1": round(token_f1(output, answer), 4),
                     "rouge_l": round(rouge_l(output, answer), 4)}
            value = 10 * (w.get("embedding", 0) * scaled + w.get("token_f1", 0) * parts["token_f1"]
                          + w.get("rouge_l", 0) * parts["rouge_l"]) / total_w
            if best is None or value > best[0]:
                best = (value, parts)
        offset += len(group)
        assert best is not None
        score, parts = round(best[0], 3), best[1]
        verdicts.append(Verdict(score, "similarity", rule="similarity", details=parts,
                                rationale=f"similarity score {score:.1f}/10 (a long free-text reference): "
                                          f"cosine {parts['cosine']:.2f}, token F1 {parts['token_f1']:.2f}, "
                                          f"ROUGE-L {parts['rouge_l']:.2f}"))
    return verdicts
