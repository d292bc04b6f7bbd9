"""Reporting pipeline: charts for kedro-viz and the report, then report.html."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    build_report,
    plot_cluster_map,
    plot_failure_rates,
    plot_pattern_sizes,
    plot_score_distribution,
    plot_verdict_sources,
)


def create_pipeline(**kwargs) -> Pipeline:
    """Create the reporting pipeline."""
    return Pipeline(
        [
            Node(plot_failure_rates, "judge_summary", "failure_rate_chart", name="plot_failure_rates_node"),
            Node(plot_score_distribution, ["judged_results", "params:judging.failure_threshold"],
                 "score_distribution_chart", name="plot_score_distribution_node"),
            Node(plot_verdict_sources, "judged_results", "verdict_sources_chart", name="plot_verdict_sources_node"),
            Node(plot_cluster_map, ["clusters", "patterns", "failures"], "cluster_map_chart",
                 name="plot_cluster_map_node"),
            Node(plot_pattern_sizes, "patterns", "pattern_sizes_chart", name="plot_pattern_sizes_node"),
            Node(build_report,
                 ["judge_summary", "generation_stats", "clusters", "patterns", "data_generation_plan",
                  "failure_rate_chart", "score_distribution_chart", "verdict_sources_chart", "cluster_map_chart",
                  "pattern_sizes_chart", "run_comparison", "run_comparison_chart", "run_info"],
                 "report_html", name="build_report_node"),
        ]
    )
