"""Generation node: the model under test answers every test prompt once (batched, resumable).

Isolated failures stay error records (``generation.status: error``); systemic ones stop the
run with a non-zero exit: a backend that cannot start (a missing model package, a model that
does not load), and a run in which every record failed. An error rate above
``max_error_rate`` is a warning in the log and in ``generation_stats``.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from typing import Any

from tqdm.auto import tqdm

from phase1b_kedro.checkpoint import JSONLCheckpoint, stable_key
from phase1b_kedro.llm import ChatResult, GenerationConfig, LLMClient, make_client
from phase1b_kedro.params import fraction
from phase1b_kedro.records import content_hash
from phase1b_kedro.resources import peak_rss_mib

logger = logging.getLogger(__name__)


class GenerationError(RuntimeError):
    """The generation stage cannot produce outputs worth judging; the message says why."""


def _start_client(params: dict[str, Any], client: LLMClient | None, load: bool) -> LLMClient:
    """Build the client and, with ``load``, load it where the backend has a ``load`` step
    (local models): failing here fails the run."""
    try:
        client = client or make_client(params)
        if load and callable(getattr(client, "load", None)):
            client.load()
    except Exception as exc:
        raise GenerationError(f"the generation backend could not start ({params.get('backend', 'transformers')}, "
                              f"model {params.get('model')!r}): {type(exc).__name__}: {exc}") from exc
    return client


def failure_reason(error: str | None) -> str:
    """An error's reason without the numbers that vary per record (status codes, sizes, ids)."""
    first = (error or "unknown error").strip().splitlines()[0] if (error or "").strip() else "unknown error"
    return re.sub(r"\d+", "#", first)[:200]


def _check_systemic(outputs: list[dict]) -> None:
    """Stop the run when every record failed: judging would report nothing meaningful."""
    errors = [o["generation"].get("error") for o in outputs if o["generation"]["status"] != "ok"]
    if not outputs or len(errors) < len(outputs):
        return
    reasons = Counter(failure_reason(e) for e in errors).most_common(3)
    if len(reasons) == 1:
        raise GenerationError(f"all {len(outputs)} records failed for the same reason: {errors[0]}")
    listed = "; ".join(f"{n} x {r}" for r, n in reasons)
    raise GenerationError(f"all {len(outputs)} records failed: {listed}")


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

    Raises:
        GenerationError: When the test set is empty, the backend cannot start, or every
            record failed (the message gives the reason).
        ParameterError: For a parameter the stage cannot use (named in the message).
    """
    config = GenerationConfig.from_params(params)
    max_error_rate = fraction(params, "max_error_rate", "generation", 0.05)
    if not test_dataset:
        raise GenerationError("test_dataset is empty: nothing to generate (run `kedro run --pipeline sampling` first, "
                              "and see its test_dataset_stats)")
    # Each prompt's hash: a checkpoint entry is reused only for an unchanged conversation that
    # was answered; errors are tried again.
    prompt_key = {r["id"]: content_hash(r["messages"], "") for r in test_dataset}
    client = _start_client(params, client, load=False)
    identity = {k: v for k, v in client.describe().items() if k in ("model", "backend", "base_url")}
    checkpoint = JSONLCheckpoint(params.get("checkpoint_dir", "data/07_model_output/generation_checkpoints"),
                                 stable_key(identity, config.as_dict()))
    done = checkpoint.load()
    pending = [r for r in test_dataset if done.get(r["id"], {}).get("key") != prompt_key[r["id"]]
               or done[r["id"]]["generation"]["status"] != "ok"]
    if pending:
        client = _start_client(params, client, load=True)
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
    _check_systemic(outputs)
    errored = [o["generation"] for o in outputs if o["generation"]["status"] != "ok"]
    error_rate = len(errored) / len(outputs)
    warnings = []
    if error_rate > max_error_rate:
        reasons = Counter(failure_reason(g.get("error")) for g in errored).most_common(3)
        top = "; ".join(f"{n} x {r}" for r, n in reasons)
        warnings.append(f"{len(errored)} of {len(outputs)} records failed ({error_rate:.1%} > max_error_rate "
                        f"{max_error_rate:.0%}): {top}")
        logger.warning("generation: %s", warnings[-1])
    generated_now = [done[r["id"]]["generation"] for r in pending]
    tokens_out_now = sum(g["tokens_out"] for g in generated_now)
    stats = {
        "records_in": len(test_dataset),
        "records_out": len(outputs),
        "errored": len(errored),
        "error_rate": round(error_rate, 4),
        "errors_by_reason": dict(Counter(failure_reason(g.get("error")) for g in errored).most_common()),
        "max_error_rate": max_error_rate,
        "warnings": warnings,
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

