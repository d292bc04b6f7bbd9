"""The backend registry, the lazy client and the catalog's resource datasets."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from kedro.io import DataCatalog, DatasetError

from phase1b_kedro.cache import ResponseCache
from phase1b_kedro.checkpoint import CheckpointStore
from phase1b_kedro.judges.cache import VerdictCache
from phase1b_kedro.llm import ChatResult, GenerationConfig, LazyClient, backend_class, make_client, register_backend
from phase1b_kedro.resource_datasets import CheckpointDataset, LLMDataset, ResponseCacheDataset, VerdictCacheDataset


@register_backend("echo_for_tests")
class EchoClient:
    """A registered backend that echoes the last user turn (counts how often it was built)."""

    built = 0

    @dataclass(frozen=True)
    class Options:
        prefix: str = "echo: "

    def __init__(self, model: str, options: EchoClient.Options, api_key: str | None) -> None:
        type(self).built += 1
        self.name, self.options, self.api_key = model, options, api_key

    @classmethod
    def create(cls, model, options, api_key=None):
        return cls(model, options, api_key)

    def describe(self):
        return {"model": self.name, "backend": self.backend, "built": True}

    def generate(self, conversations, config, progress=None, on_result=None):
        return [ChatResult(text=self.options.prefix + c[-1]["content"]) for c in conversations]


def test_a_registered_backend_is_built_by_name_with_its_typed_options():
    client = make_client("echo_for_tests", "m", {"prefix": ">> "}, api_key="k")
    assert client.api_key == "k" and client.options.prefix == ">> "
    assert client.generate([[{"role": "user", "content": "hi"}]], GenerationConfig())[0].text == ">> hi"
    assert backend_class("transformers").__name__ == "TransformersClient"   # built-ins import on first use


def test_unknown_backends_and_options_are_clear_errors():
    with pytest.raises(ValueError, match=r"unknown LLM backend 'nope'; known: \[.*'openai_compatible'.*\]"):
        make_client("nope", "m")
    with pytest.raises(ValueError, match=r"echo_for_tests options: unknown keys \['prefx'\]; known keys: \['prefix'\]"):
        LazyClient("echo_for_tests", "m", {"prefx": "x"})          # at once, not at first use
    with pytest.raises(ValueError, match=r"openai_compatible options: unknown keys \['batch_size'\]"):
        LazyClient("openai_compatible", "m", {"batch_size": 4})    # a transformers option on a server


def test_the_lazy_client_builds_its_backend_on_first_use_only():
    before = EchoClient.built
    client = LazyClient("echo_for_tests", "m")
    assert client.describe() == {"model": "m", "backend": "echo_for_tests"} and EchoClient.built == before
    assert client.generate([[{"role": "user", "content": "a"}]], GenerationConfig())[0].text == "echo: a"
    assert EchoClient.built == before + 1 and client.describe()["built"] is True
    client.generate([[{"role": "user", "content": "b"}]], GenerationConfig())
    assert EchoClient.built == before + 1                                   # built once
    assert client.options.prefix == "echo: "                               # attributes reach the backend


def test_llm_dataset_loads_a_lazy_client_with_credentials_and_never_saves():
    catalog = DataCatalog.from_config(
        {"judge_model": {"type": "phase1b_kedro.resource_datasets.LLMDataset", "backend": "echo_for_tests",
                         "model": "j", "options": {"prefix": "> "}, "credentials": "hf"}},
        credentials={"hf": {"token": "secret-token"}})
    client = catalog.load("judge_model")
    assert isinstance(client, LazyClient) and client._client is None
    assert client.client.api_key == "secret-token"
    assert "secret-token" not in str(catalog.get("judge_model")._describe())
    with pytest.raises(DatasetError, match="resource"):
        catalog.save("judge_model", client)
    with pytest.raises(DatasetError, match="unknown keys"):
        LLMDataset(backend="echo_for_tests", options={"bad": 1}).load()
    with pytest.raises(DatasetError, match="mapping"):
        LLMDataset(credentials="token-as-a-string")


def test_cache_and_checkpoint_datasets(tmp_path):
    verdicts = VerdictCacheDataset(str(tmp_path / "v.sqlite")).load()
    assert isinstance(verdicts, VerdictCache)
    with verdicts:
        verdicts.put_many([("k", 7.0, "fine", "judge", {"position": 1})])
        verdicts.put_json("label", {"a": 1})
    with VerdictCacheDataset(str(tmp_path / "v.sqlite")).load() as again:   # persisted
        assert again.get_many(["k"]) == {"k": (7.0, "fine", {"position": 1})} and again.get_json_many(["label"])
    with ResponseCacheDataset(None).load() as memory:                       # in memory
        assert isinstance(memory, ResponseCache) and memory.get_json_many(["x"]) == {}
    store = CheckpointDataset(str(tmp_path / "ckpt")).load()
    assert isinstance(store, CheckpointStore)
    store.for_key("abc").append([{"id": "r1", "output": "x"}])
    assert CheckpointStore(tmp_path / "ckpt").for_key("abc").load() == {"r1": {"id": "r1", "output": "x"}}
