"""One LLM client interface for generation, judging and labeling.

Models are catalog datasets (:class:`~phase1b_kedro.resource_datasets.LLMDataset`) whose
``load()`` gives a :class:`LazyClient`; callers only ever call
``client.generate(conversations, config)`` and never know which backend answers. Backends
register by name (:func:`register_backend`).
"""

from phase1b_kedro.llm.base import ChatResult, GenerationConfig, LLMClient
from phase1b_kedro.llm.registry import LazyClient, backend_class, identity_of, make_client, register_backend

__all__ = ["ChatResult", "GenerationConfig", "LLMClient", "LazyClient", "backend_class", "identity_of", "make_client",
           "register_backend"]
