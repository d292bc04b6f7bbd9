"""Any OpenAI-compatible chat endpoint (vLLM, TGI, llama.cpp server, Hugging Face Inference),
with bounded concurrency and retries.

Transport: a server named by ``base_url`` gets plain ``POST {base_url}/chat/completions``
requests through one urllib3 connection pool shared by every worker thread (keep-alive, at
most ``concurrency`` connections). Profiled against a local scripted server (issue 16,
``benchmarks/bench_throughput.py``), ``huggingface_hub.InferenceClient`` spent ~4 ms of CPU
per request in its httpx stack, event hooks and response models, which capped a 2-core client
near 160 judge calls/s; the pool costs a fraction of that. Hugging Face Inference
(``base_url: null``) still goes through ``InferenceClient``, which routes a model id to its
provider.

Retries (tenacity): 429, 5xx, timeouts, connection errors and empty bodies, exponential
backoff with jitter, honouring ``Retry-After`` when the server sends it. The token comes from
the catalog entry's ``credentials`` (Kedro's credentials mechanism) and is never logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import urllib3
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from phase1b_kedro.llm.base import ChatResult, GenerationConfig, Messages, ResultCallback
from phase1b_kedro.llm.registry import register_backend

logger = logging.getLogger(__name__)

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class EndpointError(Exception):
    """An HTTP error status, or a 200 without a usable body, from a ``base_url`` server."""

    def __init__(self, message: str, status_code: int | None = None, headers: Mapping[str, str] | None = None,
                 retryable: bool = False) -> None:
        super().__init__(message)
        self.status_code, self.headers, self.retryable = status_code, dict(headers or {}), retryable


def _status(exc: BaseException) -> int | None:
    if isinstance(exc, EndpointError):
        return exc.status_code
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def is_retryable(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts and dropped connections are worth another try."""
    if isinstance(exc, EndpointError) and exc.retryable:
        return True
    status = _status(exc)
    if status is not None:
        return status in _RETRY_STATUS
    name = type(exc).__name__.lower()
    return any(k in name for k in ("timeout", "connect", "protocol", "readerror", "remoteprotocol")) or isinstance(
        exc, (ConnectionError, TimeoutError))


