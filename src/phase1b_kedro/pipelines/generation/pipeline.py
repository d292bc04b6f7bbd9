"""Generation pipeline: test set → model outputs (+ stats)."""

from kedro.pipeline import Node, Pipeline

from .nodes import generate_outputs


def create_pipeline(**kwargs) -> Pipeline:
    """Create the generation pipeline."""
    return Pipeline(
        [
            Node(
                func=generate_outputs,
                inputs=["test_dataset", "generation_model", "generation_checkpoint", "params:generation"],
                outputs=["model_outputs", "generation_stats"],
                name="generate_outputs_node",
            ),
        ]
    )
