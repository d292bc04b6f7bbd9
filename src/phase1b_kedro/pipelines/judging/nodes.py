"""Judging nodes: score (the expensive part, cached), apply the threshold, summarise."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from phase1b_kedro.contract import verdict_ok
from phase1b_kedro.judges.cache import VerdictCache
from phase1b_kedro.judges.audit import permutation_summary, position_length_audit
from phase1b_kedro.judges.modes import failure_mode
from phase1b_kedro.judges.strategies import score_records
from phase1b_kedro.llm import LLMClient
from phase1b_kedro.records import CATEGORIES
from phase1b_kedro.stats import wilson_interval


def score_outputs(model_outputs: list[dict], judge_model: LLMClient, judge_cache: VerdictCache,
                  params: dict[str, Any]) -> tuple[list[dict], dict]:
    """Score every model output with the configured strategy; no threshold is applied here.

    Args:
        model_outputs: Records from the generation stage.
        judge_model: The LLM judge (catalog ``judge_model``; built only if an LLM judges).
        judge_cache: Valid LLM verdicts kept across runs (catalog ``judge_cache``); closed here.
        params: The ``judging`` parameter group (:class:`~phase1b_kedro.judges.strategies.JudgingSettings`).

    Returns:
        ``judge_scores`` (every input record plus ``score`` and ``judge``, in input order)
        and ``judge_run_stats`` (calls, cache hits, canaries, agreement scores, wall time).
    """
    with judge_cache:
        verdicts, stats = score_records(model_outputs, params, judge_model, judge_cache)
    agreement = stats.pop("agreement_scores", {}) or {}
    scores = []
    for record, verdict in zip(model_outputs, verdicts, strict=True):
        judge = {"strategy": stats["strategy"], "model": stats["judge_model"], **verdict.as_dict()}
        judge.pop("score")
        if str(record["id"]) in agreement:
            judge["single_call_score"] = agreement[str(record["id"])]
        scores.append({**record, "score": verdict.score, "judge": judge})
    stats["records_in"] = len(model_outputs)
    stats["records_out"] = len(scores)
    return scores, stats


def apply_threshold(judge_scores: list[dict], failure_threshold: float) -> tuple[list[dict], list[dict]]:
    """Mark each scored record passed (score >= threshold) or failed, and give each failure
    its ``failure_mode`` (:mod:`phase1b_kedro.judges.modes`); unjudged stay ``None``.

    Args:
        judge_scores: Output of :func:`score_outputs`.
        failure_threshold: A score below this fails.

    Returns:
        ``judged_results`` (every record with ``passed``) and ``failures`` (failed ones only).
    """
    threshold = float(failure_threshold)
    if not 0 <= threshold <= 10:
        raise ValueError(f"judging.failure_threshold must be within 0-10, got {failure_threshold!r}")
    judged = [{**r, "passed": None if r["score"] is None else bool(r["score"] >= threshold)}
              for r in judge_scores]
    judged = [{**r, "failure_mode": failure_mode(r)} for r in judged]
    return judged, [r for r in judged if r["passed"] is False]


def _agreement(judged_results: list[dict], threshold: float) -> dict[str, Any] | None:
    """Pass/fail agreement and Cohen's kappa between batch and single-call verdicts."""
    pairs = [(r["passed"], r["judge"]["single_call_score"] >= threshold) for r in judged_results
             if r["judge"].get("single_call_score") is not None and r["passed"] is not None]
    if not pairs:
        return None
    out = _kappa(pairs)
    out["note"] = None if out["cohen_kappa"] is not None else "kappa undefined: every verdict had the same label"
    return out


def _kappa(pairs: list[tuple[bool, bool]]) -> dict[str, Any]:
    """Agreement and Cohen's kappa of (judge, human) pass/fail pairs."""
    from sklearn.metrics import cohen_kappa_score

    first, second = zip(*pairs, strict=True)
    kappa = cohen_kappa_score(first, second) if len(set(first) | set(second)) > 1 else float("nan")
    return {"items": len(pairs), "agreement": round(sum(a == b for a, b in pairs) / len(pairs), 4),
            "cohen_kappa": None if math.isnan(kappa) else round(float(kappa), 4)}


def human_agreement(judged_results: list[dict], human_labels: list[dict]) -> dict[str, Any] | None:
    """The judge's pass/fail against human labels, overall and per category (as AlpacaEval
    reports agreement with human annotators); ``None`` without labels.

    Args:
        judged_results: Records with ``id``, ``category`` and ``passed``.
        human_labels: ``{"id": ..., "passed": bool}`` per labelled record.

    Returns:
        ``{items, agreement, cohen_kappa, judge_passed, human_passed, per_category,
        labels_without_record, labelled_but_unjudged}``.

    Raises:
        ValueError: If a label has no ``id`` or a non-boolean ``passed``.
    """
    if not human_labels:
        return None
    labels: dict[str, bool] = {}
    for k, label in enumerate(human_labels, 1):
        if "id" not in label or not isinstance(label.get("passed"), bool):
            raise ValueError(f"human_labels line {k}: needs an id and a boolean passed, got {str(label)[:120]}")
        labels[str(label["id"])] = label["passed"]
    by_id = {str(r["id"]): r for r in judged_results}
    pairs = [(by_id[i], h) for i, h in labels.items() if i in by_id and by_id[i]["passed"] is not None]
    if not pairs:
        return {"items": 0, "labels_without_record": sum(i not in by_id for i in labels)}
    per_cat: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for r, h in pairs:
        per_cat[r.get("category", "other")].append((r["passed"], h))
    return {**_kappa([(r["passed"], h) for r, h in pairs]),
            "judge_passed": sum(r["passed"] for r, _ in pairs), "human_passed": sum(h for _, h in pairs),
            "per_category": {c: _kappa(p) for c, p in sorted(per_cat.items())},
            "labels_without_record": sum(i not in by_id for i in labels),
            "labelled_but_unjudged": sum(i in by_id and by_id[i]["passed"] is None for i in labels)}


