"""Judging test builders: free-text records, a judge set-up on the scripted server, a pipeline
run over an in-memory catalog, the honest grades, reconciliation checks and reply faults."""

from __future__ import annotations

import json

from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from phase1b_kedro.pipelines.judging import create_pipeline
from tests.conftest import Kept
from tests.support.factories import JudgeSetup, judge_resources, judge_setup
from tests.support.fake_judge_server import FakeJudge, honest_score


CATS = ["math", "code", "reasoning", "creative", "qa", "other"]


def make_records(n: int = 12) -> list[dict]:
    """Free-text references (nothing verifiable); every other output is the reference."""
    out = []
    for i in range(n):
        reference = f"explanation number {i} about topic {CATS[i % 6]} in several plain words"
        out.append({
            "id": f"r{i}", "category": CATS[i % 6], "prompt": f"Explain thing {i}.",
            "messages": [{"role": "user", "content": f"Explain thing {i}."}],
            "reference": reference, "source": "test", "meta": {},
            "output": reference if i % 2 == 0 else f"something unrelated {i}",
            "generation": {"status": "ok", "error": None},
        })
    return out


def llm_params(judge: FakeJudge, tmp_path, **overrides) -> JudgeSetup:
    """An llm_batch judge on the scripted server, its cache under ``tmp_path``."""
    return judge_setup(judge.base_url, str(tmp_path / "cache.sqlite"), **overrides)


OUTPUTS = ("judge_scores", "judged_results", "failures", "judge_summary", "judge_run_stats")


def run(records: list[dict], setup: JudgeSetup | dict, pipeline=None, human_labels: list[dict] | None = None) -> dict:
    params, resources = judge_resources(setup)
    catalog = DataCatalog({name: Kept() for name in OUTPUTS} | resources)
    catalog["model_outputs"] = records
    catalog["human_labels"] = human_labels or []
    catalog["params:judging"] = params
    catalog["params:judging.failure_threshold"] = params["failure_threshold"]
    SequentialRunner().run(pipeline or create_pipeline(), catalog)
    return {name: catalog.load(name) for name in OUTPUTS}


def honest(records):
    return [honest_score({"reference": r["reference"], "output": r["output"]}) for r in records]


def assert_reconciles(out: dict, n: int) -> None:
    summary = out["judge_summary"]
    assert summary["items_in"] == n == len(out["judged_results"])
    assert summary["passed"] + summary["failed"] + summary["unjudged"] == n
    assert [r["id"] for r in out["judged_results"]] == [f"r{i}" for i in range(n)]
    for r in out["judged_results"]:
        if r["judge"]["status"] == "unjudged":
            assert r["score"] is None and r["passed"] is None and r["judge"]["reason"]


def _first_request_only(bad):
    def reply(verdicts, items, n):
        return bad(verdicts) if n == 1 else json.dumps(verdicts)
    return reply


FAULTS = {
    "missing_item": lambda v: json.dumps(v[1:]),
    "duplicate_id": lambda v: json.dumps(v + [{**v[0], "score": 1}]),
    "unknown_id": lambda v: json.dumps([{**v[0], "id": "nope"}, *v[1:]]),
    "score_out_of_range": lambda v: json.dumps([{**v[0], "score": 42}, *v[1:]]),
    "non_numeric_score": lambda v: json.dumps([{**v[0], "score": "excellent"}, *v[1:]]),
    "broken_json": lambda v: json.dumps(v)[: len(json.dumps(v)) // 2],
    "not_json": lambda v: "I am sorry, I cannot grade these answers.",
    "empty_body": lambda v: "",
}
