"""Sampling test builders: the sampling pipeline run over an in-memory catalog."""

from __future__ import annotations

from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from phase1b_kedro.pipelines.sampling import create_pipeline


def run_pipeline(data: bytes, params: dict) -> dict:
    """``test_dataset``, ``test_dataset_stats`` and ``rejected_records`` of the raw ``data``."""
    catalog = DataCatalog()
    catalog["raw_prompts"] = data
    catalog["params:sampling"] = params
    for name in ("test_dataset", "test_dataset_stats", "rejected_records"):
        catalog[name] = None  # placeholders so the runner returns them
    SequentialRunner().run(create_pipeline(), catalog)
    return {name: catalog.load(name) for name in ("test_dataset", "test_dataset_stats", "rejected_records")}
