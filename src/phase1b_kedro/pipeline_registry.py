"""Project pipelines: one per stage, ``__default__`` is the whole chain."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from phase1b_kedro.pipelines import (
    baseline,
    clustering,
    compare,
    generation,
    judging,
    labeling,
    reporting,
    sampling,
    threshold,
)

#: The stages of the default chain, in data order (Kedro orders the nodes by their datasets).
STAGES = {"sampling": sampling, "generation": generation, "judging": judging, "clustering": clustering,
          "labeling": labeling, "compare": compare, "reporting": reporting}


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Listed here rather than discovered with ``find_pipelines``: since Kedro 1.7 that loads only
    the package named by ``--pipeline``, and ``__default__`` and ``two_models`` are built from
    several packages.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects: one per stage; ``__default__``
        chains every stage; ``threshold`` re-applies the failure threshold to stored scores
        (zero judge calls); ``baseline`` generates and judges a second model on the same sample
        (namespace ``baseline``) and ``two_models`` is the chain plus it, so that
        ``run_comparison`` compares the two models (``kedro run --env two_models --pipeline
        two_models``).
    """
    pipelines = {name: module.create_pipeline() for name, module in STAGES.items()}
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    pipelines["threshold"] = threshold.create_pipeline()
    pipelines["baseline"] = baseline.create_pipeline()
    pipelines["two_models"] = pipelines["__default__"] + pipelines["baseline"]
    return pipelines
