"""Any OpenAI-compatible chat endpoint (vLLM, TGI, llama.cpp server, Hugging Face Inference)
through ``huggingface_hub.InferenceClient``, with bounded concurrency and retries.

Retries (tenacity): 429, 5xx, timeouts and connection errors, exponential backoff with
jitter, honouring ``Retry-After`` when the server sends it. The token comes from the
environment variable named by ``api_key_env`` (default ``HF_TOKEN``) and is never logged.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from phase1b_kedro.llm.base import ChatResult, GenerationConfig, Messages, ResultCallback

logger = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def is_retryable(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts and dropped connections are worth another try."""
    status = _status(exc)
    if status is not None:
        return status in _RETRY_STATUS
    name = type(exc).__name__.lower()
    return any(k in name for k in ("timeout", "connect", "protocol", "readerror", "remoteprotocol")) or isinstance(
        exc, (ConnectionError, TimeoutError))


def retry_after_seconds(exc: BaseException) -> float | None:
    """The server's ``Retry-After`` (seconds form), if any."""
    response = getattr(exc, "response", None)
    value = getattr(response, "headers", {}).get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class _WaitRetryAfter:
    """Wait what the server asked for, else exponential backoff with jitter (capped)."""

    def __init__(self, max_wait: float) -> None:
        self._fallback = wait_random_exponential(multiplier=0.5, max=max_wait)
        self._max = max_wait

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after_seconds(exc) if exc else None
        return min(asked, self._max) if asked is not None else self._fallback(state)


class OpenAICompatibleClient:
    """Chat completions against a remote or local OpenAI-compatible server."""

    backend = "openai_compatible"

    def __init__(self, model: str, base_url: str | None = None, concurrency: int = 4, max_retries: int = 4,
                 timeout_s: float = 120.0, api_key_env: str = "HF_TOKEN", max_wait_s: float = 30.0) -> None:
        """Args:
        model: Model id (sent as ``model``; for Hugging Face Inference, the hub id).
        base_url: The server's ``/v1`` URL; ``None`` means Hugging Face Inference for ``model``.
        concurrency: Requests in flight at most.
        max_retries: Extra attempts per request after the first.
        timeout_s: Per-request timeout.
        api_key_env: Environment variable holding the token (read, never logged).
        max_wait_s: Cap on one wait between attempts.
        """
        from huggingface_hub import InferenceClient, constants

        if constants.HF_HUB_OFFLINE:
            raise RuntimeError(
                "HF_HUB_OFFLINE=1 (or TRANSFORMERS_OFFLINE=1) makes huggingface_hub refuse every HTTP request, including to "
                f"base_url={base_url!r}: unset both for runs that call an inference server")
        self.name, self.base_url = model, base_url
        self.concurrency, self.max_retries = max(1, int(concurrency)), int(max_retries)
        token = os.environ.get(api_key_env) or None
        if base_url:
            self._client = InferenceClient(base_url=base_url, api_key=token or "-", timeout=timeout_s)
        else:
            self._client = InferenceClient(model=model, token=token, timeout=timeout_s)
        self._wait = _WaitRetryAfter(max_wait_s)
        self.requests_sent = 0
        self.retries = 0
        self.device = "remote"

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> OpenAICompatibleClient:
        """Build from a parameter group."""
        return cls(params["model"], params.get("base_url"), params.get("concurrency", 4),
                   params.get("max_retries", 4), params.get("timeout_s", 120.0),
                   params.get("api_key_env", "HF_TOKEN"), params.get("max_wait_s", 30.0))

    def describe(self) -> dict[str, Any]:
        """Model, backend and endpoint (never the token)."""
        return {"model": self.name, "backend": self.backend, "base_url": self.base_url, "device": "remote"}

    def chat(self, messages: Messages, config: GenerationConfig) -> ChatResult:
        """One request with retries; failures come back as an error result."""
        t0 = time.perf_counter()
        kwargs: dict[str, Any] = {
            "messages": list(messages),
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "seed": config.seed,
        }
        if self.base_url:
            kwargs["model"] = self.name
        if config.stop:
            kwargs["stop"] = list(config.stop)
        if config.response_format is not None:
            kwargs["response_format"] = dict(config.response_format)
        try:
            for attempt in Retrying(stop=stop_after_attempt(self.max_retries + 1), wait=self._wait,
                                    retry=retry_if_exception(is_retryable), reraise=True):
                with attempt:
                    self.requests_sent += 1
                    if attempt.retry_state.attempt_number > 1:
                        self.retries += 1
                    out = self._client.chat_completion(**kwargs)
        except Exception as exc:
            status = _status(exc)
            reason = f"HTTP {status}" if status else type(exc).__name__
            return ChatResult.failed(f"{reason}: {str(exc)[:300]}", time.perf_counter() - t0)
        choice = out.choices[0]
        usage = getattr(out, "usage", None)
        finish = choice.finish_reason or "stop"
        return ChatResult(
            text=(choice.message.content or "").strip(),
            tokens_in=int(getattr(usage, "prompt_tokens", 0) or 0),
            tokens_out=int(getattr(usage, "completion_tokens", 0) or 0),
            finish_reason="length" if finish == "length" else "stop",
            latency_s=round(time.perf_counter() - t0, 4),
        )

    def generate(self, conversations: Sequence[Messages], config: GenerationConfig,
                 progress: Any | None = None, on_result: ResultCallback | None = None) -> list[ChatResult]:
        """Answer every conversation, ``concurrency`` requests at a time, in input order."""
        def one(index: int, messages: Messages) -> ChatResult:
            if not any(m.get("content", "").strip() for m in messages):
                res = ChatResult.failed("empty prompt")
            else:
                res = self.chat(messages, config)
            if on_result is not None:
                on_result(index, res)
            if progress is not None:
                progress.update(1)
            return res

        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(one, range(len(conversations)), conversations))
