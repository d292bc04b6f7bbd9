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
from dataclasses import dataclass, field
from typing import Any

from phase1b_kedro.allocation import allocate
from phase1b_kedro.configs import load_config
from phase1b_kedro.contract import generation_ok
from phase1b_kedro.judges import execution, verifiable
from phase1b_kedro.judges.cache import VerdictCache
from phase1b_kedro.judges.llm_judge import LLMJudge, LLMJudgeConfig, canary_pool
from phase1b_kedro.judges.protocol import JudgeItem
from phase1b_kedro.judges.sandbox import Sandbox
from phase1b_kedro.judges.similarity import SimilarityConfig, score_similarity
from phase1b_kedro.judges.verdict import Verdict
from phase1b_kedro.llm import LLMClient

logger = logging.getLogger(__name__)

STRATEGIES = ("verifiable", "similarity", "llm_batch", "llm_single", "hybrid")


class JudgeUnavailableError(RuntimeError):
    """Every call to the LLM judge failed (a wrong endpoint, a server that is down, a bad
    token): the run stops with the reason instead of writing a run of unjudged records."""
LLM_STRATEGIES = ("llm_batch", "llm_single")


@dataclass(frozen=True)
class JudgingSettings:
    """The ``judging`` parameter group, one typed config per concern.

    The judge model is the ``judge_model`` catalog dataset and its verdict cache the
    ``judge_cache`` dataset; only how to judge is a parameter.
    """

    #: ``verifiable`` | ``similarity`` | ``llm_batch`` | ``llm_single`` | ``hybrid``.
    strategy: str = "hybrid"
    #: ``hybrid``: what judges what the checks cannot (``similarity`` | ``llm_batch`` | ``llm_single``).
    fallback: str = "similarity"
    #: A score below this fails (applied after scoring, in its own node).
    failure_threshold: float = 7.0
    protocol: LLMJudgeConfig = field(default_factory=LLMJudgeConfig)
    execution: execution.ExecutionConfig = field(default_factory=execution.ExecutionConfig)
    verifiable: verifiable.VerifiableConfig = field(default_factory=verifiable.VerifiableConfig)
    similarity: SimilarityConfig = field(default_factory=SimilarityConfig)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> JudgingSettings:
        """Build and check the group.

        Raises:
            ValueError: For an unknown key (in any sub-group), strategy or fallback.
        """
        params = params or {}
        settings = load_config(
            cls, params, "judging",
            protocol=LLMJudgeConfig.from_params(params.get("protocol")),
            execution=execution.ExecutionConfig.from_params(params.get("execution")),
            verifiable=verifiable.VerifiableConfig.from_params(params.get("verifiable")),
            similarity=SimilarityConfig.from_params(params.get("similarity")))
        if settings.strategy not in STRATEGIES:
            raise ValueError(f"judging.strategy must be one of {STRATEGIES}, not {settings.strategy!r}")
        if settings.fallback not in ("similarity", *LLM_STRATEGIES):
            raise ValueError(f"judging.fallback must be similarity, llm_batch or llm_single, not {settings.fallback!r}")
        return settings

    @property
    def uses_llm(self) -> bool:
        """Whether the LLM judge may be called."""
        return self.strategy in LLM_STRATEGIES or (self.strategy == "hybrid" and self.fallback in LLM_STRATEGIES)


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
             config: execution.ExecutionConfig) -> tuple[list[int], dict[str, Any]]:
    """Judge records that carry tests by running them in the sandbox; return what is left.

    Code is never run unsandboxed: when execution is off or the sandbox does not work here,
    those records go on to the other rules and the summary says why.
    """
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


