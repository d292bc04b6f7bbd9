"""Generation node: the model under test answers every test prompt once (batched, resumable)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from tqdm.auto import tqdm

from phase1b_kedro.checkpoint import JSONLCheckpoint, stable_key
from phase1b_kedro.llm import ChatResult, GenerationConfig, LLMClient, make_client
from phase1b_kedro.records import content_hash
from phase1b_kedro.resources import peak_rss_mib

logger = logging.getLogger(__name__)


def _generation_record(client_info: dict[str, Any], res: ChatResult) -> dict[str, Any]:
    return {
        "model": client_info["model"],
        "backend": client_info["backend"],
        "tokens_in": res.tokens_in,
        "tokens_out": res.tokens_out,
        "finish_reason": res.finish_reason,
        "latency_s": res.latency_s,
        "status": res.status,
        "error": res.error,
        "truncated": res.truncated_input,
    }


def generate_outputs(test_dataset: list[dict], params: dict[str, Any],
                     client: LLMClient | None = None) -> tuple[list[dict], dict]:
    """Answer every test record once, checkpointing each batch so a killed run resumes.

    Args:
        test_dataset: Records from the sampling stage.
        params: The ``generation`` parameter group.
        client: An already-built client (tests); by default built from ``params``.

    Returns:
        ``model_outputs`` (every input record plus ``output`` and ``generation``, in input
        order) and ``generation_stats``.
    """
    client = client or make_client(params)
    config = GenerationConfig.from_params(params)
    identity = {k: v for k, v in client.describe().items() if k in ("model", "backend", "base_url")}
    checkpoint = JSONLCheckpoint(params.get("checkpoint_dir", "data/07_model_output/generation_checkpoints"),
                                 stable_key(identity, config.as_dict()))
    done = checkpoint.load()

    # Each prompt's hash: a checkpoint entry is reused only for an unchanged conversation.
    prompt_key = {r["id"]: content_hash(r["messages"], "") for r in test_dataset}
    pending = [r for r in test_dataset if done.get(r["id"], {}).get("key") != prompt_key[r["id"]]]
    resumed = len(test_dataset) - len(pending)
    if resumed:
        logger.info("resuming: %d of %d records already generated (%s)", resumed, len(test_dataset), checkpoint.path)
    # Length-sorted chunks: batches of similar length waste less padding.
    pending.sort(key=lambda r: -sum(len(m["content"]) for m in r["messages"]))
    chunk = max(1, int(params.get("batch_size", 16))) * max(1, int(params.get("checkpoint_every_batches", 1)))
    t0 = time.perf_counter()
    info: dict[str, Any] = identity
    with tqdm(total=len(pending), desc="generation", unit="prompt", disable=not pending) as bar:
        for start in range(0, len(pending), chunk):
            part = pending[start:start + chunk]
            results = client.generate([r["messages"] for r in part], config, progress=bar)
            info = client.describe()
            entries = [{"id": r["id"], "key": prompt_key[r["id"]], "output": res.text,
                        "generation": _generation_record(info, res)} for r, res in zip(part, results, strict=True)]
            checkpoint.append(entries)
            done.update({e["id"]: e for e in entries})
            logger.info("generation: %d/%d done", min(start + chunk, len(pending)), len(pending))
    wall = time.perf_counter() - t0

    outputs = [{**r, "output": done[r["id"]]["output"], "generation": done[r["id"]]["generation"]}
               for r in test_dataset]
    generated_now = [done[r["id"]]["generation"] for r in pending]
    tokens_out_now = sum(g["tokens_out"] for g in generated_now)
    stats = {
        "records_in": len(test_dataset),
        "records_out": len(outputs),
        "errored": sum(o["generation"]["status"] != "ok" for o in outputs),
        "truncated": sum(bool(o["generation"]["truncated"]) for o in outputs),
        "finish_reasons": dict(sorted(Counter(o["generation"]["finish_reason"] for o in outputs).items())),
        "resumed_from_checkpoint": resumed,
        "generated_this_run": len(pending),
        "wall_s": round(wall, 2),
        "examples_per_s": round(len(pending) / wall, 3) if pending and wall else None,
        "output_tokens_per_s": round(tokens_out_now / wall, 2) if pending and wall else None,
        "tokens_out_total": sum(o["generation"]["tokens_out"] for o in outputs),
        "model": info.get("model"),
        "backend": info.get("backend"),
        "device": info.get("device"),
        "dtype": info.get("dtype"),
        "peak_memory_mib": round(peak_rss_mib(), 1),
        "parameters": {**config.as_dict(), "batch_size": params.get("batch_size")},
        "checkpoint": str(checkpoint.path),
    }
    return outputs, stats

