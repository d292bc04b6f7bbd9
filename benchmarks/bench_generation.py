"""Benchmark: one-at-a-time ``model.generate`` vs this pipeline's batched path (greedy).

The same prompts (the first N of the bundled test set, or of the bundled raw file) go
through (a) one ``generate`` call per prompt and (b) ``TransformersClient.generate``
(length-sorted batches, left padding). Outputs are asserted identical; prints examples/s,
output tokens/s and the ratio. Target (issue 3): >= 5x on 2 CPU cores with the default model.

Usage: python benchmarks/bench_generation.py [--n 32] [--batch-size 16] [--max-new-tokens 32] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from phase1b_kedro.llm import GenerationConfig, make_client  # noqa: E402
from phase1b_kedro.llm.transformers_backend import BUNDLED_SMOLLM2  # noqa: E402
from phase1b_kedro.records import FieldConfig, Normalised, normalise  # noqa: E402


def prompts(n: int) -> list[list[dict]]:
    """The first ``n`` usable conversations of the bundled file (mixed lengths and categories)."""
    out = []
    for line in (ROOT / "data/01_raw/prompts.jsonl").open(encoding="utf-8"):
        rec = normalise(json.loads(line), FieldConfig())
        if isinstance(rec, Normalised):
            out.append(rec.messages)
        if len(out) == n:
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--max-input-tokens", type=int, default=512)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-padding", type=float, default=0.5)
    parser.add_argument("--model", default=BUNDLED_SMOLLM2)
    args = parser.parse_args()

    client = make_client({"backend": "transformers", "model": args.model, "batch_size": args.batch_size,
                          "device": args.device, "model_dir": str(ROOT / "data/06_models"),
                          "max_padding": args.max_padding})
    client.load()
    config = GenerationConfig(max_new_tokens=args.max_new_tokens, max_input_tokens=args.max_input_tokens)
    convs = prompts(args.n)
    print(f"model {args.model} on {client.device} ({client.dtype}); {len(convs)} prompts, "
          f"max_new_tokens={args.max_new_tokens}, batch_size={args.batch_size}")

    t0 = time.perf_counter()
    single = [client._generate_batch([client.encode(c, config.max_input_tokens)], config)[0] for c in convs]
    t_single = time.perf_counter() - t0
    t0 = time.perf_counter()
    batched = client.generate(convs, config)
    t_batched = time.perf_counter() - t0

    same = sum(a.text == b.text for a, b in zip(single, batched, strict=True))
    tok_s = sum(r.tokens_out for r in single)
    tok_b = sum(r.tokens_out for r in batched)
    print(f"one-at-a-time: {t_single:7.2f} s  {len(convs) / t_single:6.2f} examples/s  {tok_s / t_single:7.1f} tokens/s")
    print(f"batched      : {t_batched:7.2f} s  {len(convs) / t_batched:6.2f} examples/s  {tok_b / t_batched:7.1f} tokens/s")
    print(f"speed-up: {t_single / t_batched:.2f}x  (target >= 5x on 2 CPU cores); identical outputs: {same}/{len(convs)}")
    assert same == len(convs), "batched greedy outputs differ from one-at-a-time"

    # Where the time goes: prefill only (one new token), both ways. Prefill is compute-bound
    # matrix-matrix work either way, so batching can only speed up the decode part.
    prefill = GenerationConfig(max_new_tokens=1, max_input_tokens=args.max_input_tokens)
    t0 = time.perf_counter()
    for c in convs:
        client._generate_batch([client.encode(c, prefill.max_input_tokens)], prefill)
    p_single = time.perf_counter() - t0
    t0 = time.perf_counter()
    client.generate(convs, prefill)
    p_batched = time.perf_counter() - t0
    d_single, d_batched = t_single - p_single, t_batched - p_batched
    ceiling = t_single / (p_single + d_single / (d_single / d_batched)) if d_batched > 0 else float("nan")
    print(f"prefill only : one-at-a-time {p_single:6.2f} s, batched {p_batched:6.2f} s "
          f"({p_single / t_single:.0%} of the one-at-a-time run)")
    print(f"decode       : one-at-a-time {d_single:6.2f} s, batched {d_batched:6.2f} s ({d_single / d_batched:.1f}x)")
    print(f"best possible with batched decode and unpadded prefill: {ceiling:.2f}x")


if __name__ == "__main__":
    main()