def score_records(records: Sequence[Mapping[str, Any]], settings: JudgingSettings | Mapping[str, Any] | None,
                  client: LLMClient | None = None,
                  cache: VerdictCache | None = None) -> tuple[list[Verdict], dict[str, Any]]:
    """A verdict for every record with the configured strategy.

    Args:
        records: Model output records.
        settings: The ``judging`` parameter group (or its :class:`JudgingSettings`).
        client: The judge model (the ``judge_model`` dataset); needed only when an LLM judges.
        cache: Where LLM verdicts are kept across runs (``judge_cache``); ``None`` = in memory.

    Returns:
        Verdicts in record order, and the run's counters (calls, cache hits, canaries,
        agreement-sample scores by record index, wall time).

    Raises:
        ValueError: For parameters the judge cannot use, or an LLM strategy without a client.
    """
    if not isinstance(settings, JudgingSettings):
        settings = JudgingSettings.from_params(settings)
    if settings.uses_llm and client is None:
        raise ValueError(f"judging.strategy {settings.strategy} needs a judge model (the judge_model dataset)")
    t0 = time.perf_counter()
    verdicts = _pre_verdicts(records)
    todo = [i for i, v in enumerate(verdicts) if v is None]
    exec_info: dict[str, Any] | None = None
    if settings.strategy in ("verifiable", "hybrid"):
        todo, exec_info = _verifiable(records, todo, verdicts, settings)
    stats: dict[str, Any] = {"strategy": settings.strategy,
                             "fallback": settings.fallback if settings.strategy == "hybrid" else None,
                             "judge_model": None, "judge_endpoint": None, "llm": None, "agreement_scores": {},
                             "execution": exec_info}
    stats.update(_second_pass(records, todo, verdicts, settings, client, cache))
    stats["wall_s"] = round(time.perf_counter() - t0, 2)
    return [v if v is not None else Verdict.unjudged("none", "not judged") for v in verdicts], stats


def _pre_verdicts(records: Sequence[Mapping[str, Any]]) -> list[Verdict | None]:
    """Before any strategy: a failed generation is unjudged (the model never answered, which
    says nothing about its ability) and an empty answer scores 0; ``None`` = still to judge."""
    verdicts: list[Verdict | None] = [None] * len(records)
    for i, record in enumerate(records):
        if not generation_ok(record):
            verdicts[i] = Verdict.unjudged("generation", f"generation failed: {record['generation'].get('error')}")
        elif not (record.get("output") or "").strip():
            verdicts[i] = Verdict(0.0, "verifiable", rule="empty_output", rationale="the model gave no answer",
                                  details={"mode": "empty"})
    return verdicts


def _verifiable(records: Sequence[Mapping[str, Any]], todo: list[int], verdicts: list[Verdict | None],
                settings: JudgingSettings) -> tuple[list[int], dict[str, Any]]:
    """Code run against its tests, then the deterministic checks; return what is left for the
    second pass (long free text, and with an LLM fallback the non-confident fails)."""
    todo, exec_info = _execute(records, todo, verdicts, settings.execution)
    llm_fallback = settings.strategy == "hybrid" and settings.fallback in LLM_STRATEGIES
    rest = []
    for i in todo:
        verdicts[i] = _check_one(records[i], settings.verifiable)
        if verdicts[i] is None or (llm_fallback and not verdicts[i].confident):
            rest.append(i)  # long free text, or a deterministic fail an LLM may overturn
    return rest, exec_info


def _second_pass(records: Sequence[Mapping[str, Any]], todo: list[int], verdicts: list[Verdict | None],
                 settings: JudgingSettings, client: LLMClient | None,
                 cache: VerdictCache | None) -> dict[str, Any]:
    """Judge ``todo`` with the fallback (hybrid) or the strategy itself; return stats to merge.

    A deterministic verdict the LLM could not replace is kept, with the LLM's reason added.
    """
    second = settings.fallback if settings.strategy == "hybrid" else settings.strategy
    if settings.strategy == "verifiable":
        for i in todo:
            verdicts[i] = Verdict.unjudged("verifiable", "no verifiable check applies to this reference")
        return {}
    if second == "similarity":
        for i, v in zip(todo, score_similarity([records[i] for i in todo], settings.similarity), strict=True):
            verdicts[i] = v
        return {"judge_model": settings.similarity.model}
    if not todo:
        return {}
    deterministic = {i: verdicts[i] for i in todo if verdicts[i] is not None}
    stats = _llm(records, todo, verdicts, settings.protocol, second, client, cache)
    for i, kept in deterministic.items():
        if verdicts[i] is not None and not verdicts[i].ok:  # the LLM gave no verdict
            kept.rationale += f" (LLM fallback gave no verdict: {verdicts[i].reason})"
            verdicts[i] = kept
    return stats


