"""Resources declared in the catalog: LLM clients, result caches and checkpoints.

Nodes never build a client or open a cache from parameter paths: they receive these as
inputs, so kedro-viz shows them, the catalog (and each environment) moves or swaps them, and
credentials come through Kedro's credentials mechanism (``credentials: hf`` in the entry,
resolved from ``conf/<env>/credentials.yml``). Loading one is cheap: a client builds its
backend, and loads weights, on first use; a pipeline that never calls a model never loads it.
Like Kedro's GenAI starter, which declares its LLM as a catalog dataset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from phase1b_kedro.cache import ResponseCache
from phase1b_kedro.checkpoint import CheckpointStore
from phase1b_kedro.judges.cache import VerdictCache
from phase1b_kedro.llm.registry import LazyClient


class _ReadOnly(AbstractDataset):
    """A resource: loaded, never saved (a node writes through the object it was given)."""

    def save(self, data: Any) -> None:
        """Resources are not saved."""
        raise DatasetError(f"{type(self).__name__} is a resource: nodes use it, they do not save it")


class LLMDataset(_ReadOnly):
    """An LLM client (:class:`~phase1b_kedro.llm.registry.LazyClient`) from catalog settings.

    Example (``conf/base/catalog_02_models.yml``)::

        judge_model:
          type: phase1b_kedro.resource_datasets.LLMDataset
          backend: openai_compatible
          model: meta-llama/Llama-3.3-70B-Instruct
          options: {base_url: null, concurrency: 8}
          credentials: hf          # {token: ...} from credentials.yml
    """

    def __init__(self, backend: str = "transformers", model: str = "bundled:smollm2-135m-instruct",
                 options: Mapping[str, Any] | None = None, credentials: Mapping[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        """Args:
        backend: A registered backend (``transformers``, ``openai_compatible``).
        model: Hub id, local path or ``bundled:...`` name; for a server, its model name.
        options: The backend's settings (``TransformersClient.Options``,
            ``OpenAICompatibleClient.Options``); unknown keys are an error at load.
        credentials: ``{token: ...}`` (or ``api_key``) for remote backends; never logged.
        metadata: kedro-viz layer etc.

        Raises:
            DatasetError: For credentials that are not a mapping.
        """
        if credentials is not None and not isinstance(credentials, Mapping):
            raise DatasetError("LLMDataset credentials must be a mapping such as {token: ...}")
        self._backend, self._model = backend, model
        self._options = dict(options or {})
        credentials = credentials or {}
        self._api_key = credentials.get("token") or credentials.get("api_key") or None
        self.metadata = metadata

    def load(self) -> LazyClient:
        """The client; the backend and its options are checked now, the model is loaded on first use.

        Raises:
            DatasetError: For an unknown backend or option.
        """
        try:
            return LazyClient(self._backend, self._model, self._options, self._api_key)
        except ValueError as exc:
            raise DatasetError(str(exc)) from exc

    def _describe(self) -> dict[str, Any]:
        return {"backend": self._backend, "model": self._model, "options": self._options,
                "credentials": "set" if self._api_key else None}


class _CacheDataset(_ReadOnly):
    """A SQLite result cache at ``filepath`` (created on first use)."""

    cache_class: type[ResponseCache] = ResponseCache

    def __init__(self, filepath: str | None, metadata: dict[str, Any] | None = None) -> None:
        """Args:
        filepath: Local path of the SQLite file (SQLite needs a local file system);
            ``None`` keeps the cache in memory for the run (notebooks, tests).
        metadata: kedro-viz layer etc.
        """
        self._filepath = filepath
        self.metadata = metadata

    def load(self) -> ResponseCache:
        """An open cache (the node closes it when done: use it as a context manager)."""
        return self.cache_class(self._filepath)

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath}


class ResponseCacheDataset(_CacheDataset):
    """LLM results other than verdicts (e.g. cluster labels), JSON by key."""

    cache_class = ResponseCache


class VerdictCacheDataset(_CacheDataset):
    """The judge's verdicts by item key (:class:`~phase1b_kedro.judges.cache.VerdictCache`)."""

    cache_class = VerdictCache


class CheckpointDataset(_ReadOnly):
    """A folder of append-only JSONL checkpoints (:class:`~phase1b_kedro.checkpoint.CheckpointStore`)."""

    def __init__(self, dirpath: str, metadata: dict[str, Any] | None = None) -> None:
        """Args:
        dirpath: Local folder of the checkpoint files.
        metadata: kedro-viz layer etc.
        """
        self._dirpath = dirpath
        self.metadata = metadata

    def load(self) -> CheckpointStore:
        """The store (files are created by the node as it appends)."""
        return CheckpointStore(self._dirpath)

    def _describe(self) -> dict[str, Any]:
        return {"dirpath": self._dirpath}
