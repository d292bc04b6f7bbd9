"""LLM judging in batches (or one item per call) with validation, re-judging, canaries and a cache.

Rounds: every item without a cached verdict is packed into calls of at most ``batch_size``
items and ``max_batch_chars`` characters. Items that come back missing or invalid, and
every item of a call whose canaries were graded wrong, go to the next round at half the
batch size; at one item per call an item gets ``single_attempts`` tries, after which it is
``unjudged`` with the last reason. Calls run ``concurrency`` at a time (the client's
bound); each call's valid verdicts are written to the cache as soon as it returns.

Canaries (``canaries`` per call, when a call holds two or more items): built from the data
being judged, a record's own reference as the output (must score >= ``canary_pass_min``) or
another record's reference (must score <= ``canary_fail_max``), placed at random positions
with random ids like every other item, so the judge cannot tell them apart.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm.auto import tqdm

from phase1b_kedro.checkpoint import stable_key
from phase1b_kedro.judging.cache import VerdictCache
from phase1b_kedro.judging.protocol import (
    TEMPLATE_HASH,
    Call,
    JudgeItem,
    build_call,
    item_chars,
    parse_response,
    response_format,
)
from phase1b_kedro.judging.verdict import Verdict
from phase1b_kedro.llm import ChatResult, GenerationConfig, LLMClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LLMJudgeConfig:
    """Protocol knobs (the ``judging`` parameter group)."""

    batch_size: int = 50
    max_batch_chars: int = 60_000
    max_field_chars: int = 2_000
    canaries: int = 0
    canary_pass_min: float = 7.0
    canary_fail_max: float = 3.0
    single_attempts: int = 2
    tokens_per_item: int = 80
    max_new_tokens: int = 4_096
    max_input_tokens: int = 16_384
    temperature: float = 0.0
    seed: int = 42
    structured_output: str = "none"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> LLMJudgeConfig:
        """Pick this class's keys out of the ``judging`` group."""
        names = cls.__dataclass_fields__.keys()
        config = cls(**{k: params[k] for k in names if params.get(k) is not None})
        if config.batch_size < 1 or config.single_attempts < 1:
            raise ValueError("judging.batch_size and judging.single_attempts must be at least 1")
        return config


