"""The record contract: what each stage's records hold, as types (see docs/RECORDS.md).

One JSON object per line; each stage adds fields and never removes any. Statuses are
``Literal`` types with predicates (:func:`generation_ok`, :func:`verdict_ok`) so that no stage
compares status strings by hand. ``TypedDict``\\ s describe the shape for readers and type
checkers; at run time records stay plain dicts (the catalog reads and writes JSON Lines).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, TypedDict

Category = Literal["math", "code", "reasoning", "creative", "qa", "other"]
#: How a record's category was decided (``meta.category_method``), in order of trust.
CategoryMethod = Literal["field", "classifier", "source", "rules"]
GenerationStatus = Literal["ok", "error"]
FinishReason = Literal["stop", "length", "error"]
VerdictStatus = Literal["ok", "unjudged"]
#: What produced a verdict (``judge.source``).
VerdictSource = Literal["verifiable", "execution", "similarity", "llm", "generation", "none"]

CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]

OK: Final = "ok"
ERROR: Final = "error"
UNJUDGED: Final = "unjudged"


class Message(TypedDict):
    """One chat turn."""

    role: str  # system | user | assistant | tool | function (see README "Input formats")
    content: str


class TestRecord(TypedDict):
    """Sampling output (``test_dataset``)."""

    id: str  # stable: from the source, else ``h-`` + a content hash
    category: Category
    messages: list[Message]  # the conversation up to, not including, the reference answer
    prompt: str  # the last user turn (display, embedding)
    reference: str
    source: str  # the dataset the record names (``source_fields``), else its input format
    meta: dict[str, Any]  # format, line, category_method, tests, acceptable answers, ...


class Generation(TypedDict):
    """``generation`` of a model output: who answered and how it went."""

    model: str
    backend: str
    tokens_in: int
    tokens_out: int
    finish_reason: FinishReason
    latency_s: float
    status: GenerationStatus
    error: str | None
    truncated: bool  # the prompt was cut (from the left) to fit max_input_tokens


class ModelOutput(TestRecord):
    """Generation output (``model_outputs``)."""

    output: str
    generation: Generation


class Judge(TypedDict, total=False):
    """``judge`` of a scored record: the verdict's provenance (``Verdict.as_dict`` less the score)."""

    strategy: str
    model: str | None
    source: VerdictSource
    status: VerdictStatus
    rationale: str
    reason: str | None  # why there is no verdict (status unjudged)
    rule: str | None
    answer: str | None  # extracted from the output (deterministic checks)
    expected: str | None  # extracted from the reference
    confident: bool
    details: dict[str, Any]
    single_call_score: float | None  # the agreement sample's one-item-per-call score


class ScoredRecord(ModelOutput):
    """Judging output before the threshold (``judge_scores``)."""

    score: float | None  # 0-10, None when no verdict could be obtained
    judge: Judge


class JudgedRecord(ScoredRecord):
    """After the threshold (``judged_results``; ``failures`` are those with ``passed`` false)."""

    passed: bool | None
    failure_mode: str | None  # phase1b_kedro.judges.modes.FailureMode, for failures


class RejectedRecord(TypedDict, total=False):
    """A line sampling could not use (``rejected_records``), with where and why."""

    line: int
    reason: str
    detail: str
    id: str
    #: The start of the line as it was read (300 bytes; undecodable bytes replaced).
    raw_preview: str


def generation_ok(record: Mapping[str, Any]) -> bool:
    """Whether the model answered this record (its ``generation.status`` is ``ok``; a record
    without a ``generation`` block counts as answered)."""
    return (record.get("generation") or {}).get("status", OK) == OK


def verdict_ok(record: Mapping[str, Any]) -> bool:
    """Whether this scored record has a verdict (``judge.status`` is ``ok``)."""
    return (record.get("judge") or {}).get("status") == OK
