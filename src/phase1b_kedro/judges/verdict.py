"""The verdict every judge strategy returns for one record."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from phase1b_kedro.contract import OK, UNJUDGED, VerdictStatus


@dataclass
class Verdict:
    """A score in [0, 10] with where it came from, or ``unjudged`` with the reason.

    ``source`` is ``verifiable``, ``execution``, ``similarity`` or ``llm``; ``rule`` names the
    check or protocol step that produced it; ``answer`` is the answer extracted from the output
    and ``expected`` the one extracted from the reference (deterministic checks; ``None``
    otherwise); ``confident`` is false for a deterministic fail that an LLM fallback may
    overturn (no comparable answer found, structured text that differs); ``details`` holds
    strategy-specific figures.
    """

    score: float | None
    source: str
    status: VerdictStatus = OK
    rationale: str = ""
    reason: str | None = None
    rule: str | None = None
    answer: str | None = None
    expected: str | None = None
    confident: bool = True
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def unjudged(cls, source: str, reason: str, **details: Any) -> Verdict:
        """No valid verdict could be obtained: neither pass nor fail."""
        return cls(score=None, source=source, status=UNJUDGED, reason=reason, details=dict(details))

    @property
    def ok(self) -> bool:
        """Whether there is a verdict (not ``unjudged``)."""
        return self.status == OK

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for the record's ``judge`` field."""
        return asdict(self)
