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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from phase1b_kedro.checkpoint import CheckpointStore, JSONLCheckpoint
from phase1b_kedro.configs import load_config
from phase1b_kedro.contract import generation_ok
from phase1b_kedro.keys import stable_key
from phase1b_kedro.llm import ChatResult, GenerationConfig, LLMClient, identity_of
from phase1b_kedro.params import ParameterError, fraction
from phase1b_kedro.records import content_hash
from phase1b_kedro.resources import peak_rss_mib

logger = logging.getLogger(__name__)


class GenerationError(RuntimeError):
    """The generation stage cannot produce outputs worth judging; the message says why."""


@dataclass(frozen=True)
class GenerationSettings:
    """The ``generation`` parameter group (the model itself is the ``generation_model`` dataset)."""

    #: Decoding: :class:`~phase1b_kedro.llm.base.GenerationConfig`'s keys.
    decoding: Mapping[str, Any] = field(default_factory=dict)
    #: Records answered between two checkpoint writes.
    checkpoint_every: int = 64
    #: Above this share of errored records, a warning in the log and in ``generation_stats``.
    max_error_rate: float = 0.05

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> GenerationSettings:
        """Build and check the group.

        Raises:
            ValueError / ParameterError: For an unknown key or a value the stage cannot use.
        """
        settings = load_config(cls, params, "generation")
        fraction({"max_error_rate": settings.max_error_rate}, "max_error_rate", "generation", 0.05)
        if int(settings.checkpoint_every) < 1:
            raise ParameterError(f"generation.checkpoint_every must be at least 1, got {settings.checkpoint_every!r}")
        return settings


def _start_client(client: LLMClient) -> LLMClient:
    """Load the client where the backend has a ``load`` step (local weights): failing here
    fails the run, naming the backend and model."""
    try:
        if callable(getattr(client, "load", None)):
            client.load()
    except Exception as exc:
        described = client.describe()
        raise GenerationError(f"the generation backend could not start ({described.get('backend')}, "
                              f"model {described.get('model')!r}): {type(exc).__name__}: {exc}") from exc
    return client


def failure_reason(error: str | None) -> str:
    """An error's reason without the numbers that vary per record (status codes, sizes, ids)."""
    first = (error or "unknown error").strip().splitlines()[0] if (error or "").strip() else "unknown error"
    return re.sub(r"\d+", "#", first)[:200]


def _check_systemic(outputs: list[dict]) -> None:
    """Stop the run when every record failed: judging would report nothing meaningful."""
    errors = [o["generation"].get("error") for o in outputs if not generation_ok(o)]
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


def generate_outputs(test_dataset: list[dict], generation_model: LLMClient, generation_checkpoint: CheckpointStore,
                     params: Mapping[str, Any]) -> tuple[list[dict], dict]:
    """Answer every test record once, checkpointing as it goes so a killed run resumes.

    Args:
        test_dataset: Records from the sampling stage.
        generation_model: The model under test (catalog dataset ``generation_model``).
        generation_checkpoint: Where finished answers are appended (``generation_checkpoint``).
        params: The ``generation`` parameter group (:class:`GenerationSettings`).

    Returns:
        ``model_outputs`` (every input record plus ``output`` and ``generation``, in input
        order) and ``generation_stats``.

    Raises:
        GenerationError: When the test set is empty, the backend cannot start, or every
            record failed (the message gives the reason).
        ParameterError: For a parameter the stage cannot use (named in the message).
    """
    settings = GenerationSettings.from_params(params)
    config = GenerationConfig.from_params(settings.decoding)
    if not test_dataset:
        raise GenerationError("test_dataset is empty: nothing to generate (run `kedro run --pipeline sampling` first, "
                              "and see its test_dataset_stats)")
    checkpoint = generation_checkpoint.for_key(stable_key(_identity(generation_model), config.as_dict()))
    done = checkpoint.load()
    pending = _pending(test_dataset, done)
    if pending:
        _start_client(generation_model)
    t0 = time.perf_counter()
    _answer(pending, generation_model, config, checkpoint, done, settings.checkpoint_every)
    wall = time.perf_counter() - t0
    outputs = [{**r, "output": done[r["id"]]["output"], "generation": done[r["id"]]["generation"]}
               for r in test_dataset]
    _check_systemic(outputs)
    return outputs, _stats(outputs, pending, done, wall, generation_model.describe(), config, settings, checkpoint)


