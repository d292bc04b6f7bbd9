"""LLM judging in batches (or one item per call) with validation, re-judging, canaries and a cache.

Rounds: every item without a cached verdict is packed into calls of at most ``items_per_call``
items and ``max_batch_chars`` characters, in an order shuffled by the seed (so an item's place
in its call is random: the position audit in ``judge_summary`` is then a randomised
experiment). Items that come back missing or invalid, and every item of a call whose canaries
were graded wrong, go to the next round at half the batch size; at one item per call an item
gets ``single_attempts`` tries, after which it is ``unjudged`` with the last reason. Calls run
``concurrency`` at a time (the client's bound); each call's valid verdicts are written to the
cache as soon as it returns.

Reply budget: each call may answer in ``reply_tokens_per_item`` x items + 64 tokens (capped at
``max_new_tokens``), where the per-item figure grows with the rationale length the prompt asks
for (``rationale_words``); ``items_per_call`` is lowered so that the reply for a full call, canaries
included, fits. A reply the endpoint still cut (``finish_reason == "length"``) is counted as
truncated, not as a parse failure: its last verdict (which may be cut) is dropped and the items
without one are re-judged in smaller calls.

Structured output degrades once per run: the first call in a structured-output mode goes out
alone; when the endpoint rejects its ``response_format`` (HTTP 400/415/422/501 naming it), the
judge falls back ``json_schema`` -> ``json_object`` -> none (plain text, parsed as always) for
the rest of the run and re-sends the call.

Canaries (``canaries`` per call, when a call holds two or more items): built from the data
being judged, a record's own reference as the output (must score >= ``canary_pass_min``) or
another record's reference (must score <= ``canary_fail_max``), placed at random positions
with random ids like every other item, so the judge cannot tell them apart.

Permuted re-judging (``permutations: k``): a sample of the first-round batches is judged
``k - 1`` more times with the same items in other orders (reversed first, then shuffled);
each item's scores over the orders go back to the caller (spread, flips, vote).
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

from phase1b_kedro.configs import load_config
from phase1b_kedro.keys import stable_key
from phase1b_kedro.judges.cache import VerdictCache
from phase1b_kedro.judges.protocol import (
    CUT_REASON,
    TEMPLATE_HASH,
    Call,
    JudgeItem,
    build_call,
    item_chars,
    parse_response,
    response_format,
)
from phase1b_kedro.judges.verdict import Verdict
from phase1b_kedro.llm import ChatResult, GenerationConfig, LLMClient, identity_of
from phase1b_kedro.llm.tokens import TokenCounter

logger = logging.getLogger(__name__)

#: Tokens of a reply beyond its verdicts (the array's brackets, a stray sentence).
REPLY_OVERHEAD_TOKENS = 64
#: Structured-output modes, from the strictest to none; a rejected mode falls to the next.
FORMAT_CHAIN = ("json_schema", "json_object", "none")
#: Statuses and words by which an endpoint rejects a request's ``response_format``.
_FORMAT_STATUSES = {400, 415, 422, 501}
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "schema", "grammar", "structured", "format")


@dataclass(frozen=True)
class LLMJudgeConfig:
    """The LLM judge's protocol (the ``judging.protocol`` parameter group).

    The judge model itself (backend, endpoint, concurrency, retries) is the ``judge_model``
    catalog dataset; its verdicts go to the ``judge_cache`` dataset.
    """

    #: Items per ``llm_batch`` call (lowered when their reply could not fit, see ``batch_cap``).
    items_per_call: int = 50
    max_batch_chars: int = 60_000
    max_field_chars: int = 2_000
    canaries: int = 0
    canary_pass_min: float = 7.0
    canary_fail_max: float = 3.0
    single_attempts: int = 2
    #: The prompt asks for rationales of at most this many words.
    rationale_words: int = 20
    #: Reply tokens reserved per item; ``None``: 24 + 2 x ``rationale_words``.
    tokens_per_item: int | None = None
    max_new_tokens: int = 4_096
    max_input_tokens: int = 16_384
    temperature: float = 0.0
    seed: int = 42
    structured_output: str = "none"
    #: Orders each sampled batch is judged in (1 = no permuted re-judging).
    permutations: int = 1
    #: Share of first-round batches re-judged in the other orders (1.0 = all).
    permutation_sample: float = 1.0
    #: The verdict of a re-judged item is the median over its orders.
    vote: bool = False
    #: Tokenizer for counting tokens when the endpoint reports no usage.
    tokenizer: str | None = None
    #: ``{input: x, output: y}`` per million tokens: an estimated cost in the summary.
    price_per_million_tokens: Mapping[str, float] | None = None
    #: Items (stratified by category) also judged one per call, for batch-vs-single agreement.
    agreement_sample: int = 0

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> LLMJudgeConfig:
        """Build from ``judging.protocol`` (missing keys keep defaults; unknown keys fail).

        Raises:
            ValueError: For an unknown key or a value out of range (named).
        """
        config = load_config(cls, params, "judging.protocol")
        if config.items_per_call < 1 or config.single_attempts < 1 or config.permutations < 1:
            raise ValueError("judging.protocol.items_per_call, single_attempts and permutations must be at least 1")
        if not 0 < config.permutation_sample <= 1:
            raise ValueError(f"judging.protocol.permutation_sample must be in (0, 1], not {config.permutation_sample!r}")
        response_format(config.structured_output)  # raises on an unknown mode
        return config

    @property
    def reply_tokens_per_item(self) -> int:
        """Reply tokens one verdict may need: the JSON around it plus its rationale (~2 per word)."""
        return int(self.tokens_per_item or 24 + 2 * self.rationale_words)

    @property
    def items_per_call_cap(self) -> int:
        """Most items (canaries included) whose expected reply fits in ``max_new_tokens``."""
        return max(1, (self.max_new_tokens - REPLY_OVERHEAD_TOKENS) // self.reply_tokens_per_item)

    @property
    def batch_cap(self) -> int:
        """Real items per batch call: ``items_per_call``, lowered so that their reply and the canaries' fits."""
        return max(1, min(self.items_per_call, self.items_per_call_cap - self.canaries))

    def reply_budget(self, n_items: int) -> int:
        """``max_tokens`` for a call with ``n_items`` items."""
        return min(self.max_new_tokens, n_items * self.reply_tokens_per_item + REPLY_OVERHEAD_TOKENS)


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
    #: Replies the endpoint stopped at the token budget, and the items they left without a verdict.
    truncated_replies: int = 0
    truncated_items: int = 0
    #: Requests the endpoint refused for their ``response_format`` (each re-sent in the next mode).
    format_rejections: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Answered calls by where their token figures came from (the endpoint's usage, a tokenizer).
    tokens_counted_by: dict[str, int] = field(default_factory=dict)
    rounds: list[dict[str, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict with the derived rates and the batch sizes used."""
        graded = self.canaries_correct + self.canaries_wrong
        return {
            **asdict(self),
            "batch_sizes_used": dict(Counter(r["batch_size"] for r in self.rounds)),
            "items_per_call": round(self.items_sent / self.calls, 2) if self.calls else None,
            "parse_failure_rate": round(self.parse_failures / self.calls, 4) if self.calls else None,
            "truncation_rate": round(self.truncated_replies / self.calls, 4) if self.calls else None,
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
        self.identity = {
            "base_url": None, **identity_of(client),
            "template": TEMPLATE_HASH, "temperature": config.temperature, "seed": config.seed,
            "max_field_chars": config.max_field_chars, "structured_output": config.structured_output,
            "rationale_words": config.rationale_words,
        }
        self.format_mode = config.structured_output if config.structured_output in FORMAT_CHAIN else "none"
        self.format_fallbacks: list[dict[str, Any]] = []
        self._format_settled = self.format_mode == "none"
        self.tokens = TokenCounter([config.tokenizer, self.identity.get("model")])
        self._lock = threading.Lock()
        if config.batch_cap < config.items_per_call:
            logger.info("judge batches of %d items, not %d: the reply for %d items plus %d canaries at %d tokens "
                        "each must fit in max_new_tokens=%d", config.batch_cap, config.items_per_call, config.items_per_call,
                        config.canaries, config.reply_tokens_per_item, config.max_new_tokens)

    # ------------------------------------------------------------------ keys
    def item_key(self, item: JudgeItem, protocol: str, permutation: int = 0) -> str:
        """Cache key: judge identity + protocol (+ the permutation number) + the item's content."""
        content = (item.prompt, item.reference, list(item.acceptable), item.output)
        if permutation:
            return stable_key(self.identity, protocol, f"permutation {permutation}", *content)
        return stable_key(self.identity, protocol, *content)

    # ------------------------------------------------------------------ public
    def judge(self, items: Sequence[JudgeItem], protocol: str = "batch", canary_pool: Sequence[JudgeItem] = (),
              desc: str = "judging", permutation: int = 0,
              groups: Sequence[Sequence[int]] | None = None) -> list[Verdict]:
        """A verdict for every item: valid LLM score, or ``unjudged`` with the reason.

        Args:
            items: What to grade.
            protocol: ``batch`` (``items_per_call`` items per call, halving on failure) or
                ``single`` (one item per call, no canaries).
            canary_pool: Canary items to draw from (``config.canaries`` per batch call).
            desc: Progress-bar label.
            permutation: 0 for the first judgement; ``p > 0`` for the p-th permuted one
                (cached under its own key).
            groups: The first round's calls as index lists into ``items``, in the order to send
                (permuted re-judging); default: packed from a shuffled order.

        Returns:
            One verdict per item, in order.
        """
        keys = [self.item_key(item, protocol, permutation) for item in items]
        cached = self.cache.get_many(keys)
        verdicts: list[Verdict | None] = [None] * len(items)
        for i, key in enumerate(keys):
            if key in cached:
                score, rationale, meta = cached[key]
                verdicts[i] = Verdict(score, "llm", rationale=rationale, rule=f"llm_{protocol}",
                                      details={**self._where(items[i], meta, permutation), "cached": True})
        self.counters.cache_hits += len(cached)
        pending = [i for i, v in enumerate(verdicts) if v is None]
        size = self.config.batch_cap if protocol == "batch" else 1
        rng = self._rng(protocol, permutation, len(items))
        rng.shuffle(pending)
        first = [[i for i in g if verdicts[i] is None] for g in groups] if groups is not None else None
        reasons: dict[int, str] = {}
        attempts_single = 0
        round_no = 0
        with tqdm(total=len(pending), desc=desc, unit="item", disable=not pending) as bar:
            while pending:
                round_no += 1
                packed = [g for g in first if g] if first is not None else self._groups(pending, items, size)
                first = None
                calls = self._pack(packed, items, canary_pool if size > 1 else (), rng)
                failed = self._run_round(calls, items, keys, verdicts, reasons, protocol, bar, permutation)
                self.counters.rounds.append({"round": round_no, "batch_size": size, "calls": len(calls),
                                             "items": len(pending), "failed": len(failed)})
                tried, pending = len(pending), failed
                rng.shuffle(pending)
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

    def plan(self, items: Sequence[JudgeItem]) -> list[list[int]]:
        """The first-round batch calls :meth:`judge` makes for ``items`` when none is cached."""
        order = list(range(len(items)))
        self._rng("batch", 0, len(items)).shuffle(order)
        return self._groups(order, items, self.config.batch_cap)

    def permuted_scores(self, items: Sequence[JudgeItem], canary_pool: Sequence[JudgeItem] = (),
                        desc: str = "permuted") -> tuple[dict[int, list[float | None]], dict[str, Any]]:
        """Judge a sample of the first-round batches again in ``permutations - 1`` other orders.

        Args:
            items: The items :meth:`judge` graded with the ``batch`` protocol.
            canary_pool: As for :meth:`judge`.
            desc: Progress-bar label.

        Returns:
            Per re-judged item (index into ``items``), its score in each other order (``None``
            where that order gave no verdict); and which batches were re-judged.
        """
        k = self.config.permutations
        if k < 2 or not items:
            return {}, {"batches": 0, "of_batches": 0, "items": 0}
        groups = self.plan(items)
        share = self.config.permutation_sample
        picked = range(len(groups)) if share >= 1 else sorted(
            random.Random(f"{self.config.seed}:permutation-sample").sample(
                range(len(groups)), max(1, round(share * len(groups)))))
        members = [i for g in picked for i in groups[g]]
        local = {i: j for j, i in enumerate(members)}
        scores: dict[int, list[float | None]] = {i: [] for i in members}
        for p in range(1, k):
            order = [[local[i] for i in self._permute(groups[g], p)] for g in picked]
            found = self.judge([items[i] for i in members], "batch", canary_pool, desc=f"{desc} (order {p + 1}/{k})",
                               permutation=p, groups=order)
            for i, v in zip(members, found, strict=True):
                scores[i].append(v.score if v.ok else None)
        return scores, {"batches": len(picked), "of_batches": len(groups), "items": len(members)}

    def report(self) -> dict[str, Any]:
        """Counters, tokens and estimated cost, the structured-output mode used, the reply budget."""
        c, config = self.counters, self.config
        prices = dict(config.price_per_million_tokens or {})
        cost = None
        if prices.get("input") is not None or prices.get("output") is not None:
            cost_in = c.prompt_tokens / 1e6 * float(prices.get("input") or 0)
            cost_out = c.completion_tokens / 1e6 * float(prices.get("output") or 0)
            cost = {"input": round(cost_in, 6), "output": round(cost_out, 6), "total": round(cost_in + cost_out, 6),
                    "price_per_million_tokens": prices}
        return {
            **c.as_dict(),
            "tokens": {"prompt": c.prompt_tokens, "completion": c.completion_tokens,
                       "total": c.prompt_tokens + c.completion_tokens, "counted_by": dict(c.tokens_counted_by),
                       "estimated_cost": cost},
            "structured_output": {"requested": config.structured_output, "used": self.format_mode,
                                  "fallbacks": list(self.format_fallbacks)},
            "reply_budget": {"rationale_words": config.rationale_words,
                             "tokens_per_item": config.reply_tokens_per_item, "max_new_tokens": config.max_new_tokens,
                             "items_per_call_cap": config.items_per_call_cap, "batch_size": config.items_per_call,
                             "batch_size_used": config.batch_cap},
        }

    # ------------------------------------------------------------------ internals
    def _rng(self, protocol: str, permutation: int, n: int) -> random.Random:
        return random.Random(f"{self.config.seed}:{protocol}:{permutation}:{n}")

    def _permute(self, group: Sequence[int], p: int) -> list[int]:
        """The ``p``-th other order of a batch: reversed first (every item moves most), then shuffled."""
        if p == 1:
            return list(reversed(group))
        return random.Random(f"{self.config.seed}:order:{p}:{group[0]}").sample(list(group), len(group))

    @staticmethod
    def _where(item: JudgeItem, meta: Mapping[str, Any], permutation: int) -> dict[str, Any]:
        """A verdict's audit details: its place in its call and the output's length."""
        out = {"batch_size": meta.get("batch_size"), "position": meta.get("position"),
               "output_chars": len(item.output)}
        if permutation:
            out["permutation"] = permutation
        return out

    def _groups(self, order: Sequence[int], items: Sequence[JudgeItem], size: int) -> list[list[int]]:
        """``order`` cut into calls under the item and character caps."""
        groups: list[list[int]] = []
        current: list[int] = []
        chars = 0
        for i in order:
            need = item_chars(items[i], self.config.max_field_chars)
            if current and (len(current) >= size or chars + need > self.config.max_batch_chars):
                groups.append(current)
                current, chars = [], 0
            current.append(i)
            chars += need
        if current:
            groups.append(current)
        return groups

    def _pack(self, groups: Sequence[Sequence[int]], items: Sequence[JudgeItem], canary_pool: Sequence[JudgeItem],
              rng: random.Random) -> list[tuple[list[int], Call]]:
        """One call per group, with canaries placed at random."""
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
            call = build_call(judge_items, self.config.max_field_chars, self.config.rationale_words)
            calls.append(([m if isinstance(m, int) else -1 for m in members], call))
        return calls

    def _generation_config(self, call: Call) -> GenerationConfig:
        return GenerationConfig(
            max_new_tokens=self.config.reply_budget(len(call.ids)),
            temperature=self.config.temperature, seed=self.config.seed,
            max_input_tokens=self.config.max_input_tokens,
            response_format=response_format(self.format_mode),
        )

    @staticmethod
    def _format_rejected(res: ChatResult, config: GenerationConfig) -> bool:
        """The endpoint refused the request's ``response_format`` (not an outage, not a bad prompt)."""
        if res.ok or config.response_format is None or res.http_status not in _FORMAT_STATUSES:
            return False
        return any(word in (res.error or "").lower() for word in _FORMAT_WORDS)

    def _degrade(self, res: ChatResult) -> None:
        """Fall to the next structured-output mode for the rest of the run."""
        before = self.format_mode
        self.format_mode = FORMAT_CHAIN[FORMAT_CHAIN.index(before) + 1]
        self._format_settled = self.format_mode == "none"
        self.format_fallbacks.append({"from": before, "to": self.format_mode, "status": res.http_status,
                                      "error": (res.error or "")[:200]})
        logger.warning("the judge endpoint rejected structured output %r (%s): using %r from now on",
                       before, (res.error or "")[:120], self.format_mode)

    def _run_round(self, calls: list[tuple[list[int], Call]], items: Sequence[JudgeItem], keys: Sequence[str],
                   verdicts: list[Verdict | None], reasons: dict[int, str], protocol: str,
                   bar: Any, permutation: int) -> list[int]:
        """Send one round's calls; fill ``verdicts``; return the items that need another try."""
        failed: list[int] = []
        todo = list(range(len(calls)))
        while todo:
            # Until the endpoint has taken one request in the current structured-output mode,
            # one call goes first: a refusal then costs one request, not a whole round.
            batch = todo if self._format_settled else todo[:1]
            rejected: list[tuple[int, ChatResult]] = []
            # Calls with the same request configuration (in a round: all but maybe the last,
            # whose max_new_tokens is smaller) go out together, ``concurrency`` at a time.
            by_config: dict[str, tuple[GenerationConfig, list[int]]] = {}
            for n in batch:
                config = self._generation_config(calls[n][1])
                by_config.setdefault(stable_key(config.as_dict()), (config, []))[1].append(n)
            for config, group in by_config.values():
                def on_result(k: int, res: ChatResult, group: list[int] = group,
                              config: GenerationConfig = config) -> None:
                    if self._format_rejected(res, config):
                        with self._lock:
                            self.counters.format_rejections += 1
                            rejected.append((group[k], res))
                        return
                    positions, call = calls[group[k]]
                    bad = self._take(positions, call, res, items, keys, verdicts, reasons, protocol, permutation)
                    with self._lock:
                        failed.extend(bad)
                        bar.update(sum(p >= 0 for p in positions) - len(bad))

                self.client.generate([calls[n][1].messages for n in group], config, on_result=on_result)
            if rejected:
                self._degrade(rejected[0][1])  # then re-send the refused calls in the next mode
            else:
                self._format_settled = True
            todo = sorted(n for n, _ in rejected) + todo[len(batch):]
        return sorted(failed)

    def _count_tokens(self, call: Call, res: ChatResult) -> None:
        """Add one answered call's tokens: the endpoint's usage, else counted."""
        if res.usage_reported:
            prompt, completion, how = res.tokens_in, res.tokens_out, "reported"
        else:
            prompt, completion = self.tokens.count_messages(call.messages), self.tokens.count(res.text)
            how = self.tokens.method
        with self._lock:
            self.counters.prompt_tokens += prompt
            self.counters.completion_tokens += completion
            self.counters.tokens_counted_by[how] = self.counters.tokens_counted_by.get(how, 0) + 1

    def _take(self, positions: list[int], call: Call, res: ChatResult, items: Sequence[JudgeItem],
              keys: Sequence[str], verdicts: list[Verdict | None], reasons: dict[int, str],
              protocol: str, permutation: int) -> list[int]:
        """Validate one call's reply; store its valid verdicts; return the items to re-judge."""
        real = [(k, p, iid) for k, (p, iid) in enumerate(zip(positions, call.ids, strict=True)) if p >= 0]
        canaries = [(item, iid) for p, iid, item in zip(positions, call.ids, call.items, strict=True) if p < 0]
        with self._lock:
            self.counters.calls += 1
            self.counters.items_sent += len(real)
            self.counters.canaries_sent += len(canaries)
        if not res.ok:
            with self._lock:
                self.counters.call_errors += 1
                for _, p, _ in real:
                    reasons[p] = f"judge call failed: {res.error}"
            return [p for _, p, _ in real]
        self._count_tokens(call, res)
        parsed = parse_response(res.text, call.ids, truncated=res.finish_reason == "length")
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
            c.truncated_replies += parsed.truncated
            c.unknown_ids += parsed.unknown_ids
            c.canaries_correct += len(canaries) - wrong - unanswered
            c.canaries_wrong += wrong
            c.canaries_unanswered += unanswered
            c.compromised_calls += compromised
            for k, p, iid in real:
                if compromised:
                    reasons[p] = f"canary graded wrong in its batch of {len(call.ids)}"
                    bad.append(p)
                elif iid in parsed.valid:
                    score, rationale = parsed.valid[iid]
                    meta = {"batch_size": len(call.ids), "position": k}
                    verdicts[p] = Verdict(score, "llm", rationale=rationale, rule=f"llm_{protocol}",
                                          details={**self._where(items[p], meta, permutation), "cached": False})
                    rows.append((keys[p], score, rationale, self.identity["model"] or "", meta))
                else:
                    reasons[p] = parsed.problems.get(iid, "missing from reply")
                    if reasons[p] == CUT_REASON:
                        c.truncated_items += 1
                    else:
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
