"""Benchmark: `kedro run --pipeline sampling` on 500,000 records (~0.5 GB) to 20,000, as a whole process.

Generates the file (records drawn from the bundled dataset, mixed formats, each made unique,
2% exact duplicates; half carry a `category` field, the other half are left to inference),
then runs, each as its own process, one after the other in the same run:

- this project: ``kedro run --pipeline sampling`` in a temporary copy of the project's
  configuration whose catalog points at the file (process start, Kedro, streaming index,
  categories, de-duplication, sample, writing the outputs: everything);
- a naive baseline: ``json.loads`` per line into a list, ``pandas.DataFrame``, then
  ``groupby(category).sample`` (no format handling, no inference, no quarantine, no output).

Prints wall seconds of each, the ratio, and peak memory: the largest resident set of any one
process of the run (``getrusage`` of the children) and the peak of the whole process tree's
resident memory (sampled every 50 ms; pages shared by forked workers are counted once per
process, so it overstates). Target (issue 13): ours <= 12 s on 2 cores, peak <= 2 GiB.

``--labels``: ``real`` (default) gives a labelled record its source dataset's category, as
real files do; ``random`` gives it a random one (no source then has a clear category: the
worst case for the inference, every unlabelled record goes through the rules).

``--ids`` gives every generated record an id of its own (most real datasets carry one).
The run's node timings are printed too (where the wall time went).

``--repeat N`` (default 3) runs each N times, alternated (ours, naive, ours, ...), and prints
the median, best and worst: on a shared machine one run's wall time varies by 20% or more.

Usage: python benchmarks/bench_sampling.py [--records 500000] [--labels real|random] [--ids]
           [--input FILE (use an existing file)] [--keep FILE] [--skip-naive] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from build_bundled_dataset import EXPECTED_CATEGORY  # noqa: E402

NAIVE = """
import json, sys
import pandas as pd
rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
df = pd.DataFrame(rows)
df["category"] = df["category"].fillna("other")
frac = int(sys.argv[2]) / len(df)
sample = df.groupby("category", group_keys=False).sample(frac=frac, random_state=42)
print(len(sample))
"""


def generate(path: Path, n: int, labels: str = "real", seed: int = 0, ids: bool = False) -> None:
    """Write ``n`` records built from the bundled file (about 0.8 KB each); with ``ids``, each
    carries an ``id`` of its own (as most datasets do), else the index makes content-hash ids."""
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
            if ids:
                rec["id"] = f"{rec.get('source', 'record')}-{i:09d}"
            if rng.random() < 0.5:
                rec["category"] = EXPECTED_CATEGORY[rec["source"]] if labels == "real" else rng.choice(cats)
            else:
                rec.pop("category", None)
            last = json.dumps(rec, ensure_ascii=False) + "\n"
            fh.write(last)


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float, float, str]:
    """Wall seconds, CPU seconds (all its processes), peak resident memory (MiB) of the whole
    process tree and of its largest process (both sampled every 50 ms), and the output."""
    cpu0 = _cpu_children()
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = largest = 0
    while proc.poll() is None:
        try:
            rss = [p.memory_info().rss for p in [proc, *proc.children(recursive=True)] if p.is_running()]
            peak, largest = max(peak, sum(rss)), max(largest, *rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    out = proc.stdout.read().decode(errors="replace")
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode}):\n{out[-3000:]}")
    return wall, _cpu_children() - cpu0, peak / 2**20, largest / 2**20, out


def project_copy(tmp: Path, data: Path, num_samples: int) -> Path:
    """The project's configuration in ``tmp``, reading ``data`` and writing under ``tmp``."""
    root = tmp / "project"
    root.mkdir()
    shutil.copy(ROOT / "pyproject.toml", root)
    shutil.copytree(ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "conf" / "local" / "catalog.yml").write_text(
        f"raw_prompts:\n  type: phase1b_kedro.datasets.RawJSONLinesDataset\n  filepath: {data}\n")
    (root / "conf" / "local" / "parameters_sampling.yml").write_text(f"sampling:\n  num_samples: {num_samples}\n")
    (root / "src").mkdir()
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--num-samples", type=int, default=20_000)
    parser.add_argument("--labels", choices=("real", "random"), default="real")
    parser.add_argument("--ids", action="store_true", help="every generated record carries an id of its own")
    parser.add_argument("--input", type=Path, help="an existing JSONL file instead of a generated one")
    parser.add_argument("--keep", type=Path, help="keep the generated file here")
    parser.add_argument("--skip-naive", action="store_true", help="only ours (e.g. for a multi-GB file)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each, alternated (median, best and worst are printed)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        path = args.input or args.keep or tmp / "big.jsonl"
        if not args.input:
            t0 = time.perf_counter()
            generate(path, args.records, args.labels, ids=args.ids)
            print(f"generated {args.records:,} records ({args.labels} labels) in {time.perf_counter() - t0:.1f}s")
        size = path.stat().st_size
        print(f"input: {path} {size / 1e9:.2f} GB; cores: {psutil.cpu_count()}")
        root = project_copy(tmp, path.resolve(), args.num_samples)
        # COLUMNS: Kedro's rich log lines unwrapped, so that the node timings can be read back.
        env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "250"}
        kedro = [sys.executable, "-m", "kedro", "run", "--pipeline", "sampling"]
        naive = [sys.executable, "-c", NAIVE, str(path), str(args.num_samples)]
        ours_runs: list[tuple[float, float]] = []
        naive_runs: list[tuple[float, float]] = []
        for rep in range(1, args.repeat + 1):
            # Alternated, so that a slow spell of a shared machine slows both.
            load = os.getloadavg()[0]
            t_ours, cpu_ours, tree_ours, max_ours, log = measure(kedro, root, env)
            ours_runs.append((t_ours, cpu_ours))
            if rep == 1:  # exact (the kernel's count), while no other child has run
                max_ours = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            stats = json.loads((root / "data/05_model_input/test_dataset_stats.json").read_text())
            print(f"run {rep} (load average before: {load:.2f})")
            print(f"ours : {t_ours:6.2f} s  ({cpu_ours:.1f} CPU s) whole `kedro run --pipeline sampling` -> "
                  f"{stats['sampled']:,} sampled of "
                  f"{stats['records_read']:,} read ({stats['accepted']:,} accepted); "
                  f"peak RSS {max_ours:,.0f} MiB (largest process), {tree_ours:,.0f} MiB (process tree)")
            if rep == 1:
                print(f"       categories by method: {stats['category_method']['population']}")
            nodes = {name: float(took) for name, took in re.findall(r"node (\w+) took ([\d.]+)s", log)}
            if nodes:
                parts = ", ".join(f"{name.removesuffix('_node')} {took:.2f}" for name, took in nodes.items())
                print(f"       where the wall time went (s): {parts}; the rest (process start, Kedro, saving) "
                      f"{t_ours - sum(nodes.values()):.2f}")
            if args.skip_naive:
                continue
            t_naive, cpu_naive, tree_naive, _, _ = measure(naive, tmp, env)
            naive_runs.append((t_naive, cpu_naive))
            print(f"naive: {t_naive:6.2f} s  ({cpu_naive:.1f} CPU s) whole process (json.loads + pandas "
                  f"groupby.sample); peak RSS {tree_naive:,.0f} MiB")
            print(f"ratio: ours / naive = {t_ours / t_naive:.2f} wall, {cpu_ours / cpu_naive:.2f} CPU")
        if args.repeat > 1:
            wall = statistics.median(t for t, _ in ours_runs)
            print(f"ours over {args.repeat} runs: median {wall:.2f} s, best {min(t for t, _ in ours_runs):.2f} s, "
                  f"worst {max(t for t, _ in ours_runs):.2f} s")
            if naive_runs:
                base = statistics.median(t for t, _ in naive_runs)
                print(f"naive over {args.repeat} runs: median {base:.2f} s, best {min(t for t, _ in naive_runs):.2f} s; "
                      f"ratio of the medians {wall / base:.2f}")
        print("targets: ours <= 12 s on 2 cores, peak <= 2048 MiB (CPU seconds are the steadier figure on a "
              "shared machine)")


if __name__ == "__main__":
    main()
