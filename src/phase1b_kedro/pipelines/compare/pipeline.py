"""Compare pipeline: baseline and current judged results -> run_comparison (+ chart)."""

from kedro.pipeline import Node, Pipeline

from .nodes import compare_runs, plot_run_comparison


def create_pipeline(**kwargs) -> Pipeline:
    """Create the compare pipeline (``kedro run --pipeline compare``)."""
    return Pipeline(
        [
            Node(
                func=compare_runs,
                inputs=["baseline_judged_results", "judged_results", "patterns", "pattern_rates"],
                outputs="run_comparison",
                name="compare_runs_node",
            ),
            Node(
                func=plot_run_comparison,
                inputs="run_comparison",
                outputs="run_comparison_chart",
                name="plot_run_comparison_node",
            ),
        ]
    )
