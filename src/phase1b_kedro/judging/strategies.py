"""Judge strategies behind one entry point, :func:`score_records`.

- ``verifiable``: code run against its tests in a sandbox (:mod:`.execution`), then the
  deterministic checks (:mod:`.verifiable`); long free-text references are ``unjudged``.
- ``similarity``: embedding cosine + token F1 + ROUGE-L (no API calls).
- ``llm_batch`` / ``llm_single``: an LLM judge through the shared client interface.
- ``hybrid``: ``verifiable`` first. Long free-text references go to ``fallback`` (any of the
  three above); a deterministic fail that is not confident (no comparable answer found,
  structured text that differs) goes to the fallback only when it is an LLM: short and
  structured references are never judged by similarity.

Before any strategy: a record whose generation failed is ``unjudged`` (the model never
answered, which says nothing about its ability), and an empty answer scores 0.
"""

from __future__ import annotations

import logging
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from phase1b_kedro.judging import execution, verifiable
from phase1b_kedro.judging.cache import VerdictCache
from phase1b_kedro.judging.llm_judge import LLMJudge, LLMJudgeConfig, canary_pool
from phase1b_kedro.judging.protocol import JudgeItem
from phase1b_kedro.judging.sandbox import Sandbox
from phase1b_kedro.judging.similarity import SimilarityConfig, score_similarity
from phase1b_kedro.judging.verdict import Verdict
from phase1b_kedro.llm import LLMClient, make_client
from phase1b_kedro.sampling import allocate

logger = logging.getLogger(__name__)

STRATEGIES = ("verifiable", "similarity", "llm_batch", "llm_single", "hybrid")
LLM_STRATEGIES = ("llm_batch", "llm_single")


