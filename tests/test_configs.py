"""Typed parameter groups: the base YAML builds every group, unknown keys (at any depth) are
errors naming the group and the known keys, and a CLI string where a list is expected works."""

from __future__ import annotations

import pytest

from phase1b_kedro.judges.strategies import JudgingSettings
from phase1b_kedro.labeler import LabelingSettings
from phase1b_kedro.llm import GenerationConfig
from phase1b_kedro.pipelines.generation.nodes import GenerationSettings
from phase1b_kedro.sampling import SamplingSettings
from tests.conftest import load_params


def test_the_base_parameters_build_every_typed_group():
    judging = JudgingSettings.from_params(load_params("judging"))
    assert (judging.strategy, judging.fallback, judging.failure_threshold) == ("hybrid", "similarity", 7)
    assert judging.protocol.items_per_call == 50 and judging.execution.sandbox.cpu_s == 10
    labeling = LabelingSettings.from_params(load_params("labeling"))
    assert labeling.keywords.fields == ("prompt",) and labeling.keywords.ngram_range == (1, 2)
    assert labeling.llm.enabled is False and labeling.plan.total_examples == 1000
    sampling = SamplingSettings.from_params(load_params("sampling"))
    assert (sampling.num_samples, sampling.min_per_category, sampling.seed) == (200, 12, 42)
    generation = GenerationSettings.from_params(load_params("generation"))
    assert GenerationConfig.from_params(generation.decoding).max_new_tokens == 256


@pytest.mark.parametrize(("build", "params", "message"), [
    (JudgingSettings.from_params, {"strategy": "hybrid", "batch_size": 50}, r"judging: unknown keys \['batch_size'\]"),
    (JudgingSettings.from_params, {"protocol": {"batch_size": 50}},
     r"judging.protocol: unknown keys \['batch_size'\]; known keys: \[.*'items_per_call'.*\]"),
    (JudgingSettings.from_params, {"execution": {"sandbox": {"cpu": 1}}}, r"judging.execution.sandbox: unknown keys"),
    (JudgingSettings.from_params, {"similarity": {"model_name": "x"}}, r"judging.similarity: unknown keys"),
    (JudgingSettings.from_params, {"strategy": "llm"}, r"judging.strategy must be one of"),
    (LabelingSettings.from_params, {"llm": True}, r"labeling.llm must be a group of keys \[.*'enabled'.*\], got bool"),
    (LabelingSettings.from_params, {"plan": {"budget": 5}}, r"labeling.plan: unknown keys \['budget'\]"),
    (LabelingSettings.from_params, {"keywords_top_k": 8}, r"labeling: unknown keys \['keywords_top_k'\]"),
    (GenerationSettings.from_params, {"max_new_tokens": 5}, r"generation: unknown keys \['max_new_tokens'\]"),
    (GenerationConfig.from_params, {"max_tokens": 5}, r"generation.decoding: unknown keys \['max_tokens'\]"),
    (SamplingSettings.from_params, {"num_sample": 5}, r"sampling: unknown keys \['num_sample'\]"),
    (SamplingSettings.from_params, {"num_samples": -1}, r"sampling.num_samples must be a non-negative integer"),
    (SamplingSettings.from_params, {"scan_workers": 0}, r"sampling.scan_workers must be auto or a positive"),
])
def test_unknown_or_invalid_keys_are_clear_errors(build, params, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build(params)


def test_a_single_string_where_a_list_is_expected():
    assert LabelingSettings.from_params({"keywords": {"fields": "output"}}).keywords.fields == ("output",)
    assert GenerationConfig.from_params({"stop": "###"}).stop == ("###",)
