"""Batched decoding for a transformers causal LM: tight prefill, static KV cache, finished rows dropped.

``model.generate`` on a left-padded batch pays for three things that a batch of prompts of
mixed lengths does not need (measured with SmolLM2-135M, 2 CPU cores, 32 prompts of 44-512
tokens, 64 new tokens; see ``benchmarks/bench_generation.py``):

- the prefill runs over the padding: a batch's every row is as long as its longest prompt;
- ``DynamicCache`` grows by ``torch.cat`` at every step: 64% of a decode step's time at a
  512-token context;
- a row that has stopped keeps being computed until the whole batch stops.

``generate_batch`` below prefills the prompts in small groups of similar length, writes
their keys and values into one ``StaticCache`` (right-aligned, so every row's next token
lands in the same column), and decodes the batch one token per step with the model's own
forward, dropping the rows that have stopped once an eighth of the batch has. Greedy outputs
match one-at-a-time ``generate`` (the benchmark and the tests assert it). transformers'
own continuous batching (``generate_batch`` with paged attention) took 49 s on the same
workload where this takes 21 s, so it is not used on CPU.

Only models whose cache is made of plain full-attention ``StaticLayer`` s take this path
(``supports``); any other model (sliding-window layers, state-space layers...) goes through
``model.generate``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: A decode batch is compacted (finished rows dropped) once this share of it has stopped.
COMPACT_AT = 0.125


@dataclass(frozen=True)
class Decoding:
    """What to decode: ``temperature`` 0 is greedy; ``seed`` makes sampling reproducible per prompt."""

    max_new_tokens: int
    eos_ids: frozenset[int]
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    #: Most tokens (rows x longest prompt, padding included) one prefill forward may hold.
    prefill_tokens: int = 2048
    #: A prefill group ends where padding would exceed this share of its longest prompt.
    prefill_padding: float = 0.125


def supports(model: Any) -> bool:
    """Whether ``model``'s static cache is all plain full-attention layers (the layout written here)."""
    from transformers import StaticCache
    from transformers.cache_utils import StaticLayer

    try:
        cache = StaticCache(config=model.config, max_cache_len=8)
    except Exception:  # a config StaticCache cannot describe
        return False
    return bool(cache.layers) and all(type(layer) is StaticLayer for layer in cache.layers)


def prefill_groups(lengths: Sequence[int], max_tokens: int, max_padding: float) -> list[list[int]]:
    """Cut rows (longest first) into prefill groups of similar length.

    A group ends when the next row is shorter than ``1 - max_padding`` of the group's longest,
    or when one more row would take the group past ``max_tokens`` (rows x longest).
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    groups: list[list[int]] = []
    for i in order:
        if groups:
            head = lengths[groups[-1][0]]
            if lengths[i] >= (1 - max_padding) * head and (len(groups[-1]) + 1) * head <= max_tokens:
                groups[-1].append(i)
                continue
        groups.append([i])
    return groups


def left_pad(prompts: Sequence[Sequence[int]], pad: int, device: Any) -> tuple[Any, Any]:
    """``input_ids`` and ``attention_mask`` of the prompts left-padded to the longest."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    return ids, mask


def cut_at_eos(row: Sequence[int], eos_ids: frozenset[int]) -> tuple[list[int], str]:
    """A generated row up to its first end-of-sequence token, and ``stop`` or ``length``."""
    stop_at = next((k for k, t in enumerate(row) if t in eos_ids), None)
    return (list(row), "length") if stop_at is None else (list(row[:stop_at]), "stop")