def judge_client_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``judging`` group as ``make_client`` parameters.

    Each backend picks its own keys; only ``batch_size`` means something else here (items
    per judge call), so the transformers backend gets ``calls_per_generate`` instead.
    """
    return {**params, "batch_size": params.get("calls_per_generate", 4)}


def _to_item(record: Mapping[str, Any]) -> JudgeItem:
    return JudgeItem(prompt=record.get("prompt") or "", reference=record.get("reference") or "",
                     output=record.get("output") or "",
                     acceptable=tuple(verifiable.acceptable_answers(record)))


def _stratified(indices: Sequence[int], records: Sequence[Mapping[str, Any]], n: int, seed: int) -> list[int]:
    """``n`` indices spread over categories in proportion to their size (the sampling allocator)."""
    by_cat: dict[str, list[int]] = defaultdict(list)
    for i in indices:
        by_cat[records[i].get("category", "other")].append(i)
    counts = allocate({c: len(m) for c, m in by_cat.items()}, n, min_per_category=1)
    rng = random.Random(seed)
    return sorted(i for cat in sorted(by_cat) for i in rng.sample(by_cat[cat], counts[cat]))


def _execute(records: Sequence[Mapping[str, Any]], todo: list[int], verdicts: list[Verdict | None],
             params: Mapping[str, Any] | None) -> tuple[list[int], dict[str, Any]]:
    """Judge records that carry tests by running them in the sandbox; return what is left.

    Code is never run unsandboxed: when execution is off or the sandbox does not work here,
    those records go on to the other rules and the summary says why.
    """
    config = execution.ExecutionConfig.from_params(params)
    with_tests = [i for i in todo if (records[i].get("meta") or {}).get("tests")]
    info: dict[str, Any] = {"enabled": config.enabled, "items_with_tests": len(with_tests), "executed": 0}
    if not with_tests:
        return todo, info
    if not config.enabled:
        info["not_run"] = "judging.execution.enabled is false: code with tests judged by the other rules"
        return todo, info
    sandbox = Sandbox(config.sandbox)
    ok, why = sandbox.available()
    if not ok:
        logger.warning("Code is not executed (%s); %d records with tests go to the other rules", why, len(with_tests))
        info["not_run"] = f"sandbox unavailable: {why}"
        return todo, info
    results = execution.run_tests([records[i] for i in with_tests], config, sandbox)
    for i, v in zip(with_tests, results, strict=True):
        verdicts[i] = v
    info["executed"] = len(with_tests)
    info["by_outcome"] = dict(Counter(v.details["outcome"] for v in results).most_common())
    done = set(with_tests)
    return [i for i in todo if i not in done], info


def _check_one(record: Mapping[str, Any], config: verifiable.VerifiableConfig) -> Verdict | None:
    """``verifiable.check``, with any exception turned into an unjudged verdict with its reason:
    one pathological output never stops the run."""
    try:
        return verifiable.check(record, config)
    except Exception as exc:  # noqa: BLE001 - errors as values: the record is accounted for
        logger.warning("verifiable check failed on record %s: %r", record.get("id"), exc)
        return Verdict.unjudged("verifiable", f"checker error: {type(exc).__name__}: {str(exc)[:200]}")


def score_records(records: Sequence[Mapping[str, Any]], params: Mapping[str, Any],
                  client: LLMClient | None = None) -> tuple[list[Verdict], dict[str, Any]]:
    """A verdict for every record with the configured strategy.

    Args:
        records: Model output records.
        params: The ``judging`` parameter group.
        client: A judge client to use instead of building one (tests).

    Returns:
        Verdicts in record order, and the run's counters (calls, cache hits, canaries,
        agreement-sample scores by record index, wall time).
    """
    strategy = params.get("strategy", "hybrid")
    fallback = params.get("fallback", "similarity")
    if strategy not in STRATEGIES:
        raise ValueError(f"judging.strategy must be one of {STRATEGIES}, not {strategy!r}")
    if strategy == "hybrid" and fallback not in ("similarity", *LLM_STRATEGIES):
        raise ValueError(f"judging.fallback must be similarity, llm_batch or llm_single, not {fallback!r}")
    t0 = time.perf_counter()
    verdicts: list[Verdict | None] = [None] * len(records)
    for i, record in enumerate(records):
        generation = record.get("generation") or {}
        if generation.get("status", "ok") != "ok":
            verdicts[i] = Verdict.unjudged("generation", f"generation failed: {generation.get('error')}")
        elif not (record.get("output") or "").strip():
            verdicts[i] = Verdict(0.0, "verifiable", rule="empty_output", rationale="the model gave no answer",
                                  details={"mode": "empty"})

    todo = [i for i, v in enumerate(verdicts) if v is None]
    exec_info: dict[str, Any] | None = None
    if strategy in ("verifiable", "hybrid"):
        todo, exec_info = _execute(records, todo, verdicts, params.get("execution"))
        config = verifiable.VerifiableConfig.from_params(params.get("verifiable"))
        llm_fallback = strategy == "hybrid" and fallback in LLM_STRATEGIES
        rest = []
        for i in todo:
            verdicts[i] = _check_one(records[i], config)
            if verdicts[i] is None or (llm_fallback and not verdicts[i].confident):
                rest.append(i)  # long free text, or a deterministic fail an LLM may overturn
        todo = rest
    second = fallback if strategy == "hybrid" else strategy
    stats: dict[str, Any] = {"strategy": strategy, "fallback": fallback if strategy == "hybrid" else None,
                             "judge_model": None, "judge_endpoint": None, "llm": None, "agreement_scores": {},
                             "execution": exec_info}
    if strategy == "verifiable":
        for i in todo:
            verdicts[i] = Verdict.unjudged("verifiable", "no verifiable check applies to this reference")
    elif second == "similarity":
        sim_config = SimilarityConfig.from_params(params.get("similarity"))
        sim = score_similarity([records[i] for i in todo], sim_config)
        for i, v in zip(todo, sim, strict=True):
            verdicts[i] = v
        stats["judge_model"] = sim_config.model
    elif todo:
        deterministic = {i: verdicts[i] for i in todo if verdicts[i] is not None}
        stats.update(_llm(records, todo, verdicts, params, second, client))
        for i, kept in deterministic.items():
            if verdicts[i] is not None and verdicts[i].status != "ok":  # the LLM gave no verdict
                kept.rationale += f" (LLM fallback gave no verdict: {verdicts[i].reason})"
                verdicts[i] = kept
    stats["wall_s"] = round(time.perf_counter() - t0, 2)
    return [v if v is not None else Verdict.unjudged("none", "not judged") for v in verdicts], stats


def _llm(records: Sequence[Mapping[str, Any]], todo: list[int], verdicts: list[Verdict | None],
         params: Mapping[str, Any], strategy: str, client: LLMClient | None) -> dict[str, Any]:
    """Run the LLM judge on ``todo`` (then the permuted orders and the agreement sample); fill ``verdicts``."""
    config = LLMJudgeConfig.from_params(params)
    client = client or make_client(judge_client_params(params))
    calls: dict[str, int] = {}
    with VerdictCache(params.get("cache_path")) as cache:
        judge = LLMJudge(client, config, cache)
        items = [_to_item(records[i]) for i in todo]
        protocol = "batch" if strategy == "llm_batch" else "single"
        pool = canary_pool([records[i] for i in todo], max(8, 2 * config.canaries), config.seed) \
            if config.canaries > 0 and protocol == "batch" else []
        for i, v in zip(todo, judge.judge(items, protocol, pool, desc=f"judging ({strategy})"), strict=True):
            verdicts[i] = v
        calls["first"] = judge.counters.calls
        permuted: dict[str, Any] | None = None
        if protocol == "batch" and config.permutations > 1:
            scores, picked = judge.permuted_scores(items, pool, desc="permuted re-judging")
            for j, others in scores.items():
                _add_orders(verdicts[todo[j]], others, config.vote)
            permuted = {"orders": config.permutations, "sample": config.permutation_sample, "vote": config.vote,
                        **picked, "calls": judge.counters.calls - calls["first"]}
        calls["permutations"] = judge.counters.calls - sum(calls.values())
        agreement: dict[int, float | None] = {}
        n_agree = int(params.get("agreement_sample") or 0)
        if n_agree > 0 and protocol == "batch":
            judged = [i for i in todo if verdicts[i] is not None and verdicts[i].status == "ok"]
            sample = _stratified(judged, records, n_agree, config.seed)
            singles = judge.judge([_to_item(records[i]) for i in sample], "single", desc="agreement (single)")
            agreement = {i: v.score for i, v in zip(sample, singles, strict=True)}
        calls["agreement"] = judge.counters.calls - sum(calls.values())
        retries = getattr(client, "retries", None)
    return {
        "judge_model": judge.identity["model"],
        "judge_endpoint": judge.identity["base_url"],
        "llm": {**judge.report(), "transport_retries": retries, "calls_by_pass": calls, "permutations": permuted},
        "agreement_scores": {str(records[i]["id"]): s for i, s in agreement.items()},
    }


def _add_orders(verdict: Verdict | None, others: list[float | None], vote: bool) -> None:
    """Record an item's scores over the orders it was judged in; with ``vote``, take their median.

    The median of an odd number of scores is on the same side of any threshold as the
    majority of them: a median vote is a pass/fail majority vote at every threshold.
    """
    if verdict is None or verdict.status != "ok":
        return
    scores = [verdict.score, *others]
    verdict.details["order_scores"] = scores
    valid = [s for s in scores if s is not None]
    if vote and len(valid) >= 2:
        verdict.details["first_order_score"] = verdict.score
        verdict.details["vote"] = f"median of {len(valid)} orders"
        verdict.score = float(statistics.median(valid))
