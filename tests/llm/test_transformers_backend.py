"""The transformers backend on the real bundled model: batching == one-at-a-time, static batches,
padding, per-prompt seeds, truncation."""

from __future__ import annotations

import pytest

from phase1b_kedro.llm import GenerationConfig, static_batch

pytestmark = pytest.mark.slow

PROMPTS = ["What is 2+2?", "Name the capital of France.", "Write a haiku about rain.",
           "Is a tomato a fruit? Answer yes or no.", "def add(a, b):", "List three colours."]


def plain_generate(client, prompt: str, max_new_tokens: int) -> list[int]:
    """One prompt through plain ``model.generate`` (the reference the batched path must match)."""
    import torch

    ids, _ = client.encode([{"role": "user", "content": prompt}], 512)
    with torch.inference_mode():
        row = client.model.generate(input_ids=torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False,
                                    temperature=None, top_p=None, top_k=None,
                                    pad_token_id=client.tokenizer.pad_token_id)[0, len(ids):].tolist()
    return static_batch.cut_at_eos(row, client.eos_ids)[0]


@pytest.fixture
def client(smollm2_client):
    return smollm2_client


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
