"""Counting tokens when an endpoint reports no usage.

Most OpenAI-compatible servers return ``usage`` with every answer; some (older TGI, proxies,
streaming gateways) do not. Then the tokens are counted with a tokenizer: ``tokenizer`` when
configured (a hub id or local path, loaded from the local cache only when offline), else the
judge model's own when it is a loadable name; failing both, estimated at four characters per
token. The method is named with the figures so nobody mistakes an estimate for a count.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from phase1b_kedro.llm.base import Messages

logger = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4
ESTIMATE = f"estimate ({CHARS_PER_TOKEN} characters per token)"


class TokenCounter:
    """Counts tokens of prompts and replies with the first tokenizer that loads (lazily)."""

    def __init__(self, candidates: Sequence[str | None]) -> None:
        """Args:
        candidates: Tokenizer names to try in order (``None`` and ``bundled:`` names are skipped).
        """
        self._candidates = [c for c in candidates if c and not str(c).startswith("bundled:")]
        self._tokenizer: Any = None
        self._loaded = False
        self._lock = threading.Lock()
        self.method = ESTIMATE

    def _load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            for name in self._candidates:
                try:
                    from huggingface_hub import constants
                    from transformers import AutoTokenizer

                    self._tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=constants.HF_HUB_OFFLINE)
                    self.method = f"tokenizer {name}"
                    break
                except Exception as exc:  # not on disk, not a tokenizer, no network
                    logger.info("token counting: tokenizer %r not available (%s)", name, type(exc).__name__)
            self._loaded = True

    def count(self, text: str) -> int:
        """Tokens in ``text``."""
        self._load()
        if self._tokenizer is None:
            return -(-len(text) // CHARS_PER_TOKEN)
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def count_messages(self, messages: Messages) -> int:
        """Tokens of a conversation's contents (no chat-template markup: a slight undercount)."""
        return sum(self.count(m.get("content", "")) for m in messages)
