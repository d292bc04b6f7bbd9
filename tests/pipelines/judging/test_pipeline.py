"""Judging pipeline: strategies, the batch protocol against a fault-injecting local server,
retries, the verdict cache, canaries, agreement, and the threshold's own node."""

from __future__ import annotations

import json

import pytest
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from phase1b_kedro.pipelines.judging.nodes import apply_threshold
from phase1b_kedro.pipelines.judging.pipeline import create_threshold_pipeline
from tests.conftest import Kept, load_params
from tests.support.fake_judge_server import FakeJudge, Script
from tests.support.judging import (
    CATS,
    FAULTS,
    OUTPUTS,
    _first_request_only,
    assert_reconciles,
    honest,
    judge_setup,
    llm_params,
    make_records,
    run,
)


# ---------------------------------------------------------------- no-API strategies
def test_hybrid_default_offline_scores_everything():
    records = make_records(6) + [
        {**make_records(1)[0], "id": "num", "reference": "7473", "output": "The answer is 7,473."},
        {**make_records(1)[0], "id": "bad", "reference": "7473", "output": "", "generation": {"status": "ok"}},
        {**make_records(1)[0], "id": "err", "output": "", "generation": {"status": "error", "error": "HTTP 500"}},
    ]
    params = load_params("judging")
    out = run(records, params)
    by_id = {r["id"]: r for r in out["judged_results"]}
    assert by_id["num"]["judge"]["source"] == "verifiable" and by_id["num"]["score"] == 10
    assert by_id["bad"]["score"] == 0 and by_id["bad"]["judge"]["rule"] == "empty_output"
    assert by_id["err"]["passed"] is None and "generation failed" in by_id["err"]["judge"]["reason"]
    sims = [by_id[f"r{i}"] for i in range(6)]
    assert all(r["judge"]["source"] == "similarity" for r in sims)
    # an output equal to its reference scores 10; an unrelated one scores low
    assert all(r["score"] == 10 for r in sims[::2]) and all(r["score"] < 4 for r in sims[1::2])
    s = out["judge_summary"]
    assert s["verdicts_by_source"] == {"similarity": 6, "verifiable": 2}
    assert s["unjudged"] == 1 and s["passed"] + s["failed"] == 8


def test_verifiable_alone_leaves_uncheckable_items_unjudged():
    params = {**load_params("judging"), "strategy": "verifiable"}
    out = run(make_records(4), params)
    assert out["judge_summary"]["unjudged"] == 4
    assert set(out["judge_summary"]["unjudged_by_reason"]) == {"no verifiable check applies to this reference"}


def test_threshold_is_applied_after_scoring():
    scores = [{"id": "a", "score": 6.5}, {"id": "b", "score": 7.0}, {"id": "c", "score": None}]
    judged, failures = apply_threshold(scores, 7)
    assert [r["passed"] for r in judged] == [False, True, None] and [r["id"] for r in failures] == ["a"]
    judged, failures = apply_threshold(scores, 6)
    assert [r["passed"] for r in judged] == [True, True, None] and failures == []
    with pytest.raises(ValueError):
        apply_threshold(scores, 11)


# ---------------------------------------------------------------- LLM judge, scripted server
def test_llm_batch_judges_every_item_in_few_calls(tmp_path, allow_local_http):
    records = make_records(12)
    with FakeJudge() as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=5))
        assert len(judge.requests) == 3 and judge.items_sent == 12
        body = judge.requests[0]["body"]
        assert body["model"] == "judge-test" and body["temperature"] == 0
    assert [r["score"] for r in out["judge_scores"]] == honest(records)
    llm = out["judge_summary"]["llm"]
    assert llm["calls"] == 3 and llm["items_per_call"] == 4.0 and llm["cache_hits"] == 0
    assert out["judge_summary"]["failed"] == 6 and len(out["failures"]) == 6
    assert_reconciles(out, 12)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_bad_replies_are_rejudged_until_every_item_has_a_verdict(fault, tmp_path, allow_local_http):
    records = make_records(8)
    with FakeJudge(Script(reply=_first_request_only(FAULTS[fault]))) as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=4, concurrency=1))
        requests = len(judge.requests)
    assert [r["score"] for r in out["judge_scores"]] == honest(records)
    llm = out["judge_summary"]["llm"]
    assert llm["rejudged_items"] >= 1 and 3 <= requests <= 2 + 4   # 2 first-round calls + re-judging
    assert_reconciles(out, 8)


