"""Clustering pipeline: failures → embeddings → clusters."""

from kedro.pipeline import Node, Pipeline

from .nodes import cluster_failures_node, embed_failures, pattern_rates


def create_pipeline(**kwargs) -> Pipeline:
    """Create the clustering pipeline."""
    return Pipeline(
        [
            Node(func=embed_failures, inputs=["failures", "params:clustering"], outputs="failure_embeddings",
                 name="embed_failures_node"),
            Node(func=cluster_failures_node, inputs=["failures", "failure_embeddings", "params:clustering"],
                 outputs="clusters", name="cluster_failures_node"),
            Node(func=pattern_rates, inputs=["clusters", "judged_results", "params:clustering"],
                 outputs="pattern_rates", name="pattern_rates_node"),
        ]
    )
