"""Reporting nodes: one chart per node (plotly.JSONDataset), then the HTML report."""

from __future__ import annotations

import datetime as dt
from typing import Any

import plotly.graph_objects as go

from phase1b_kedro import report


def plot_failure_rates(judge_summary: dict) -> go.Figure:
    """Failure rate per category with Wilson 95% error bars."""
    return report.failure_rate_figure(judge_summary)


def plot_score_distribution(judged_results: list[dict], failure_threshold: float) -> go.Figure:
    """Scores per category, with the threshold line."""
    return report.score_distribution_figure(judged_results, float(failure_threshold))


def plot_verdict_sources(judged_results: list[dict]) -> go.Figure:
    """Verdict sources (verifiable / similarity / llm / unjudged) per category."""
    return report.verdict_sources_figure(judged_results)


def plot_cluster_map(clusters: dict, patterns: dict, failures: list[dict]) -> go.Figure:
    """The 2-D failure map coloured by pattern."""
    return report.cluster_map_figure(clusters, patterns, failures)


def plot_pattern_sizes(patterns: dict) -> go.Figure:
    """Failures per pattern."""
    return report.pattern_sizes_figure(patterns)


def _clusterer_size(settings: dict[str, Any]) -> str:
    """The clusterer's size setting as run (``auto`` resolved), e.g. ``min_cluster_size 5``."""
    kwargs = (settings.get("clusterer") or {}).get("kwargs") or {}
    shown = [f"{k} {kwargs[k]}" for k in ("min_cluster_size", "n_clusters") if k in kwargs]
    return ", ".join(shown) or "default settings"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def build_report(judge_summary: dict, generation_stats: dict, clusters: dict, patterns: dict,
                 data_generation_plan: dict, failure_rate_chart: go.Figure, score_distribution_chart: go.Figure,
                 verdict_sources_chart: go.Figure, cluster_map_chart: go.Figure, pattern_sizes_chart: go.Figure,
                 run_comparison: dict[str, Any], run_comparison_chart: go.Figure, run_info: dict[str, Any]) -> str:
    """One HTML file that opens with no server and no internet (plotly's JS inlined).

    Args:
        judge_summary: Judging summary.
        generation_stats: Generation stats.
        clusters: Clustering output.
        patterns: Labeled patterns.
        data_generation_plan: The plan (examples to generate per pattern).
        failure_rate_chart: Chart.
        score_distribution_chart: Chart.
        verdict_sources_chart: Chart.
        cluster_map_chart: Chart.
        pattern_sizes_chart: Chart.
        run_comparison: Before/after comparison (a section when a baseline was given).
        run_comparison_chart: Chart.
        run_info: ``{"env": ..., "save_version": ...}`` of this run (catalog ``run_info``,
            filled from the run context by :class:`~phase1b_kedro.hooks.RunInfoHooks`).

    Returns:
        The report's HTML (every data text autoescaped by Jinja2).
    """
    chart = report.chart_html
    settings = clusters.get("settings", {})
    config = {
        "model": generation_stats.get("model"), "backend": generation_stats.get("backend"),
        "device": generation_stats.get("device"), "strategy": judge_summary.get("strategy"),
        "fallback": judge_summary.get("fallback"), "judge": judge_summary.get("judge_model"),
        "endpoint": judge_summary.get("judge_endpoint"), "threshold": f"{judge_summary['failure_threshold']:g}",
        "env": run_info.get("env", "unknown"),
        "clustering": f"{clusters.get('algorithm')} ({_clusterer_size(settings)}) on "
                      f"{', '.join(clusters.get('embedding', {}).get('text_fields', []))}; "
                      f"stability ARI {(clusters.get('stability', {}).get('all') or {}).get('ari_mean')}",
    }
    return report.render_report(
        config=config, summary=judge_summary, llm=judge_summary.get("llm"), generation=generation_stats,
        patterns=patterns.get("patterns", []), n_patterns=patterns.get("n_patterns", 0), plan=data_generation_plan,
        plan_counts={e["pattern_id"]: e["examples_to_generate"] for e in data_generation_plan.get("patterns", [])},
        charts={"failure_rate": chart(failure_rate_chart), "scores": chart(score_distribution_chart),
                "sources": chart(verdict_sources_chart), "cluster_map": chart(cluster_map_chart),
                "pattern_sizes": chart(pattern_sizes_chart),
                "comparison": chart(run_comparison_chart) if run_comparison.get("baseline_given") else ""},
        comparison=run_comparison,
        pct=_pct, generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
