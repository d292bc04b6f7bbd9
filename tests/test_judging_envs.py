"""The judging environments through a real Kedro session: judge_70b's requests (against a
local server standing in for Hugging Face Inference), threshold_6, and local_server against
a real llama.cpp server serving the bundled GGUF (started here, on 127.0.0.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from phase1b_kedro.judges.protocol import response_schema
from tests.conftest import copy_project
from tests.support.fake_judge_server import FakeJudge, parse_items
from tests.support.judging import make_records

OUTPUTS = ("judge_scores.jsonl", "judged_results.jsonl", "failures.jsonl", "judge_summary.json")


@pytest.fixture
def tmp_project(tmp_path, project_root, monkeypatch):
    """A copy of the project's configuration with stored model outputs, run from its root."""
    copy_project(tmp_path, with_raw_data=False)
    out = tmp_path / "data" / "07_model_output"
    out.mkdir(parents=True)
    records = make_records(6) + [{**make_records(1)[0], "id": "num", "reference": "12", "output": "It is 12."}]
    (out / "model_outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    monkeypatch.chdir(tmp_path)
    bootstrap_project(tmp_path)
    return tmp_path


def run_judging(root: Path, env: str | None, params: dict | None = None) -> dict:
    with KedroSession.create(project_path=root, env=env, runtime_params=params or {}) as session:
        session.run(pipeline_names=["judging"])
    folder = root / "data" / "07_model_output"
    assert all((folder / name).is_file() for name in OUTPUTS)
    return json.loads((folder / "judge_summary.json").read_text())


def test_judge_70b_builds_hugging_face_requests(tmp_project, allow_local_http, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_marker_token")
    with FakeJudge() as judge:
        summary = run_judging(tmp_project, "judge_70b", {"judge_base_url": judge.base_url})
        bodies = [r["body"] for r in judge.requests]
        headers = [r["headers"] for r in judge.requests]
    assert {b["model"] for b in bodies} == {"meta-llama/Llama-3.3-70B-Instruct"}
    # structured output: a base_url server gets the OpenAI json_schema form as is (Hugging Face
    # Inference, base_url null, gets it through huggingface_hub's provider mapping)
    schema = response_schema()
    assert all(b["response_format"] == {"type": "json_schema", "json_schema": {"name": "verdicts", "schema": schema,
                                                                                "strict": True}}
               for b in bodies)
    assert all(h.get("authorization") == "Bearer hf_marker_token" for h in headers)
    assert sum(len(parse_items(b["messages"])) for b in bodies) >= 6
    assert summary["judge_model"] == "meta-llama/Llama-3.3-70B-Instruct"
    assert summary["verdicts_by_source"] == {"llm": 6, "verifiable": 1}
    assert summary["agreement"]["items"] == 6          # agreement_sample 50 > 6 items: all of them
    assert summary["unjudged"] == 0
    # permuted re-judging of 10% of the batches (here the one batch) in 2 other orders
    assert summary["permutations"]["batches"] == 1 and summary["permutations"]["calls"] == 2
    assert summary["llm"]["structured_output"] == {"requested": "json_schema", "used": "json_schema", "fallbacks": []}
    assert summary["tokens"]["counted_by"] == {"reported": summary["llm"]["calls"]}


def test_threshold_env_changes_only_the_threshold(tmp_project):
    base = run_judging(tmp_project, None)
    strict = run_judging(tmp_project, "threshold_6")
    assert base["failure_threshold"] == 7 and strict["failure_threshold"] == 6
    assert strict["strategy"] == base["strategy"] == "hybrid" and strict["judge_model"] == base["judge_model"]


@pytest.mark.slow
def test_local_server_env_with_a_real_llama_cpp_server(tmp_project, allow_local_http, llama_server):
    params = {"judge_base_url": llama_server,
              "judging": {"protocol": {"items_per_call": 3, "tokens_per_item": 40, "canaries": 1, "single_attempts": 1}}}
    summary = run_judging(tmp_project, "local_server", params)
    llm = summary["llm"]
    # a real (tiny) judge: each item has a valid verdict or is unjudged with the reason
    assert summary["items_in"] == 7 and summary["judged"] + summary["unjudged"] == 7
    assert summary["verdicts_by_source"].get("verifiable") == 1
    assert llm["calls"] >= 3 and llm["items_sent"] >= 6
    scores = [json.loads(line) for line in (tmp_project / "data/07_model_output/judge_scores.jsonl").open()]
    for r in scores:
        if r["judge"]["status"] == "ok":
            assert 0 <= r["score"] <= 10
        else:
            assert r["judge"]["reason"]
    # the same run again: every valid verdict comes from the cache, no item with one is re-sent
    again = run_judging(tmp_project, "local_server", params)
    assert again["llm"]["cache_hits"] == summary["verdicts_by_source"].get("llm", 0)


@pytest.mark.parametrize("env", sorted(p.name for p in (Path(__file__).parents[1] / "conf").iterdir()
                                        if p.is_dir() and p.name not in ("base", "local")))
def test_every_environment_resolves_its_pipelines_inputs(env, project_root, monkeypatch):
    """Each environment's catalog and parameters load, every input of the default pipeline
    (and of two_models in its environment) is declared, the typed parameter groups accept the
    merged parameters, and loading the models builds nothing."""
    from kedro.framework.project import pipelines

    from phase1b_kedro.judges.strategies import JudgingSettings
    from phase1b_kedro.labeler import LabelingSettings
    from phase1b_kedro.pipelines.generation.nodes import GenerationSettings

    monkeypatch.chdir(project_root)
    bootstrap_project(project_root)
    with KedroSession.create(project_path=project_root, env=env) as session:
        context = session.load_context()
        catalog, params = context.catalog, context.params
        names = ["__default__", "threshold"] + (["two_models"] if env == "two_models" else [])
        for name in names:
            missing = [d for d in pipelines[name].inputs() if not d.startswith("params:")
                       and d not in catalog and catalog.get(d) is None]
            assert missing == [], (name, missing)
        JudgingSettings.from_params(params["judging"])
        LabelingSettings.from_params(params["labeling"])
        GenerationSettings.from_params(params["generation"])
        for model in ("judge_model", "generation_model"):
            client = catalog.load(model)
            assert client._client is None and client.describe()["model"]   # lazy: nothing built yet
