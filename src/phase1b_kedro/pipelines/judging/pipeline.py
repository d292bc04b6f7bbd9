"""Judging pipeline: model outputs → scores (cached) → threshold → summary.

The threshold has its own node, so ``--params judging.failure_threshold=6`` never changes
the scores, and the ``threshold`` pipeline re-applies it from the stored ``judge_scores``
without running the judge at all.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import apply_threshold, score_outputs, summarise_judging


def create_threshold_pipeline() -> Pipeline:
    """Threshold and summary only (reads the stored ``judge_scores``)."""
    return Pipeline(
        [
            Node(
                func=apply_threshold,
                inputs=["judge_scores", "params:judging.failure_threshold"],
                outputs=["judged_results", "failures"],
                name="apply_threshold_node",
            ),
            Node(
                func=summarise_judging,
                inputs=["judged_results", "judge_run_stats", "params:judging", "human_labels"],
                outputs="judge_summary",
                name="summarise_judging_node",
            ),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    """Create the judging pipeline."""
    return Pipeline(
        [
            Node(
                func=score_outputs,
                inputs=["model_outputs", "judge_model", "judge_cache", "params:judging"],
                outputs=["judge_scores", "judge_run_stats"],
                name="score_outputs_node",
            ),
        ]
    ) + create_threshold_pipeline()