@pytest.mark.parametrize("wrapper", ["prose", "fence"])
def test_wrapped_json_is_accepted_without_rejudging(wrapper, tmp_path, allow_local_http):
    wrap = {"prose": lambda v, i, n: f"Sure! Here are the grades: {json.dumps(v)} Let me know.",
            "fence": lambda v, i, n: f"```json\n{json.dumps(v, indent=1)}\n```"}[wrapper]
    records = make_records(8)
    with FakeJudge(Script(reply=wrap)) as judge:
        out = run(records, llm_params(judge, tmp_path))
        assert len(judge.requests) == 2
    assert [r["score"] for r in out["judge_scores"]] == honest(records)
    assert out["judge_summary"]["llm"]["rejudged_items"] == 0


def test_a_judge_that_never_answers_properly_leaves_items_unjudged(tmp_path, allow_local_http):
    records = make_records(4)
    with FakeJudge(Script(reply=lambda v, i, n: "no idea")) as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=4, single_attempts=2))
        # 1 call of 4, 2 calls of 2, then 2 attempts x 4 single calls: bounded, never endless
        assert len(judge.requests) == 1 + 2 + 8
    assert out["judge_summary"]["unjudged"] == 4 and out["judge_summary"]["failed"] == 0
    assert out["judge_summary"]["unjudged_by_reason"] == {"no JSON verdicts in reply": 4}
    assert out["judge_summary"]["llm"]["parse_failure_rate"] == 1.0
    assert_reconciles(out, 4)


def test_items_judged_in_the_last_round_keep_their_verdicts(tmp_path, allow_local_http):
    """Batches always fail, single calls succeed: every item ends with its single-call verdict."""
    def reply(verdicts, items, n):
        return "garbage" if len(items) > 1 else json.dumps(verdicts)

    records = make_records(6)
    with FakeJudge(Script(reply=reply)) as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=4, single_attempts=1))
    assert [r["score"] for r in out["judge_scores"]] == honest(records)
    assert out["judge_summary"]["unjudged"] == 0


def test_http_429_and_5xx_are_retried_honouring_retry_after(tmp_path, allow_local_http):
    records = make_records(4)
    with FakeJudge(Script(http_errors=[429, 500, 503], retry_after="0")) as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=4, max_retries=3))
        assert len(judge.requests) == 4          # 3 refused + 1 answered
    assert out["judge_summary"]["llm"]["transport_retries"] == 3
    assert [r["score"] for r in out["judge_scores"]] == honest(records)


def test_retries_are_bounded_and_failures_become_unjudged(tmp_path, allow_local_http):
    records = make_records(2)
    with FakeJudge(Script(http_errors=[500] * 4)) as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=2, max_retries=1, single_attempts=1,
                                      concurrency=1))
        # the call of 2 (2 attempts, both 500), then one single call per item: the first gets the
        # last two 500s (unjudged, bounded at 2 attempts), the second an answer
        assert len(judge.requests) == 2 + 2 + 1
    assert out["judge_summary"]["unjudged"] == 1 and out["judge_summary"]["judged"] == 1
    unjudged = [r for r in out["judged_results"] if r["passed"] is None]
    assert unjudged[0]["judge"]["reason"].startswith("judge call failed: HTTP 500")


def test_a_judge_that_fails_every_call_stops_the_run(tmp_path, allow_local_http):
    """A wrong endpoint or a server that is down: every call fails, and the run stops with the
    reason instead of writing a run of unjudged records (isolated failures stay unjudged)."""
    from phase1b_kedro.judges.strategies import JudgeUnavailableError

    setup = judge_setup("http://127.0.0.1:9/v1", str(tmp_path / "c.sqlite"), max_retries=0, items_per_call=4)
    with pytest.raises(JudgeUnavailableError, match=r"calls to the judge 'judge-test' \(http://127.0.0.1:9/v1\) "
                                                    r"failed; the commonest reason: judge call failed: .*Connect"):
        run(make_records(3), setup)