def row_seed(seed: int, prompt: Sequence[int]) -> int:
    """Sampling seed of one prompt: the same prompt and seed draw the same tokens in any batch."""
    digest = hashlib.blake2b(repr((seed, list(prompt))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def generate_batch(model: Any, prompts: Sequence[Sequence[int]], decoding: Decoding) -> list[tuple[list[int], str]]:
    """Decode every prompt (token ids, no padding); returns ``(new_tokens, finish_reason)`` per prompt.

    ``finish_reason`` is ``stop`` (an end-of-sequence token, not included) or ``length``.
    Call under ``torch.inference_mode()``.
    """
    import torch
    from transformers import StaticCache

    device = model.device
    n = len(prompts)
    width = max(len(p) for p in prompts)
    total = width + decoding.max_new_tokens
    cache = StaticCache(config=model.config, max_cache_len=total)
    generators = _generators(prompts, decoding, device)
    tokens = _pick(_prefill(model, cache, prompts, width, decoding), decoding, generators)

    mask = torch.zeros(n, total, dtype=torch.long, device=device)
    for r, ids in enumerate(prompts):
        mask[r, width - len(ids):width] = 1
    positions = torch.tensor([[len(ids)] for ids in prompts], device=device)
    rows = list(range(n))  # which prompt each live batch row holds
    done = [False] * n  # per live batch row
    out: list[list[int]] = [[] for _ in range(n)]
    finish = ["length"] * n
    for step in range(decoding.max_new_tokens):
        for j, (r, t) in enumerate(zip(rows, tokens.tolist(), strict=True)):
            if done[j]:
                continue
            if t in decoding.eos_ids:
                finish[r], done[j] = "stop", True
            else:
                out[r].append(t)
        if all(done) or step == decoding.max_new_tokens - 1:
            break
        if sum(done) >= COMPACT_AT * len(done):
            live = [j for j, d in enumerate(done) if not d]
            keep = torch.tensor(live, device=device)
            for layer in cache.layers:
                layer.keys = layer.keys.index_select(0, keep)
                layer.values = layer.values.index_select(0, keep)
            mask, positions, tokens = mask[keep], positions[keep], tokens[keep]
            rows, done = [rows[j] for j in live], [False] * len(live)
            generators = [generators[j] for j in live] if generators else generators
        column = width + step
        mask[:, column] = 1
        logits = model(input_ids=tokens.unsqueeze(1), attention_mask=mask, position_ids=positions,
                       cache=cache, cache_position=torch.tensor([column], device=device), use_cache=True).logits
        tokens = _pick(logits[:, -1, :], decoding, generators)
        positions = positions + 1
    return [(out[r], finish[r]) for r in range(n)]


def _prefill(model: Any, cache: Any, prompts: Sequence[Sequence[int]], width: int, decoding: Decoding) -> Any:
    """Run the prompts through the model in groups of similar length and fill ``cache``.

    Each row's keys and values land right-aligned at ``width``; returns each row's last logits.
    """
    import torch
    from transformers import DynamicCache

    device = model.device
    n = len(prompts)
    last_logits: list[Any] = [None] * n
    for group in prefill_groups([len(p) for p in prompts], decoding.prefill_tokens, decoding.prefill_padding):
        w = len(prompts[group[0]])
        ids, mask = left_pad([prompts[r] for r in group], 0, device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        group_cache = DynamicCache()
        logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, cache=group_cache,
                       use_cache=True, logits_to_keep=1).logits
        for layer, src in zip(cache.layers, group_cache.layers, strict=True):
            if not layer.is_initialized:
                shape = (n, *src.keys.shape[1:])
                layer.lazy_initialization(src.keys.new_empty(shape), src.values.new_empty(shape))
            for g, r in enumerate(group):
                length = len(prompts[r])
                layer.keys[r, :, width - length:width] = src.keys[g, :, w - length:]
                layer.values[r, :, width - length:width] = src.values[g, :, w - length:]
        for g, r in enumerate(group):
            last_logits[r] = logits[g, -1]
    for layer in cache.layers:
        layer.cumulative_length.fill_(width)
    return torch.stack(last_logits)


def _generators(prompts: Sequence[Sequence[int]], decoding: Decoding, device: Any) -> list[Any]:
    """One seeded random generator per prompt when sampling (none when greedy)."""
    import torch

    if decoding.temperature <= 0:
        return []
    return [torch.Generator(device=device).manual_seed(row_seed(decoding.seed, p)) for p in prompts]


def _pick(logits: Any, decoding: Decoding, generators: list[Any]) -> Any:
    """Next token per row: argmax when greedy, else temperature + top-p sampling with each row's generator."""
    import torch
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    if decoding.temperature <= 0:
        return logits.argmax(-1)
    scores = TemperatureLogitsWarper(decoding.temperature)(None, logits.float())
    if decoding.top_p < 1.0:
        scores = TopPLogitsWarper(decoding.top_p)(None, scores)
    probs = scores.softmax(-1)
    return torch.cat([torch.multinomial(probs[j], 1, generator=g) for j, g in enumerate(generators)])
