"""Judge endpoint faults, injected by the scripted server: every item ends judged or
`unjudged` with a reason, counts reconcile, retries stay within their bound."""

from __future__ import annotations

import json

import pytest

from phase1b_kedro.judges.strategies import JudgeUnavailableError

from tests.support.fake_judge_server import FakeJudge, Script, parse_items
from tests.support.judging import FAULTS, _first_request_only, honest, llm_params, make_records, run
from tests.reliability.conftest import record

N, BATCH, MAX_RETRIES = 8, 4, 3

# name -> (script, how to describe it)
TRANSPORT = {
    "429 with Retry-After": Script(http_errors=[429, 429], retry_after="1"),
    "500 Internal Server Error": Script(http_errors=[500, 500]),
    "503 Service Unavailable": Script(http_errors=[503]),
    "read timeout": Script(transport=["timeout"], timeout_delay=3.0),
    "connection reset mid-body": Script(transport=["reset"]),
    "empty body (HTTP 200)": Script(transport=["empty_body"]),
}
REPLIES = {
    "truncated JSON": "broken_json", "not JSON at all": "not_json", "wrong item count (one missing)": "missing_item",
    "duplicate id": "duplicate_id", "unknown id": "unknown_id", "score out of range": "score_out_of_range",
    "non-numeric score": "non_numeric_score", "empty reply text": "empty_body",
}
WRAPPED = {
    "JSON in prose": lambda v, i, n: f"Here are my grades.\n{json.dumps(v)}\nThanks!",
    "JSON in a code fence": lambda v, i, n: f"```json\n{json.dumps(v)}\n```",
    "too many items (an extra unknown)": lambda v, i, n: json.dumps(v + [{"id": "zzz", "score": 5}]),
}


def _check(case: str, out: dict, judge: FakeJudge, records: list[dict], params: dict) -> None:
    summary = out["judge_summary"]
    llm = summary["llm"]
    assert summary["items_in"] == N == summary["passed"] + summary["failed"] + summary["unjudged"]
    for r in out["judged_results"]:
        assert r["judge"]["status"] == "ok" or r["judge"]["reason"]
    judged_ok = [r for r in out["judge_scores"] if r["judge"]["status"] == "ok"]
    truth = dict(zip([r["id"] for r in records], honest(records), strict=True))
    assert all(r["score"] == truth[r["id"]] for r in judged_ok)       # no wrong verdict slipped through
    assert llm["transport_retries"] <= MAX_RETRIES * llm["calls"]
    assert len(judge.requests) == llm["calls"] + llm["transport_retries"]
    record("judge_faults", {"case": case, "items_in": N, "judged": summary["judged"], "unjudged": summary["unjudged"],
                            "requests": len(judge.requests), "calls": llm["calls"],
                            "retries": llm["transport_retries"], "rejudged": llm["rejudged_items"]})


@pytest.mark.parametrize("case", sorted(TRANSPORT))
def test_transport_faults(case, tmp_path, allow_local_http):
    records = make_records(N)
    with FakeJudge(TRANSPORT[case]) as judge:
        params = llm_params(judge, tmp_path, items_per_call=BATCH, max_retries=MAX_RETRIES, timeout_s=1.5, concurrency=1)
        out = run(records, params)
        _check(case, out, judge, records, params)
    assert out["judge_summary"]["unjudged"] == 0


@pytest.mark.parametrize("case", sorted(REPLIES))
def test_bad_replies(case, tmp_path, allow_local_http):
    records = make_records(N)
    with FakeJudge(Script(reply=_first_request_only(FAULTS[REPLIES[case]]))) as judge:
        params = llm_params(judge, tmp_path, items_per_call=BATCH, max_retries=MAX_RETRIES, concurrency=1)
        out = run(records, params)
        _check(case, out, judge, records, params)
    assert out["judge_summary"]["unjudged"] == 0


@pytest.mark.parametrize("case", sorted(WRAPPED))
def test_wrapped_replies(case, tmp_path, allow_local_http):
    records = make_records(N)
    with FakeJudge(Script(reply=WRAPPED[case])) as judge:
        out = run(records, llm_params(judge, tmp_path, items_per_call=BATCH, concurrency=1))
        _check(case, out, judge, records, {})
    assert out["judge_summary"]["unjudged"] == 0


def test_endpoint_down_for_good(tmp_path, allow_local_http):
    records = make_records(N)
    with FakeJudge(Script(http_errors=[503] * 1000)) as judge:
        params = llm_params(judge, tmp_path, items_per_call=BATCH, max_retries=MAX_RETRIES, concurrency=1,
                            single_attempts=1)
        # every call answered 503 after its retries: a systemic failure stops the run, loudly
        with pytest.raises(JudgeUnavailableError, match=r"all \d+ calls to the judge 'judge-test' \(http://127\.0\.0"
                                                        r"\.1:\d+/v1\) failed; the commonest reason: judge call "
                                                        r"failed: HTTP 503"):
            run(records, params)
        assert len(judge.requests) >= MAX_RETRIES + 1       # each call was retried before giving up
    record("judge_faults", {"case": "endpoint down for good (503 always)", "items_in": N, "judged": 0,
                            "unjudged": N, "requests": len(judge.requests), "stopped_the_run": True})


def test_every_request_carries_only_known_items(tmp_path, allow_local_http):
    """Items are never mixed across calls: each request's items are a subset of the records."""
    records = make_records(N)
    with FakeJudge(Script(reply=_first_request_only(FAULTS["missing_item"]))) as judge:
        run(records, llm_params(judge, tmp_path, items_per_call=BATCH))
        outputs = {r["output"] for r in records}
        for request in judge.requests:
            assert {i["output"] for i in parse_items(request["body"]["messages"])} <= outputs
