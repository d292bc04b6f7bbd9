"""Benchmark: the OpenAI-compatible client's own ceiling, for generation and for judging.

A scripted OpenAI-compatible server (asyncio, HTTP/1.1 keep-alive, its own process so it
does not share the client's interpreter) answers every request after a fixed ``--latency``:
a short text for a generation request, honest verdicts (the test suite's rule) for a judge
prompt. Through it, at concurrency 1, 8, 64 and 256:

- ``generation``: ``OpenAICompatibleClient.generate`` over single-turn prompts (requests/s);
- ``judging``: ``LLMJudge.judge`` (the ``llm_batch`` path: packing, canaries, the wire
  protocol, validation, the SQLite cache) with ``--batch-size`` items per call (calls/s).

Next to each figure, measured in the same run: ``ideal`` = concurrency / latency (what the
server could give a client with no overhead), and ``baseline`` = the same request sent through
``huggingface_hub.InferenceClient`` on a thread pool (the transport the client used before
issue 16; for generation only, where the protocol does not matter). Target (issue 16):
>= 200 requests/s at concurrency 64 on 2 CPU cores.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("TRANSFORMERS_OFFLINE", None)
os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would drown the table

import orjson  # noqa: E402

CONCURRENCY = (1, 8, 64, 256)
_BLOCK = re.compile(rb"<<ITEM (\w+)>>\\n(.*?)\\n<<END \1>>", re.DOTALL)


# ---------------------------------------------------------------- the scripted server
def _reply(body: bytes) -> bytes:
    """One chat-completion response: verdicts for a judge prompt, else a short answer."""
    from tests.fake_judge_server import honest_score

    request = orjson.loads(body)
    user = request["messages"][-1]["content"]
    if "<<ITEM " in user:
        items = [orjson.loads(m.group(2)) for m in re.finditer(r"<<ITEM (\w+)>>\n(.*?)\n<<END \1>>", user, re.DOTALL)]
        text = orjson.dumps([{"id": it["id"], "score": honest_score(it), "rationale": "scripted"} for it in items]).decode()
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
def generation_rate(url: str, concurrency: int, n: int) -> float:
    """Requests/s of ``OpenAICompatibleClient.generate`` (the path generation and judging use)."""
    from phase1b_kedro.llm import GenerationConfig
    from phase1b_kedro.llm.openai_backend import OpenAICompatibleClient

    client = OpenAICompatibleClient("m", url, concurrency=concurrency)
    config = GenerationConfig(max_new_tokens=64)
    convs = [[{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}] for i in range(n)]
    client.generate(convs[:concurrency], config)  # connections opened before the clock starts
    t0 = time.perf_counter()
    results = client.generate(convs, config)
    rate = n / (time.perf_counter() - t0)
    client.close()
    assert all(r.status == "ok" for r in results), {r.error for r in results}
    return rate


def baseline_rate(url: str, concurrency: int, n: int) -> float:
    """Requests/s of ``huggingface_hub.InferenceClient.chat_completion`` on a thread pool."""
    from huggingface_hub import InferenceClient

    client = InferenceClient(base_url=url, api_key="-", timeout=60)

    def one(i: int) -> str:
        out = client.chat_completion(messages=[{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}],
                                     model="m", max_tokens=64, temperature=0.0)
        return out.choices[0].message.content

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency)))
        t0 = time.perf_counter()
        answers = list(pool.map(one, range(n)))
        rate = n / (time.perf_counter() - t0)
    assert all(answers)
    return rate


def judging_rate(url: str, concurrency: int, calls: int, batch_size: int, tmp: Path) -> tuple[float, dict]:
    """Judge calls/s of ``LLMJudge.judge`` (``llm_batch``, 2 canaries per call, SQLite cache)."""
    from phase1b_kedro.judging.cache import VerdictCache
    from phase1b_kedro.judging.llm_judge import LLMJudge, LLMJudgeConfig, canary_pool
    from phase1b_kedro.judging.protocol import JudgeItem
    from phase1b_kedro.llm.openai_backend import OpenAICompatibleClient

    n = calls * batch_size
    items = [JudgeItem(prompt=f"Explain idea {i} in a paragraph. " * 4, reference=f"Idea {i} is about " + "words " * 60,
                       output=(f"Idea {i} is about " + "words " * 60) if i % 2 else "Something else " * 30)
             for i in range(n + concurrency * batch_size)]
    pool = canary_pool([{"prompt": it.prompt, "reference": it.reference, "category": str(i % 3)}
                        for i, it in enumerate(items[:40])], 8, 1)
    config = LLMJudgeConfig(batch_size=batch_size, canaries=2)
    client = OpenAICompatibleClient("m", url, concurrency=concurrency)
    with VerdictCache(tmp / f"cache-{concurrency}.sqlite") as cache:
        judge = LLMJudge(client, config, cache)
        judge.judge(items[n:], "batch", pool, desc="warm-up")
        judge.counters.calls = 0
        t0 = time.perf_counter()
        verdicts = judge.judge(items[:n], "batch", pool, desc=f"judging c={concurrency}")
        rate = judge.counters.calls / (time.perf_counter() - t0)
    client.close()
    ok = sum(v.status == "ok" for v in verdicts)
    return rate, {"items": n, "valid": ok}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), float(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the server waits per call")
    parser.add_argument("--requests", type=int, default=2000, help="generation requests per measurement")
    parser.add_argument("--calls", type=int, default=1000, help="judge calls per measurement")
    parser.add_argument("--batch-size", type=int, default=10, help="items per judge call")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    import logging

    logging.disable(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench_throughput_"))
    proc, url = start_server(args.latency)
    print(f"Scripted server: {args.latency * 1000:.0f} ms per call, own process; client and server share "
          f"{os.cpu_count()} CPU cores")
    print(f"{'concurrency':>11} | {'ideal':>7} | {'generation':>10} {'baseline':>9} | {'judging':>8} "
          f"(calls/s, {args.batch_size} items + 2 canaries per call)")
    try:
        for c in CONCURRENCY:
            n = max(args.requests if c > 1 else 0, min(args.requests, int(5 / args.latency)) if args.latency else 200)
            calls = max(args.calls if c > 1 else 0, min(args.calls, int(3 / args.latency)) if args.latency else 100)
            ideal = c / args.latency if args.latency else float("inf")
            gen = generation_rate(url, c, n)
            base = baseline_rate(url, c, n) if not args.no_baseline else float("nan")
            judge, info = judging_rate(url, c, calls, args.batch_size, tmp)
            print(f"{c:>11} | {ideal:>7.0f} | {gen:>10.1f} {base:>9.1f} | {judge:>8.1f}  "
                  f"({info['valid']}/{info['items']} items valid)")
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
