"""Benchmark: embedding + clustering + labeling of 5,000 failure texts on this machine's CPUs.

Failures are built from the bundled prompts (each used about twice, with different judge
rationales, so the texts differ), then go through the pipeline's own node functions:
``embed_failures`` → ``cluster_failures_node`` (PCA to 32 dimensions, HDBSCAN, 5 stability
re-clusterings, 2-D PCA map) → ``label_patterns`` (c-TF-IDF, offline labels) →
``plan_data_generation`` → ``render_plan_markdown``. Target (issue 5): <= 90 s in all.

For comparison in the same run, clustering is also timed without the PCA reduction
(HDBSCAN on the raw 384 dimensions).

Usage: python benchmarks/bench_clustering.py [--n 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import yaml  # noqa: E402

from phase1b_kedro.cache import ResponseCache  # noqa: E402
from phase1b_kedro.llm import LazyClient  # noqa: E402
from phase1b_kedro.pipelines.clustering.nodes import cluster_failures_node, embed_failures  # noqa: E402
from phase1b_kedro.pipelines.labeling.nodes import (  # noqa: E402
    label_patterns,
    plan_data_generation,
    render_plan_markdown,
)
from phase1b_kedro.records import FieldConfig, Normalised, normalise  # noqa: E402
from phase1b_kedro.resources import peak_rss_mib  # noqa: E402

RATIONALES = ["The answer contradicts the reference.", "Wrong final number; the arithmetic is off.",
              "The output ignores the requested format.", "Partially correct but misses key facts.",
              "Off-topic answer that repeats the question."]


def failures(n: int) -> list[dict]:
    pool = []
    for line in (ROOT / "data/01_raw/prompts.jsonl").open(encoding="utf-8"):
        rec = normalise(json.loads(line), FieldConfig())
        if isinstance(rec, Normalised):
            pool.append(rec)
    out = []
    for i in range(n):
        rec = pool[i % len(pool)]
        out.append({"id": f"f{i}", "category": rec.source_category or "other", "prompt": rec.prompt,
                    "reference": rec.reference, "output": "a wrong answer", "score": float(i % 7),
                    "judge": {"source": "llm", "rationale": RATIONALES[(i // len(pool) + i) % len(RATIONALES)]}})
    return out


def params(name: str) -> dict:
    with (ROOT / f"conf/base/parameters_{name}.yml").open() as fh:
        return yaml.safe_load(fh)[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    records = failures(args.n)
    cp, lp = params("clustering"), params("labeling")
    print(f"{len(records)} failure texts, {os.cpu_count()} CPUs")

    t0 = time.perf_counter()
    emb = embed_failures(records, cp)
    t_embed = time.perf_counter() - t0
    t0 = time.perf_counter()
    clusters = cluster_failures_node(records, emb, cp)
    t_cluster = time.perf_counter() - t0
    t0 = time.perf_counter()
    patterns = label_patterns(records, clusters, LazyClient("transformers", "unused"), ResponseCache(None), lp)
    plan, _ = plan_data_generation(patterns, records, lp)   # (plan, held-out evaluation set)
    render_plan_markdown(plan)
    t_label = time.perf_counter() - t0
    total = t_embed + t_cluster + t_label

    print(f"  embedding (all-MiniLM-L6-v2, CPU)   {t_embed:7.1f} s   ({len(records) / t_embed:.0f} texts/s)")
    print(f"  clustering (PCA 32 + HDBSCAN, {clusters['stability']['all']['runs']} stability runs, 2-D map)"
          f" {t_cluster:7.1f} s   -> {clusters['n_clusters']} clusters, {clusters['n_unclustered']} unclustered,"
          f" stability ARI {clusters['stability']['all']['ari_mean']}")
    print(f"  labeling + plan (c-TF-IDF, offline)  {t_label:7.1f} s   -> {plan['allocated']} examples planned")
    print(f"  total                                {total:7.1f} s   target <= 90 s: {'OK' if total <= 90 else 'MISSED'}")
    t0 = time.perf_counter()
    raw = cluster_failures_node(records, emb, {**cp, "reducer": {"class": "phase1b_kedro.clustering.NoReduction"}})
    t_raw = time.perf_counter() - t0
    print(f"  baseline: clustering without PCA (384 dims) {t_raw:7.1f} s -> {raw['n_clusters']} clusters, "
          f"{raw['n_unclustered']} unclustered ({t_raw / t_cluster:.1f}x the reduced run)")
    print(f"  peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
