"""Factories the test modules share: judge set-ups and catalogs with the resource datasets."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from phase1b_kedro.resource_datasets import LLMDataset, VerdictCacheDataset
from tests.conftest import load_params

#: Keys of ``OpenAICompatibleClient.Options`` (the judge model's catalog options).
CLIENT_OPTIONS = {"base_url", "concurrency", "max_retries", "timeout_s", "max_wait_s", "transport"}
#: Keys of the ``judging`` group itself (everything else a test overrides is protocol).
TOP_LEVEL = {"strategy", "fallback", "failure_threshold", "execution", "verifiable", "similarity"}


@dataclass
class JudgeSetup:
    """A judging run against a server: the parameters, the judge model's catalog entry, the cache."""

    params: dict[str, Any]
    model: dict[str, Any] = field(default_factory=dict)
    cache_path: str | None = None

    def with_params(self, **top: Any) -> JudgeSetup:
        """The same set-up with top-level ``judging`` keys replaced (e.g. ``failure_threshold``)."""
        return replace(self, params={**self.params, **top})


def judge_setup(base_url: str, cache_path: str | None, model: str = "judge-test", **overrides: Any) -> JudgeSetup:
    """An ``llm_batch`` judge at ``base_url``; each override goes where it belongs (client
    option, top-level ``judging`` key, or ``judging.protocol``)."""
    params = load_params("judging")
    options = {"base_url": base_url, "concurrency": 2, "max_retries": 3, "max_wait_s": 0.05, "timeout_s": 10}
    protocol = {**params["protocol"], "items_per_call": 4, "canaries": 0}
    params["strategy"] = "llm_batch"
    for key, value in overrides.items():
        if key in CLIENT_OPTIONS:
            options[key] = value
        elif key in TOP_LEVEL:
            params[key] = value
        else:
            protocol[key] = value
    params["protocol"] = protocol
    return JudgeSetup(params, {"backend": "openai_compatible", "model": model, "options": options}, cache_path)


def judge_resources(setup: JudgeSetup | dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(params, datasets)``: the ``judging`` group and the ``judge_model``/``judge_cache``
    datasets for a catalog (the bundled model, never called, and an in-memory cache for
    plain parameters)."""
    if isinstance(setup, JudgeSetup):
        return setup.params, {"judge_model": LLMDataset(**setup.model),
                              "judge_cache": VerdictCacheDataset(setup.cache_path)}
    return setup, {"judge_model": LLMDataset(), "judge_cache": VerdictCacheDataset(None)}
