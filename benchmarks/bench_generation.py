"""Benchmark: one-at-a-time ``model.generate`` vs this pipeline's batched path (greedy).

The same prompts (the first N usable ones of the bundled raw file: mixed categories, 44-512
prompt tokens) go through (a) one ``model.generate`` call per prompt and (b)
``TransformersClient.generate``, the path ``kedro run --pipeline generation`` takes
(length-sorted batches; tight prefill, static KV cache, finished rows dropped: see
``phase1b_kedro.llm.static_batch``). Decoding parameters and batch size default to
``conf/base/parameters_generation.yml``. Outputs are asserted identical; prints examples/s,
output tokens/s, the ratio, and where the time goes (prefill vs decode).
Target (issue 3): >= 5x on 2 CPU cores with the default model.

Usage: python benchmarks/bench_generation.py [--n 64] [--batch-size B] [--max-new-tokens T] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from phase1b_kedro.llm import GenerationConfig, make_client  # noqa: E402
from phase1b_kedro.llm.static_batch import cut_at_eos  # noqa: E402
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


def one_at_a_time(client, convs: list, config: GenerationConfig) -> tuple[list[list[int]], float]:
    """Baseline: one plain ``model.generate`` call per prompt; returns new tokens (EOS cut) and seconds."""
    model, tok = client.model, client.tokenizer
    outs, t0 = [], time.perf_counter()
    for conv in convs:
        ids, _ = client.encode(conv, config.max_input_tokens)
        with torch.inference_mode():
            row = model.generate(input_ids=torch.tensor([ids], device=client.device), max_new_tokens=config.max_new_tokens,
                                 do_sample=False, temperature=None, top_p=None, top_k=None,
                                 pad_token_id=tok.pad_token_id)[0, len(ids):].tolist()
        outs.append(cut_at_eos(row, client.eos_ids)[0])
    return outs, time.perf_counter() - t0


def main() -> None:
    defaults = yaml.safe_load((ROOT / "conf/base/parameters_generation.yml").read_text())["generation"]["decoding"]
    model_options = yaml.safe_load((ROOT / "conf/base/catalog_02_models.yml").read_text())["generation_model"]["options"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=model_options["batch_size"])
    parser.add_argument("--max-new-tokens", type=int, default=defaults["max_new_tokens"])
    parser.add_argument("--max-input-tokens", type=int, default=512)
    parser.add_argument("--max-padding", type=float, default=model_options.get("max_padding", 1.0))
    parser.add_argument("--device", default=model_options.get("device", "auto"))
    parser.add_argument("--dtype", default=model_options.get("dtype", "auto"))
    parser.add_argument("--model", default=BUNDLED_SMOLLM2)
    parser.add_argument("--skip-breakdown", action="store_true", help="skip the prefill-only runs")
    args = parser.parse_args()

    client = make_client("transformers", args.model, {"batch_size": args.batch_size, "device": args.device,
                                                      "dtype": args.dtype, "model_dir": str(ROOT / "data/06_models"),
                                                      "max_padding": args.max_padding})
    client.load()
    config = GenerationConfig(max_new_tokens=args.max_new_tokens, max_input_tokens=args.max_input_tokens)
    convs = prompts(args.n)
    lengths = sorted(len(client.encode(c, config.max_input_tokens)[0]) for c in convs)
    print(f"model {args.model} on {client.device} ({client.dtype}), {torch.get_num_threads()} threads; {len(convs)} prompts "
          f"({lengths[0]}-{lengths[-1]} tokens, mean {sum(lengths) / len(lengths):.0f}); "
          f"max_new_tokens={args.max_new_tokens}, batch_size={args.batch_size}, max_padding={args.max_padding}")

    single, t_single = one_at_a_time(client, convs, config)
    t0 = time.perf_counter()
    batched = client.generate(convs, config)
    t_batched = time.perf_counter() - t0

    same = sum(client.tokenizer.decode(a, skip_special_tokens=True).strip() == b.text
               for a, b in zip(single, batched, strict=True))
    tok_s = sum(map(len, single))
    tok_b = sum(r.tokens_out for r in batched)
    cut = sum(r.finish_reason == "length" for r in batched)
    print(f"one-at-a-time: {t_single:7.2f} s  {len(convs) / t_single:6.2f} examples/s  {tok_s / t_single:7.1f} tokens/s")
    print(f"batched      : {t_batched:7.2f} s  {len(convs) / t_batched:6.2f} examples/s  {tok_b / t_batched:7.1f} tokens/s")
    print(f"speed-up: {t_single / t_batched:.2f}x  (target >= 5x on 2 CPU cores); identical outputs: {same}/{len(convs)}; "
          f"{tok_b} output tokens, {cut} answers stopped at max_new_tokens")
    assert same == len(convs), "batched greedy outputs differ from one-at-a-time"
    if args.skip_breakdown:
        return

    # Where the time goes: prefill only (one new token), both ways.
    prefill = GenerationConfig(max_new_tokens=1, max_input_tokens=args.max_input_tokens)
    _, p_single = one_at_a_time(client, convs, prefill)
    t0 = time.perf_counter()
    client.generate(convs, prefill)
    p_batched = time.perf_counter() - t0
    d_single, d_batched = t_single - p_single, t_batched - p_batched
    print(f"prefill only : one-at-a-time {p_single:6.2f} s, batched {p_batched:6.2f} s "
          f"({p_single / t_single:.0%} of the one-at-a-time run)")
    print(f"decode       : one-at-a-time {d_single:6.2f} s, batched {d_batched:6.2f} s "
          f"({d_single / max(d_batched, 1e-9):.1f}x)")


if __name__ == "__main__":
    main()
