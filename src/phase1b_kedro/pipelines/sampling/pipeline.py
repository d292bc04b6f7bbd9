"""Sampling pipeline: raw JSONL → normalised, de-duplicated index → stratified test set."""

from kedro.pipeline import Node, Pipeline

from .nodes import build_test_dataset, index_records, sample_records, summarise_sampling


def create_pipeline(**kwargs) -> Pipeline:
    """Create the sampling pipeline."""
    return Pipeline(
        [
            Node(
                func=index_records,
                inputs=["raw_prompts", "params:sampling"],
                outputs=["unique_record_index", "quarantined_records", "duplicate_records", "scan_info"],
                name="index_records_node",
            ),
            Node(
                func=sample_records,
                inputs=["unique_record_index", "params:sampling"],
                outputs="sampled_index",
                name="sample_records_node",
            ),
            Node(
                func=build_test_dataset,
                inputs=["raw_prompts", "sampled_index", "params:sampling"],
                outputs="test_dataset",
                name="build_test_dataset_node",
            ),
            Node(
                func=summarise_sampling,
                inputs=[
                    "scan_info", "unique_record_index", "sampled_index",
                    "quarantined_records", "duplicate_records", "params:sampling",
                ],
                outputs=["test_dataset_stats", "rejected_records"],
                name="summarise_sampling_node",
            ),
        ]
    )