def test_interrupted_run_resumes_from_the_cache(tmp_path, allow_local_http):
    records = make_records(8)
    # First run: the server fails every request after the first (as if it went down).
    with FakeJudge(Script(http_errors=[200] + [500] * 100)) as judge:
        first = run(records, llm_params(judge, tmp_path, items_per_call=4, concurrency=1, max_retries=0,
                                        single_attempts=1))
        judged_first = {r["id"] for r in first["judge_scores"] if r["judge"]["status"] == "ok"}
        assert len(judged_first) == 4
        # Second run, server healthy again (same endpoint): only the 4 unfinished items are sent.
        judge.script, before = Script(), len(judge.requests)
        second = run(records, llm_params(judge, tmp_path, items_per_call=4, concurrency=1))
        later = judge.requests[before:]
        sent = {item["output"] for r in later for item in _items(r)}
        assert len(later) == 1
    assert sent == {r["output"] for r in records if r["id"] not in judged_first}
    assert second["judge_summary"]["llm"]["cache_hits"] == 4
    assert [r["score"] for r in second["judge_scores"]] == honest(records)


def _items(request):
    from tests.support.fake_judge_server import parse_items

    return parse_items(request["body"]["messages"])


def test_threshold_change_makes_zero_judge_calls(tmp_path, allow_local_http):
    records = make_records(8)
    with FakeJudge() as judge:
        params = llm_params(judge, tmp_path)
        first = run(records, params)
        calls = len(judge.requests)
        # the whole judging pipeline again with another threshold: every verdict from the cache
        again = run(records, params.with_params(failure_threshold=1))
        assert len(judge.requests) == calls
        assert again["judge_summary"]["llm"]["cache_hits"] == 8 and again["judge_summary"]["failed"] == 0
        # the threshold pipeline alone, from the stored scores
        catalog = DataCatalog({name: Kept() for name in OUTPUTS})
        catalog["judge_scores"] = first["judge_scores"]
        catalog["judge_run_stats"] = first["judge_run_stats"]
        catalog["human_labels"] = []
        catalog["params:judging"] = {**params.params, "failure_threshold": 3}
        catalog["params:judging.failure_threshold"] = 3
        SequentialRunner().run(create_threshold_pipeline(), catalog)
        assert len(judge.requests) == calls
    assert catalog.load("judge_summary")["failed"] == 4 and first["judge_summary"]["failed"] == 4
    assert catalog.load("judge_summary")["failure_threshold"] == 3


def test_changed_judge_never_reuses_cached_verdicts(tmp_path, allow_local_http):
    records = make_records(4)
    with FakeJudge() as judge:
        run(records, llm_params(judge, tmp_path))
        run(records, llm_params(judge, tmp_path, model="another-judge"))
        run(records, llm_params(judge, tmp_path, temperature=0.5))
        assert judge.items_sent == 12


def test_canaries_catch_a_compromised_batch(tmp_path, allow_local_http):
    """A judge that gives every item 10 in its first reply is caught by the fail canaries."""
    def reply(verdicts, items, n):
        return json.dumps([{**v, "score": 10} for v in verdicts]) if n == 1 else json.dumps(verdicts)

    records = make_records(8)
    with FakeJudge(Script(reply=reply)) as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=8, canaries=2, concurrency=1))
        first_items = _items(judge.requests[0])
    assert len(first_items) == 10                      # 8 records + 2 canaries, indistinguishable
    assert [r["score"] for r in out["judge_scores"]] == honest(records)   # nothing from the bad batch kept
    llm = out["judge_summary"]["llm"]
    assert llm["compromised_calls"] == 1 and llm["canaries_wrong"] >= 1
    assert 0 < llm["canary_accuracy"] < 1
    assert_reconciles(out, 8)


def test_agreement_sample_reports_kappa(tmp_path, allow_local_http):
    records = make_records(12)
    with FakeJudge() as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=12, agreement_sample=6))
        singles = [r for r in judge.requests if len(_items(r)) == 1]
        assert len(singles) == 6
    agreement = out["judge_summary"]["agreement"]
    assert agreement["items"] == 6 and agreement["agreement"] == 1.0 and agreement["cohen_kappa"] == 1.0


def test_hybrid_sends_only_what_verifiable_cannot_check(tmp_path, allow_local_http):
    records = make_records(4) + [{**make_records(1)[0], "id": "num", "reference": "12", "output": "It is 12."}]
    with FakeJudge() as judge:
        out = run(records, llm_params(judge, tmp_path, strategy="hybrid", fallback="llm_batch"))
        assert judge.items_sent == 4
    assert out["judge_summary"]["verdicts_by_source"] == {"llm": 4, "verifiable": 1}