def retry_after_seconds(exc: BaseException) -> float | None:
    """The server's ``Retry-After`` (seconds form), if any."""
    if isinstance(exc, EndpointError):
        headers = {k.lower(): v for k, v in exc.headers.items()}
    else:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class _PooledTransport:
    """``POST {base_url}/chat/completions`` over one thread-safe urllib3 pool (keep-alive)."""

    def __init__(self, base_url: str, token: str | None, timeout_s: float, pool_size: int) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._headers = {"content-type": "application/json", "accept": "application/json",
                         "authorization": f"Bearer {token or '-'}"}
        self._pool = urllib3.PoolManager(num_pools=4, maxsize=pool_size, block=True, retries=False,
                                         timeout=urllib3.Timeout(connect=min(10.0, timeout_s), read=timeout_s))

    def complete(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The decoded response; raises :class:`EndpointError` or urllib3's transport errors."""
        response = self._pool.request("POST", self.url, body=orjson.dumps(payload), headers=self._headers)
        if response.status >= 400:
            detail = response.data[:300].decode("utf-8", "replace")
            raise EndpointError(f"{response.status} {response.reason}: {detail}", response.status, response.headers)
        if not response.data.strip():
            raise EndpointError("empty response body", retryable=True)
        try:
            return orjson.loads(response.data)
        except orjson.JSONDecodeError as exc:
            raise EndpointError(f"response is not JSON: {response.data[:120]!r}", retryable=True) from exc

    def close(self) -> None:
        self._pool.clear()


class _WaitRetryAfter:
    """Wait what the server asked for, else exponential backoff with jitter (capped)."""

    def __init__(self, max_wait: float) -> None:
        self._fallback = wait_random_exponential(multiplier=0.5, max=max_wait)
        self._max = max_wait

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = retry_after_seconds(exc) if exc else None
        return min(asked, self._max) if asked is not None else self._fallback(state)


@register_backend("openai_compatible")
class OpenAICompatibleClient:
    """Chat completions against a remote or local OpenAI-compatible server."""

    backend = "openai_compatible"

    @dataclass(frozen=True)
    class Options:
        """Catalog ``options`` of an ``openai_compatible`` model (see ``__init__`` for each)."""

        base_url: str | None = None
        concurrency: int = 4
        max_retries: int = 4
        timeout_s: float = 120.0
        max_wait_s: float = 30.0
        transport: str = "pool"

    def __init__(self, model: str, base_url: str | None = None, concurrency: int = 4, max_retries: int = 4,
                 timeout_s: float = 120.0, api_key: str | None = None, max_wait_s: float = 30.0,
                 transport: str = "pool") -> None:
        """Args:
        model: Model id (sent as ``model``; for Hugging Face Inference, the hub id).
        base_url: The server's ``/v1`` URL; ``None`` means Hugging Face Inference for ``model``.
        concurrency: Requests in flight at most.
        max_retries: Extra attempts per request after the first.
        timeout_s: Per-request timeout.
        api_key: The token (from the catalog's credentials; never logged), or ``None``.
        max_wait_s: Cap on one wait between attempts.
        transport: ``pool`` (urllib3, for a ``base_url``) or ``huggingface_hub``
            (``InferenceClient``; always used for Hugging Face Inference).
        """
        if transport not in ("pool", "huggingface_hub"):
            raise ValueError(f"transport must be pool or huggingface_hub, not {transport!r}")
        self.name, self.base_url = model, base_url
        self.concurrency, self.max_retries = max(1, int(concurrency)), int(max_retries)
        token = api_key or None
        self._transport: _PooledTransport | None = None
        self._client: Any = None
        if base_url and transport == "pool":
            self._transport = _PooledTransport(base_url, token, timeout_s, self.concurrency)
        else:
            from huggingface_hub import InferenceClient, constants

            if constants.HF_HUB_OFFLINE:
                raise RuntimeError(
                    "HF_HUB_OFFLINE=1 (or TRANSFORMERS_OFFLINE=1) makes huggingface_hub refuse every HTTP request: "
                    "unset both for runs that call Hugging Face Inference or use transport huggingface_hub")
            self._client = InferenceClient(base_url=base_url, api_key=token or "-", timeout=timeout_s) if base_url \
                else InferenceClient(model=model, token=token, timeout=timeout_s)
        self._wait = _WaitRetryAfter(max_wait_s)
        self.requests_sent = 0
        self.retries = 0
        self.device = "remote"
        self._count_lock = threading.Lock()

    @staticmethod
    def answer_identity(options: OpenAICompatibleClient.Options) -> dict[str, Any]:
        """What, beyond the model name, decides its answers: the endpoint serving it."""
        return {"base_url": options.base_url}

    @classmethod
    def create(cls, model: str, options: OpenAICompatibleClient.Options,
               api_key: str | None = None) -> OpenAICompatibleClient:
        """Build from catalog settings."""
        return cls(model, options.base_url, options.concurrency, options.max_retries, options.timeout_s,
                   api_key, options.max_wait_s, options.transport)

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
                    with self._count_lock:
                        self.requests_sent += 1
                        self.retries += attempt.retry_state.attempt_number > 1
                    out = self._send(kwargs)
        except Exception as exc:
            status = _status(exc)
            reason = f"HTTP {status}" if status else type(exc).__name__
            return ChatResult.failed(f"{reason}: {str(exc)[:300]}", time.perf_counter() - t0, http_status=status)
        return self._result(out, time.perf_counter() - t0)

    def _send(self, kwargs: dict[str, Any]) -> Mapping[str, Any]:
        """One attempt: a plain dict from the pool, or huggingface_hub's output as a dict."""
        if self._transport is not None:
            return self._transport.complete(kwargs)
        out = self._client.chat_completion(**kwargs)
        choice = out.choices[0]
        usage = getattr(out, "usage", None)
        return {"choices": [{"finish_reason": choice.finish_reason, "message": {"content": choice.message.content}}],
                "usage": None if usage is None else {"prompt_tokens": getattr(usage, "prompt_tokens", None),
                                                     "completion_tokens": getattr(usage, "completion_tokens", None)}}

    @staticmethod
    def _result(out: Mapping[str, Any], latency_s: float) -> ChatResult:
        """The answer of a decoded chat completion (``usage_reported`` false when it has none)."""
        choices = out.get("choices") or []
        if not choices:
            return ChatResult.failed("response has no choices", latency_s)
        choice = choices[0]
        usage = out.get("usage") or {}
        tokens_in, tokens_out = usage.get("prompt_tokens"), usage.get("completion_tokens")
        return ChatResult(
            text=((choice.get("message") or {}).get("content") or "").strip(),
            tokens_in=int(tokens_in or 0),
            tokens_out=int(tokens_out or 0),
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            latency_s=round(latency_s, 4),
            usage_reported=bool(tokens_in or tokens_out),
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

    def close(self) -> None:
        """Close the pooled connections (the client still works: the pool reopens them)."""
        if self._transport is not None:
            self._transport.close()