def summarise_judging(judged_results: list[dict], judge_run_stats: dict, params: dict[str, Any],
                      human_labels: list[dict] | None = None) -> dict:
    """Counts that reconcile, failure rates per category with Wilson intervals, judge health.

    Judge health for LLM verdicts: the judge's counters (``llm``, with the structured-output
    mode used and the reply budget), ``tokens`` (and the estimated cost), the effect of an
    item's position in its call and of its length on the score (``position_length_audit``),
    and the spread and pass/fail flips over permuted orders (``permutations``).

    Args:
        judged_results: Output of :func:`apply_threshold`.
        judge_run_stats: Output of :func:`score_outputs`.
        params: The ``judging`` parameter group.
        human_labels: Optional human verdicts (``id``, ``passed``) to measure the judge against.

    Returns:
        ``judge_summary``.

    Raises:
        ValueError: If the counts do not reconcile (a record was lost).
    """
    threshold = float(params["failure_threshold"])
    counts = Counter("passed" if r["passed"] else "failed" if r["passed"] is False else "unjudged"
                     for r in judged_results)
    if sum(counts.values()) != len(judged_results) or judge_run_stats["records_in"] != len(judged_results):
        raise ValueError("judging counts do not reconcile: records were lost")
    judged_n = counts["passed"] + counts["failed"]
    llm = dict(judge_run_stats.get("llm") or {})
    permuted, tokens = llm.pop("permutations", None), llm.pop("tokens", None)
    return {
        "items_in": len(judged_results),
        "judged": judged_n,
        "unjudged": counts["unjudged"],
        "unjudged_by_reason": dict(Counter(str(r["judge"].get("reason"))[:120] for r in judged_results
                                           if r["passed"] is None).most_common()),
        "passed": counts["passed"],
        "failed": counts["failed"],
        "failure_threshold": threshold,
        "failure_rate": round(counts["failed"] / judged_n, 4) if judged_n else None,
        "failure_rate_ci95": wilson_interval(counts["failed"], judged_n),
        **_by_category(judged_results),
        **_verdict_provenance(judged_results, judge_run_stats),
        "llm": llm or None,
        "tokens": tokens,
        "position_length_audit": position_length_audit(judged_results),
        "permutations": permutation_summary(judged_results, threshold, permuted),
        "agreement": _agreement(judged_results, threshold),
        "human_agreement": human_agreement(judged_results, human_labels or []),
        "execution": judge_run_stats.get("execution"),
        "scoring_wall_s": judge_run_stats.get("wall_s"),
    }


def _by_category(judged_results: list[dict]) -> dict[str, Any]:
    """``per_category`` (counts, failure rate with its Wilson interval), ``failure_modes``
    overall and per category with failures."""
    per_cat: dict[str, Counter] = defaultdict(Counter)
    for r in judged_results:
        per_cat[r.get("category", "other")]["passed" if r["passed"] else "failed" if r["passed"] is False
                                             else "unjudged"] += 1
    categories = {}
    for cat in [c for c in CATEGORIES if c in per_cat] + sorted(set(per_cat) - set(CATEGORIES)):
        c = per_cat[cat]
        judged_n = c["passed"] + c["failed"]
        categories[cat] = {
            "items": c["passed"] + c["failed"] + c["unjudged"], "passed": c["passed"], "failed": c["failed"],
            "unjudged": c["unjudged"],
            "failure_rate": round(c["failed"] / judged_n, 4) if judged_n else None,
            "failure_rate_ci95": wilson_interval(c["failed"], judged_n),
        }
    failed = [r for r in judged_results if r["passed"] is False]
    return {
        "per_category": categories,
        "failure_modes": dict(Counter(r.get("failure_mode") for r in failed).most_common()),
        "failure_modes_per_category": {c: dict(Counter(r.get("failure_mode") for r in failed
                                                       if r.get("category", "other") == c).most_common())
                                       for c in categories if categories[c]["failed"]},
    }


def _verdict_provenance(judged_results: list[dict], judge_run_stats: dict) -> dict[str, Any]:
    """Where verdicts came from (source, rule, status) and which judge gave them."""
    return {
        "verdicts_by_source": dict(Counter(r["judge"]["source"] for r in judged_results
                                           if verdict_ok(r)).most_common()),
        "verdicts_by_rule": dict(Counter(r["judge"].get("rule") for r in judged_results
                                         if verdict_ok(r)).most_common()),
        "status": dict(Counter(r["judge"]["status"] for r in judged_results)),
        **{k: judge_run_stats.get(k) for k in ("strategy", "fallback", "judge_model", "judge_endpoint")},
    }