def _llm(records: Sequence[Mapping[str, Any]], todo: list[int], verdicts: list[Verdict | None],
         config: LLMJudgeConfig, strategy: str, client: LLMClient,
         cache: VerdictCache | None) -> dict[str, Any]:
    """Run the LLM judge on ``todo`` (then the permuted orders and the agreement sample); fill ``verdicts``."""
    judge = LLMJudge(client, config, cache if cache is not None else VerdictCache(None))
    items = [_to_item(records[i]) for i in todo]
    protocol = "batch" if strategy == "llm_batch" else "single"
    pool = canary_pool([records[i] for i in todo], max(8, 2 * config.canaries), config.seed) \
        if config.canaries > 0 and protocol == "batch" else []
    for i, v in zip(todo, judge.judge(items, protocol, pool, desc=f"judging ({strategy})"), strict=True):
        verdicts[i] = v
    _stop_if_unreachable(judge, [verdicts[i] for i in todo])
    calls = {"first": judge.counters.calls}
    permuted = _permuted(judge, items, pool, todo, verdicts) if protocol == "batch" else None
    calls["permutations"] = judge.counters.calls - sum(calls.values())
    agreement = _agreement_sample(judge, records, todo, verdicts) if protocol == "batch" else {}
    calls["agreement"] = judge.counters.calls - sum(calls.values())
    return {
        "judge_model": judge.identity["model"],
        "judge_endpoint": judge.identity["base_url"],
        "llm": {**judge.report(), "transport_retries": getattr(client, "retries", None), "calls_by_pass": calls,
                "permutations": permuted},
        "agreement_scores": {str(records[i]["id"]): s for i, s in agreement.items()},
    }


def _stop_if_unreachable(judge: LLMJudge, verdicts: list[Verdict | None]) -> None:
    """Raise :class:`JudgeUnavailableError` when the judge was called and no call succeeded.

    Isolated failures stay unjudged records with their reason; a failure that hits every call
    is systemic and stops the run, naming the endpoint and the commonest reason.
    """
    counters = judge.counters
    if not counters.calls or counters.call_errors < counters.calls:
        return
    reasons = Counter(v.reason for v in verdicts if v is not None and not v.ok and v.reason)
    reason = reasons.most_common(1)[0][0] if reasons else "no reason given"
    if judge.identity.get("backend") == "transformers":
        where = "the local model"
    else:
        where = judge.identity.get("base_url") or "Hugging Face Inference"
    raise JudgeUnavailableError(
        f"all {counters.calls} calls to the judge {judge.identity.get('model')!r} ({where}) failed; "
        f"the commonest reason: {reason[:300]}. Check the judge_model entry (backend, options.base_url, "
        f"credentials) or --params judge_base_url=...")


def _permuted(judge: LLMJudge, items: list[JudgeItem], pool: list[Any], todo: list[int],
              verdicts: list[Verdict | None]) -> dict[str, Any] | None:
    """Permuted re-judging (``permutations`` > 1): each re-judged item's scores over the orders."""
    config = judge.config
    if config.permutations <= 1:
        return None
    before = judge.counters.calls
    scores, picked = judge.permuted_scores(items, pool, desc="permuted re-judging")
    for j, others in scores.items():
        _add_orders(verdicts[todo[j]], others, config.vote)
    return {"orders": config.permutations, "sample": config.permutation_sample, "vote": config.vote,
            **picked, "calls": judge.counters.calls - before}


def _agreement_sample(judge: LLMJudge, records: Sequence[Mapping[str, Any]], todo: list[int],
                      verdicts: list[Verdict | None]) -> dict[int, float | None]:
    """``agreement_sample`` items (stratified by category) judged again one per call."""
    n = judge.config.agreement_sample
    if n <= 0:
        return {}
    judged = [i for i in todo if verdicts[i] is not None and verdicts[i].ok]
    sample = _stratified(judged, records, n, judge.config.seed)
    singles = judge.judge([_to_item(records[i]) for i in sample], "single", desc="agreement (single)")
    return {i: v.score for i, v in zip(sample, singles, strict=True)}


def _add_orders(verdict: Verdict | None, others: list[float | None], vote: bool) -> None:
    """Record an item's scores over the orders it was judged in; with ``vote``, take their median.

    The median of an odd number of scores is on the same side of any threshold as the
    majority of them: a median vote is a pass/fail majority vote at every threshold.
    """
    if verdict is None or not verdict.ok:
        return
    scores = [verdict.score, *others]
    verdict.details["order_scores"] = scores
    valid = [s for s in scores if s is not None]
    if vote and len(valid) >= 2:
        verdict.details["first_order_score"] = verdict.score
        verdict.details["vote"] = f"median of {len(valid)} orders"
        verdict.score = float(statistics.median(valid))