# ---------------------------------------------------------------- issue 12: routing, execution, human labels
def _short(i: int, reference: str, output: str, **extra) -> dict:
    return {**make_records(1)[0], "id": f"s{i}", "reference": reference, "output": output, **extra}


def test_short_and_structured_references_never_reach_similarity():
    records = [_short(0, "the final answer is: (628)", "the final answer is: (739)"), _short(1, "[O(n)]", "[O(n^2)]"),
               _short(2, "SELECT name, count(*) FROM t GROUP BY name", "SELECT name, count(*) FROM t"),
               _short(3, "Information", "It is probably about a disk.")]
    out = run(records, load_params("judging"))
    judged = out["judged_results"]
    assert [r["judge"]["source"] for r in judged] == ["verifiable"] * 4
    assert [r["passed"] for r in judged] == [False] * 4
    assert all(r["judge"]["answer"] is not None and r["judge"]["expected"] for r in judged)
    assert out["judge_summary"]["verdicts_by_source"] == {"verifiable": 4}


def test_llm_fallback_gets_the_deterministic_fails_that_are_not_confident(tmp_path, allow_local_http):
    records = [_short(0, "Information", "The log is informational only, nothing failed."),  # not confident
               _short(1, "Information", "Warning"),                                          # confident fail
               _short(2, "7473", "The answer is 7,473.")]                                     # confident pass
    with FakeJudge(Script()) as judge:
        params = llm_params(judge, tmp_path, strategy="hybrid", fallback="llm_batch")
        out = run(records, params)
        sent = [json.dumps(r["body"]) for r in judge.requests]
    judged = {r["id"]: r for r in out["judged_results"]}
    assert judged["s0"]["judge"]["source"] == "llm" and judged["s1"]["judge"]["source"] == "verifiable"
    assert judged["s2"]["judge"]["source"] == "verifiable"
    assert len(sent) == 1 and "informational" in sent[0] and "7,473" not in sent[0]


def test_humaneval_items_are_judged_by_execution(project_root):
    lines = [json.loads(x) for x in (project_root / "data/01_raw/prompts.jsonl").read_text().splitlines()]
    tasks = [x for x in lines if x.get("task_id") in ("HumanEval/2", "HumanEval/12")]
    records = []
    for k, t in enumerate(tasks):
        base = {"id": f"r{2 * k}", "category": "code", "prompt": t["prompt"], "reference": t["canonical_solution"],
                "source": t["source"], "meta": {"tests": {"kind": "check", "language": "python", "test": t["test"],
                                                          "entry_point": t["entry_point"]}},
                "generation": {"status": "ok"}}
        records += [{**base, "output": t["canonical_solution"]},
                    {**base, "id": f"r{2 * k + 1}", "output": "    return None\n"}]
    out = run(records, load_params("judging"))
    judged = out["judged_results"]
    assert [r["judge"]["source"] for r in judged] == ["execution"] * 4
    assert [r["passed"] for r in judged] == [True, False, True, False]
    assert all(r["judge"]["details"]["outcome"] in ("tests_failed", "code_error") for r in judged[1::2])
    execution = out["judge_summary"]["execution"]
    assert execution["executed"] == 4 and execution["by_outcome"]["passed"] == 2

    off = run(records, {**load_params("judging"), "execution": {"enabled": False}})
    assert off["judge_summary"]["execution"]["executed"] == 0
    assert "enabled is false" in off["judge_summary"]["execution"]["not_run"]
    assert {r["judge"]["source"] for r in off["judged_results"]} == {"verifiable"}   # code never run unsandboxed


def test_human_labels_agreement_per_category():
    records = [_short(i, "7473", "7473" if i % 2 else "12", category=CATS[i % 2]) for i in range(8)]
    labels = [{"id": f"s{i}", "passed": bool(i % 2)} for i in range(8)]
    labels[0]["passed"] = True                                              # one disagreement
    labels.append({"id": "not-in-run", "passed": True})
    agreement = run(records, load_params("judging"), human_labels=labels)["judge_summary"]["human_agreement"]
    assert agreement["items"] == 8 and agreement["agreement"] == 0.875 and agreement["labels_without_record"] == 1
    assert agreement["cohen_kappa"] == pytest.approx(0.75)
    assert agreement["per_category"]["math"]["agreement"] == 0.75 and agreement["per_category"]["code"]["agreement"] == 1.0
    assert run(records, load_params("judging"))["judge_summary"]["human_agreement"] is None
