"""Deciding a record's category: from a source field (through an alias map) or inferred.

The inference is a transparent rule-based classifier: each category has a list of regular
expressions (``sampling.category_rules`` in ``conf/base/parameters_sampling.yml``). A record
scores one point per rule that matches its text; the highest score wins, ties go to the
category listed first, and a record that matches nothing is ``other``. The matched rules
are kept on the record (``meta.category_rules``) so every decision can be audited.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from phase1b_kedro.records import CATEGORIES

#: Only the start of the text is classified: the task type is stated early, and long
#: passages (reading comprehension, code listings) would otherwise dominate the cost.
CLASSIFY_CHARS = 1200
SYSTEM_CHARS = 600


@dataclass(frozen=True)
class CategoryDecision:
    """The category and how it was decided."""

    category: str
    source: str  # "field" | "inferred"
    rules: tuple[str, ...] = ()


class CategoryClassifier:
    """Maps source categories through aliases, or infers one from keyword/pattern rules."""

    def __init__(self, rules: Mapping[str, Sequence[str]], aliases: Mapping[str, str] | None = None,
                 classify_chars: int = CLASSIFY_CHARS) -> None:
        """Args:
        rules: ``{category: [regex, ...]}``, in priority order (ties go to the earlier one).
        aliases: Source category names (case-insensitive) → one of the six categories.
        classify_chars: How much of the text the rules look at.
        """
        unknown = set(rules) - set(CATEGORIES)
        if unknown:
            raise ValueError(f"category_rules names unknown categories: {sorted(unknown)}")
        bad_alias = {k: v for k, v in (aliases or {}).items() if v not in CATEGORIES}
        if bad_alias:
            raise ValueError(f"category_aliases map to unknown categories: {bad_alias}")
        self._aliases = {str(k).strip().lower(): v for k, v in (aliases or {}).items()}
        self._aliases.update({c: c for c in CATEGORIES})
        self._order = list(rules)
        self._group_to_rule: dict[str, tuple[str, str]] = {}
        parts = []
        for cat, patterns in rules.items():
            for i, pattern in enumerate(patterns):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"category_rules.{cat}[{i}] is not a valid regex: {exc}") from exc
                group = f"{cat}_{i}"
                self._group_to_rule[group] = (cat, pattern)
                parts.append(f"(?P<{group}>{pattern})")
        self._regex = re.compile("|".join(parts), re.IGNORECASE | re.MULTILINE) if parts else None
        self._chars = classify_chars

    def decide(self, source_category: str | None, text: str) -> CategoryDecision:
        """Category from the source field when it maps to one of the six, else inferred."""
        if source_category is not None:
            mapped = self._aliases.get(source_category.strip().lower())
            if mapped is not None:
                return CategoryDecision(mapped, "field")
        return self.infer(text)

    def infer(self, text: str) -> CategoryDecision:
        """Apply the rules to the start of ``text``."""
        if self._regex is None:
            return CategoryDecision("other", "inferred")
        hits: dict[str, set[str]] = {}
        for match in self._regex.finditer(text[: self._chars + SYSTEM_CHARS + 1]):
            cat, pattern = self._group_to_rule[match.lastgroup]
            hits.setdefault(cat, set()).add(pattern)
        if not hits:
            return CategoryDecision("other", "inferred")
        best = max(self._order, key=lambda c: (len(hits.get(c, ())), -self._order.index(c)))
        return CategoryDecision(best, "inferred", tuple(sorted(hits[best])))


def classification_text(messages: Sequence[Mapping[str, str]], prompt: str) -> str:
    """The text the rules see: the start of the system turns (where evals-style data states
    the task) followed by the start of the prompt (the last user turn)."""
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    return f"{system[:SYSTEM_CHARS]}\n{prompt[:CLASSIFY_CHARS]}"
