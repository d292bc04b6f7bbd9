"""Failure modes: one deterministic reason per failed record, from the verdict and the record."""

from __future__ import annotations

import pytest

from phase1b_kedro.judges.modes import failure_mode
from phase1b_kedro.judges.verifiable import check
from phase1b_kedro.labeler import fix_hint, mode_summary
from phase1b_kedro.pipelines.judging.nodes import apply_threshold

MC = "Which one?\nA. red\nB. green\nC. blue"


def judged(output: str, reference: str, prompt: str = "q", finish: str = "stop") -> dict:
    """A record judged by the verifiable rules, thresholded at 7."""
    v = check({"output": output, "reference": reference, "prompt": prompt, "meta": {}})
    record = {"id": "x", "output": output, "score": v.score, "judge": v.as_dict(),
              "generation": {"finish_reason": finish}}
    return apply_threshold([record], 7)[0][0]


@pytest.mark.parametrize(("output", "reference", "prompt", "finish", "mode"), [
    ("The answer is 41.", "42", "q", "stop", "wrong_answer"),
    ("I am not sure.", "42", "q", "stop", "no_answer"),
    ("Let me compute step by step: first we take", "42", "q", "length", "truncated"),
    ("The answer is 41.", "42", "q", "length", "wrong_answer"),           # cut, but it did answer: wrong
    ("<think>hmm, maybe 42", "42", "q", "stop", "no_answer"),
    ("The colour of grass is a kind of green-blue.", "B", MC, "stop", "format"),
    ("The answer is A and C", "B", MC, "stop", "format"),
    ("C", "B", MC, "stop", "wrong_answer"),
    ("I'm sorry, but I can't help with that request.", "42", "q", "stop", "refusal"),
    ("As an AI language model, I cannot answer that.", "B", MC, "stop", "refusal"),
    ("Perhaps.", "Yes", "q", "stop", "format"),
    ('{"a": 2}', '{"a": 1}', "q", "stop", "wrong_answer"),
    ("I would set a to one.", '{"a": 1}', "q", "stop", "format"),
])
def test_modes_of_deterministic_verdicts(output, reference, prompt, finish, mode):
    r = judged(output, reference, prompt, finish)
    assert r["passed"] is False and r["failure_mode"] == mode, r["judge"]


def test_passes_and_unjudged_have_no_mode():
    assert judged("42", "42")["failure_mode"] is None
    unjudged = apply_threshold([{"id": "u", "score": None, "output": "x", "judge": {"status": "unjudged"}}], 7)[0][0]
    assert unjudged["failure_mode"] is None


@pytest.mark.parametrize(("judge", "output", "finish", "mode"), [
    ({"source": "execution", "details": {"outcome": "tests_failed", "mode": "tests_failed"}}, "code", "stop", "tests_failed"),
    ({"source": "execution", "details": {"outcome": "syntax_error", "mode": "code_error"}}, "code", "length", "truncated"),
    ({"source": "execution", "details": {"outcome": "timeout"}}, "code", "stop", "timeout"),
    ({"source": "similarity", "details": {}}, "a poem", "stop", "judged_low"),
    ({"source": "llm", "details": {}}, "a poem", "length", "truncated"),
    ({"source": "verifiable", "details": {"mode": "empty"}}, "  ", "stop", "empty"),
])
def test_modes_of_other_sources(judge, output, finish, mode):
    record = {"passed": False, "output": output, "judge": judge, "generation": {"finish_reason": finish}}
    assert failure_mode(record) == mode


def test_offline_wording_and_fix_hints():
    cluster = {"size": 18, "failure_modes": {"wrong_answer": 12, "no_answer": 4, "truncated": 2}, "max_tokens_out": 256}
    assert mode_summary(cluster, "math") == ("18 failures on math tasks: 12 gave a wrong answer, 4 stated no answer, "
                                             "2 were cut at the 256-token limit.")
    assert fix_hint(cluster["failure_modes"]) is None                       # training data is the fix
    truncated = {"truncated": 6, "wrong_answer": 4}
    assert "max_new_tokens" in fix_hint(truncated) and "max_new_tokens" in mode_summary(
        {"size": 10, "failure_modes": truncated, "max_tokens_out": 256})
    assert "template" in fix_hint({"format": 3, "wrong_answer": 2})
