"""Benchmark: the OpenAI-compatible client's own ceiling, for generation and for judging.

A scripted OpenAI-compatible server (asyncio, HTTP/1.1 keep-alive, its own process so it
does not share the client's interpreter) answers every request after a fixed ``--latency``:
a short text for a generation request, honest verdicts (the test suite's rule) for a judge
prompt. Through it, at concurrency 1, 8, 64 and 256:

- ``generation``: ``OpenAICompatibleClient.generate`` over single-turn prompts (requests/s);
- ``judging``: ``LLMJudge.judge`` (the ``llm_batch`` path: packing, canaries, the wire
  protocol, validation, the SQLite cache) with ``--batch-size`` items per call (calls/s).

Each figure twice, in the same run: ``pool`` is the client's default transport (one urllib3
keep-alive pool shared by its threads) and ``hub`` the baseline, the same client with
``transport="huggingface_hub"`` (``InferenceClient``, what it used before issue 16); ``ideal``
= concurrency / latency, what a client with no overhead would get. Client and server share the
machine's cores, so the figures are a floor for a client talking to a remote fleet. Target
(issue 16): >= 200 requests/s at concurrency 64 on 2 CPU cores.

Usage: python benchmarks/bench_throughput.py [--latency 0.05] [--requests 2000] [--batch-size 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("TRANSFORMERS_OFFLINE", None)

import orjson  # noqa: E402

CONCURRENCY = (1, 8, 64, 256)
_BLOCK = re.compile(r"<<ITEM (\w+)>>\n(.*?)\n<<END \1>>", re.DOTALL)


# ---------------------------------------------------------------- the scripted server
def _reply(body: bytes) -> bytes:
    """One chat-completion response: verdicts for a judge prompt, else a short answer."""
    from tests.fake_judge_server import honest_score

    request = orjson.loads(body)
    user = request["messages"][-1]["content"]
    if "<<ITEM " in user:
        items = [orjson.loads(m.group(2)) for m in _BLOCK.finditer(user)]
        verdicts = [{"id": it["id"], "score": honest_score(it), "rationale": "scripted"} for it in items]
        text = orjson.dumps(verdicts).decode()
    else:
        text = "A short scripted answer."
    return orjson.dumps({
        "id": "x", "object": "chat.completion", "created": 0, "model": request.get("model", "m"),
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": len(user) // 4, "completion_tokens": len(text) // 4,
                  "total_tokens": (len(user) + len(text)) // 4},
    })


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                await writer.drain()
                continue
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            body = await reader.readexactly(length)
            if latency:
                await asyncio.sleep(latency)
            payload = _reply(body)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(payload), payload))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def serve(port: int, latency: float) -> None:
    """Run the scripted server until killed."""
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: _handle(r, w, latency), "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    from tests.llama_server import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(latency)])
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/models", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("scripted server did not start")


# ---------------------------------------------------------------- the clients
def make_client(url: str, concurrency: int, transport: str):
    from phase1b_kedro.llm.openai_backend import OpenAICompatibleClient

    return OpenAICompatibleClient("m", url, concurrency=concurrency, transport=transport)


def generation_rate(url: str, concurrency: int, n: int, transport: str) -> float:
    """Requests/s of ``OpenAICompatibleClient.generate`` (the path generation and labeling use)."""
    from phase1b_kedro.llm import GenerationConfig

    client = make_client(url, concurrency, transport)
    config = GenerationConfig(max_new_tokens=64)
    convs = [[{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}] for i in range(n)]
    client.generate(convs[:concurrency], config)  # connections opened before the clock starts
    t0 = time.perf_counter()
    results = client.generate(convs, config)
    rate = n / (time.perf_counter() - t0)
    client.close()
    assert all(r.status == "ok" for r in results), {r.error for r in results}
    return rate


def judging_rate(url: str, concurrency: int, calls: int, batch_size: int, transport: str, tmp: Path) -> float:
    """Judge calls/s of ``LLMJudge.judge`` (``llm_batch``, 2 canaries per call, SQLite cache)."""
    from phase1b_kedro.judges.cache import VerdictCache
    from phase1b_kedro.judges.llm_judge import LLMJudge, LLMJudgeConfig, canary_pool
    from phase1b_kedro.judges.protocol import JudgeItem

    n = calls * batch_size
    items = [JudgeItem(prompt=f"Explain idea {i} in a paragraph. " * 4, reference=f"Idea {i} is about " + "words " * 60,
                       output=(f"Idea {i} is about " + "words " * 60) if i % 2 else "Something else " * 30)
             for i in range(n + concurrency * batch_size)]
    pool = canary_pool([{"prompt": it.prompt, "reference": it.reference, "category": str(i % 3)}
                        for i, it in enumerate(items[:40])], 8, 1)
    config = LLMJudgeConfig(batch_size=batch_size, canaries=2)
    client = make_client(url, concurrency, transport)
    with VerdictCache(tmp / f"cache-{concurrency}-{transport}.sqlite") as cache:
        judge = LLMJudge(client, config, cache)
        judge.judge(items[n:], "batch", pool, desc="warm-up")
        judge.counters.calls = 0
        t0 = time.perf_counter()
        verdicts = judge.judge(items[:n], "batch", pool, desc=f"judging c={concurrency}")
        rate = judge.counters.calls / (time.perf_counter() - t0)
    client.close()
    assert all(v.status == "ok" for v in verdicts), "the scripted judge answers every item"
    return rate


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), float(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the server waits per call")
    parser.add_argument("--requests", type=int, default=2000, help="generation requests per measurement")
    parser.add_argument("--calls", type=int, default=1000, help="judge calls per measurement")
    parser.add_argument("--batch-size", type=int, default=10, help="items per judge call")
    args = parser.parse_args()
    import logging

    from phase1b_kedro.judges import llm_judge

    logging.disable(logging.WARNING)
    bar = llm_judge.tqdm
    llm_judge.tqdm = lambda *a, **k: bar(*a, **{**k, "disable": True})  # progress bars would drown the table
    tmp = Path(tempfile.mkdtemp(prefix="bench_throughput_"))
    proc, url = start_server(args.latency)
    print(f"Scripted server: {args.latency * 1000:.0f} ms per call, own process; client and server share "
          f"{os.cpu_count()} CPU cores")
    print(f"{'':>11}   {'':>7}   {'generation (requests/s)':^25}   {'judging (calls/s)':^25}")
    head = f"{'pool':>7} {'hub':>7} {'ratio':>7}"
    print(f"{'concurrency':>11} | {'ideal':>7} | {head} | {head}")
    try:
        for c in CONCURRENCY:
            n = args.requests if c > 1 else min(args.requests, int(3 / args.latency) if args.latency else 200)
            calls = args.calls if c > 1 else min(args.calls, int(3 / args.latency) if args.latency else 100)
            ideal = c / args.latency if args.latency else float("inf")
            gen = {t: generation_rate(url, c, n, t) for t in ("pool", "huggingface_hub")}
            judge = {t: judging_rate(url, c, calls, args.batch_size, t, tmp) for t in ("pool", "huggingface_hub")}
            cells = [f"{d['pool']:>7.1f} {d['huggingface_hub']:>7.1f} {d['pool'] / d['huggingface_hub']:>6.2f}x"
                     for d in (gen, judge)]
            print(f"{c:>11} | {ideal:>7.0f} | {cells[0]} | {cells[1]}", flush=True)
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
