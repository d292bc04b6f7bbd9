"""Project pipelines: one per stage, ``__default__`` is the whole chain."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects; ``__default__`` chains
        every stage (Kedro resolves the order from the datasets they share); ``threshold``
        re-applies the failure threshold to stored scores (zero judge calls); ``two_models``
        adds the ``baseline`` namespace (a second model generated and judged on the same
        sample, compared with the first in ``run_comparison``).
    """
    pipelines = find_pipelines(raise_errors=True)
    # threshold's nodes are judging's last two (the chain has them via judging); baseline needs
    # a second model (conf/two_models), so it runs only in the two_models pipeline
    pipelines["__default__"] = sum((p for name, p in pipelines.items() if name not in ("threshold", "baseline")),
                                   Pipeline([]))
    pipelines["two_models"] = pipelines["__default__"] + pipelines["baseline"]
    return pipelines
