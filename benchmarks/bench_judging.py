"""Benchmark: LLM judging against a real local OpenAI-compatible server.

Starts llama-cpp-python's server on the bundled SmolLM2 GGUF (127.0.0.1) and judges N
free-text items from the bundled test set (half with the reference as the output, half with
another record's reference), through the same ``score_records`` the judging node calls:

1. ``llm_single`` vs ``llm_batch``: judge calls per item and wall time (concurrency 1).
2. ``llm_batch`` with concurrency 8 vs 1 (fresh caches).
3. The rerun after a threshold change: judge calls made (expected 0; all from the cache).
4. A run killed with SIGKILL part-way (a subprocess, killed once the cache holds verdicts),
   then rerun: items sent again (expected: only those without a cached verdict).

With ``--scripted``, sections 1-2 are repeated against the test suite's scripted judge
(``tests/fake_judge_server.py``, an honest grader with ``--latency`` seconds per call): what
batching and concurrency do when the judge answers well and the server runs calls in parallel,
which a 135M model on 2 CPU cores does not.

Usage: python benchmarks/bench_judging.py [--n 16] [--batch-size 8] [--scripted] [--scripted-n 400]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("TRANSFORMERS_OFFLINE", None)

import yaml  # noqa: E402

from phase1b_kedro.judges import verifiable  # noqa: E402
from phase1b_kedro.judges.cache import VerdictCache  # noqa: E402
from phase1b_kedro.judges.strategies import score_records  # noqa: E402
from phase1b_kedro.llm import LazyClient  # noqa: E402
from tests.llama_server import llama_cpp_server  # noqa: E402


def items(n: int) -> list[dict]:
    """``n`` records no verifiable check applies to; every other output is the reference."""
    path = ROOT / "data/05_model_input/test_dataset.jsonl"
    if not path.is_file():
        raise SystemExit("run `kedro run --pipelines sampling` first (needs data/05_model_input/test_dataset.jsonl)")
    pool = [json.loads(line) for line in path.open()]
    pool = [r for r in pool if verifiable.check({**r, "output": "x"}) is None and len(r["reference"]) < 600]
    out = []
    for i, r in enumerate(pool[:n]):
        other = pool[(i + 7) % len(pool)]["reference"]
        out.append({**r, "output": r["reference"] if i % 2 == 0 else other, "generation": {"status": "ok"}})
    return out


def base_params(url: str, cache: Path, strategy: str = "llm_batch", concurrency: int = 1, **protocol) -> dict:
    """A judge set-up: the ``judging`` group (conf/base + conf/local_server, the given protocol
    keys), the judge model's client options, and the verdict cache's path."""
    with (ROOT / "conf/base/parameters_judging.yml").open() as fh:
        params = yaml.safe_load(fh)["judging"]
    with (ROOT / "conf/local_server/parameters_judging.yml").open() as fh:
        params["protocol"].update(yaml.safe_load(fh)["judging"]["protocol"])
    params.update(strategy=strategy, fallback=strategy)
    params["protocol"].update(tokens_per_item=40, canaries=0, single_attempts=1, **protocol)
    return {"params": params, "options": {"base_url": url, "concurrency": concurrency, "max_wait_s": 1},
            "cache": str(cache)}


def judged(records: list[dict], setup: dict) -> dict:
    client = LazyClient("openai_compatible", "local", setup["options"])
    t0 = time.perf_counter()
    with VerdictCache(setup["cache"]) as cache:
        verdicts, stats = score_records(records, setup["params"], client, cache)
    wall = time.perf_counter() - t0
    llm = stats["llm"]
    return {"wall_s": round(wall, 1), "calls": llm["calls"], "items": len(records),
            "calls_per_item": round(llm["calls"] / len(records), 2), "items_sent": llm["items_sent"],
            "cache_hits": llm["cache_hits"], "valid": sum(v.status == "ok" for v in verdicts),
            "first_round_items": llm["rounds"][0]["items"] if llm["rounds"] else 0,
            "unjudged": sum(v.status != "ok" for v in verdicts)}


def row(label: str, r: dict) -> None:
    print(f"  {label:<34} calls {r['calls']:>4}  calls/item {r['calls_per_item']:>5}  items sent {r['items_sent']:>4}"
          f"  cache hits {r['cache_hits']:>4}  valid {r['valid']:>4}  unjudged {r['unjudged']:>3}  wall {r['wall_s']:>7} s")


def worker(params_path: str, records_path: str) -> None:
    """Subprocess body for the kill test."""
    judged(json.loads(Path(records_path).read_text()), json.loads(Path(params_path).read_text()))


def kill_and_resume(records: list[dict], params: dict, tmp: Path) -> None:
    (tmp / "p.json").write_text(json.dumps(params))
    (tmp / "r.json").write_text(json.dumps(records))
    proc = subprocess.Popen([sys.executable, __file__, "--worker", str(tmp / "p.json"), str(tmp / "r.json")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = Path(params["cache"])
    while VerdictCache.count(cache) == 0 and proc.poll() is None:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = VerdictCache.count(cache)
    print(f"  killed (SIGKILL) with {done} of {len(records)} verdicts in the cache")
    r = judged(records, params)
    row("rerun after the kill", r)
    verdict = "OK" if r["cache_hits"] == done and r["first_round_items"] == len(records) - done else "UNEXPECTED"
    print(f"  first round sent {r['first_round_items']} items (expected {len(records) - done}: none with a cached "
          f"verdict); {r['items_sent']} item sends in all, re-judging rounds included -> {verdict}")


def scripted(n: int, batch_size: int, latency: float, tmp: Path) -> None:
    from tests.fake_judge_server import FakeJudge, Script

    records = items(min(n, 10_000))
    while len(records) < n:  # repeat with distinct ids to reach n
        records += [{**r, "id": f"{r['id']}-{len(records) + k}", "prompt": f"{r['prompt']} ({len(records) + k})"}
                    for k, r in enumerate(records[: n - len(records)])]

    def slow(verdicts, _items, _n):
        time.sleep(latency)
        return json.dumps(verdicts)

    print(f"\nScripted judge ({latency}s per call, honest grades), {len(records)} items:")
    with FakeJudge(Script(reply=slow)) as judge:
        for label, extra in (("llm_single, concurrency 8", {"strategy": "llm_single", "concurrency": 8}),
                             (f"llm_batch {batch_size}, concurrency 1", {"strategy": "llm_batch", "concurrency": 1}),
                             (f"llm_batch {batch_size}, concurrency 8", {"strategy": "llm_batch", "concurrency": 8})):
            setup = base_params(judge.base_url, tmp / f"s-{label}.sqlite", items_per_call=batch_size, **extra)
            row(label, judged(records, setup))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--scripted", action="store_true")
    parser.add_argument("--scripted-n", type=int, default=400)
    parser.add_argument("--latency", type=float, default=0.5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_judging_"))
    records = items(args.n)
    print(f"{len(records)} free-text items from the bundled test set; judge: SmolLM2-135M (Q4_1) in "
          f"llama-cpp-python's server on 2 CPU cores")
    with llama_cpp_server(n_ctx=8192) as url:
        print("\n1. calls per item")
        single = judged(records, base_params(url, tmp / "single.sqlite", strategy="llm_single"))
        row("llm_single, concurrency 1", single)
        batch_params = base_params(url, tmp / "batch1.sqlite", items_per_call=args.batch_size)
        batch = judged(records, batch_params)
        row(f"llm_batch {args.batch_size}, concurrency 1", batch)
        print("\n2. concurrency")
        conc = judged(records, base_params(url, tmp / "batch8.sqlite", items_per_call=args.batch_size, concurrency=8))
        row(f"llm_batch {args.batch_size}, concurrency 8", conc)
        print(f"  wall ratio concurrency 1 / 8: {batch['wall_s'] / conc['wall_s']:.2f}x "
              "(llama-cpp-python's server runs one request at a time)")
        print("\n3. rerun after a threshold change (same judge, same cache)")
        again = judged(records, {**batch_params, "params": {**batch_params["params"], "failure_threshold": 5}})
        row("llm_batch rerun, threshold 5", again)
        ok = again["cache_hits"] == batch["valid"]
        print(f"  every valid verdict from the cache ({again['cache_hits']}); {again['items_sent']} item sends, "
              f"all for the {batch['unjudged']} items that had no verdict -> {'OK' if ok else 'UNEXPECTED'}. "
              "`kedro run --pipelines threshold` re-applies a threshold with no judge at all.")
        print("\n4. kill and resume")
        kill_and_resume(records, base_params(url, tmp / "kill.sqlite", items_per_call=4),
                        tmp)
    if args.scripted:
        scripted(args.scripted_n, 50, args.latency, tmp)


if __name__ == "__main__":
    main()
