"""Labeling pipeline: clusters → named patterns → data generation plan (JSON + Markdown)."""

from kedro.pipeline import Node, Pipeline

from .nodes import label_patterns, plan_data_generation, render_plan_markdown


def create_pipeline(**kwargs) -> Pipeline:
    """Create the labeling pipeline."""
    return Pipeline(
        [
            Node(func=label_patterns, inputs=["failures", "clusters", "judge_model", "label_cache", "params:labeling", "pattern_rates"],
                 outputs="patterns", name="label_patterns_node"),
            Node(func=plan_data_generation,
                 inputs=["patterns", "failures", "params:labeling", "judged_results", "pattern_rates"],
                 outputs=["data_generation_plan", "pattern_eval_set"], name="plan_data_generation_node"),
            Node(func=render_plan_markdown, inputs="data_generation_plan", outputs="data_generation_plan_md",
                 name="render_plan_markdown_node"),
        ]
    )
