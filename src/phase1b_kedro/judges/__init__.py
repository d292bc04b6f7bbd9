"""Scoring model outputs against references: verifiable checks, similarity metrics, LLM judges.

``score_records(records, params)`` (in :mod:`.strategies`) is the one entry point the judging
pipeline calls; it returns a :class:`.verdict.Verdict` per record and the run's counters.
"""

from phase1b_kedro.judges.verdict import Verdict

__all__ = ["Verdict"]