@dataclass
class JudgeCounters:
    """What the judge did, for ``judge_summary``."""

    calls: int = 0
    call_errors: int = 0
    items_sent: int = 0
    cache_hits: int = 0
    parse_failures: int = 0
    invalid_items: int = 0
    unknown_ids: int = 0
    rejudged_items: int = 0
    canaries_sent: int = 0
    canaries_correct: int = 0
    canaries_wrong: int = 0
    canaries_unanswered: int = 0
    compromised_calls: int = 0
    rounds: list[dict[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict with the derived rates and the batch sizes used."""
        graded = self.canaries_correct + self.canaries_wrong
        return {
            **asdict(self),
            "batch_sizes_used": dict(Counter(r["batch_size"] for r in self.rounds)),
            "items_per_call": round(self.items_sent / self.calls, 2) if self.calls else None,
            "parse_failure_rate": round(self.parse_failures / self.calls, 4) if self.calls else None,
            "canary_accuracy": round(self.canaries_correct / graded, 4) if graded else None,
        }


class LLMJudge:
    """Grades records with an :class:`~phase1b_kedro.llm.LLMClient` (any backend)."""

    def __init__(self, client: LLMClient, config: LLMJudgeConfig, cache: VerdictCache) -> None:
        """Args:
        client: The judge model's client.
        config: Protocol knobs.
        cache: Where valid verdicts are kept across runs.
        """
        self.client, self.config, self.cache = client, config, cache
        self.counters = JudgeCounters()
        info = client.describe()
        self.identity = {
            "model": info.get("model"), "backend": info.get("backend"), "base_url": info.get("base_url"),
            "template": TEMPLATE_HASH, "temperature": config.temperature, "seed": config.seed,
            "max_field_chars": config.max_field_chars, "structured_output": config.structured_output,
        }
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ keys
    def item_key(self, item: JudgeItem, protocol: str) -> str:
        """Cache key: judge identity + protocol + the item's content."""
        return stable_key(self.identity, protocol, item.prompt, item.reference, list(item.acceptable), item.output)

    # ------------------------------------------------------------------ public
    def judge(self, items: Sequence[JudgeItem], protocol: str = "batch",
              canary_pool: Sequence[JudgeItem] = (), desc: str = "judging") -> list[Verdict]:
        """A verdict for every item: valid LLM score, or ``unjudged`` with the reason.

        Args:
            items: What to grade.
            protocol: ``batch`` (``batch_size`` items per call, halving on failure) or
                ``single`` (one item per call, no canaries).
            canary_pool: Canary items to draw from (``config.canaries`` per batch call).
            desc: Progress-bar label.

        Returns:
            One verdict per item, in order.
        """
        keys = [self.item_key(item, protocol) for item in items]
        cached = self.cache.get_many(keys)
        verdicts: list[Verdict | None] = [None] * len(items)
        for i, key in enumerate(keys):
            if key in cached:
                score, rationale = cached[key]
                verdicts[i] = Verdict(score, "llm", rationale=rationale, rule=f"llm_{protocol}",
                                      details={"cached": True})
        self.counters.cache_hits += len(cached)
        pending = [i for i, v in enumerate(verdicts) if v is None]
        size = self.config.batch_size if protocol == "batch" else 1
        rng = random.Random(f"{self.config.seed}:{protocol}:{len(items)}")
        reasons: dict[int, str] = {}
        attempts_single = 0
        round_no = 0
        with tqdm(total=len(pending), desc=desc, unit="item", disable=not pending) as bar:
            while pending:
                round_no += 1
                calls = self._pack(pending, items, size, canary_pool if size > 1 else (), rng)
                failed = self._run_round(calls, items, keys, verdicts, reasons, protocol, bar)
                self.counters.rounds.append({"round": round_no, "batch_size": size, "calls": len(calls),
                                             "items": len(pending), "failed": len(failed)})
                tried, pending = len(pending), failed
                if size == 1:
                    attempts_single += 1
                    if attempts_single >= self.config.single_attempts:
                        break  # what is still pending becomes unjudged below
                if failed:
                    self.counters.rejudged_items += len(failed)
                    logger.info("judge round %d: %d of %d items need another try (next batch size %d)",
                                round_no, len(failed), tried, max(1, size // 2))
                size = max(1, size // 2)
        for i in pending:
            verdicts[i] = Verdict.unjudged("llm", reasons.get(i, "no valid verdict"),
                                           attempts=round_no)
        return [v if v is not None else Verdict.unjudged("llm", "not judged") for v in verdicts]

    # ------------------------------------------------------------------ internals
    def _pack(self, pending: Sequence[int], items: Sequence[JudgeItem], size: int,
              canary_pool: Sequence[JudgeItem], rng: random.Random) -> list[tuple[list[int], Call]]:
        """Group pending items into calls under the item and character caps."""
        groups: list[list[int]] = []
        current: list[int] = []
        chars = 0
        for i in pending:
            need = item_chars(items[i], self.config.max_field_chars)
            if current and (len(current) >= size or chars + need > self.config.max_batch_chars):
                groups.append(current)
                current, chars = [], 0
            current.append(i)
            chars += need
        if current:
            groups.append(current)
        by_kind = {kind: [c for c in canary_pool if c.canary == kind] for kind in ("pass", "fail")} \
            if canary_pool else {}
        calls = []
        for group in groups:
            members: list[JudgeItem | int] = list(group)
            if by_kind and self.config.canaries > 0:
                # Both kinds in every call that has two or more: a judge that gives everything
                # 10 (or 0) is caught only by a must-fail (must-pass) canary.
                kinds = ["fail", "pass"] if self.config.canaries >= 2 else [rng.choice(["fail", "pass"])]
                for k in range(self.config.canaries):
                    pool = by_kind[kinds[k % len(kinds)]] or list(canary_pool)
                    members.insert(rng.randrange(len(members) + 1), rng.choice(pool))
            judge_items = [items[m] if isinstance(m, int) else m for m in members]
            call = build_call(judge_items, self.config.max_field_chars)
            calls.append(([m if isinstance(m, int) else -1 for m in members], call))
        return calls

    def _generation_config(self, call: Call) -> GenerationConfig:
        return GenerationConfig(
            max_new_tokens=min(self.config.max_new_tokens, self.config.tokens_per_item * len(call.ids) + 64),
            temperature=self.config.temperature, seed=self.config.seed,
            max_input_tokens=self.config.max_input_tokens,
            response_format=response_format(self.config.structured_output),
        )

    def _run_round(self, calls: list[tuple[list[int], Call]], items: Sequence[JudgeItem], keys: Sequence[str],
                   verdicts: list[Verdict | None], reasons: dict[int, str], protocol: str,
                   bar: Any) -> list[int]:
        """Send one round's calls; fill ``verdicts``; return the items that need another try."""
        failed: list[int] = []
        # Calls with the same request configuration (in a round: all but maybe the last,
        # whose max_new_tokens is smaller) go out together, ``concurrency`` at a time.
        by_config: dict[str, tuple[GenerationConfig, list[int]]] = {}
        for n, (_, call) in enumerate(calls):
            config = self._generation_config(call)
            by_config.setdefault(stable_key(config.as_dict()), (config, []))[1].append(n)
        for config, group in by_config.values():
            def on_result(k: int, res: ChatResult, group: list[int] = group) -> None:
                positions, call = calls[group[k]]
                bad = self._take(positions, call, res, items, keys, verdicts, reasons, protocol)
                with self._lock:
                    failed.extend(bad)
                    bar.update(sum(p >= 0 for p in positions) - len(bad))

            self.client.generate([calls[n][1].messages for n in group], config, on_result=on_result)
        return sorted(failed)

    def _take(self, positions: list[int], call: Call, res: ChatResult, items: Sequence[JudgeItem],
              keys: Sequence[str], verdicts: list[Verdict | None], reasons: dict[int, str],
              protocol: str) -> list[int]:
        """Validate one call's reply; store its valid verdicts; return the items to re-judge."""
        real = [(p, iid) for p, iid in zip(positions, call.ids, strict=True) if p >= 0]
        canaries = [(item, iid) for p, iid, item in zip(positions, call.ids, call.items, strict=True) if p < 0]
        with self._lock:
            self.counters.calls += 1
            self.counters.items_sent += len(real)
            self.counters.canaries_sent += len(canaries)
        if res.status != "ok":
            with self._lock:
                self.counters.call_errors += 1
                for p, _ in real:
                    reasons[p] = f"judge call failed: {res.error}"
            return [p for p, _ in real]
        parsed = parse_response(res.text, call.ids)
        wrong = unanswered = 0
        for item, iid in canaries:
            if iid not in parsed.valid:
                unanswered += 1
                continue
            score = parsed.valid[iid][0]
            ok = score >= self.config.canary_pass_min if item.canary == "pass" else score <= self.config.canary_fail_max
            wrong += not ok
        compromised = wrong > 0
        rows, bad = [], []
        with self._lock:
            c = self.counters
            c.parse_failures += parsed.parse_error is not None
            c.unknown_ids += parsed.unknown_ids
            c.canaries_correct += len(canaries) - wrong - unanswered
            c.canaries_wrong += wrong
            c.canaries_unanswered += unanswered
            c.compromised_calls += compromised
            for p, iid in real:
                if compromised:
                    reasons[p] = f"canary graded wrong in its batch of {len(call.ids)}"
                    bad.append(p)
                elif iid in parsed.valid:
                    score, rationale = parsed.valid[iid]
                    verdicts[p] = Verdict(score, "llm", rationale=rationale, rule=f"llm_{protocol}",
                                          details={"batch_size": len(call.ids), "cached": False})
                    rows.append((keys[p], score, rationale, self.identity["model"] or ""))
                else:
                    reasons[p] = parsed.problems.get(iid, "missing from reply")
                    c.invalid_items += 1
                    bad.append(p)
        self.cache.put_many(rows)
        return bad


def canary_pool(records: Sequence[Mapping[str, Any]], size: int, seed: int) -> list[JudgeItem]:
    """Known-verdict items built from the data: own reference (pass), another's (fail).

    Args:
        records: Records with ``prompt`` and ``reference``.
        size: How many of each kind to build at most.
        seed: Random seed (the pool is deterministic for given records and seed).

    Returns:
        Alternating pass and fail canaries.
    """
    usable = [r for r in records if (r.get("reference") or "").strip() and (r.get("prompt") or "").strip()]
    if len(usable) < 2:
        return []
    rng = random.Random(seed)
    picks = rng.sample(usable, min(size, len(usable)))
    pool: list[JudgeItem] = []
    for record in picks:
        pool.append(JudgeItem(record["prompt"], record["reference"], record["reference"], canary="pass"))
        others = [o for o in usable if o.get("category") != record.get("category")
                  and o["reference"].strip().lower() != record["reference"].strip().lower()]
        if not others:
            others = [o for o in usable if o["reference"].strip().lower() != record["reference"].strip().lower()]
        if others:
            wrong = rng.choice(others)
            pool.append(JudgeItem(record["prompt"], record["reference"], wrong["reference"], canary="fail"))
    return pool
