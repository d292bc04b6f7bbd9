"""Why a record failed: one deterministic ``failure_mode`` per failed record.

==============  ==========================================================================
mode            when (first that applies)
==============  ==========================================================================
empty           the output is empty or whitespace
refusal         the output declines the task ("I can't help with that", "As an AI ...")
truncated       generation stopped at the token limit and the output committed to no
                answer, gave it in no usable form, or its code did not run
no_answer       nothing committed: no number, no option, a reasoning block left open,
                no code found
format          answered, but not in the form asked: prose or several letters for a
                multiple-choice question, no yes/no, no JSON value
code_error      the code raised an exception or did not compile
tests_failed    the code ran and an assertion (or a stdin/stdout case) failed
timeout         the code hit the wall-clock or CPU limit, or another resource limit
wrong_answer    a comparable answer was given and it is wrong (deterministic checks)
judged_low      a similarity or LLM judge scored the free-text answer below the threshold
==============  ==========================================================================

Deterministic verdicts carry their mode in ``judge.details.mode`` (set where the verdict is
made, so the reason is never re-derived from text); this module adds what needs the whole
record (the output, the finish reason) and the threshold's decision.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

FailureMode = Literal["empty", "refusal", "truncated", "no_answer", "format", "code_error", "tests_failed",
                      "timeout", "wrong_answer", "judged_low"]
MODES: tuple[str, ...] = FailureMode.__args__  # type: ignore[attr-defined]

#: Modes a decoding or prompt-template change fixes better than more training data.
NOT_A_DATA_PROBLEM = {"truncated": "decoding: raise max_new_tokens or ask for shorter answers",
                      "format": "prompt template: ask for the answer form explicitly (e.g. 'Answer with the letter')",
                      "empty": "decoding or chat template: the model produced nothing"}

_REFUSAL = re.compile(
    r"\b(?:I\s+(?:can(?:no|')t|am\s+(?:not\s+able|unable)|won't|will\s+not)\s+(?:help|assist|provide|answer|do|comply)"
    r"|I'm\s+(?:sorry|afraid),?\s+(?:but\s+)?I\s+(?:can(?:no|')t|am\s+unable)|as\s+an\s+AI(?:\s+language\s+model)?,?\s+I"
    r"|I\s+(?:must|have\s+to)\s+(?:decline|refuse))", re.I)
_EXECUTION = {"passed": None, "tests_failed": "tests_failed", "code_error": "code_error", "syntax_error": "code_error",
              "timeout": "timeout", "resource_limit": "timeout", "no_code": "no_answer"}
_TRUNCATION_HIDES = {None, "no_answer", "format", "code_error", "judged_low"}


def failure_mode(record: Mapping[str, Any]) -> str | None:
    """The failure mode of a judged record (see the module table); ``None`` unless it failed.

    Args:
        record: A judged record (``passed``, ``output``, ``judge``, ``generation``).
    """
    if record.get("passed") is not False:
        return None
    output = record.get("output") or ""
    if not output.strip():
        return "empty"
    if _REFUSAL.search(output[:600]):
        return "refusal"
    judge = record.get("judge") or {}
    details = judge.get("details") or {}
    mode = details.get("mode")
    if mode is None and judge.get("source") == "execution":
        mode = _EXECUTION.get(details.get("outcome"), "code_error")
    if mode is None and judge.get("source") in ("similarity", "llm"):
        mode = "judged_low"
    truncated = (record.get("generation") or {}).get("finish_reason") == "length"
    if truncated and mode in _TRUNCATION_HIDES:
        return "truncated"
    return mode or "wrong_answer"


def execution_mode(outcome: str) -> str | None:
    """The failure mode of a code-execution outcome (``None`` for ``passed``)."""
    return _EXECUTION.get(outcome, "code_error")
