"""The client interface every backend implements (backends register in :mod:`.registry`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

from phase1b_kedro.contract import ERROR, OK, FinishReason, GenerationStatus

Messages = Sequence[Mapping[str, str]]
#: Called as ``on_result(index, result)`` as soon as one conversation's answer is ready
#: (from a worker thread for concurrent backends): lets callers checkpoint as they go.
ResultCallback = Callable[[int, "ChatResult"], None]


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding parameters shared by all backends (temperature 0 = greedy)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    max_input_tokens: int = 2048
    stop: tuple[str, ...] = ()
    #: JSON schema for structured output, where the backend supports it.
    response_format: Mapping[str, Any] | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None, group: str = "generation.decoding") -> GenerationConfig:
        """Build from a decoding parameter group (``stop`` may be one string).

        Raises:
            ValueError: For a key this class does not know (named with ``group``).
            ParameterError: For a ``stop`` that is not a string or a list of strings.
        """
        from phase1b_kedro.configs import load_config
        from phase1b_kedro.params import string_list

        params = dict(params or {})
        stop = params.pop("stop", None)
        return load_config(cls, params, group, stop=string_list(stop, f"{group}.stop") if stop else ())

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for stats and cache keys)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass
class ChatResult:
    """One answer, with what it cost. ``status`` is ``ok`` or ``error`` (then ``error`` says why)."""

    text: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    finish_reason: FinishReason = "stop"
    latency_s: float = 0.0
    status: GenerationStatus = OK
    error: str | None = None
    truncated_input: bool = False
    #: The HTTP status of a failed request (remote backends), so callers can tell a rejected
    #: request (400/422: e.g. an unsupported ``response_format``) from an outage.
    http_status: int | None = None
    #: ``False`` when the endpoint sent no token usage (``tokens_in``/``tokens_out`` are then 0
    #: and a caller that needs them counts with a tokenizer).
    usage_reported: bool = True

    @property
    def ok(self) -> bool:
        """Whether the model answered (``status`` is ``ok``)."""
        return self.status == OK

    @classmethod
    def failed(cls, error: str, latency_s: float = 0.0, http_status: int | None = None) -> ChatResult:
        """A result that records an error instead of an answer."""
        return cls(finish_reason="error", status=ERROR, error=error, latency_s=latency_s, http_status=http_status,
                   usage_reported=False)


@runtime_checkable
class LLMClient(Protocol):
    """What generation, judging and labeling need from a model."""

    name: str
    backend: str

    def generate(self, conversations: Sequence[Messages], config: GenerationConfig,
                 progress: Any | None = None, on_result: ResultCallback | None = None) -> list[ChatResult]:
        """Answer each conversation once, results in input order.

        Never raises for one bad item (returns an error result). ``progress`` (a tqdm bar)
        is advanced per answer; ``on_result`` sees each answer as soon as it is ready.
        """
        ...

    def describe(self) -> dict[str, Any]:
        """Model, backend, endpoint, device: everything that identifies the answers' source."""
        ...