def _identity(client: LLMClient) -> dict[str, Any]:
    """What identifies the answers' source in the checkpoint key: model, backend and what the
    backend says decides its answers (endpoint; device and dtype), so that two models, or one
    model in two dtypes, never share checkpoint entries."""
    return identity_of(client)


def _prompt_key(record: Mapping[str, Any]) -> str:
    """A checkpoint entry is reused only for an unchanged conversation."""
    return content_hash(record["messages"], "")


def _pending(test_dataset: list[dict], done: Mapping[str, dict]) -> list[dict]:
    """Records without a successful checkpointed answer to this very prompt, longest first
    (batches of similar length waste less padding); errors are tried again."""
    pending = [r for r in test_dataset if done.get(r["id"], {}).get("key") != _prompt_key(r)
               or not generation_ok(done[r["id"]])]
    resumed = len(test_dataset) - len(pending)
    if resumed:
        logger.info("resuming: %d of %d records already generated", resumed, len(test_dataset))
    return sorted(pending, key=lambda r: -sum(len(m["content"]) for m in r["messages"]))


def _answer(pending: list[dict], client: LLMClient, config: GenerationConfig, checkpoint: JSONLCheckpoint,
            done: dict[str, dict], chunk: int) -> None:
    """Generate ``pending`` in chunks of ``chunk`` records, appending each chunk to the
    checkpoint and to ``done`` as it finishes."""
    with tqdm(total=len(pending), desc="generation", unit="prompt", disable=not pending) as bar:
        for start in range(0, len(pending), chunk):
            part = pending[start:start + chunk]
            results = client.generate([r["messages"] for r in part], config, progress=bar)
            info = client.describe()
            entries = [{"id": r["id"], "key": _prompt_key(r), "output": res.text,
                        "generation": _generation_record(info, res)} for r, res in zip(part, results, strict=True)]
            checkpoint.append(entries)
            done.update({e["id"]: e for e in entries})
            logger.info("generation: %d/%d done", min(start + chunk, len(pending)), len(pending))


def _error_warnings(errored: list[dict], n: int, max_error_rate: float) -> list[str]:
    """A warning (also logged) when the share of errored records exceeds ``max_error_rate``."""
    if not n or len(errored) / n <= max_error_rate:
        return []
    reasons = Counter(failure_reason(g.get("error")) for g in errored).most_common(3)
    top = "; ".join(f"{k} x {r}" for r, k in reasons)
    warning = (f"{len(errored)} of {n} records failed ({len(errored) / n:.1%} > max_error_rate "
               f"{max_error_rate:.0%}): {top}")
    logger.warning("generation: %s", warning)
    return [warning]


def _stats(outputs: list[dict], pending: list[dict], done: Mapping[str, dict], wall: float,
           info: Mapping[str, Any], config: GenerationConfig, settings: GenerationSettings,
           checkpoint: JSONLCheckpoint) -> dict[str, Any]:
    """``generation_stats``: counts that reconcile, errors by reason, throughput, model, memory."""
    errored = [o["generation"] for o in outputs if not generation_ok(o)]
    tokens_out_now = sum(done[r["id"]]["generation"]["tokens_out"] for r in pending)
    return {
        "records_in": len(outputs),
        "records_out": len(outputs),
        "errored": len(errored),
        "error_rate": round(len(errored) / len(outputs), 4),
        "errors_by_reason": dict(Counter(failure_reason(g.get("error")) for g in errored).most_common()),
        "max_error_rate": settings.max_error_rate,
        "warnings": _error_warnings(errored, len(outputs), settings.max_error_rate),
        "truncated": sum(bool(o["generation"]["truncated"]) for o in outputs),
        "finish_reasons": dict(sorted(Counter(o["generation"]["finish_reason"] for o in outputs).items())),
        "resumed_from_checkpoint": len(outputs) - len(pending),
        "generated_this_run": len(pending),
        "wall_s": round(wall, 2),
        "examples_per_s": round(len(pending) / wall, 3) if pending and wall else None,
        "output_tokens_per_s": round(tokens_out_now / wall, 2) if pending and wall else None,
        "tokens_out_total": sum(o["generation"]["tokens_out"] for o in outputs),
        **{k: info.get(k) for k in ("model", "backend", "device", "dtype")},
        "peak_memory_mib": round(peak_rss_mib(), 1),
        "parameters": {**config.as_dict(), "checkpoint_every": settings.checkpoint_every},
        "checkpoint": str(checkpoint.path),
    }
