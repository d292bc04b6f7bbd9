"""One LLM client interface for generation, judging and labeling.

``make_client(params)`` returns an :class:`LLMClient`; callers only ever call
``client.generate(conversations, config)`` and never know which backend answers.
"""

from phase1b_kedro.llm.base import ChatResult, GenerationConfig, LLMClient, make_client

__all__ = ["ChatResult", "GenerationConfig", "LLMClient", "make_client"]
