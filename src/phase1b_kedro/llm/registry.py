"""Backends by name, and the one place that builds a client from catalog settings.

A backend is a class registered with :func:`register_backend` that has an ``Options``
dataclass (its settings; unknown keys are refused by :func:`phase1b_kedro.configs.load_config`),
a ``create(model, options, api_key)`` classmethod and, optionally, an ``answer_identity(options)``
static method naming the options that change its answers (keys of checkpoints and caches). The built-in backends are imported only
when first named, so nothing imports every backend, and ``base.py`` imports none of them (no
import cycle). The way Inspect AI registers its model providers (``@modelapi(name=...)``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from phase1b_kedro.configs import load_config
from phase1b_kedro.llm.base import ChatResult, GenerationConfig, LLMClient, Messages, ResultCallback

#: Built-in backends and the module that registers each (imported on first use).
_BUILTIN = {
    "transformers": "phase1b_kedro.llm.transformers_backend",
    "openai_compatible": "phase1b_kedro.llm.openai_backend",
}
_REGISTRY: dict[str, type] = {}


def identity_of(client: Any) -> dict[str, Any]:
    """What decides a client's answers, for checkpoint and cache keys: :meth:`LazyClient.identity`
    for a catalog client, else what a built client's description says (model, backend, endpoint,
    device and dtype where it has them)."""
    if isinstance(client, LazyClient):
        return client.identity()
    described = client.describe()
    return {k: described[k] for k in ("model", "backend", "base_url", "device", "dtype") if described.get(k)}


def register_backend(name: str) -> Callable[[type], type]:
    """Class decorator: make a backend available under ``name`` (``backend: <name>`` in the catalog)."""
    def add(cls: type) -> type:
        cls.backend = name
        _REGISTRY[name] = cls
        return cls
    return add


def backend_class(name: str) -> type:
    """The class registered as ``name``.

    Raises:
        ValueError: For a name no backend registered, listing the known ones.
    """
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    if name not in _REGISTRY:
        raise ValueError(f"unknown LLM backend {name!r}; known: {sorted(set(_BUILTIN) | set(_REGISTRY))}")
    return _REGISTRY[name]


def make_client(backend: str, model: str, options: Mapping[str, Any] | None = None,
                api_key: str | None = None) -> LLMClient:
    """Build a client now (it may still load its weights on first use).

    Args:
        backend: A registered backend name (``transformers``, ``openai_compatible``, ...).
        model: The model: a hub id, local path or ``bundled:...`` name; for a server, its model name.
        options: The backend's own settings (its ``Options`` fields).
        api_key: A token for remote backends (never logged).

    Raises:
        ValueError: For an unknown backend or an option the backend does not know.
    """
    cls = backend_class(backend)
    config = load_config(cls.Options, options, f"{backend} options")
    return cls.create(model, config, api_key)


class LazyClient:
    """An :class:`~phase1b_kedro.llm.base.LLMClient` that builds its backend on first use.

    What catalog datasets hand to nodes: loading the dataset costs nothing (no weights, no
    connections), the options are checked at once, and a node that never calls the model
    never builds it. Attributes the backend has beyond the interface (``retries``,
    ``tokenizer``...) are reached through the built client.
    """

    def __init__(self, backend: str, model: str, options: Mapping[str, Any] | None = None,
                 api_key: str | None = None) -> None:
        """Args: as :func:`make_client`.

        Raises:
            ValueError: For an unknown backend or option (at once, not at first use).
        """
        cls = backend_class(backend)
        self._config = load_config(cls.Options, options, f"{backend} options")
        self._cls, self._api_key = cls, api_key
        self.name, self.backend = model, backend
        self._client: LLMClient | None = None

    @property
    def client(self) -> LLMClient:
        """The backend's client, built on first access."""
        if self._client is None:
            self._client = self._cls.create(self.name, self._config, self._api_key)
        return self._client

    def load(self) -> None:
        """Build the client and load what it loads up front (local weights); errors propagate."""
        if callable(getattr(self.client, "load", None)):
            self.client.load()

    def generate(self, conversations: Sequence[Messages], config: GenerationConfig,
                 progress: Any | None = None, on_result: ResultCallback | None = None) -> list[ChatResult]:
        """See :meth:`phase1b_kedro.llm.base.LLMClient.generate`."""
        return self.client.generate(conversations, config, progress=progress, on_result=on_result)

    def describe(self) -> dict[str, Any]:
        """The built client's description; before it is built, what the settings say."""
        if self._client is not None:
            return self._client.describe()
        described = {"model": self.name, "backend": self.backend}
        if hasattr(self._config, "base_url"):
            described["base_url"] = self._config.base_url
        return described

    def identity(self) -> dict[str, Any]:
        """Everything that decides this client's answers (model, backend, and the backend's
        own: endpoint, or device and dtype), for checkpoint and cache keys. Builds nothing."""
        own = getattr(self._cls, "answer_identity", None)
        return {"model": self.name, "backend": self.backend, **(own(self._config) if own else {})}

    def close(self) -> None:
        """Close the client's connections, if it was built and has any."""
        if self._client is not None and callable(getattr(self._client, "close", None)):
            self._client.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.client, name)
