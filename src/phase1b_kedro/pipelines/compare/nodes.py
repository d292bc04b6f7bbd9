"""Compare nodes: match two runs' judged records by id; count what got fixed and what broke."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from phase1b_kedro.comparison import compare
from phase1b_kedro.report import run_comparison_figure


def compare_runs(baseline_judged_results: list[dict], judged_results: list[dict], patterns: dict,
                 pattern_rates: dict | None = None) -> dict[str, Any]:
    """Fixed, broken, still failing, still passing per category and per pattern, with McNemar tests.

    Args:
        baseline_judged_results: The earlier run's ``judged_results`` (empty: no baseline given).
        judged_results: This run's.
        patterns: This run's labeled patterns; a record that fails now belongs to the pattern
            that holds it.
        pattern_rates: This run's passing records assigned to their nearest pattern (the
            clustering stage); a record that passes now (e.g. ``fixed``) counts in that pattern.

    Returns:
        ``run_comparison``: ``baseline_given``, ``records``, ``overall``, ``per_category``,
        ``per_pattern`` (see :func:`phase1b_kedro.comparison.compare`).
    """
    if not baseline_judged_results:
        return {"baseline_given": False,
                "note": "no baseline: put an earlier run's judged_results at baseline_judged_results"}
    pattern_of = _pattern_membership(patterns, pattern_rates or {})

    def category(before: dict | None, after: dict | None) -> list[str]:
        return [(after or before or {}).get("category", "other")]

    def pattern(before: dict | None, after: dict | None) -> list[str]:
        key = str((after or before or {}).get("id"))
        return [pattern_of[key]] if key in pattern_of else []

    result = compare(baseline_judged_results, judged_results, {"per_category": category, "per_pattern": pattern})
    return {"baseline_given": True, **result}


def _pattern_membership(patterns: dict, pattern_rates: dict) -> dict[str, str]:
    """Record id -> pattern id: failures by cluster membership, passes by nearest pattern."""
    rates = pattern_rates.get("patterns", {})
    member = {i: p["pattern_id"] for p in patterns.get("patterns", []) for i in p["member_ids"]}
    passes = {i: p["pattern_id"] for p in patterns.get("patterns", [])
              for i in (rates.get(p.get("cluster_id")) or {}).get("pass_ids", [])}
    return {**passes, **member}


def plot_run_comparison(run_comparison: dict[str, Any]) -> go.Figure:
    """Stacked bars of the transitions per category (kedro-viz and the report)."""
    return run_comparison_figure(run_comparison)
