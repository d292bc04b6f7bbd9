"""Benchmark: index + de-duplicate + stratified-sample a 500,000-record (~0.5 GB) JSONL.

Generates the file (records drawn from the bundled dataset, mixed formats, each made
unique, 2% exact duplicates, half with a `category` field, half left to the classifier),
then times in the same run:

- this project's sampling work (the nodes the sampling pipeline runs), and
- a naive baseline: ``json.loads`` per line into a list, ``pandas.DataFrame``, then
  ``groupby(category).sample`` (no format handling, no inference, no quarantine).

Prints wall seconds for each, the ratio, and peak memory (RSS) of each measured step.
Targets (issue 2): ours <= 15 s on 2 cores and >= 5x the baseline.

Usage: python benchmarks/bench_sampling.py [--records 500000] [--keep FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from phase1b_kedro.pipelines.sampling.nodes import (  # noqa: E402
    build_test_dataset,
    deduplicate_records,
    index_records,
    sample_records,
    summarise_sampling,
)
from phase1b_kedro.resources import peak_rss_mib  # noqa: E402


def generate(path: Path, n: int, seed: int = 0) -> None:
    """Write ``n`` records built from the bundled file (about 1 KB each)."""
    rng = random.Random(seed)
    base = [json.loads(line) for line in (ROOT / "data" / "01_raw" / "prompts.jsonl").open(encoding="utf-8")]
    cats = ["math", "code", "reasoning", "creative", "qa", "other"]
    last = ""
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            if i and rng.random() < 0.02:
                fh.write(last)  # exact duplicate of the previous line
                continue
            rec = dict(rng.choice(base))
            tag = f" [variant {i}]"
            if "input" in rec and "ideal" in rec:
                msgs = [dict(m) for m in rec["input"]] if isinstance(rec["input"], list) else rec["input"] + tag
                if isinstance(msgs, list):
                    msgs[-1]["content"] += tag
                rec["input"] = msgs
            elif "conversations" in rec:
                rec["conversations"] = [dict(t) for t in rec["conversations"]]
                rec["conversations"][0]["value"] += tag
            elif "instruction" in rec:
                rec["instruction"] += tag
            else:
                rec["prompt"] += tag
            rec.pop("task_id", None)
            rec.pop("id", None)
            if rng.random() < 0.5:
                rec["category"] = rng.choice(cats)
            else:
                rec.pop("category", None)
            last = json.dumps(rec, ensure_ascii=False) + "\n"
            fh.write(last)


def ours(data: bytes, params: dict) -> tuple[float, int]:
    t0 = time.perf_counter()
    index, quarantined, info = index_records(data, params)
    unique, dups = deduplicate_records(index)
    sample = sample_records(unique, params)
    records = build_test_dataset(data, sample, params)
    summarise_sampling(info, index, unique, sample, quarantined, dups, params)
    return time.perf_counter() - t0, len(records)


def naive(path: Path, params: dict) -> tuple[float, int]:
    t0 = time.perf_counter()
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    df = pd.DataFrame(rows)
    df["category"] = df["category"].fillna("other")
    frac = params["num_samples"] / len(df)
    sample = df.groupby("category", group_keys=False).sample(frac=frac, random_state=params["seed"])
    return time.perf_counter() - t0, len(sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--num-samples", type=int, default=20_000)
    parser.add_argument("--keep", type=Path, help="keep the generated file here")
    args = parser.parse_args()
    params = yaml.safe_load((ROOT / "conf/base/parameters_sampling.yml").read_text())["sampling"]
    params["num_samples"] = args.num_samples

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "big.jsonl"
        t0 = time.perf_counter()
        generate(path, args.records)
        size = path.stat().st_size
        print(f"generated {args.records:,} records, {size / 1e9:.2f} GB in {time.perf_counter() - t0:.1f}s")
        print(f"cores: {psutil.cpu_count()}  scan_workers: {params.get('scan_workers')}")

        gc.collect()
        rss0 = psutil.Process().memory_info().rss / 2**20
        t_read0 = time.perf_counter()
        data = path.read_bytes()  # what the catalog's RawBytesDataset.load does
        t_read = time.perf_counter() - t_read0
        t_ours, n_ours = ours(data, params)
        t_ours += t_read
        peak_ours = peak_rss_mib()
        del data
        gc.collect()

        t_naive, n_naive = naive(path, params)
        peak_after_naive = peak_rss_mib()

    print(f"ours : {t_ours:6.2f} s  ({args.records / t_ours:,.0f} records/s, incl. {t_read:.2f}s read) -> {n_ours:,} sampled")
    print(f"naive: {t_naive:6.2f} s  ({args.records / t_naive:,.0f} records/s) -> {n_naive:,} sampled")
    print(f"speed-up: {t_naive / t_ours:.1f}x   (targets: ours <= 15 s, >= 5x)")
    print(f"peak RSS: ours {peak_ours:,.0f} MiB (start {rss0:,.0f} MiB); "
          f"after naive {peak_after_naive:,.0f} MiB (process peak, includes ours)")


if __name__ == "__main__":
    main()
