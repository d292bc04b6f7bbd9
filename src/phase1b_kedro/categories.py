"""Deciding a record's category: from a source field (through an alias map) or inferred.

The inference is a transparent rule-based classifier configured in
``conf/base/parameters_sampling.yml`` (``sampling.category_rules``). Each category has

- ``keywords``: whole words (case-insensitive),
- ``phrases``: substrings (case-insensitive), for multi-word cues and symbols,
- ``patterns``: Python regular expressions, for the few cues words cannot express.

A record scores one point per keyword, phrase or pattern of a category found in its text;
the highest score wins, ties go to the category listed first, and a record that matches
nothing is ``other``. The matched rules are kept on the record (``meta.category_rules``).

Only the start of the system turn and of the prompt are read (the task is stated early,
and long passages would otherwise dominate the cost); system turns repeat across records
of one source, so their matches are cached.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from phase1b_kedro.records import CATEGORIES

#: Characters of the prompt (last user turn) and of the system turns that the rules read.
PROMPT_CHARS = 800
SYSTEM_CHARS = 600
_WORD = re.compile(r"[a-z0-9_]+")
_RULE_KINDS = ("keywords", "phrases", "patterns")


@dataclass(frozen=True)
class CategoryDecision:
    """The category and how it was decided."""

    category: str
    source: str  # "field" | "inferred"
    rules: tuple[str, ...] = ()


class CategoryClassifier:
    """Maps source categories through aliases, or infers one from keyword/pattern rules."""

    def __init__(self, rules: Mapping[str, Mapping[str, Sequence[str]]],
                 aliases: Mapping[str, str] | None = None) -> None:
        """Args:
        rules: ``{category: {keywords: [...], phrases: [...], patterns: [...]}}`` in priority
            order (ties go to the earlier category).
        aliases: Source category names (case-insensitive) → one of the six categories.

        Raises:
            ValueError: For unknown categories or rule kinds, or an invalid regex.
        """
        unknown = set(rules) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"category_rules names unknown categories: {sorted(unknown)}")
        bad_alias = {k: v for k, v in (aliases or {}).items() if v not in CATEGORIES}
        if bad_alias:
            raise ValueError(f"category_aliases map to unknown categories: {bad_alias}")
        self._aliases = {str(k).strip().lower(): v for k, v in (aliases or {}).items()}
        self._aliases.update({c: c for c in CATEGORIES})
        self._order = {cat: i for i, cat in enumerate(rules)}
        self._keywords: dict[str, list[str]] = {}
        self._phrases: list[tuple[str, str]] = []
        self._patterns: list[tuple[str, re.Pattern[str], str]] = []
        for cat, spec in rules.items():
            extra = set(spec or {}) - set(_RULE_KINDS)
            if extra:
                raise ValueError(f"category_rules.{cat} has unknown keys {sorted(extra)}; use {_RULE_KINDS}")
            for word in (spec or {}).get("keywords") or []:
                self._keywords.setdefault(str(word).lower(), []).append(cat)
            for phrase in (spec or {}).get("phrases") or []:
                self._phrases.append((cat, str(phrase).lower()))
            for i, pattern in enumerate((spec or {}).get("patterns") or []):
                try:
                    compiled = re.compile(pattern, re.IGNORECASE | re.MULTILINE)
                except re.error as exc:
                    raise ValueError(f"category_rules.{cat}.patterns[{i}] is not a valid regex: {exc}") from exc
                self._patterns.append((cat, compiled, pattern))
        self._system_hits = lru_cache(maxsize=4096)(self._hits)

    def decide(self, source_category: str | None, messages: Sequence[Mapping[str, str]],
               prompt: str) -> CategoryDecision:
        """Category from the source field when it maps to one of the six, else inferred."""
        if source_category is not None:
            mapped = self._aliases.get(source_category.strip().lower())
            if mapped is not None:
                return CategoryDecision(mapped, "field")
        system = "\n".join(m["content"] for m in messages if m["role"] == "system")
        return self._choose(self._system_hits(system[:SYSTEM_CHARS]) | self._hits(prompt[:PROMPT_CHARS]))

    def infer(self, text: str) -> CategoryDecision:
        """Apply the rules to ``text`` (its first ``PROMPT_CHARS`` characters)."""
        return self._choose(self._hits(text[:PROMPT_CHARS]))

    def _hits(self, text: str) -> frozenset[tuple[str, str]]:
        """Every (category, rule) that matches ``text``."""
        if not text:
            return frozenset()
        lowered = text.lower()
        hits = {(cat, w) for w in set(_WORD.findall(lowered)) for cat in self._keywords.get(w, ())}
        hits.update((cat, p) for cat, p in self._phrases if p in lowered)
        hits.update((cat, src) for cat, rx, src in self._patterns if rx.search(text))
        return frozenset(hits)

    def _choose(self, hits: frozenset[tuple[str, str]]) -> CategoryDecision:
        if not hits:
            return CategoryDecision("other", "inferred")
        score: dict[str, int] = {}
        for cat, _ in hits:
            score[cat] = score.get(cat, 0) + 1
        best = min(score, key=lambda c: (-score[c], self._order[c]))
        return CategoryDecision(best, "inferred", tuple(sorted(r for c, r in hits if c == best)))


def classifier_from_params(params: Mapping[str, Any]) -> CategoryClassifier:
    """Build the classifier from the ``sampling`` parameter group."""
    return CategoryClassifier(params.get("category_rules") or {}, params.get("category_aliases") or {})
